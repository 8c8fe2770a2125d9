"""Segment tables, segment selection and ``label_map`` harmonisation.

A SEG numbers its segments 1, 2, 3, ... (PS3.3 C.8.20.2 Segment Sequence);
different SEGs of one dataset may number the same structure differently. The
functions here turn a user's request (segment numbers, labels, coded
property types, or a ``label_map`` such as ``{"liver": 1, "spleen": 2}``)
into an explicit *plan*: which SEG segments feed which output value/channel.
Nothing here touches pixels, torch or MONAI.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monai_dicomseg.errors import InputError, InputTypeError

__all__ = [
    "SegmentSelection", "SegmentSelectionPlan", "SELECTION_OPTIONS", "segment_table", "plan_segment_selection",
    "code_key", "segments_from_meta",
]

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


def segment_table(seg: Any) -> list[dict[str, Any]]:
    """One plain ``dict`` per segment of ``seg`` (picklable, JSON-friendly).

    Keys: ``number`` (int), ``label`` (str), ``category`` and ``type``
    (``{"value", "scheme_designator", "meaning"}``), ``color`` (``[r, g, b]``
    ints or None, from RecommendedDisplayCIELabValue), ``tracking_id`` (str
    or None).
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
            "color": None if color is None else [int(v) for v in color.rgb],
            "tracking_id": description.tracking_id,
        })
    return table


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


def _matches(entry: dict[str, Any], key: Any) -> bool:
    """Whether ``key`` names segment ``entry`` (by number, label, code value/meaning or code)."""
    if isinstance(key, bool):
        return False
    if isinstance(key, int):
        return entry["number"] == key
    kind = entry["type"] or {}
    if isinstance(key, str):
        folded = key.casefold()
        return folded in (entry["label"].casefold(), str(kind.get("meaning", "")).casefold(),
                          str(kind.get("value", "")).casefold())
    code = code_key(key)
    return code == (kind.get("value"), kind.get("scheme_designator"))


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

    def plan(self, table: Sequence[dict[str, Any]], *, strict: bool = True) -> "SegmentSelectionPlan":
        """:func:`plan_segment_selection` of this selection against ``table``."""
        return plan_segment_selection(
            table, segment_numbers=self.segment_numbers, segment_labels=self.segment_labels,
            segmented_property_types=self.segmented_property_types, label_map=self.label_map, strict=strict,
        )


def plan_segment_selection(
    table: Sequence[dict[str, Any]],
    *,
    segment_numbers: "Sequence[int] | None" = None,
    segment_labels: "Sequence[str] | None" = None,
    segmented_property_types: "Sequence[Any] | None" = None,
    label_map: "Mapping[Any, int] | None" = None,
    strict: bool = True,
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
        Maps a key (segment label or property type meaning/code value, case-
        insensitive; a coded concept; or an int segment number) to an output
        value >= 1. Output channels are the distinct values in ascending
        order and are present even when no segment of this SEG matches, so
        SEGs with different numbering come out harmonised. Segments matched
        by no key are dropped. Exclusive with the other selectors.
    strict
        Raise when a requested number/label/type matches no segment (ignored
        for ``label_map`` keys, which may legitimately be absent).

    Raises
    ------
    InputError
        Unknown segment numbers/labels/types (``strict``), bad label_map
        values, a segment matched by two label_map keys with different
        values, or a selection that keeps no segment.
    """
    available = [e["number"] for e in table]
    if label_map is not None:
        if segment_numbers is not None or segment_labels is not None or segmented_property_types is not None:
            raise InputError("label_map cannot be combined with segment_numbers/segment_labels/"
                             "segmented_property_types")
        if not isinstance(label_map, Mapping) or not label_map:
            raise InputError(f"label_map must be a non-empty mapping of key -> value; got {label_map!r}")
        assigned: dict[int, int] = {}
        for key, value in label_map.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"label_map[{key!r}] must be an int >= 1; got {value!r}")
            for entry in table:
                if _matches(entry, key):
                    previous = assigned.setdefault(entry["number"], value)
                    if previous != value:
                        raise InputError(
                            f"segment {entry['number']} ({entry['label']!r}) is matched by label_map "
                            f"keys with values {previous} and {value}"
                        )
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
