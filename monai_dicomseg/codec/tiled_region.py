"""Stitch a region of the total pixel matrix of a tiled SEG from its frames.

A tiled image (PS3.3 C.7.6.17.3, "TILED_SPARSE" / "TILED_FULL") stores its
Total Pixel Matrix as frames of ``Rows x Columns`` pixels, each placed by its
(RowPositionInTotalImagePixelMatrix, ColumnPositionInTotalImagePixelMatrix)
(Plane Position (Slide), PS3.3 C.8.12.6.1; implied by frame order for
TILED_FULL). Tiles at the right and bottom edges may extend past the matrix;
positions without a tile are empty.

:func:`standardize_region` turns highdicom-style 1-based (or 0-based with
``as_indices``) and negative region bounds into a 0-based half-open box;
:func:`tiles_in_region` picks the frames that overlap it; and
:func:`assemble_region` decodes only those frames, in bounded chunks, and
pastes the overlapping part of each into the output, in the stacked
``(H, W, S)`` or combined ``(H, W)`` form of highdicom's
``Segmentation.get_total_pixel_matrix``.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence

import numpy as np
from pydicom.dataset import Dataset

from monai_dicomseg.codec.assemble import AssemblyRequest, labelmap_lut, overlap_error
from monai_dicomseg.codec.decode import PixelLayout, check_decoded_size, decode_frames
from monai_dicomseg.enums import SegmentationTypeValues
from monai_dicomseg.errors import FrameMismatchError, InputError, InputTypeError

__all__ = ["Region", "TilePlacement", "standardize_region", "tiles_in_region", "assemble_region"]

CHUNK_BYTES = 1 << 26
"""Decode at most about this many bytes of frames at once (64 MiB)."""


@dataclass(frozen=True)
class Region:
    """0-based half-open box ``[row_start, row_end) x [column_start, column_end)``."""

    row_start: int
    row_end: int
    column_start: int
    column_end: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.row_end - self.row_start, self.column_end - self.column_start


@dataclass(frozen=True)
class TilePlacement:
    """Stored frames and the 0-based total-pixel-matrix position of their top-left pixel.

    Attributes
    ----------
    frame, row, column, segment
        ``(m,) int64``: stored frame index, tile row / column offset,
        Referenced Segment Number (0 for LABELMAP).
    """

    frame: np.ndarray
    row: np.ndarray
    column: np.ndarray
    segment: np.ndarray

    def select(self, mask: np.ndarray) -> "TilePlacement":
        return TilePlacement(self.frame[mask], self.row[mask], self.column[mask], self.segment[mask])


def _as_int(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputTypeError(f"{name} must be an int or None; got {type(value).__name__}")
    return int(value)


def _standardize_axis(
    start: int | None, end: int | None, size: int, as_indices: bool, what: str
) -> tuple[int, int]:
    """One axis: 1-based (or 0-based) / negative bounds → 0-based ``[start, end)``."""
    names = (f"{what}_start", f"{what}_end")
    start, end = _as_int(start, names[0]), _as_int(end, names[1])
    original = (start, end)
    if as_indices:  # to 1-based numbers, negatives unchanged
        start = start + 1 if start is not None and start >= 0 else start
        end = end + 1 if end is not None and end >= 0 else end
    if start is None:
        start = 1
    if end is None:
        end = size + 1
    if start == 0:
        raise InputError(
            f"{names[0]} may not be 0: rows and columns of the total pixel matrix are numbered from 1 "
            "(DICOM convention; pass as_indices=True for 0-based indices)"
        )
    if start > size or start < -size:
        raise InputError(
            f"{names[0]} = {original[0]} is out of range for a total pixel matrix with {size} {what}s; "
            f"expected 1..{size} or -{size}..-1"
        )
    if end > size + 1 or end < -size:
        raise InputError(
            f"{names[1]} = {original[1]} is out of range for a total pixel matrix with {size} {what}s; "
            f"expected at most {size + 1} or -{size}..-1"
        )
    start = size + start + 1 if start < 0 else start
    end = size + end + 1 if end < 0 else end
    if end <= start:
        raise InputError(
            f"{names[0]} = {original[0]} and {names[1]} = {original[1]} select an empty region "
            f"({what}s {start} to {end - 1} of {size}); expected {names[0]} < {names[1]}"
        )
    return start - 1, end - 1


def standardize_region(
    row_start: int | None,
    row_end: int | None,
    column_start: int | None,
    column_end: int | None,
    *,
    rows: int,
    columns: int,
    as_indices: bool = False,
) -> Region:
    """Interpret highdicom-style region bounds.

    Bounds are 1-based row/column numbers (0-based indices with
    ``as_indices``); negative values count from the end (``-1`` is the last
    row/column); ends are exclusive; ``None`` means the matrix edge.

    Raises
    ------
    InputError
        A start of 0 (1-based), a bound outside the matrix, or an empty region.
    """
    r0, r1 = _standardize_axis(row_start, row_end, rows, as_indices, "row")
    c0, c1 = _standardize_axis(column_start, column_end, columns, as_indices, "column")
    return Region(r0, r1, c0, c1)


def tiles_in_region(
    tile_positions: np.ndarray, tile_rows: int, tile_columns: int, region: Region
) -> np.ndarray:
    """``(F,) bool``: which tiles (1-based ``(F, 2)`` row/column positions) overlap ``region``."""
    top = tile_positions[:, 0] - 1
    left = tile_positions[:, 1] - 1
    return (
        (top < region.row_end) & (top + tile_rows > region.row_start)
        & (left < region.column_end) & (left + tile_columns > region.column_start)
    )


def _check_unique(placement: TilePlacement, by_segment: bool) -> None:
    if placement.frame.size < 2:
        return
    keys = np.stack(
        [placement.row, placement.column, placement.segment if by_segment else np.zeros_like(placement.row)],
        axis=1,
    )
    if np.unique(keys, axis=0).shape[0] != keys.shape[0]:
        raise FrameMismatchError(
            "tile positions do not identify segmentation frames uniquely: two or more stored frames "
            "share a RowPositionInTotalImagePixelMatrix/ColumnPositionInTotalImagePixelMatrix"
            + (" and segment" if by_segment else "")
            + " (e.g. several focal planes); expected one frame per tile position"
        )


def _windows(
    placement: TilePlacement, region: Region, tile_rows: int, tile_columns: int
) -> np.ndarray:
    """``(m, 8) int64``: input row/col slice then output row/col slice bounds of each tile."""
    r0, c0 = region.row_start, region.column_start
    h, w = region.shape
    top = placement.row - r0
    left = placement.column - c0
    return np.stack([
        np.maximum(-top, 0), np.minimum(h - top, tile_rows),
        np.maximum(-left, 0), np.minimum(w - left, tile_columns),
        np.maximum(top, 0), np.minimum(top + tile_rows, h),
        np.maximum(left, 0), np.minimum(left + tile_columns, w),
    ], axis=1)


def _chunks(n: int, layout: PixelLayout) -> range:
    per_frame = max(layout.pixels_per_frame * layout.dtype.itemsize, 1)
    return range(0, n, max(1, CHUNK_BYTES // per_frame))


def _iter_crops(dataset: Dataset, layout: PixelLayout, placement: TilePlacement, windows: np.ndarray):
    """Yield ``(k, crop, (out_rows, out_cols))`` per tile, decoding frames chunk by chunk."""
    step = _chunks(placement.frame.size, layout).step
    for begin in range(0, placement.frame.size, step):
        stored = decode_frames(dataset, placement.frame[begin:begin + step], layout)
        for j, frame in enumerate(stored):
            k = begin + j
            a, b, c, d, e, f, g, h = windows[k].tolist()
            yield k, frame[a:b, c:d], (slice(e, f), slice(g, h))


def assemble_region(
    dataset: Dataset,
    layout: PixelLayout,
    placement: TilePlacement,
    region: Region,
    *,
    segmentation_type: SegmentationTypeValues,
    segment_numbers: Sequence[int],
    combine_segments: bool,
    relabel: bool,
    rescale_fractional: bool,
    skip_overlap_checks: bool,
    dtype: "type | str | np.dtype | None",
    maximum_fractional_value: int | None = None,
    all_segment_numbers: Sequence[int] | None = None,
) -> np.ndarray:
    """Build a region of the total pixel matrix from the placed tiles.

    Parameters
    ----------
    dataset, layout
        The SEG and its validated :class:`~monai_dicomseg.codec.decode.PixelLayout`.
    placement
        Tiles overlapping ``region`` (see :func:`tiles_in_region`).
    region
        0-based box of the output.
    segmentation_type, segment_numbers, combine_segments, relabel, rescale_fractional,
    skip_overlap_checks, dtype, maximum_fractional_value, all_segment_numbers
        As for :func:`monai_dicomseg.codec.assemble.assemble_frames`.

    Returns
    -------
    numpy.ndarray
        ``(H, W, S)`` stacked, or ``(H, W)`` with ``combine_segments``.

    Raises
    ------
    FrameMismatchError
        Two frames share a tile position (and segment).
    OverlapError
        Combining overlapping segments without ``skip_overlap_checks``.
    """
    request = AssemblyRequest.of(
        segmentation_type=segmentation_type, segment_numbers=segment_numbers, combine_segments=combine_segments,
        relabel=relabel, rescale_fractional=rescale_fractional, skip_overlap_checks=skip_overlap_checks,
        maximum_fractional_value=maximum_fractional_value, all_segment_numbers=all_segment_numbers,
    )
    out_dtype = request.output_dtype(dtype)
    h, w = region.shape
    what = "total pixel matrix region"
    if combine_segments or segmentation_type == SegmentationTypeValues.LABELMAP:
        check_decoded_size((h, w), out_dtype if combine_segments else layout.dtype, what)
    if not combine_segments:
        check_decoded_size((h, w, request.segments.size), out_dtype, what)
    if segmentation_type == SegmentationTypeValues.LABELMAP:
        return _labelmap_region(dataset, layout, placement, region, request, out_dtype)
    # BINARY / FRACTIONAL: one segment per frame
    placement, channel = request.select(placement)
    _check_unique(placement, by_segment=True)
    order = np.lexsort((placement.frame,))  # decode in file order
    placement, channel = placement.select(order), channel[order]
    windows = _windows(placement, region, layout.rows, layout.columns)
    crops = _iter_crops(dataset, layout, placement, windows)
    if not combine_segments:
        raw = np.zeros((h, w, request.segments.size), layout.dtype if request.is_fractional else out_dtype)
        for k, crop, (rows, cols) in crops:
            raw[rows, cols, channel[k]] = crop
        return request.rescaled(raw, out_dtype) if request.is_fractional else raw
    if request.is_fractional:
        request.require_rescale()
    maximum = int(maximum_fractional_value or 1) if request.is_fractional else 1
    value = request.output_values(placement, channel).astype(out_dtype)
    out = np.zeros((h, w), out_dtype)
    for k, crop, window in crops:
        if request.is_fractional:
            request.check_combinable(crop, maximum)
        mask = crop != 0
        target = out[window]
        if not skip_overlap_checks and np.any(mask & (target != 0)):
            raise overlap_error(None)
        np.maximum(target, np.where(mask, value[k], out_dtype.type(0)), out=target)
    return out


def _labelmap_region(dataset: Dataset, layout: PixelLayout, placement: TilePlacement, region: Region,
                     request: AssemblyRequest, out_dtype: np.dtype) -> np.ndarray:
    """A region of a LABELMAP total pixel matrix: stored values stitched, then mapped through the LUT."""
    _check_unique(placement, by_segment=False)
    windows = _windows(placement, region, layout.rows, layout.columns)
    stored = np.zeros(region.shape, layout.dtype)
    for _, crop, out in _iter_crops(dataset, layout, placement, windows):
        stored[out] = crop
    segs = request.segments
    lut = labelmap_lut(layout, segs, combine_segments=request.combine_segments, relabel=request.relabel)
    if request.combine_segments:
        if not request.relabel and set(segs.tolist()) >= set(request.all_segment_numbers or ()):
            return stored.astype(out_dtype, copy=False)
        return lut.astype(out_dtype)[stored]
    labels = lut[stored]
    r, c = np.nonzero(labels)
    result = np.zeros((*region.shape, segs.size), out_dtype)
    result[r, c, labels[r, c] - 1] = 1
    return result
