"""Segment tables, segment selection and ``label_map`` harmonisation.

A SEG numbers its segments 1, 2, 3, ... (PS3.3 C.8.20.2 Segment Sequence);
different SEGs of one dataset may number the same structure differently. The
functions here turn a user's request (segment numbers, labels, coded
property types, or a ``label_map`` such as ``{"liver": 1, "spleen": 2}``)
into an explicit *plan*: which SEG segments feed which output value/channel.
Nothing here touches pixels, torch or MONAI.

How a ``label_map`` key names segments (:func:`segment_matches`, the one place)
-----------------------------------------------------------------------------
* ``int``: the Segment Number (0062,0004), exactly.
* ``str``, case-insensitive, any of:

  - the Segment Label (0062,0005), or the code meaning / code value of the
    Segmented Property Type (0062,000F) (any coding scheme);
  - the same name after :func:`~monai_dicomseg.anatomy.normalize_name`
    (separators, case and the place of a ``left``/``right`` word ignored:
    ``"kidney_left"`` is ``"Left Kidney"``);
  - a name or synonym of the shipped anatomy table
    (:mod:`monai_dicomseg.anatomy`, e.g. ``"gall bladder"``, ``"ivc"``): it
    names the segments whose property type has that name's code; a
    ``left``/``right`` word requires the Segmented Property Type Modifier
    (0062,0011) Left (SCT 7771000) / Right (SCT 24028007), so ``"left kidney"``
    names a segment typed Kidney + Left whatever its label (``"Kidney L"``) and
    never a right kidney; a name without laterality (``"kidney"``) names
    kidneys of either side;
  - a segment without a specific type (none, or the generic SCT 91723000
    "Anatomical structure") whose label is a known anatomy name also matches
    that name's synonyms (label ``"IVC"`` and key ``"inferior vena cava"``).

* a coded concept (``CodedConcept``, pydicom ``Code`` or ``(value, scheme)``
  tuple): the Segmented Property Type's code value and scheme, any modifier.
* a :class:`StructureKey` (a dataset vocabulary's key): its own code +
  modifier, or label, identity.

Accounting (:func:`plan_segment_selection`): a key that names no segment of
a SEG is a :class:`LabelMapKeyWarning` naming the key, the file and the
closest labels/codes of that SEG; a SEG that no key names is an
:class:`~monai_dicomseg.errors.InputError` (it would be an all-background
label); a segment named by two keys with different values is an
InputError. A :class:`CheckedLabelMap` (keys already checked over a whole
dataset, :func:`monai_dicomseg.data.vocabulary.check_label_map`) is not warned
about per file: a structure absent from one case is expected there.
"""
from __future__ import annotations

import difflib
import functools
import json
import os
import threading
from collections import OrderedDict
from numbers import Integral
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monai_dicomseg.errors import InputError, InputTypeError

__all__ = [
    "SegmentSelection", "SegmentSelectionPlan", "SELECTION_OPTIONS", "segment_table", "plan_segment_selection",
    "code_key", "segments_from_meta", "segment_matches", "header_segment_table", "StructureKey",
    "CheckedLabelMap", "LabelMapKeyWarning", "GENERIC_TYPE", "describe_key", "suggest_names",
    "segment_sequence_key", "cached_segment_table", "segment_table_cache_info", "clear_segment_table_cache",
    "SEGMENT_TABLE_CACHE_SIZE",
]

GENERIC_TYPE = ("91723000", "SCT")
"""SCT 91723000 "Anatomical structure": the type :mod:`monai_dicomseg.anatomy` gives unknown names
(``anatomy.json`` ``generic``); a segment of this type is identified by its label, not its code."""


class LabelMapKeyWarning(UserWarning):
    """A ``label_map`` key names no segment of one SEG (that structure is background in this label)."""

SELECTION_OPTIONS = ("segment_numbers", "segment_labels", "segmented_property_types", "label_map")
"""Keyword options that every loader (``load_seg_array``, ``LoadDicomSeg(d)``,
``DicomSegReader``, ``load_transforms``, ``DicomSegDataset``) turns into one
:class:`SegmentSelection`."""


def _code_dict(code: Any) -> "dict[str, str] | None":
    if code is None:
        return None
    return {
        "value": str(code.value),
        "scheme_designator": str(code.scheme_designator),
        "meaning": str(code.meaning),
    }


def _modifier(description: Any) -> "dict[str, str] | None":
    """First Segmented Property Type Modifier (laterality), nested in the type item (PS3.3 C.8.20.2).

    Some producers put the sequence on the segment item itself; it is read there too.
    """
    from monai_dicomseg.sr.coding import CodedConcept

    for holder in (*list(description.get("SegmentedPropertyTypeCodeSequence") or [])[:1], description):
        items = holder.get("SegmentedPropertyTypeModifierCodeSequence")
        if items:
            item = items[0]
            if not isinstance(item, CodedConcept):
                item = CodedConcept.from_dataset(item, copy=False)
            return _code_dict(item)
    return None


def segment_table(seg: Any) -> list[dict[str, Any]]:
    """One plain ``dict`` per segment of ``seg`` (picklable, JSON-friendly).

    Keys: ``number`` (int), ``label`` (str), ``category`` and ``type``
    (``{"value", "scheme_designator", "meaning"}``), ``modifier`` (the first
    Segmented Property Type Modifier, e.g. laterality SCT 7771000 Left, same
    form, or None), ``color`` (``[r, g, b]`` ints or None, from
    RecommendedDisplayCIELabValue), ``tracking_id`` (str or None).
    """
    table = []
    for number in seg.segment_numbers:
        description = seg.get_segment_description(int(number))
        color = description.display_color
        table.append({
            "number": int(number),
            "label": str(description.segment_label),
            "category": _code_dict(description.segmented_property_category),
            "type": _code_dict(description.segmented_property_type),
            "modifier": _modifier(description),
            "color": None if color is None else [int(v) for v in color.rgb],
            "tracking_id": description.tracking_id,
        })
    return table


SEGMENT_TABLE_CACHE_SIZE = 128
"""Segment tables kept by :func:`cached_segment_table` (least recently used dropped first)."""

_SEGMENT_SEQUENCE_TAG = 0x00620002
_CACHE_LOCK = threading.Lock()
_CACHE: "OrderedDict[tuple[Any, ...], str]" = OrderedDict()
_CACHE_COUNTS = {"hits": 0, "misses": 0}


def _new_lock_in_child() -> None:
    """A forked child (a DataLoader worker) gets a fresh lock: the parent's may have been held mid-fork."""
    global _CACHE_LOCK
    _CACHE_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):  # pragma: no branch  # POSIX
    os.register_at_fork(after_in_child=_new_lock_in_child)


def segment_sequence_key(dataset: Any) -> "tuple[Any, ...] | None":
    """The exact key of a just-read SEG's segment table, or None when there is none.

    The key is the stored bytes of SegmentSequence (0062,0002) as read from
    the file, with their encoding (implicit VR, little endian) and every
    attribute that changes how :func:`segment_table` reads them:
    SpecificCharacterSet (text decoding), PixelRepresentation,
    PixelPaddingValue and SegmentationType (which segment is background,
    PS3.3 C.8.20.2) and pydicom's empty-text setting. Two data sets with equal
    keys have equal segment tables; one byte of difference is another key.

    Parameters
    ----------
    dataset
        A ``pydicom.Dataset`` straight from the file, before anything accessed
        its SegmentSequence (pydicom keeps a defined-length sequence as raw
        bytes until then).

    Returns
    -------
    tuple or None
        None when the sequence is no longer raw bytes (already accessed, set in
        memory, or parsed eagerly because of an undefined length): no cache.
    """
    from pydicom import config
    from pydicom.dataelem import RawDataElement

    if _SEGMENT_SEQUENCE_TAG not in dataset:
        return None
    raw = dataset.get_item(_SEGMENT_SEQUENCE_TAG, keep_deferred=True)
    if not isinstance(raw, RawDataElement) or not isinstance(raw.value, (bytes, bytearray, memoryview)):
        return None
    context = tuple(repr(dataset.get(keyword)) for keyword in (
        "SpecificCharacterSet", "PixelRepresentation", "PixelPaddingValue", "SegmentationType"))
    return (bool(raw.is_implicit_VR), bool(raw.is_little_endian), bytes(raw.value), context,
            bool(config.use_none_as_empty_text_VR_value))


def cached_segment_table(seg: Any, key: "tuple[Any, ...] | None") -> list[dict[str, Any]]:
    """:func:`segment_table` of ``seg``, remembered under ``key`` (:func:`segment_sequence_key`).

    A training loop reads the same few SEG headers every epoch; parsing their
    code items is most of a small label's load time. Tables are kept as JSON
    text in a bounded LRU (:data:`SEGMENT_TABLE_CACHE_SIZE` entries, thread
    safe; a forked DataLoader worker inherits the parent's entries), and every
    call returns new objects, so a caller may change what it gets. The key is
    the exact stored bytes, so a changed file is a miss, never a stale table.

    Parameters
    ----------
    seg
        The Segmentation read from the data set ``key`` was taken from, before
        any change to it (the caller's own fresh read).
    key
        :func:`segment_sequence_key` of that data set; None: no cache (the table is computed).

    Returns
    -------
    list of dict
        Equal to ``segment_table(seg)``.
    """
    if key is None:
        return segment_table(seg)
    with _CACHE_LOCK:
        text = _CACHE.get(key)
        if text is not None:
            _CACHE.move_to_end(key)
        _CACHE_COUNTS["hits" if text is not None else "misses"] += 1
    if text is not None:
        return json.loads(text)
    table = segment_table(seg)  # errors are raised, never cached
    text = json.dumps(table)
    with _CACHE_LOCK:
        _CACHE[key] = text
        _CACHE.move_to_end(key)
        while len(_CACHE) > SEGMENT_TABLE_CACHE_SIZE:
            _CACHE.popitem(last=False)
    return json.loads(text)


def segment_table_cache_info() -> dict[str, int]:
    """``{"hits", "misses", "size", "maxsize"}`` of :func:`cached_segment_table` (for tests and tuning)."""
    with _CACHE_LOCK:
        return {**_CACHE_COUNTS, "size": len(_CACHE), "maxsize": SEGMENT_TABLE_CACHE_SIZE}


def clear_segment_table_cache() -> None:
    """Forget every cached segment table and reset the counts."""
    with _CACHE_LOCK:
        _CACHE.clear()
        _CACHE_COUNTS.update(hits=0, misses=0)


def header_segment_table(header: Any) -> list[dict[str, Any]]:
    """:func:`segment_table` of a header-only SEG ``Dataset`` (``dcmread(stop_before_pixels=True)``).

    Only the Segment Sequence is read; no Pixel Data is needed.
    """
    from monai_dicomseg.seg.segmentation import Segmentation

    if isinstance(header, Segmentation):
        return segment_table(header)
    return segment_table(_header_segments_class()(header))


@functools.cache
def _header_segments_class() -> type:
    """A small class with the segment accessors of :class:`Segmentation` over a header ``Dataset``.

    Built on first use (``seg/`` is imported only then). It reads the data
    set through its public attributes; the data set keeps its class.
    """
    from monai_dicomseg.seg.reader import SegmentationReaderMixin

    class HeaderSegments(SegmentationReaderMixin):
        """``segment_numbers`` / ``get_segment_description`` of a header-only SEG ``Dataset``."""

        def __init__(self, header: Any) -> None:
            self._header = header

        def __getattr__(self, name: str) -> Any:  # elements of the data set (SegmentSequence, ...)
            if name == "_header":
                raise AttributeError(name)
            return getattr(self._header, name)

        def get(self, key: Any, default: Any = None) -> Any:
            return self._header.get(key, default)

    return HeaderSegments


def code_key(code: Any) -> "tuple[str, str] | None":
    """``(value, scheme_designator)`` of a CodedConcept, pydicom ``Code`` or 2-tuple."""
    if code is None:
        return None
    if isinstance(code, tuple) and len(code) == 2:
        return str(code[0]), str(code[1])
    value = getattr(code, "value", None)
    scheme = getattr(code, "scheme_designator", None)
    if value is None or scheme is None:
        raise InputTypeError(
            "a coded property type must be a CodedConcept, a pydicom Code or a (value, "
            f"scheme_designator) tuple; got {type(code).__name__}"
        )
    return str(value), str(scheme)


def _key_of(code: "dict[str, str] | None") -> "tuple[str, str] | None":
    return None if code is None else (str(code["value"]), str(code["scheme_designator"]))


def specific_type(entry: Mapping[str, Any]) -> "tuple[str, str] | None":
    """``(value, scheme)`` of a segment's property type, None when absent or :data:`GENERIC_TYPE`."""
    key = _key_of(entry.get("type"))
    return None if key == GENERIC_TYPE else key


@functools.lru_cache(maxsize=4096)
def _term(name: str) -> "tuple[tuple[str, str], tuple[str, str] | None] | None":
    """``(type code, modifier code or None)`` of an anatomy-table name, None if the table does not know it."""
    from monai_dicomseg.anatomy import lookup_term

    try:
        term = lookup_term(name)
    except Exception:  # a name the table cannot parse is just not an anatomy name
        return None
    if term is None:
        return None
    modifier = term.type_modifier
    return ((str(term.property_type.value), str(term.property_type.scheme_designator)),
            None if modifier is None else (str(modifier.value), str(modifier.scheme_designator)))


@functools.lru_cache(maxsize=4096)
def _normalized(name: str) -> "tuple[str, str | None]":
    from monai_dicomseg.anatomy import normalize_name

    return normalize_name(name)


def _matches_name(entry: Mapping[str, Any], key: str) -> bool:
    """A ``str`` key: label / type meaning / code value, normalised label, anatomy name (module docstring)."""
    kind = entry.get("type") or {}
    label = str(entry.get("label", ""))
    folded = key.strip().casefold()
    if folded in (label.strip().casefold(), str(kind.get("meaning", "")).casefold(),
                  str(kind.get("value", "")).casefold()):
        return True
    normalized = _normalized(key)
    if normalized[0] and normalized == _normalized(label):
        return True
    term = _term(key)
    if term is None:
        return False
    coded = specific_type(entry)
    if coded is not None:
        return coded == term[0] and (term[1] is None or _key_of(entry.get("modifier")) == term[1])
    label_term = _term(label) if label else None
    return label_term is not None and label_term[0] == term[0] and (term[1] is None or label_term[1] == term[1])


def segment_matches(entry: Mapping[str, Any], key: Any) -> bool:
    """Whether the ``label_map`` key ``key`` names the segment ``entry`` (a :func:`segment_table` row).

    The rules are listed in the module docstring: int = segment number; str =
    label, type meaning or code value, normalised name, anatomy name or
    synonym with laterality; coded concept = property type code; a
    :class:`StructureKey` = its own identity.

    Raises
    ------
    InputTypeError
        ``key`` is none of these (e.g. a float or a list).
    """
    if isinstance(key, StructureKey):
        return key.matches(entry)
    if isinstance(key, bool):
        raise InputTypeError(f"a label_map key must be an int, a str or a coded concept; got bool {key!r}")
    if isinstance(key, Integral):
        return int(entry["number"]) == int(key)
    if isinstance(key, str):
        return _matches_name(entry, key)
    return code_key(key) == _key_of(entry.get("type"))


class StructureKey(str):
    """A ``label_map`` key naming one structure of a dataset vocabulary.

    It *is* its display name (a ``str``: ``json.dumps``, ``channel_def`` and
    ``label_map["liver"]`` see ``"liver"``), and matches segments by identity
    instead of by name: a segment whose specific property type and modifier
    equal ``code``/``modifier`` (also requiring its label in ``labels`` when
    ``label_bound``: the code alone names several segments of one SEG), or a
    segment without a specific type whose casefolded label is in ``labels``.
    Built by :func:`monai_dicomseg.data.vocabulary.build_vocabulary`; picklable.
    """

    code: "tuple[str, str] | None"
    modifier: "tuple[str, str] | None"
    labels: "tuple[str, ...]"
    label_bound: bool

    def __new__(cls, name: str, code: "tuple[str, str] | None" = None,
                modifier: "tuple[str, str] | None" = None, labels: Sequence[str] = (),
                label_bound: bool = False) -> "StructureKey":
        self = super().__new__(cls, name)
        self.code = None if code is None else (str(code[0]), str(code[1]))
        self.modifier = None if modifier is None else (str(modifier[0]), str(modifier[1]))
        self.labels = tuple(sorted({str(label).strip().casefold() for label in labels}))
        self.label_bound = bool(label_bound)
        return self

    def matches(self, entry: Mapping[str, Any]) -> bool:
        """Whether this structure is segment ``entry`` (a :func:`segment_table` row)."""
        coded = specific_type(entry)
        label = str(entry.get("label", "")).strip().casefold()
        if coded is None:
            return label in self.labels
        if self.code is None or (coded, _key_of(entry.get("modifier"))) != (self.code, self.modifier):
            return False
        return not self.label_bound or label in self.labels

    def __repr__(self) -> str:
        return (f"StructureKey({str(self)!r}, code={self.code}, modifier={self.modifier}, "
                f"labels={self.labels}, label_bound={self.label_bound})")


class CheckedLabelMap(dict):
    """A ``label_map`` whose keys were checked against a whole dataset.

    :func:`plan_segment_selection` does not warn about its keys absent from
    one SEG (a structure missing from one case is expected in a dataset and
    was reported once, for the dataset); a SEG that none of its keys names is
    still an error.
    """


def describe_key(key: Any) -> str:
    """A ``label_map`` key as messages show it (``'liver'``, ``7``, ``(10200004, SCT) 'Liver'``)."""
    if isinstance(key, (str, Integral)) or not hasattr(key, "value"):
        return repr(str(key)) if isinstance(key, str) else repr(key)
    return f"({key.value}, {key.scheme_designator}) {str(getattr(key, 'meaning', ''))!r}"


def _names(table: Sequence[Mapping[str, Any]]) -> list[str]:
    """Labels, type meanings and type code values of ``table`` (the candidates of a suggestion)."""
    names: list[str] = []
    for entry in table:
        kind = entry.get("type") or {}
        names.extend([str(entry.get("label", "")), str(kind.get("meaning", "")), str(kind.get("value", ""))])
    return [name for name in dict.fromkeys(names) if name]


def suggest_names(key: Any, table: Sequence[Mapping[str, Any]], n: int = 3) -> list[str]:
    """The labels/codes of ``table`` closest to ``key`` (``difflib``), else all labels.

    An int key gets the segment numbers; a coded key the ``value (scheme) meaning`` of each type.
    """
    if isinstance(key, Integral) and not isinstance(key, bool):
        return [f"segment {entry['number']} {entry.get('label', '')!r}" for entry in table]
    if not isinstance(key, str):
        types = [entry["type"] for entry in table if entry.get("type")]
        return list(dict.fromkeys(f"{t['value']} ({t['scheme_designator']}) {t['meaning']!r}" for t in types))
    candidates = _names(table)
    by_fold: dict[str, str] = {}
    for name in candidates:  # labels before type meanings
        by_fold.setdefault(name.casefold(), name)
    close = difflib.get_close_matches(key.casefold(), list(by_fold), n=n, cutoff=0.5)
    return [by_fold[name] for name in close] or [str(entry.get("label", "")) for entry in table]


@dataclass(frozen=True)
class SegmentSelectionPlan:
    """Which SEG segments feed which output.

    Attributes
    ----------
    segment_numbers
        SEG segment numbers to decode, ascending.
    values
        Output value of each entry of ``segment_numbers`` (label value in
        ``"labelmap"`` mode; channel ``values.index`` in ``"stacked"`` mode).
    channel_values
        Output values in channel order (``stacked`` mode has one channel per
        entry; several segments mapping to one value are OR-ed/max-ed).
    """

    segment_numbers: tuple[int, ...]
    values: tuple[int, ...]
    channel_values: tuple[int, ...]

    @property
    def is_identity(self) -> bool:
        """True when every output value equals its segment number, one to one."""
        return self.values == self.segment_numbers and self.channel_values == self.segment_numbers


@dataclass(frozen=True)
class SegmentSelection:
    """Which segments of a SEG a loader keeps, declared once for every loader.

    The loaders accept these fields as keyword arguments (``segment_numbers=``,
    ...) or as one ``selection=SegmentSelection(...)``; either way they are
    converted once, by :meth:`from_options`, and resolved per SEG by
    :meth:`plan`.

    Attributes
    ----------
    segment_numbers, segment_labels, segmented_property_types
        Keep the segments matching any of them (None: no constraint; all
        None keeps every segment).
    label_map
        ``{key: value}`` harmonisation; exclusive with the three selectors.
        See :func:`plan_segment_selection`.
    """

    segment_numbers: "Sequence[int] | None" = None
    segment_labels: "Sequence[str] | None" = None
    segmented_property_types: "Sequence[Any] | None" = None
    label_map: "Mapping[Any, int] | None" = None

    @classmethod
    def from_options(cls, options: "dict[str, Any]", selection: "SegmentSelection | None" = None,
                     ) -> "SegmentSelection":
        """Pop the :data:`SELECTION_OPTIONS` out of ``options`` (a loader's keyword arguments).

        Raises
        ------
        InputTypeError
            ``selection`` is not a :class:`SegmentSelection`.
        InputError
            ``selection`` given together with selection keywords.
        """
        given = {name: options.pop(name) for name in SELECTION_OPTIONS if name in options}
        given = {name: value for name, value in given.items() if value is not None}  # None: no constraint
        if selection is None:
            return cls(**given)
        if not isinstance(selection, SegmentSelection):
            raise InputTypeError(f"selection must be a SegmentSelection; got {type(selection).__name__}")
        if given:
            raise InputError(f"selection= cannot be combined with {sorted(given)}; put them in the SegmentSelection")
        return selection

    def plan(self, table: Sequence[dict[str, Any]], *, strict: bool = True, where: str = "",
             warn: bool = True) -> "SegmentSelectionPlan":
        """:func:`plan_segment_selection` of this selection against ``table`` (``where``: the SEG's name)."""
        return plan_segment_selection(
            table, segment_numbers=self.segment_numbers, segment_labels=self.segment_labels,
            segmented_property_types=self.segmented_property_types, label_map=self.label_map, strict=strict,
            where=where, warn=warn,
        )


def _assign(table: Sequence[Mapping[str, Any]], label_map: Mapping[Any, int], where: str) -> dict[int, int]:
    """``{segment number: value}`` of the segments the keys name; two values for one segment is an error."""
    assigned: dict[int, int] = {}
    for key, value in label_map.items():
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            raise InputError(f"label_map[{key!r}] must be an int >= 1; got {value!r}")
        for entry in table:
            if segment_matches(entry, key):
                previous = assigned.setdefault(entry["number"], int(value))
                if previous != value:
                    raise InputError(
                        f"segment {entry['number']} ({entry['label']!r}) of the SEG{' ' + where if where else ''} "
                        f"is matched by label_map keys with values {previous} and {value}"
                    )
    return assigned


def _warn_absent(table: Sequence[Mapping[str, Any]], label_map: Mapping[Any, int], where: str) -> None:
    """One :class:`LabelMapKeyWarning` for the keys that name no segment of ``table``."""
    absent = [key for key in label_map if not any(segment_matches(entry, key) for entry in table)]
    if not absent:
        return
    details = "; ".join(f"{describe_key(key)} (closest: {suggest_names(key, table)})" for key in absent)
    warnings.warn(
        f"label_map: {len(absent)} key(s) name no segment of the SEG{' ' + where if where else ''}, so "
        f"that structure is background in this label: {details}",
        LabelMapKeyWarning, stacklevel=4,
    )


def plan_segment_selection(
    table: Sequence[dict[str, Any]],
    *,
    segment_numbers: "Sequence[int] | None" = None,
    segment_labels: "Sequence[str] | None" = None,
    segmented_property_types: "Sequence[Any] | None" = None,
    label_map: "Mapping[Any, int] | None" = None,
    strict: bool = True,
    where: str = "",
    warn: bool = True,
) -> SegmentSelectionPlan:
    """Resolve a selection or ``label_map`` against a segment table.

    Parameters
    ----------
    table
        Output of :func:`segment_table`.
    segment_numbers, segment_labels, segmented_property_types
        Keep the segments matching any of the given numbers, labels (exact
        SegmentLabel) or coded property types (CodedConcept/``Code``/(value,
        scheme) tuple). All None keeps every segment. Output values are the
        segment numbers.
    label_map
        Maps a key (an int segment number, a name, a coded concept: matched
        by :func:`segment_matches`, rules in the module docstring) to an
        output value >= 1. Output channels are the distinct values in
        ascending order and are present even when no segment of this SEG
        matches, so SEGs with different numbering come out harmonised.
        Segments matched by no key are dropped. Exclusive with the other
        selectors.
    strict
        Raise when a requested number/label/type matches no segment (not for
        ``label_map`` keys: those warn, see ``warn``).
    where
        The SEG as messages name it (e.g. its quoted path), or "".
    warn
        ``label_map`` keys that name no segment of this SEG are one
        :class:`LabelMapKeyWarning` naming each key, ``where`` and the
        closest labels/codes of this SEG (not for a :class:`CheckedLabelMap`).
        False: no warning (a second plan of the same SEG, e.g. the DICOMweb
        header pass).

    Raises
    ------
    InputError
        Unknown segment numbers/labels/types (``strict``), bad label_map
        values, a ``label_map`` none of whose keys names a segment of this
        SEG (it would give an all-background label), a segment matched by two
        label_map keys with different values, or a selection that keeps no
        segment.
    InputTypeError
        A ``label_map`` key that is not an int, a str or a coded concept.
    """
    available = [e["number"] for e in table]
    if label_map is not None:
        if segment_numbers is not None or segment_labels is not None or segmented_property_types is not None:
            raise InputError("label_map cannot be combined with segment_numbers/segment_labels/"
                             "segmented_property_types")
        if not isinstance(label_map, Mapping) or not label_map:
            raise InputError(f"label_map must be a non-empty mapping of key -> value; got {label_map!r}")
        assigned = _assign(table, label_map, where)
        if not assigned:
            raise InputError(
                f"label_map: none of its keys [{', '.join(describe_key(k) for k in label_map)}] names a segment of the SEG"
                f"{' ' + where if where else ''} (the label would be all background); its segments are "
                f"{[(e['number'], e['label']) for e in table]}; keys match a segment number, label, property "
                "type code/meaning or anatomy name (see monai_dicomseg.io.segments)"
            )
        if warn and not isinstance(label_map, CheckedLabelMap):
            _warn_absent(table, label_map, where)
        numbers = tuple(sorted(assigned))
        return SegmentSelectionPlan(numbers, tuple(assigned[n] for n in numbers),
                                    tuple(sorted(set(label_map.values()))))
    if segment_numbers is None and segment_labels is None and segmented_property_types is None:
        numbers = tuple(available)
        return SegmentSelectionPlan(numbers, numbers, numbers)
    chosen: set[int] = set()
    for number in segment_numbers or ():
        if int(number) not in available:
            if strict:
                raise InputError(f"segment_numbers: {int(number)} is not a segment of this SEG; "
                                 f"expected one of {available}")
            continue
        chosen.add(int(number))
    for label in segment_labels or ():
        found = [e["number"] for e in table if e["label"] == str(label)]
        if not found and strict:
            raise InputError(f"segment_labels: no segment is labelled {label!r}; "
                             f"labels are {[e['label'] for e in table]}")
        chosen.update(found)
    for code in segmented_property_types or ():
        wanted = code_key(code)
        found = [e["number"] for e in table
                 if e["type"] is not None and (e["type"]["value"], e["type"]["scheme_designator"]) == wanted]
        if not found and strict:
            raise InputError(f"segmented_property_types: no segment has type {wanted}")
        chosen.update(found)
    if not chosen:
        raise InputError("the segment selection matches no segment of this SEG")
    numbers = tuple(sorted(chosen))
    return SegmentSelectionPlan(numbers, numbers, numbers)


def segments_from_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Decode the JSON metadata of a loaded SEG label.

    Returns
    -------
    dict
        ``{"segments": [segment table rows], "channel_segments": [[numbers]
        per channel], "channel_values": [value per channel] (labelmap mode:
        the values the label can hold, 0 first), "labels": label_map or
        None}``. Works on a collated batch's meta too (lists of strings ->
        lists of decoded values, one per item).
    """
    def decode(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value) and value:
                return list(value)  # a plain list (metadata of an older version)
            return [decode(v) for v in value]
        return json.loads(value) if value else None

    return {key: decode(meta.get(key, ""))
            for key in ("segments", "channel_segments", "channel_values", "labels")}
