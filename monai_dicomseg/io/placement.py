"""Place a segmentation volume voxel-for-voxel onto a reference grid.

Both grids are described by affines to the same patient coordinate system
(LPS here). ``M = inv(reference) @ source`` maps source indices to reference
indices; the segmentation can be placed *exactly* (no resampling) when every
source axis maps onto one reference axis with step ``+-1`` (``+-k`` with an
integer ``k`` along the frame axis, which happens when a producer omitted
empty frames and the slice spacing was inferred from the frames present),
and the source origin lands on an integer reference index. Anything else is
a :class:`~monai_dicomseg.errors.GeometryError`: we never resample or round
silently.

Arrays here carry their spatial axes **last** (``(*channels, X, Y, Z)``) so
that channel-first outputs are built without a transpose copy.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from monai_dicomseg.errors import GeometryError

__all__ = ["AxisPlacement", "plan_placement", "place_on_grid", "destination_view", "DIRECTION_TOLERANCE", "INDEX_TOLERANCE"]

DIRECTION_TOLERANCE = 1e-3
"""Tolerance (in reference voxels per source voxel) on the mapped axis steps."""

INDEX_TOLERANCE = 1e-2
"""Tolerance (in reference voxels) on the mapped source origin being an integer index."""


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
        spacings differ, the grids are offset by a fraction of a voxel, or a
        source voxel falls outside the reference grid.
    """
    mapping = np.linalg.solve(np.asarray(reference_affine, dtype=np.float64),
                              np.asarray(source_affine, dtype=np.float64))
    used: set[int] = set()
    axes = []
    for axis in range(3):
        column = mapping[:3, axis]
        target = int(np.argmax(np.abs(column)))
        size = float(column[target])
        others = np.delete(column, target)
        if target in used or np.max(np.abs(others), initial=0.0) > DIRECTION_TOLERANCE * max(1.0, abs(size)):
            raise GeometryError(
                "the segmentation's orientation does not match the reference grid: source axis "
                f"{axis} maps to reference index step {np.round(column, 4).tolist()}, expected a step "
                "along a single reference axis (same ImageOrientationPatient up to axis order/flips)"
            )
        used.add(target)
        if int(source_shape[axis]) == 1:
            step = 1 if size > 0 else -1
        else:
            step = int(round(size))
            allowed = axis in free_step_axes
            if step == 0 or abs(size - step) > DIRECTION_TOLERANCE * abs(step) or (abs(step) != 1 and not allowed):
                raise GeometryError(
                    f"the segmentation's spacing does not match the reference grid: one voxel step "
                    f"along source axis {axis} is {abs(size):.6g} reference voxels, expected 1"
                    + (" (or an integer)" if allowed else "")
                )
        axes.append((target, step))
    origin = mapping[:3, 3]
    placements = []
    for axis, (target, step) in enumerate(axes):
        start_f = float(origin[target])
        start = int(round(start_f))
        if abs(start_f - start) > INDEX_TOLERANCE:
            raise GeometryError(
                "the segmentation's grid is offset from the reference grid by a fraction of a voxel: "
                f"its first voxel maps to reference index {np.round(origin, 4).tolist()}"
            )
        last = start + step * (int(source_shape[axis]) - 1)
        limit = int(reference_shape[target])
        if min(start, last) < 0 or max(start, last) >= limit:
            raise GeometryError(
                f"the segmentation does not fit in the reference grid: its voxels span indices "
                f"{min(start, last)}..{max(start, last)} along reference axis {target}, whose size "
                f"is {limit} (the SEG covers positions the reference image lacks)"
            )
        placements.append(AxisPlacement(target, start, step))
    return tuple(placements)  # type: ignore[return-value]


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
