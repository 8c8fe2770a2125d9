"""Bulk parser of the Per-Frame Functional Groups Sequence: all frames at once.

A SEG writer emits one Per-Frame Functional Groups item per frame (PS3.3
C.7.6.16), and in practice every item has the same layout: the same elements
in the same order, with the same VRs and nesting, only the values (and the
lengths of variable-length text values such as DS and UI) differ. This module
walks all items *in lock step*: one position per item, held in a numpy array,
advanced element by element along the layout of the first item. Every step
checks, for all items at once, that the tag, VR and length form agree and that
the element lies within its item (PS3.5 7.1, 7.5); the values of the wanted
attributes are then read for all frames with vectorised gathers, and text
values are decoded once per distinct value (positions and source UIDs repeat
across segments).

It follows the decisions of :mod:`monai_dicomseg.codec.element_scan` exactly
and gives up (returns ``None``, counted in :data:`STATS`) whenever the items do
not share one layout or anything is unusual (items of different structure,
sequences with different item counts, mixed defined/undefined lengths, values
that fail to decode, limits exceeded). The caller then runs the general scanner,
which produces the same result or the precise :class:`~monai_dicomseg.errors.DecodeError`.
Work is bounded: items are confined to disjoint byte ranges, every step consumes
at least eight bytes of each item, and the layout may have at most
:data:`MAX_LAYOUT_ELEMENTS` elements.

:func:`bulk_frame_index` builds the :class:`~monai_dicomseg.codec.frame_index.FrameIndex`
from these columns; :func:`~monai_dicomseg.codec.frame_index.build_frame_index`
tries it first.
"""
from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from monai_dicomseg.codec.element_scan import _DECODERS, _KNOWN_VRS, _LONG_VRS, ScanSpec

__all__ = [
    "UniformItems",
    "scan_uniform_items",
    "bulk_frame_index",
    "STATS",
    "ENABLED",
    "MAX_LAYOUT_ELEMENTS",
    "MAX_TEXT_BYTES",
]

_ITEM = 0xFFFEE000
_ITEM_DELIMITER = 0xFFFEE00D
_SEQUENCE_DELIMITER = 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_TAG_LEN = struct.Struct("<HHI")
_TEXT_KINDS = frozenset({"UI", "CS", "LO", "SH", "DS", "IS"})
_BINARY_DTYPES = {"US": "<u2", "UL": "<u4", "SL": "<i4", "SS": "<i2", "FD": "<f8", "FL": "<f4"}
_EMPTY = ScanSpec({})
# item delimiter (length 0) + next item of undefined length: where one undefined-length item ends and the next begins
_ITEM_BOUNDARY = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00\xfe\xff\x00\xe0\xff\xff\xff\xff"

MAX_LAYOUT_ELEMENTS = 4096
"""Most element headers (all nesting levels) in one item's layout; larger layouts use the general scanner."""

MAX_DEPTH = 16
"""Deepest sequence nesting handled here (the general scanner accepts up to 64)."""

MAX_TEXT_BYTES = 1024
"""Longest text value gathered in bulk; longer values use the general scanner."""

ENABLED = True
"""Module switch: ``False`` makes :func:`bulk_frame_index` always decline (benchmarks, tests)."""

STATS: dict[str, int] = {"bulk": 0, "fallback": 0}
"""How often :func:`bulk_frame_index` built an index (``"bulk"``) or declined (``"fallback"``)."""

LAST_FALLBACK: list[str] = [""]
"""Why the last fallback happened (for tests and diagnostics)."""


class _Irregular(Exception):
    """The items do not share one layout (or something is unusual): use the general scanner."""


Column = tuple[np.ndarray, np.ndarray, str]


Values = np.ndarray | tuple[list, np.ndarray]
"""A column for all frames: ``(F, m)`` numbers (binary VRs), or ``(distinct decoded values, (F,) index)``."""


@dataclass
class UniformItems:
    """The wanted values of ``count`` items that share one layout.

    Attributes
    ----------
    count
        Number of items ``F``.
    buffer
        The sequence value.
    columns
        Path of a wanted attribute (keywords and item numbers, e.g.
        ``("DerivationImageSequence", 0, "SourceImageSequence", 0,
        "ReferencedSOPInstanceUID")``) to ``(value starts (F,) int64, value
        lengths (F,) int64, kind)`` where ``kind`` is the :class:`ScanSpec` VR.
    counts
        Path of a wanted sequence to its number of items (the same in every item).
    """

    count: int
    buffer: bytes
    columns: dict[tuple, Column] = field(default_factory=dict)
    counts: dict[tuple, int] = field(default_factory=dict)
    _values: dict[tuple, Values] = field(default_factory=dict, repr=False)
    _padded: bytes | None = field(default=None, repr=False)

    def values(self, path: tuple) -> Values | None:
        """The values of a column for all frames; ``None`` if the items lack it.

        Binary VRs (US, UL, SL, SS, FD, FL) give an ``(F, m)`` array (``m``
        values per frame, the same for all); text VRs give ``(distinct values,
        (F,) index)`` with each distinct value decoded once, exactly as
        :func:`~monai_dicomseg.codec.element_scan.scan_sequence` decodes it
        (a list of numbers for DS/IS, ``str`` otherwise).

        Raises
        ------
        _Irregular
            If binary values differ in length, a text value does not decode or
            is longer than :data:`MAX_TEXT_BYTES`.
        """
        if path not in self.columns:
            return None
        cached = self._values.get(path)
        if cached is None:
            starts, lengths, kind = self.columns[path]
            cached = self._rows(starts, lengths, kind) if kind in _BINARY_DTYPES \
                else self._text_table(starts, lengths, kind)
            self._values[path] = cached
        return cached

    def _rows(self, starts: np.ndarray, lengths: np.ndarray, kind: str) -> np.ndarray:
        if not np.all(lengths == lengths[0]):
            raise _Irregular(f"{kind} values of different lengths")
        dtype = np.dtype(_BINARY_DTYPES[kind])
        count = int(lengths[0]) // dtype.itemsize
        # one unaligned view per value offset: row n is the ``count`` values at starts[n]
        width = count * dtype.itemsize
        if width == 0:
            return np.zeros((len(starts), 0), dtype)
        windows = np.ndarray((len(self.buffer) - width + 1, width), np.uint8, self.buffer, 0, (1, 1))
        return windows[starts].view(dtype).reshape(len(starts), count)

    def _text_table(self, starts: np.ndarray, lengths: np.ndarray, kind: str) -> tuple[list, np.ndarray]:
        width = int(lengths.max()) if lengths.size else 0
        if width > MAX_TEXT_BYTES:
            raise _Irregular(f"a {kind} value is longer than {MAX_TEXT_BYTES} bytes")
        if width * len(starts) > 2 * len(self.buffer) + (1 << 20):  # one long value among many short ones
            raise _Irregular(f"{kind} values too unequal in length to gather in bulk")
        if width == 0:
            return [_DECODERS[kind](b"")], np.zeros(len(starts), np.int64)
        if self._padded is None:  # one copy with room for the longest value read at the very end
            self._padded = self.buffer + bytes(MAX_TEXT_BYTES)
        windows = np.ndarray((len(self.buffer) + 1, width), np.uint8, self._padded, 0, (1, 1))
        raw = windows[starts]  # (F, width): the value, then the bytes after it
        raw[np.arange(width) >= lengths[:, None]] = 0
        # trailing NULs are dropped by the S dtype; every text decoder strips them anyway
        distinct, inverse = np.unique(raw.view(f"S{width}").reshape(-1), return_inverse=True)
        try:
            values = [_DECODERS[kind](bytes(value)) for value in distinct]
        except (ValueError, OverflowError) as exc:
            raise _Irregular(f"a {kind} value does not decode: {exc}") from None
        return values, inverse.reshape(-1)


class _LockStep:
    """Walks all items at once along the first item's layout (mirrors element_scan._Scanner)."""

    def __init__(self, buffer: bytes, implicit: bool, items: UniformItems) -> None:
        # the 16/32-bit little-endian word starting at every byte offset (unaligned views, no copy)
        padded = buffer + bytes(8)
        self.u16 = np.ndarray((len(buffer),), "<u2", padded, 0, (1,))
        self.u32 = np.ndarray((len(buffer),), "<u4", padded, 0, (1,))
        self.implicit = implicit
        self.out = items
        self.steps = 0
        self.depth = 0

    def header(self, pos: np.ndarray, limit: np.ndarray) -> tuple[int, bytes | None, np.ndarray, np.ndarray]:
        """(tag, VR, lengths, value starts) of the elements at ``pos``; the same tag and VR in every item."""
        self.steps += 1
        if self.steps > MAX_LAYOUT_ELEMENTS:
            raise _Irregular(f"more than {MAX_LAYOUT_ELEMENTS} elements per item")
        if np.any(pos + 8 > limit):
            raise _Irregular("an element header crosses the end of its item")
        tags = self.u32[pos]  # group | element << 16
        first = int(tags[0])
        if not np.all(tags == first):
            raise _Irregular("items hold different elements at the same place")
        group, element = first & 0xFFFF, first >> 16
        tag = (group << 16) | element
        if group == 0xFFFE or self.implicit:
            return tag, None, self.u32[pos + 4].astype(np.int64), pos + 8
        vrs = self.u16[pos + 4]
        if not np.all(vrs == vrs[0]):
            raise _Irregular(f"({group:04X},{element:04X}) has different VRs")
        vr = int(vrs[0]).to_bytes(2, "little")
        if vr not in _KNOWN_VRS:
            raise _Irregular(f"({group:04X},{element:04X}) has an unknown VR")
        if vr in _LONG_VRS:
            if np.any(pos + 12 > limit):
                raise _Irregular("a long element header crosses the end of its item")
            return tag, vr, self.u32[pos + 8].astype(np.int64), pos + 12
        return tag, vr, self.u16[pos + 6].astype(np.int64), pos + 8

    @staticmethod
    def undefined(lengths: np.ndarray) -> bool:
        flags = lengths == _UNDEFINED
        first = bool(flags[0])
        if np.any(flags != first):
            raise _Irregular("defined and undefined lengths mixed")
        return first

    @staticmethod
    def finished(pos: np.ndarray, end: np.ndarray | None) -> bool:
        if end is None:
            return False
        done = pos >= end
        if done.all():
            return True
        if done.any():
            raise _Irregular("items end after different numbers of elements")
        return False

    def item(self, pos: np.ndarray, end: np.ndarray | None, limit: np.ndarray, spec: ScanSpec,
             path: tuple | None) -> np.ndarray:
        """Walk one data set per item (element_scan._Scanner.item); returns the positions after it."""
        fields = spec.by_tag()
        limit = limit if end is None else end
        seen: set[int] = set()
        while not self.finished(pos, end):
            tag, vr, lengths, start = self.header(pos, limit)
            if tag == _ITEM_DELIMITER:
                return start
            wanted = fields.get(tag)
            if wanted is not None:
                if tag in seen:
                    raise _Irregular(f"{wanted[0]} occurs twice in an item")
                seen.add(tag)
            if self.undefined(lengths):
                nested = wanted is not None and isinstance(wanted[1], ScanSpec) and path is not None
                pos = self.sequence(start, None, limit, wanted[1] if nested else _EMPTY,  # type: ignore[index,arg-type]  # nested implies wanted is not None and wanted[1] a ScanSpec
                                    path + (wanted[0],) if nested else None)  # type: ignore[index,operator]  # nested implies wanted and path are not None
                continue
            after = start + lengths
            if np.any(after > limit):
                raise _Irregular("a value crosses the end of its item")
            if wanted is not None and path is not None:
                self.keep(wanted, vr, start, after, lengths, limit, path)
            pos = after
        return pos

    def keep(self, wanted: tuple[str, Any], vr: bytes | None, start: np.ndarray, after: np.ndarray,
             lengths: np.ndarray, limit: np.ndarray, path: tuple) -> None:
        keyword, kind = wanted
        if isinstance(kind, ScanSpec):
            if vr is not None and vr not in (b"SQ", b"UN"):
                raise _Irregular(f"{keyword} is not a sequence")
            self.sequence(start, after, limit, kind, path + (keyword,))
        else:
            self.out.columns[path + (keyword,)] = (start, lengths, kind)

    def sequence(self, pos: np.ndarray, end: np.ndarray | None, limit: np.ndarray, spec: ScanSpec,
                 path: tuple | None) -> np.ndarray:
        """Walk a sequence value per item (element_scan._Scanner.sequence); the same item count in all."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Irregular(f"sequences nested more than {MAX_DEPTH} deep")
        limit = limit if end is None else end
        number = 0
        while not self.finished(pos, end):
            tag, _, lengths, start = self.header(pos, limit)
            if tag == _SEQUENCE_DELIMITER:
                pos = start
                break
            if tag != _ITEM:
                raise _Irregular("a sequence holds something other than items")
            sub_path = None if path is None else path + (number,)
            if self.undefined(lengths):
                pos = self.item(start, None, limit, spec, sub_path)
            else:
                after = start + lengths
                if np.any(after > limit):
                    raise _Irregular("an item crosses the end of its sequence")
                self.item(start, after, limit, spec, sub_path)
                pos = after
            number += 1
        self.depth -= 1
        if path is not None:
            self.out.counts[path] = number
        return pos


def _defined_items(buf: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """Value (start, end) of each defined-length item (element_scan: items until the end or a delimiter).

    ``None`` when the first item has an undefined length.
    """
    size = len(buf)
    unpack = _TAG_LEN.unpack_from
    starts: list[int] = []
    pos = 0
    while pos < size:
        if pos + 8 > size:
            raise _Irregular("truncated item header")
        group, element, length = unpack(buf, pos)
        if group != 0xFFFE or element != 0xE000:
            if group == 0xFFFE and element == 0xE0DD:  # Sequence Delimitation Item: the general scanner stops
                break
            raise _Irregular("the sequence holds something other than items")
        if length == _UNDEFINED:
            if starts:
                raise _Irregular("defined and undefined item lengths mixed")
            return None
        pos += 8 + length
        starts.append(pos - length)
    if pos > size:
        raise _Irregular("an item crosses the end of the sequence")
    begin = np.asarray(starts, np.int64)
    ends = np.append(begin[1:] - 8, pos) if starts else begin
    return begin, ends


def _undefined_item_starts(buf: bytes) -> np.ndarray:
    """Candidate value starts of undefined-length items: the first, then after each item boundary.

    A boundary is an Item Delimitation Item followed by an undefined-length Item
    whose first element has the tag of the first item's first element. Candidates
    are only proposals: the lock-step walk must end every item exactly where the
    next one begins, or the scan is abandoned.
    """
    if len(buf) < 12:
        raise _Irregular("truncated first item")
    pattern = _ITEM_BOUNDARY + buf[8:12]
    starts = [8]
    found = buf.find(pattern, 8)
    while found >= 0:
        starts.append(found + 16)
        found = buf.find(pattern, found + 16)
    return np.asarray(starts, np.int64)


def _walk_all(buf: bytes, spec: ScanSpec, implicit: bool) -> UniformItems:
    defined = _defined_items(buf)
    if defined is not None:
        starts, ends = defined
        items = UniformItems(len(starts), buf)
        if len(starts):
            _LockStep(buf, implicit, items).item(starts, ends, ends, spec, ())
        return items
    starts = _undefined_item_starts(buf)
    limits = np.append(starts[1:] - 8, len(buf))  # each item confined to the bytes before the next
    items = UniformItems(len(starts), buf)
    after = _LockStep(buf, implicit, items).item(starts, None, limits, spec, ())
    if not np.array_equal(after[:-1], limits[:-1]):
        raise _Irregular("an undefined-length item does not end where the next begins")
    last = int(after[-1])
    if last != len(buf) and (last + 8 > len(buf) or _TAG_LEN.unpack_from(buf, last)[:2] != (0xFFFE, 0xE0DD)):
        raise _Irregular("something other than a Sequence Delimitation Item follows the last item")
    return items


def scan_uniform_items(value: bytes | bytearray | memoryview, spec: ScanSpec, *,
                       implicit: bool) -> UniformItems | None:
    """Read the ``spec`` attributes of every item of a sequence value at once, if the items share one layout.

    Parameters
    ----------
    value
        The encoded sequence value (items, no element header), little endian.
    spec
        Attributes to keep (as for :func:`~monai_dicomseg.codec.element_scan.scan_sequence`).
    implicit
        Implicit (``True``) or explicit VR little endian.

    Returns
    -------
    UniformItems | None
        ``None`` when the items do not share one layout or anything is unusual;
        :data:`LAST_FALLBACK` says why. Never raises on malformed input.
    """
    buf = value if isinstance(value, bytes) else bytes(value)
    try:
        return _walk_all(buf, spec, implicit)
    except _Irregular as exc:
        LAST_FALLBACK[0] = str(exc)
        return None


# ---------------------------------------------------------------------------
# FrameIndex from the columns (the same rules as frame_index._build_frame_index)


def bulk_frame_index(dataset: Dataset, shared: dict[str, Any], *, number_of_frames: int,
                     is_labelmap: bool) -> Any:
    """The :class:`~monai_dicomseg.codec.frame_index.FrameIndex` of a SEG from uniform per-frame items.

    Called by :func:`~monai_dicomseg.codec.frame_index.build_frame_index` after the
    Shared Functional Groups are read. Returns ``None`` (and counts a fallback in
    :data:`STATS`) unless PerFrameFunctionalGroupsSequence is a little-endian raw
    element whose items share one layout and whose values satisfy every rule of the
    general path; the general path then runs and gives the same result or its error.
    Errors raised here (DimensionIndexSequence, SegmentSequence) are those the
    general path raises at the same point.
    """
    from monai_dicomseg.codec import frame_index as general

    if not ENABLED or "PerFrameFunctionalGroupsSequence" not in dataset:
        return None
    element = dataset.get_item("PerFrameFunctionalGroupsSequence")
    if not (isinstance(element, RawDataElement) and element.is_little_endian
            and isinstance(element.value, (bytes, bytearray, memoryview))):
        return None
    items = scan_uniform_items(element.value, general.FUNCTIONAL_GROUPS_SPEC, implicit=bool(element.is_implicit_VR))
    try:
        if items is None:
            raise _Irregular(LAST_FALLBACK[0])
        if items.count == 0 or items.count != number_of_frames:
            raise _Irregular(f"{items.count} items for NumberOfFrames {number_of_frames}")
        for path, (_, _, kind) in items.columns.items():
            if kind in ("DS", "IS"):  # the general scanner decodes (and rejects) every wanted value first
                items.values(path)
        index = _index_from_columns(dataset, items, shared, is_labelmap, general)
    except _Irregular as exc:
        LAST_FALLBACK[0] = str(exc)
        STATS["fallback"] += 1
        return None
    STATS["bulk"] += 1
    return index


def _field(items: UniformItems, shared: dict[str, Any], sequence: str, keyword: str) -> Values | None:
    """``sequence[0].keyword`` of every frame: from the per-frame item, else the shared one (frame_index._lookup)."""
    if items.counts.get((sequence,), 0) >= 1 and (sequence, 0, keyword) in items.columns:
        return items.values((sequence, 0, keyword))
    group = shared.get(sequence)
    if group and keyword in group[0]:
        return [group[0][keyword]], np.zeros(items.count, np.int64)
    return None


def _firsts(values: Values, dtype: Any) -> np.ndarray | None:
    """``(F,)`` first value of each frame; ``None`` when a frame has none."""
    if isinstance(values, np.ndarray):
        return values[:, 0].astype(dtype) if values.shape[1] else None
    table, inverse = values
    if not all(table):
        return None
    return np.asarray([v[0] for v in table], dtype)[inverse]


def _rows(values: Values, width: int, dtype: Any) -> np.ndarray | None:
    """``(F, width)`` values; ``None`` unless every frame has ``width`` values."""
    if isinstance(values, np.ndarray):
        return values.astype(dtype) if values.shape[1] == width else None
    table, inverse = values
    if any(len(v) != width for v in table):
        return None
    return np.asarray(table, dtype).reshape(-1, width)[inverse]


def _index_from_columns(dataset: Dataset, items: UniformItems, shared: dict[str, Any], is_labelmap: bool,
                        general: Any) -> Any:
    count = items.count
    pointers = general._dimension_pointers(dataset)
    defined = general._defined_segment_numbers(dataset)
    segments = np.zeros(count, np.int64)
    if not is_labelmap:
        values = _field(items, shared, "SegmentIdentificationSequence", "ReferencedSegmentNumber")
        segments = None if values is None else _firsts(values, np.int64)  # type: ignore[assignment]  # None is refused on the next line
        if segments is None:
            raise _Irregular("a frame lacks its ReferencedSegmentNumber")
        if defined and np.setdiff1d(np.unique(segments), np.asarray(sorted(defined))).size:
            raise _Irregular("a frame refers to an undefined segment")
    dim_values = np.zeros((count, len(pointers)), np.int64)
    if pointers:
        values = _field(items, shared, "FrameContentSequence", "DimensionIndexValues")
        dim_values = None if values is None else _rows(values, len(pointers), np.int64)  # type: ignore[assignment]  # None is refused on the next line
        if dim_values is None:
            raise _Irregular("DimensionIndexValues do not match DimensionIndexSequence")
    positions, tiles = _positions(items, shared)
    index = general.FrameIndex(
        number_of_frames=count,
        segment_numbers=segments,
        dimension_index_pointers=pointers,
        dimension_index_values=dim_values,
        image_positions=positions,
        tile_positions=tiles,
        image_orientation=general._sized(_shared_value(items, shared, "PlaneOrientationSequence",
                                                       "ImageOrientationPatient"), 6),
        pixel_spacing=general._sized(_shared_value(items, shared, "PixelMeasuresSequence", "PixelSpacing"), 2),
        spacing_between_slices=general._scalar(_shared_value(items, shared, "PixelMeasuresSequence",
                                                             "SpacingBetweenSlices")),
        is_tiled_full=dataset.get("DimensionOrganizationType") == "TILED_FULL",
    )
    _references(index, items)
    return index


def _shared_value(items: UniformItems, shared: dict[str, Any], sequence: str, keyword: str) -> np.ndarray | None:
    """frame_index._shared_value: one value common to all frames, else ``None``."""
    values = _field(items, shared, sequence, keyword)
    if values is None:
        return None
    if isinstance(values, np.ndarray):
        table = values.astype(np.float64)
        first = table[0]
    else:
        if len({len(v) for v in values[0]}) != 1:
            return None
        table = np.asarray(values[0], dtype=np.float64)
        first = table[values[1][0]]
    return first if np.all(table == first) else None


_SLIDE = "PlanePositionSlideSequence"
_SLIDE_KEYS = ("XOffsetInSlideCoordinateSystem", "YOffsetInSlideCoordinateSystem", "ZOffsetInSlideCoordinateSystem",
               "ColumnPositionInTotalImagePixelMatrix", "RowPositionInTotalImagePixelMatrix")


def _slide_field(items: UniformItems, shared: dict[str, Any], keyword: str) -> Values | None:
    """A key of ``PlanePositionSlideSequence[0]`` taken as a whole from the frame's item, else from the shared one.

    frame_index uses the per-frame slide item when it has any wanted attribute
    (a non-empty dictionary), else the shared one.
    """
    per_frame = items.counts.get((_SLIDE,), 0) >= 1 and any((_SLIDE, 0, k) in items.columns for k in _SLIDE_KEYS)
    if per_frame:
        return items.values((_SLIDE, 0, keyword))
    group = shared.get(_SLIDE)
    if group and group[0] and keyword in group[0]:
        return [group[0][keyword]], np.zeros(items.count, np.int64)
    return None


def _first_or_zero(values: Values) -> np.ndarray:
    """``(F,)`` float first value of each frame, 0.0 where a frame has none (frame_index._positions_array)."""
    if isinstance(values, np.ndarray):
        return values[:, 0].astype(np.float64) if values.shape[1] else np.zeros(len(values))
    table, inverse = values
    return np.asarray([float(v[0]) if v else 0.0 for v in table], np.float64)[inverse]


def _positions(items: UniformItems, shared: dict[str, Any]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """frame_index._positions_array and _tiles_array: ImagePositionPatient, else slide offsets; tile positions."""
    patient = _field(items, shared, "PlanePositionSequence", "ImagePositionPatient")
    slide = {k: _slide_field(items, shared, k) for k in _SLIDE_KEYS}
    positions = None if patient is None else _rows(patient, 3, np.float64)
    if positions is None and slide[_SLIDE_KEYS[0]] is not None and slide[_SLIDE_KEYS[1]] is not None:
        positions = np.zeros((items.count, 3), np.float64)
        for axis, key in enumerate(_SLIDE_KEYS[:3]):
            if slide[key] is not None:
                positions[:, axis] = _first_or_zero(slide[key])  # type: ignore[arg-type]  # slide[key] is not None (checked on the line above; mypy does not narrow a dict item)
    row, column = slide[_SLIDE_KEYS[4]], slide[_SLIDE_KEYS[3]]
    rows = None if row is None else _firsts(row, np.int64)
    columns = None if column is None else _firsts(column, np.int64)
    tiles = None if rows is None or columns is None else np.stack([rows, columns], axis=1)
    return positions, tiles


def _references(index: Any, items: UniformItems) -> None:
    """frame_index._add_references: one row per (frame, derivation item, source item, frame number)."""
    derivation = "DerivationImageSequence"
    pairs = [(derivation, d, "SourceImageSequence", s) for d in range(items.counts.get((derivation,), 0))
             for s in range(items.counts.get((derivation, d, "SourceImageSequence"), 0))]
    if not pairs:
        return
    uids, numbers, preserved = [], [], []
    zeros = np.zeros(items.count, np.int64)
    for prefix in pairs:
        uid = items.values(prefix + ("ReferencedSOPInstanceUID",))
        if uid is None or not all(uid[0]):
            raise _Irregular("a SourceImageSequence item lacks ReferencedSOPInstanceUID")
        uids.append(_objects(uid[0])[uid[1]])
        numbers.append(items.values(prefix + ("ReferencedFrameNumber",)) or ([[0]], zeros))
        slp = items.values(prefix + ("SpatialLocationsPreserved",)) or ([None], zeros)
        preserved.append(_objects([v or None for v in slp[0]])[slp[1]])
    # frame-major, then derivation/source item order, then frame numbers (as the general path appends them)
    frames = np.repeat(np.arange(items.count, dtype=np.int64), len(pairs))
    uid_rows = np.stack(uids, axis=1).reshape(-1)
    preserved_rows = np.stack(preserved, axis=1).reshape(-1)
    if all(len(v) <= 1 for table, _ in numbers for v in table):  # one frame number (or none: 0) per source item
        index.ref_frame = frames
        index.ref_sop_instance_uid = uid_rows
        index.ref_frame_number = np.stack([np.asarray([v[0] if v else 0 for v in table], np.int64)[inverse]
                                           for table, inverse in numbers], axis=1).reshape(-1)
        index.ref_spatial_locations_preserved = preserved_rows
        return
    entries = [table[i] or [0] for row in zip(*(inverse.tolist() for _, inverse in numbers))
               for (table, _), i in zip(numbers, row)]
    counts = np.fromiter((len(n) for n in entries), np.int64, len(entries))
    index.ref_frame = np.repeat(frames, counts)
    index.ref_sop_instance_uid = np.repeat(uid_rows, counts)
    index.ref_frame_number = np.fromiter(itertools.chain.from_iterable(entries), np.int64, int(counts.sum()))
    index.ref_spatial_locations_preserved = np.repeat(preserved_rows, counts)


def _objects(values: list) -> np.ndarray:
    """``(len(values),) object`` array holding the values themselves (never split into dimensions)."""
    out = np.empty(len(values), object)
    out[:] = values
    return out
