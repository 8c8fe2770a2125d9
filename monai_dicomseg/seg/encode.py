"""The SEG encode pipeline behind :class:`~monai_dicomseg.seg.Segmentation`.

``encode_segmentation`` validates the inputs, plans the frames and fills a
dataset with the modules of the Segmentation IOD (PS3.3 A.51) — or of the
Label Map Segmentation IOD for LABELMAP (SOP Class 1.2.840.10008.5.1.4.1.1.66.7).
Per-frame data are encoded as bytes (see :mod:`monai_dicomseg.codec.raw`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, UID as PydicomUID

from monai_dicomseg.codec import raw
from monai_dicomseg.codec.functional_groups import (
    derivation_group,
    per_frame_functional_groups,
    plane_position_group,
)
from monai_dicomseg.codec.pixel_data import encode_binary_frames, encode_byte_frames
from monai_dicomseg.enums import (
    SegmentationFractionalTypeValues,
    SegmentationTypeValues,
    to_enum,
)
from monai_dicomseg.errors import InputError, InputTypeError, UnsupportedError
from monai_dicomseg.seg.content import SegmentDescription
from monai_dicomseg.seg.frames import FramePlan, plan_frames
from monai_dicomseg.seg.inputs import SegmentPixels, labelmap_dtype, prepare_pixels
from monai_dicomseg.seg.modules import (
    copy_patient_and_study,
    set_common_instance_reference,
    set_instance_dates,
    set_raw,
    set_series_and_equipment,
)
from monai_dicomseg.seg.sources import SourceFrames, collect_source_frames
from monai_dicomseg.uid import UID

__all__ = ["encode_segmentation", "SEGMENTATION_SOP_CLASS_UID", "LABELMAP_SOP_CLASS_UID"]

SEGMENTATION_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.66.4"
LABELMAP_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.66.7"
_IMPLEMENTATION_VERSION = "MONAI_DICOMSEG01"


@dataclass(frozen=True)
class EncodeOptions:
    """Normalised scalar options of one encode call."""

    segmentation_type: SegmentationTypeValues
    fractional_type: SegmentationFractionalTypeValues
    max_fractional_value: int
    omit_empty_frames: bool
    transfer_syntax_uid: PydicomUID


def _check_options(
    segmentation_type: SegmentationTypeValues | str,
    fractional_type: SegmentationFractionalTypeValues | str,
    max_fractional_value: int,
    omit_empty_frames: bool,
    transfer_syntax_uid: str,
) -> EncodeOptions:
    seg_type = to_enum(SegmentationTypeValues, segmentation_type, "segmentation_type")
    frac_type = to_enum(SegmentationFractionalTypeValues, fractional_type, "fractional_type")
    if isinstance(max_fractional_value, bool) or not isinstance(max_fractional_value, (int, np.integer)):
        raise InputTypeError(
            f"max_fractional_value must be an int; got {type(max_fractional_value).__name__}"
        )
    if not 1 <= int(max_fractional_value) <= 255:
        raise InputError(f"max_fractional_value must be in [1, 255]; got {max_fractional_value}")
    syntax = PydicomUID(str(transfer_syntax_uid))
    if syntax != ExplicitVRLittleEndian:
        raise UnsupportedError(
            f"transfer_syntax_uid {syntax} is not supported yet; expected {ExplicitVRLittleEndian} "
            "(Explicit VR Little Endian)"
        )
    return EncodeOptions(seg_type, frac_type, int(max_fractional_value), bool(omit_empty_frames), syntax)


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


def _check_shape_against_sources(pixels: SegmentPixels, sources: SourceFrames) -> None:
    frames, rows, columns = pixels.shape
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


def _set_image_pixel(dataset: Dataset, options: EncodeOptions, rows: int, columns: int,
                     number_of_segments: int) -> int:
    """Image Pixel (C.7.6.3) and Segmentation Image (C.8.20.2) pixel attributes; returns BitsAllocated."""
    seg_type = options.segmentation_type
    if seg_type is SegmentationTypeValues.BINARY:
        bits = 1
    elif seg_type is SegmentationTypeValues.FRACTIONAL:
        bits = 8
    else:
        bits = labelmap_dtype(number_of_segments).itemsize * 8
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
    dataset.SegmentationType = seg_type.value
    if seg_type is SegmentationTypeValues.FRACTIONAL:
        dataset.SegmentationFractionalType = options.fractional_type.value
        dataset.MaximumFractionalValue = options.max_fractional_value
    if seg_type is SegmentationTypeValues.LABELMAP or pixels.labelmap is not None:
        dataset.SegmentsOverlap = "NO"
    elif pixels.is_fractional_input:
        dataset.SegmentsOverlap = "UNDEFINED"
    else:
        dataset.SegmentsOverlap = "YES" if pixels.overlaps() else "NO"
    # Encoded once as bytes: pydicom writes 100+ nested descriptions slowly.
    set_raw(dataset, "SegmentSequence", "SQ", b"".join(raw.item(raw.encode_dataset(d)) for d in descriptions))


def _set_dimensions(dataset: Dataset, plan: FramePlan, labelmap: bool) -> np.ndarray:
    """Multi-frame Dimension Module (C.7.6.17); returns ``(N, D)`` Dimension Index Values."""
    organization_uid = UID()
    organization = Dataset()
    organization.DimensionOrganizationUID = organization_uid
    dataset.DimensionOrganizationSequence = [organization]
    indices = []
    columns = []
    if not labelmap:
        indices.append(("ReferencedSegmentNumber", "SegmentIdentificationSequence",
                        "Referenced Segment Number"))
        columns.append(plan.segment_numbers)
    if plan.plane_ranks is not None:
        indices.append(("ImagePositionPatient", "PlanePositionSequence", "Image Position Patient"))
        columns.append(plan.plane_ranks)
    if not indices:
        raise UnsupportedError(
            "LABELMAP segmentations of source images without plane positions "
            "(ImagePositionPatient) are not supported"
        )
    items = []
    for pointer, group, label in indices:
        item = Dataset()
        item.DimensionOrganizationUID = organization_uid
        item.DimensionIndexPointer = pydicom.datadict.tag_for_keyword(pointer)
        item.FunctionalGroupPointer = pydicom.datadict.tag_for_keyword(group)
        item.DimensionDescriptionLabel = label
        items.append(item)
    dataset.DimensionIndexSequence = items
    if plan.dimension_organization_type is not None:
        dataset.DimensionOrganizationType = plan.dimension_organization_type.value
    return np.stack(columns, axis=1)


def _set_functional_groups(dataset: Dataset, sources: SourceFrames, plan: FramePlan,
                           dimension_values: np.ndarray, labelmap: bool) -> None:
    """Shared (pixel measures, plane orientation) and per-frame functional groups (C.8.20.3)."""
    shared = Dataset()
    if sources.pixel_spacing is not None:
        measures = Dataset()
        measures.PixelSpacing = list(sources.pixel_spacing)
        measures.SliceThickness = sources.slice_thickness
        if sources.spacing_between_slices is not None:
            measures.SpacingBetweenSlices = sources.spacing_between_slices
        shared.PixelMeasuresSequence = [measures]
    if sources.orientation is not None:
        orientation = Dataset()
        orientation.ImageOrientationPatient = list(sources.orientation)
        shared.PlaneOrientationSequence = [orientation]
    dataset.SharedFunctionalGroupsSequence = [shared]
    derivations = [
        derivation_group(sop_class, sop_instance, frame_number)
        for sop_class, sop_instance, frame_number in zip(
            sources.sop_class_uids, sources.sop_instance_uids, sources.frame_numbers)
    ]
    positions = None
    if sources.position_strings is not None:
        positions = [plane_position_group(position) for position in sources.position_strings]
    per_frame = per_frame_functional_groups(
        planes=plan.planes,
        segment_numbers=None if labelmap else plan.segment_numbers,
        dimension_index_values=dimension_values,
        derivation_groups=derivations,
        position_groups=positions,
    )
    set_raw(dataset, "PerFrameFunctionalGroupsSequence", "SQ", per_frame)


def _encode_pixel_data(dataset: Dataset, options: EncodeOptions, pixels: SegmentPixels,
                       plan: FramePlan, bits: int) -> None:
    """Pixel Data (7FE0,0010) in native encoding (PS3.5 8.1.1)."""
    _, rows, columns = pixels.shape
    planes, segments = plan.planes, plan.segment_numbers
    seg_type = options.segmentation_type
    if seg_type is SegmentationTypeValues.BINARY:
        data = encode_binary_frames(
            plan.number_of_frames, rows, columns,
            lambda i: pixels.binary_frame(int(planes[i]), int(segments[i])),
        )
        vr = "OB"
    elif seg_type is SegmentationTypeValues.FRACTIONAL:
        maximum = options.max_fractional_value
        data = encode_byte_frames(
            plan.number_of_frames, rows, columns, np.dtype(np.uint8),
            lambda i: pixels.fractional_frame(int(planes[i]), int(segments[i]), maximum),
        )
        vr = "OB"
    else:
        frames = pixels.labelmap_frames(planes)
        data = frames.astype(frames.dtype.newbyteorder("<"), copy=False).tobytes()
        data = data + b"\x00" if len(data) % 2 else data
        vr = "OB" if bits == 8 else "OW"
    dataset.NumberOfFrames = plan.number_of_frames
    dataset.add_new("PixelData", vr, data)


def _set_file_meta(dataset: Dataset, sop_class_uid: str, sop_instance_uid: str,
                   transfer_syntax_uid: PydicomUID) -> None:
    meta = FileMetaDataset()
    meta.FileMetaInformationGroupLength = 0  # recomputed by pydicom when writing
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = transfer_syntax_uid
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = _IMPLEMENTATION_VERSION
    dataset.file_meta = meta
    dataset.preamble = b"\x00" * 128
    # Tell pydicom the dataset is already in its target encoding, so the raw
    # per-frame bytes are written as they are instead of being re-parsed.
    dataset.set_original_encoding(False, True, dataset._character_set)


def encode_segmentation(
    dataset: Dataset,
    *,
    source_images: Sequence[Dataset],
    pixel_array: np.ndarray,
    segmentation_type: SegmentationTypeValues | str,
    segment_descriptions: Sequence[SegmentDescription],
    series_instance_uid: str,
    series_number: int,
    sop_instance_uid: str,
    instance_number: int,
    manufacturer: str,
    manufacturer_model_name: str,
    software_versions: str | Sequence[str],
    device_serial_number: str,
    fractional_type: SegmentationFractionalTypeValues | str = SegmentationFractionalTypeValues.PROBABILITY,
    max_fractional_value: int = 255,
    content_description: str | None = None,
    content_creator_name: str | None = None,
    transfer_syntax_uid: str = ExplicitVRLittleEndian,
    omit_empty_frames: bool = True,
    content_label: str | None = None,
) -> None:
    """Fill ``dataset`` with a complete SEG instance for source-aligned arrays.

    Parameters
    ----------
    dataset
        The (empty) dataset to fill, typically a ``Segmentation`` being built.
    source_images
        Single-frame images (``pixel_array[i]`` ↔ ``source_images[i]``) or
        one multi-frame image (``pixel_array[i]`` ↔ frame ``i + 1``).
    pixel_array
        ``(R, C)``, ``(F, R, C)`` label map / one fractional segment, or
        ``(F, R, C, S)`` stacked segments.
    Other parameters
        As :class:`~monai_dicomseg.seg.Segmentation`.
    """
    options = _check_options(segmentation_type, fractional_type, max_fractional_value,
                             omit_empty_frames, transfer_syntax_uid)
    descriptions = check_segment_descriptions(segment_descriptions)
    sources = collect_source_frames(source_images)
    pixels = prepare_pixels(pixel_array, len(descriptions), options.segmentation_type)
    _check_shape_against_sources(pixels, sources)
    labelmap = options.segmentation_type is SegmentationTypeValues.LABELMAP
    orientation = None if sources.orientation is None else np.array(sources.orientation, dtype=float)
    presence = pixels.nonempty_planes()[:, np.newaxis] if labelmap else pixels.presence()
    plan = plan_frames(presence, sources.positions, orientation, labelmap,
                       options.omit_empty_frames)

    sop_class_uid = LABELMAP_SOP_CLASS_UID if labelmap else SEGMENTATION_SOP_CLASS_UID
    dataset.SOPClassUID = sop_class_uid
    dataset.SOPInstanceUID = sop_instance_uid
    first = sources.first
    copy_patient_and_study(dataset, first)
    set_series_and_equipment(
        dataset,
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        manufacturer=manufacturer,
        manufacturer_model_name=manufacturer_model_name,
        software_versions=software_versions,
        device_serial_number=device_serial_number,
        frame_of_reference_uid=sources.frame_of_reference_uid,
        position_reference_indicator=first.get("PositionReferenceIndicator"),
    )
    set_instance_dates(dataset)
    dataset.InstanceNumber = instance_number
    _, rows, columns = pixels.shape
    bits = _set_image_pixel(dataset, options, rows, columns, len(descriptions))
    _set_segmentation_image(dataset, options, pixels, descriptions, content_label,
                            content_description, content_creator_name)
    dimension_values = _set_dimensions(dataset, plan, labelmap)
    _set_functional_groups(dataset, sources, plan, dimension_values, labelmap)
    set_common_instance_reference(dataset, sources)
    _encode_pixel_data(dataset, options, pixels, plan, bits)
    _set_file_meta(dataset, sop_class_uid, sop_instance_uid, options.transfer_syntax_uid)
