"""Tiled (slide microscopy) geometry: total pixel matrices, tiles, slide positions.

A tiled image stores its *total pixel matrix* as tiles of ``Rows × Columns``
pixels (PS3.3 C.8.12.4 Whole Slide Microscopy Image Module). Tile positions
are 1-based (Row/Column Position In Total Image Pixel Matrix) and each tile's
top-left pixel has a position in the slide coordinate system (X/Y/Z Offset
In Slide Coordinate System, C.8.12.6.1) derived from Total Pixel Matrix
Origin Sequence, Image Orientation (Slide) and Pixel Spacing. With
TILED_FULL (C.7.6.17.3) tiles are implicit: row by row, then by focal plane,
then by optical path (and for SEG, by segment).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from monai_dicomseg.errors import DecodeError, InputError, InputTypeError
from monai_dicomseg.seg.mapped import release_leading_range

__all__ = [
    "TileView",
    "SlideGeometry",
    "slide_geometry",
    "source_tile_positions",
    "slide_offsets",
    "cut_tiles",
]


@dataclass(frozen=True)
class SlideGeometry:
    """Geometry of a tiled image's total pixel matrix.

    Attributes
    ----------
    total_rows, total_columns
        TotalPixelMatrixRows / TotalPixelMatrixColumns.
    tile_rows, tile_columns
        Rows / Columns of one tile (frame).
    orientation
        ImageOrientationSlide (6 floats).
    origin
        ``(3,)`` slide coordinates (mm) of the matrix's top-left pixel (Z 0 when absent).
    origin_item
        The TotalPixelMatrixOriginSequence item, to copy.
    pixel_spacing
        PixelSpacing ``(row spacing, column spacing)`` in mm (floats).
    slice_thickness
        SliceThickness (mm) or ``None``.
    """

    total_rows: int
    total_columns: int
    tile_rows: int
    tile_columns: int
    orientation: tuple[float, ...]
    origin: np.ndarray
    origin_item: Dataset
    pixel_spacing: tuple[float, float]
    slice_thickness: float | None


def _shared_item(dataset: Dataset, sequence: str) -> Dataset | None:
    shared = dataset.get("SharedFunctionalGroupsSequence")
    if shared and sequence in shared[0]:
        return shared[0][sequence].value[0]
    return None


def slide_geometry(dataset: Dataset) -> SlideGeometry | None:
    """The slide geometry of a tiled source image, or ``None`` when it is not tiled.

    Raises
    ------
    DecodeError
        A tiled image lacking ImageOrientationSlide, TotalPixelMatrixOriginSequence
        or PixelSpacing.
    """
    if "TotalPixelMatrixRows" not in dataset or "ImageOrientationSlide" not in dataset:
        return None
    origin_sequence = dataset.get("TotalPixelMatrixOriginSequence")
    if not origin_sequence:
        raise DecodeError("tiled source image lacks TotalPixelMatrixOriginSequence")
    origin_item = origin_sequence[0]
    origin = np.array([
        float(origin_item.get("XOffsetInSlideCoordinateSystem", 0.0)),
        float(origin_item.get("YOffsetInSlideCoordinateSystem", 0.0)),
        float(origin_item.get("ZOffsetInSlideCoordinateSystem", 0.0) or 0.0),
    ])
    measures = _shared_item(dataset, "PixelMeasuresSequence")
    if measures is None:
        per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
        if per_frame and "PixelMeasuresSequence" in per_frame[0]:
            measures = per_frame[0].PixelMeasuresSequence[0]
    if measures is None or "PixelSpacing" not in measures:
        raise DecodeError("tiled source image lacks PixelMeasuresSequence PixelSpacing")
    thickness = measures.get("SliceThickness")
    return SlideGeometry(
        total_rows=int(dataset.TotalPixelMatrixRows),
        total_columns=int(dataset.TotalPixelMatrixColumns),
        tile_rows=int(dataset.Rows),
        tile_columns=int(dataset.Columns),
        orientation=tuple(float(v) for v in dataset.ImageOrientationSlide),
        origin=origin,
        origin_item=origin_item,
        pixel_spacing=(float(measures.PixelSpacing[0]), float(measures.PixelSpacing[1])),
        slice_thickness=None if thickness in (None, "") else float(thickness),
    )


def tile_grid(total_rows: int, total_columns: int, tile_rows: int, tile_columns: int) -> np.ndarray:
    """1-based ``(n, 2)`` (row, column) positions of the tiles covering a matrix, row by row."""
    rows = np.arange(1, total_rows + 1, tile_rows)
    columns = np.arange(1, total_columns + 1, tile_columns)
    grid = np.stack(np.meshgrid(rows, columns, indexing="ij"), axis=-1)
    return grid.reshape(-1, 2).astype(np.int64)


def source_tile_positions(dataset: Dataset, geometry: SlideGeometry) -> np.ndarray:
    """``(N, 2)`` 1-based (row, column) tile position of every frame of a tiled source.

    TILED_FULL frames follow the implicit order (rows, then columns, repeated
    per focal plane / optical path); otherwise the per-frame
    PlanePositionSlideSequence gives them.
    """
    number_of_frames = int(dataset.get("NumberOfFrames", 1) or 1)
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
    if dataset.get("DimensionOrganizationType") == "TILED_FULL" or not per_frame:
        grid = tile_grid(geometry.total_rows, geometry.total_columns,
                         geometry.tile_rows, geometry.tile_columns)
        repeats = math.ceil(number_of_frames / len(grid))
        return np.tile(grid, (repeats, 1))[:number_of_frames]
    positions = np.empty((number_of_frames, 2), dtype=np.int64)
    for index, item in enumerate(per_frame):
        position = item.PlanePositionSlideSequence[0] if "PlanePositionSlideSequence" in item else None
        if position is None:
            raise DecodeError(f"frame {index + 1} of the tiled source lacks PlanePositionSlideSequence")
        positions[index] = (int(position.RowPositionInTotalImagePixelMatrix),
                            int(position.ColumnPositionInTotalImagePixelMatrix))
    return positions


def slide_offsets(geometry: SlideGeometry, tile_positions: np.ndarray,
                  pixel_spacing: tuple[float, float] | None = None) -> np.ndarray:
    """``(n, 3)`` slide coordinates (mm) of the top-left pixel of each tile (PS3.3 C.8.12.6.1).

    Parameters
    ----------
    geometry
        Slide geometry (origin and orientation).
    tile_positions
        ``(n, 2)`` 1-based (row, column) positions in the total pixel matrix.
    pixel_spacing
        Pixel spacing of the matrix the positions refer to (default: the
        geometry's own; differs for downsampled pyramid levels).
    """
    row_spacing, column_spacing = pixel_spacing or geometry.pixel_spacing
    orientation = np.asarray(geometry.orientation)
    along_row, along_column = orientation[:3], orientation[3:]
    offsets = np.asarray(tile_positions, dtype=np.float64) - 1.0
    return (geometry.origin
            + np.outer(offsets[:, 1] * column_spacing, along_row)
            + np.outer(offsets[:, 0] * row_spacing, along_column))


def cut_tiles(matrix: np.ndarray, tile_rows: int, tile_columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut a total pixel matrix into tiles, padding the last row/column of tiles with zeros.

    Parameters
    ----------
    matrix
        ``(R, C)`` label map or ``(R, C, S)`` stacked segments.
    tile_rows, tile_columns
        Tile size.

    Returns
    -------
    tiles
        ``(n, tile_rows, tile_columns[, S])``, row by row.
    positions
        ``(n, 2)`` 1-based (row, column) positions of the tiles.
    """
    if tile_rows < 1 or tile_columns < 1:
        raise InputError(f"tile_size must be positive; got ({tile_rows}, {tile_columns})")
    rows, columns = matrix.shape[:2]
    tiles_down, tiles_across = math.ceil(rows / tile_rows), math.ceil(columns / tile_columns)
    pad = [(0, tiles_down * tile_rows - rows), (0, tiles_across * tile_columns - columns)]
    pad += [(0, 0)] * (matrix.ndim - 2)
    padded = np.pad(matrix, pad) if any(p[1] for p in pad) else matrix
    channels = matrix.shape[2:]
    tiles = padded.reshape((tiles_down, tile_rows, tiles_across, tile_columns) + channels)
    tiles = tiles.swapaxes(1, 2).reshape((tiles_down * tiles_across, tile_rows, tile_columns) + channels)
    return np.ascontiguousarray(tiles), tile_grid(rows, columns, tile_rows, tile_columns)


class TileView:
    """The tiles of a total pixel matrix that stays on disk / chunked, read on demand.

    An array-like of shape ``(n, tile_rows, tile_columns[, S])`` (tiles row
    by row, the last row/column of tiles padded with zeros, as
    :func:`cut_tiles`) whose items are read from ``matrix`` only when asked:
    a gigapixel memory-mapped label map is encoded reading one tile (or one
    validation slab of tiles) at a time, and each band of tiles of a shared
    ``numpy.memmap`` leaves the resident set once it has been read
    (:func:`~monai_dicomseg.seg.mapped.release_leading_range`).

    Parameters
    ----------
    matrix
        ``(R, C)`` label map or ``(R, C, S)`` stacked segments: a numpy
        memmap or any array-like with ``shape``, ``dtype`` and 2D slicing.
    tile_rows, tile_columns
        Tile size.
    """

    def __init__(self, matrix: Any, tile_rows: int, tile_columns: int) -> None:
        if tile_rows < 1 or tile_columns < 1:
            raise InputError(f"tile_size must be positive; got ({tile_rows}, {tile_columns})")
        self.matrix = matrix
        self.tile_rows, self.tile_columns = int(tile_rows), int(tile_columns)
        rows, columns = (int(n) for n in matrix.shape[:2])
        self.positions = tile_grid(rows, columns, self.tile_rows, self.tile_columns)
        self.channels = tuple(int(n) for n in matrix.shape[2:])
        self.shape = (len(self.positions), self.tile_rows, self.tile_columns, *self.channels)
        self.dtype = np.dtype(matrix.dtype)
        self._band = -1  # first matrix row of the band of tiles read last

    @property
    def ndim(self) -> int:
        """int: 3 (label map tiles) or 4 (stacked tiles)."""
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def tile(self, index: int) -> np.ndarray:
        """``(tile_rows, tile_columns[, S])`` tile ``index`` (0-based, row by row), zero-padded."""
        row, column = (int(v) - 1 for v in self.positions[index])
        if row != self._band:  # a new band of tiles: the last one is done (each pass reads row by row)
            if self._band >= 0:
                release_leading_range(self.matrix, self._band, self._band + self.tile_rows)
            self._band = row
        block = np.asarray(self.matrix[row:row + self.tile_rows, column:column + self.tile_columns])
        if block.shape[:2] == (self.tile_rows, self.tile_columns):
            return block
        out = np.zeros((self.tile_rows, self.tile_columns, *self.channels), dtype=self.dtype)
        out[:block.shape[0], :block.shape[1]] = block
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            index = int(key) + (len(self) if int(key) < 0 else 0)
            if not 0 <= index < len(self):
                raise IndexError(f"tile index {int(key)} out of range for {len(self)} tiles")
            return self.tile(index)
        if isinstance(key, slice):
            indices = range(*key.indices(len(self)))
            out = np.empty((len(indices), *self.shape[1:]), dtype=self.dtype)
            for position, index in enumerate(indices):
                out[position] = self.tile(index)
            return out
        raise InputTypeError(f"TileView supports integer and slice indexing; got {type(key).__name__}")
