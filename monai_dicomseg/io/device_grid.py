"""Resampling, quantisation and discretisation in torch, slab by slab, on the tensor's device.

The numpy resampling of :mod:`monai_dicomseg.io.grid` works one channel at a
time on host arrays. This module does the same per-voxel float32 arithmetic
(``a + (b - a) * w`` per axis, frames then rows then columns; a gather for
nearest and exact plans) for *all* channels of a slab of source frames at
once, with torch's multi-threaded kernels, on whatever device the model
output lives (a numpy array is wrapped by :func:`torch.from_numpy`, no copy).
Only the result crosses to host memory, slab by slab:

* FRACTIONAL: ``rint(clip(v, 0, 1) * max)`` as ``uint8`` (PS3.3 C.8.20.2.3),
  the stored values themselves (:func:`fractional_source`);
* threshold masks ``v >= threshold`` (:func:`threshold_source`);
* argmax label maps and nearest label copies (:func:`argmax_labels`,
  :func:`nearest_labels`).

Element-wise float32 ``sub``/``mul``/``add`` are correctly rounded in torch
and numpy alike (separate kernels, no fused multiply-add), so the values, and
the stored bytes, equal those of the numpy path. Per class, only the source
box a class can reach ``0.5 / 255`` in (see
:func:`~monai_dicomseg.io.grid.iter_support_slabs`) is computed; a slab
computes the classes whose box it meets, on the union of their boxes, so a
confident softmax (small supports) and an uncertain one (every class
everywhere: one pass over the model grid per slab, not per class) take the
same code.

torch is imported only when these functions run (the light install never
calls them: :func:`available` is False there).
"""
from __future__ import annotations

import importlib.util
import os
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from monai_dicomseg.errors import InputError
from monai_dicomseg.geometry.grid_plan import GridPlan
from monai_dicomseg.io.grid import _axis_maps, _source_range, _support_box
from monai_dicomseg.seg.inputs import StackedSegmentSource

__all__ = ["available", "is_tensor", "as_tensor", "fractional_source", "threshold_source", "argmax_labels",
           "nearest_labels", "support_boxes", "SLAB_VALUES"]

SLAB_VALUES = 1 << 19
"""Source-grid float32 values computed at once (512 K: 2 MB, so the temporaries of one step stay in cache)."""

_SUPPORT_MARGIN = 1e-3
"""As :data:`monai_dicomseg.io.grid._SUPPORT_MARGIN`: float32 interpolation cannot cross ``cut * (1 - 1e-3)``."""


def available() -> bool:
    """Whether torch is installed (the light install takes the numpy path)."""
    return importlib.util.find_spec("torch") is not None


def is_tensor(value: Any) -> bool:
    """Whether ``value`` is a ``torch.Tensor`` (without importing torch when it is not loaded)."""
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def as_tensor(array: Any) -> Any:
    """``array`` as a plain torch tensor without a copy (a MetaTensor's data, a numpy array wrapped)."""
    import torch

    if isinstance(array, torch.Tensor):
        tensor = array.detach()
        return tensor.as_tensor() if hasattr(tensor, "as_tensor") else tensor
    array = np.asarray(array)
    return torch.from_numpy(array.view(np.uint8) if array.dtype == bool else array)


FORCE_TORCH = False
"""Run the torch kernels on CPU tensors too (tests: the code a GPU tensor takes, on a CPU)."""


def on_host(array: Any) -> "np.ndarray | None":
    """A numpy view of ``array`` when its memory is host memory (numpy, CPU tensor: no copy), else None.

    On the host, numpy's contiguous takes and slices beat torch's CPU
    gathers; on a GPU, torch runs there and only results cross.
    """
    if not is_tensor(array):
        return np.asarray(array)
    tensor = as_tensor(array)
    if tensor.device.type != "cpu" or FORCE_TORCH:
        return None
    return tensor.numpy()


# --------------------------------------------------------------------------- supports


def support_boxes(channels: Any, cut: float) -> "list[list[tuple[int, int]] | None] | None":
    """Per channel of ``(S, X, Y, Z)``, the inclusive model-grid box of ``value >= cut * (1 - 1e-3)``.

    Returns None when a channel holds NaN/inf (the caller keeps the numpy
    path, whose errors depend on every voxel); a channel's entry is None
    when no voxel reaches the bound.
    """
    bound = float(cut) * (1.0 - _SUPPORT_MARGIN)
    boxes: "list[list[tuple[int, int]] | None]" = []
    for channel in channels:
        box = _support_box(channel, bound) if isinstance(channel, np.ndarray) else _torch_box(channel, bound)
        if isinstance(box, str):
            return None
        boxes.append(box)
    return boxes


def _torch_box(channel: Any, bound: float) -> "list[tuple[int, int]] | None | str":
    import torch

    if channel.dtype.is_floating_point:
        low, high = torch.aminmax(channel)
        if not (torch.isfinite(low) and torch.isfinite(high)):
            return "nonfinite"
    mask = channel >= bound
    box = []
    for axis in range(3):
        hit = torch.nonzero(mask.any(dim=tuple(a for a in range(3) if a != axis))).flatten()
        if hit.numel() == 0:
            return None
        box.append((int(hit[0]), int(hit[-1])))
    return box


def _source_boxes(boxes: list, grid: GridPlan, maps: list) -> "list[tuple[tuple[int, int], ...] | None]":
    """Source ``[(f0, f1), (r0, r1), (c0, c1)]`` half-open ranges each channel's box reaches (None: nowhere)."""
    result: list[tuple[tuple[int, int], ...] | None] = []
    for box in boxes:
        if box is None:
            result.append(None)
            continue
        ranges = [_source_range(m, *box[grid.axes[axis]]) for axis, m in enumerate(maps)]  # type: ignore[index]  # callers pass an axis-aligned plan (grid.axes is set)
        result.append(None if any(r is None for r in ranges) else tuple(ranges))  # type: ignore[arg-type]  # no range is None when the tuple is built (any() above)
    return result


# --------------------------------------------------------------------------- the slab kernel


class _Resampler:
    """Per-axis model indices / weights of an axis-aligned plan and the slab computation.

    ``channels`` is a numpy array (host: numpy takes and strided slices) or
    a torch tensor (its device: ``index_select``).
    """

    def __init__(self, channels: Any, grid: GridPlan, mode: str) -> None:
        if grid.axes is None:
            raise InputError(f"device resampling needs an axis-aligned (exact or separable) plan; got {grid.kind!r}")
        self.host = isinstance(channels, np.ndarray)
        self.channels = channels
        self.groups: "dict[tuple, Any]" = {}  # the weight groups of an axis range, found once
        self.contiguous: "np.ndarray | None" = None
        if self.host:
            self.moved = np.transpose(channels, (0, *(1 + a for a in grid.axes)))
        else:
            import torch

            self.torch = torch
            self.device = channels.device
            self.moved = channels.permute(0, *(1 + a for a in grid.axes))  # (S, X', Y', Z'): source-axis order
        self.maps = _axis_maps(grid, mode)
        self.grid = grid

    def values(self, classes: "list[int] | None", ranges: "list[tuple[int, int]]") -> Any:
        """``(k, f, r, c) float32`` values of ``classes`` (None: all) on a source box (numpy or a device tensor).

        Voxel for voxel the arithmetic of :func:`~monai_dicomseg.io.grid.iter_linear_slabs` /
        :func:`~monai_dicomseg.io.grid.map_exact` / ``map_nearest`` (out of field: 0).
        """
        return self.finish(self.frames(classes, ranges), ranges)

    def _axis_maps(self, ranges: "list[tuple[int, int]]") -> "tuple[list[slice], list[tuple]]":
        window, axis_maps = [], []
        for (low, high, weight, valid), (start, stop) in zip(self.maps, ranges):
            low, high = low[start:stop], high[start:stop]
            first, last = int(low.min()), int(high.max())
            window.append(slice(first, last + 1))
            axis_maps.append((low - first, high - first, None if weight is None else weight[start:stop],
                              valid[start:stop]))
        return window, axis_maps

    def frames(self, classes: "list[int] | None", ranges: "list[tuple[int, int]]") -> Any:
        """First step: ``(k, f, Y'', X'')`` float32, frames interpolated, on the model window of the box."""
        window, axis_maps = self._axis_maps(ranges)
        if not self.host:
            return self._device_values(self.moved[(slice(None),) + tuple(window)], classes, axis_maps[:1], 0)
        values = self._source_order()[(slice(None),) + tuple(window)]
        if classes is not None:
            values = values[classes[0]:classes[-1] + 1] if classes == list(range(classes[0], classes[-1] + 1)) \
                else np.take(values, classes, axis=0)
        values = np.ascontiguousarray(values)
        low, _, weight, _ = axis_maps[0]
        return _host_axis(values, 1, low, weight, self._groups(0, ranges[0], low, weight))

    def prepare(self, threads: int = 1) -> None:
        """Make the shared state slabs read (the host model copy, ``threads`` channels at a time) now, before
        threads compute slabs."""
        if self.host and self.contiguous is None:
            moved = self.moved
            contiguous = np.empty(moved.shape, dtype=np.float32)

            def copy(index: int) -> None:
                _tiled_copy(contiguous[index], moved[index])

            _run_all(copy, range(moved.shape[0]), threads)
            self.contiguous = contiguous

    def _source_order(self) -> np.ndarray:
        """The model output as float32 in source-axis order, made once, a channel at a time (one model-sized
        copy: every slab then reads contiguous planes instead of striding through the model's own order)."""
        if self.contiguous is None:
            moved = self.moved
            self.contiguous = np.empty(moved.shape, dtype=np.float32)
            for index in range(moved.shape[0]):
                _tiled_copy(self.contiguous[index], moved[index])
        return self.contiguous

    def _groups(self, axis: int, span: "tuple[int, int]", low: np.ndarray, weight: "np.ndarray | None") -> Any:
        key = (axis, *span)
        if key not in self.groups:
            self.groups[key] = None if weight is None else _weight_groups(low, weight)
        return self.groups[key]

    def finish(self, values: Any, ranges: "list[tuple[int, int]]") -> Any:
        """Rows, then columns, then the field of view, on ``frames()``'s result for the same box."""
        _, axis_maps = self._axis_maps(ranges)
        if self.host:
            for axis, (low, _, weight, _) in enumerate(axis_maps[1:], start=2):
                values = _host_axis(values, axis, low, weight, self._groups(axis - 1, ranges[axis - 1], low, weight))
        else:
            values = self._device_values(values, None, axis_maps[1:], 1)
        inside = axis_maps[0][3][:, None, None] & axis_maps[1][3][None, :, None] & axis_maps[2][3][None, None, :]
        if not inside.all():
            if self.host:
                values *= inside
            else:
                values.mul_(self.torch.from_numpy(inside.astype(np.float32)).to(self.device)[None])
        return values

    def _device_values(self, values: Any, classes: "list[int] | None", axis_maps: list, first: int) -> Any:
        torch = self.torch
        if classes is not None:
            values = values.index_select(0, torch.tensor(classes, device=self.device))
        values = values.contiguous()
        for axis, (low, high, weight, _) in enumerate(axis_maps, start=first):
            a = values.index_select(axis + 1, torch.from_numpy(low.astype(np.int64)).to(self.device))
            a = a.to(torch.float32)
            if weight is None:  # a gather (exact plans, nearest)
                values = a
                continue
            b = values.index_select(axis + 1, torch.from_numpy(high.astype(np.int64)).to(self.device))
            shape = [1, 1, 1, 1]
            shape[axis + 1] = -1
            b = b.to(torch.float32).sub_(a)
            b.mul_(torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32)).to(self.device).view(shape))
            values = a.add_(b)
        return values


_TILE = 16
"""Edge of the tiles :func:`_tiled_copy` copies a transposed channel in."""


def _tiled_copy(out: np.ndarray, view: np.ndarray) -> None:
    """``out[...] = view`` for a 3-D (transposed) view, in ``_TILE`` x ``_TILE`` tiles of its first and last
    axes: both arrays' cache lines are reused within a tile (a plain copy of a reversed-axes view strides
    through memory and runs about 1.7x slower)."""
    first, _, last = view.shape
    for i in range(0, first, _TILE):
        for k in range(0, last, _TILE):
            out[i:i + _TILE, :, k:k + _TILE] = view[i:i + _TILE, :, k:k + _TILE]


_MAX_GROUPS = 32
"""Distinct weights along an axis up to which :func:`_host_axis` writes strided slices instead of gathering."""


def _host_axis(values: np.ndarray, axis: int, low: np.ndarray, weight: "np.ndarray | None",
               groups: Any = ...) -> np.ndarray:
    """``a + (b - a) * w`` along ``axis`` of contiguous float32 ``values`` (``a = v[low]``, ``b = v[high]``).

    ``b - a`` is the neighbour difference ``d[low]`` (``v[i + 1] - v[i]``,
    0 at the last index, where ``high = low``): the same float32 numbers.
    Output positions sharing a weight whose ``low`` advances by one while the
    position advances by a constant step (any integer zoom) are computed on
    strided slices, with no gather; the rest are gathered.
    """
    if weight is None:
        return np.take(values, low, axis=axis)
    size = values.shape[axis]
    lead = (slice(None),) * axis
    diff = np.zeros_like(values)
    if size > 1:
        np.subtract(values[lead + (slice(1, None),)], values[lead + (slice(0, -1),)],
                    out=diff[lead + (slice(0, -1),)])
    shape = list(values.shape)
    shape[axis] = low.size
    out = np.empty(shape, dtype=np.float32)
    groups = _weight_groups(low, weight) if groups is ... else groups
    if groups is None:
        a = np.take(values, low, axis=axis)
        b = np.take(diff, low, axis=axis)
        wshape = [1] * values.ndim
        wshape[axis] = -1
        b *= weight.reshape(wshape)
        np.add(a, b, out=out)
        return out
    for w, positions, sources in groups:
        target = lead + (positions,)
        product = diff[lead + (sources,)] * w
        if isinstance(positions, slice):  # a strided view of out: written in place
            np.add(values[lead + (sources,)], product, out=out[target])
        else:  # index arrays: out[target] would be a copy, never written back
            out[target] = values[lead + (sources,)] + product
    return out


def _weight_groups(low: np.ndarray, weight: np.ndarray) -> "list[tuple[np.float32, Any, Any]] | None":
    """Output positions sharing one weight: unit-step source slices where they form one (strided slices), else
    index arrays; None (gather everything) when there are many weights or most positions need a gather."""
    values, inverse = np.unique(weight, return_inverse=True)
    if values.size > _MAX_GROUPS:
        return None
    groups: "list[tuple[np.float32, Any, Any]]" = []
    gathered = 0
    for index, w in enumerate(values):
        positions = np.flatnonzero(inverse == index)
        sources = low[positions]
        step = int(positions[1] - positions[0]) if positions.size > 1 else 1
        if step > 0 and np.all(np.diff(positions) == step) and np.all(np.diff(sources) == 1):
            groups.append((w, slice(int(positions[0]), int(positions[-1]) + 1, step),
                           slice(int(sources[0]), int(sources[-1]) + 1)))
        else:
            groups.append((w, positions, sources))
            gathered += positions.size
    return None if gathered * 4 > low.size else groups


def _slab_plan(ranges: list, frames: int, rows: int, columns: int, slab_values: int
               ) -> Iterator[tuple[int, int, list[int], tuple[int, int], tuple[int, int]]]:
    """``(f0, f1, active channels, rows, columns)`` slabs covering every channel's source box."""
    start = 0
    while start < frames:
        active = [i for i, r in enumerate(ranges) if r is not None and r[0][0] <= start < r[0][1]]
        if not active:
            later = [r[0][0] for r in ranges if r is not None and r[0][0] > start]
            if not later:
                return
            start = min(later)
            continue
        row_range = (min(ranges[i][1][0] for i in active), max(ranges[i][1][1] for i in active))
        column_range = (min(ranges[i][2][0] for i in active), max(ranges[i][2][1] for i in active))
        per_frame = len(active) * (row_range[1] - row_range[0]) * (column_range[1] - column_range[0])
        stop = min(frames, start + max(1, slab_values // max(1, per_frame)))
        # a slab ends where the set of channels it computes would change
        edges = [e for i, r in enumerate(ranges) if r is not None
                 for e in (r[0][0], r[0][1]) if start < e < stop]
        stop = min([stop, *edges])
        yield start, stop, active, row_range, column_range
        start = stop


class _Blocks:
    """Source-grid slabs of the ``selected`` channels of ``channels`` ``(K, X, Y, Z)``, each on its support."""

    def __init__(self, channels: Any, selected: "list[int]", grid: GridPlan, mode: str, boxes: list,
                 slab_values: int) -> None:
        self.resampler = _Resampler(channels, grid, mode)
        self.channels = channels
        self.selected = [int(c) for c in selected]
        self.grid = grid
        self.slab_values = slab_values
        self.ranges = _source_boxes(boxes, grid, self.resampler.maps)

    def plan(self) -> "list[tuple[int, int, list[int], tuple[int, int], tuple[int, int]]]":
        """The slabs ``(f0, f1, active channels, rows, columns)`` (see :func:`_slab_plan`), each one block."""
        frames, rows, columns = self.grid.source_shape
        return list(_slab_plan(self.ranges, frames, rows, columns, self.slab_values))

    def slab(self, f0: int, f1: int, active: list, row_range: tuple, column_range: tuple
             ) -> Iterator[tuple[list, Any]]:
        """``(channels, values)`` parts of one slab: float32 values (numpy / device) of a few active channels."""
        chunk = max(1, len(active) * self.slab_values // max(1, _volume(f0, f1, row_range, column_range,
                                                                           len(active))))
        ranges = [(f0, f1), row_range, column_range]
        staged = self.resampler.frames([self.selected[i] for i in active], ranges)  # all classes at once
        for begin in range(0, len(active), chunk):  # then a few classes at a time: temporaries stay small
            yield active[begin:begin + chunk], self.resampler.finish(staged[begin:begin + chunk], ranges)

    def slabs(self) -> Iterator[tuple[int, int, list, tuple[int, int], tuple[int, int], Any]]:
        """``(f0, f1, active, rows, columns, values)``: float32 values (numpy / device) of the active channels."""
        for f0, f1, active, row_range, column_range in self.plan():
            for part, values in self.slab(f0, f1, active, row_range, column_range):
                yield f0, f1, part, row_range, column_range, values

    def full_slabs(self) -> Iterator[Any]:
        """Float32 values of every channel on whole planes (for the Segments Overlap decision only)."""
        frames, rows, columns = self.grid.source_shape
        for start in range(frames):
            for first in range(0, len(self.selected), max(1, self.slab_values // max(1, rows * columns))):
                part = self.selected[first:first + max(1, self.slab_values // max(1, rows * columns))]
                yield self.resampler.values(part, [(start, start + 1), (0, rows), (0, columns)])


def _volume(f0: int, f1: int, row_range: tuple, column_range: tuple, count: int) -> int:
    return count * (f1 - f0) * (row_range[1] - row_range[0]) * (column_range[1] - column_range[0])


def _place(block: np.ndarray, active: list, row_range: tuple, column_range: tuple, result: np.ndarray) -> None:
    rows, columns = slice(*row_range), slice(*column_range)
    if len(active) == block.shape[0]:
        block[:, :, rows, columns] = result
    elif active == list(range(active[0], active[0] + len(active))):
        block[active[0]:active[0] + len(active), :, rows, columns] = result
    else:
        block[active, :, rows, columns] = result


def _target(block: np.ndarray, active: list, row_range: tuple, column_range: tuple) -> "np.ndarray | None":
    """The view of ``block`` that :func:`_place` would write ``active``'s values to (None: channels not a range)."""
    rows, columns = slice(*row_range), slice(*column_range)
    if active == list(range(active[0], active[0] + len(active))):
        return block[active[0]:active[0] + len(active), :, rows, columns]
    return None


def _is_fraction(values: Any) -> bool:
    return bool(((values != 0) & (values != 1)).any())


def _model_in_unit_range(channels: np.ndarray, selected: "list[int]") -> bool:
    """Whether every value of the ``selected`` host channels lies in [0, 1] (a probability: interpolation
    cannot leave the range by more than rounding)."""
    return all(bool(channels[c].min() >= 0.0) and bool(channels[c].max() <= 1.0) for c in selected)


def _model_has_fraction(channels: Any, selected: "list[int]") -> bool:
    return any(bool(((channels[c] > 0) & (channels[c] < 1)).any()) for c in selected)


def _clip(values: Any) -> Any:
    return np.clip(values, 0.0, 1.0, out=values) if isinstance(values, np.ndarray) else values.clamp_(0.0, 1.0)


def _host(values: Any) -> np.ndarray:
    return values if isinstance(values, np.ndarray) else values.cpu().numpy()


def _stored(values: Any, maximum: int) -> np.ndarray:
    """``rint(values * maximum)`` as uint8 on the host (values clipped to [0, 1]; the encoder's arithmetic)."""
    if isinstance(values, np.ndarray):
        values *= np.float32(maximum)
        return np.rint(values, out=values).astype(np.uint8)
    import torch

    return values.mul_(maximum).round_().to(torch.uint8).cpu().numpy()


def _gathered(blocks: "_Blocks", dtype: Any, finish: Any, finish_into: Any = None
              ) -> Iterator[tuple[int, int, int, int, np.ndarray]]:
    """Blocks ``(f0, f1, 0, S, values)`` of every selected channel, one per slab, in plane order.

    On the host the slabs are computed by :func:`slab_threads` threads (numpy
    releases the GIL in its loops), a few slabs ahead of the consumer, so its
    work (the encoder's scan, the frame store's writes) overlaps the next
    slabs' arithmetic; each block is a fresh array (a consumer may keep it).
    The values do not depend on the threads: each slab is computed whole by one.
    ``finish_into(values, view)``, when given, writes ``finish(values)`` of host values straight into the
    block's view (a contiguous range of channels), with no temporary and no copy.
    """
    frames, rows, columns = blocks.grid.source_shape
    count = len(blocks.selected)

    def compute(slab: tuple) -> tuple[int, int, int, int, np.ndarray]:
        f0, f1, _, row_range, column_range = slab
        block = np.zeros((count, f1 - f0, rows, columns), dtype=dtype)
        for part, values in blocks.slab(*slab):
            target = _target(block, part, row_range, column_range) if finish_into is not None else None
            if target is not None and isinstance(values, np.ndarray):
                finish_into(values, target)
            else:
                _place(block, part, row_range, column_range, finish(values))
        return f0, f1, 0, count, block

    threads = slab_threads() if blocks.resampler.host else 1
    if threads > 1:
        blocks.resampler.prepare(threads)  # the shared model copy, made once before the threads read it
    yield from _in_order(compute, blocks.plan(), threads)


def slab_threads() -> int:
    """Threads computing host slabs: the CPUs this process may run on, at most :data:`MAX_SLAB_THREADS`, and
    no more than torch's intra-op threads when torch is loaded (a DataLoader worker runs with 1: so do we)."""
    import sys

    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads"):
        cpus = min(cpus, int(torch.get_num_threads()))
    return max(1, min(MAX_SLAB_THREADS, cpus))


MAX_SLAB_THREADS = 4
"""Upper bound of :func:`slab_threads` (the slabs are memory-bound past a few threads)."""


def _run_all(work: Any, items: Any, threads: int) -> None:
    """``work(item)`` for every item, on ``threads`` threads (errors raised here)."""
    if threads <= 1:
        for item in items:
            work(item)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="monai_dicomseg-slab") as executor:
        for _ in executor.map(work, items):
            pass


def _in_order(compute: Any, items: list, threads: int) -> Iterator[Any]:
    """``compute(item)`` for each item, in order; with ``threads > 1`` computed that many (plus one) ahead."""
    if threads <= 1 or len(items) < 2:
        for item in items:
            yield compute(item)
        return
    from concurrent.futures import ThreadPoolExecutor

    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="monai_dicomseg-slab")
    try:
        pending = deque(executor.submit(compute, item) for item in items[:threads + 1])
        for item in items[threads + 1:]:
            done = pending.popleft().result()
            pending.append(executor.submit(compute, item))
            yield done
        while pending:
            yield pending.popleft().result()
    finally:  # also when the consumer stops early or a slab raised: nothing is left running
        executor.shutdown(wait=True, cancel_futures=True)


class _QuantizedBlocks:
    """One pass of stored FRACTIONAL values; ``fractional`` tells, after it, whether a value was a fraction.

    ``fractional`` is the decision of the float path over *every* source
    voxel: when no computed value was a fraction although the model output
    holds values strictly between 0 and 1, the remaining (not stored) voxels
    are computed until one is found.
    """

    def __init__(self, blocks: "_Blocks", maximum: int) -> None:
        self.blocks = blocks
        self.maximum = int(maximum)
        self.fractional = False
        self._unit_range = False

    def _finish(self, values: Any) -> np.ndarray:
        values = _clip(values)
        if not self.fractional and _is_fraction(values):
            self.fractional = True  # only ever set True: slab threads may race here, never back to False
        return _stored(values, self.maximum)

    def _finish_into(self, values: np.ndarray, out: np.ndarray) -> None:
        """:meth:`_finish` of host ``values``, written into the uint8 view ``out`` (no uint8 temporary, no copy).

        Clipping is skipped once a fraction has been seen when the model's values all lie in [0, 1]: linear
        interpolation then stays within a few float32 ulps of [0, 1], and ``rint(x * max)`` of such an ``x`` is
        the value of the clipped one (``rint`` of ``-tiny`` or ``max + tiny * max`` is ``0`` / ``max``)."""
        if not (self.fractional and self._unit_range):
            values = _clip(values)
            if not self.fractional and _is_fraction(values):
                self.fractional = True  # as in _finish: only ever set True
        values *= np.float32(self.maximum)
        out[...] = np.rint(values, out=values)  # float32 -> uint8 of whole numbers in [0, max]: exact

    def __iter__(self) -> Iterator[tuple[int, int, int, int, np.ndarray]]:
        host = self.blocks.resampler.host
        if host:
            self._unit_range = _model_in_unit_range(self.blocks.channels, self.blocks.selected)
        yield from _gathered(self.blocks, np.uint8, self._finish, self._finish_into if host else None)
        if not self.fractional and _model_has_fraction(self.blocks.channels, self.blocks.selected):
            self.fractional = any(_is_fraction(_clip(values)) for values in self.blocks.full_slabs())


def _blocks(array: Any, selected: "Sequence[int]", grid: GridPlan, mode: str, cut: float,
            slab_values: int) -> "_Blocks | None":
    host = on_host(array)
    channels = host if host is not None else as_tensor(array)
    selected = [int(c) for c in selected]
    boxes = support_boxes([channels[c] for c in selected], cut)
    if boxes is None:
        return None
    return _Blocks(channels, selected, grid, mode, boxes, slab_values)


def fractional_source(array: Any, selected: "Sequence[int]", grid: GridPlan, mode: str = "linear",
                      slab_values: int = SLAB_VALUES) -> "StackedSegmentSource | None":
    """FRACTIONAL segments: channels ``selected`` of ``array`` ``(K, X, Y, Z)`` on the source grid, quantised
    where the array lives (None when a channel holds NaN/inf: the caller keeps the numpy path and its errors).

    The returned source carries ``quantized(max_fractional_value)``: the
    encoder pulls ``uint8`` stored values (``rint(clip(v, 0, 1) * max)``,
    PS3.3 C.8.20.2.3) from it, all classes of a slab at once, instead of
    float blocks; the bytes equal those of the float blocks it also serves
    (the numpy path's values, clipped).
    """
    blocks = _blocks(array, selected, grid, mode, 0.5 / 255, slab_values)
    if blocks is None:
        return None
    frames, rows, columns = grid.source_shape
    source = StackedSegmentSource((frames, rows, columns, len(blocks.selected)), np.float32,
                                  lambda: _gathered(blocks, np.float32, lambda v: _host(_clip(v))))
    source.quantized = lambda maximum: _QuantizedBlocks(blocks, maximum)
    return source


def threshold_source(array: Any, selected: "Sequence[int]", grid: GridPlan, threshold: float,
                     mode: str = "linear", slab_values: int = SLAB_VALUES) -> "StackedSegmentSource | None":
    """Stacked masks ``value >= threshold`` of channels ``selected`` of ``array`` on the source grid (bool
    blocks; None when a channel holds NaN/inf)."""
    blocks = _blocks(array, selected, grid, mode, float(threshold), slab_values)
    if blocks is None:
        return None
    frames, rows, columns = grid.source_shape
    return StackedSegmentSource((frames, rows, columns, len(blocks.selected)), np.bool_,
                                lambda: _gathered(blocks, bool, lambda v: _host(v >= threshold)))


# --------------------------------------------------------------------------- label maps (device tensors)


def argmax_labels(array: Any, order: "Sequence[int]", grid: GridPlan, lookup: np.ndarray, mode: str = "linear",
                  floor: "float | None" = None, slab_values: int = SLAB_VALUES) -> np.ndarray:
    """``(F, R, C)`` label map: ``lookup[argmax]`` over channels ``order`` of a tensor resampled on its device.

    Linear mode interpolates every channel (the arithmetic of
    :func:`~monai_dicomseg.io.grid.iter_linear_slabs`) and takes the first
    maximum; only the label slab crosses to the host. ``floor``: a virtual
    last channel of that constant value (label 0), i.e. the best channel
    must reach it. Out-of-field voxels are 0.
    """
    import torch

    tensor = as_tensor(array)
    frames, rows, columns = grid.source_shape
    resampler = _Resampler(tensor, grid, mode)
    table = torch.from_numpy(np.asarray(lookup).astype(np.int64)).to(tensor.device)
    result = np.zeros(grid.source_shape, dtype=np.asarray(lookup).dtype)
    step = max(1, slab_values // max(1, len(order) * rows * columns))
    for start in range(0, frames, step):
        stop = min(start + step, frames)
        values = resampler.values([int(c) for c in order], [(start, stop), (0, rows), (0, columns)])
        best, winner = torch.max(values, dim=0)  # first maximum on ties, as numpy.argmax
        labels = table[winner]
        if floor is not None:
            labels[best < floor] = 0
        result[start:stop] = labels.to(torch.int32).cpu().numpy().astype(result.dtype)
    inside = _inside(resampler.maps)
    if not inside.all():
        result[~inside] = 0
    return result


def _inside(maps: list) -> np.ndarray:
    valid = [m[3] for m in maps]
    return valid[0][:, None, None] & valid[1][None, :, None] & valid[2][None, None, :]


def nearest_labels(labels: Any, grid: GridPlan, slab_values: int = SLAB_VALUES) -> np.ndarray:
    """Nearest copy of an integer ``(X, Y, Z)`` label tensor onto the source grid, as uint16 (out of field: 0)."""
    import torch

    tensor = as_tensor(labels)[None]
    frames, rows, columns = grid.source_shape
    resampler = _Resampler(tensor, grid, "nearest")
    result = np.zeros(grid.source_shape, dtype=np.uint16)
    step = max(1, slab_values // max(1, rows * columns))
    for start in range(0, frames, step):
        stop = min(start + step, frames)
        values = resampler.values(None, [(start, stop), (0, rows), (0, columns)])[0]
        result[start:stop] = values.to(torch.int32).cpu().numpy().astype(np.uint16)
    return result
