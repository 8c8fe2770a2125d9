"""Validation and normalisation of the ``pixel_array`` given to the writer.

Two input forms exist (guide, "Constructing Binary SEG Images with Multiple
Segments"):

* **label map** — ``(R, C)`` or ``(F, R, C)`` integer/bool array whose values
  are segment numbers (0 = no segment);
* **stacked segments** — ``(F, R, C, S)`` array, channel ``s - 1`` holding
  segment ``s`` (binary, or floats in [0, 1] for FRACTIONAL).

A 2D/3D *float* array is one stacked segment (FRACTIONAL probabilities).
Either form is stored as any segmentation type; :class:`SegmentPixels`
serves frames in the form the encoder needs without materialising the
other form for the whole volume.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from monai_dicomseg.enums import SegmentationTypeValues
from monai_dicomseg.errors import InputError, InputTypeError, OverlapError
from monai_dicomseg.seg.mapped import release_leading_range

__all__ = ["SegmentPixels", "StackedSegmentSource", "StreamScan", "prepare_pixels", "labelmap_dtype", "scan_stream",
           "is_array_like"]

_MAX_LABELMAP_SEGMENTS = 65535


def labelmap_dtype(number_of_segments: int) -> np.dtype:
    """Smallest stored dtype for a LABELMAP with this many segments (8 or 16 bits, PS3.3 C.8.20.2)."""
    return np.dtype(np.uint8) if number_of_segments <= 255 else np.dtype(np.uint16)


@dataclass
class SegmentPixels:
    """A validated segmentation array: a label map, or stacked segments served in blocks.

    Stacked ``(F, R, C, S)`` input (in memory, memory-mapped or any
    array-like) is never held here as a whole: it is validated and encoded
    block by block (:func:`scan_stream`), so ``stream`` and ``scan`` describe it.

    Attributes
    ----------
    labelmap
        ``(F, R, C)`` unsigned integer label map (an ndarray, or an on-disk /
        chunked array-like when ``label_presence`` is set), or ``None``.
    number_of_segments
        S, the number of segment descriptions.
    stream, scan
        The stacked input and what its validation pass found, or ``None``.
    label_presence
        ``(F, S)`` bool presence of a lazy label map, found while validating it.
    """

    labelmap: np.ndarray | None
    number_of_segments: int
    stream: "StackedSegmentSource | None" = None
    scan: "StreamScan | None" = None
    label_presence: "np.ndarray | None" = None

    @property
    def lazy_labelmap(self) -> bool:
        """bool: the label map is an on-disk / chunked array-like read frame by frame."""
        return self.label_presence is not None

    @property
    def shape(self) -> tuple[int, int, int]:
        """tuple[int, int, int]: (F, R, C)."""
        if self.stream is not None:
            return self.stream.shape[:3]  # type: ignore[return-value]  # a stream is (F, R, C[, ...]); its first 3 dimensions
        return tuple(self.labelmap.shape[:3])  # type: ignore[union-attr]  # tuple() is typed tuple[T, ...]; the fixed length holds by construction (one item per axis)

    @property
    def is_fractional_input(self) -> bool:
        """bool: whether the input holds non-binary fractions."""
        return self.scan is not None and self.scan.fractional

    def presence(self) -> np.ndarray:
        """Which segments are non-empty in which plane.

        Returns
        -------
        numpy.ndarray
            ``(F, S)`` bool; entry ``[f, s - 1]`` is True when segment ``s``
            has a non-zero pixel in plane ``f``.
        """
        if self.scan is not None:
            return self.scan.presence
        if self.label_presence is not None:
            return self.label_presence
        frames, segments = self.shape[0], self.number_of_segments
        counts = np.zeros((frames, segments + 1), dtype=np.int64)
        for index in range(frames):
            plane_counts = np.bincount(self.labelmap[index].ravel(), minlength=segments + 1)  # type: ignore[index]  # labelmap is set whenever stream is None (the two are exclusive)
            counts[index] = plane_counts[: segments + 1]
        return counts[:, 1:] > 0

    def nonempty_planes(self) -> np.ndarray:
        """``(F,) bool``: planes holding any non-zero pixel (cheaper than :meth:`presence`)."""
        if self.label_presence is not None:
            return self.label_presence.any(axis=1)  # type: ignore[return-value]  # numpy stubs: ndarray.any(axis=...) is typed bool | ndarray; with an axis it is an ndarray
        array = self.labelmap
        planes = np.ascontiguousarray(array).reshape(array.shape[0], -1)  # type: ignore[union-attr]  # labelmap is set whenever stream is None (the two are exclusive)
        if planes.dtype.kind in "ub" and (planes.shape[1] * planes.itemsize) % 8 == 0:
            planes = planes.view(np.uint64)  # 8 bytes at a time: same answer, fewer comparisons
        return planes.any(axis=1)  # type: ignore[return-value]  # numpy stubs: ndarray.any(axis=...) is typed bool | ndarray; with an axis it is an ndarray

    def overlaps(self) -> bool:
        """bool: whether any pixel belongs to more than one segment (never for a label map)."""
        return self.scan is not None and self.scan.overlaps and self.number_of_segments > 1

    def binary_frame(self, plane: int, segment_number: int) -> np.ndarray:
        """``(R, C)`` bool mask of one segment in one plane of the label map."""
        return np.asarray(self.labelmap[plane]) == segment_number  # type: ignore[index]  # labelmap is set whenever stream is None (the two are exclusive)

    def fractional_frame(self, plane: int, segment_number: int, max_fractional_value: int) -> np.ndarray:
        """``(R, C)`` uint8 frame of one segment of the label map: 0 or ``max`` (PS3.3 C.8.20.2.3)."""
        return self.binary_frame(plane, segment_number).astype(np.uint8) * np.uint8(max_fractional_value)

    def labelmap_frame(self, plane: int) -> np.ndarray:
        """``(R, C)`` label-map frame of one plane in the smallest LABELMAP dtype (read on demand)."""
        frame = np.asarray(self.labelmap[int(plane)]).astype(labelmap_dtype(self.number_of_segments),  # type: ignore[index]  # labelmap is set whenever stream is None (the two are exclusive)
                                                             copy=False)
        if self.lazy_labelmap:  # a copy, so a shared memmap's pages may leave the resident set
            frame = np.array(frame, copy=True) if frame.base is not None else frame
            release_leading_range(self.labelmap, int(plane), int(plane) + 1)
        return frame


def _check_dtype(array: np.ndarray) -> None:
    if array.dtype.kind not in "buif":
        raise InputTypeError(
            "pixel_array must have a bool, integer or floating point dtype; "
            f"got {array.dtype}"
        )


def _integral(array: np.ndarray, argument: str) -> np.ndarray:
    """Return ``array`` as non-negative integers, rejecting fractional or negative values."""
    if array.dtype.kind == "b":
        return array.view(np.uint8)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise InputError(f"{argument} holds non-integer values; expected segment numbers or 0/1")
    if array.size and array.min() < 0:
        raise InputError(f"{argument} holds negative values (minimum {array.min()}); expected >= 0")
    return array


def prepare_pixels(
    pixel_array: Any,
    number_of_segments: int,
    segmentation_type: SegmentationTypeValues,
    max_fractional_value: int = 255,
    visit: "Callable[[int, int, int, int, np.ndarray], None] | None" = None,
) -> SegmentPixels:
    """Validate ``pixel_array`` against the segment descriptions and the type.

    Parameters
    ----------
    pixel_array
        ``(R, C)``, ``(F, R, C)`` (label map, or one fractional segment when
        float) or ``(F, R, C, S)`` (stacked segments).
    number_of_segments
        Number of segment descriptions.
    segmentation_type
        Requested storage type.

    Raises
    ------
    InputTypeError
        Not a numpy array, or an unsupported dtype.
    InputError
        Wrong rank, empty axes, values that the type cannot store, labels
        without a description, channel count ≠ number of descriptions.
    """
    # long because: one validation ladder over every accepted pixel_array form (2D/3D/4D, label map vs stacked,
    #   float vs integer, lazy source) with an error per rejected form
    if isinstance(pixel_array, StackedSegmentSource) or (
            (is_array_like(pixel_array) or isinstance(pixel_array, np.memmap)) and len(pixel_array.shape) == 4):
        return _prepare_stream(pixel_array, number_of_segments, segmentation_type, max_fractional_value, visit)
    if (is_array_like(pixel_array) or isinstance(pixel_array, np.memmap)) and len(pixel_array.shape) in (2, 3):
        _check_dtype(pixel_array)
        if 0 in tuple(pixel_array.shape):
            raise InputError(f"pixel_array must not have an empty axis; got shape {tuple(pixel_array.shape)}")
        if pixel_array.dtype.kind == "f" and (
                segmentation_type is SegmentationTypeValues.FRACTIONAL or number_of_segments == 1):
            pixel_array = np.asarray(pixel_array[...])  # one fractional segment: the in-memory rules
        else:
            return _lazy_labels(pixel_array, number_of_segments)
    if not isinstance(pixel_array, np.ndarray):
        raise InputTypeError(
            "pixel_array must be a numpy array or an array-like with shape, dtype and slicing (memmap, zarr, "
            f"dask); got {type(pixel_array).__name__}")
    _check_dtype(pixel_array)
    if pixel_array.ndim not in (2, 3, 4):
        raise InputError(
            "pixel_array must have 2 (R, C), 3 (F, R, C) or 4 (F, R, C, S) dimensions; "
            f"got shape {pixel_array.shape}"
        )
    if 0 in pixel_array.shape:
        raise InputError(f"pixel_array must not have an empty axis; got shape {pixel_array.shape}")
    if pixel_array.ndim == 2:
        pixel_array = pixel_array[np.newaxis]
    is_fractional_type = segmentation_type is SegmentationTypeValues.FRACTIONAL
    if pixel_array.ndim == 3 and pixel_array.dtype.kind == "f" and (
        is_fractional_type or number_of_segments == 1
    ):
        pixel_array = pixel_array[..., np.newaxis]
    if pixel_array.ndim == 3:
        labels = _integral(pixel_array, "pixel_array")
        maximum = int(labels.max(initial=0))
        if maximum > number_of_segments:
            raise InputError(
                f"pixel_array contains label value {maximum} but segment_descriptions describe "
                f"only segments 1..{number_of_segments}"
            )
        if labels.dtype.kind != "u":
            labels = labels.astype(labelmap_dtype(number_of_segments))
        return SegmentPixels(labelmap=labels, number_of_segments=number_of_segments)
    # (F, R, C, S) in memory: validated and encoded block by block like an on-disk array (no full-size
    # boolean/float temporaries: the input is the only full-size array, issue 15)
    return _prepare_stream(pixel_array, number_of_segments, segmentation_type, max_fractional_value, visit)


# --------------------------------------------------------------------------- lazy (streamed) stacked input

_SLAB_VALUES = 1 << 24
"""Values per slab read from an on-disk / chunked array (16 M: 16 MB of uint8, 64 MB of float32)."""


class StackedSegmentSource:
    """Stacked segments ``(F, R, C, S)`` served in blocks, never materialised whole.

    The encoder reads a source twice (once to validate and find the
    non-empty frames, once to encode them), one block at a time, so a
    writer's peak memory is one block plus the output, whatever ``S``.

    Parameters
    ----------
    shape
        ``(F, R, C, S)``.
    dtype
        dtype of the blocks (bool, unsigned integer 0/1 masks, or float
        fractions in [0, 1]).
    blocks
        Zero-argument callable returning a fresh iterator of blocks
        ``(plane_start, plane_stop, segment_start, segment_stop, values)``
        with ``values`` ``(segment_stop - segment_start, plane_stop -
        plane_start, R, C)`` (segments first: each frame is contiguous).
        The blocks of one iteration must cover every (plane, segment) that
        holds a non-zero value (the scan starts from "all zero": blocks known
        to be all zero may be left out); a block served again must hold the
        same values.

    Examples
    --------
    Any array-like with ``shape``, ``dtype`` and slicing (a memmap, a zarr
    or dask array) can be wrapped with :meth:`from_array`.
    """

    def __init__(self, shape: "tuple[int, int, int, int]", dtype: Any,
                 blocks: "Callable[[], Iterator[tuple[int, int, int, int, np.ndarray]]]") -> None:
        if len(shape) != 4 or any(int(n) <= 0 for n in shape):
            raise InputError(f"a stacked segment source needs a non-empty (F, R, C, S) shape; got {tuple(shape)}")
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self._blocks = blocks
        _check_dtype(self)  # type: ignore[arg-type]  # the array-like duck types of _check_dtype (dtype and shape), not an ndarray
        self.quantized: "Callable[[int], Any] | None" = None
        """Optional: ``quantized(max_fractional_value)`` returns an iterable of ``uint8`` blocks holding the
        stored FRACTIONAL values ``rint(v * max)`` of the float blocks (PS3.3 C.8.20.2.3), with a
        ``fractional`` attribute telling, once exhausted, whether a float value was neither 0 nor 1. A
        FRACTIONAL encoder reads those instead of the float blocks (io/device_grid.py quantises whole slabs)."""

    @property
    def ndim(self) -> int:
        """int: 4."""
        return 4

    def blocks(self) -> "Iterator[tuple[int, int, int, int, np.ndarray]]":
        """A fresh iterator over the blocks (see the class docstring)."""
        return self._blocks()

    @classmethod
    def from_array(cls, array: Any, slab_values: int = _SLAB_VALUES) -> "StackedSegmentSource":
        """Wrap an ``(F, R, C, S)`` array-like, read ``slab_values``-sized plane slabs at a time."""
        frames, rows, columns, segments = (int(n) for n in array.shape)
        step = max(1, slab_values // max(1, rows * columns * segments))

        def blocks() -> "Iterator[tuple[int, int, int, int, np.ndarray]]":
            for start in range(0, frames, step):
                stop = min(start + step, frames)
                slab = np.asarray(array[start:stop])
                yield start, stop, 0, segments, np.moveaxis(slab, -1, 0)
                release_leading_range(array, start, stop)  # consumed: a shared memmap's pages may go

        return cls((frames, rows, columns, segments), array.dtype, blocks)


def is_array_like(value: Any) -> bool:
    """Whether ``value`` looks like an array (``shape``, ``dtype``, slicing) without being an ndarray."""
    return (not isinstance(value, np.ndarray) and hasattr(value, "shape") and hasattr(value, "dtype")
            and hasattr(value, "__getitem__"))


def _lazy_labels(array: Any, number_of_segments: int) -> SegmentPixels:
    """Validate a 2D/3D label array-like slab by slab, keeping it on disk / chunked.

    One pass reads every slab once: values (integers in ``0..S``) and the
    ``(F, S)`` plane presence are found there, so the encoder later reads
    only the frames it stores, one at a time.
    """
    shape = tuple(int(n) for n in array.shape)
    planes = shape if len(shape) == 3 else (1, *shape)
    view = array if len(shape) == 3 else _Planes(array)
    presence = np.zeros((planes[0], number_of_segments), dtype=bool)
    step = max(1, _SLAB_VALUES // max(1, planes[1] * planes[2]))
    for start in range(0, planes[0], step):
        stop = min(start + step, planes[0])
        slab = _integral(np.asarray(view[start:stop]).reshape(stop - start, *planes[1:]), "pixel_array")
        maximum = int(slab.max(initial=0))
        if maximum > number_of_segments:
            raise InputError(
                f"pixel_array contains label value {maximum} but segment_descriptions describe "
                f"only segments 1..{number_of_segments}")
        for offset, plane in enumerate(slab):
            presence[start + offset] = np.bincount(plane.ravel(), minlength=number_of_segments + 1)[1:] > 0
        del slab
        release_leading_range(view, start, stop)  # read once per pass: out of the resident set
    return SegmentPixels(labelmap=view, number_of_segments=number_of_segments,  # type: ignore[arg-type]  # a memmap-like view or _Planes: array-likes SegmentPixels only indexes and reads .shape of
                         label_presence=presence)


class _Planes:
    """A 2D array-like seen as one plane ``(1, R, C)``."""

    def __init__(self, array: Any) -> None:
        self._array = array
        self.shape = (1, *(int(n) for n in array.shape))
        self.dtype = array.dtype

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self._array[...])[np.newaxis][key]


@dataclass
class StreamScan:
    """What one validation pass over a :class:`StackedSegmentSource` found.

    Attributes
    ----------
    presence
        ``(F, S)`` bool: segment ``s`` has a non-zero (after quantisation
        to ``max_fractional_value`` for fractions) pixel in plane ``f``.
    fractional
        Whether any value is neither 0 nor 1.
    overlaps
        Whether a pixel belongs to two segments (binary data only).
    labelmap
        ``(F, R, C)`` label map built during the pass (LABELMAP only).
    """

    presence: np.ndarray
    fractional: bool
    overlaps: bool
    labelmap: "np.ndarray | None"


def scan_stream(source: StackedSegmentSource, segmentation_type: SegmentationTypeValues,
                max_fractional_value: int = 255,
                visit: "Callable[[int, int, int, int, np.ndarray], None] | None" = None) -> StreamScan:
    """Validate a streamed stacked input block by block (the checks of :func:`prepare_pixels`).

    ``visit(plane_start, plane_stop, segment_start, segment_stop, values)``
    is called with every validated block (BINARY/FRACTIONAL), so the
    encoder can encode the frames in this same pass instead of computing
    the blocks a second time.

    Raises
    ------
    InputError
        NaN, values outside [0, 1] (floats) or above 1 (integers), fractions
        for BINARY/LABELMAP.
    OverlapError
        Overlapping segments for LABELMAP.
    """
    # long because: one pass over the blocks that validates values, records presence and overlap, and builds the
    #   label map together, so a lazy source is read once
    if source.quantized is not None and segmentation_type is SegmentationTypeValues.FRACTIONAL:
        return _scan_quantized(source, source.quantized(max_fractional_value), visit)
    frames, rows, columns, segments = source.shape
    is_float = source.dtype.kind == "f"
    labelmap = segmentation_type is SegmentationTypeValues.LABELMAP
    presence_any = np.zeros((frames, segments), dtype=bool)
    presence_q = np.zeros((frames, segments), dtype=bool) if is_float else presence_any
    counts = np.zeros((frames, rows, columns), dtype=np.uint8) if segments > 1 and not labelmap else None
    out = np.zeros((frames, rows, columns), dtype=labelmap_dtype(segments)) if labelmap else None
    fractional = False
    low, high = np.inf, -np.inf
    scale = source.dtype.type(max_fractional_value) if is_float else None
    for f0, f1, s0, s1, values in source.blocks():
        values = np.asarray(values)
        if values.shape != (s1 - s0, f1 - f0, rows, columns):
            raise InputError(
                f"a stacked segment source block for planes {f0}:{f1}, segments {s0}:{s1} has shape "
                f"{values.shape}; expected {(s1 - s0, f1 - f0, rows, columns)}")
        if is_float:
            block_low, block_high = float(values.min()), float(values.max())  # NaN propagates: no mask
            if np.isnan(block_low) or np.isnan(block_high):
                raise InputError("pixel_array contains NaN values")
            low, high = min(low, block_low), max(high, block_high)
            if not fractional and not all(bool(np.all((plane == 0) | (plane == 1))) for plane in values):
                fractional = True
                if segmentation_type is not SegmentationTypeValues.FRACTIONAL:
                    break
            # rint(x * max) != 0  <=>  x * max > 0.5 for x >= 0 (half to even; rounding is monotonic),
            # so the plane maxima decide it: one reduction, no block-sized temporary
            presence_q[f0:f1, s0:s1] = (values.max(axis=(2, 3)) * scale > 0.5).T
        else:
            values = _integral(values, "pixel_array")
            if int(values.max(initial=0)) > 1:
                raise InputError(
                    "pixel_array in stacked-segment form (F, R, C, S) must hold only 0 and 1; "
                    f"got maximum {int(values.max())}")
        if visit is not None and out is None:
            visit(f0, f1, s0, s1, values)
        if fractional and out is None:
            continue  # presence is the quantised one; no overlap for fractions
        nonzero = values != 0
        presence_any[f0:f1, s0:s1] = nonzero.any(axis=(2, 3)).T
        if out is not None:
            slab = out[f0:f1]
            for index in range(s1 - s0):
                if (slab[nonzero[index]] != 0).any():
                    plane = f0 + int(np.nonzero((slab != 0) & nonzero[index])[0].min())
                    raise OverlapError(
                        f"segments overlap in pixel_array (plane index {plane}); LABELMAP cannot store "
                        "overlapping segments: use segmentation_type BINARY")
                slab[nonzero[index]] = s0 + index + 1
        elif counts is not None and not fractional:
            block_counts = np.count_nonzero(nonzero, axis=0).astype(np.uint8)
            np.minimum(counts[f0:f1] + np.minimum(block_counts, 2), 2, out=counts[f0:f1])
    if is_float and (low < 0.0 or high > 1.0):
        raise InputError(f"pixel_array values must lie in [0, 1]; got range [{low}, {high}]")
    if fractional and segmentation_type is not SegmentationTypeValues.FRACTIONAL:
        kind = segmentation_type.value
        raise InputError(
            f"pixel_array holds fractional values but segmentation_type is {kind}; {kind} needs only the "
            "values 0 and 1")
    overlaps = bool(counts is not None and not fractional and (counts > 1).any())
    return StreamScan(presence_q if fractional else presence_any, fractional, overlaps, out)


def _scan_quantized(source: StackedSegmentSource, blocks: Any,
                    visit: "Callable[..., None] | None") -> StreamScan:
    """:func:`scan_stream` of a FRACTIONAL source's stored ``uint8`` blocks (``source.quantized``).

    Presence is "a stored value is non-zero"; overlaps are counted only
    while no fraction has been seen (as the float scan does). ``visit`` gets
    the stored values with ``quantized=True`` and ``present``, the ``(S', n)``
    non-empty frames of the block.
    """
    frames, rows, columns, segments = source.shape
    presence = np.zeros((frames, segments), dtype=bool)
    counts = np.zeros((frames, rows, columns), dtype=np.uint8) if segments > 1 else None
    for f0, f1, s0, s1, values in blocks:
        if values.shape != (s1 - s0, f1 - f0, rows, columns) or values.dtype != np.uint8:
            raise InputError(
                f"a quantized block for planes {f0}:{f1}, segments {s0}:{s1} has shape {values.shape} and dtype "
                f"{values.dtype}; expected {(s1 - s0, f1 - f0, rows, columns)} uint8")
        planes = (values.reshape((s1 - s0) * (f1 - f0), rows * columns).max(axis=1) > 0).reshape(s1 - s0, f1 - f0)
        presence[f0:f1, s0:s1] = planes.T
        if counts is not None and not blocks.fractional:
            block_counts = np.count_nonzero(values, axis=0).astype(np.uint8)
            np.minimum(counts[f0:f1] + np.minimum(block_counts, 2), 2, out=counts[f0:f1])
        if visit is not None:
            visit(f0, f1, s0, s1, values, quantized=True, present=planes)
    fractional = bool(blocks.fractional)
    overlaps = bool(counts is not None and not fractional and (counts > 1).any())
    return StreamScan(presence, fractional, overlaps, None)


def _prepare_stream(pixel_array: Any, number_of_segments: int, segmentation_type: SegmentationTypeValues,
                    max_fractional_value: int,
                    visit: "Callable[[int, int, int, int, np.ndarray], None] | None" = None) -> SegmentPixels:
    """Validate a streamed / on-disk ``(F, R, C, S)`` input block by block (no full-size temporary)."""
    source = pixel_array if isinstance(pixel_array, StackedSegmentSource) else None
    if source is None:
        _check_dtype(pixel_array)
        if 0 in tuple(pixel_array.shape):
            raise InputError(f"pixel_array must not have an empty axis; got shape {tuple(pixel_array.shape)}")
        source = StackedSegmentSource.from_array(pixel_array)
    channels = source.shape[3]
    if channels != number_of_segments:
        raise InputError(
            f"pixel_array has {channels} segment channels (axis 3) but segment_descriptions "
            f"has {number_of_segments} items")
    scan = scan_stream(source, segmentation_type, max_fractional_value, visit)
    if scan.labelmap is not None:
        return SegmentPixels(labelmap=scan.labelmap, number_of_segments=number_of_segments)
    return SegmentPixels(labelmap=None, number_of_segments=number_of_segments, stream=source,
                         scan=scan)
