"""Plan how to bring one voxel grid onto another by permuting, flipping, padding and cropping.

No resampling: every voxel of the target grid must coincide (within a
tolerance) with a voxel of the source grid or fall outside it, where it is
filled by padding. That holds when each target axis is parallel to one
source axis, the target spacing is an integer multiple of the source
spacing along it, and the target origin sits on a source voxel centre.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from monai_dicomseg.errors import GeometryError
from monai_dicomseg.geometry.affine import permute_affine
from monai_dicomseg.geometry.tolerances import AFFINE_EQUALITY_TOLERANCE

__all__ = ["GeometryMatchPlan", "plan_geometry_match"]


@dataclass(frozen=True)
class GeometryMatchPlan:
    """Operations that map a source grid onto a target grid, applied in order.

    Attributes
    ----------
    permutation
        Source spatial axis used for each target axis (``numpy.transpose``
        order).
    pad_width
        ``(before, after)`` voxels added along each (permuted) axis.
    slices
        Index into the permuted, padded array: start, stop and a step whose
        sign flips the axis and whose size subsamples it.
    """

    permutation: tuple[int, int, int]
    pad_width: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    slices: tuple[slice, slice, slice]

    @property
    def needs_permute(self) -> bool:
        return self.permutation != (0, 1, 2)

    @property
    def needs_pad(self) -> bool:
        return any(b or a for b, a in self.pad_width)


def _unit_columns(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    direction = affine[:3, :3]
    spacing = np.linalg.norm(direction, axis=0)
    return direction / spacing, spacing


def plan_geometry_match(
    source_affine: np.ndarray,
    source_shape: Sequence[int],
    target_affine: np.ndarray,
    target_shape: Sequence[int],
    tol: float = AFFINE_EQUALITY_TOLERANCE,
) -> GeometryMatchPlan:
    """Find the permute/pad/slice operations taking a source grid to a target grid.

    Parameters
    ----------
    source_affine, target_affine
        ``(4, 4) float64`` volume affines in the same frame of reference.
    source_shape, target_shape
        Spatial shapes ``(F, R, C)``.
    tol
        Tolerance on ``|cos| - 1`` between axes, on the spacing ratio's
        distance to an integer, and on the target origin's distance (in
        voxels) to a source voxel centre.

    Raises
    ------
    GeometryError
        If an axis would need rotating, a spacing ratio is not an integer,
        or the grids are offset by a fraction of a voxel.
    """
    source_unit, source_spacing = _unit_columns(source_affine)
    target_unit, target_spacing = _unit_columns(target_affine)
    permutation: list[int] = []
    steps: list[int] = []
    for axis in range(3):
        cosines = target_unit[:, axis] @ source_unit
        parallel = np.flatnonzero(np.abs(np.abs(cosines) - 1.0) < tol)
        if parallel.size == 0:
            raise GeometryError(
                f"cannot match geometry without resampling: target axis {axis} "
                f"(direction {np.round(target_unit[:, axis], 6).tolist()}) is not parallel "
                f"to any axis of this volume (directions "
                f"{np.round(source_unit.T, 6).tolist()})"
            )
        source_axis = int(parallel[0])
        ratio = target_spacing[axis] / source_spacing[source_axis]
        step = int(np.round(ratio))
        if step == 0 or abs(ratio - step) > tol:
            raise GeometryError(
                f"cannot match geometry without resampling: target spacing "
                f"{target_spacing[axis]:.6g} mm along axis {axis} is not an integer "
                f"multiple of this volume's spacing {source_spacing[source_axis]:.6g} mm"
            )
        permutation.append(source_axis)
        steps.append(step if cosines[source_axis] > 0 else -step)
    permuted = permute_affine(source_affine, permutation)
    permuted_shape = [int(source_shape[a]) for a in permutation]
    start = (np.linalg.inv(permuted) @ np.append(target_affine[:3, 3], 1.0))[:3]
    rounded = np.round(start)
    if np.any(np.abs(start - rounded) > tol):
        raise GeometryError(
            "cannot match geometry without resampling: the target origin lies at "
            f"fractional voxel index {np.round(start, 6).tolist()} of this volume "
            "(it must be a whole voxel offset)"
        )
    pad_width: list[tuple[int, int]] = []
    slices: list[slice] = []
    for first, step, size, length in zip(rounded.astype(int), steps, target_shape, permuted_shape):
        last = first + (int(size) - 1) * step
        low, high = min(first, last), max(first, last)
        before, after = max(0, -low), max(0, high - (length - 1))
        start_index = int(first + before)
        stop_index = start_index + int(size) * step
        slices.append(slice(start_index, None if stop_index < 0 else stop_index, step))
        pad_width.append((int(before), int(after)))
    return GeometryMatchPlan(tuple(permutation), tuple(pad_width), tuple(slices))  # type: ignore[arg-type]
