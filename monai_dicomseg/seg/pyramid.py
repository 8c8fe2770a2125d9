"""Multi-resolution segmentation pyramids (guide, "Multi-resolution Pyramids").

Four scenarios: one source image or a source pyramid, and one pixel array
(downsampled here) or one per level. Downsampling follows Pillow's
``Image.resize`` exactly so the levels equal highdicom's: nearest neighbour
for binary and label inputs, triangle-filter (bilinear, antialiased)
resampling for FRACTIONAL floats — implemented on numpy, no Pillow needed.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from monai_dicomseg.codec.spatial_content import PixelMeasuresSequence
from monai_dicomseg.enums import SegmentationTypeValues, to_enum
from monai_dicomseg.errors import InputError, InputTypeError
from monai_dicomseg.seg.content import SegmentDescription
from monai_dicomseg.uid import UID

__all__ = ["create_segmentation_pyramid", "resize_nearest", "resize_linear", "nearest_indices", "linear_weights"]

_WSI_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.77.1.6"  # VL Whole Slide Microscopy Image Storage


def _nearest_indices(size_in: int, size_out: int) -> np.ndarray:
    """Source index of each output index, accumulated in double precision as Pillow does."""
    scale = size_in / size_out
    centres = np.cumsum(np.r_[0.5 * scale, np.full(size_out - 1, scale)])
    return np.minimum(np.floor(centres).astype(np.int64), size_in - 1)


def resize_nearest(array: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Nearest-neighbour resize of the first two axes of ``array`` to ``(rows, columns)``."""
    return array[np.ix_(_nearest_indices(array.shape[0], rows), _nearest_indices(array.shape[1], columns))]


# The per-axis tables of resize_nearest / resize_linear, public for resampling a
# matrix block by block (slides/stitch.py writes pyramid levels tile by tile with them).
def nearest_indices(size_in: int, size_out: int) -> np.ndarray:
    """``(size_out,)`` source index of each output index of :func:`resize_nearest` along one axis."""
    return _nearest_indices(size_in, size_out)


def linear_weights(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray]:
    """``(size_out, k)`` source indices and weights of :func:`resize_linear` along one axis."""
    return _linear_weights(size_in, size_out)


def _linear_weights(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(out, k)`` and weights ``(out, k)`` of triangle-filter resampling (antialiased)."""
    scale = size_in / size_out
    filter_scale = max(scale, 1.0)
    support = filter_scale  # triangle filter support 1, widened when downsampling
    centres = (np.arange(size_out) + 0.5) * scale
    starts = np.maximum((centres - support + 0.5).astype(np.int64), 0)
    stops = np.minimum((centres + support + 0.5).astype(np.int64), size_in)
    width = int((stops - starts).max())
    offsets = np.arange(width)
    indices = starts[:, None] + offsets[None, :]
    valid = indices < stops[:, None]
    distance = (indices - centres[:, None] + 0.5) / filter_scale
    weights = np.where(valid, np.clip(1.0 - np.abs(distance), 0.0, None), 0.0)
    totals = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, totals, out=np.zeros_like(weights), where=totals != 0)
    return np.minimum(indices, size_in - 1), weights


def resize_linear(array: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Antialiased bilinear resize of the first two axes (columns first, then rows, as Pillow)."""
    column_index, column_weight = _linear_weights(array.shape[1], columns)
    values = np.asarray(array, dtype=np.float64)
    horizontal = np.einsum("rck...,ck->rc...", values[:, column_index], column_weight)
    row_index, row_weight = _linear_weights(array.shape[0], rows)
    return np.einsum("rk c...,rk->rc...".replace(" ", ""), horizontal[row_index], row_weight).astype(np.float32)


def _matrix(pixel_array: np.ndarray, argument: str) -> np.ndarray:
    """``(R, C)`` or ``(R, C, S)`` view of a total pixel matrix given as 2D, 3D or 4D."""
    if not isinstance(pixel_array, np.ndarray):
        raise InputTypeError(f"{argument} must be a numpy array; got {type(pixel_array).__name__}")
    if pixel_array.ndim not in (2, 3, 4):
        raise InputError(f"{argument} must have 2, 3 or 4 dimensions; got shape {pixel_array.shape}")
    if pixel_array.ndim > 2:
        if pixel_array.shape[0] != 1:
            raise InputError(
                f"{argument} must hold one total pixel matrix (size 1 along axis 0); "
                f"got shape {pixel_array.shape}"
            )
        return pixel_array[0]
    return pixel_array


def _check_sources(source_images: Sequence[Dataset]) -> None:
    if len(source_images) == 0:
        raise InputError("source_images must contain at least one image")
    for index, image in enumerate(source_images):
        if str(image.get("SOPClassUID", "")) != _WSI_SOP_CLASS_UID:
            raise InputError(
                f"source_images[{index}] must be a VL Whole Slide Microscopy Image "
                f"({_WSI_SOP_CLASS_UID}); got SOPClassUID {image.get('SOPClassUID')}"
            )
    for index in range(1, len(source_images)):
        previous, current = source_images[index - 1], source_images[index]
        if (int(previous.TotalPixelMatrixRows) <= int(current.TotalPixelMatrixRows)
                or int(previous.TotalPixelMatrixColumns) <= int(current.TotalPixelMatrixColumns)):
            raise InputError("source_images must be ordered by strictly decreasing resolution")
    if len(source_images) > 1:
        series = {str(image.SeriesInstanceUID) for image in source_images}
        pyramids = {str(image.get("PyramidUID", "")) for image in source_images}
        if len(series) != 1 or len(pyramids) != 1 or "" in pyramids:
            raise InputError("source_images must share one series and one PyramidUID")


def _levels(source_images: Sequence[Dataset], matrices: list[np.ndarray],
            downsample_factors: Sequence[float] | None, linear: bool):
    """Yield ``(source image, matrix, pixel spacing or None)`` per output level."""
    n_sources, n_arrays = len(source_images), len(matrices)
    if n_sources > 1 and n_arrays > 1 and n_sources != n_arrays:
        raise InputError(
            f"source_images has {n_sources} levels but pixel_arrays has {n_arrays}; "
            "with several of each they must match"
        )
    if downsample_factors is not None and (n_sources > 1 or n_arrays > 1):
        raise InputError("downsample_factors is only used with one source image and one pixel array")
    if n_sources == 1 and n_arrays == 1:
        if not downsample_factors:
            raise InputError(
                "with one source image and one pixel array, downsample_factors must list "
                "at least one factor"
            )
        factors = [float(f) for f in downsample_factors]
        if any(f <= 1.0 for f in factors) or factors != sorted(set(factors)):
            raise InputError(
                "downsample_factors must be greater than 1 and strictly increasing; "
                f"got {list(downsample_factors)}"
            )
    for index in range(1, n_arrays):
        if (matrices[index - 1].shape[0] <= matrices[index].shape[0]
                or matrices[index - 1].shape[1] <= matrices[index].shape[1]):
            raise InputError("pixel_arrays must be ordered by strictly decreasing size")
    if len({m.ndim for m in matrices}) != 1 or len({m.dtype for m in matrices}) != 1:
        raise InputError("pixel_arrays must all have the same number of dimensions and dtype")
    for index, (image, matrix) in enumerate(zip(source_images, matrices)):
        expected = (int(image.TotalPixelMatrixRows), int(image.TotalPixelMatrixColumns))
        if matrix.shape[:2] != expected:
            raise InputError(
                f"pixel_arrays[{index}] is {matrix.shape[:2]} but source_images[{index}]'s total "
                f"pixel matrix is {expected}; they must match"
            )
    levels = max(n_sources, n_arrays) if downsample_factors is None else 1 + len(downsample_factors)
    resize = resize_linear if linear else resize_nearest
    first = source_images[0]
    for level in range(levels):
        image = source_images[level] if n_sources > 1 else first
        if n_arrays > 1:
            matrix = matrices[level]
        elif level == 0:
            matrix = matrices[0]
        elif n_sources > 1:
            matrix = resize(matrices[0], int(image.TotalPixelMatrixRows), int(image.TotalPixelMatrixColumns))
        else:
            factor = float(downsample_factors[level - 1])  # type: ignore[index]  # level > 0 with one array and one source is reached only when downsample_factors sets the levels
            matrix = resize(matrices[0], int(int(first.TotalPixelMatrixRows) / factor),
                            int(int(first.TotalPixelMatrixColumns) / factor))
        yield image, matrix


def create_segmentation_pyramid(
    source_images: Sequence[Dataset],
    pixel_arrays: Sequence[np.ndarray],
    segmentation_type: SegmentationTypeValues | str,
    segment_descriptions: Sequence[SegmentDescription],
    series_instance_uid: str | None,
    series_number: int,
    manufacturer: str,
    manufacturer_model_name: str,
    software_versions: str | tuple[str, ...],
    device_serial_number: str,
    downsample_factors: Sequence[float] | None = None,
    sop_instance_uids: Sequence[str] | None = None,
    pyramid_uid: str | None = None,
    pyramid_label: str | None = None,
    **kwargs: Any,
) -> list:
    """Create a series of tiled segmentations at decreasing resolutions.

    Parameters
    ----------
    source_images
        One slide microscopy image, or the levels of a source pyramid
        (largest first).
    pixel_arrays
        One total pixel matrix (downsampled here), or one per level
        (largest first); each ``(R, C)``, ``(1, R, C)`` or ``(1, R, C, S)``.
    segmentation_type, segment_descriptions, series_number, manufacturer,
    manufacturer_model_name, software_versions, device_serial_number
        As :class:`~monai_dicomseg.seg.Segmentation`.
    series_instance_uid
        Series of all levels (new when ``None``).
    downsample_factors
        With one source and one array: factor of each further level (> 1).
    sop_instance_uids
        One per level (new ones when ``None``).
    pyramid_uid, pyramid_label
        Pyramid identification (PyramidUID new when ``None``).
    kwargs
        Further :class:`~monai_dicomseg.seg.Segmentation` arguments
        (not ``pixel_array``, ``source_images``, ``tile_pixel_array``,
        ``plane_positions``/``plane_orientation``/``pixel_measures``).

    Returns
    -------
    list[Segmentation]
        One tiled segmentation per level, instance numbers 1, 2, …
    """
    from monai_dicomseg.seg.segmentation import Segmentation

    forbidden = {"pixel_array", "source_images", "tile_pixel_array", "plane_positions",
                 "plane_orientation", "pixel_measures", "sop_instance_uid", "instance_number"} & set(kwargs)
    if forbidden:
        raise InputTypeError(
            f"create_segmentation_pyramid does not accept {sorted(forbidden)}: it sets them per level"
        )
    if isinstance(source_images, Dataset) or isinstance(pixel_arrays, np.ndarray):
        raise InputTypeError("source_images and pixel_arrays must be lists (one item per level)")
    seg_type = to_enum(SegmentationTypeValues, segmentation_type, "segmentation_type")
    _check_sources(source_images)
    if len(pixel_arrays) == 0:
        raise InputError("pixel_arrays must contain at least one array")
    matrices = [_matrix(array, f"pixel_arrays[{i}]") for i, array in enumerate(pixel_arrays)]
    dtype = matrices[0].dtype
    if dtype.kind not in "buif":
        raise InputTypeError(f"pixel_arrays must be bool, integer or float; got {dtype}")
    linear = dtype.kind == "f" and seg_type is SegmentationTypeValues.FRACTIONAL
    levels = list(_levels(source_images, matrices, downsample_factors, linear))
    if sop_instance_uids is not None and len(sop_instance_uids) != len(levels):
        raise InputError(f"sop_instance_uids has {len(sop_instance_uids)} items for {len(levels)} levels")
    series_uid = series_instance_uid or UID()
    pyramid = pyramid_uid or UID()
    first = source_images[0]
    first_shape = matrices[0].shape[:2]
    segmentations = []
    for level, (image, matrix) in enumerate(levels):
        measures = None
        if len(source_images) == 1:
            source_measures = first.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
            spacing = [float(v) for v in source_measures.PixelSpacing]
            measures = PixelMeasuresSequence(
                pixel_spacing=(spacing[0] * first_shape[0] / matrix.shape[0],
                               spacing[1] * first_shape[1] / matrix.shape[1]),
                slice_thickness=source_measures.get("SliceThickness"),
            )
        segmentations.append(Segmentation(
            source_images=[image],
            pixel_array=matrix,
            segmentation_type=seg_type,
            segment_descriptions=segment_descriptions,
            series_instance_uid=series_uid,
            series_number=series_number,
            sop_instance_uid=sop_instance_uids[level] if sop_instance_uids else UID(),
            instance_number=level + 1,
            manufacturer=manufacturer,
            manufacturer_model_name=manufacturer_model_name,
            software_versions=software_versions,
            device_serial_number=device_serial_number,
            pyramid_uid=pyramid,
            pyramid_label=pyramid_label,
            tile_pixel_array=True,
            pixel_measures=measures,
            **kwargs,
        ))
    return segmentations
