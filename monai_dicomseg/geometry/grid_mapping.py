"""How the voxel grid of one volume maps onto another: one small value, decided once.

Two grids (affines to the same patient or slide coordinate system, plus
spatial shapes) are *the same grid up to re-indexing* when every source
axis runs along one target axis with a whole number of target voxels per
source voxel, and the first source voxel sits on a target voxel centre.
Then a label is copied, never resampled. :class:`GridMapping` records that
re-indexing (compare nibabel's ``io_orientation``/``ornt_transform``, which
record permutation and flips only):

``target[axes[a]] = starts[a] + steps[a] * source[a]`` for each source axis ``a``.

:func:`find_grid_mapping` decides it from two affines and shapes with the
tolerances of :mod:`monai_dicomseg.geometry.tolerances`. Every planner that
places labels builds on it: :func:`~monai_dicomseg.geometry.grid_placement.plan_placement`
(SEG onto a reference image), :func:`~monai_dicomseg.geometry.grid_plan.plan_grid_mapping`
(model output onto the source series) and
:func:`~monai_dicomseg.geometry.matching.plan_geometry_match` (``Volume.match_geometry``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from monai_dicomseg.errors import GeometryError
from monai_dicomseg.geometry.tolerances import DIRECTION_COSINE_TOLERANCE, GRID_INDEX_TOLERANCE

__all__ = ["GridMapping", "GridMismatch", "index_mapping", "find_grid_mapping", "aligned_axes"]


@dataclass(frozen=True)
class GridMapping:
    """Re-indexing of a source grid onto a target grid (no resampling).

    Attributes
    ----------
    axes
        Target axis along which each source axis runs (a permutation).
    steps
        Signed whole number of target voxels per source voxel, per source axis
        (negative: the axis is flipped; ``|step| > 1``: the source is coarser).
    starts
        Target index (along ``axes[a]``) of source index 0, per source axis.
    source_shape, target_shape
        Spatial shapes of the two grids.
    residual
        Largest distance (target voxels) between a mapped source voxel centre
        and the target voxel centre it is assigned to.
    """

    axes: tuple[int, int, int]
    steps: tuple[int, int, int]
    starts: tuple[int, int, int]
    source_shape: tuple[int, int, int]
    target_shape: tuple[int, int, int]
    residual: float = 0.0

    @property
    def flips(self) -> tuple[bool, bool, bool]:
        """Whether each source axis runs against its target axis."""
        return tuple(step < 0 for step in self.steps)  # type: ignore[return-value]  # tuple() is typed tuple[T, ...]; the fixed length holds by construction (one item per axis)

    @property
    def unit_steps(self) -> bool:
        """True when every source axis of more than one voxel advances one target voxel per voxel."""
        return all(abs(step) == 1 or size == 1 for step, size in zip(self.steps, self.source_shape))

    def target_ranges(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """``(lowest, highest)`` target index covered along ``axes[a]``, per source axis."""
        ranges = []
        for start, step, size in zip(self.starts, self.steps, self.source_shape):
            last = start + step * (size - 1)
            ranges.append((min(start, last), max(start, last)))
        return tuple(ranges)  # type: ignore[return-value]  # tuple() is typed tuple[T, ...]; the fixed length holds by construction (one item per axis)

    def fits(self) -> bool:
        """True when every source voxel lands inside the target grid."""
        return all(0 <= low and high < self.target_shape[axis]
                   for (low, high), axis in zip(self.target_ranges(), self.axes))


@dataclass(frozen=True)
class GridMismatch:
    """Why two grids are not the same grid up to re-indexing.

    Attributes
    ----------
    reason
        ``"orientation"`` (a source axis is not parallel to a single target
        axis), ``"spacing"`` (a source step is not a whole number of target
        voxels) or ``"offset"`` (the grids are shifted by a fraction of a voxel).
    axis
        The source axis at fault (``None`` for ``"offset"``).
    value
        ``"orientation"``/``"spacing"``: the mapped step column ``(3,)``
        (target voxels per source voxel); ``"offset"``: the target index
        ``(3,)`` of the first source voxel.
    """

    reason: str
    axis: "int | None"
    value: np.ndarray


def index_mapping(source_affine: np.ndarray, target_affine: np.ndarray) -> np.ndarray:
    """``(4, 4) float64`` map from source voxel index to target voxel index.

    ``inv(target_affine) @ source_affine``; both affines map index to the same
    coordinate system (PS3.3 C.7.6.2.1.1 for LPS).

    Raises
    ------
    GeometryError
        If ``target_affine`` is singular.
    """
    target = np.asarray(target_affine, dtype=np.float64)
    try:
        return np.linalg.solve(target, np.asarray(source_affine, dtype=np.float64))
    except np.linalg.LinAlgError:
        raise GeometryError(f"the target affine is singular: {np.round(target, 4).tolist()}") from None


def _corners(shape: Sequence[int]) -> np.ndarray:
    """``(8, 4)`` homogeneous indices of the corner voxel centres of ``shape``."""
    return np.array([[f, r, c, 1.0] for f in (0, shape[0] - 1) for r in (0, shape[1] - 1)
                     for c in (0, shape[2] - 1)], dtype=np.float64)


def _single_axis_direction_ok(mapping: np.ndarray, target_affine: "np.ndarray | None",
                              axis: int, target: int, tol: float) -> bool:
    """Direction test for a source axis of one voxel (no drift can be measured along it).

    The axis direction in patient space is compared with the target axes as
    unit vectors: every cosine but the chosen one must be within ``tol`` of 0.
    """
    if target_affine is None:
        column = mapping[:3, axis]
        off = np.delete(column, target)
        return bool(np.max(np.abs(off), initial=0.0) <= tol * max(abs(column[target]), 1e-12))
    target_direction = np.asarray(target_affine, dtype=np.float64)[:3, :3]
    physical = target_direction @ mapping[:3, axis]
    units = target_direction / np.linalg.norm(target_direction, axis=0)
    cosines = units.T @ (physical / np.linalg.norm(physical))
    return bool(np.max(np.abs(np.delete(cosines, target)), initial=0.0) <= tol)


def find_grid_mapping(
    mapping: np.ndarray,
    source_shape: Sequence[int],
    target_shape: Sequence[int],
    *,
    index_tol: float = GRID_INDEX_TOLERANCE,
    direction_tol: float = DIRECTION_COSINE_TOLERANCE,
    target_affine: "np.ndarray | None" = None,
) -> "GridMapping | GridMismatch":
    """Decide whether a source grid is the target grid re-indexed.

    Parameters
    ----------
    mapping
        ``(4, 4)`` source index -> target index (:func:`index_mapping`).
    source_shape, target_shape
        Spatial shapes (3 each).
    index_tol
        Largest distance (target voxels) of any mapped source voxel centre from
        a target voxel centre; tested at the 8 corners, which bound every voxel
        because the mapping is affine (default :data:`GRID_INDEX_TOLERANCE`).
    direction_tol
        For source axes of one voxel only: largest cosine between that axis
        and the other target axes (default :data:`DIRECTION_COSINE_TOLERANCE`).
    target_affine
        The target affine, to measure single-voxel axis directions in patient
        space (else they are measured in target index space).

    Returns
    -------
    GridMapping or GridMismatch
        The re-indexing, or why there is none (callers word their own error).
    """
    mapping = np.asarray(mapping, dtype=np.float64)
    source = tuple(int(s) for s in source_shape)
    target = tuple(int(s) for s in target_shape)
    axes: list[int] = []
    steps: list[int] = []
    for axis in range(3):
        column = mapping[:3, axis]
        chosen = int(np.argmax(np.abs(column)))
        if chosen in axes:
            return GridMismatch("orientation", axis, column.copy())
        if source[axis] == 1:
            if not _single_axis_direction_ok(mapping, target_affine, axis, chosen, direction_tol):
                return GridMismatch("orientation", axis, column.copy())
            step = int(np.round(column[chosen])) or (1 if column[chosen] > 0 else -1)
        else:
            step = int(np.round(column[chosen]))
            drift = np.abs(np.delete(column, chosen)) * (source[axis] - 1)
            if np.max(drift, initial=0.0) > index_tol:
                return GridMismatch("orientation", axis, column.copy())
            if step == 0 or abs(column[chosen] - step) * (source[axis] - 1) > index_tol:
                return GridMismatch("spacing", axis, column.copy())
        axes.append(chosen)
        steps.append(step)
    ideal = np.zeros((4, 4))
    ideal[3, 3] = 1.0
    for axis, (chosen, step) in enumerate(zip(axes, steps)):
        if source[axis] > 1:
            ideal[chosen, axis] = step
    origin = mapping[:3, 3]
    starts = np.round(origin)
    ideal[:3, 3] = starts
    residual = float(np.max(np.abs((_corners(source) @ (mapping - ideal).T)[:, :3])))
    if residual > index_tol:
        return GridMismatch("offset", None, origin.copy())
    return GridMapping(tuple(axes), tuple(steps), tuple(int(s) for s in starts[axes]),  # type: ignore[arg-type]  # tuple() of 3-item arrays is typed tuple[int, ...]; one entry per spatial axis
                       source, target, residual)  # type: ignore[arg-type]  # tuple() of 3-item arrays is typed tuple[int, ...]; one entry per spatial axis


def aligned_axes(mapping: np.ndarray, source_shape: Sequence[int],
                 tol: float = GRID_INDEX_TOLERANCE) -> "tuple[int, int, int] | None":
    """Target axis each source axis runs along, when the grids differ only per axis.

    Each source axis may have any scale and offset along its target axis
    (separable resampling), but its drift off that axis, accumulated over the
    axis (``max(size, 1)`` voxels), must stay within ``tol`` target voxels.

    Returns
    -------
    tuple of int or None
        One target axis per source axis, or ``None`` for rotated grids.
    """
    block = np.asarray(mapping, dtype=np.float64)[:3, :3]
    axes: list[int] = []
    for axis in range(3):
        column = block[:, axis]
        chosen = int(np.argmax(np.abs(column)))
        drift = float(np.max(np.abs(np.delete(column, chosen)))) * max(int(source_shape[axis]), 1)
        if drift > tol or chosen in axes:
            return None
        axes.append(chosen)
    return tuple(axes)  # type: ignore[return-value]  # tuple() is typed tuple[T, ...]; the fixed length holds by construction (one item per axis)
