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
from monai_dicomseg.geometry.volume import Volume

__all__ = ["get_volume_from_series", "stored_to_output_transform"]


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
