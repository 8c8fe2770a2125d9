"""The SEG encode pipeline behind :class:`~monai_dicomseg.seg.Segmentation`.

``encode_segmentation`` validates the inputs, plans the frames and fills a
dataset with the modules of the Segmentation IOD (PS3.3 A.51) — or of the
Label Map Segmentation IOD for LABELMAP (``SegSOPClass.LABEL_MAP_SEGMENTATION``).
Per-frame data are encoded as bytes (see :mod:`monai_dicomseg.codec.raw`).
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID as PydicomUID

from monai_dicomseg.codec import raw
from monai_dicomseg.codec.bitpack import pack_bits, packed_length, place_frame_bits, unpack_bits
from monai_dicomseg.codec.compression import (
    check_transfer_syntax,
    encode_frames,
    resolve_workers,
)
from monai_dicomseg.codec.functional_groups import (
    derivation_group,
    per_frame_functional_groups,
    plane_position_group,
    slide_position_group,
)
from monai_dicomseg.codec import pixel_data
from monai_dicomseg.codec.encapsulated_pixel_data import set_encapsulated_pixel_data
from monai_dicomseg.codec.decode import deferred_pixel_source
from monai_dicomseg.codec.frame_store import FrameStore
from monai_dicomseg.codec.pixel_data import (
    StreamedPixelData,
    encode_binary_frames,
    encode_byte_frames,
    install_pixel_source,
    join_frames,
    native_pixel_data_length,
)
from monai_dicomseg.enums import (
    CoordinateSystemNames,
    DimensionOrganizationTypeValues,
    SegmentationFractionalTypeValues,
    SegmentationTypeValues,
    SegSOPClass,
    to_enum,
)
from monai_dicomseg.errors import (
    EncodeError,
    GeometryError,
    InputError,
    InputTypeError,
    UnsupportedError,
)
from monai_dicomseg.geometry.affine import (
    image_orientation_from_affine,
    pixel_spacing_from_affine,
    plane_positions_from_affine,
    slice_spacing_from_affine,
)
from monai_dicomseg.seg.content import SegmentDescription
from monai_dicomseg.seg.frames import FramePlan, plan_frames
from monai_dicomseg.codec.vr import ARGUMENT_NAMES, check_argument, check_dataset_values
from monai_dicomseg.seg.inputs import (
    SegmentPixels,
    StackedSegmentSource,
    is_array_like,
    labelmap_dtype,
    prepare_pixels,
)
from monai_dicomseg.seg.modules import (
    copy_patient_and_study,
    set_common_instance_reference,
    set_instance_dates,
    set_raw,
    set_series_and_equipment,
)
from monai_dicomseg.seg.placement import (
    PlanePlacement,
    aligned_placement,
    explicit_placement,
    tiled_placement,
)
from monai_dicomseg.seg.sources import SourceFrames, collect_source_frames, require_pixel_spacing
from monai_dicomseg.seg.tiling import TileView, cut_tiles
from monai_dicomseg.uid import UID

__all__ = [
    "encode_segmentation", "EncodeOptions", "ENCODE_OPTION_NAMES",
]

_IMPLEMENTATION_VERSION = "MONAI_DICOMSEG01"


@dataclass(frozen=True)
class EncodeOptions:
    """Every option of one encode call, declared once.

    :class:`~monai_dicomseg.seg.Segmentation` keeps highdicom's explicit
    constructor signature (the only place the defaults are written) and builds
    one ``EncodeOptions`` from its arguments; :func:`encode_segmentation`
    takes it, and :meth:`normalised` checks and converts the values once.
    Meanings: as the :class:`~monai_dicomseg.seg.Segmentation` parameters of
    the same names.
    """

    segmentation_type: SegmentationTypeValues | str
    series_instance_uid: str
    series_number: int
    sop_instance_uid: str
    instance_number: int
    manufacturer: str
    manufacturer_model_name: str
    software_versions: str | Sequence[str]
    device_serial_number: str
    fractional_type: SegmentationFractionalTypeValues | str | None
    max_fractional_value: int
    content_description: str | None
    content_creator_name: str | None
    transfer_syntax_uid: str
    omit_empty_frames: bool
    content_label: str | None
    workers: int
    use_extended_offset_table: bool
    dimension_organization_type: DimensionOrganizationTypeValues | str | None
    tile_pixel_array: bool
    tile_size: Sequence[int] | None
    pyramid_uid: str | None
    pyramid_label: str | None
    plane_positions: Sequence[Any] | None
    plane_orientation: Any | None
    pixel_measures: Any | None

    def normalised(self) -> "EncodeOptions":
        """A copy with enums, ints and bools checked and converted (the transfer syntax checked).

        Raises
        ------
        InputError, InputTypeError
            An unknown enum value (no ``fractional_type`` for FRACTIONAL),
            ``max_fractional_value`` outside [1, 255] or not an int, an
            unsupported transfer syntax, a malformed UID or a series/instance
            number that is not an int of at least 1 (before any pixel is read).
        """
        seg_type = to_enum(SegmentationTypeValues, self.segmentation_type, "segmentation_type")
        for keyword in ("SeriesInstanceUID", "SeriesNumber", "SOPInstanceUID", "InstanceNumber"):
            check_argument(ARGUMENT_NAMES[keyword], keyword, getattr(self, ARGUMENT_NAMES[keyword]))  # before any pixel
        if self.fractional_type in (None, "") and seg_type is SegmentationTypeValues.FRACTIONAL:
            raise InputError("fractional_type must be 'PROBABILITY' or 'OCCUPANCY' for a FRACTIONAL segmentation "
                             f"(SegmentationFractionalType, Type 1C, PS3.3 C.8.20.2); got {self.fractional_type!r}")
        frac_type = to_enum(SegmentationFractionalTypeValues,
                            self.fractional_type or SegmentationFractionalTypeValues.PROBABILITY, "fractional_type")
        max_fractional_value = self.max_fractional_value
        if isinstance(max_fractional_value, bool) or not isinstance(max_fractional_value, (int, np.integer)):
            raise InputTypeError(
                f"max_fractional_value must be an int; got {type(max_fractional_value).__name__}"
            )
        if not 1 <= int(max_fractional_value) <= 255:
            raise InputError(f"max_fractional_value must be in [1, 255]; got {max_fractional_value}")
        syntax = check_transfer_syntax(self.transfer_syntax_uid, seg_type.value)
        return replace(
            self, segmentation_type=seg_type, fractional_type=frac_type,
            max_fractional_value=int(max_fractional_value), omit_empty_frames=bool(self.omit_empty_frames),
            transfer_syntax_uid=syntax, workers=resolve_workers(self.workers),
            use_extended_offset_table=bool(self.use_extended_offset_table),
        )


ENCODE_OPTION_NAMES = tuple(f.name for f in fields(EncodeOptions))
"""Names of the :class:`EncodeOptions` fields (the ``Segmentation`` parameters that are options)."""


def check_segment_descriptions(segment_descriptions: Sequence[SegmentDescription]) -> list[SegmentDescription]:
    """Check that descriptions are numbered 1, 2, 3, … in order (PS3.3 C.8.20.2).

    Raises
    ------
    InputError
        Empty, not starting at 1 or not consecutive.
    InputTypeError
        An item is not a Dataset with a SegmentNumber.
    """
    if isinstance(segment_descriptions, Dataset) or not isinstance(segment_descriptions, Sequence):
        raise InputTypeError(
            "segment_descriptions must be a list of SegmentDescription; "
            f"got {type(segment_descriptions).__name__}"
        )
    if len(segment_descriptions) == 0:
        raise InputError("segment_descriptions must contain at least one SegmentDescription")
    for index, description in enumerate(segment_descriptions):
        if not isinstance(description, Dataset) or "SegmentNumber" not in description:
            raise InputTypeError(
                f"segment_descriptions[{index}] must be a SegmentDescription; "
                f"got {type(description).__name__}"
            )
        if int(description.SegmentNumber) != index + 1:
            numbers = [int(d.SegmentNumber) for d in segment_descriptions if "SegmentNumber" in d]
            raise InputError(
                "segment_descriptions must be numbered consecutively from 1 "
                f"(expected segment_number {index + 1} at position {index}); got numbers {numbers}"
            )
    return list(segment_descriptions)


def _frame_shape(array: Any) -> tuple[int, int, int] | None:
    """``(F, R, C)`` of a 2D/3D/4D ``pixel_array`` from its shape alone (no value is read)."""
    shape = getattr(array, "shape", None)
    known = isinstance(array, (np.ndarray, StackedSegmentSource, TileView)) or is_array_like(array)
    if not known or shape is None or len(shape) not in (2, 3, 4):
        return None  # prepare_pixels reports the type / rank
    return (1, *shape) if len(shape) == 2 else tuple(shape[:3])


def _check_shape_against_sources(shape: tuple[int, int, int], sources: SourceFrames) -> None:
    """Compare ``(F, R, C)`` with the source frames before any pixel value is scanned."""
    frames, rows, columns = shape
    if frames != sources.number_of_frames:
        kind = "source frames" if sources.is_multiframe else "source images"
        raise InputError(
            f"pixel_array has {frames} frames (axis 0) but there are {sources.number_of_frames} "
            f"{kind} in source_images; they must correspond one to one"
        )
    if (rows, columns) != (sources.rows, sources.columns):
        raise InputError(
            f"pixel_array frames are {rows}x{columns} but the source_images are "
            f"{sources.rows}x{sources.columns} (Rows x Columns)"
        )


def _volume_planes(volume: Any, sources: SourceFrames) -> tuple[np.ndarray, dict[str, Any]]:
    """Array and plane geometry of a :class:`~monai_dicomseg.geometry.volume.Volume` input."""
    if volume.coordinate_system is not CoordinateSystemNames.PATIENT:
        raise UnsupportedError(
            f"pixel_array is a Volume in the {volume.coordinate_system.value} coordinate system; "
            "only PATIENT volumes are supported here"
        )
    if (volume.frame_of_reference_uid is not None and sources.frame_of_reference_uid is not None
            and str(volume.frame_of_reference_uid) != sources.frame_of_reference_uid):
        raise GeometryError(
            f"pixel_array Volume has FrameOfReferenceUID {volume.frame_of_reference_uid} but the "
            f"source_images have {sources.frame_of_reference_uid}"
        )
    array = volume.array
    if array.ndim == 4:
        keywords = [descriptor.keyword for descriptor in volume.channel_descriptors]
        if keywords != ["SegmentNumber"]:
            raise InputError(
                "a 4D pixel_array Volume must have exactly one channel axis, 'SegmentNumber'; "
                f"got channels {keywords}"
            )
        numbers = [int(v) for v in volume.get_channel_values("SegmentNumber")]
        if numbers != list(range(1, len(numbers) + 1)):
            order = np.argsort(numbers)
            numbers = [numbers[i] for i in order]
            if numbers != list(range(1, len(numbers) + 1)):
                raise InputError(
                    "pixel_array Volume SegmentNumber channel must hold 1..S; "
                    f"got {volume.get_channel_values('SegmentNumber')}"
                )
            array = array[..., order]
    elif array.ndim != 3:
        raise InputError(f"pixel_array Volume must be 3D or 4D; got shape {array.shape}")
    affine = volume.affine
    geometry = {
        "positions": plane_positions_from_affine(affine, array.shape[0]),
        "orientation": tuple(image_orientation_from_affine(affine)),
        "pixel_spacing": tuple(pixel_spacing_from_affine(affine)),
        "slice_thickness": float(slice_spacing_from_affine(affine)),
        "spacing_between_slices": float(slice_spacing_from_affine(affine)),
    }
    return array, geometry


def _explicit_planes(sources: SourceFrames, number_of_planes: int, plane_positions: Any,
                     plane_orientation: Any, pixel_measures: Any) -> dict[str, Any]:
    """Plane geometry given by plane_positions / plane_orientation / pixel_measures arguments."""
    if plane_positions is None:
        if sources.positions is None:
            raise GeometryError("plane_positions are required: the source_images have no plane positions")
        positions = sources.positions
    else:
        if len(plane_positions) != number_of_planes:
            raise InputError(
                f"plane_positions has {len(plane_positions)} items but pixel_array has "
                f"{number_of_planes} frames (axis 0)"
            )
        try:
            positions = np.array([[float(v) for v in p[0].ImagePositionPatient] for p in plane_positions])
        except (AttributeError, IndexError, TypeError) as error:
            raise InputTypeError(
                "plane_positions must be a list of PlanePositionSequence with ImagePositionPatient"
            ) from error
    if plane_orientation is None:
        if sources.orientation is None:
            raise GeometryError("plane_orientation is required: the source_images have no orientation")
        orientation = tuple(float(v) for v in sources.orientation)
    else:
        orientation = tuple(float(v) for v in plane_orientation[0].ImageOrientationPatient)
    if pixel_measures is None:
        if sources.pixel_spacing is None:
            raise GeometryError("pixel_measures are required: the source_images have no PixelSpacing")
        spacing: tuple = sources.pixel_spacing
        thickness, between = sources.slice_thickness, None  # spacing: from the plane positions
    else:
        item = pixel_measures[0]
        spacing = tuple(float(v) for v in item.PixelSpacing)
        thickness = float(item.SliceThickness) if item.get("SliceThickness") is not None else None  # type: ignore[assignment]  # a DS string (from the sources) or a float (from pixel_measures); both are written through raw.ds_value
        between = (float(item.SpacingBetweenSlices)
                   if item.get("SpacingBetweenSlices") is not None else None)
    return {"positions": positions, "orientation": orientation, "pixel_spacing": spacing,
            "slice_thickness": thickness, "spacing_between_slices": between,
            "positions_given": plane_positions is not None}


def _tile_total_pixel_matrix(sources: SourceFrames, pixel_array: Any, tile_size: Any,
                             plane_positions: Any, pixel_measures: Any) -> tuple[np.ndarray, PlanePlacement]:
    """Cut a total pixel matrix into tiles (guide, "Constructing SEG Images from a Total Pixel Matrix")."""
    from monai_dicomseg.geometry.volume import Volume

    if sources.slide is None:
        raise InputError(
            "tile_pixel_array=True needs a tiled source image (with TotalPixelMatrixRows, "
            "TotalPixelMatrixColumns and ImageOrientationSlide); the source_images are not tiled"
        )
    if plane_positions is not None:
        raise UnsupportedError("plane_positions together with tile_pixel_array=True is not supported")
    spacing = None
    thickness = None
    if isinstance(pixel_array, Volume):
        array = pixel_array.array
        spacing = tuple(float(v) for v in pixel_array.pixel_spacing)
        array = array[0] if array.shape[0] == 1 else array
    else:
        array = pixel_array
    on_disk = isinstance(array, np.memmap) or is_array_like(array)  # read tile by tile, never whole
    if not isinstance(array, np.ndarray) and not on_disk:
        raise InputTypeError(f"pixel_array must be a numpy array or a Volume; got {type(array).__name__}")
    if len(array.shape) in (3, 4):
        if array.shape[0] != 1:
            raise InputError(
                "with tile_pixel_array=True pixel_array must hold one total pixel matrix "
                f"((R, C), (1, R, C) or (1, R, C, S)); got shape {array.shape}"
            )
        array = array[0] if not on_disk or isinstance(array, np.memmap) else _FirstPlane(array)  # type: ignore[assignment]  # an on-disk array's first plane, read lazily (an array-like)
    if len(array.shape) not in (2, 3):
        raise InputError(
            "with tile_pixel_array=True pixel_array must be (R, C), (1, R, C) or (1, R, C, S); "
            f"got shape {array.shape}"
        )
    if pixel_measures is not None:
        spacing = tuple(float(v) for v in pixel_measures[0].PixelSpacing)
        thickness = pixel_measures[0].get("SliceThickness")
    if tile_size is None:
        tile_size = (sources.slide.tile_rows, sources.slide.tile_columns)
    try:
        tile_rows, tile_columns = (int(v) for v in tile_size)
    except (TypeError, ValueError):
        raise InputError(f"tile_size must be (rows, columns); got {tile_size!r}") from None
    if tile_rows < 1 or tile_columns < 1 or tile_rows > 65535 or tile_columns > 65535:
        raise InputError(f"tile_size must be two integers in [1, 65535]; got {tuple(tile_size)}")
    tiles = TileView(array, tile_rows, tile_columns) if on_disk else cut_tiles(array, tile_rows, tile_columns)[0]
    placement, _ = tiled_placement(sources, array.shape[:2], (tile_rows, tile_columns), spacing, thickness)  # type: ignore[arg-type]  # PixelSpacing holds 2 values
    return tiles, placement  # type: ignore[return-value]  # a TileView is an array-like of the tiles; the annotation names ndarray


class _FirstPlane:
    """``array[0]`` of an array-like ``(1, R, C[, S])``, still read lazily."""

    def __init__(self, array: Any) -> None:
        self._array = array
        self.shape = tuple(int(n) for n in array.shape[1:])
        self.dtype = array.dtype

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        return np.asarray(self._array[(0,) + key])


def _resolve_placement(sources: SourceFrames, pixel_array: Any, plane_positions: Any,
                       plane_orientation: Any, pixel_measures: Any, tile_pixel_array: bool = False,
                       tile_size: Any = None) -> tuple[np.ndarray, PlanePlacement]:
    """The array to encode and where its planes sit (aligned with the sources, explicit or tiled)."""
    from monai_dicomseg.geometry.volume import Volume

    if tile_pixel_array:
        return _tile_total_pixel_matrix(sources, pixel_array, tile_size, plane_positions, pixel_measures)
    if tile_size is not None:
        raise InputError("tile_size is only used with tile_pixel_array=True")

    if isinstance(pixel_array, Volume):
        if plane_positions is not None or plane_orientation is not None or pixel_measures is not None:
            raise InputError(
                "plane_positions, plane_orientation and pixel_measures must be None when "
                "pixel_array is a Volume (its affine defines them)"
            )
        array, geometry = _volume_planes(pixel_array, sources)
    elif plane_positions is None and plane_orientation is None and pixel_measures is None:
        return pixel_array, aligned_placement(sources)
    elif sources.slide is not None:
        raise UnsupportedError(
            "explicit plane geometry for slide microscopy sources is not supported; pass the "
            "total pixel matrix with tile_pixel_array=True"
        )
    else:
        if not isinstance(pixel_array, np.ndarray):
            raise InputTypeError(f"pixel_array must be a numpy array or a Volume; got {type(pixel_array).__name__}")
        planes = 1 if pixel_array.ndim == 2 else pixel_array.shape[0]
        array = pixel_array
        geometry = _explicit_planes(sources, planes, plane_positions, plane_orientation, pixel_measures)
    if sources.coordinate_system is None:
        raise GeometryError(
            "the source_images have no Frame of Reference / plane geometry, so the segmentation "
            "cannot be placed by plane positions or a Volume"
        )
    frame_shape = tuple(array.shape[1:3]) if array.ndim >= 3 else tuple(array.shape)
    return array, explicit_placement(sources, frame_shape=frame_shape, **geometry)


def _bits_allocated(segmentation_type: SegmentationTypeValues, number_of_segments: int) -> int:
    """BitsAllocated of a segmentation type (PS3.3 C.8.20.2): 1 BINARY, 8 FRACTIONAL, 8/16 LABELMAP."""
    if segmentation_type is SegmentationTypeValues.BINARY:
        return 1
    if segmentation_type is SegmentationTypeValues.FRACTIONAL:
        return 8
    return labelmap_dtype(number_of_segments).itemsize * 8


def _set_image_pixel(dataset: Dataset, options: EncodeOptions, rows: int, columns: int,
                     number_of_segments: int) -> int:
    """Image Pixel (C.7.6.3) and Segmentation Image (C.8.20.2) pixel attributes; returns BitsAllocated."""
    seg_type = options.segmentation_type
    bits = _bits_allocated(seg_type, number_of_segments)  # type: ignore[arg-type]  # options are normalised (EncodeOptions.normalised): enum / UID values here
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.Rows = rows
    dataset.Columns = columns
    dataset.BitsAllocated = bits
    dataset.BitsStored = bits
    dataset.HighBit = bits - 1
    dataset.PixelRepresentation = 0
    dataset.LossyImageCompression = "00"
    if seg_type is SegmentationTypeValues.LABELMAP:
        dataset.add_new("PixelPaddingValue", "US", 0)
    dataset.PresentationLUTShape = "IDENTITY"
    return bits


def _set_segmentation_image(dataset: Dataset, options: EncodeOptions, pixels: SegmentPixels,
                            descriptions: list[SegmentDescription], content_label: str | None,
                            content_description: str | None, content_creator_name: str | None) -> None:
    """Segmentation Image Module (PS3.3 C.8.20.2)."""
    seg_type = options.segmentation_type
    dataset.ImageType = ["DERIVED", "PRIMARY"]
    dataset.ContentLabel = content_label or "SEGMENTATION"
    dataset.ContentDescription = content_description
    dataset.ContentCreatorName = content_creator_name
    dataset.SegmentationType = seg_type.value  # type: ignore[union-attr]  # options are normalised (EncodeOptions.normalised): enum / UID values here
    if seg_type is SegmentationTypeValues.FRACTIONAL:
        dataset.SegmentationFractionalType = options.fractional_type.value  # type: ignore[union-attr]  # options are normalised (EncodeOptions.normalised): enum / UID values here
        dataset.MaximumFractionalValue = options.max_fractional_value
    if seg_type is SegmentationTypeValues.LABELMAP or pixels.labelmap is not None:
        dataset.SegmentsOverlap = "NO"
    elif pixels.is_fractional_input:
        dataset.SegmentsOverlap = "UNDEFINED"
    else:
        dataset.SegmentsOverlap = "YES" if pixels.overlaps() else "NO"
    for number, description in enumerate(descriptions):  # raw below: checked here, not by the final seam
        check_dataset_values(description, path=f"SegmentSequence[{number}]",
                             character_set=dataset.get("SpecificCharacterSet", ""))
    # Encoded once as bytes: pydicom writes 100+ nested descriptions slowly.
    charset = dataset.get("SpecificCharacterSet")  # items are written in the SEG's character set (PS3.5 6.1)
    encodings = pydicom.charset.convert_encodings(charset) if charset else None
    set_raw(dataset, "SegmentSequence", "SQ",
            b"".join(raw.item(raw.encode_dataset(d, encodings)) for d in descriptions))


def _set_dimensions(dataset: Dataset, plan: FramePlan, labelmap: bool,
                    organization_type: DimensionOrganizationTypeValues | None) -> np.ndarray:
    """Multi-frame Dimension Module (C.7.6.17); returns ``(N, D)`` Dimension Index Values.

    TILED_FULL images have no Dimension Index Sequence: their frame order is
    implied (C.7.6.17.3).
    """
    organization_uid = UID()
    organization = Dataset()
    organization.DimensionOrganizationUID = organization_uid
    dataset.DimensionOrganizationSequence = [organization]
    if organization_type is not None:
        dataset.DimensionOrganizationType = organization_type.value
    indices = []
    columns = []
    if not labelmap:
        indices.append(("ReferencedSegmentNumber", "SegmentIdentificationSequence",
                        "Referenced Segment Number"))
        columns.append(plan.segment_numbers[:, np.newaxis])
    if plan.position_indices is not None and plan.position_indices.shape[1] == 2:
        indices.append(("RowPositionInTotalImagePixelMatrix", "PlanePositionSlideSequence",
                        "Row Position In Total Image Pixel Matrix"))
        indices.append(("ColumnPositionInTotalImagePixelMatrix", "PlanePositionSlideSequence",
                        "Column Position In Total Image Pixel Matrix"))
        columns.append(plan.position_indices)
    elif plan.position_indices is not None:
        indices.append(("ImagePositionPatient", "PlanePositionSequence", "Image Position Patient"))
        columns.append(plan.position_indices)
    if organization_type is DimensionOrganizationTypeValues.TILED_FULL:
        return np.zeros((plan.number_of_frames, 0), dtype=np.int64)
    if not indices:
        # A LABELMAP of images without plane positions (CR, DX): no segment and no position to index
        # the frames by, so each plane gets a Frame Label (C.7.6.16.2.2) and that is the dimension.
        indices.append(("FrameLabel", "FrameContentSequence", "Frame Label"))
        columns.append(plan.planes[:, np.newaxis] + 1)
    items = []
    for pointer, group, label in indices:
        item = Dataset()
        item.DimensionOrganizationUID = organization_uid
        item.DimensionIndexPointer = pydicom.datadict.tag_for_keyword(pointer)
        item.FunctionalGroupPointer = pydicom.datadict.tag_for_keyword(group)
        item.DimensionDescriptionLabel = label
        items.append(item)
    dataset.DimensionIndexSequence = items
    return np.concatenate(columns, axis=1)


def _organization_type(requested: DimensionOrganizationTypeValues | str | None, plan: FramePlan,
                       placement: PlanePlacement, omit_empty_frames: bool,
                       ) -> DimensionOrganizationTypeValues | None:
    """The Dimension Organization Type to record, checking a requested one (C.7.6.17.1)."""
    if requested is None:
        return plan.dimension_organization_type
    wanted = to_enum(DimensionOrganizationTypeValues, requested, "dimension_organization_type")
    tiled = placement.tile_positions is not None
    if wanted in (DimensionOrganizationTypeValues.TILED_FULL,
                  DimensionOrganizationTypeValues.TILED_SPARSE) and not tiled:
        raise InputError(
            f"dimension_organization_type {wanted.value} needs a tiled segmentation "
            "(a slide microscopy source); this one is not tiled"
        )
    if wanted is DimensionOrganizationTypeValues.TILED_FULL and omit_empty_frames:
        raise InputError(
            "dimension_organization_type TILED_FULL stores every tile: pass omit_empty_frames=False"
        )
    if wanted is DimensionOrganizationTypeValues.THREE_DIMENSIONAL and (
            plan.dimension_organization_type is not DimensionOrganizationTypeValues.THREE_DIMENSIONAL):
        raise GeometryError(
            "dimension_organization_type 3D requested but the planes are not a regularly "
            "spaced single-channel 3D volume"
        )
    if wanted is DimensionOrganizationTypeValues.THREE_DIMENSIONAL_TEMPORAL:
        raise UnsupportedError("dimension_organization_type 3D_TEMPORAL is not supported for SEG")
    return wanted


def _set_slide_attributes(dataset: Dataset, placement: PlanePlacement) -> None:
    """Total pixel matrix attributes of a tiled segmentation (PS3.3 C.8.12.4, C.8.20.2)."""
    slide = placement.slide
    if slide is None or placement.total_pixel_matrix is None:  # a check, not an assert (python -O)
        raise EncodeError("a tiled segmentation needs slide geometry and a total pixel matrix; the placement has none")
    dataset.ImageOrientationSlide = [raw.format_ds(v) for v in slide.orientation]
    dataset.TotalPixelMatrixRows, dataset.TotalPixelMatrixColumns = placement.total_pixel_matrix
    dataset.TotalPixelMatrixFocalPlanes = 1
    dataset.TotalPixelMatrixOriginSequence = [copy.deepcopy(slide.origin_item)]


def _set_functional_groups(dataset: Dataset, sources: SourceFrames, placement: PlanePlacement,
                           plan: FramePlan, dimension_values: np.ndarray, labelmap: bool) -> None:
    """Shared (pixel measures, plane orientation) and per-frame functional groups (C.8.20.3)."""
    shared = Dataset()
    if placement.pixel_spacing is not None:
        measures = Dataset()
        measures.PixelSpacing = [raw.ds_value(v, "PixelSpacing") for v in placement.pixel_spacing]
        if not all(float(v) > 0 for v in measures.PixelSpacing):
            raise InputError(
                "PixelSpacing (from source_images or pixel_measures) must be two positive numbers "
                f"(PS3.3 C.7.6.16.2.1, C.8.20.3); got {list(placement.pixel_spacing)}"
            )
        thickness = placement.slice_thickness
        measures.SliceThickness = thickness if thickness is None else raw.ds_value(thickness, "SliceThickness")  # type: ignore[arg-type]  # a DS string or a float (placement.slice_thickness is typed object)
        between = placement.spacing_between_slices
        if between is not None:
            measures.SpacingBetweenSlices = raw.ds_value(between, "SpacingBetweenSlices")  # type: ignore[arg-type]  # a DS string or a float (placement.spacing_between_slices is typed object)
        shared.PixelMeasuresSequence = [measures]
    if placement.orientation is not None and placement.tile_positions is None:
        orientation = Dataset()
        orientation.ImageOrientationPatient = [raw.ds_value(v, "ImageOrientationPatient")
                                               for v in placement.orientation]
        shared.PlaneOrientationSequence = [orientation]
    dataset.SharedFunctionalGroupsSequence = [shared]
    if "DimensionIndexSequence" not in dataset:  # TILED_FULL: no per-frame items at all
        if not labelmap and len(np.unique(plan.segment_numbers)) == 1:
            segment = Dataset()
            segment.ReferencedSegmentNumber = int(plan.segment_numbers[0])
            shared.SegmentIdentificationSequence = [segment]
        return
    references = list(zip(sources.sop_class_uids, sources.sop_instance_uids, sources.frame_numbers))
    derivations = None
    if placement.derivations is not None:
        derivations = [
            derivation_group([references[index] for index in indices],
                             placement.spatial_locations_preserved)
            for indices in placement.derivations
        ]
    positions = None
    if placement.tile_positions is not None:
        positions = [slide_position_group(offsets, row, column) for offsets, (row, column) in zip(
            placement.position_values, placement.tile_positions.tolist())]  # type: ignore[arg-type]  # tolist() of an (n, 2) array: (row, column) pairs
    elif placement.position_values is not None:
        positions = [plane_position_group(position) for position in placement.position_values]
    frame_labels = None
    if labelmap and plan.position_indices is None:  # the Frame Label dimension of _set_dimensions
        frame_labels = [f"Plane {plane + 1}" for plane in range(int(plan.planes.max(initial=-1)) + 1)]
    per_frame = per_frame_functional_groups(
        planes=plan.planes,
        segment_numbers=None if labelmap else plan.segment_numbers,
        dimension_index_values=dimension_values,
        derivation_groups=derivations,
        position_groups=positions,
        frame_labels=frame_labels,
    )
    set_raw(dataset, "PerFrameFunctionalGroupsSequence", "SQ", per_frame)


def _encode_pixel_data(dataset: Dataset, options: EncodeOptions, pixels: SegmentPixels,
                       plan: FramePlan, bits: int, cache: "_StreamedFrames | None" = None) -> None:
    """Pixel Data (7FE0,0010): native (PS3.5 8.1.1, 8.2) or encapsulated (A.4)."""
    _, rows, columns = pixels.shape
    planes, segments = plan.planes, plan.segment_numbers
    seg_type = options.segmentation_type
    if pixels.stream is not None:
        _encode_streamed_pixel_data(dataset, options, pixels, plan, bits, cache)  # type: ignore[arg-type]  # pixels.stream is not None: the streamed-pixels path takes it
        return
    get_frame: Callable[[int], np.ndarray]
    if seg_type is SegmentationTypeValues.BINARY:
        get_frame = lambda i: pixels.binary_frame(int(planes[i]), int(segments[i]))  # noqa: E731
    elif seg_type is SegmentationTypeValues.FRACTIONAL:
        maximum = options.max_fractional_value
        get_frame = lambda i: pixels.fractional_frame(int(planes[i]), int(segments[i]), maximum)  # noqa: E731
    else:  # LABELMAP: one frame at a time (read on demand when on disk / chunked), in the stored dtype
        get_frame = lambda i: pixels.labelmap_frame(int(planes[i]))  # noqa: E731
    dataset.NumberOfFrames = plan.number_of_frames
    if options.transfer_syntax_uid.is_encapsulated:  # type: ignore[attr-defined]  # options are normalised (EncodeOptions.normalised): enum / UID values here
        frames = encode_frames(plan.number_of_frames, get_frame, options.transfer_syntax_uid,
                               bits, options.workers)
        _set_encapsulated_pixel_data(dataset, options, frames)
        return
    if native_pixel_data_length(plan.number_of_frames, rows, columns, bits) >= pixel_data.STREAM_PIXEL_DATA_BYTES:
        # encoded again, frame by frame, when written (save_as): the value is never held whole
        install_pixel_source(dataset, StreamedPixelData(plan.number_of_frames, rows, columns, bits, get_frame,
                                                        "OB" if bits <= 8 else "OW"))
        return
    if seg_type is SegmentationTypeValues.BINARY:
        data = encode_binary_frames(plan.number_of_frames, rows, columns, get_frame)
    elif seg_type is SegmentationTypeValues.FRACTIONAL:
        data = encode_byte_frames(plan.number_of_frames, rows, columns, np.dtype(np.uint8), get_frame)
    else:
        data = encode_byte_frames(plan.number_of_frames, rows, columns, labelmap_dtype(pixels.number_of_segments),
                                  get_frame)
    dataset.add_new("PixelData", "OB" if bits <= 8 else "OW", data)


def _set_encapsulated_pixel_data(dataset: Dataset, options: EncodeOptions, frames: Sequence[Any],
                                 lengths: "np.ndarray | None" = None) -> None:
    """Encapsulated Pixel Data (PS3.5 A.4) of compressed ``frames``, with the Extended Offset Table when asked
    (streamed from ``frames`` at ``save_as`` past ``STREAM_PIXEL_DATA_BYTES``, never joined)."""
    set_encapsulated_pixel_data(dataset, frames, options.use_extended_offset_table, lengths)


_PENDING_BYTES = 64 << 20
"""Uncompressed frames collected across blocks before one compression call (see ``_StreamedFrames.flush``)."""


class _StreamedFrames:
    """Frames of a streamed stacked input, encoded while the input is validated (one pass).

    Called by :func:`~monai_dicomseg.seg.inputs.scan_stream` with each block
    ``(S', n, R, C)``: every non-empty frame (after quantisation, PS3.3
    C.8.20.2.3) is kept in its stored form: compressed bytes, uint8
    fractions, or packed bits (BINARY native). Memory is the encoded output
    plus one block; the source blocks are never computed twice. Frames are
    exactly those of the in-memory path (``round(x * max)`` equals
    ``(x != 0) * max`` on 0/1 data, so the global binary/fractional decision
    does not change them).
    """

    def __init__(self, options: EncodeOptions, bits: int) -> None:
        self.options = options
        self.bits = bits
        self.fractional = options.segmentation_type is SegmentationTypeValues.FRACTIONAL
        self.frames = FrameStore()  # copies: a block's buffer may be reused once visited
        self._pending: list[tuple[tuple[int, int], np.ndarray]] = []
        self._pending_bytes = 0

    def flush(self) -> None:
        """Compress the frames waiting for compression, in one :func:`encode_frames` call.

        Frames to compress are batched across blocks (up to ``_PENDING_BYTES``):
        with ``workers``, each call starts a process pool (forked from a
        process that may hold a 12 GB model output), so one pool per block,
        hundreds of times for a 117-class support-limited FRACTIONAL output,
        cost more than the compression itself."""
        if not self._pending:
            return
        keys, frames = zip(*self._pending)
        encoded = encode_frames(len(frames), frames.__getitem__, self.options.transfer_syntax_uid, self.bits,
                                self.options.workers)
        for key, data in zip(keys, encoded):
            self.frames.put(key, data)
        self._pending, self._pending_bytes = [], 0

    def __call__(self, f0: int, f1: int, s0: int, s1: int, values: np.ndarray, quantized: bool = False,
                 present: np.ndarray | None = None) -> None:
        """Keep the non-empty frames of a block (``quantized``: uint8 FRACTIONAL values already stored;
        ``present``: ``(S', n)`` bool, which of those frames are non-empty, when the caller knows)."""
        maximum = self.options.max_fractional_value
        encapsulated = bool(self.options.transfer_syntax_uid.is_encapsulated)  # type: ignore[attr-defined]  # options are normalised (EncodeOptions.normalised): enum / UID values here
        keys: list[tuple[int, int]] = []
        selected: list[np.ndarray] = []
        for channel in range(s1 - s0):
            for offset in range(f1 - f0):
                frame = values[channel, offset]  # frame by frame: no block-sized temporary
                if self.fractional:
                    if quantized:
                        stored = frame
                    elif frame.dtype.kind == "f":
                        stored = np.rint(frame * maximum).astype(np.uint8)
                    else:
                        stored = (frame != 0).astype(np.uint8) * np.uint8(maximum)
                else:
                    stored = frame != 0
                if not (present[channel, offset] if present is not None else stored.any()):
                    continue
                key = (f0 + offset, s0 + channel + 1)
                if not encapsulated:  # kept at once (copied): no block's worth of frames held twice
                    self.frames.put(key, stored if self.fractional else pack_bits(stored))
                    continue
                keys.append(key)
                selected.append(stored.copy() if quantized else stored)  # the producer may reuse its block
        if selected:
            self._pending.extend(zip(keys, selected))
            self._pending_bytes += sum(frame.nbytes for frame in selected)
            if self._pending_bytes >= _PENDING_BYTES:
                self.flush()


def _encode_streamed_pixel_data(dataset: Dataset, options: EncodeOptions, pixels: SegmentPixels,
                                plan: FramePlan, bits: int, cache: _StreamedFrames) -> None:
    """Pixel Data of a streamed stacked input from the frames encoded during validation.

    Stored frames that are all zero (kept with ``omit_empty_frames=False``,
    or the one frame kept when everything is empty) are encoded once and
    repeated. The bytes equal those of the in-memory path. Past
    :data:`~monai_dicomseg.codec.pixel_data.STREAM_PIXEL_DATA_BYTES` the value
    is served from the frame store when written, never joined.
    """
    cache.flush()
    _, rows, columns = pixels.shape
    count = plan.number_of_frames
    dataset.NumberOfFrames = count
    keys = list(zip(plan.planes.tolist(), plan.segment_numbers.tolist()))
    if options.transfer_syntax_uid.is_encapsulated:  # type: ignore[attr-defined]  # options are normalised (EncodeOptions.normalised): enum / UID values here
        zero = np.zeros((rows, columns), dtype=bool if bits == 1 else np.uint8)
        empty = lambda: encode_frames(1, lambda _: zero, options.transfer_syntax_uid, bits, 0)[0]  # noqa: E731
        planned = _PlannedFrames(cache.frames, keys, empty)
        _set_encapsulated_pixel_data(dataset, options, planned, planned.lengths)
        source = deferred_pixel_source(dataset)
        if source is not None:  # streamed from the store when written (else joined now)
            source.frame_store = cache.frames
        return
    fractional = options.segmentation_type is SegmentationTypeValues.FRACTIONAL
    if native_pixel_data_length(count, rows, columns, bits) >= pixel_data.STREAM_PIXEL_DATA_BYTES:
        source = _stored_frames_source(cache.frames, keys, rows, columns, fractional)
        source.frame_store = cache.frames
        install_pixel_source(dataset, source)
        return
    size = rows * columns
    if fractional or size % 8 == 0:
        # frames are whole bytes: each is released once written (frames + output, never two outputs)
        frame_bytes = size if fractional else size // 8
        empty_frame = bytes(frame_bytes)
        frames = (cache.frames.pop(key) or empty_frame for key in keys)
        dataset.add_new("PixelData", "OB", join_frames(frames, count * frame_bytes))
        return
    out = np.zeros(packed_length(count, rows, columns), dtype=np.uint8)  # BINARY, frames not byte aligned
    for index, key in enumerate(keys):
        packed = cache.frames.pop(key)
        if packed is not None:
            place_frame_bits(out, index, unpack_bits(np.frombuffer(packed, np.uint8), count=size).astype(bool))
    dataset.add_new("PixelData", "OB", out.tobytes())


class _PlannedFrames(Sequence[bytes]):
    """The encoded frames of the plan, in its order, read from the store one at a time (a lazy sequence).

    ``empty()`` (encodes the all-zero frame; called once, when needed) stands
    for a planned frame the store does not hold. :attr:`lengths` come from the
    store without reading.
    """

    def __init__(self, store: FrameStore, keys: list[tuple[int, int]], empty: Callable[[], bytes]) -> None:
        self.store, self.keys, self._encode_empty = store, keys, empty
        self._empty: bytes | None = None
        self.lengths = np.array([self._length(key) for key in keys], dtype=np.int64)

    @property
    def empty(self) -> bytes:
        """The encoded all-zero frame."""
        if self._empty is None:
            self._empty = self._encode_empty()
        return self._empty

    def _length(self, key: tuple[int, int]) -> int:
        length = self.store.length(key)
        return len(self.empty) if length is None else length

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self.keys)))]
        if not -len(self.keys) <= index < len(self.keys):
            raise IndexError(index)
        data = self.store.get(self.keys[index])
        return self.empty if data is None else data

    def __iter__(self) -> Iterator[bytes]:
        return (self[index] for index in range(len(self.keys)))


def _stored_frames_source(store: FrameStore, keys: list[tuple[int, int]], rows: int, columns: int,
                          fractional: bool) -> StreamedPixelData:
    """Native Pixel Data (PS3.5 8.1.1, 8.2) of the planned frames, served from ``store`` when written.

    Whole-byte frames (FRACTIONAL; BINARY with ``R * C`` a multiple of 8)
    are served as stored: one ``(1, frame bytes)`` unit each. Other BINARY
    frames are unpacked and packed again 8 at a time (8 frames end on a byte).
    """
    size = rows * columns
    if fractional or size % 8 == 0:
        frame_bytes = size if fractional else size // 8
        empty = np.zeros((1, frame_bytes), dtype=np.uint8)

        def stored(index: int) -> np.ndarray:
            data = store.get(keys[index])
            return empty if data is None else np.frombuffer(data, np.uint8).reshape(1, frame_bytes)

        return StreamedPixelData(len(keys), 1, frame_bytes, 8, stored, "OB", "Pixel Data of the encoded frames",
                                 verify=False)
    zero = np.zeros((rows, columns), dtype=bool)

    def unpacked(index: int) -> np.ndarray:
        data = store.get(keys[index])
        if data is None:
            return zero
        return unpack_bits(np.frombuffer(data, np.uint8), count=size).astype(bool).reshape(rows, columns)

    return StreamedPixelData(len(keys), rows, columns, 1, unpacked, "OB", "Pixel Data of the encoded frames",
                             verify=False)


def _set_file_meta(dataset: Dataset, sop_class_uid: str, sop_instance_uid: str,
                   transfer_syntax_uid: PydicomUID) -> None:
    meta = FileMetaDataset()
    meta.FileMetaInformationGroupLength = 0  # recomputed by pydicom when writing
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = PydicomUID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = PydicomUID(sop_instance_uid)
    meta.TransferSyntaxUID = transfer_syntax_uid
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = _IMPLEMENTATION_VERSION
    dataset.file_meta = meta
    dataset.preamble = b"\x00" * 128
    # Tell pydicom the dataset is already in its target encoding, so the raw
    # per-frame bytes are written as they are instead of being re-parsed.
    charset = dataset.get("SpecificCharacterSet")  # public equivalent of pydicom's Dataset._character_set
    dataset.set_original_encoding(
        False, True, pydicom.charset.convert_encodings(charset) if charset else pydicom.charset.default_encoding)


def encode_segmentation(
    dataset: Dataset,
    *,
    source_images: Sequence[Dataset],
    pixel_array: np.ndarray,
    segment_descriptions: Sequence[SegmentDescription],
    options: EncodeOptions,
) -> None:
    """Fill ``dataset`` with a complete SEG instance.

    Parameters
    ----------
    dataset
        The (empty) dataset to fill, typically a ``Segmentation`` being built.
    source_images
        Single-frame images (``pixel_array[i]`` ↔ ``source_images[i]``) or
        one multi-frame image (``pixel_array[i]`` ↔ frame ``i + 1``).
    pixel_array
        ``(R, C)``, ``(F, R, C)`` label map / one fractional segment, or
        ``(F, R, C, S)`` stacked segments; or a ``Volume`` (PATIENT
        coordinates) whose affine places each plane.
    segment_descriptions
        One per segment, numbered 1, 2, 3, ...
    options
        Every other parameter of :class:`~monai_dicomseg.seg.Segmentation`
        (:class:`EncodeOptions`; checked here by :meth:`EncodeOptions.normalised`).
    """
    # Over 60 lines on purpose: one linear pipeline (check -> place -> plan -> header -> pixels) whose
    # order matters (shapes before value scans, the VR seam before the costly pixel work); each step
    # is a helper of this module, so the sequence reads top to bottom in one place.
    options = options.normalised()
    descriptions = check_segment_descriptions(segment_descriptions)
    sources = collect_source_frames(source_images)
    array, placement = _resolve_placement(sources, pixel_array, options.plane_positions, options.plane_orientation,
                                          options.pixel_measures, options.tile_pixel_array, options.tile_size)
    if placement.aligned:
        require_pixel_spacing(sources)  # geometry copied from the sources: Pixel Measures too
    shape = _frame_shape(array)
    if placement.aligned and shape is not None:
        _check_shape_against_sources(shape, sources)  # shapes first: values are scanned below
    cache = None
    if options.segmentation_type is not SegmentationTypeValues.LABELMAP:
        cache = _StreamedFrames(options, _bits_allocated(options.segmentation_type, len(descriptions)))  # type: ignore[arg-type]  # options are normalised (EncodeOptions.normalised): enum / UID values here
    pixels = prepare_pixels(array, len(descriptions), options.segmentation_type, options.max_fractional_value,  # type: ignore[arg-type]  # options are normalised (EncodeOptions.normalised): enum / UID values here
                            cache)
    if placement.aligned and shape is None:
        _check_shape_against_sources(pixels.shape, sources)
    labelmap = options.segmentation_type is SegmentationTypeValues.LABELMAP
    orientation = None if placement.orientation is None else np.array(placement.orientation, dtype=float)
    if labelmap:
        presence = pixels.nonempty_planes()[:, np.newaxis]
    else:
        presence = pixels.presence()
    plan = plan_frames(presence, placement.positions, orientation, labelmap,
                       options.omit_empty_frames, placement.tile_positions)
    organization_type = _organization_type(options.dimension_organization_type, plan, placement,
                                           options.omit_empty_frames)

    sop_class_uid = (SegSOPClass.LABEL_MAP_SEGMENTATION if labelmap else SegSOPClass.SEGMENTATION).value
    dataset.SOPClassUID = sop_class_uid
    dataset.SOPInstanceUID = options.sop_instance_uid
    first = sources.first
    copy_patient_and_study(dataset, first)
    set_series_and_equipment(
        dataset,
        series_instance_uid=options.series_instance_uid,
        series_number=options.series_number,
        manufacturer=options.manufacturer,
        manufacturer_model_name=options.manufacturer_model_name,
        software_versions=options.software_versions,
        device_serial_number=options.device_serial_number,
        frame_of_reference_uid=sources.frame_of_reference_uid,
        position_reference_indicator=first.get("PositionReferenceIndicator"),
    )
    set_instance_dates(dataset)
    dataset.InstanceNumber = options.instance_number
    _, rows, columns = pixels.shape
    bits = _set_image_pixel(dataset, options, rows, columns, len(descriptions))
    _set_segmentation_image(dataset, options, pixels, descriptions, options.content_label,
                            options.content_description, options.content_creator_name)
    dimension_values = _set_dimensions(dataset, plan, labelmap, organization_type)
    if placement.slide is not None:
        _set_slide_attributes(dataset, placement)
    if options.pyramid_uid is not None:
        dataset.PyramidUID = options.pyramid_uid
    if options.pyramid_label is not None:
        dataset.PyramidLabel = options.pyramid_label
    _set_functional_groups(dataset, sources, placement, plan, dimension_values, labelmap)
    if "FrameOfReferenceUID" not in dataset and "PatientOrientation" not in dataset:
        # General Image Module (PS3.3 C.7.6.1): Patient Orientation is Type 2C, required when the frames
        # have neither patient nor slide plane geometry (CR, DX sources): the source's, else empty.
        dataset.PatientOrientation = copy.deepcopy(first.get("PatientOrientation")) or ""
    set_common_instance_reference(dataset, sources)
    check_dataset_values(dataset)  # the one VR seam: every written value, before the costly pixel work
    _encode_pixel_data(dataset, options, pixels, plan, bits, cache)
    _set_file_meta(dataset, sop_class_uid, options.sop_instance_uid, options.transfer_syntax_uid)  # type: ignore[arg-type]  # options are normalised (EncodeOptions.normalised): enum / UID values here
