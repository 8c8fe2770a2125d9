"""A small, specialised scanner for little-endian DICOM element streams.

Multi-frame images carry one Per-Frame Functional Groups Sequence item per
frame (PS3.3 C.7.6.16). Parsing thousands of items into ``pydicom.Dataset``
objects dominates the time needed to open a large SEG, although a reader only
needs a handful of attributes from each item. This module walks the encoded
bytes directly (PS3.5 7.1 data elements, 7.5 nesting of data sets) and keeps
only the attributes named in a :class:`ScanSpec`.

Both explicit and implicit VR little endian are supported (the encapsulated
transfer syntaxes use explicit VR little endian for the data set). Every
length is bounds-checked, and every step consumes at least eight bytes, so
the scanner terminates on any input; malformed input raises
:class:`~monai_dicomseg.errors.DecodeError`.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, Union
from collections.abc import Callable

from pydicom.datadict import tag_for_keyword

from monai_dicomseg.errors import DecodeError

__all__ = [
    "ScanSpec",
    "scan_sequence",
    "locate_top_level_element",
    "read_file_meta",
    "check_structure",
    "MAX_DEPTH",
    "MAX_SKIPPED_ITEMS",
]

_ITEM = 0xFFFEE000
_ITEM_DELIMITER = 0xFFFEE00D
_SEQUENCE_DELIMITER = 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
# VRs whose explicit-VR header has 2 reserved bytes and a 4-byte length (PS3.5 7.1.2)
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_KNOWN_VRS = _LONG_VRS | frozenset({
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"PN", b"SH",
    b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
})
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_TAG_LEN = struct.Struct("<HHI")


def _text(raw: bytes) -> str:
    return raw.decode("ascii", "replace").strip("\x00 ")


MAX_DEPTH = 64
"""Deepest sequence nesting accepted (PS3.5 7.5); real SEG headers nest fewer than 10 levels."""

MAX_SKIPPED_ITEMS = 100_000
"""Most items accepted in one sequence that is walked only to be skipped (not the per-frame groups)."""


def _decode_ds(raw: bytes) -> list[float]:
    """Decimal String values (PS3.5 6.2); non-finite or unparsable values raise ``ValueError``."""
    text = _text(raw)
    if not text:
        return []
    values = [float(v) for v in text.split("\\")]
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"DS values must be finite numbers; got {text!r}")
    return values


def _decode_is(raw: bytes) -> list[int]:
    """Integer String values (PS3.5 6.2: at most 12 characters, -2**31 <= n < 2**31)."""
    text = _text(raw)
    if not text:
        return []
    values = []
    for v in text.split("\\"):
        number = float(v)
        if not math.isfinite(number) or not -(2**31) <= number < 2**31:
            raise ValueError(f"IS value must be an integer in [-2**31, 2**31); got {v.strip()!r}")
        values.append(int(number))
    return values


def _binary(fmt: str) -> Callable[[bytes], list[int | float]]:
    size = struct.calcsize(fmt)

    def decode(raw: bytes) -> list[int | float]:
        n = len(raw) // size
        return list(struct.unpack(f"<{n}{fmt}", raw[: n * size]))

    return decode


_DECODERS: dict[str, Callable[[bytes], Any]] = {
    "UI": _text,
    "CS": _text,
    "LO": _text,
    "SH": _text,
    "DS": _decode_ds,
    "IS": _decode_is,
    "US": _binary("H"),
    "UL": _binary("I"),
    "SL": _binary("i"),
    "SS": _binary("h"),
    "FD": _binary("d"),
    "FL": _binary("f"),
}


SpecValue = Union["ScanSpec", str]


@dataclass(frozen=True)
class ScanSpec:
    """Which attributes to keep from the items of a sequence.

    Parameters
    ----------
    fields
        Maps a keyword to either a nested :class:`ScanSpec` (the attribute is
        a sequence whose items are scanned with it) or to the VR used to
        decode the value (``"UI"``, ``"DS"``, ``"US"``, ...). Multi-valued
        numeric/decimal VRs decode to lists; text VRs to ``str``.
    """

    fields: dict[str, SpecValue]

    def by_tag(self) -> dict[int, tuple[str, SpecValue]]:
        """Return the fields keyed by integer tag (computed once per spec)."""
        cached = _TAG_CACHE.get(id(self))
        if cached is None:
            cached = {}
            for keyword, value in self.fields.items():
                tag = tag_for_keyword(keyword)
                if tag is None:  # pragma: no cover - programming error
                    raise KeyError(f"unknown DICOM keyword {keyword!r}")
                cached[tag] = (keyword, value)
            _TAG_CACHE[id(self)] = cached
        return cached


_TAG_CACHE: dict[int, dict[int, tuple[str, SpecValue]]] = {}
_EMPTY = ScanSpec({})




class _Scanner:
    """Recursive walker over a buffer; one instance per scan."""

    def __init__(self, buf: bytes | memoryview, implicit: bool, what: str) -> None:
        self.buf = buf
        self.size = len(buf)
        self.implicit = implicit
        self.what = what
        self.depth = 0

    def _fail(self, pos: int, reason: str) -> DecodeError:
        return DecodeError(f"{self.what}: {reason} at byte offset {pos}")

    def header(self, pos: int, end: int) -> tuple[int, bytes | None, int, int]:
        """Return (tag, VR or None, value length, value start) of the element at pos."""
        if pos + 8 > end:
            raise self._fail(pos, f"element header needs 8 bytes, only {end - pos} remain")
        group, element, length = _TAG_LEN.unpack_from(self.buf, pos)
        tag = (group << 16) | element
        if group == 0xFFFE or self.implicit:
            return tag, None, length, pos + 8
        vr = bytes(self.buf[pos + 4 : pos + 6])
        if vr not in _KNOWN_VRS:
            raise self._fail(pos, f"({group:04X},{element:04X}) has an unknown Value Representation {vr!r} (PS3.5 6.2)")
        if vr in _LONG_VRS:
            if pos + 12 > end:
                raise self._fail(pos, "truncated long-form element header")
            return tag, vr, _U32.unpack_from(self.buf, pos + 8)[0], pos + 12
        return tag, vr, _U16.unpack_from(self.buf, pos + 6)[0], pos + 8

    def sequence(self, pos: int, end: int | None, spec: ScanSpec) -> tuple[list[dict], int]:
        """Scan the items of a sequence value starting at ``pos``.

        ``end`` is the end of a defined-length value, or ``None`` for an
        undefined length value terminated by a Sequence Delimitation Item.
        Returns the items and the position just after the value.
        """
        items: list[dict] = []
        limit = self.size if end is None else end
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise self._fail(pos, f"sequences are nested more than {MAX_DEPTH} levels deep")
            return self._sequence_items(pos, end, limit, spec, items)
        finally:
            self.depth -= 1

    def _sequence_items(
        self, pos: int, end: int | None, limit: int, spec: ScanSpec, items: list[dict]
    ) -> tuple[list[dict], int]:
        while end is None or pos < end:
            tag, _, length, start = self.header(pos, limit)
            if tag == _SEQUENCE_DELIMITER:
                return items, start
            if tag != _ITEM:
                raise self._fail(pos, f"expected an Item tag (FFFE,E000), got ({tag >> 16:04X},{tag & 0xFFFF:04X})")
            if spec is _EMPTY and len(items) >= MAX_SKIPPED_ITEMS:
                raise self._fail(pos, f"a sequence holds more than {MAX_SKIPPED_ITEMS} items")
            if length == _UNDEFINED:
                item, pos = self.item(start, None, spec)
            else:
                if start + length > limit:
                    raise self._fail(pos, f"item length {length} exceeds the {limit - start} bytes available")
                item, _ = self.item(start, start + length, spec)
                pos = start + length
            items.append(item)
        if end is None:
            raise self._fail(pos, "missing Sequence Delimitation Item")
        return items, pos

    def item(self, pos: int, end: int | None, spec: ScanSpec) -> tuple[dict, int]:
        """Scan one item's data set; returns the kept attributes and the end position."""
        fields = spec.by_tag()
        out: dict[str, Any] = {}
        limit = self.size if end is None else end
        while end is None or pos < end:
            tag, vr, length, start = self.header(pos, limit)
            if tag == _ITEM_DELIMITER:
                return out, start
            wanted = fields.get(tag)
            if length == _UNDEFINED:
                sub = wanted[1] if wanted is not None and isinstance(wanted[1], ScanSpec) else _EMPTY
                items, pos = self.sequence(start, None, sub)
                if sub is not _EMPTY:
                    out[wanted[0]] = items  # type: ignore[index]  # sub is not _EMPTY only when wanted is not None
                continue
            if start + length > limit:
                raise self._fail(pos, f"value length {length} exceeds the {limit - start} bytes available")
            pos = start + length
            if wanted is None:
                continue
            keyword, kind = wanted
            if isinstance(kind, ScanSpec):
                if vr is not None and vr != b"SQ" and vr != b"UN":
                    raise self._fail(start, f"{keyword} must have VR SQ, got {vr.decode('ascii', 'replace')}")
                out[keyword], _ = self.sequence(start, pos, kind)
            else:
                try:
                    out[keyword] = _DECODERS[kind](bytes(self.buf[start:pos]))
                except (ValueError, OverflowError) as exc:
                    raise self._fail(start, f"{keyword} ({kind}) has an invalid value: {exc}") from None
        if end is None:
            raise self._fail(pos, "missing Item Delimitation Item")
        return out, pos


def scan_sequence(
    value: bytes | memoryview,
    spec: ScanSpec,
    *,
    implicit: bool,
    what: str = "sequence",
) -> list[dict[str, Any]]:
    """Scan the encoded value of a sequence element (PS3.5 7.5).

    Parameters
    ----------
    value
        The bytes of the sequence value: the items, without the element header.
        A trailing Sequence Delimitation Item is accepted.
    spec
        Attributes to keep from each item.
    implicit
        ``True`` for implicit VR little endian, ``False`` for explicit VR
        little endian.
    what
        Name used in error messages (e.g. the sequence keyword).

    Returns
    -------
    list[dict]
        One dictionary per item, keyword to decoded value; nested sequences
        become lists of dictionaries.

    Raises
    ------
    DecodeError
        If the encoding is malformed or truncated.
    """
    scanner = _Scanner(value, implicit, what)
    items, _ = scanner.sequence(0, len(value), spec)
    return items


def read_file_meta(buf: bytes | memoryview) -> tuple[int, str] | None:
    """Locate the data set after a DICOM file preamble and meta group (PS3.10 7.1).

    Returns
    -------
    tuple[int, str] | None
        Byte offset of the first data set element and the Transfer Syntax UID,
        or ``None`` when the buffer has no ``DICM`` preamble (the caller should
        fall back to pydicom).
    """
    if len(buf) < 132 or bytes(buf[128:132]) != b"DICM":
        return None
    scanner = _Scanner(buf, False, "File Meta Information")
    pos = 132
    transfer_syntax = ""
    while pos + 8 <= len(buf) and _U16.unpack_from(buf, pos)[0] == 0x0002:
        tag, _, length, start = scanner.header(pos, len(buf))
        if length == _UNDEFINED or start + length > len(buf):
            return None
        if tag == tag_for_keyword("TransferSyntaxUID"):
            transfer_syntax = _text(bytes(buf[start : start + length]))
        pos = start + length
    return pos, transfer_syntax


def locate_top_level_element(
    buf: bytes | memoryview,
    start: int,
    keyword: str,
    *,
    implicit: bool,
) -> tuple[int, int, int, bool] | None:
    """Find a top-level element of a data set without parsing the others.

    Elements with a tag below the target are skipped (sequences of undefined
    length are walked to their delimiter); the walk stops at the first tag
    at or above the target (data set elements are in ascending tag order).

    Returns
    -------
    tuple[int, int, int, bool] | None
        ``(element_start, value_start, value_end, undefined_length)`` where
        ``value_end`` excludes a Sequence Delimitation Item; ``None`` when the
        element is absent.
    """
    target = tag_for_keyword(keyword)
    scanner = _Scanner(buf, implicit, f"top-level data set (before {keyword})")
    size = len(buf)
    pos = start
    while pos + 8 <= size:
        tag, vr, length, value_start = scanner.header(pos, size)
        if tag > target:  # type: ignore[operator]  # target: tag_for_keyword of a keyword our callers pass as a literal, never None
            return None
        if length == _UNDEFINED:
            if tag == target:
                _, after = scanner.sequence(value_start, None, _EMPTY)
                return pos, value_start, after - 8, True
            _, pos = scanner.sequence(value_start, None, _EMPTY)
            continue
        if value_start + length > size:
            raise scanner._fail(pos, f"value length {length} exceeds the {size - value_start} bytes available")
        if tag == target:
            return pos, value_start, value_start + length, False
        pos = value_start + length
    return None


def check_structure(buf: bytes | memoryview, what: str = "file") -> None:
    """Reject a buffer that cannot be a DICOM data set, cheaply, before pydicom parses it.

    * With the ``DICM`` prefix at byte 128 (PS3.10 7.1), the File Meta
      Information must parse and the first data set element must belong to a
      group above 0002 (a run of zero bytes does not).
    * Without it, the buffer must begin like a data set: the first element in
      group 0002 or 0008 (pydicom reads such raw data sets).
    * Top-level sequences up to the Per-Frame Functional Groups Sequence are
      walked with the bounded scanner: nesting deeper than :data:`MAX_DEPTH`
      or more than :data:`MAX_SKIPPED_ITEMS` items in a sequence is refused.

    Raises
    ------
    DecodeError
        Naming what was found instead.
    """
    size = len(buf)
    if size < 8:
        raise DecodeError(f"{what} is not a DICOM file: only {size} bytes")
    meta = read_file_meta(buf)
    if meta is None:
        if size >= 132 and bytes(buf[128:132]) == b"DICM":
            raise DecodeError(f"{what}: the File Meta Information (group 0002) is malformed (PS3.10 7.1)")
        group, element = struct.unpack_from("<HH", buf, 0)
        if group not in (0x0002, 0x0008):
            raise DecodeError(
                f"{what} is not a DICOM file: no 'DICM' prefix at byte 128 (PS3.10 7.1) and the data does "
                f"not begin with a group 0002 or 0008 element (found ({group:04X},{element:04X}))"
            )
        return
    start, syntax = meta
    if start + 8 > size:
        return  # an empty data set: pydicom reports it quickly
    group, element = struct.unpack_from("<HH", buf, start)
    if group <= 0x0002 or group == 0xFFFE:
        raise DecodeError(
            f"{what}: the data set after the File Meta Information begins with ({group:04X},{element:04X}); "
            "expected an element of group 0004 or above (PS3.5 7.1)"
        )
    from monai_dicomseg.codec.transfer_syntax import lookup

    row = lookup(syntax)
    if row is None or not row.little_endian or row.deflated:
        return  # unknown / big endian: reported later with the transfer syntax; deflated: checked once inflated
    implicit = row.implicit_vr
    locate_top_level_element(buf, start, "PerFrameFunctionalGroupsSequence", implicit=implicit)
