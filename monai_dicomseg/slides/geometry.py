"""Slide geometry for patches: levels of a DICOM WSI, MONAI's patch convention, same-slide checks.

Torch-free (numpy + pydicom headers). MONAI's ``WSIReader`` convention,
which every function here follows: a patch is ``location = (top, left)`` in
**level-0 pixels** (row, column; ``(y, x)``), ``size = (height, width)`` in
pixels **of the requested level**, and ``level`` the pyramid index (0 = the
largest). In DICOM terms level ``k`` is one VL Whole Slide Microscopy Image
instance of the series (PS3.3 A.32.8) with its own TotalPixelMatrixRows/
Columns and Pixel Spacing; its downsample factor is its pixel spacing over
level 0's, per axis.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from monai_dicomseg.errors import GeometryError, InputError
from monai_dicomseg.seg.tiling import slide_geometry

__all__ = ["TiledPlane", "SlideImage", "tiled_plane", "level_region", "check_same_slide",
           "ORIGIN_TOLERANCE_PIXELS", "SPACING_TOLERANCE"]

#: Origins of two instances agree when they differ by less than this many level-0 pixels.
ORIGIN_TOLERANCE_PIXELS = 0.5
#: Relative tolerance of pixel spacings meant to be equal (a level "matches" within it).
SPACING_TOLERANCE = 1e-3
_WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"


@dataclass(frozen=True)
class TiledPlane:
    """The placement of one tiled instance's total pixel matrix on its slide.

    Attributes
    ----------
    rows, columns
        TotalPixelMatrixRows / TotalPixelMatrixColumns.
    tile_rows, tile_columns
        Rows / Columns (frame size).
    pixel_spacing
        ``(row spacing, column spacing)`` mm.
    origin
        ``(3,)`` slide coordinates (mm) of the top-left pixel (TotalPixelMatrixOriginSequence).
    orientation
        ImageOrientationSlide, 6 floats.
    frame_of_reference_uid, container_identifier
        Slide identity (``None`` where absent).
    sop_instance_uid, series_instance_uid
        The instance's identity.
    """

    rows: int
    columns: int
    tile_rows: int
    tile_columns: int
    pixel_spacing: tuple[float, float]
    origin: np.ndarray
    orientation: tuple[float, ...]
    frame_of_reference_uid: str | None
    container_identifier: str | None
    sop_instance_uid: str
    series_instance_uid: str


def tiled_plane(dataset: Dataset) -> TiledPlane:
    """The :class:`TiledPlane` of a tiled instance (a slide image level or a tiled SEG).

    Raises
    ------
    GeometryError
        ``dataset`` is not tiled (no TotalPixelMatrixRows / ImageOrientationSlide).
    """
    geometry = slide_geometry(dataset)
    if geometry is None:
        raise GeometryError(
            f"instance {dataset.get('SOPInstanceUID', '?')} is not a tiled image: it needs "
            "TotalPixelMatrixRows and ImageOrientationSlide (PS3.3 C.8.12.4)")
    container = dataset.get("ContainerIdentifier")
    return TiledPlane(
        rows=geometry.total_rows, columns=geometry.total_columns,
        tile_rows=geometry.tile_rows, tile_columns=geometry.tile_columns,
        pixel_spacing=geometry.pixel_spacing, origin=geometry.origin, orientation=geometry.orientation,
        frame_of_reference_uid=str(dataset.get("FrameOfReferenceUID") or "") or None,
        container_identifier=str(container) if container else None,
        sop_instance_uid=str(dataset.get("SOPInstanceUID", "")),
        series_instance_uid=str(dataset.get("SeriesInstanceUID", "")),
    )


def _is_volume_level(dataset: Dataset) -> bool:
    image_type = [str(v).upper() for v in (dataset.get("ImageType") or [])]
    return str(dataset.get("SOPClassUID", "")) == _WSI_SOP_CLASS and len(image_type) > 2 \
        and image_type[2] == "VOLUME" and "TotalPixelMatrixRows" in dataset


class SlideImage:
    """The pyramid levels of one DICOM WSI series, from headers only (no pixel is read).

    Parameters
    ----------
    datasets
        VL Whole Slide Microscopy Image instances of one series (headers are
        enough); instances other than VOLUME ones (LABEL, OVERVIEW,
        THUMBNAIL) are ignored. Levels are sorted largest first.
    path
        The file or folder the slide was read from (what a reader opens), if any.

    Raises
    ------
    InputError
        No VOLUME instance, or instances of several series.
    GeometryError
        Levels on different Frames of Reference, containers or origins.
    """

    def __init__(self, datasets: Sequence[Dataset], path: str | Path | None = None) -> None:
        volumes = [ds for ds in datasets if _is_volume_level(ds)]
        if not volumes:
            raise InputError("datasets holds no VL Whole Slide Microscopy VOLUME instance "
                             "(SOP Class 1.2.840.10008.5.1.4.1.1.77.1.6, ImageType value 3 VOLUME)")
        series = {str(ds.SeriesInstanceUID) for ds in volumes}
        if len(series) > 1:
            raise InputError(f"datasets must be one series; got {len(series)}: {sorted(series)}")
        planes = sorted((tiled_plane(ds) for ds in volumes), key=lambda p: (-p.rows * p.columns, p.sop_instance_uid))
        for plane in planes[1:]:
            check_same_slide(planes[0], plane, what=f"level {plane.sop_instance_uid}")
        self.levels: list[TiledPlane] = planes
        self.path = None if path is None else Path(path)

    @classmethod
    def from_path(cls, path: str | Path) -> "SlideImage":
        """Read the headers of a slide: a folder of its instances, or one instance (its folder is read).

        Instances of other series in the folder are left out (the series of
        ``path`` when it is a file, else the only WSI series).
        """
        path = Path(path)
        folder = path if path.is_dir() else path.parent
        headers = []
        for file in sorted(p for p in folder.iterdir() if p.is_file()):
            try:
                headers.append(pydicom.dcmread(file, stop_before_pixels=True))
            except (pydicom.errors.InvalidDicomError, OSError):
                continue
        if path.is_file():
            series = str(pydicom.dcmread(path, stop_before_pixels=True).get("SeriesInstanceUID", ""))
            headers = [ds for ds in headers if str(ds.get("SeriesInstanceUID", "")) == series]
        return cls(headers, path)

    @property
    def level_count(self) -> int:
        """Number of pyramid levels."""
        return len(self.levels)

    def level(self, level: int) -> TiledPlane:
        """The :class:`TiledPlane` of ``level`` (0 = largest); InputError when out of range."""
        if not isinstance(level, (int, np.integer)) or not 0 <= int(level) < len(self.levels):
            raise InputError(f"level must be an int in [0, {len(self.levels) - 1}]; got {level!r}")
        return self.levels[int(level)]

    def downsample(self, level: int) -> tuple[float, float]:
        """``(row, column)`` downsample factor of ``level`` against level 0 (pixel spacing ratio)."""
        plane, first = self.level(level), self.levels[0]
        return (plane.pixel_spacing[0] / first.pixel_spacing[0], plane.pixel_spacing[1] / first.pixel_spacing[1])

    @property
    def identity(self) -> dict[str, Any]:
        """``{"series_instance_uid", "frame_of_reference_uid", "container_identifier"}`` of the slide."""
        first = self.levels[0]
        return {"series_instance_uid": first.series_instance_uid,
                "frame_of_reference_uid": first.frame_of_reference_uid,
                "container_identifier": first.container_identifier}


def level_region(location: Sequence[int], size: Sequence[int], downsample: Sequence[float]) -> tuple[int, int, int, int]:
    """The 0-based ``(row, column, height, width)`` box, in level pixels, of a MONAI patch request.

    Parameters
    ----------
    location
        ``(top, left)`` in level-0 pixels (MONAI ``WSIReader``).
    size
        ``(height, width)`` in pixels of the level.
    downsample
        ``(row, column)`` downsample factor of the level.

    Raises
    ------
    InputError
        ``size`` not positive, or ``location`` not on the level's pixel grid
        (``location / downsample`` not an integer): an image reader would
        interpolate such a patch, and labels cannot be interpolated the same
        way; ask for a location that is a multiple of the downsample factor.
    """
    if len(location) != 2 or len(size) != 2:
        raise InputError(f"location and size must be (row, column) pairs; got {location!r}, {size!r}")
    if min(int(s) for s in size) < 1:
        raise InputError(f"size must be positive (height, width); got {tuple(size)}")
    start = []
    for axis, (value, factor) in enumerate(zip(location, downsample)):
        scaled = float(value) / float(factor)
        if abs(scaled - round(scaled)) > 1e-6:
            raise InputError(
                f"location[{axis}] = {value} is not on the level's pixel grid (downsample {factor:g}): "
                f"use a multiple of {factor:g}, e.g. {int(math.floor(scaled) * factor)}")
        start.append(int(round(scaled)))
    return start[0], start[1], int(size[0]), int(size[1])


def check_same_slide(reference: TiledPlane, other: TiledPlane, what: str = "segmentation") -> None:
    """Refuse ``other`` unless it lies on ``reference``'s slide, with the same matrix placement.

    Compared: Frame of Reference UID, Container Identifier (when both have
    one), Image Orientation (Slide) (1e-4), total pixel matrix origin (within
    half a pixel of the finer of the two), and the physical extent of the
    matrix (rows x row spacing, within one pixel of the coarser of the two).
    PS3.3 C.8.12.4, C.8.12.2.1.

    Raises
    ------
    GeometryError
        Naming the attribute, the expected and the actual value.
    """
    def refuse(attribute: str, expected: Any, actual: Any) -> None:
        raise GeometryError(f"{what} is not on this slide: {attribute} is {actual!r}, the slide's is "
                            f"{expected!r} (slide instance {reference.sop_instance_uid})")

    if reference.frame_of_reference_uid and other.frame_of_reference_uid != reference.frame_of_reference_uid:
        refuse("FrameOfReferenceUID", reference.frame_of_reference_uid, other.frame_of_reference_uid)
    if reference.container_identifier and other.container_identifier \
            and other.container_identifier != reference.container_identifier:
        refuse("ContainerIdentifier", reference.container_identifier, other.container_identifier)
    if not np.allclose(reference.orientation, other.orientation, atol=1e-4):
        refuse("ImageOrientationSlide", list(reference.orientation), list(other.orientation))
    fine = min(min(reference.pixel_spacing), min(other.pixel_spacing))
    if np.abs(np.asarray(reference.origin) - np.asarray(other.origin)).max() > ORIGIN_TOLERANCE_PIXELS * fine:
        refuse("TotalPixelMatrixOriginSequence (mm)", reference.origin.tolist(), other.origin.tolist())
    for axis, name in enumerate(("TotalPixelMatrixRows x PixelSpacing[0]", "TotalPixelMatrixColumns x PixelSpacing[1]")):
        extent = (reference.rows, reference.columns)[axis] * reference.pixel_spacing[axis]
        extent_other = (other.rows, other.columns)[axis] * other.pixel_spacing[axis]
        if abs(extent - extent_other) > max(reference.pixel_spacing[axis], other.pixel_spacing[axis]) * 1.0001:
            refuse(f"{name} (mm)", round(extent, 6), round(extent_other, 6))
