"""Foreground-aware patch locations from a SEG's stored tiles or its low-resolution level.

:func:`foreground_locations` lays a grid of patches (``patch_size`` at image
``level``, every ``stride`` pixels; MONAI's ``(top, left)`` level-0 locations)
and keeps the patches that touch foreground, known without decoding the
slide's SEG at full resolution:

``"tiles"``
    the frames present in a TILED_SPARSE SEG level (PS3.3 C.7.6.17.3: the
    writer leaves out empty tiles): positions from the frame headers only, no
    pixel decoded. A patch touching a stored tile may miss that tile's labels;
    ``verify=True`` reads each candidate's labels (its tiles only) and keeps
    those with a labelled pixel.
``"level"``
    the non-zero pixels of one (by default the coarsest) SEG level, decoded
    whole: a few tiles for a pyramid's top. Structures smaller than that
    level's pixel may be missed (nearest downsampling); ``verify`` as above.
``"auto"``
    ``"tiles"`` when the finest SEG level is TILED_SPARSE, else ``"level"``.
"""
from __future__ import annotations

import math
from typing import Any
from collections.abc import Sequence

import numpy as np

from monai_dicomseg.errors import InputError
from monai_dicomseg.slides.labels import SlideLabels
from monai_dicomseg.enums import LABELMAP as _LABELMAP

__all__ = ["foreground_locations", "grid_locations", "FOREGROUND_METHODS"]

FOREGROUND_METHODS = ("auto", "tiles", "level")


def _tile_mask(labels: SlideLabels, index: int, segment_numbers: Sequence[int] | None) -> tuple[np.ndarray, tuple[float, float]]:
    """Occupancy of the SEG level's tile grid by stored frames, and the cell size in mm."""
    seg, plane = labels.segmentations[index], labels.planes[index]
    if str(seg.get("DimensionOrganizationType", "")) == "TILED_FULL":
        raise InputError("method='tiles' needs a TILED_SPARSE SEG level (a TILED_FULL one stores every tile, "
                         "empty or not); use method='level'")
    frame_index = seg.get_frame_index()
    positions = np.asarray(frame_index.tile_positions) - 1
    if segment_numbers is not None and seg.segmentation_type.value != _LABELMAP:
        positions = positions[np.isin(frame_index.segment_numbers, list(segment_numbers))]
    mask = np.zeros((math.ceil(plane.rows / plane.tile_rows), math.ceil(plane.columns / plane.tile_columns)), bool)
    mask[positions[:, 0] // plane.tile_rows, positions[:, 1] // plane.tile_columns] = True
    cell = (plane.tile_rows * plane.pixel_spacing[0], plane.tile_columns * plane.pixel_spacing[1])
    return mask, cell


def _level_mask(labels: SlideLabels, index: int, segment_numbers: Sequence[int] | None) -> tuple[np.ndarray, tuple[float, float]]:
    """Non-zero pixels of a whole SEG level, and its pixel size in mm."""
    seg, plane = labels.segmentations[index], labels.planes[index]
    numbers = labels.segment_numbers if segment_numbers is None else list(segment_numbers)
    pixels = seg.get_total_pixel_matrix(segment_numbers=numbers)
    return np.asarray(pixels).reshape(plane.rows, plane.columns, -1).any(axis=-1), plane.pixel_spacing  # type: ignore[return-value]  # numpy stubs: ndarray.any(axis=...) is typed bool | ndarray; with an axis it is an ndarray


def _touching(mask: np.ndarray, cell: tuple[float, float], starts: list[np.ndarray], size: Sequence[int],
              spacing: tuple[float, float]) -> np.ndarray:
    """``(N_rows, N_columns)`` whether the patch at each grid start touches a true cell (summed-area table)."""
    table = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), np.int64)
    table[1:, 1:] = mask.cumsum(0).cumsum(1)
    bounds = []
    for axis in range(2):
        low = np.floor(starts[axis] * spacing[axis] / cell[axis] + 1e-9).astype(np.int64)
        high = np.ceil((starts[axis] + size[axis]) * spacing[axis] / cell[axis] - 1e-9).astype(np.int64)
        bounds.append((np.clip(low, 0, mask.shape[axis]), np.clip(high, 0, mask.shape[axis])))
    (r0, r1), (c0, c1) = bounds
    total = table[r1][:, c1] - table[r0][:, c1] - table[r1][:, c0] + table[r0][:, c0]
    return total > 0


def foreground_locations(
    labels: SlideLabels,
    patch_size: int | Sequence[int],
    level: int = 0,
    *,
    stride: int | Sequence[int] | None = None,
    method: str = "auto",
    seg_level: int | None = None,
    segment_numbers: Sequence[int] | None = None,
    verify: bool = False,
) -> np.ndarray:
    """``(N, 2)`` level-0 ``(top, left)`` locations of the grid patches that touch foreground.

    Parameters
    ----------
    labels
        The slide and its SEG levels.
    patch_size, stride
        ``(height, width)`` (or one int) at ``level``; stride defaults to the patch size.
    level
        Image level of the patches.
    method
        ``"auto"``, ``"tiles"`` or ``"level"`` (module docstring).
    seg_level
        SEG level (0 = finest) the mask comes from: default the finest for
        ``"tiles"``, the coarsest for ``"level"``.
    segment_numbers
        Only these segments count as foreground (default all; ``"tiles"``
        cannot tell segments apart in a LABELMAP and counts every frame).
    verify
        Read the labels of each candidate (only its tiles are decoded) and
        keep those with a labelled pixel.

    Returns
    -------
    numpy.ndarray
        int64 locations in row-major order, as MONAI's ``PatchWSIDataset``
        takes them (``center_location=False``).
    """
    size = (patch_size, patch_size) if isinstance(patch_size, (int, np.integer)) else tuple(patch_size)
    step = size if stride is None else ((stride, stride) if isinstance(stride, (int, np.integer)) else tuple(stride))
    if len(size) != 2 or len(step) != 2 or min(size) < 1 or min(step) < 1:
        raise InputError(f"patch_size and stride must be positive (height, width); got {patch_size!r}, {stride!r}")
    if method not in FOREGROUND_METHODS:
        raise InputError(f"method must be one of {FOREGROUND_METHODS}; got {method!r}")
    if method == "auto":
        sparse = str(labels.segmentations[0].get("DimensionOrganizationType", "")) != "TILED_FULL"
        method = "tiles" if sparse else "level"
    index = (0 if method == "tiles" else len(labels.planes) - 1) if seg_level is None else int(seg_level)
    if not 0 <= index < len(labels.planes):
        raise InputError(f"seg_level must be in [0, {len(labels.planes) - 1}]; got {seg_level}")
    mask, cell = (_tile_mask if method == "tiles" else _level_mask)(labels, index, segment_numbers)
    plane = labels.slide.level(level)
    starts = [np.arange(0, plane.rows, step[0]), np.arange(0, plane.columns, step[1])]
    touching = _touching(mask, cell, starts, size, plane.pixel_spacing)
    rows, columns = np.nonzero(touching)
    downsample = labels.slide.downsample(level)
    locations = np.stack([np.rint(starts[0][rows] * downsample[0]), np.rint(starts[1][columns] * downsample[1])],
                         axis=1).astype(np.int64)
    if verify:
        keep = [bool(np.any(labels.get_patch(tuple(loc), size, level, mode="stacked",
                                             segment_numbers=segment_numbers)))
                for loc in locations]
        locations = locations[np.asarray(keep, bool)] if keep else locations
    return locations.reshape(-1, 2)


def grid_locations(slide: Any, patch_size: int | Sequence[int], level: int = 0,
                   stride: int | Sequence[int] | None = None) -> np.ndarray:
    """``(N, 2)`` level-0 ``(top, left)`` locations of every grid patch of ``level`` (sliding-window inference).

    ``slide`` is a :class:`~monai_dicomseg.slides.geometry.SlideImage`; patches
    start every ``stride`` level pixels (default: the patch size) and the last
    row/column of patches may reach past the edge.
    """
    size = (patch_size, patch_size) if isinstance(patch_size, (int, np.integer)) else tuple(patch_size)
    step = size if stride is None else ((stride, stride) if isinstance(stride, (int, np.integer)) else tuple(stride))
    if len(size) != 2 or len(step) != 2 or min(size) < 1 or min(step) < 1:
        raise InputError(f"patch_size and stride must be positive (height, width); got {patch_size!r}, {stride!r}")
    plane, downsample = slide.level(level), slide.downsample(level)
    rows = np.arange(0, max(plane.rows - size[0], 0) + step[0], step[0])
    columns = np.arange(0, max(plane.columns - size[1], 0) + step[1], step[1])
    grid = np.stack(np.meshgrid(rows, columns, indexing="ij"), axis=-1).reshape(-1, 2).astype(np.float64)
    return np.rint(grid * np.asarray(downsample)).astype(np.int64)
