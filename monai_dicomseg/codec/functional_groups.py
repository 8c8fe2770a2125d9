"""Per-frame functional groups of a SEG, encoded directly as bytes.

PS3.3 C.8.20.3 (Segmentation Functional Groups): every frame carries a
Derivation Image (C.7.6.16.2.6), Frame Content (C.7.6.16.2.2), Plane Position
(C.7.6.16.2.3, when the frame has a patient position) and — except for
LABELMAP — Segment Identification (C.8.20.3.1) functional group. The result
is the value of PerFrameFunctionalGroupsSequence in Explicit VR Little
Endian with defined lengths, ready to be stored as a raw element.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from monai_dicomseg.codec import raw

__all__ = [
    "derivation_group",
    "plane_position_group",
    "slide_position_group",
    "per_frame_functional_groups",
    "SOURCE_IMAGE_PURPOSE",
    "SEGMENTATION_DERIVATION",
]

# CID 7202 "Source Image Purposes of Reference" and CID 7203 "Image Derivation".
SOURCE_IMAGE_PURPOSE = ("121322", "DCM", "Source image for image processing operation")
SEGMENTATION_DERIVATION = ("113076", "DCM", "Segmentation")


def derivation_group(
    sources: Sequence[tuple[str, str, int | None]],
    spatial_locations_preserved: str | None = "YES",
) -> bytes:
    """Encoded DerivationImageSequence element naming the source images/frames of a frame.

    Parameters
    ----------
    sources
        ``(SOP Class UID, SOP Instance UID, frame number or None)`` of each
        source image/frame (frame number only for multi-frame sources). An
        empty list gives an empty Derivation Image Sequence.
    spatial_locations_preserved
        ``"YES"``/``"NO"`` (PS3.3 C.7.6.1.1.3), or ``None`` to omit.
    """
    if not sources:
        return raw.sequence("DerivationImageSequence", [])
    source_items = []
    for sop_class_uid, sop_instance_uid, frame_number in sources:
        source = [raw.ui("ReferencedSOPClassUID", sop_class_uid),
                  raw.ui("ReferencedSOPInstanceUID", sop_instance_uid)]
        if frame_number is not None:
            source.append(raw.is_("ReferencedFrameNumber", frame_number))
        if spatial_locations_preserved is not None:
            source.append(raw.cs("SpatialLocationsPreserved", spatial_locations_preserved))
        source.append(raw.sequence("PurposeOfReferenceCodeSequence",
                                   [raw.code_item(*SOURCE_IMAGE_PURPOSE)]))
        source_items.append(raw.item(*source))
    derivation_item = raw.item(
        raw.sequence("SourceImageSequence", source_items),
        raw.sequence("DerivationCodeSequence", [raw.code_item(*SEGMENTATION_DERIVATION)]),
    )
    return raw.sequence("DerivationImageSequence", [derivation_item])


def plane_position_group(position: Sequence[str | float]) -> bytes:
    """Encoded PlanePositionSequence element holding ImagePositionPatient."""
    return raw.sequence("PlanePositionSequence", [raw.item(raw.ds("ImagePositionPatient", position))])


def slide_position_group(offsets: Sequence[float], row: int, column: int) -> bytes:
    """Encoded PlanePositionSlideSequence element (PS3.3 C.8.12.6.1) of one tile."""
    return raw.sequence("PlanePositionSlideSequence", [raw.item(
        raw.ds("XOffsetInSlideCoordinateSystem", [offsets[0]]),
        raw.ds("YOffsetInSlideCoordinateSystem", [offsets[1]]),
        raw.ds("ZOffsetInSlideCoordinateSystem", [offsets[2]]),
        raw.sl("ColumnPositionInTotalImagePixelMatrix", int(column)),
        raw.sl("RowPositionInTotalImagePixelMatrix", int(row)),
    )])


def per_frame_functional_groups(
    planes: np.ndarray,
    segment_numbers: np.ndarray | None,
    dimension_index_values: np.ndarray,
    derivation_groups: Sequence[bytes] | None,
    position_groups: Sequence[bytes] | None,
    frame_labels: Sequence[str] | None = None,
) -> bytes:
    """Encode the value of PerFrameFunctionalGroupsSequence.

    Parameters
    ----------
    planes
        ``(N,) int`` plane index of each stored frame, indexing the two
        per-plane lists below.
    segment_numbers
        ``(N,) int`` Referenced Segment Number per frame, or ``None`` for
        LABELMAP (no Segment Identification group).
    dimension_index_values
        ``(N, D) int`` Dimension Index Values per frame.
    derivation_groups
        Encoded DerivationImageSequence per plane (``None``: empty sequence).
    position_groups
        Encoded PlanePositionSequence per plane (``None``: omitted).
    frame_labels
        Frame Label (LO, PS3.3 C.7.6.16.2.2) per plane, written in the Frame
        Content item (``None``: omitted); the dimension of a LABELMAP whose
        planes have no position.

    Returns
    -------
    bytes
        The concatenated items (each with a defined length).
    """
    empty_derivation = raw.sequence("DerivationImageSequence", [])
    dimension_values = np.ascontiguousarray(dimension_index_values, dtype="<u4")
    segment_groups: dict[int, bytes] = {}
    items = []
    for frame_index, plane in enumerate(planes.tolist()):
        content = [raw.element("DimensionIndexValues", dimension_values[frame_index].tobytes())]
        if frame_labels is not None:
            content.append(raw.lo("FrameLabel", frame_labels[plane]))
        frame_content = raw.sequence("FrameContentSequence", [raw.item(*content)])
        parts = [derivation_groups[plane] if derivation_groups is not None else empty_derivation,
                 frame_content]
        if position_groups is not None:
            parts.append(position_groups[plane])
        if segment_numbers is not None:
            number = int(segment_numbers[frame_index])
            group = segment_groups.get(number)
            if group is None:
                group = raw.sequence("SegmentIdentificationSequence",
                                     [raw.item(raw.us("ReferencedSegmentNumber", number))])
                segment_groups[number] = group
            parts.append(group)
        items.append(raw.item(*parts))
    return b"".join(items)
