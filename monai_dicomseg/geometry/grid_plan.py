"""Classify how a model output grid maps onto the source series grid (numpy only).

With ``M = inv(output_affine_LPS) @ source_affine_LPS`` (source
``(frame, row, column)`` index -> output index) three cases arise:

``"exact"``
    :func:`~monai_dicomseg.geometry.grid_mapping.find_grid_mapping` finds a
    re-indexing with unit steps: the grids share voxel centres up to flips,
    axis permutations, crops and pads (within
    :data:`~monai_dicomseg.geometry.tolerances.GRID_INDEX_TOLERANCE`).
``"separable"``
    Every source axis runs along one output axis
    (:func:`~monai_dicomseg.geometry.grid_mapping.aligned_axes`), with any
    scale or offset (``Spacingd``, ``Resized``, sub-voxel shifts).
``"general"``
    Rotated grids.

The resampling itself (which may use torch) is in :mod:`monai_dicomseg.io.grid`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from monai_dicomseg.errors import GeometryError, InputError
from monai_dicomseg.geometry.affine import RAS, check_space, ras_to_lps_affine
from monai_dicomseg.geometry.grid_mapping import GridMapping, aligned_axes, find_grid_mapping

__all__ = ["GridPlan", "plan_grid_mapping"]


@dataclass(frozen=True)
class GridPlan:
    """How source voxels find their value in the output grid.

    Attributes
    ----------
    kind
        ``"exact"``, ``"separable"`` or ``"general"`` (see module docstring).
    mapping
        ``(4, 4) float64``: source ``(f, r, c)`` index -> output index.
    output_shape
        Spatial shape of the output grid.
    source_shape
        ``(F, R, C)`` of the source series.
    axes
        For ``exact``/``separable``: the output axis each source axis runs along.
    grid
        For ``exact``: the re-indexing (steps and starts), else ``None``.
    """

    kind: str
    mapping: np.ndarray
    output_shape: tuple[int, int, int]
    source_shape: tuple[int, int, int]
    axes: "tuple[int, int, int] | None"
    grid: "GridMapping | None" = None

    def coordinates(self, source_axis: int, indices: "np.ndarray | None" = None) -> np.ndarray:
        """Output coordinate along ``axes[source_axis]`` of source indices (separable plans)."""
        if self.axes is None:
            raise InputError("coordinates() needs an axis-aligned plan")
        target = self.axes[source_axis]
        if indices is None:
            indices = np.arange(self.source_shape[source_axis])
        return self.mapping[target, source_axis] * indices + self.mapping[target, 3]


def _lps(affine: np.ndarray, space: str) -> np.ndarray:
    if check_space(space) == RAS:
        return ras_to_lps_affine(affine)
    return np.asarray(affine, dtype=np.float64)


def plan_grid_mapping(
    output_affine: np.ndarray,
    output_shape: Sequence[int],
    source_affine: np.ndarray,
    source_shape: Sequence[int],
    space: str = "RAS",
) -> GridPlan:
    """Classify how an output grid maps onto the source grid.

    Parameters
    ----------
    output_affine
        ``(4, 4)`` output index -> patient mm, in ``space``.
    output_shape
        Spatial shape of the output.
    source_affine
        ``(4, 4)`` source ``(F, R, C)`` index -> LPS mm (PS3.3 C.7.6.2.1.1).
    source_shape
        ``(F, R, C)``.
    space
        ``"RAS"`` (MONAI's default) or ``"LPS"``: space of ``output_affine``.

    Raises
    ------
    GeometryError
        If the output affine is singular or the two grids do not overlap.
    """
    out = _lps(np.asarray(output_affine, dtype=np.float64), space)
    try:
        mapping = np.linalg.solve(out, np.asarray(source_affine, dtype=np.float64))
    except np.linalg.LinAlgError:
        raise GeometryError(f"the output affine is singular: {np.round(out, 4).tolist()}") from None
    out_shape = tuple(int(s) for s in output_shape)
    src_shape = tuple(int(s) for s in source_shape)
    _check_overlap(mapping, out_shape, src_shape)
    found = find_grid_mapping(mapping, src_shape, out_shape, target_affine=out)
    if isinstance(found, GridMapping) and found.unit_steps:
        return GridPlan("exact", mapping, out_shape, src_shape, found.axes, found)  # type: ignore[arg-type]  # shapes are 3 ints (tuple() of the 3-item shapes is typed tuple[int, ...])
    axes = aligned_axes(mapping, src_shape)
    if axes is None:
        return GridPlan("general", mapping, out_shape, src_shape, None)  # type: ignore[arg-type]  # shapes are 3 ints (tuple() of the 3-item shapes is typed tuple[int, ...])
    return GridPlan("separable", mapping, out_shape, src_shape, axes)  # type: ignore[arg-type]  # shapes are 3 ints (tuple() of the 3-item shapes is typed tuple[int, ...])


def _check_overlap(mapping: np.ndarray, out_shape: tuple[int, ...], src_shape: tuple[int, ...]) -> None:
    corners = np.array([[f, r, c, 1.0] for f in (-0.5, src_shape[0] - 0.5)
                        for r in (-0.5, src_shape[1] - 0.5) for c in (-0.5, src_shape[2] - 0.5)])
    mapped = corners @ mapping.T
    low, high = mapped[:, :3].min(axis=0), mapped[:, :3].max(axis=0)
    if np.any(high < -0.5) or np.any(low > np.asarray(out_shape) - 0.5):
        raise GeometryError(
            "the output grid does not overlap the source series: source voxels map to output indices "
            f"{np.round(low, 2).tolist()}..{np.round(high, 2).tolist()}, output shape {list(out_shape)} "
            "(wrong affine, or a series of another Frame of Reference?)"
        )
