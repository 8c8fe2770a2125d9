"""One label vocabulary per dataset: the same value for the same structure in every item.

Different SEGs of one dataset may number the same structure differently
(segment 1 is the spleen in one SEG and the liver in another, PS3.3 C.8.20.2
leaves numbering to the producer). :class:`~monai_dicomseg.data.dataset.DicomSegDataset`
therefore derives one value per *structure* for the whole dataset from the SEG
headers (read without Pixel Data, cached per path + mtime + size) and loads
every item with that mapping as its ``label_map``.

Structure identity
------------------
* A segment with a specific Segmented Property Type (0062,000F) is the
  structure ``(type code, modifier code)``: the modifier (0062,0011) carries
  laterality, so a left and a right kidney are two structures. Labels do not
  matter (``"Liver"`` and ``"Leber"`` typed SCT 10200004 are one structure).
* A code that types two segments of one SEG (``"lesion 1"``, ``"lesion 2"``,
  both Neoplasm) cannot tell them apart: for that code, the identity is
  ``(code, modifier, label)`` in every SEG.
* A segment without a specific type (none, or the generic SCT 91723000
  "Anatomical structure" of unknown names) joins the coded structure that
  carries its (casefolded) label elsewhere in the dataset, else it is the
  structure named by its label.

Refused, not guessed (:class:`~monai_dicomseg.errors.InputError` listing every
case): one label used for two coded structures (``"kidney"`` typed Kidney +
Left in one SEG and Kidney + Right in another), and two segments of one SEG
that are the same structure. Pass a ``label_map`` (or ``numbering="per_file"``)
then.

Numbering rule
--------------
If every structure has the same segment number in every SEG where it appears
and those numbers differ between structures, the numbers are kept (a
consistent dataset keeps its numbers). Otherwise structures are numbered 1..N
in the order of the segment number each most often has (the smaller number on
a tie), then of their name (casefolded): independent of the order of the
datalist. A structure's name is the label its segments most often carry.
"""
from __future__ import annotations

import os
import sys
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monai_dicomseg.enums import SEG_SOP_CLASS_UIDS
from monai_dicomseg.errors import DecodeError, InputError, InputTypeError
from monai_dicomseg.io.segload import error_with_context, source_name
from monai_dicomseg.io.segments import (
    CheckedLabelMap,
    LabelMapKeyWarning,
    SegmentSelection,
    StructureKey,
    describe_key,
    header_segment_table,
    segment_matches,
    specific_type,
    suggest_names,
)

__all__ = [
    "LabelVocabulary", "build_vocabulary", "check_label_map", "describe_labels", "channel_def_from_label_map",
    "seg_tables", "NUMBERINGS",
]

NUMBERINGS = ("dataset", "per_file")
"""``numbering`` of :class:`~monai_dicomseg.data.dataset.DicomSegDataset` without a ``label_map``:
``"dataset"`` (default) one value per structure for the whole dataset (this module);
``"per_file"`` each SEG's own segment numbers (the meaning of a value may differ between items)."""

_HEADER_TAGS = ["SOPClassUID", "SegmentSequence", "SegmentationType", "PixelPaddingValue"]
_CACHE: dict[Any, list[dict[str, Any]]] = {}
_CACHE_SIZE = 65536


# --------------------------------------------------------------------------- header-only segment tables


def _file_table(path: str) -> list[dict[str, Any]]:
    """Segment table of a SEG file from its header only, cached per (real path, mtime, size)."""
    import pydicom

    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_mtime_ns, stat.st_size)
    table = _CACHE.get(key)
    if table is None:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
        sop_class = str(header.get("SOPClassUID", "") or getattr(
            getattr(header, "file_meta", None), "MediaStorageSOPClassUID", ""))
        if sop_class not in SEG_SOP_CLASS_UIDS:
            raise DecodeError(f"SOPClassUID must be a Segmentation Storage class; got {sop_class!r}")
        table = header_segment_table(header)
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[key] = table
    return table


class _Header(Exception):
    """Carries the segment table out of the DICOMweb header pass (no frame is fetched)."""

    def __init__(self, table: list[dict[str, Any]]) -> None:
        super().__init__("header")
        self.table = table


def _capture(header: Any) -> None:
    raise _Header(header_segment_table(header))


def _dicomweb_table(source: Any) -> list[dict[str, Any]]:
    """Segment table of a DICOMweb SEG: its metadata (cached), or the cached instance."""
    from monai_dicomseg.dicomweb.frames import materialize_segments
    from monai_dicomseg.io.segload import read_segmentation
    from monai_dicomseg.io.segments import segment_table

    key = ("dicomweb", str(getattr(source, "uri", source)))
    if key in _CACHE:
        return _CACHE[key]
    try:
        path = materialize_segments(source, _capture)
    except _Header as header:
        table = header.table
    else:
        table = _file_table(path) if path is not None else segment_table(read_segmentation(source))
    _CACHE[key] = table
    return table


def _table(source: Any) -> list[dict[str, Any]]:
    from pydicom.dataset import Dataset

    from monai_dicomseg.dicomweb import DicomWebSeries, is_dicomweb_uri

    if isinstance(source, DicomWebSeries) or is_dicomweb_uri(source):
        return _dicomweb_table(source)
    if isinstance(source, (str, os.PathLike)):
        if not os.path.isfile(source):
            raise InputError(f"SEG file {str(source)!r} does not exist")
        return _file_table(os.fspath(source))
    if isinstance(source, Dataset):
        return header_segment_table(source)
    raise InputTypeError(f"a SEG must be a path, a DICOMweb reference or a pydicom Dataset; got "
                         f"{type(source).__name__}")


def seg_tables(datalist: Sequence[Mapping[str, Any]], label_key: str = "label", *,
               skip_unreadable: bool = False) -> list[tuple[str, list[dict[str, Any]]]]:
    """``(name, segment table)`` of the SEG of every datalist entry, from headers only.

    Parameters
    ----------
    datalist
        Dicts with ``label_key`` (a SEG path, DICOMweb reference or Dataset).
    skip_unreadable
        Leave out SEGs whose header cannot be read, with one UserWarning
        listing them (the loader reports each when it reaches it); else raise.

    Raises
    ------
    InputError, DecodeError, InputTypeError
        A missing entry/file or a header that is not a SEG, naming the entry and file.
    """
    tables, skipped = [], []
    for index, item in enumerate(datalist):
        if not isinstance(item, Mapping) or label_key not in item:
            raise InputError(f"data[{index}] must be a dict with key {label_key!r}")
        source = item[label_key]
        try:
            tables.append((source_name(source), _table(source)))
        except Exception as error:
            context = f"data[{index}][key {label_key!r}] {source_name(source)}"
            if skip_unreadable:
                skipped.append(f"{context} ({error})")
            elif isinstance(error, (InputError, DecodeError, InputTypeError)):
                raise error_with_context(error, context) from error
            else:
                raise DecodeError(f"{context}: cannot read the SEG header: {error}") from error
    if skipped:
        warnings.warn(f"{len(skipped)} SEG header(s) could not be read and are left out of the dataset's label "
                      f"vocabulary / label_map check (the loader reports each): {'; '.join(skipped[:3])}"
                      f"{' ...' if len(skipped) > 3 else ''}", UserWarning, stacklevel=3)
    return tables


# --------------------------------------------------------------------------- label_map accounting


def _checked_values(label_map: Any) -> None:
    if not isinstance(label_map, Mapping) or not label_map:
        raise InputError(f"label_map must be a non-empty mapping of key -> value; got {label_map!r}")
    for key, value in label_map.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"label_map[{key!r}] must be an int >= 1; got {value!r}")


def _dataset_suggestions(key: Any, tables: Sequence[tuple[str, list[dict[str, Any]]]]) -> list[str]:
    rows = [entry for _, table in tables for entry in table]
    return suggest_names(key, rows)


def check_label_map(
    datalist: Sequence[Mapping[str, Any]],
    label_map: Mapping[Any, int],
    label_key: str = "label",
    *,
    skip_unreadable: bool = False,
) -> CheckedLabelMap:
    """Check a ``label_map`` against every SEG of a dataset (headers only).

    Parameters
    ----------
    datalist
        Dicts with ``label_key`` (e.g. from :func:`~monai_dicomseg.data.datalist.create_datalist`).
    label_map
        ``{key: value >= 1}``; keys are matched as the loaders match them
        (:func:`~monai_dicomseg.io.segments.segment_matches`).
    skip_unreadable
        See :func:`seg_tables`.

    Returns
    -------
    CheckedLabelMap
        The same mapping, marked as checked: pass it to the loaders to skip
        their per-file warnings about keys absent from one SEG.

    Raises
    ------
    InputError
        A key that names no segment of any SEG of the dataset (with the
        closest labels/codes across the dataset), a SEG that no key names
        (it would be all background), a segment named by two keys with
        different values, bad values.

    Warns
    -----
    LabelMapKeyWarning
        Once, listing the keys absent from some SEGs (background there) with
        their counts and the first files.
    """
    _checked_values(label_map)
    tables = seg_tables(datalist, label_key, skip_unreadable=skip_unreadable)
    absent: dict[Any, list[str]] = {key: [] for key in label_map}
    unmatched: list[str] = []
    for name, table in tables:
        found = [key for key in label_map if any(segment_matches(entry, key) for entry in table)]
        for key in label_map:
            if key not in found:
                absent[key].append(name)
        if not found:
            unmatched.append(f"{name} (segments {[e['label'] for e in table]})")
        _check_ambiguity(table, label_map, name)
    nowhere = [key for key, names in absent.items() if tables and len(names) == len(tables)]
    if nowhere:
        raise InputError(
            f"label_map: {len(nowhere)} key(s) name no segment of any of the {len(tables)} SEG(s) of the dataset: "
            + "; ".join(f"{describe_key(key)} (did you mean {_dataset_suggestions(key, tables)}?)"
                        for key in nowhere)
        )
    if unmatched:
        raise InputError(
            f"label_map: no key names a segment of {len(unmatched)} SEG(s) (their labels would be all "
            f"background): {'; '.join(unmatched[:5])}{' ...' if len(unmatched) > 5 else ''}"
        )
    _warn_partly_absent(absent, len(tables))
    return CheckedLabelMap(label_map)


def _check_ambiguity(table: list[dict[str, Any]], label_map: Mapping[Any, int], name: str) -> None:
    for entry in table:
        values = {int(value) for key, value in label_map.items() if segment_matches(entry, key)}
        if len(values) > 1:
            raise InputError(f"segment {entry['number']} ({entry['label']!r}) of the SEG {name} is named by "
                             f"label_map keys with values {sorted(values)}")


def _warn_partly_absent(absent: Mapping[Any, list[str]], total: int) -> None:
    partly = {key: names for key, names in absent.items() if names}
    if not partly:
        return
    details = "; ".join(f"{describe_key(key)} in {len(names)} of {total} ({', '.join(names[:3])}"
                        f"{', ...' if len(names) > 3 else ''})" for key, names in partly.items())
    warnings.warn(f"label_map: some keys name no segment of some SEGs (that structure is background in "
                  f"those labels): {details}", LabelMapKeyWarning, stacklevel=3)


# --------------------------------------------------------------------------- dataset vocabulary


@dataclass(frozen=True)
class LabelVocabulary:
    """One value per structure for a whole dataset (see the module docstring).

    Attributes
    ----------
    label_map
        ``{StructureKey: value}``, a :class:`~monai_dicomseg.io.segments.CheckedLabelMap`:
        the ``label_map`` the loaders get (each key is its structure's name,
        ``label_map["liver"]`` works).
    structures
        One row per structure, in value order: ``value``, ``name``, ``type``
        and ``modifier`` (code dicts or None), ``labels`` (as found),
        ``segment_numbers`` (as found), ``segs`` (number of SEGs holding it).
    renumbered
        False when every SEG's own numbers were kept (consistent dataset).
    """

    label_map: CheckedLabelMap
    structures: tuple[dict[str, Any], ...]
    renumbered: bool

    @property
    def channel_def(self) -> dict[str, str]:
        """``{"0": "background", "1": "liver", ...}``: a bundle's ``channel_def``."""
        return channel_def_from_label_map(self.label_map)


def _identities(tables: Sequence[tuple[str, list[dict[str, Any]]]]) -> tuple[set, list[tuple[str, dict, Any]]]:
    """Codes that type two segments of one SEG, and ``(file, row, coded identity or None)`` per segment."""
    shared: set = set()
    rows = []
    for name, table in tables:
        seen: Counter = Counter()
        for entry in table:
            coded = specific_type(entry)
            cid = None if coded is None else (coded, _modifier_key(entry))
            seen[cid] += cid is not None
            rows.append((name, entry, cid))
        shared.update(cid for cid, count in seen.items() if count > 1)
    return shared, rows


def _modifier_key(entry: Mapping[str, Any]) -> "tuple[str, str] | None":
    modifier = entry.get("modifier")
    return None if modifier is None else (str(modifier["value"]), str(modifier["scheme_designator"]))


def _fold(label: Any) -> str:
    return str(label).strip().casefold()


def _resolve(tables: Sequence[tuple[str, list[dict[str, Any]]]]) -> tuple[list[tuple[str, dict, Any]], set]:
    """``(file, row, identity)`` per segment and the shared codes; InputError for what cannot be reconciled."""
    shared, rows = _identities(tables)
    coded = [(name, entry, ("code", cid, _fold(entry["label"]) if cid in shared else None))
             for name, entry, cid in rows if cid is not None]
    by_label: dict[str, dict[Any, list[str]]] = {}
    for name, entry, identity in coded:
        by_label.setdefault(_fold(entry["label"]), {}).setdefault(identity, []).append(name)
    problems = [f"label {label!r} names {len(found)} different coded structures: " + "; ".join(
        f"{_describe_identity(identity)} in {', '.join(names[:3])}" for identity, names in found.items())
        for label, found in by_label.items() if len(found) > 1]
    resolved: list[tuple[str, dict, Any]] = list(coded)
    for name, entry, cid in rows:
        if cid is None:
            joined = list(by_label.get(_fold(entry["label"]), {}))
            resolved.append((name, entry, joined[0] if len(joined) == 1 else ("label", _fold(entry["label"]))))
    problems.extend(_duplicates(resolved))
    if problems:
        raise InputError(
            f"the SEGs of this dataset cannot be given one label vocabulary ({len(problems)} problem(s)): "
            + " | ".join(problems[:10]) + " -- pass label_map={name or code: value} to decide, or "
            "numbering='per_file' for each SEG's own numbers"
        )
    return resolved, shared


def _duplicates(resolved: list[tuple[str, dict, Any]]) -> list[str]:
    """Problems: two segments of one SEG that are the same structure."""
    seen: dict[tuple[str, Any], dict] = {}
    problems = []
    for name, entry, identity in resolved:
        other = seen.setdefault((name, identity), entry)
        if other is not entry:
            problems.append(f"segments {other['number']} {other['label']!r} and {entry['number']} "
                            f"{entry['label']!r} of {name} are the same structure ({_describe_identity(identity)})")
    return problems


def _describe_identity(identity: Any) -> str:
    if identity[0] == "label":
        return f"label {identity[1]!r}"
    (code, modifier), label = identity[1], identity[2]
    text = f"type {code[0]} ({code[1]})" + ("" if modifier is None else f" + modifier {modifier[0]} ({modifier[1]})")
    return text + ("" if label is None else f" labelled {label!r}")


def _structure_rows(resolved: list[tuple[str, dict, Any]]) -> dict[Any, dict[str, Any]]:
    """Per identity: its rows' labels, numbers, SEG names and codes."""
    found: dict[Any, dict[str, Any]] = {}
    for name, entry, identity in resolved:
        row = found.setdefault(identity, {"labels": Counter(), "numbers": Counter(), "segs": set(),
                                          "type": None, "modifier": None})
        row["labels"][str(entry["label"])] += 1
        row["numbers"][int(entry["number"])] += 1
        row["segs"].add(name)
        if identity[0] == "code" and row["type"] is None:
            row["type"], row["modifier"] = entry.get("type"), entry.get("modifier")
    return found


def _names(found: dict[Any, dict[str, Any]]) -> dict[Any, str]:
    """A unique display name per identity: its most frequent label (then its code meanings)."""
    names = {}
    for identity, row in found.items():
        top = max(row["labels"].values())
        name = sorted((label for label, n in row["labels"].items() if n == top), key=lambda s: (s.casefold(), s))[0]
        names[identity] = name or str((row["type"] or {}).get("meaning", "")) or "unnamed"
    counts = Counter(name.casefold() for name in names.values())
    for identity, name in list(names.items()):
        if counts[name.casefold()] > 1:
            extra = [str(c["meaning"]) for c in (found[identity]["type"], found[identity]["modifier"]) if c]
            names[identity] = f"{name} ({', '.join(extra) or identity[1]})"
    counts = Counter(name.casefold() for name in names.values())
    for index, identity in enumerate(sorted(names, key=repr)):
        if counts[names[identity].casefold()] > 1:
            names[identity] = f"{names[identity]} #{index + 1}"
    return names


def _values(found: dict[Any, dict[str, Any]], names: dict[Any, str]) -> tuple[dict[Any, int], bool]:
    """The numbering rule of the module docstring: ``({identity: value}, renumbered)``."""
    kept = [next(iter(row["numbers"])) for row in found.values() if len(row["numbers"]) == 1]
    if len(kept) == len(found) and len(set(kept)) == len(kept):
        return {identity: next(iter(row["numbers"])) for identity, row in found.items()}, False

    def modal(row: dict[str, Any]) -> int:
        top = max(row["numbers"].values())
        return min(number for number, n in row["numbers"].items() if n == top)

    order = sorted(found, key=lambda identity: (modal(found[identity]), names[identity].casefold(), repr(identity)))
    return {identity: value for value, identity in enumerate(order, start=1)}, True


def _key(identity: Any, name: str, row: dict[str, Any], shared: set) -> StructureKey:
    labels = list(row["labels"])
    if identity[0] == "label":
        return StructureKey(name, labels=[identity[1]])
    code, modifier = identity[1]
    return StructureKey(name, code=code, modifier=modifier, labels=labels, label_bound=identity[1] in shared)


def build_vocabulary(
    datalist: Sequence[Mapping[str, Any]],
    label_key: str = "label",
    *,
    selection: "SegmentSelection | None" = None,
    skip_unreadable: bool = False,
) -> LabelVocabulary:
    """Derive one value per structure for the SEGs of ``datalist`` (headers only; rules in the module docstring).

    Parameters
    ----------
    datalist
        Dicts with ``label_key``.
    selection
        Only the segments this selection keeps in each SEG (``segment_numbers``,
        ``segment_labels``, ``segmented_property_types``; not ``label_map``).
    skip_unreadable
        See :func:`seg_tables`.

    Raises
    ------
    InputError
        Segments that cannot be reconciled (listed), an empty dataset.
    """
    tables = seg_tables(datalist, label_key, skip_unreadable=skip_unreadable)
    if selection is not None:
        tables = [(name, _selected(table, selection, name)) for name, table in tables]
    if not any(table for _, table in tables):
        raise InputError(f"the dataset has no SEG segment to build a label vocabulary from ({len(tables)} SEG(s))")
    resolved, shared = _resolve(tables)
    found = _structure_rows(resolved)
    names = _names(found)
    values, renumbered = _values(found, names)
    keys = {identity: _key(identity, names[identity], found[identity], shared) for identity in found}
    _self_check(tables, keys)
    order = sorted(found, key=lambda identity: values[identity])
    label_map = CheckedLabelMap((keys[identity], values[identity]) for identity in order)
    structures = tuple({
        "value": values[identity], "name": names[identity], "type": found[identity]["type"],
        "modifier": found[identity]["modifier"], "labels": sorted(found[identity]["labels"]),
        "segment_numbers": sorted(found[identity]["numbers"]), "segs": len(found[identity]["segs"]),
    } for identity in order)
    return LabelVocabulary(label_map, structures, renumbered)


def _selected(table: list[dict[str, Any]], selection: SegmentSelection, name: str) -> list[dict[str, Any]]:
    kept = set(selection.plan(table, where=name).segment_numbers)
    return [entry for entry in table if entry["number"] in kept]


def _self_check(tables: Sequence[tuple[str, list[dict[str, Any]]]], keys: Mapping[Any, StructureKey]) -> None:
    """Each segment is named by exactly one key: what the loaders will do equals what was derived."""
    for name, table in tables:
        for entry in table:
            matched = [key for key in keys.values() if key.matches(entry)]
            if len(matched) != 1:  # pragma: no cover - a bug in the rules above, never a silent result
                raise InputError(f"segment {entry['number']} {entry['label']!r} of {name} is named by "
                                 f"{len(matched)} structures of the vocabulary: {matched}")


# --------------------------------------------------------------------------- reporting


def channel_def_from_label_map(label_map: Mapping[Any, int]) -> dict[str, str]:
    """``{"0": "background", "<value>": "<name>", ...}`` in value order (the first key of a shared value)."""
    out = {"0": "background"}
    for key, value in sorted(label_map.items(), key=lambda item: int(item[1])):
        out.setdefault(str(int(value)), str(key) if isinstance(key, (str, int)) else describe_key(key))
    return out


def _rows_for_label_map(tables: Sequence[tuple[str, list[dict[str, Any]]]],
                        label_map: Mapping[Any, int]) -> list[dict[str, Any]]:
    rows = []
    for key, value in sorted(label_map.items(), key=lambda item: int(item[1])):
        matched = [(name, entry) for name, table in tables for entry in table if segment_matches(entry, key)]
        rows.append({"value": int(value), "name": str(key) if isinstance(key, (str, int)) else describe_key(key),
                     "type": matched[0][1].get("type") if matched else None,
                     "modifier": matched[0][1].get("modifier") if matched else None,
                     "labels": sorted({str(entry["label"]) for _, entry in matched}),
                     "segment_numbers": sorted({int(entry["number"]) for _, entry in matched}),
                     "segs": len({name for name, _ in matched})})
    return rows


def _format(rows: Sequence[Mapping[str, Any]], total: int) -> str:
    lines = [f"{'value':>5}  {'name':<24} {'type (+ modifier)':<36} {'SEGs':>9}  segment numbers / labels"]
    for row in rows:
        kind = row["type"] or {}
        code = f"{kind.get('value', '-')} {kind.get('meaning', '')}".strip()
        if row["modifier"]:
            code += f" + {row['modifier']['meaning']}"
        lines.append(f"{row['value']:>5}  {row['name'][:24]:<24} {code[:36]:<36} {row['segs']:>4}/{total:<4}  "
                     f"{row['segment_numbers']} {row['labels']}")
    return "\n".join(lines)


def describe_labels(
    data: Any,
    label_map: "Mapping[Any, int] | None" = None,
    *,
    label_key: str = "label",
    show: bool = True,
) -> list[dict[str, Any]]:
    """The value of every structure of a dataset: the numbers to put in a bundle's ``channel_def``.

    Parameters
    ----------
    data
        A :class:`~monai_dicomseg.data.dataset.DicomSegDataset` (its own
        mapping), a datalist, or a folder (:func:`~monai_dicomseg.data.datalist.create_datalist`).
    label_map
        Describe this mapping instead of the derived vocabulary.
    show
        Print the table (value, name, type + modifier, SEGs holding it,
        segment numbers and labels found).

    Returns
    -------
    list of dict
        One row per value: ``value``, ``name``, ``type``, ``modifier``,
        ``labels``, ``segment_numbers``, ``segs``.
    """
    if isinstance(data, (str, os.PathLike)):
        from monai_dicomseg.data.datalist import create_datalist

        data = create_datalist(data, label_key=label_key)
    if label_map is None and getattr(data, "label_map", None) is not None:
        label_map = data.label_map
    label_key = getattr(data, "label_key", label_key)
    datalist = list(getattr(data, "data", data))
    tables = seg_tables(datalist, label_key, skip_unreadable=getattr(data, "on_error", "raise") == "skip")
    if label_map is None:
        rows = [dict(row) for row in build_vocabulary(datalist, label_key).structures]
    else:
        rows = _rows_for_label_map(tables, label_map)
    if show:
        print(_format(rows, len(tables)), file=sys.stdout)
    return rows
