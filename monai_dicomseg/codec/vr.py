"""Every value that leaves the package is valid for its Value Representation.

:func:`check_dataset_values` is the one seam the writer passes a finished data
set through (before the Pixel Data is encoded): it walks the parsed elements
(the raw per-frame bytes built by :mod:`monai_dicomseg.codec.raw` are valid by
construction) and checks each value against the rules of PS3.5 6.2
(Table 6.2-1):

* lengths: AE/CS/SH/DS 16, IS 12, LO/UI 64, PN 64 per component group,
  ST 1024, LT 10240 characters;
* repertoire: no backslash inside one value of a VR whose values it separates,
  no control characters in LO/SH/PN/CS (ESC allowed where character sets
  switch; the C1 controls U+0080-U+009F are in no DICOM repertoire, PS3.5
  6.1), CS only upper-case letters, digits, space and underscore, text
  encodable in the declared Specific Character Set;
* UI: dot-separated numbers without leading zeros (PS3.5 9.1);
* IS/US/UL/SS/SL: integers in range; SeriesNumber and InstanceNumber at least 1
  (the rule highdicom applies to ``series_number`` / ``instance_number``);
* DS: derived numbers are *formatted to fit* 16 characters (never an error
  unless not finite);
* Type 1 values that must not be empty (SeriesInstanceUID, SegmentLabel, ...).

A violation is an :class:`~monai_dicomseg.errors.InputError` naming the
argument the value came from (``series_number``,
``segment_descriptions[0].segment_label``) and the rule it breaks.
"""
from __future__ import annotations

import re
from typing import Any
from collections.abc import Mapping

import numpy as np
from pydicom.dataelem import DataElement
from pydicom.datadict import dictionary_VM, dictionary_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from monai_dicomseg.errors import InputError, InputTypeError

__all__ = ["check_dataset_values", "check_value", "check_uid", "check_argument", "ARGUMENT_NAMES", "MAX_LENGTHS"]

MAX_LENGTHS: dict[str, int] = {
    "AE": 16, "CS": 16, "SH": 16, "DS": 16, "IS": 12, "LO": 64, "UI": 64, "PN": 64,
    "ST": 1024, "LT": 10240, "DA": 8, "TM": 16, "DT": 26, "AS": 4,
}
"""Maximum characters per value (PS3.5 Table 6.2-1; PN: per component group)."""

_INT_RANGES: dict[str, tuple[int, int]] = {
    "US": (0, 2**16 - 1),
    "UL": (0, 2**32 - 1),
    "SS": (-(2**15), 2**15 - 1),
    "SL": (-(2**31), 2**31 - 1),
    "IS": (-(2**31), 2**31 - 1),
}
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_CS = re.compile(r"^[A-Z0-9 _]*$")
# ESC (0x1b) may switch character sets; C1 controls (0x80-0x9f) belong to no DICOM repertoire (PS3.5 6.1)
_CONTROL = re.compile(r"[\x00-\x1a\x1c-\x1f\x7f-\x9f]")
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f-\x9f]")  # ST/LT/UT keep TAB, LF, FF, CR
_MINIMA: dict[str, int] = {"SeriesNumber": 1, "InstanceNumber": 1}
"""Smallest value accepted for these IS attributes (highdicom refuses ``series_number`` / ``instance_number`` < 1)."""
_SEPARATED = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "PN", "SH", "TM", "UI", "UC"})

ARGUMENT_NAMES: dict[str, str] = {
    "SeriesInstanceUID": "series_instance_uid",
    "SOPInstanceUID": "sop_instance_uid",
    "SeriesNumber": "series_number",
    "InstanceNumber": "instance_number",
    "Manufacturer": "manufacturer",
    "ManufacturerModelName": "manufacturer_model_name",
    "SoftwareVersions": "software_versions",
    "DeviceSerialNumber": "device_serial_number",
    "ContentDescription": "content_description",
    "ContentCreatorName": "content_creator_name",
    "ContentLabel": "content_label",
    "PyramidUID": "pyramid_uid",
    "PyramidLabel": "pyramid_label",
    "SeriesDescription": "series_description",
    "SegmentLabel": "segment_label",
    "SegmentDescription": "segment_description",
    "TrackingID": "tracking_id",
    "TrackingUID": "tracking_uid",
    "SegmentNumber": "segment_number",
    "AlgorithmName": "algorithm_identification name",
    "AlgorithmVersion": "algorithm_identification version",
    "AlgorithmSource": "algorithm_identification source",
    "CodeValue": "code value",
    "CodeMeaning": "code meaning",
    "CodingSchemeDesignator": "coding scheme designator",
}
"""Constructor argument (or part of one) that each written attribute comes from."""

_NOT_EMPTY = frozenset({
    "SeriesInstanceUID", "SOPInstanceUID", "StudyInstanceUID", "SOPClassUID", "SeriesNumber",
    "InstanceNumber", "Manufacturer", "ManufacturerModelName", "SoftwareVersions",
    "DeviceSerialNumber", "ContentLabel", "SegmentLabel", "SegmentNumber",
    "TrackingID", "TrackingUID",  # Type 1C: present only together, then not empty (PS3.3 C.8.20.4)
})
"""Type 1 attributes of the Segmentation IOD filled from arguments (PS3.3 A.51, C.8.20.2, C.7.5.2)."""

_SEGMENT_ITEM = "SegmentSequence"


def _codec(charset: Any) -> str | None:
    """Python codec for a Specific Character Set, ``None`` when not checked here."""
    values = [str(v).strip() for v in (charset if isinstance(charset, (list, tuple)) else [charset])]
    values = [v for v in values if v] or [""]
    if len(values) > 1:
        return None  # code extensions: left to pydicom
    return {"": "ascii", "ISO_IR 6": "ascii", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}.get(values[0])


def _where(path: str, keyword: str, names: Mapping[str, str]) -> str:
    argument = names.get(keyword)
    if path.startswith(_SEGMENT_ITEM):
        index = path[len(_SEGMENT_ITEM) + 1 : path.index("]")] if "[" in path else "?"
        prefix = f"segment_descriptions[{index}]"
        inner = path[path.index("]") + 1 :].lstrip(".") if "]" in path else ""
        if inner:
            return f"{prefix}.{inner}.{keyword} ({keyword})"
        return f"{prefix}.{argument or keyword} ({keyword})"
    if path:
        return f"{path}.{keyword}"
    return f"{argument} ({keyword})" if argument else keyword


def _fail(where: str, vr: str, rule: str, value: Any) -> InputError:
    shown = value if not isinstance(value, str) or len(value) <= 80 else value[:77] + "..."
    return InputError(f"{where}: {rule} (VR {vr}, PS3.5 6.2); got {shown!r}")


def _text_values(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple, MultiValue)):
        return list(value)
    return [value]


def _single_valued(keyword: str) -> bool:
    try:
        return dictionary_VM(keyword) == "1"
    except KeyError:
        return False


def check_value(keyword: str, vr: str, value: Any, *, where: str, codec: str | None = "latin-1") -> Any:
    """Check one element value; return it (DS values formatted to fit, else unchanged).

    Parameters
    ----------
    keyword, vr
        The attribute and its Value Representation.
    value
        As stored in the pydicom element (single value or list).
    where
        Name of the argument for messages.
    codec
        Python codec of the Specific Character Set (``None``: not checked).

    Raises
    ------
    InputError
        Naming ``where`` and the rule.
    """
    # long because: a flat list of independent PS3.5 6.2 checks (multiplicity, Type 1 emptiness, integer ranges,
    #   DS formatting, length, character repertoire); splitting it would scatter one VR table over several functions
    values = _text_values(value)
    if len(values) > 1 and _single_valued(keyword):
        raise _fail(where, vr, "must be a single value (VM 1); a backslash would separate values",
                    "\\".join(str(v) for v in values))
    if keyword in _NOT_EMPTY and (not values or all(str(v).strip() == "" for v in values)):
        raise _fail(where, vr, "must not be empty (Type 1)", value)
    if vr in _INT_RANGES:
        low, high = _INT_RANGES[vr]
        for v in values:
            if v is None or v == "":
                continue
            try:
                number = int(v)
            except (TypeError, ValueError, OverflowError):
                raise _fail(where, vr, "must be an integer", v) from None
            if not low <= number <= high:
                raise _fail(where, vr, f"must be an integer in [{low}, {high}]", v)
            if number < _MINIMA.get(keyword, low):
                raise _fail(where, vr, f"must be at least {_MINIMA[keyword]} (numbers identifying a series or an "
                            "instance start at 1, as highdicom requires)", v)
            if vr == "IS" and len(str(number)) > 12:
                raise _fail(where, vr, "must have at most 12 characters", v)
        return value
    if vr == "DS":
        from monai_dicomseg.codec.raw import ds_value

        fitted = []
        changed = False
        for v in values:
            if v is None or v == "":
                fitted.append(v)
                continue
            text = getattr(v, "original_string", None) or str(v)
            try:
                new = ds_value(text, where)
            except Exception as exc:  # EncodeError: not a finite number
                raise _fail(where, vr, "must be a finite decimal number", v) from exc
            changed |= new != text
            fitted.append(new)
        if not changed:
            return value
        return fitted if isinstance(value, (list, tuple)) or len(fitted) != 1 else fitted[0]
    if vr not in MAX_LENGTHS and vr not in ("UT", "UC", "UR"):
        return value
    for v in values:
        if v is None:
            continue
        text = str(v)
        if vr in _SEPARATED and "\\" in text:
            raise _fail(where, vr, "must not contain a backslash (it separates values)", text)
        if vr in ("ST", "LT", "UT"):
            if _TEXT_CONTROL.search(text):
                raise _fail(where, vr, "must not contain control characters other than TAB, LF, FF, CR", text)
        elif _CONTROL.search(text):
            raise _fail(where, vr, "must not contain control characters (newline, NUL, ...)", text)
        limit = MAX_LENGTHS.get(vr)
        if vr == "PN":
            groups = text.split("=")
            if len(groups) > 3 or any(len(g) > 64 for g in groups) or any(g.count("^") > 4 for g in groups):
                raise _fail(where, vr, "must have at most 3 component groups of at most 64 characters and "
                            "5 components each", text)
        elif limit is not None and len(text.rstrip(" ") if vr != "UI" else text) > limit:
            raise _fail(where, vr, f"must have at most {limit} characters, not {len(text)}", text)
        if vr == "UI" and text:
            _check_uid_form(text, where)
        if vr == "CS" and not _CS.match(text):
            raise _fail(where, vr, "may hold only upper-case letters, digits, space and underscore", text)
        if codec is not None and vr not in ("UI", "CS", "DA", "TM", "DT", "AS", "AE", "IS", "DS"):
            try:
                text.encode(codec)
            except UnicodeEncodeError:
                raise _fail(where, vr, f"holds characters that SpecificCharacterSet ({codec}) cannot encode; "
                            "use SpecificCharacterSet ISO_IR 192 (UTF-8) sources or plain text", text) from None
    return value


def _check_uid_form(text: str, where: str) -> None:
    """The form of a non-empty UID of at most 64 characters (PS3.5 9.1)."""
    if not _UID.match(text):
        raise _fail(where, "UI", "must be digits separated by dots, without leading zeros (PS3.5 9.1)", text)
    parts = text.split(".")
    if len(parts) < 2 or parts[0] not in ("0", "1", "2") or (parts[0] != "2" and int(parts[1]) > 39):
        raise _fail(where, "UI", "must start with a registered root arc: 0, 1 or 2, then (under 0 and 1) "
                    "a number up to 39, and have at least 2 components (PS3.5 9.1, ISO 8824)", text)
    if all(part == "0" for part in parts):
        raise _fail(where, "UI", "must not consist of zero components only (PS3.5 9.1)", text)


def check_uid(value: Any, where: str) -> str:
    """Check one UID about to be written (also one copied from an input file); return it as ``str``.

    The checks of :func:`check_value` for VR UI (PS3.5 9.1, Table 6.2-1):
    not empty, at most 64 characters, dot-separated numbers without leading
    zeros under a root arc 0, 1 or 2. Cheap enough to run on every source
    image of a large series (one regular expression in the common case).

    Parameters
    ----------
    value
        The UID (``str`` or pydicom ``UID``).
    where
        What the value is, for messages: ``"source_images[3].SOPInstanceUID"``.

    Raises
    ------
    InputError
        Naming ``where``, the rule and the value.
    """
    text = str(value)
    if not text:
        raise _fail(where, "UI", "must not be empty (Type 1)", value)
    if len(text) > MAX_LENGTHS["UI"]:
        raise _fail(where, "UI", f"must have at most 64 characters, not {len(text)}", text)
    _check_uid_form(text, where)
    return text


def check_argument(argument: str, keyword: str, value: Any) -> Any:
    """Check a writer argument stored as ``keyword`` before any costly work; return it unchanged.

    Integer VRs (IS, US, UL, SS, SL) take an ``int`` (or numpy integer), not a
    ``bool``, ``float`` or ``str``; UI takes a ``str``; the value is then
    checked by :func:`check_value` (``SeriesNumber`` / ``InstanceNumber``
    at least 1, UIDs well formed, ...).

    Raises
    ------
    InputTypeError
        Wrong type, naming ``argument``.
    InputError
        A value its VR does not allow, naming ``argument`` and ``keyword``.
    """
    vr = dictionary_VR(keyword)
    where = f"{argument} ({keyword})"
    if vr in _INT_RANGES and (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))):
        raise InputTypeError(f"{where} must be an int; got {type(value).__name__} {value!r}")
    if vr == "UI" and not isinstance(value, str):
        raise InputTypeError(f"{where} must be a str; got {type(value).__name__} {value!r}")
    check_value(keyword, vr, int(value) if vr in _INT_RANGES else value, where=where, codec=None)
    return value


def _walk(dataset: Dataset, path: str, codec: str | None, names: Mapping[str, str]) -> None:
    for element in dataset.elements():
        if not isinstance(element, DataElement):
            continue  # raw (unparsed) elements: encoded by codec.raw, valid by construction
        keyword = element.keyword
        vr = element.VR
        if vr == "SQ":
            for n, item in enumerate(element.value or ()):
                _walk(item, f"{path + '.' if path else ''}{keyword}[{n}]", codec, names)
            continue
        if not keyword or vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN", "FD", "FL", "AT", "SV", "UV"):
            continue
        where = _where(path, keyword, names)
        checked = check_value(keyword, vr, element.value, where=where, codec=codec)
        if checked is not element.value:
            element.value = checked


def check_dataset_values(
    dataset: Dataset,
    *,
    arguments: Mapping[str, str] | None = None,
    path: str = "",
    character_set: Any = None,
) -> None:
    """Check (and, for derived DS numbers, fit) every parsed value of ``dataset`` in place.

    Parameters
    ----------
    dataset
        A data set about to be written (its File Meta Information is checked too).
    arguments
        Extra keyword -> argument names for messages.
    path
        Where ``dataset`` sits, for messages (``"SegmentSequence[0]"`` for a
        segment description encoded separately).
    character_set
        Specific Character Set of the enclosing data set (default: the
        data set's own).

    Raises
    ------
    InputError
        The first value that is not valid for its VR, naming the argument.
    """
    names = {**ARGUMENT_NAMES, **(arguments or {})}
    codec = _codec(dataset.get("SpecificCharacterSet", "") if character_set is None else character_set)
    _walk(dataset, path, codec, names)
    _check_distinct_uids(dataset, names)
    meta = getattr(dataset, "file_meta", None)
    if meta is not None:
        _walk(meta, "", "ascii", names)


_DISTINCT_UIDS = ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID")


def _check_distinct_uids(dataset: Dataset, names: Mapping[str, str]) -> None:
    """SOP Instance, Series, Study and Frame of Reference UIDs identify different things (PS3.3 C.12.1.1.1)."""
    seen: dict[str, str] = {}
    for keyword in _DISTINCT_UIDS:
        value = str(dataset.get(keyword, "") or "")
        if not value:
            continue
        if value in seen:
            first = seen[value]
            raise InputError(
                f"{_where('', keyword, names)} must differ from {_where('', first, names)}: each UID names "
                f"one thing (PS3.3 C.12.1.1.1, PS3.5 9); got {value!r} for both"
            )
        seen[value] = keyword
