"""Spatial sorting of single-frame image datasets (the guide's ``hd.spatial.sort_datasets``).

Datasets are read by duck typing: anything with ``ImagePositionPatient``,
``ImageOrientationPatient`` (PS3.3 C.7.6.2 Image Plane Module) and optionally
``FrameOfReferenceUID`` attributes works; pydicom is never imported here.
"""
from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any, TypeVar

import numpy as np

from monai_dicomseg.errors import GeometryError, InputError
from monai_dicomseg.geometry.affine import as_float_vector, check_image_orientation
from monai_dicomseg.geometry.orientation import AxisHandedness
from monai_dicomseg.geometry.tolerances import DIRECTION_COSINE_TOLERANCE

__all__ = [
    "read_image_orientation",
    "read_image_position",
    "check_common_frame_of_reference",
    "check_common_orientation",
    "get_plane_sort_index",
    "get_dataset_sort_index",
    "sort_datasets",
]

D = TypeVar("D")


def _read_attribute(dataset: Any, keyword: str, index: int) -> Any:
    value = getattr(dataset, keyword, None)
    if value is None:
        raise GeometryError(
            f"dataset {index} has no {keyword}; spatial sorting needs "
            "ImagePositionPatient and ImageOrientationPatient (PS3.3 C.7.6.2)"
        )
    return value


def read_image_position(dataset: Any, index: int = 0) -> np.ndarray:
    """``ImagePositionPatient`` of ``dataset`` as ``(3,) float64`` (GeometryError if absent)."""
    value = _read_attribute(dataset, "ImagePositionPatient", index)
    try:
        return as_float_vector(value, 3, f"ImagePositionPatient of dataset {index}")
    except InputError as error:
        raise GeometryError(str(error)) from None


def read_image_orientation(dataset: Any, index: int = 0) -> np.ndarray:
    """``ImageOrientationPatient`` of ``dataset`` as ``(6,) float64`` (GeometryError if absent)."""
    value = _read_attribute(dataset, "ImageOrientationPatient", index)
    try:
        return as_float_vector(value, 6, f"ImageOrientationPatient of dataset {index}")
    except InputError as error:
        raise GeometryError(str(error)) from None


def check_common_frame_of_reference(datasets: Sequence[Any]) -> "str | None":
    """Return the shared ``FrameOfReferenceUID`` (None if no dataset has one).

    Raises
    ------
    GeometryError
        If two datasets carry different values, or only some carry one.
    """
    uids = [getattr(ds, "FrameOfReferenceUID", None) for ds in datasets]
    present = {str(u) for u in uids if u is not None}
    if not present:
        return None
    if len(present) > 1 or None in uids:
        first = str(uids[0])
        other = next(i for i, u in enumerate(uids) if (None if u is None else str(u)) != first)
        raise GeometryError(
            f"datasets do not share a FrameOfReferenceUID: dataset 0 has {first!r}, "
            f"dataset {other} has {uids[other]!r}"
        )
    return present.pop()


def check_common_orientation(
    datasets: Sequence[Any], tol: float = DIRECTION_COSINE_TOLERANCE
) -> np.ndarray:
    """Return the ``ImageOrientationPatient`` shared by all datasets.

    Raises
    ------
    GeometryError
        If an orientation is missing or differs from dataset 0's by more
        than ``tol`` in any direction cosine.
    """
    reference = check_image_orientation(read_image_orientation(datasets[0], 0))
    for index, dataset in enumerate(datasets[1:], start=1):
        orientation = read_image_orientation(dataset, index)
        if not np.allclose(orientation, reference, atol=tol, rtol=0.0):
            raise GeometryError(
                f"datasets have mixed ImageOrientationPatient: dataset 0 has "
                f"{reference.tolist()}, dataset {index} has {orientation.tolist()}"
            )
    return reference


def _normal_for_convention(
    image_orientation: np.ndarray,
    index_convention: "str | Sequence[str | Enum]",
    handedness: "str | AxisHandedness",
) -> np.ndarray:
    letters = [c.value if isinstance(c, Enum) else str(c) for c in index_convention]
    horizontal = [c for c in letters if c in ("R", "L")]
    vertical = [c for c in letters if c in ("D", "U")]
    if len(letters) != 2 or len(horizontal) != 1 or len(vertical) != 1:
        raise InputError(
            f"index_convention must be one of R/L and one of D/U, such as 'DR'; "
            f"got {index_convention!r}"
        )
    axes = {
        "R": image_orientation[:3], "L": -image_orientation[:3],
        "D": image_orientation[3:], "U": -image_orientation[3:],
    }
    first, second = axes[letters[0]], axes[letters[1]]
    handed = AxisHandedness(handedness.value if isinstance(handedness, Enum) else handedness)
    return np.cross(first, second) if handed == AxisHandedness.RIGHT_HANDED else np.cross(second, first)


def get_plane_sort_index(
    image_positions: "np.ndarray | Sequence[Sequence[float]]",
    image_orientation: "np.ndarray | Sequence[float]",
    index_convention: "str | Sequence[str | Enum]" = "DR",
    handedness: "str | AxisHandedness" = AxisHandedness.RIGHT_HANDED,
) -> list[int]:
    """Indices that order planes along the slice normal.

    Parameters
    ----------
    image_positions
        ``(N, 3)`` plane positions.
    image_orientation
        Shared orientation, 6 direction cosines.
    index_convention, handedness
        Define the positive normal as in highdicom: with the default
        ``'DR'`` and right-handed, ``cross(column_cosines, row_cosines)``,
        the frame axis of a :class:`~monai_dicomseg.geometry.volume.Volume`.

    Returns
    -------
    list of int
        Element ``k`` is the input index of the ``k``-th plane in sorted order.
    """
    points = np.asarray(image_positions, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise InputError(f"image_positions must have shape (N, 3); got {points.shape}")
    cosines = as_float_vector(image_orientation, 6, "image_orientation")
    normal = _normal_for_convention(cosines, index_convention, handedness)
    return np.argsort(points @ normal, kind="stable").tolist()


def get_dataset_sort_index(
    datasets: Sequence[Any],
    index_convention: "str | Sequence[str | Enum]" = "DR",
    handedness: "str | AxisHandedness" = AxisHandedness.RIGHT_HANDED,
) -> list[int]:
    """Indices that sort single-frame datasets along their slice normal.

    Raises
    ------
    InputError
        If ``datasets`` is empty.
    GeometryError
        If a dataset is multi-frame or lacks position/orientation, if
        orientations differ, or if FrameOfReferenceUIDs differ.
    """
    if len(datasets) == 0:
        raise InputError("datasets must contain at least one dataset; got 0")
    for index, dataset in enumerate(datasets):
        frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
        if frames > 1:
            raise GeometryError(
                f"dataset {index} has NumberOfFrames={frames}; sort_datasets expects "
                "single-frame images"
            )
    orientation = check_common_orientation(datasets)
    check_common_frame_of_reference(datasets)
    positions = np.stack([read_image_position(ds, i) for i, ds in enumerate(datasets)])
    return get_plane_sort_index(positions, orientation, index_convention, handedness)


def sort_datasets(
    datasets: Sequence[D],
    index_convention: "str | Sequence[str | Enum]" = "DR",
    handedness: "str | AxisHandedness" = AxisHandedness.RIGHT_HANDED,
) -> list[D]:
    """Sort single-frame datasets spatially along the slice normal.

    The order is the one in which the frames of a volume built from the
    series are stacked (axis 0 of :class:`Volume`): increasing distance
    along ``cross(column_cosines, row_cosines)`` by default.

    Parameters
    ----------
    datasets
        Single-frame image datasets with a common orientation and frame of
        reference.
    index_convention, handedness
        See :func:`get_plane_sort_index`.

    Returns
    -------
    list
        The same dataset objects, sorted.
    """
    order = get_dataset_sort_index(datasets, index_convention, handedness)
    return [datasets[i] for i in order]
