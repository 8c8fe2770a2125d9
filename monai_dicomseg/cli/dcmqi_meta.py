"""dcmqi's segmentation metadata JSON <-> SEG segment descriptions.

dcmqi (``itkimage2segimage`` / ``segimage2itkimage``, the converter 3D Slicer
uses) describes segments in a JSON document (its ``seg-schema.json``)::

    {"SeriesDescription": "...", "SeriesNumber": "300", "InstanceNumber": "1",
     "ContentCreatorName": "...", "ContentLabel": "...", "ContentDescription": "...",
     "segmentAttributes": [[
        {"labelID": 1, "SegmentLabel": "Liver", "SegmentDescription": "Liver",
         "SegmentAlgorithmType": "AUTOMATIC", "SegmentAlgorithmName": "...",
         "SegmentedPropertyCategoryCodeSequence":
             {"CodeValue": "123037004", "CodingSchemeDesignator": "SCT",
              "CodeMeaning": "Anatomical Structure"},
         "SegmentedPropertyTypeCodeSequence": {...},
         "SegmentedPropertyTypeModifierCodeSequence": {...},
         "AnatomicRegionSequence": {...}, "AnatomicRegionModifierSequence": {...},
         "TrackingIdentifier": "...", "TrackingUniqueIdentifier": "...",
         "recommendedDisplayRGBValue": [221, 130, 101]}]]}

``segmentAttributes`` holds one list per label file; ``labelID`` is the voxel
value of the segment in that file. This module reads such a document into
:class:`~monai_dicomseg.seg.SegmentDescription` objects (PS3.3 C.8.20.2) and
writes one from a SEG, so ``to-nifti``'s sidecar feeds ``from-nifti`` as is.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from monai_dicomseg.errors import InputError

__all__ = ["DcmqiMetadata", "read_dcmqi_metadata", "dcmqi_metadata_from_seg", "descriptions_from_names"]

#: Series-level keys of dcmqi's JSON copied to the SEG (and back) as DICOM keywords.
SERIES_KEYS = (
    "SeriesDescription", "ContentCreatorName", "ContentDescription", "BodyPartExamined",
    "ClinicalTrialSeriesID", "ClinicalTrialTimePointID", "ClinicalTrialCoordinatingCenterName",
)



@dataclass
class DcmqiMetadata:
    """What a dcmqi metadata document says.

    Attributes
    ----------
    label_ids
        Voxel value of each segment, in segment-number order (segment ``i + 1``
        has value ``label_ids[i]``).
    descriptions
        One SegmentDescription per segment, numbered 1, 2, 3, ...
    series
        DICOM keyword -> value for the series-level attributes found
        (``SeriesNumber`` and ``InstanceNumber`` as ints, ``ContentLabel``
        as a valid CS value).
    """

    label_ids: list[int]
    descriptions: list[Any]
    series: dict[str, Any] = field(default_factory=dict)


def _code(item: Any, what: str) -> Any:
    from monai_dicomseg.sr.coding import CodedConcept

    if isinstance(item, Sequence) and not isinstance(item, (str, bytes)) and len(item) == 1:
        item = item[0]  # tolerate a one-item list
    if not isinstance(item, Mapping):
        raise InputError(f"{what} must be an object with CodeValue, CodingSchemeDesignator, CodeMeaning")
    try:
        return CodedConcept(str(item["CodeValue"]), str(item["CodingSchemeDesignator"]),
                            str(item["CodeMeaning"]))
    except KeyError as missing:
        raise InputError(f"{what} lacks {missing.args[0]}") from None


def _code_dict(code: Any) -> dict[str, str]:
    return {"CodeValue": str(code.value), "CodingSchemeDesignator": str(code.scheme_designator),
            "CodeMeaning": str(code.meaning)}


def _add_extras(description: Any, attributes: Mapping[str, Any], where: str) -> None:
    """What :func:`anatomy.segment_descriptions_from_dcmqi` leaves out: description, tracking, region modifier."""
    from pydicom.uid import generate_uid

    if attributes.get("SegmentDescription"):
        from monai_dicomseg.codec.vr import check_value

        description.SegmentDescription = check_value(
            "SegmentDescription", "LO", str(attributes["SegmentDescription"]), where=f"{where} SegmentDescription")
    if attributes.get("TrackingIdentifier"):
        description.TrackingID = str(attributes["TrackingIdentifier"])
        description.TrackingUID = str(attributes.get("TrackingUniqueIdentifier") or generate_uid())
    if "AnatomicRegionModifierSequence" in attributes and description.get("AnatomicRegionSequence"):
        description.AnatomicRegionSequence[0].AnatomicRegionModifierSequence = [
            _code(attributes["AnatomicRegionModifierSequence"], f"{where} AnatomicRegionModifierSequence")]


def _content_label(value: Any) -> str:
    """A Code String (PS3.5 6.2 CS): upper case, digits, space, underscore; at most 16 characters."""
    text = re.sub(r"[^A-Z0-9_ ]", "_", str(value).upper())[:16].strip()
    return text or "SEGMENTATION"


def read_dcmqi_metadata(document: Any, where: str = "metadata") -> DcmqiMetadata:
    """Parse a dcmqi segmentation metadata document.

    Segments are numbered 1, 2, 3, ... in increasing ``labelID`` order.

    Raises
    ------
    InputError
        If ``segmentAttributes`` is missing or empty, an item lacks
        ``labelID`` or a required code, or a ``labelID`` repeats.
    """
    from monai_dicomseg.anatomy import segment_descriptions_from_dcmqi

    if not isinstance(document, Mapping):
        raise InputError(f"{where} must be a JSON object; got {type(document).__name__}")
    groups = document.get("segmentAttributes")
    if not isinstance(groups, list) or not groups:
        raise InputError(f"{where} lacks a non-empty 'segmentAttributes' list")
    items: list[Mapping[str, Any]] = []
    for group in groups:
        items.extend(group if isinstance(group, list) else [group])
    by_label: dict[int, Mapping[str, Any]] = {}
    for position, item in enumerate(items):
        if not isinstance(item, Mapping) or "labelID" not in item:
            raise InputError(f"{where} segmentAttributes item {position} lacks 'labelID'")
        try:
            label = int(item["labelID"])
        except (TypeError, ValueError):
            raise InputError(f"{where} labelID must be an integer; got {item['labelID']!r}") from None
        if not 1 <= label <= 65535:
            raise InputError(f"{where} labelID must be in 1..65535; got {label}")
        color = item.get("recommendedDisplayRGBValue")
        if color is not None and (not isinstance(color, Sequence) or len(color) != 3 or not all(
                isinstance(v, int) and 0 <= v <= 255 for v in color)):
            raise InputError(f"{where} labelID {label} recommendedDisplayRGBValue must be 3 integers "
                             f"in 0..255; got {color!r}")
        by_label[label] = item
    try:
        pairs = segment_descriptions_from_dcmqi(document)
    except InputError as error:
        raise InputError(f"{where}: {error}") from None
    label_ids = [label for label, _ in pairs]
    descriptions = [description for _, description in pairs]
    for label, description in pairs:
        _add_extras(description, by_label[label], f"{where} labelID {label}")
    series: dict[str, Any] = {key: str(document[key]) for key in SERIES_KEYS if document.get(key)}
    for key in ("SeriesNumber", "InstanceNumber"):
        if document.get(key) not in (None, ""):
            try:
                series[key] = int(document[key])
            except (TypeError, ValueError):
                raise InputError(f"{where} {key} must be an integer; got {document[key]!r}") from None
    if document.get("ContentLabel"):
        series["ContentLabel"] = _content_label(document["ContentLabel"])
    return DcmqiMetadata(label_ids, descriptions, series)


def _segment_attributes(description: Any, label_id: int) -> dict[str, Any]:
    attributes: dict[str, Any] = {"labelID": int(label_id), "SegmentLabel": str(description.segment_label)}
    if description.get("SegmentDescription"):
        attributes["SegmentDescription"] = str(description.SegmentDescription)
    attributes["SegmentAlgorithmType"] = description.algorithm_type.value
    if description.get("SegmentAlgorithmName"):
        attributes["SegmentAlgorithmName"] = str(description.SegmentAlgorithmName)
    attributes["SegmentedPropertyCategoryCodeSequence"] = _code_dict(description.segmented_property_category)
    property_type = description.SegmentedPropertyTypeCodeSequence[0]
    attributes["SegmentedPropertyTypeCodeSequence"] = _code_dict(description.segmented_property_type)
    if property_type.get("SegmentedPropertyTypeModifierCodeSequence"):
        attributes["SegmentedPropertyTypeModifierCodeSequence"] = _code_dict(
            _as_concept(property_type.SegmentedPropertyTypeModifierCodeSequence[0]))
    if description.get("AnatomicRegionSequence"):
        region = description.AnatomicRegionSequence[0]
        attributes["AnatomicRegionSequence"] = _code_dict(_as_concept(region))
        if region.get("AnatomicRegionModifierSequence"):
            attributes["AnatomicRegionModifierSequence"] = _code_dict(
                _as_concept(region.AnatomicRegionModifierSequence[0]))
    if description.get("TrackingID"):
        attributes["TrackingIdentifier"] = str(description.TrackingID)
        attributes["TrackingUniqueIdentifier"] = str(description.TrackingUID)
    color = description.display_color
    if color is not None:
        attributes["recommendedDisplayRGBValue"] = [int(v) for v in color.rgb]
    return attributes


def _as_concept(dataset: Any) -> Any:
    from monai_dicomseg.sr.coding import CodedConcept

    return CodedConcept.from_dataset(dataset, copy=False)


def dcmqi_metadata_from_seg(seg: Any, groups: Sequence[Sequence[int]]) -> dict[str, Any]:
    """A dcmqi metadata document describing ``seg``.

    Parameters
    ----------
    seg
        A :class:`~monai_dicomseg.seg.Segmentation` (read or built).
    groups
        Segment numbers of each output file, in file order; the label value
        of a segment is its segment number.
    """
    document: dict[str, Any] = {}
    for key in (*SERIES_KEYS, "ContentLabel"):
        if seg.get(key):
            document[key] = str(seg.get(key))
    for key in ("SeriesNumber", "InstanceNumber"):
        if seg.get(key) is not None:
            document[key] = str(seg.get(key))
    document["segmentAttributes"] = [
        [_segment_attributes(seg.get_segment_description(int(n)), int(n)) for n in group]
        for group in groups
    ]
    return document


# --------------------------------------------------------------------------- names


def descriptions_from_names(names: Sequence[str], algorithm_name: str = "monai-dicomseg") -> tuple[list[Any], list[str]]:
    """SegmentDescriptions numbered 1, 2, ... for names, with codes and colours from the anatomy table.

    Returns
    -------
    tuple
        ``(descriptions, warnings)``: the names not in the table get a
        generic code and are listed in one warning line.
    """
    import warnings

    from pydicom.sr.codedict import codes

    from monai_dicomseg.anatomy import segment_descriptions_from_names
    from monai_dicomseg.seg.content import AlgorithmIdentificationSequence

    identification = AlgorithmIdentificationSequence(
        name=algorithm_name, family=codes.cid7162.ArtificialIntelligence, version="unknown")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        descriptions = segment_descriptions_from_names(list(names), algorithm_identification=identification)
    return descriptions, [" ".join(str(w.message).split()) for w in caught]
