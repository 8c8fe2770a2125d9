"""``create_datalist``: pair SEG files with their source series in one header-only pass.

Every file under ``root`` is opened once with
``pydicom.dcmread(stop_before_pixels=True, specific_tags=...)``. Image
instances are grouped by SeriesInstanceUID; each SEG is paired with the series
named in its ReferencedSeriesSequence (PS3.3 C.10.4 Common Instance Reference
Module), or, when it has none, with the only image series sharing its
FrameOfReferenceUID (PS3.3 C.7.4.1). The result is a MONAI-style list of dicts
``{"image": <folder or spatially sorted file list>, "label": <SEG path>, ...}``.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from monai_dicomseg.enums import SEG_SOP_CLASS_UIDS
from monai_dicomseg.errors import DicomSegError, InputError
from monai_dicomseg.io.source_volumes import VOLUME_ITEM_KEY, selector_for_seg
from monai_dicomseg.options import check_options

__all__ = ["create_datalist", "scan_dicom_tree", "SeriesEntry", "SegEntry"]

_TAGS = [
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID",
    "PatientID", "Modality", "ImagePositionPatient", "ImageOrientationPatient", "InstanceNumber",
    "ReferencedSeriesSequence",
]


@dataclass
class SeriesEntry:
    """Files of one image series found by :func:`scan_dicom_tree`."""

    series_instance_uid: str
    frame_of_reference_uid: str
    study_instance_uid: str
    patient_id: str
    files: list[str] = field(default_factory=list)
    positions: list[Any] = field(default_factory=list)
    orientation: Any = None


@dataclass
class SegEntry:
    """One SEG file found by :func:`scan_dicom_tree`."""

    path: str
    series_instance_uid: str
    frame_of_reference_uid: str
    referenced_series: list[str]


def _walk(root: Path, recursive: bool) -> Iterable[Path]:
    if recursive:
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                yield Path(folder) / name
    else:
        yield from sorted(p for p in root.iterdir() if p.is_file())


def scan_dicom_tree(root: "str | os.PathLike[str]", recursive: bool = True) -> tuple[
        dict[str, SeriesEntry], list[SegEntry], list[dict[str, str]]]:
    """Read the headers of every DICOM file under ``root`` once.

    Returns
    -------
    tuple
        ``(series by SeriesInstanceUID, SEG entries, unreadable)`` where
        ``unreadable`` lists ``{"path", "kind": "unreadable", "reason"}`` for
        ``.dcm`` files pydicom cannot parse (other non-DICOM files are ignored).
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"root must be an existing folder; got {str(root)!r}")
    series: dict[str, SeriesEntry] = {}
    segs: list[SegEntry] = []
    bad: list[dict[str, str]] = []
    for path in _walk(root, recursive):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
        except Exception as error:  # InvalidDicomError, truncated files, ...
            if path.suffix.lower() in (".dcm", ".dicom"):
                bad.append({"path": str(path), "kind": "unreadable", "reason": str(error)})
            continue
        sop_class = str(getattr(ds, "SOPClassUID", "") or getattr(
            getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", ""))
        uid = str(getattr(ds, "SeriesInstanceUID", ""))
        frame_of_reference = str(getattr(ds, "FrameOfReferenceUID", "") or "")
        if sop_class in SEG_SOP_CLASS_UIDS:
            referenced = [str(item.SeriesInstanceUID) for item in getattr(ds, "ReferencedSeriesSequence", [])
                          if "SeriesInstanceUID" in item]
            segs.append(SegEntry(str(path), uid, frame_of_reference, referenced))
            continue
        if not uid:
            bad.append({"path": str(path), "kind": "unreadable", "reason": "no SeriesInstanceUID"})
            continue
        entry = series.setdefault(uid, SeriesEntry(
            uid, frame_of_reference, str(getattr(ds, "StudyInstanceUID", "")), str(getattr(ds, "PatientID", ""))))
        entry.files.append(str(path))
        entry.positions.append(getattr(ds, "ImagePositionPatient", None))
        if entry.orientation is None:
            entry.orientation = getattr(ds, "ImageOrientationPatient", None)
    return series, segs, bad


def _sorted_files(entry: SeriesEntry) -> list[str]:
    """Files of a series sorted along the slice normal (by name if positions are missing)."""
    if entry.orientation is None or any(p is None for p in entry.positions):
        return sorted(entry.files)
    from monai_dicomseg.geometry.sorting import get_plane_sort_index

    order = get_plane_sort_index(np.asarray(entry.positions, dtype=float), [float(v) for v in entry.orientation])
    return [entry.files[i] for i in order]


def _volume_of(seg_path: str, entry: SeriesEntry) -> str:
    """Selector JSON of the volume a SEG references when its series may hold several, else ''.

    A series may hold several volumes when some instance has no top-level
    ImagePositionPatient (multi-frame) or two instances share a position
    (stacks, phases, echoes); only then are the full headers read.
    """
    if any(p is None for p in entry.positions) or len(
            {tuple(round(float(v), 3) for v in p) for p in entry.positions}) < len(entry.positions):
        return selector_for_seg(seg_path, entry.files)
    return ""


def _image_value(entry: SeriesEntry, dicom_files_per_folder: dict[str, int], image_as: str) -> Any:
    folders = {os.path.dirname(f) for f in entry.files}
    if image_as == "folder" and len(folders) == 1:
        folder = folders.pop()
        if dicom_files_per_folder.get(folder, 0) == len(entry.files):
            return folder
    return _sorted_files(entry)


def create_datalist(
    root: "str | os.PathLike[str]",
    *,
    image_key: str = "image",
    label_key: str = "label",
    image_as: str = "folder",
    recursive: bool = True,
    return_unpaired: bool = False,
    warn_unpaired: bool = True,
    **options: Any,
) -> "list[dict[str, Any]] | tuple[list[dict[str, Any]], list[dict[str, str]]]":
    """Pair every SEG under ``root`` with its source series.

    Parameters
    ----------
    root
        Folder tree to scan (headers only).
    image_key, label_key
        Keys of the image and SEG entries of each dict.
    image_as
        ``"folder"``: the series folder when it holds exactly that series and
        nothing else (what MONAI's readers expect), else the sorted file list;
        ``"files"``: always the file list, sorted spatially.
    recursive
        Descend into sub-folders.
    return_unpaired
        Also return the list of problems.
    warn_unpaired
        Warn (one warning) about SEGs without a source and unreadable files.

    Returns
    -------
    list of dict or tuple
        Dicts sorted by SEG path with ``image_key``, ``label_key``,
        ``series_instance_uid`` (source), ``seg_series_instance_uid``,
        ``frame_of_reference_uid``, ``study_instance_uid``, ``patient_id`` and
        ``paired_by`` (``"ReferencedSeriesSequence"`` or
        ``"FrameOfReferenceUID"``) and ``volume``: for a series holding
        several volumes (stacks, phases, echoes; multi-frame instances), the
        JSON selector of the volume the SEG references (read by
        ``LoadDicomSeriesd``), else ''. A SEG whose references pick no single
        volume is reported unpaired. With ``return_unpaired``, also a list of
        ``{"path", "kind", "reason"}`` with kind ``"seg"`` (no source found),
        ``"series"`` (image series no SEG refers to) or ``"unreadable"``.

    Raises
    ------
    InputError
        ``root`` is not a folder, bad ``image_as``.
    TypeError
        (:class:`~monai_dicomseg.errors.InputTypeError`) for an unknown
        keyword option, naming the closest valid one.
    """
    check_options(options, ("image_key", "label_key", "image_as", "recursive", "return_unpaired",
                            "warn_unpaired"), "create_datalist")
    if image_as not in ("folder", "files"):
        raise InputError(f"image_as must be 'folder' or 'files'; got {image_as!r}")
    series, segs, unpaired = scan_dicom_tree(root, recursive)
    per_folder: dict[str, int] = {}
    for entry in series.values():
        for f in entry.files:
            per_folder[os.path.dirname(f)] = per_folder.get(os.path.dirname(f), 0) + 1
    for seg in segs:
        per_folder[os.path.dirname(seg.path)] = per_folder.get(os.path.dirname(seg.path), 0) + 1
    used: set[str] = set()
    datalist = []
    for seg in sorted(segs, key=lambda s: s.path):
        source, how = None, ""
        found = [uid for uid in seg.referenced_series if uid in series]
        if found:
            source, how = series[found[0]], "ReferencedSeriesSequence"
        elif seg.referenced_series:
            unpaired.append({"path": seg.path, "kind": "seg",
                             "reason": f"referenced series {seg.referenced_series} not found under root"})
            continue
        else:
            same = [s for s in series.values() if seg.frame_of_reference_uid
                    and s.frame_of_reference_uid == seg.frame_of_reference_uid]
            if len(same) == 1:
                source, how = same[0], "FrameOfReferenceUID"
            else:
                unpaired.append({"path": seg.path, "kind": "seg", "reason": (
                    f"no ReferencedSeriesSequence and {len(same)} series share FrameOfReferenceUID "
                    f"{seg.frame_of_reference_uid!r}")})
                continue
        try:  # the volume the SEG references, where the series may hold several (io/source_volumes.py)
            volume = _volume_of(seg.path, source)
        except DicomSegError as error:
            unpaired.append({"path": seg.path, "kind": "seg", "reason": str(error)})
            continue
        used.add(source.series_instance_uid)
        datalist.append({
            image_key: _image_value(source, per_folder, image_as),
            label_key: seg.path,
            "series_instance_uid": source.series_instance_uid,
            "seg_series_instance_uid": seg.series_instance_uid,
            "frame_of_reference_uid": source.frame_of_reference_uid,
            "study_instance_uid": source.study_instance_uid,
            "patient_id": source.patient_id,
            "paired_by": how,
            VOLUME_ITEM_KEY: volume,
        })
    problems = [u for u in unpaired if u["kind"] != "series"]
    for uid in sorted(set(series) - used):
        unpaired.append({"path": os.path.dirname(series[uid].files[0]), "kind": "series",
                         "reason": f"no SEG refers to series {uid}"})
    if problems and warn_unpaired:
        warnings.warn(
            f"create_datalist: {len(problems)} file(s) not paired: "
            + "; ".join(f"{p['path']} ({p['reason']})" for p in problems[:5]),
            stacklevel=2,
        )
    return (datalist, unpaired) if return_unpaired else datalist
