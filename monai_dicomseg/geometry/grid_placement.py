"""Place a segmentation volume voxel-for-voxel onto a reference grid (numpy only).

Both grids are described by affines to the same patient coordinate system
(LPS here). The segmentation can be placed *exactly* (no resampling) when
:func:`~monai_dicomseg.geometry.grid_mapping.find_grid_mapping` finds a
re-indexing with steps ``+-1`` (``+-k`` with an integer ``k`` along the
frame axis, which happens when a producer omitted empty frames and the slice
spacing was inferred from the frames present) that keeps every voxel inside
the reference grid. Anything else is a
:class:`~monai_dicomseg.errors.GeometryError`: we never resample or round
silently.

Arrays here carry their spatial axes **last** (``(*channels, X, Y, Z)``) so
that channel-first outputs are built without a transpose copy.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from monai_dicomseg.errors import GeometryError
from monai_dicomseg.geometry.grid_mapping import GridMismatch, find_grid_mapping, index_mapping

__all__ = ["AxisPlacement", "plan_placement", "place_on_grid", "destination_view"]


@dataclass(frozen=True)
class AxisPlacement:
    """Where source axis ``a`` goes: reference axis, first index and step."""

    reference_axis: int
    start: int
    step: int


def plan_placement(
    source_affine: np.ndarray,
    source_shape: Sequence[int],
    reference_affine: np.ndarray,
    reference_shape: Sequence[int],
    *,
    free_step_axes: Sequence[int] = (0,),
) -> tuple[AxisPlacement, AxisPlacement, AxisPlacement]:
    """Work out the exact index mapping from a source grid into a reference grid.

    Parameters
    ----------
    source_affine, reference_affine
        ``(4, 4)`` index -> patient (same coordinate system) affines.
    source_shape, reference_shape
        Spatial shapes of the two grids.
    free_step_axes
        Source axes whose step may be an integer multiple of the reference
        step (frame axis of a SEG with omitted frames). An axis of size 1 only
        needs the right direction.

    Returns
    -------
    tuple of AxisPlacement
        One per source axis.

    Raises
    ------
    GeometryError
        If orientations differ (an axis is not parallel to a reference axis),
        spacings differ, the grids are offset by a fraction of a voxel (all
        beyond :data:`~monai_dicomseg.geometry.tolerances.GRID_INDEX_TOLERANCE`),
        or a source voxel falls outside the reference grid.
    """
    reference = np.asarray(reference_affine, dtype=np.float64)
    mapping = index_mapping(source_affine, reference)
    found = find_grid_mapping(mapping, source_shape, reference_shape, target_affine=reference)
    if isinstance(found, GridMismatch):
        raise _mismatch_error(found, mapping, free_step_axes)
    for axis, step in enumerate(found.steps):
        if abs(step) != 1 and int(source_shape[axis]) > 1 and axis not in free_step_axes:
            raise _mismatch_error(GridMismatch("spacing", axis, mapping[:3, axis]), mapping, free_step_axes)
    for (low, high), target in zip(found.target_ranges(), found.axes):
        limit = int(reference_shape[target])
        if low < 0 or high >= limit:
            raise GeometryError(
                f"the segmentation does not fit in the reference grid: its voxels span indices "
                f"{low}..{high} along reference axis {target}, whose size "
                f"is {limit} (the SEG covers positions the reference image lacks)"
            )
    steps = [k if int(size) > 1 else (1 if k > 0 else -1) for k, size in zip(found.steps, source_shape)]
    return tuple(AxisPlacement(t, s, k) for t, s, k in zip(found.axes, found.starts, steps))  # type: ignore[return-value]  # tuple() is typed tuple[T, ...]; the fixed length holds by construction (one item per axis)


def _mismatch_error(mismatch: GridMismatch, mapping: np.ndarray, free_step_axes: Sequence[int]) -> GeometryError:
    """The loader's wording of why a SEG grid is not the reference grid."""
    if mismatch.reason == "orientation":
        return GeometryError(
            "the segmentation's orientation does not match the reference grid: source axis "
            f"{mismatch.axis} maps to reference index step {np.round(mismatch.value, 4).tolist()}, expected a step "
            "along a single reference axis (same ImageOrientationPatient up to axis order/flips)"
        )
    if mismatch.reason == "spacing":
        allowed = mismatch.axis in free_step_axes
        size = float(np.max(np.abs(mismatch.value)))
        return GeometryError(
            f"the segmentation's spacing does not match the reference grid: one voxel step "
            f"along source axis {mismatch.axis} is {size:.6g} reference voxels, expected 1"
            + (" (or an integer)" if allowed else "")
        )
    return GeometryError(
        "the segmentation's grid is offset from the reference grid by a fraction of a voxel: "
        f"its first voxel maps to reference index {np.round(mapping[:3, 3], 4).tolist()}"
    )


def _slice(start: int, step: int, count: int) -> slice:
    stop = start + step * count
    return slice(start, None if stop < 0 else stop, step)


def destination_view(
    out: np.ndarray, placements: Sequence[AxisPlacement], source_shape: Sequence[int]
) -> np.ndarray:
    """View of ``out`` (``(*lead, X, Y, Z)``) indexed like the source grid, ``(*lead, F, R, C)``.

    Writing source values into the view places them on the reference grid
    (any axis order, flips and frame steps) with no intermediate array and
    no transposed copy of the source.

    Parameters
    ----------
    out
        Reference-grid array, spatial axes last.
    placements
        From :func:`plan_placement`, one per source axis.
    source_shape
        Spatial shape ``(F, R, C)`` of the source grid.

    Returns
    -------
    numpy.ndarray
        ``(*lead, F, R, C)`` view of ``out`` (strides may be permuted or negative).
    """
    n_lead = out.ndim - 3
    index: list[slice] = [slice(None)] * out.ndim
    for axis, placement in enumerate(placements):
        index[n_lead + placement.reference_axis] = _slice(placement.start, placement.step, int(source_shape[axis]))
    view = out[tuple(index)]
    return view.transpose(*range(n_lead), *(n_lead + p.reference_axis for p in placements))


def place_on_grid(
    array: np.ndarray,
    placements: Sequence[AxisPlacement],
    reference_shape: Sequence[int],
    dtype: "np.dtype | type | None" = None,
) -> np.ndarray:
    """Copy ``array`` (spatial axes last) into zeros of the reference grid.

    Parameters
    ----------
    array
        ``(*lead, F, R, C)`` source values.
    placements
        From :func:`plan_placement`.
    reference_shape
        Spatial shape ``(X, Y, Z)`` of the reference grid.
    dtype
        Output dtype (default ``array.dtype``).

    Returns
    -------
    numpy.ndarray
        ``(*lead, X, Y, Z)`` C-contiguous; voxels not covered are 0.
    """
    lead = array.shape[:-3]
    out = np.zeros((*lead, *(int(s) for s in reference_shape)), dtype=dtype or array.dtype)
    destination_view(out, placements, array.shape[-3:])[...] = array
    return out
