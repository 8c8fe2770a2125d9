"""Build a :class:`Volume` from a series of single-frame images (``hd.get_volume_from_series``).

The series is sorted along the slice normal, checked to be a regular volume
(common orientation, pixel spacing, frame of reference and series; distinct,
evenly spaced positions along the normal: PS3.3 C.7.6.2 Image Plane Module),
and its stored values are mapped to output values by the real-world value
mapping (PS3.3 C.7.6.16.2.11) or the modality rescale (PS3.3 C.11.1).
Datasets are read by duck typing (``ds.pixel_array``, attributes by keyword).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from monai_dicomseg.enums import CoordinateSystemNames
from monai_dicomseg.errors import GeometryError, InputError, UnsupportedError
from monai_dicomseg.geometry.affine import as_float_vector, regular_slice_spacing
from monai_dicomseg.geometry.channels import RGB_COLOR_CHANNEL_DESCRIPTOR
from monai_dicomseg.geometry.sorting import (
    check_common_frame_of_reference,
    check_common_orientation,
    get_plane_sort_index,
    read_image_position,
)
from monai_dicomseg.geometry.tolerances import (
    PERPENDICULAR_TOLERANCE,
    SPACING_RELATIVE_TOLERANCE,
)
from monai_dicomseg.geometry.sheared import ShearedVolume, ShearedVolumeGeometry
from monai_dicomseg.geometry.slice_grid import SliceGrid, plan_slice_grid
from monai_dicomseg.geometry.volume import Volume, VolumeGeometry

__all__ = ["get_volume_from_series", "stored_to_output_transform", "plan_series_grid", "get_series_volume"]


def _check_same(datasets: Sequence[Any], keyword: str) -> Any:
    first = getattr(datasets[0], keyword, None)
    for index, dataset in enumerate(datasets[1:], start=1):
        value = getattr(dataset, keyword, None)
        if value != first:
            raise GeometryError(
                f"datasets do not form one volume: {keyword} of dataset 0 is {first!r}, "
                f"of dataset {index} is {value!r}"
            )
    return first


def _linear_real_world_map(dataset: Any) -> "tuple[float, float] | None":
    items = getattr(dataset, "RealWorldValueMappingSequence", None)
    if not items:
        return None
    item = items[0]
    slope = getattr(item, "RealWorldValueSlope", None)
    intercept = getattr(item, "RealWorldValueIntercept", None)
    if slope is None or intercept is None:
        raise UnsupportedError(
            "RealWorldValueMappingSequence item 0 has no RealWorldValueSlope/Intercept; "
            "LUT-based real-world value maps are not supported"
        )
    return float(slope), float(intercept)


def _modality_rescale(dataset: Any) -> "tuple[float, float] | None":
    if getattr(dataset, "ModalityLUTSequence", None):
        raise UnsupportedError(
            "ModalityLUTSequence is not supported; pass apply_modality_transform=False "
            "to read stored values"
        )
    slope = getattr(dataset, "RescaleSlope", None)
    intercept = getattr(dataset, "RescaleIntercept", None)
    if slope is None and intercept is None:
        return None
    return float(1.0 if slope is None else slope), float(0.0 if intercept is None else intercept)


def stored_to_output_transform(
    dataset: Any,
    apply_real_world_transform: "bool | None" = None,
    apply_modality_transform: "bool | None" = None,
) -> "tuple[float, float] | None":
    """Linear ``(slope, intercept)`` mapping stored values of ``dataset`` to output values.

    ``True`` requires the transform, ``False`` skips it, ``None`` applies it
    if present. A real-world value map takes precedence over the modality
    rescale, as in highdicom.

    Returns
    -------
    tuple of float or None
        None when no transform applies.
    """
    if apply_real_world_transform and apply_modality_transform:
        raise InputError(
            "apply_real_world_transform and apply_modality_transform cannot both be True"
        )
    if apply_real_world_transform is not False:
        mapping = _linear_real_world_map(dataset)
        if mapping is not None:
            return mapping
        if apply_real_world_transform:
            raise InputError(
                "apply_real_world_transform=True but the dataset has no RealWorldValueMappingSequence"
            )
    if apply_modality_transform is not False:
        rescale = _modality_rescale(dataset)
        if rescale is None and apply_modality_transform:
            raise InputError(
                "apply_modality_transform=True but the dataset has no RescaleSlope/RescaleIntercept"
            )
        return rescale
    return None


def _check_single_frame_image_planes(datasets: Sequence[Any]) -> None:
    """Raise unless every dataset is single-frame with the Image Plane Module (PS3.3 C.7.6.2)."""
    for index, dataset in enumerate(datasets):
        if int(getattr(dataset, "NumberOfFrames", 1) or 1) > 1:
            raise GeometryError(
                f"dataset {index} is multi-frame (NumberOfFrames={dataset.NumberOfFrames}); "
                "get_volume_from_series expects single-frame images"
            )
        for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
            if getattr(dataset, keyword, None) is None:
                raise GeometryError(
                    f"dataset {index} has no {keyword}; a volume needs the Image Plane "
                    "Module (PS3.3 C.7.6.2) in the PATIENT coordinate system"
                )


def _image_planes(series_datasets: Sequence[Any]) -> "tuple[list[Any], str | None, np.ndarray, np.ndarray, np.ndarray]":
    """The checked image planes of a single-frame series (PS3.3 C.7.6.2).

    Returns
    -------
    tuple
        ``(datasets, FrameOfReferenceUID, (6,) orientation, (2,) pixel spacing, (N, 3) positions)``.

    Raises
    ------
    InputError
        No dataset.
    GeometryError
        A multi-frame dataset, missing Image Plane attributes, or mixed series / orientation / pixel
        spacing / frame of reference.
    """
    datasets = list(series_datasets)
    if not datasets:
        raise InputError("series_datasets must contain at least one dataset; got 0")
    _check_single_frame_image_planes(datasets)
    _check_same(datasets, "SeriesInstanceUID")
    frame_of_reference_uid = check_common_frame_of_reference(datasets)
    orientation = check_common_orientation(datasets)
    _check_same(datasets, "PixelSpacing")
    pixel_spacing = as_float_vector(datasets[0].PixelSpacing, 2, "PixelSpacing")
    positions = np.stack([read_image_position(ds, i) for i, ds in enumerate(datasets)])
    return datasets, frame_of_reference_uid, orientation, pixel_spacing, positions


def _stack_frames(datasets: Sequence[Any], dtype: Any, apply_real_world_transform: "bool | None",
                  apply_modality_transform: "bool | None") -> np.ndarray:
    """``(F, R, C[, 3])`` pixel data of sorted single-frame datasets, output transforms applied."""
    frames = []
    for dataset in datasets:
        frame = np.asarray(dataset.pixel_array)
        transform = stored_to_output_transform(
            dataset, apply_real_world_transform, apply_modality_transform
        )
        if transform is not None:
            slope, intercept = transform
            frame = frame.astype(np.float64) * slope + intercept
        frames.append(frame.astype(dtype, copy=False))
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise GeometryError(f"frames of the series have different shapes: {sorted(shapes)}")
    return np.stack(frames)


def get_volume_from_series(
    series_datasets: Sequence[Any],
    *,
    dtype: "type | str | np.dtype" = np.float64,
    apply_real_world_transform: "bool | None" = None,
    apply_modality_transform: "bool | None" = None,
    rtol: "float | None" = None,
    perpendicular_tol: "float | None" = None,
) -> Volume:
    """Volume ``(F, R, C)`` (``(F, R, C, 3)`` for RGB) from single-frame images of one series.

    Parameters
    ----------
    series_datasets
        Single-frame image datasets in any order.
    dtype
        dtype of the output array.
    apply_real_world_transform, apply_modality_transform
        See :func:`stored_to_output_transform`.
    rtol
        Relative tolerance on slice spacing regularity (default
        :data:`~monai_dicomseg.geometry.tolerances.SPACING_RELATIVE_TOLERANCE`).
    perpendicular_tol
        Tolerance on frames being stacked along the normal (default
        :data:`~monai_dicomseg.geometry.tolerances.PERPENDICULAR_TOLERANCE`).

    Raises
    ------
    InputError
        If the sequence is empty.
    GeometryError
        If a dataset is multi-frame or lacks Image Plane attributes, or the
        series is not one regularly spaced volume.
    """
    datasets, frame_of_reference_uid, orientation, pixel_spacing, positions = _image_planes(series_datasets)
    if len(datasets) == 1:
        spacing = float(getattr(datasets[0], "SpacingBetweenSlices", None) or 1.0)
    else:
        spacing = regular_slice_spacing(
            positions, orientation,
            rtol=SPACING_RELATIVE_TOLERANCE if rtol is None else rtol,
            perpendicular_tol=PERPENDICULAR_TOLERANCE if perpendicular_tol is None else perpendicular_tol,
        )
    order = get_plane_sort_index(positions, orientation)
    array = _stack_frames([datasets[index] for index in order], dtype,
                          apply_real_world_transform, apply_modality_transform)
    channels = {RGB_COLOR_CHANNEL_DESCRIPTOR: ["R", "G", "B"]} if array.ndim == 4 else None
    return Volume.from_attributes(
        array=array,
        image_position=positions[order[0]],
        image_orientation=orientation,
        pixel_spacing=pixel_spacing,
        spacing_between_slices=spacing,
        coordinate_system=CoordinateSystemNames.PATIENT,
        frame_of_reference_uid=frame_of_reference_uid,
        channels=channels,
    )


def _slice_names(datasets: Sequence[Any]) -> list[str]:
    names = []
    for index, dataset in enumerate(datasets):
        number = getattr(dataset, "InstanceNumber", None)
        names.append(f"InstanceNumber {number}" if number not in (None, "") else f"dataset {index}")
    return names


def plan_series_grid(
    series_datasets: Sequence[Any],
    *,
    irregular_slices: str = "error",
    rtol: "float | None" = None,
) -> tuple[SliceGrid, VolumeGeometry]:
    """Slice grid and geometry of single-frame images of one series, from headers only.

    Unlike :func:`get_volume_from_series` (highdicom's rule: orthogonal,
    regularly spaced volumes only), a sheared stack (gantry/detector tilt)
    is accepted exactly, and gaps or irregular spacing follow
    ``irregular_slices`` (:mod:`monai_dicomseg.geometry.slice_grid`).

    Parameters
    ----------
    series_datasets
        Single-frame image datasets (any order; grid indices refer to it).
    irregular_slices
        ``"error"`` (default), ``"fill"`` or ``"resample"``.
    rtol
        Relative tolerance on slice spacing regularity (default
        :data:`~monai_dicomseg.geometry.tolerances.SPACING_RELATIVE_TOLERANCE`).

    Returns
    -------
    tuple
        ``(SliceGrid, geometry)``; the geometry is ``(n, R, C)`` with the
        grid's LPS affine, a :class:`~monai_dicomseg.geometry.sheared.ShearedVolumeGeometry`
        when the grid is sheared.

    Raises
    ------
    GeometryError
        Multi-frame or incomplete datasets, mixed orientation / pixel spacing
        / frame of reference / series, duplicate positions, slices off a
        line, and gaps or irregular spacing (as ``irregular_slices`` says).
    """
    datasets, frame_of_reference_uid, orientation, pixel_spacing, positions = _image_planes(series_datasets)
    grid = plan_slice_grid(
        positions, orientation, irregular_slices=irregular_slices,
        spacing_hint=float(getattr(datasets[0], "SpacingBetweenSlices", None) or 1.0),
        rtol=SPACING_RELATIVE_TOLERANCE if rtol is None else rtol, slice_names=_slice_names(datasets))
    shape = (grid.number_of_slices, int(datasets[0].Rows), int(datasets[0].Columns))
    cls = ShearedVolumeGeometry if grid.sheared else VolumeGeometry
    geometry = cls(grid.affine(orientation, pixel_spacing), shape, CoordinateSystemNames.PATIENT,
                   frame_of_reference_uid)
    return grid, geometry


def _fill_value(datasets: Sequence[Any], frames: np.ndarray, transforms: dict[str, "bool | None"]) -> float:
    """Pixel Padding Value (PS3.3 C.7.5.1.1.2) as an output value, else the series minimum."""
    padding = getattr(datasets[0], "PixelPaddingValue", None)
    if padding is None:
        return float(frames.min())
    mapping = stored_to_output_transform(datasets[0], **transforms)
    value = float(padding)
    return value if mapping is None else value * mapping[0] + mapping[1]


def get_series_volume(
    series_datasets: Sequence[Any],
    *,
    irregular_slices: str = "error",
    dtype: "type | str | np.dtype" = np.float64,
    apply_real_world_transform: "bool | None" = None,
    apply_modality_transform: "bool | None" = None,
    rtol: "float | None" = None,
) -> tuple[Volume, SliceGrid]:
    """Volume of single-frame images of one series on its slice grid (sheared, filled or resampled).

    The series loader's builder (``load_source_series``): as
    :func:`get_volume_from_series`, plus a sheared stack loaded exactly (a
    :class:`~monai_dicomseg.geometry.sheared.ShearedVolume`) and the
    ``irregular_slices`` policy: ``"fill"`` fills missing slices with the
    Pixel Padding Value (PS3.3 C.7.5.1.1.2, as an output value) or else the
    series minimum; ``"resample"`` interpolates linearly (the array is then
    float, whatever ``dtype`` says for integer types: ``dtype`` applies).

    Parameters
    ----------
    series_datasets
        Single-frame image datasets (any order).
    irregular_slices, rtol
        See :func:`plan_series_grid`.
    dtype, apply_real_world_transform, apply_modality_transform
        See :func:`get_volume_from_series`.

    Returns
    -------
    tuple
        ``(volume (n, R, C[, 3]), SliceGrid)``.
    """
    datasets = list(series_datasets)
    grid, geometry = plan_series_grid(datasets, irregular_slices=irregular_slices, rtol=rtol)
    transforms = {"apply_real_world_transform": apply_real_world_transform,
                  "apply_modality_transform": apply_modality_transform}
    frames = _stack_frames(datasets, dtype, apply_real_world_transform, apply_modality_transform)
    fill = _fill_value(datasets, frames, transforms) if grid.kind == "filled" else 0.0
    array = grid.assemble(frames, fill)
    if grid.kind == "resampled" and np.issubdtype(np.dtype(dtype), np.integer):
        array = np.rint(array)  # interpolated values, rounded to the integer dtype asked for
    array = array.astype(dtype, copy=False)
    channels = {RGB_COLOR_CHANNEL_DESCRIPTOR: ["R", "G", "B"]} if array.ndim == 4 else None
    cls = ShearedVolume if grid.sheared else Volume
    return cls(array, geometry.affine, CoordinateSystemNames.PATIENT, geometry.frame_of_reference_uid,
               channels), grid
