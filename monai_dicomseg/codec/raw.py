"""Direct Explicit VR Little Endian encoding of elements, items and sequences.

Used for the parts of a SEG whose size grows with the number of frames
(Per-Frame Functional Groups Sequence, referenced instances): building
thousands of pydicom ``Dataset`` objects costs seconds, concatenating bytes
costs milliseconds. Sequences and items use defined lengths (PS3.5 7.5.1),
so pydicom keeps them unparsed (raw) until they are accessed.
"""
from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.valuerep import format_number_as_ds

from monai_dicomseg.errors import EncodeError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

__all__ = [
    "element",
    "item",
    "sequence",
    "ui",
    "cs",
    "lo",
    "us",
    "sl",
    "ds",
    "is_",
    "at",
    "code_item",
    "format_ds",
    "ds_value",
    "pixel_data_header",
    "SEQUENCE_DELIMITER",
    "encode_dataset",
]

# VRs with a 4-byte length field in Explicit VR (PS3.5 Table 7.1-1).
_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
_ITEM_TAG = struct.pack("<HH", 0xFFFE, 0xE000)


@cache
def _header_parts(keyword: str) -> tuple[bytes, str]:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise EncodeError(f"unknown DICOM keyword {keyword!r}")
    vr = dictionary_VR(tag)
    if " or " in vr:  # ambiguous VRs: SEG only uses the US form
        vr = "US"
    return struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode("ascii"), vr


def element(keyword: str, value: bytes) -> bytes:
    """Encode one data element whose value is already encoded.

    Parameters
    ----------
    keyword
        DICOM keyword; tag and VR come from the data dictionary.
    value
        Encoded value bytes, already padded to even length.
    """
    header, vr = _header_parts(keyword)
    if len(value) % 2:
        raise EncodeError(f"value of {keyword} has odd length {len(value)}")
    if vr in _LONG_VRS:
        return header + b"\x00\x00" + struct.pack("<I", len(value)) + value
    if len(value) > 0xFFFF:
        raise EncodeError(f"value of {keyword} is {len(value)} bytes; at most 65535 allowed")
    return header + struct.pack("<H", len(value)) + value


def item(*encoded_elements: bytes) -> bytes:
    """Encode one sequence item (defined length) from encoded elements in tag order."""
    body = b"".join(encoded_elements)
    return _ITEM_TAG + struct.pack("<I", len(body)) + body


def sequence(keyword: str, items: Iterable[bytes]) -> bytes:
    """Encode a sequence element (defined length) from encoded items."""
    return element(keyword, b"".join(items))


def _text(value: str, pad: bytes) -> bytes:
    data = value.encode("ascii")
    return data + pad if len(data) % 2 else data


def ui(keyword: str, value: str) -> bytes:
    """UI element (NUL padded, PS3.5 6.2)."""
    return element(keyword, _text(str(value), b"\x00"))


def cs(keyword: str, value: str) -> bytes:
    """CS/SH/LO-style text element (space padded)."""
    return element(keyword, _text(value, b" "))


lo = cs


def us(keyword: str, values: int | Sequence[int]) -> bytes:
    """US element (one or more unsigned 16-bit values)."""
    values = [values] if isinstance(values, int) else list(values)
    return element(keyword, struct.pack(f"<{len(values)}H", *values))


def sl(keyword: str, values: int | Sequence[int]) -> bytes:
    """SL element (one or more signed 32-bit values)."""
    values = [values] if isinstance(values, int) else list(values)
    return element(keyword, struct.pack(f"<{len(values)}i", *values))


def at(keyword: str, tag: int) -> bytes:
    """AT element holding one tag."""
    return element(keyword, struct.pack("<HH", tag >> 16, tag & 0xFFFF))


def format_ds(value: float) -> str:
    """Format a float as a valid DS string (at most 16 characters, PS3.5 6.2)."""
    text = repr(float(f"{float(value):.12g}"))  # 12 significant digits: drops noise like 23.434903000000002
    if text.endswith(".0"):
        text = text[:-2]
    if len(text) > 16 or "inf" in text or "nan" in text:
        text = format_number_as_ds(float(value))
    return text


_DS_PATTERN = re.compile(r"^ *[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)? *$")


def ds_value(value: float | str, keyword: str = "DS value") -> str:
    """One valid DS string (PS3.5 6.2: at most 16 characters, a finite decimal number).

    A string that is already a valid DS (e.g. copied from a source image) is
    kept verbatim; a longer one (``"0.9659258492011171"``, 18 characters) or a
    float is formatted to fit (derived values may be rounded, never truncated
    as text).

    Raises
    ------
    EncodeError
        If the value is not a finite number.
    """
    if isinstance(value, str):
        if value == "" or (len(value) <= 16 and _DS_PATTERN.match(value)):
            return value
        try:
            number = float(value)
        except ValueError:
            raise EncodeError(f"{keyword} must be a decimal number (DS, PS3.5 6.2); got {value!r}") from None
    else:
        number = float(value)
    if not math.isfinite(number):
        raise EncodeError(f"{keyword} must be a finite number (DS, PS3.5 6.2); got {value!r}")
    return format_ds(number)


def ds(keyword: str, values: Sequence[float | str]) -> bytes:
    """DS element; valid DS strings are written verbatim (e.g. copied from the source), others fitted."""
    text = "\\".join(ds_value(v, keyword) for v in values)
    return element(keyword, _text(text, b" "))


def is_(keyword: str, value: int) -> bytes:
    """IS element."""
    return element(keyword, _text(str(int(value)), b" "))


SEQUENCE_DELIMITER = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
"""Sequence Delimitation Item ending an undefined-length value (PS3.5 7.5.2)."""


def pixel_data_header(vr: str, length: int | None) -> bytes:
    """Header of the Pixel Data element: defined ``length`` or undefined (encapsulated, PS3.5 A.4)."""
    return struct.pack("<HH", 0x7FE0, 0x0010) + vr.encode("ascii") + b"\x00\x00" + struct.pack(
        "<I", 0xFFFFFFFF if length is None else length)


@cache
def code_item(value: str, scheme: str, meaning: str) -> bytes:
    """One Code Sequence item (Code Value, Coding Scheme Designator, Code Meaning)."""
    return item(cs("CodeValue", value), cs("CodingSchemeDesignator", scheme), lo("CodeMeaning", meaning))


_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "SH", "ST", "TM",
                       "UC", "UI", "UR", "UT"})
_NUMBER_FORMATS = {"US": "H", "UL": "I", "SS": "h", "SL": "i", "FL": "f", "FD": "d"}


def _text_value(value: object) -> str:
    values = value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
    return "\\".join(
        "" if v is None else (getattr(v, "original_string", None) or str(v)) for v in values  # type: ignore[attr-defined]  # values is a list/tuple/MultiValue or a one-item list (the MultiValue test by name is invisible to mypy)
    )


def _encode_element_value(data_element: object, encodings: "list[str] | None" = None) -> tuple[str, bytes] | None:
    """Encode the value of a plain pydicom DataElement, or ``None`` when unsupported here."""
    vr, value = data_element.VR, data_element.value  # type: ignore[attr-defined]  # get_item may return a RawDataElement; both element kinds have VR and value
    if vr == "SQ":
        return vr, b"".join(item(encode_dataset(dataset, encodings)) for dataset in value)
    if vr in _TEXT_VRS:
        text = _text_value(value)
        if not text.isascii():
            return None  # needs the dataset's character set: let pydicom encode it
        return vr, _text(text, b"\x00" if vr == "UI" else b" ")
    if vr in _NUMBER_FORMATS:
        values = [] if value is None else (list(value) if isinstance(value, (list, tuple)) or type(
            value).__name__ == "MultiValue" else [value])
        return vr, struct.pack(f"<{len(values)}{_NUMBER_FORMATS[vr]}", *values)
    return None


def encode_dataset(dataset: "Dataset", encodings: "list[str] | None" = None) -> bytes:
    """Encode a dataset's elements (Explicit VR Little Endian, defined-length sequences).

    Plain text, numeric and sequence elements are encoded here; anything else
    (person names, binary values, non-ASCII text) goes through pydicom's own
    element writer, so the result is always what pydicom would write.
    ``encodings`` are the Python codecs of the enclosing data set's
    SpecificCharacterSet (``pydicom.charset.convert_encodings``; PS3.5 6.1):
    an item of a sequence has none of its own. None: pydicom's default.
    """
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_data_element

    parts = []
    for tag in sorted(dataset.keys()):
        data_element = dataset.get_item(tag)
        if data_element.is_raw:
            if data_element.is_implicit_VR or not data_element.is_little_endian:  # type: ignore[attr-defined]  # is_raw is true: a RawDataElement, which has these (get_item is typed as returning DataElement)
                data_element = dataset[tag]
            else:
                parts.append(_raw_element_bytes(data_element))
                continue
        encoded = _encode_element_value(data_element, encodings)
        if encoded is None:
            buffer = DicomBytesIO()
            buffer.is_little_endian, buffer.is_implicit_VR = True, False
            write_data_element(buffer, data_element, encodings)
            parts.append(buffer.getvalue())
            continue
        vr, value = encoded
        header = struct.pack("<HH", tag.group, tag.element) + vr.encode("ascii")
        if vr in _LONG_VRS:
            parts.append(header + b"\x00\x00" + struct.pack("<I", len(value)) + value)
        else:
            parts.append(header + struct.pack("<H", len(value)) + value)
    return b"".join(parts)


def _raw_element_bytes(data_element: object) -> bytes:
    tag, vr, value = data_element.tag, data_element.VR, data_element.value  # type: ignore[attr-defined]  # get_item may return a RawDataElement; both element kinds have tag, VR and value
    header = struct.pack("<HH", tag.group, tag.element) + vr.encode("ascii")
    if vr in _LONG_VRS:
        return header + b"\x00\x00" + struct.pack("<I", len(value)) + value
    return header + struct.pack("<H", len(value)) + value
