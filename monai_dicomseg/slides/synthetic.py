"""Synthetic multi-level DICOM whole-slide images whose pixels encode their labels (test data).

A slide is built from one ground-truth label map at level 0 (``(R, C)``
uint8, 0 = background): level ``k`` holds the label map downsampled by
``2**k`` (centre sampling) and encoded in the red channel
(:func:`encode_labels` / :func:`decode_labels`), so any image patch read from
the slide by any reader tells which labels a SEG must give for it. Each
level is a VL Whole Slide Microscopy Image instance (TILED_FULL, PS3.3
A.32.8) of one series, built on :func:`monai_dicomseg.synthetic.make_slide_image`.
The default label map is drawn in 8 x 8 pixel blocks so that every
downsampling rule (nearest, centre, area, linear) agrees at levels 0 to 3.
"""
from __future__ import annotations

import copy
from pathlib import Path
from collections.abc import Sequence

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from monai_dicomseg import synthetic
from monai_dicomseg.errors import InputError

__all__ = ["slide_label_map", "encode_labels", "decode_labels", "downsample_labels",
           "make_slide_pyramid", "slide_headers", "write_slide"]

#: Red value of label ``n``: ``LABEL_BASE + n * LABEL_STEP`` (labels 0..4).
LABEL_BASE = 30
LABEL_STEP = 50

_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
           "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName", "SeriesInstanceUID",
           "SeriesDate", "SeriesTime", "ContentDate", "ContentTime", "AcquisitionDateTime",
           "SpecimenDescriptionSequence")


def slide_label_map(shape: tuple[int, int] = (768, 1024), block: int = 8) -> np.ndarray:
    """The default ground truth: three labelled regions drawn in ``block`` x ``block`` pixel blocks.

    Label 1 is a rectangle in the top-left quarter, 2 an ellipse right of the
    centre, 3 a small rectangle bottom-left; with the default 768 x 1024 and
    256-pixel tiles, the level-0 tiles (0, 2), (0, 3) and (1, 0) hold no label.

    Returns
    -------
    numpy.ndarray
        ``(R, C)`` uint8 label map.
    """
    rows, columns = int(shape[0]), int(shape[1])
    if rows % block or columns % block:
        raise InputError(f"shape must be a multiple of block={block}; got {shape}")
    by, bx = np.mgrid[0:rows // block, 0:columns // block] * block + block / 2
    fy, fx = by / rows, bx / columns
    labels = np.zeros(by.shape, np.uint8)
    labels[(fy > 0.04) & (fy < 0.29) & (fx > 0.05) & (fx < 0.39)] = 1
    labels[((fy - 0.68) / 0.16) ** 2 + ((fx - 0.68) / 0.2) ** 2 < 1] = 2
    labels[(fy > 0.78) & (fy < 0.91) & (fx > 0.08) & (fx < 0.2)] = 3
    return np.repeat(np.repeat(labels, block, axis=0), block, axis=1)


def encode_labels(labels: np.ndarray) -> np.ndarray:
    """RGB pixels encoding ``labels`` ``(R, C)`` (0..4) in red; green/blue are a texture.

    Returns
    -------
    numpy.ndarray
        ``(R, C, 3)`` uint8.
    """
    labels = np.asarray(labels)
    if labels.size and int(labels.max()) > 4:
        raise InputError(f"encode_labels encodes labels 0..4; got a maximum of {int(labels.max())}")
    rows, columns = np.indices(labels.shape)
    rgb = np.empty((*labels.shape, 3), np.uint8)
    rgb[..., 0] = LABEL_BASE + LABEL_STEP * labels.astype(np.int64)
    rgb[..., 1] = 100 + 40 * ((rows // 16 + columns // 16) % 2)
    rgb[..., 2] = 180
    return rgb


def decode_labels(rgb: np.ndarray, channel_axis: int = -1) -> np.ndarray:
    """The labels encoded by :func:`encode_labels` in ``rgb`` (nearest step; RGB or RGBA).

    Returns
    -------
    numpy.ndarray
        ``rgb``'s shape without the channel axis, uint8.
    """
    red = np.take(np.asarray(rgb), 0, axis=channel_axis).astype(np.float64)
    return np.clip(np.rint((red - LABEL_BASE) / LABEL_STEP), 0, 4).astype(np.uint8)


def downsample_labels(labels: np.ndarray, factor: int) -> np.ndarray:
    """``labels`` downsampled by an integer ``factor`` (the centre pixel of each block; 1: unchanged)."""
    factor = int(factor)
    if factor < 1:
        raise InputError(f"factor must be >= 1; got {factor}")
    return np.ascontiguousarray(labels[factor // 2::factor, factor // 2::factor][
        : labels.shape[0] // factor, : labels.shape[1] // factor])


def _level(template: Dataset | None, labels: np.ndarray, level: int, tile_shape: tuple[int, int],
           pixel_spacing: float, origin: tuple[float, float], frame_of_reference_uid: str,
           container_identifier: str, icc_profile: bytes | None) -> Dataset:
    """Level ``level`` of the pyramid (``template``: level 0, whose identity it shares)."""
    factor = 2 ** level
    matrix = downsample_labels(labels, factor)
    ds = synthetic.make_slide_image(
        total_shape=matrix.shape, tile_shape=tile_shape, pixel_spacing=pixel_spacing * factor, origin=origin,
        frame_of_reference_uid=frame_of_reference_uid, container_identifier=container_identifier,
        icc_profile=icc_profile)
    rows, columns = matrix.shape
    tile_rows, tile_columns = tile_shape
    padded = np.full((-(-rows // tile_rows) * tile_rows, -(-columns // tile_columns) * tile_columns, 3),
                     255, np.uint8)
    padded[:rows, :columns] = encode_labels(matrix)
    frames = (padded.reshape(padded.shape[0] // tile_rows, tile_rows, padded.shape[1] // tile_columns,
                             tile_columns, 3).swapaxes(1, 2).reshape(-1, tile_rows, tile_columns, 3))
    ds.PixelData = np.ascontiguousarray(frames).tobytes()
    ds.InstanceNumber = level + 1
    if template is not None:
        for keyword in _COPIED:
            if keyword in template:
                setattr(ds, keyword, template[keyword].value)
        image_type = ["DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"]
        ds.ImageType = image_type
        ds.SharedFunctionalGroupsSequence[0].WholeSlideMicroscopyImageFrameTypeSequence[0].FrameType = image_type
    return ds


def make_slide_pyramid(
    labels: np.ndarray | None = None,
    *,
    levels: int = 3,
    tile_shape: tuple[int, int] = (256, 256),
    pixel_spacing: float = 0.00025,
    origin: tuple[float, float] = (20.0, 25.0),
    frame_of_reference_uid: str | None = None,
    container_identifier: str = "SLIDE-0001",
    icc_profile: bytes | None = None,
) -> list[Dataset]:
    """A multi-level RGB DICOM WSI (one series, TILED_FULL) whose red channel encodes ``labels``.

    Parameters
    ----------
    labels
        ``(R, C)`` level-0 label map, values 0..4 (default :func:`slide_label_map`).
    levels
        Number of pyramid levels; level ``k`` is downsampled by ``2**k``.
    tile_shape
        ``(Rows, Columns)`` of the frames.
    pixel_spacing
        Level-0 pixel spacing (mm).
    origin, frame_of_reference_uid, container_identifier, icc_profile
        As :func:`monai_dicomseg.synthetic.make_slide_image` (an ICC profile
        makes RGB images conformant, PS3.3 C.8.12.5).

    Returns
    -------
    list[pydicom.Dataset]
        One VL Whole Slide Microscopy Image instance per level (largest
        first; level 0 ORIGINAL, the others DERIVED/RESAMPLED), sharing
        patient, study, series, specimen, Frame of Reference and (with
        several levels) PyramidUID.
    """
    labels = slide_label_map() if labels is None else np.asarray(labels)
    if labels.ndim != 2:
        raise InputError(f"labels must be (R, C); got shape {labels.shape}")
    if levels < 1 or min(labels.shape) // 2 ** (levels - 1) < 1:
        raise InputError(f"levels must be in [1, log2(min(shape)) + 1]; got {levels} for {labels.shape}")
    frame_of_reference_uid = frame_of_reference_uid or generate_uid()
    common = dict(tile_shape=tuple(tile_shape), pixel_spacing=pixel_spacing, origin=origin,
                  frame_of_reference_uid=frame_of_reference_uid, container_identifier=container_identifier,
                  icc_profile=icc_profile)
    first = _level(None, labels, 0, **common)  # type: ignore[arg-type]  # common holds the keyword arguments of _level by name (a dict of mixed value types)
    pyramid = [first] + [_level(first, labels, level, **common)  # type: ignore[arg-type]  # common holds the keyword arguments of _level by name (a dict of mixed value types)
                         for level in range(1, levels)]
    if levels > 1:  # the levels are one multi-resolution pyramid: Pyramid UID (0008,0019)
        pyramid_uid = generate_uid()
        for ds in pyramid:
            ds.PyramidUID = pyramid_uid
    return pyramid


def slide_headers(
    shape: tuple[int, int],
    *,
    levels: int = 2,
    tile_shape: tuple[int, int] = (256, 256),
    pixel_spacing: float = 0.00025,
    origin: tuple[float, float] = (20.0, 25.0),
    frame_of_reference_uid: str | None = None,
    container_identifier: str = "SLIDE-0001",
) -> list[Dataset]:
    """Headers (no Pixel Data) of a large multi-level RGB WSI: what patch geometry and SEG writing need.

    A gigapixel slide's pixels are not needed to place labels or to write a
    SEG of it (:class:`~monai_dicomseg.slides.SlideImage`,
    :class:`~monai_dicomseg.slides.SlideSegStitcher` read headers only); this
    builds the levels of :func:`make_slide_pyramid` at any size without
    allocating them (benchmarks). Level ``k`` is ``shape // 2**k``.

    Returns
    -------
    list[pydicom.Dataset]
        One header per level, largest first, sharing patient, study, series,
        Frame of Reference and PyramidUID; ``NumberOfFrames`` counts the tiles
        the level would have (TILED_FULL), ``PixelData`` is absent.
    """
    rows, columns = int(shape[0]), int(shape[1])
    if levels < 1 or min(rows, columns) // 2 ** (levels - 1) < 1:
        raise InputError(f"levels must be in [1, log2(min(shape)) + 1]; got {levels} for {shape}")
    small = make_slide_pyramid(np.zeros(tuple(tile_shape), np.uint8), levels=1, tile_shape=tile_shape,
                               pixel_spacing=pixel_spacing, origin=origin,
                               frame_of_reference_uid=frame_of_reference_uid,
                               container_identifier=container_identifier)[0]
    del small.PixelData
    headers, pyramid_uid = [], generate_uid()
    for level in range(levels):
        ds = copy.deepcopy(small)
        factor = 2 ** level
        level_rows, level_columns = rows // factor, columns // factor
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = level + 1
        ds.TotalPixelMatrixRows, ds.TotalPixelMatrixColumns = level_rows, level_columns
        ds.ImagedVolumeWidth = level_columns * pixel_spacing * factor
        ds.ImagedVolumeHeight = level_rows * pixel_spacing * factor
        ds.NumberOfFrames = -(-level_rows // tile_shape[0]) * -(-level_columns // tile_shape[1])
        spacing = f"{pixel_spacing * factor:.12g}"
        ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing = [spacing, spacing]
        if levels > 1:
            ds.PyramidUID = pyramid_uid
        if level:
            ds.ImageType = ["DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"]
            ds.SharedFunctionalGroupsSequence[0].WholeSlideMicroscopyImageFrameTypeSequence[0].FrameType = \
                ds.ImageType
        headers.append(ds)
    return headers


def write_slide(datasets: Sequence[Dataset], folder: str | Path) -> list[Path]:
    """Write the levels as ``folder/level-0.dcm, level-1.dcm, ...`` (the folder is one series).

    Returns
    -------
    list[pathlib.Path]
        The written paths, level 0 first.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for level, dataset in enumerate(datasets):
        path = folder / f"level-{level}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
