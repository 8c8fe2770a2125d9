"""Map a model output grid back onto the source series grid.

A model output (a ``MetaTensor`` after ``Orientationd``, ``Spacingd``, crops,
pads, resizes) carries an affine that composes every spatial transform MONAI
recorded in ``applied_operations``; mapping through that affine *is* MONAI's
inverse of those transforms, without replaying them. With

``M = inv(output_affine_LPS) @ source_affine_LPS``

(source ``(frame, row, column)`` index -> output index) three cases arise,
chosen by :func:`~monai_dicomseg.geometry.grid_plan.plan_grid_mapping` (numpy-only
planning, in ``geometry/``; re-exported here):

``"exact"``
    ``M`` is a signed permutation with integer translation (within
    :data:`~monai_dicomseg.geometry.tolerances.GRID_INDEX_TOLERANCE`): the grids share
    voxel centres up to flips, axis permutations, crops and pads. Voxels are
    copied (no interpolation, results are bit-exact); source voxels outside
    the output get 0 (background).
``"separable"``
    Every source axis runs along one output axis (any scale/offset, e.g.
    ``Spacingd``, ``Resized``, ``Orientationd`` + ``Spacingd``): 1D index maps
    per axis (nearest) or 1D linear weights per axis (trilinear), computed in
    slabs of source frames so memory stays bounded.
``"general"``
    Rotated grids: ``torch.nn.functional.grid_sample`` in slabs of frames.

Conventions: output arrays are channel-first ``(S, X, Y, Z)`` (any spatial
axis order, described by the affine); results are in our ``(F, R, C)`` order
aligned with the spatially sorted source instances (see
:mod:`monai_dicomseg.io.source_series`). Out-of-field source voxels are 0.

:func:`argmax_on_grid` resamples probabilities *linearly* and then takes the
argmax, exactly, at the cost of nearest-neighbour work almost everywhere: the
argmax of a convex combination of probability vectors that share their argmax
is that same argmax, so only voxels whose 8 surrounding model voxels disagree
are interpolated, and there only the few channels that win at a corner are
(every other channel is bounded by its largest corner value); near ties fall
back to interpolating every channel.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from monai_dicomseg.errors import InputError
from monai_dicomseg.geometry.grid_plan import GridPlan, plan_grid_mapping
from monai_dicomseg.geometry.tolerances import GRID_INDEX_TOLERANCE

__all__ = [
    "GridPlan",
    "plan_grid_mapping",
    "map_exact",
    "map_nearest",
    "iter_linear_slabs",
    "iter_support_slabs",
    "argmax_on_grid",
    "channel_argmax",
    "DRIFT_TOLERANCE",
    "OFFSET_TOLERANCE",
]

DRIFT_TOLERANCE = GRID_INDEX_TOLERANCE
"""Deprecated alias: see :data:`monai_dicomseg.geometry.tolerances.GRID_INDEX_TOLERANCE`."""

OFFSET_TOLERANCE = GRID_INDEX_TOLERANCE
"""Deprecated alias: see :data:`monai_dicomseg.geometry.tolerances.GRID_INDEX_TOLERANCE`."""

_SLAB_VALUES = 16_000_000
"""Target number of float values per slab when resampling (about 64 MB float32)."""


# --------------------------------------------------------------------------- exact


def _require_axes(plan: GridPlan) -> None:
    """Raise unless ``plan`` is axis-aligned (``exact`` or ``separable``); kept under ``python -O``."""
    if plan.axes is None:
        raise InputError(f"this operation needs an axis-aligned (exact or separable) plan; got {plan.kind!r}")


def _exact_ranges(plan: GridPlan) -> tuple[list[slice], list[slice]]:
    """Source slices and matching output slices (in source-axis order) of an exact plan."""
    _require_axes(plan)
    source, output = [], []
    for axis, target in enumerate(plan.axes):  # type: ignore[arg-type]  # _require_axes(plan) above raises when plan.axes is None
        n_src, n_out = plan.source_shape[axis], plan.output_shape[target]
        step = 1 if plan.mapping[target, axis] > 0 or n_src == 1 else -1
        offset = int(round(plan.mapping[target, 3]))
        if step == 1:
            lo, hi = max(0, -offset), min(n_src, n_out - offset)
        else:
            lo, hi = max(0, offset - n_out + 1), min(n_src, offset + 1)
        if hi <= lo:
            source.append(slice(0, 0))
            output.append(slice(0, 0))
            continue
        source.append(slice(lo, hi))
        first, last = step * lo + offset, step * (hi - 1) + offset
        stop = last + step
        output.append(slice(first, None if stop < 0 else stop, step))
    return source, output


def map_exact(array: np.ndarray, plan: GridPlan, dtype: "np.dtype | type | None" = None) -> np.ndarray:
    """Copy ``array`` ``(*lead, X, Y, Z)`` onto the source grid of an exact plan.

    Returns
    -------
    numpy.ndarray
        ``(*lead, F, R, C)``; source voxels the output does not cover are 0.
    """
    if plan.kind != "exact":
        raise InputError(f"map_exact needs an exact plan; got {plan.kind!r}")
    lead = array.shape[:-3]
    n = len(lead)
    _require_axes(plan)
    moved = np.transpose(array, (*range(n), *(n + a for a in plan.axes)))  # type: ignore[union-attr]  # _require_axes(plan) above raises when plan.axes is None
    source, output = _exact_ranges(plan)
    result = np.zeros((*lead, *plan.source_shape), dtype=dtype or array.dtype)
    result[(Ellipsis,) + tuple(source)] = moved[(Ellipsis,) + tuple(output)]
    return result


# --------------------------------------------------------------------------- separable


def _nearest_index(plan: GridPlan, axis: int) -> tuple[np.ndarray, np.ndarray]:
    coords = plan.coordinates(axis)
    size = plan.output_shape[plan.axes[axis]]  # type: ignore[index]  # separable/exact plans (the only callers' plans) have axes
    valid = (coords >= -0.5) & (coords <= size - 0.5)
    index = np.clip(np.floor(coords + 0.5), 0, size - 1).astype(np.intp)
    return index, valid


def _linear_index(plan: GridPlan, axis: int, indices: "np.ndarray | None" = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    coords = plan.coordinates(axis, indices)
    size = plan.output_shape[plan.axes[axis]]  # type: ignore[index]  # separable/exact plans (the only callers' plans) have axes
    valid = (coords >= -0.5) & (coords <= size - 0.5)
    low = np.clip(np.floor(coords), 0, size - 1).astype(np.intp)
    high = np.minimum(low + 1, size - 1)
    weight = np.clip(coords - low, 0.0, 1.0).astype(np.float32)
    return low, high, weight, valid


def _general_coordinates(plan: GridPlan, frames: np.ndarray) -> np.ndarray:
    """Output coordinates ``(f, R, C, 3)`` of the source voxels of ``frames``."""
    f, r, c = np.meshgrid(frames, np.arange(plan.source_shape[1]), np.arange(plan.source_shape[2]),
                          indexing="ij")
    index = np.stack([f, r, c], axis=-1).astype(np.float64)
    return index @ plan.mapping[:3, :3].T + plan.mapping[:3, 3]


def _grid_sample(array: np.ndarray, plan: GridPlan, frames: np.ndarray, mode: str) -> np.ndarray:
    """``(S, f, R, C) float32`` values of ``array`` ``(S, X, Y, Z)`` at the source voxels of ``frames``.

    Without torch (the light install's ``monai-dicomseg from-nifti``), nearest
    sampling is done in numpy with torch's rounding (half to even).
    """
    coords = _general_coordinates(plan, frames)
    sizes = np.asarray(plan.output_shape, dtype=np.float64)
    if mode == "nearest" and importlib.util.find_spec("torch") is None:
        index = np.rint(coords).astype(np.intp)
        inside = np.all((coords >= -0.5) & (coords <= sizes - 0.5) & (index >= 0) & (index < sizes), axis=-1)
        index = np.clip(index, 0, np.asarray(plan.output_shape) - 1)
        result = np.asarray(array, dtype=np.float32)[:, index[..., 0], index[..., 1], index[..., 2]]
        result *= inside[None]
        return result
    import torch
    import torch.nn.functional as functional

    normalised = np.where(sizes > 1, 2.0 * coords / np.maximum(sizes - 1, 1) - 1.0, 0.0)
    grid = torch.from_numpy(normalised[..., ::-1].astype(np.float32).copy())[None]
    values = torch.as_tensor(np.ascontiguousarray(array, dtype=np.float32))[None]
    sampled = functional.grid_sample(values, grid, mode="nearest" if mode == "nearest" else "bilinear",
                                     padding_mode="zeros", align_corners=True)
    inside = np.all((coords >= -0.5) & (coords <= sizes - 0.5), axis=-1)
    result = sampled[0].numpy()
    result *= inside[None]
    return result


def map_nearest(array: np.ndarray, plan: GridPlan) -> np.ndarray:
    """Nearest-neighbour copy of ``array`` ``(*lead, X, Y, Z)`` (labels, masks) onto the source grid.

    Returns
    -------
    numpy.ndarray
        ``(*lead, F, R, C)`` of ``array.dtype``; out-of-field voxels are 0.
    """
    if plan.kind == "exact":
        return map_exact(array, plan)
    lead = array.shape[:-3]
    if plan.kind == "separable":
        _require_axes(plan)
        n = len(lead)
        moved = np.transpose(array, (*range(n), *(n + a for a in plan.axes)))  # type: ignore[union-attr]  # _require_axes(plan) above raises when plan.axes is None
        indices = [_nearest_index(plan, axis) for axis in range(3)]
        if n == 0:
            result = _take3(moved, *(i for i, _ in indices))
        else:
            result = moved[(Ellipsis,) + np.ix_(*(i for i, _ in indices))]
        valid = [v for _, v in indices]
        inside = valid[0][:, None, None] & valid[1][None, :, None] & valid[2][None, None, :]
        if not inside.all():
            result = result * inside.astype(result.dtype)
        return np.ascontiguousarray(result)
    flat = array.reshape((-1, *array.shape[-3:]))
    result = np.zeros((flat.shape[0], *plan.source_shape), dtype=array.dtype)
    for start, stop in _slabs(plan, flat.shape[0]):
        frames = np.arange(start, stop)
        values = _grid_sample(flat, plan, frames, "nearest")  # each value is one model voxel's
        result[:, start:stop] = values if array.dtype.kind == "f" else np.rint(values).astype(array.dtype)
    return result.reshape((*lead, *plan.source_shape))


def _slabs(plan: GridPlan, channels: int) -> Iterator[tuple[int, int]]:
    per_frame = max(1, channels * plan.source_shape[1] * plan.source_shape[2])
    step = max(1, _SLAB_VALUES // per_frame)
    for start in range(0, plan.source_shape[0], step):
        yield start, min(start + step, plan.source_shape[0])


def _interpolate_axis(values: np.ndarray, axis: int, low: np.ndarray, high: np.ndarray,
                      weight: np.ndarray) -> np.ndarray:
    shape = [1] * values.ndim
    shape[axis] = -1
    w = weight.reshape(shape)
    if values.flags.c_contiguous:
        a = np.take(values, low, axis=axis)
        b = np.take(values, high, axis=axis)
    else:  # np.take would first copy the whole (model-sized) strided view, once per slab
        lead = (slice(None),) * axis
        a = values[lead + (low,)]
        b = values[lead + (high,)]
    b -= a
    b *= w
    a += b
    return a


def iter_linear_slabs(array: np.ndarray, plan: GridPlan) -> Iterator[tuple[int, int, np.ndarray]]:
    """Trilinear values of ``array`` ``(S, X, Y, Z)`` on the source grid, slab by slab.

    Yields
    ------
    tuple
        ``(first_frame, stop_frame, values)`` with ``values`` ``(S, stop - first, R, C) float32``;
        out-of-field voxels are 0. Exact plans yield copies of the mapped values.
    """
    if array.ndim != 4:
        raise InputError(f"array must be (S, X, Y, Z); got shape {array.shape}")
    if plan.kind == "exact":
        mapped = map_exact(array.astype(np.float32, copy=False), plan)
        for start, stop in _slabs(plan, array.shape[0]):
            yield start, stop, mapped[:, start:stop]
        return
    if plan.kind == "general":
        for start, stop in _slabs(plan, array.shape[0]):
            yield start, stop, _grid_sample(array, plan, np.arange(start, stop), "linear")
        return
    _require_axes(plan)
    moved = np.transpose(array, (0, *(1 + a for a in plan.axes)))  # type: ignore[union-attr]  # _require_axes(plan) above raises when plan.axes is None
    rows = _linear_index(plan, 1)
    cols = _linear_index(plan, 2)
    inside_rc = rows[3][:, None] & cols[3][None, :]
    for start, stop in _slabs(plan, array.shape[0]):
        frames = _linear_index(plan, 0, np.arange(start, stop))
        values = _interpolate_axis(moved.astype(np.float32, copy=False), 1, *frames[:3])
        values = _interpolate_axis(values, 2, *rows[:3])
        values = _interpolate_axis(values, 3, *cols[:3])
        inside = frames[3][:, None, None] & inside_rc[None]
        if not inside.all():
            values *= inside[None]
        yield start, stop, values


# --------------------------------------------------------------------------- support-limited (sparse) sources

_SUPPORT_MARGIN = 1e-3
"""Relative margin below a cut: float32 interpolation (a few ulps, ~1e-6 relative) cannot cross it."""

_FRACTION_CUT = 0.5 / 255
"""A stored fraction ``rint(p * max)`` is 0 iff ``p * max <= 0.5``; ``max <= 255`` (8-bit FRACTIONAL, PS3.3
C.8.20.2.3), so ``p <= 0.5 / 255`` is stored as 0 whatever MaximumFractionalValue is."""


def _support_box(channel: np.ndarray, cut: float) -> "list[tuple[int, int]] | None | str":
    """Inclusive model-grid bounding box ``[(lo, hi)] * 3`` of ``channel >= cut``.

    ``None`` when no voxel reaches ``cut``; ``"nonfinite"`` when the channel
    holds NaN/inf (the caller then keeps the full path, whose errors it must
    reproduce). One model-sized bool temporary.
    """
    values = np.asarray(channel)
    if values.dtype.kind == "f":
        low, high = values.min(), values.max()
        if not (np.isfinite(low) and np.isfinite(high)):
            return "nonfinite"
    mask = values >= cut
    box = []
    for axis in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        if hit.size == 0:
            return None
        box.append((int(hit[0]), int(hit[-1])))
    return box


def _axis_maps(grid: GridPlan, mode: str = "linear"
               ) -> "list[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]]":
    """Per source axis ``(low, high, weight, valid)`` model indices (exact plans and ``mode="nearest"``:
    ``high = low``, no weight: a gather)."""
    if grid.kind == "separable" and mode == "nearest":
        return [(index, index, None, valid) for index, valid in (_nearest_index(grid, axis) for axis in range(3))]
    if grid.kind == "separable":
        return [_linear_index(grid, axis) for axis in range(3)]
    maps: list[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]] = []
    for axis, target in enumerate(grid.axes):  # type: ignore[arg-type]  # an exact plan (the separable kinds returned above) has axes
        n_src, n_out = grid.source_shape[axis], grid.output_shape[target]
        step = 1 if grid.mapping[target, axis] > 0 or n_src == 1 else -1
        index = step * np.arange(n_src) + int(round(grid.mapping[target, 3]))
        valid = (index >= 0) & (index < n_out)
        index = np.clip(index, 0, n_out - 1).astype(np.intp)
        maps.append((index, index, None, valid))
    return maps


def _source_range(axis_map: tuple, lo: int, hi: int) -> "tuple[int, int] | None":
    """Source indices ``[start, stop)`` whose interpolation footprint touches model indices ``lo..hi``."""
    low, high, _, valid = axis_map
    need = valid & (((low >= lo) & (low <= hi)) | ((high >= lo) & (high <= hi)))
    hit = np.flatnonzero(need)
    return None if hit.size == 0 else (int(hit[0]), int(hit[-1]) + 1)


def _box_values(channel: np.ndarray, maps: list, ranges: "list[tuple[int, int]]") -> np.ndarray:
    """Values of one moved channel ``(X', Y', Z')`` (source-axis order) on the source box ``ranges``.

    Voxel for voxel the same float32 arithmetic as :func:`iter_linear_slabs`
    (interpolate frames, rows, columns; zero out of field), or the same copy
    as :func:`map_exact`, restricted to the box and the model voxels it reads.
    """
    lows, highs, weights, valids = [], [], [], []
    window = []
    for (low, high, weight, valid), (start, stop) in zip(maps, ranges):
        low, high, valid = low[start:stop], high[start:stop], valid[start:stop]
        first = int(low.min())
        window.append(slice(first, int(high.max()) + 1))
        lows.append(low - first)
        highs.append(high - first)
        weights.append(None if weight is None else weight[start:stop])
        valids.append(valid)
    values = channel[tuple(window)].astype(np.float32, copy=False)
    if weights[0] is None:  # exact: a gather (a copy)
        values = values[lows[0]][:, lows[1]][:, :, lows[2]]
    else:
        for axis in range(3):
            values = _interpolate_axis(values, axis, lows[axis], highs[axis], weights[axis])  # type: ignore[arg-type]  # weights are all arrays or all None, and weights[0] is not None on this branch
    inside = valids[0][:, None, None] & valids[1][None, :, None] & valids[2][None, None, :]
    if not inside.all():
        values *= inside
    return values


def iter_support_slabs(array: np.ndarray, plan: GridPlan, cut: float, slab_values: int = _SLAB_VALUES,
                       mode: str = "linear",
                       ) -> "Callable[[], Iterator[tuple[int, int, int, slice, slice, np.ndarray]]] | None":
    """Source-grid values of each channel of ``array`` ``(S, X, Y, Z)`` only where they can reach ``cut``.

    A linearly interpolated value is a convex combination of its (up to 8)
    model-grid neighbours, so a source voxel none of whose neighbours
    reaches ``cut * (1 - 1e-3)`` stays below ``cut`` (float32 rounding is
    ~1e-6 relative); an exact plan, and ``mode="nearest"``, copy one voxel
    (the same values as :func:`map_nearest`). Per channel, the
    bounding box of ``array[s] >= cut * (1 - 1e-3)`` on the model grid is
    mapped to the source indices whose footprint touches it; only that box
    is computed, voxel for voxel with the same arithmetic as
    :func:`iter_linear_slabs` / :func:`map_exact` (same float32 values).
    Everything outside is below ``cut`` in the full computation too.

    Parameters
    ----------
    array
        ``(S, X, Y, Z)`` channels (finite values; see Returns).
    plan
        An ``exact`` or ``separable`` plan.
    cut
        Values ``< cut`` are of no interest to the caller (for FRACTIONAL,
        ``0.5 / max``: stored as 0).
    slab_values
        Frames per yielded slab: at most ``slab_values // (R * C)`` (at least 1).

    Returns
    -------
    callable or None
        ``None`` when the plan is not axis-aligned or a channel holds NaN/inf
        (the caller keeps the full computation, whose errors depend on every
        voxel). Else a zero-argument callable returning a fresh iterator
        (the supports are found once, here) of ``(channel, first_frame, stop_frame,
        rows, columns, values)``: ``values`` ``(stop - first, rows, columns)
        float32`` on the source box ``rows``/``columns`` (slices); source
        voxels never yielded are below ``cut`` (out-of-field ones are 0).
    """
    if array.ndim != 4:
        raise InputError(f"array must be (S, X, Y, Z); got shape {array.shape}")
    if plan.kind not in ("exact", "separable"):
        return None
    _require_axes(plan)
    bound = float(cut) * (1.0 - _SUPPORT_MARGIN)
    boxes = []
    for channel in array:  # class by class: one model-sized bool temporary at a time
        box = _support_box(channel, bound)
        if isinstance(box, str):
            return None
        boxes.append(box)
    maps = _axis_maps(plan, mode)
    moved = np.transpose(array, (0, *(1 + a for a in plan.axes)))  # type: ignore[union-attr]  # _require_axes(plan) above raises when plan.axes is None
    _, rows, columns = plan.source_shape
    step = max(1, int(slab_values) // max(1, rows * columns))

    def slabs() -> "Iterator[tuple[int, int, int, slice, slice, np.ndarray]]":
        for index, box in enumerate(boxes):
            if box is None:
                continue
            ranges = [_source_range(m, *box[plan.axes[axis]]) for axis, m in enumerate(maps)]  # type: ignore[index]  # _require_axes(plan) above raises when plan.axes is None
            if any(r is None for r in ranges):
                continue
            (first, stop), row_range, column_range = ranges  # type: ignore[misc]  # no range is None here (skipped on the line above)
            for start in range(first, stop, step):
                end = min(start + step, stop)
                values = _box_values(moved[index], maps, [(start, end), row_range, column_range])  # type: ignore[list-item]  # no range is None here (skipped above)
                yield index, start, end, slice(*row_range), slice(*column_range), values  # type: ignore[misc]  # no range is None here (skipped above)

    return slabs


# --------------------------------------------------------------------------- argmax


def _uniform_cells(labels: np.ndarray) -> np.ndarray:
    """True where the 2x2x2 cell starting at a voxel has one label (edge-replicated)."""
    padded = np.pad(labels, [(0, 1)] * 3, mode="edge")
    base = padded[:-1, :-1, :-1]
    uniform = np.ones(labels.shape, dtype=bool)
    for df in (0, 1):
        for dr in (0, 1):
            for dc in (0, 1):
                if df or dr or dc:
                    uniform &= padded[df:df + labels.shape[0], dr:dr + labels.shape[1],
                                      dc:dc + labels.shape[2]] == base
    return uniform


_ARGMAX_BLOCK = 1 << 15
"""Voxels per block of :func:`channel_argmax` (running maximum and mask stay in the CPU cache)."""


def channel_argmax(values: np.ndarray) -> np.ndarray:
    """``argmax`` over axis 0 of ``(S, ...)`` as a running maximum (fast for channel-first arrays).

    Works in blocks of :data:`_ARGMAX_BLOCK` voxels so the running maximum
    stays in cache while the channels stream past (one read of ``values``,
    no temporaries). Ties go to the first channel, as ``numpy.argmax``.
    """
    channels = values.shape[0]
    flat = values.reshape(channels, -1)
    count = flat.shape[1]
    index = np.zeros(count, dtype=np.int32 if channels > 32767 else np.int16)
    best = np.empty(min(_ARGMAX_BLOCK, count), dtype=np.float64 if values.dtype == np.float64 else np.float32)
    greater = np.empty(best.shape, dtype=bool)
    for start in range(0, count, _ARGMAX_BLOCK):
        stop = min(start + _ARGMAX_BLOCK, count)
        size = stop - start
        running, mask, part = best[:size], greater[:size], index[start:stop]
        running[...] = flat[0, start:stop]
        for channel in range(1, channels):
            row = flat[channel, start:stop]
            np.greater(row, running, out=mask)
            np.copyto(running, row, where=mask)
            np.copyto(part, channel, where=mask)
    return index.reshape(values.shape[1:])


def _take3(array: np.ndarray, first: np.ndarray, second: np.ndarray, third: np.ndarray) -> np.ndarray:
    """``array[np.ix_(first, second, third)]`` by three contiguous takes (much faster).

    The last axis is expanded first, while the array is still small; the
    frame axis last, which copies whole planes.
    """
    return np.take(np.take(np.take(array, third, axis=2), second, axis=1), first, axis=0)


def _axis_members(low: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices grouped by model cell along one axis.

    Returns ``(order, starts, counts)``: the source indices whose low corner
    is ``i`` are ``order[starts[i]:starts[i] + counts[i]]``.
    """
    order = np.argsort(low, kind="stable")
    counts = np.bincount(low, minlength=size)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return order, starts, counts


def _boundary_voxels(uniform: np.ndarray, lows: Sequence[np.ndarray]
                     ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray, tuple[np.ndarray, ...]]:
    """Source voxels whose surrounding model cell is not uniform, enumerated cell by cell.

    Parameters
    ----------
    uniform
        ``(X', Y', Z')`` bool cells (model grid in source-axis order).
    lows
        Per source axis, the low model index of every source index.

    Returns
    -------
    tuple
        ``((f, r, c) source indices, cell of each voxel (index into cells), cells (i, j, k))``.
        The same voxels as ``np.nonzero(~_take3(uniform, *lows))`` without
        building the full-size mask.
    """
    members = [_axis_members(low, size) for low, size in zip(lows, uniform.shape)]
    cells = np.nonzero(~uniform)
    sizes = [members[axis][2][cells[axis]] for axis in range(3)]
    per_cell = sizes[0] * sizes[1] * sizes[2]
    keep = per_cell > 0
    cells = tuple(c[keep] for c in cells)
    sizes = [size[keep] for size in sizes]
    per_cell = per_cell[keep]
    total = int(per_cell.sum())
    cell_of = np.repeat(np.arange(per_cell.size, dtype=np.int64), per_cell)
    offset = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(per_cell) - per_cell, per_cell)
    plane = (sizes[1] * sizes[2])[cell_of]
    first = offset // plane
    offset -= first * plane
    columns = sizes[2][cell_of]
    second = offset // columns
    third = offset - second * columns
    voxels = []
    for axis, within in enumerate((first, second, third)):
        order, starts, _ = members[axis]
        voxels.append(order[starts[cells[axis]][cell_of] + within])
    return (voxels[0], voxels[1], voxels[2]), cell_of, cells


def _interpolate_boundary(probabilities: np.ndarray, plan: GridPlan, linear: tuple, boundary: tuple,
                          lookup: np.ndarray, result: np.ndarray, chunk: int) -> None:
    """Exact trilinear argmax at ``boundary`` source voxels (in place in ``result``).

    Only the model voxels that are corners of boundary cells are gathered
    into a compact ``(K, S)`` table, so no channel-last copy of the whole
    output is made.
    """
    import torch  # multi-threaded gathers and multiply-adds (the MONAI layer depends on torch)

    _require_axes(plan)
    shape = probabilities.shape[1:]
    strides = np.array([shape[1] * shape[2], shape[2], 1], dtype=np.int64)
    axis_strides = [int(strides[a]) for a in plan.axes]  # type: ignore[union-attr]  # _require_axes(plan) above raises when plan.axes is None
    # linear model index of each of the 8 corners of every boundary voxel
    corners = []
    weights = []
    for (low, high, weight, _), points, stride in zip(linear, boundary, axis_strides):
        corners.append((low[points].astype(np.int64) * stride, high[points].astype(np.int64) * stride))
        weights.append((1.0 - weight[points], weight[points]))
    needed = np.zeros(int(np.prod(shape)), dtype=bool)
    combos = [(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)]
    for a, b, c in combos:
        needed[corners[0][a] + corners[1][b] + corners[2][c]] = True
    table_index = np.flatnonzero(needed)
    position = np.full(needed.size, -1, dtype=np.int64)
    position[table_index] = np.arange(table_index.size)
    flat = torch.from_numpy(np.ascontiguousarray(probabilities).reshape(probabilities.shape[0], -1))
    table = flat.index_select(1, torch.from_numpy(table_index)).t().to(torch.float32).contiguous()
    count = boundary[0].size
    gathered = torch.empty((min(chunk, count), table.shape[1]), dtype=torch.float32)
    for begin in range(0, count, chunk):
        part = slice(begin, min(begin + chunk, count))
        total = torch.zeros((part.stop - part.start, table.shape[1]), dtype=torch.float32)
        buffer = gathered[: part.stop - part.start]
        for a, b, c in combos:
            rows = torch.from_numpy(position[corners[0][a][part] + corners[1][b][part] + corners[2][c][part]])
            w = torch.from_numpy((weights[0][a][part] * weights[1][b][part] * weights[2][c][part]).astype(np.float32))
            torch.index_select(table, 0, rows, out=buffer)
            total.addcmul_(w[:, None], buffer)
        winners = np.argmax(total.numpy(), axis=1)
        result[tuple(points[part] for points in boundary)] = lookup[winners]


_COMBOS = [(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)]
_MARGIN = 1e-5
"""Relative margin by which a shortcut decision must win (float32 rounding of either sum is ~1e-7)."""
_NO_BOUND = np.float32(1e30)
"""Stands for "no non-candidate channel" (finite, so that 0 * bound stays 0)."""


def _cell_candidates(probabilities: np.ndarray, index: np.ndarray, corner: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Candidate channels of cells, their corner values and the bound on every other channel.

    Parameters
    ----------
    probabilities
        ``(S, X, Y, Z)``.
    index
        ``(X, Y, Z)`` argmax channel of every model voxel.
    corner
        ``(n, 8)`` linear model index of the corners of ``n`` cells.

    Returns
    -------
    tuple
        ``candidates`` ``(n, w)`` distinct corner argmax channels, ascending,
        padded with -1; ``values`` ``(n, 8, w) float32`` their corner values
        (0 where padded); ``bounds`` ``(n, 8) float32`` the largest value of
        a non-candidate channel at each corner (-1e30 when there is none);
        ``scale``, the largest magnitude among them.
    """
    import torch

    channels = probabilities.shape[0]
    count = corner.shape[0]
    corner_channels = np.sort(index.reshape(-1)[corner], axis=1).astype(np.int64)
    fresh = np.ones(corner_channels.shape, dtype=bool)
    fresh[:, 1:] = corner_channels[:, 1:] != corner_channels[:, :-1]
    slot = np.cumsum(fresh, axis=1) - 1
    width = int(slot[:, -1].max()) + 1
    candidates = np.full((count, width), -1, dtype=np.int64)
    candidates[np.arange(count)[:, None], slot] = corner_channels
    flat = probabilities.reshape(channels, -1)
    values = flat[np.maximum(candidates, 0)[:, None, :], corner[:, :, None]].astype(np.float32)  # (n, 8, w)
    values[np.broadcast_to((candidates < 0)[:, None, :], values.shape)] = 0.0
    # the top (w + 1) channels of a corner voxel hold its largest non-candidate channel
    unique, inverse = np.unique(corner, return_inverse=True)
    inverse = inverse.reshape(corner.shape)
    table = torch.from_numpy(np.ascontiguousarray(flat)).index_select(1, torch.from_numpy(unique))
    top_k = torch.topk(table, min(width + 1, channels), dim=0)  # (k, T) descending
    top_values = top_k.values.t().contiguous().numpy()[inverse]  # (n, 8, k)
    top_channels = top_k.indices.t().contiguous().numpy()[inverse]
    outside = ~(top_channels[..., None] == candidates[:, None, None, :]).any(axis=-1)
    first = np.argmax(outside, axis=-1)[..., None]
    bounds = np.take_along_axis(top_values, first, axis=-1)[..., 0].astype(np.float32)
    none = ~outside.any(axis=-1)  # every channel is a candidate of that cell
    scale = max(float(np.abs(values).max()), float(np.abs(bounds[~none]).max(initial=0.0)))
    bounds[none] = -_NO_BOUND
    return candidates, values, bounds, scale


def _decide_by_candidates(probabilities: np.ndarray, plan: GridPlan, linear: tuple,
                          boundary: tuple, cell_of: np.ndarray, cells: tuple, index: np.ndarray,
                          lookup: np.ndarray, result: np.ndarray, chunk: int,
                          cell_block: int = 32768) -> np.ndarray:
    """Trilinear argmax at boundary voxels from a few candidate channels per cell.

    Every boundary voxel lies in a model cell whose 8 corners disagree on
    their argmax. The candidates are those corner argmax channels (usually
    two); every other channel is bounded at each corner by the largest value
    of a non-candidate channel there, so its interpolated value is at most
    the interpolated bound (the weights are >= 0). Where the best candidate
    beats both the runner-up candidate and that bound by a clear margin
    (:data:`_MARGIN`, relative), it is the argmax of the full interpolation;
    the other voxels (near ties) are left for the full computation.

    (About 70 lines on purpose: the block and chunk loops share the per-cell
    tables; split, they would pass eight arrays between helpers.)

    ``boundary`` voxels must be grouped by cell (``cell_of`` non-decreasing),
    as :func:`_boundary_voxels` gives them.

    Returns
    -------
    numpy.ndarray
        ``(K,) bool``: boundary voxels not decided here.
    """
    _require_axes(plan)
    shape = probabilities.shape[1:]
    strides = np.array([shape[1] * shape[2], shape[2], 1], dtype=np.int64)
    axis_strides = [int(strides[a]) for a in plan.axes]  # type: ignore[union-attr]  # _require_axes(plan) above raises when plan.axes is None
    sizes = [shape[a] for a in plan.axes]  # type: ignore[union-attr]  # _require_axes(plan) above raises when plan.axes is None
    axis_weights = []
    for (_, _, weight, _), points in zip(linear, boundary):
        w = weight[points]
        axis_weights.append((1.0 - w, w))
    total = boundary[0].size
    undecided = np.zeros(total, dtype=bool)
    first_voxel = np.searchsorted(cell_of, np.arange(0, cells[0].size + cell_block, cell_block))
    for block, begin_cell in enumerate(range(0, cells[0].size, cell_block)):
        block_cells = slice(begin_cell, min(begin_cell + cell_block, cells[0].size))
        ends = []
        for axis in range(3):
            low = cells[axis][block_cells].astype(np.int64)
            high = np.minimum(low + 1, sizes[axis] - 1)
            ends.append((low * axis_strides[axis], high * axis_strides[axis]))
        corner = np.stack([ends[0][a] + ends[1][b] + ends[2][c] for a, b, c in _COMBOS], axis=1)  # (n, 8)
        candidates, values, bounds, scale = _cell_candidates(probabilities, index, corner)
        padded = candidates < 0
        margin = _MARGIN * scale
        voxels_end = int(first_voxel[block + 1]) if block + 1 < first_voxel.size else total
        for begin in range(int(first_voxel[block]), min(voxels_end, total), chunk):
            part = slice(begin, min(begin + chunk, voxels_end, total))
            cell = cell_of[part] - begin_cell
            weights = np.stack([axis_weights[0][a][part] * axis_weights[1][b][part] * axis_weights[2][c][part]
                                for a, b, c in _COMBOS], axis=1)  # (k, 8) float32, as in the full sum
            scores = np.einsum("kc,kcm->mk", weights, values[cell])  # (w, k)
            scores[padded[cell].T] = -np.inf
            bound = np.einsum("kc,kc->k", weights, bounds[cell])
            # best (first on ties) and runner-up over the few candidate rows
            top = scores[0].copy()
            best = np.zeros(top.shape, dtype=np.intp)
            second = np.full(top.shape, -np.inf, dtype=scores.dtype)
            for slot in range(1, scores.shape[0]):
                row = scores[slot]
                better = row > top
                np.maximum(second, np.where(better, top, row), out=second)
                np.copyto(top, row, where=better)
                best[better] = slot
            decided = (top - second > margin) & (top - bound > margin)
            chosen = candidates[cell[decided], best[decided]]
            result[tuple(points[part][decided] for points in boundary)] = lookup[chosen]
            undecided[part] = ~decided
    return undecided


def argmax_on_grid(probabilities: np.ndarray, plan: GridPlan, lookup: np.ndarray,
                   chunk: int = 262144) -> np.ndarray:
    """Label map on the source grid: argmax of the *linearly* resampled probabilities.

    Parameters
    ----------
    probabilities
        ``(S, X, Y, Z)`` float (softmax output, background channel included if any).
    plan
        From :func:`plan_grid_mapping`.
    lookup
        ``(S,)`` integer: label value written for each winning channel (0 for background).
    chunk
        Voxels interpolated at once on class boundaries.

    Returns
    -------
    numpy.ndarray
        ``(F, R, C)`` of ``lookup.dtype``; out-of-field voxels are 0.

    Notes
    -----
    Separable plans: the argmax is taken on the model grid; source voxels
    whose model cell has one argmax at all 8 corners get it (exact, see the
    module docstring); the others are decided from their cell's candidate
    channels (:func:`_decide_by_candidates`) and, for near ties only, by
    the full trilinear interpolation of every channel.
    """
    lookup = np.asarray(lookup)
    if plan.kind == "exact":
        return map_exact(lookup[channel_argmax(probabilities)], plan)
    if plan.kind == "general":
        result = np.zeros(plan.source_shape, dtype=lookup.dtype)
        for start, stop, values in iter_linear_slabs(probabilities, plan):
            slab = lookup[np.argmax(values, axis=0)]
            slab[values.max(axis=0) <= 0] = 0  # out of field
            result[start:stop] = slab
        return result
    _require_axes(plan)
    index = channel_argmax(probabilities)
    moved_index = np.transpose(index, plan.axes)
    uniform = _uniform_cells(moved_index)
    linear = tuple(_linear_index(plan, axis) for axis in range(3))
    result = _take3(np.transpose(lookup[index], plan.axes), linear[0][0], linear[1][0], linear[2][0])
    boundary, cell_of, cells = _boundary_voxels(uniform, [low for low, _, _, _ in linear])
    if boundary[0].size:
        undecided = _decide_by_candidates(probabilities, plan, linear, boundary, cell_of, cells, index,
                                          lookup, result, chunk)
        if undecided.any():
            rest = tuple(points[undecided] for points in boundary)
            _interpolate_boundary(probabilities, plan, linear, rest, lookup, result, chunk)
    inside = linear[0][3][:, None, None] & linear[1][3][None, :, None] & linear[2][3][None, None, :]
    if not inside.all():
        result[~inside] = 0
    return result
