"""Segment names to coded concepts: SNOMED CT terms and display colours for common anatomy.

A model's label names (``"spleen"``, ``"kidney_left"``, ``"tumor core"``, the
117 TotalSegmentator classes, MONAI model-zoo bundle labels) become
:class:`~monai_dicomseg.seg.SegmentDescription` objects with a Segmented
Property Category and Type (PS3.3 C.8.20.2, CID 7150 / CID 7151), an optional
Segmented Property Type Modifier for laterality and an Anatomic Region, and a
Recommended Display CIELab Value. The table is package data
(``monai_dicomseg/data/anatomy.json``).

Names are normalised before the lookup (:func:`normalize_name`): case,
underscores, hyphens and repeated spaces are ignored, and a ``left`` /
``right`` word anywhere in the name (``kidney_left``, ``Left Kidney``,
``rib_left_3``) becomes a laterality modifier on the base term unless the
table names the lateral structure itself (``left atrium``). Unknown names get
a generic code (SCT 123037004 "Anatomical Structure" / SCT 91723000
"Anatomical structure") and one warning lists them all.

dcmqi's segmentation metadata JSON (``segmentAttributes``) is read by
:func:`segment_descriptions_from_dcmqi`.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from monai_dicomseg.errors import InputError, InputTypeError
from monai_dicomseg.seg.content import AlgorithmIdentificationSequence, SegmentDescription
from monai_dicomseg.sr.coding import CodedConcept

__all__ = [
    "SegmentTerm",
    "normalize_name",
    "lookup_term",
    "terms_for_names",
    "segment_descriptions_from_names",
    "default_algorithm_identification",
    "segment_descriptions_from_dcmqi",
    "describe_segment",
    "UnknownSegmentNameWarning",
]


class UnknownSegmentNameWarning(UserWarning):
    """Some segment names are not in the anatomy table and got a generic code."""


@dataclass(frozen=True)
class SegmentTerm:
    """Coded meaning of one segment name.

    Attributes
    ----------
    label
        The name as given (becomes Segment Label (0062,0005)).
    category, property_type
        Segmented Property Category / Type codes (PS3.3 C.8.20.2).
    type_modifier
        Segmented Property Type Modifier (laterality), or None.
    anatomic_region
        Anatomic Region (for lesions, vessels of an organ), or None.
    rgb
        Recommended display colour ``(r, g, b)`` 0..255.
    known
        False when the generic code was used.
    """

    label: str
    category: CodedConcept
    property_type: CodedConcept
    type_modifier: "CodedConcept | None"
    anatomic_region: "CodedConcept | None"
    rgb: tuple[int, int, int]
    known: bool


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    text = resources.files("monai_dicomseg").joinpath("data/anatomy.json").read_text(encoding="utf-8")
    return json.loads(text)


def _concept(triple: Sequence[str]) -> CodedConcept:
    value, scheme, meaning = triple
    return CodedConcept(value, scheme, meaning)


_SEPARATORS = re.compile(r"[\s_\-./,()]+")
_SIDES = {"left": "left", "right": "right", "lt": "left", "rt": "right"}


def normalize_name(name: str) -> tuple[str, "str | None"]:
    """Normalise a label name for the table lookup.

    Parameters
    ----------
    name
        E.g. ``"Kidney_Left"``, ``"left kidney"``, ``"rib_left_3"``.

    Returns
    -------
    tuple
        ``(base, side)``: lower-case words joined by single spaces without the
        laterality word, and ``"left"`` / ``"right"`` / None.
    """
    words = [w for w in _SEPARATORS.split(str(name).lower()) if w]
    sides = {_SIDES[w] for w in words if w in _SIDES}
    side = sides.pop() if len(sides) == 1 else None
    base = " ".join(w for w in words if side is None or w not in _SIDES)
    return base, side


def _entry(key: str) -> "dict[str, Any] | None":
    table = _table()
    key = table["synonyms"].get(key, key)
    return table["entries"].get(key)


def lookup_term(name: str) -> "SegmentTerm | None":
    """Coded term of ``name``, or None when the table does not know it.

    The full normalised name (laterality included, e.g. ``"left atrium"``) is
    tried first, then the base name with a laterality modifier
    (SCT 7771000 Left / SCT 24028007 Right).
    """
    if not isinstance(name, str):
        raise InputTypeError(f"segment name must be a str; got {type(name).__name__}")
    base, side = normalize_name(name)
    full = " ".join(w for w in _SEPARATORS.split(name.lower()) if w)
    modifier = None
    entry = _entry(full)
    if entry is None and side is not None:
        # "heart_atrium_left" -> try "left atrium"-style keys first, then base + modifier
        entry = _entry(f"{side} {base}") or _entry(f"{base} {side}")
        if entry is None:
            entry = _entry(base)
            if entry is not None:
                modifier = _concept(_table()["laterality"][side])
    elif entry is None:
        entry = _entry(base)
    if entry is None:
        return None
    region = entry.get("region")
    return SegmentTerm(
        label=name,
        category=_concept(entry["category"]),
        property_type=_concept(entry["type"]),
        type_modifier=modifier,
        anatomic_region=None if region is None else _concept(region),
        rgb=tuple(int(v) for v in entry["rgb"]),  # type: ignore[arg-type]  # tuple() of a 3-item RGB entry is typed tuple[int, ...]; the table holds 3 values
        known=True,
    )


def _generic_color(name: str) -> tuple[int, int, int]:
    """A stable, mid-saturation colour derived from the name."""
    digest = hashlib.sha1(name.encode("utf-8")).digest()
    return tuple(64 + int(b) % 160 for b in digest[:3])  # type: ignore[return-value]  # tuple() is typed tuple[T, ...]; the fixed length holds by construction (one item per axis)


def _generic_term(name: str) -> SegmentTerm:
    generic = _table()["generic"]
    return SegmentTerm(name, _concept(generic["category"]), _concept(generic["type"]), None, None,
                       _generic_color(name), False)


def terms_for_names(names: Iterable[str], warn: bool = True) -> list[SegmentTerm]:
    """Look up every name; unknown ones get the generic term and ONE warning lists them.

    Raises
    ------
    InputTypeError
        If a name is not a string.
    InputError
        If a name is empty.
    """
    terms: list[SegmentTerm] = []
    unknown: list[str] = []
    for name in names:
        if not isinstance(name, str):
            raise InputTypeError(f"segment names must be strings; got {type(name).__name__} ({name!r})")
        if not name.strip():
            raise InputError("segment names must be non-empty strings")
        term = lookup_term(name)
        if term is None:
            unknown.append(name)
            term = _generic_term(name)
        terms.append(term)
    if unknown and warn:
        warnings.warn(
            f"{len(unknown)} segment name(s) not in the anatomy table got the generic code "
            f"SCT 91723000 'Anatomical structure': {unknown}; pass SegmentDescriptions for exact codes",
            UnknownSegmentNameWarning, stacklevel=2,
        )
    return terms


def describe_segment(
    number: int,
    term: SegmentTerm,
    algorithm_identification: "AlgorithmIdentificationSequence | None" = None,
    algorithm_type: str = "AUTOMATIC",
) -> SegmentDescription:
    """Build the Segment Sequence item (PS3.3 C.8.20.2) of one term.

    The laterality modifier goes into the type code item as
    SegmentedPropertyTypeModifierCodeSequence; the colour becomes
    RecommendedDisplayCIELabValue.
    """
    description = SegmentDescription(
        segment_number=int(number),
        segment_label=term.label[:64],
        segmented_property_category=term.category,
        segmented_property_type=term.property_type,
        algorithm_type=algorithm_type,
        algorithm_identification=algorithm_identification if str(algorithm_type) != "MANUAL" else None,
        anatomic_regions=None if term.anatomic_region is None else [term.anatomic_region],
        display_color=term.rgb,
    )
    if term.type_modifier is not None:
        description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
            term.type_modifier]
    return description


DEFAULT_ALGORITHM_NAME = "MONAI"
"""Algorithm Name (0066,0036) of :func:`default_algorithm_identification` (the writer's default too)."""

ARTIFICIAL_INTELLIGENCE = CodedConcept("123110", "DCM", "Artificial Intelligence")
"""Algorithm Family (CID 7162) of :func:`default_algorithm_identification`."""


def default_algorithm_identification() -> AlgorithmIdentificationSequence:
    """The Algorithm Identification used when an AUTOMATIC segment names none.

    PS3.3 C.8.20.2 requires Algorithm Identification (Type 1C) for AUTOMATIC
    and SEMIAUTOMATIC segments. Without one given, the segments are attributed
    to :data:`DEFAULT_ALGORITHM_NAME` (``"MONAI"``), family DCM 123110
    "Artificial Intelligence", version ``"unknown"``: the model that produced
    them is not known here. Pass your own
    :class:`~monai_dicomseg.seg.AlgorithmIdentificationSequence` to record it.
    """
    return AlgorithmIdentificationSequence(name=DEFAULT_ALGORITHM_NAME, family=ARTIFICIAL_INTELLIGENCE,
                                           version="unknown")


def segment_descriptions_from_names(
    names: Sequence[str],
    algorithm_identification: "AlgorithmIdentificationSequence | None" = None,
    algorithm_type: str = "AUTOMATIC",
    first_segment_number: int = 1,
) -> list[SegmentDescription]:
    """Segment descriptions numbered ``first_segment_number, ...`` for ``names``.

    Parameters
    ----------
    names
        Segment labels in segment-number order.
    algorithm_identification
        Algorithm Identification of AUTOMATIC / SEMIAUTOMATIC segments (PS3.3
        C.8.20.2, required there). Default:
        :func:`default_algorithm_identification` (``"MONAI"``, Artificial
        Intelligence, version ``"unknown"``), so that the defaults of this
        function make valid descriptions. Ignored for MANUAL segments.
    algorithm_type
        ``"AUTOMATIC"`` (default), ``"SEMIAUTOMATIC"`` or ``"MANUAL"``.
    first_segment_number
        Segment number of ``names[0]`` (1-based, PS3.3 C.8.20.2).
    """
    if algorithm_identification is None and str(algorithm_type).upper() != "MANUAL":
        algorithm_identification = default_algorithm_identification()
    terms = terms_for_names(names)
    return [describe_segment(first_segment_number + i, term, algorithm_identification, algorithm_type)
            for i, term in enumerate(terms)]


# --------------------------------------------------------------------------- dcmqi


def _code(item: Any, field: str) -> CodedConcept:
    if not isinstance(item, Mapping):
        raise InputError(f"dcmqi segment attribute {field} must be an object with CodeValue, "
                         f"CodingSchemeDesignator and CodeMeaning; got {item!r}")
    try:
        return CodedConcept(str(item["CodeValue"]), str(item["CodingSchemeDesignator"]), str(item["CodeMeaning"]))
    except KeyError as missing:
        raise InputError(f"dcmqi segment attribute {field} lacks {missing}") from None


def _load_dcmqi(metadata: "str | os.PathLike[str] | Mapping[str, Any]") -> Mapping[str, Any]:
    if isinstance(metadata, Mapping):
        return metadata
    if isinstance(metadata, (str, os.PathLike)):
        text = str(metadata)
        if text.lstrip().startswith("{"):
            return json.loads(text)
        try:
            with open(text, encoding="utf-8") as stream:
                return json.load(stream)
        except FileNotFoundError:
            raise InputError(f"dcmqi metadata file {text!r} does not exist") from None
        except json.JSONDecodeError as error:
            raise InputError(f"dcmqi metadata file {text!r} is not valid JSON: {error}") from None
    raise InputTypeError(f"dcmqi metadata must be a path, JSON text or dict; got {type(metadata).__name__}")


def segment_descriptions_from_dcmqi(
    metadata: "str | os.PathLike[str] | Mapping[str, Any]",
    algorithm_identification: "AlgorithmIdentificationSequence | None" = None,
) -> list[tuple[int, SegmentDescription]]:
    """Read dcmqi's ``segmentAttributes`` into ``(labelID, SegmentDescription)`` pairs.

    Parameters
    ----------
    metadata
        dcmqi metadata JSON (path, text or dict) as used by
        ``itkimage2segimage``: ``segmentAttributes`` is a list (one per input
        file) of lists of dicts with ``labelID``, ``SegmentLabel``,
        ``SegmentedPropertyCategoryCodeSequence``,
        ``SegmentedPropertyTypeCodeSequence`` (optional
        ``SegmentedPropertyTypeModifierCodeSequence``,
        ``AnatomicRegionSequence``), ``recommendedDisplayRGBValue``,
        ``SegmentAlgorithmType`` and ``SegmentAlgorithmName``.
    algorithm_identification
        Used for AUTOMATIC/SEMIAUTOMATIC segments; default built from
        ``SegmentAlgorithmName`` (family: Artificial Intelligence).

    Returns
    -------
    list of (int, SegmentDescription)
        Sorted by ``labelID`` (the label value in the input); segments are
        numbered 1, 2, ... in that order.

    Raises
    ------
    InputError
        Missing ``segmentAttributes``, missing codes, or repeated ``labelID``.
    """
    data = _load_dcmqi(metadata)
    groups = data.get("segmentAttributes")
    if not isinstance(groups, list) or not groups:
        raise InputError("dcmqi metadata must have a non-empty 'segmentAttributes' list")
    items = [item for group in groups for item in (group if isinstance(group, list) else [group])]
    by_label: dict[int, Mapping[str, Any]] = {}
    for item in items:
        if not isinstance(item, Mapping) or "labelID" not in item:
            raise InputError(f"every dcmqi segment attribute needs a 'labelID'; got {item!r}")
        label_id = int(item["labelID"])
        if label_id in by_label:
            raise InputError(f"dcmqi metadata repeats labelID {label_id}")
        by_label[label_id] = item
    result = []
    for number, label_id in enumerate(sorted(by_label), start=1):
        item = by_label[label_id]
        label = str(item.get("SegmentLabel") or item.get("SegmentDescription") or f"Segment {label_id}")
        algorithm_type = str(item.get("SegmentAlgorithmType", "AUTOMATIC")).upper()
        identification = algorithm_identification
        if algorithm_type != "MANUAL" and identification is None:
            identification = AlgorithmIdentificationSequence(
                name=str(item.get("SegmentAlgorithmName") or "unknown"),
                family=CodedConcept("123110", "DCM", "Artificial Intelligence"), version="unknown")
        rgb = item.get("recommendedDisplayRGBValue")
        region = item.get("AnatomicRegionSequence")
        modifier = item.get("SegmentedPropertyTypeModifierCodeSequence")
        term = SegmentTerm(
            label=label,
            category=_code(item.get("SegmentedPropertyCategoryCodeSequence"), "SegmentedPropertyCategoryCodeSequence"),
            property_type=_code(item.get("SegmentedPropertyTypeCodeSequence"), "SegmentedPropertyTypeCodeSequence"),
            type_modifier=None if modifier is None else _code(modifier, "SegmentedPropertyTypeModifierCodeSequence"),
            anatomic_region=None if region is None else _code(region, "AnatomicRegionSequence"),
            rgb=tuple(int(v) for v in rgb) if rgb is not None else _generic_color(label),  # type: ignore[arg-type]  # tuple() of the 3 RGB values is typed tuple[int, ...]; the length is checked by the caller
            known=True,
        )
        result.append((label_id, describe_segment(number, term, identification, algorithm_type)))
    return result
