"""Find the source series a SEG was made from, for loaders that get no image (``DicomSegReader``).

A SEG stores only the frames it segments (PS3.3 C.8.20: empty frames may be
omitted), so its own grid usually covers a part of the image. To return the
label on the image's full grid, a loader that is given only the SEG needs the
*geometry* of the referenced series (orientation, positions, spacing, size;
no pixels). This module finds it, torch-free, in one of these places (the
first that answers wins):

1. ``series_resolver``: a callable ``header Dataset -> series source or None``
   (a folder, a list of files, a :class:`~monai_dicomseg.dicomweb.DicomWebSeries`
   or a ``dicomweb+`` URI); None means "no answer" and the search goes on;
2. ``source_root``: every DICOM file under that folder (recursive);
3. beside the SEG: its folder and sub-folders (the layout
   :func:`~monai_dicomseg.data.datalist.create_datalist` pairs, e.g.
   ``case/seg.dcm`` + ``case/series/*.dcm``), at most :data:`BESIDE_MAX_FILES`
   files and :data:`BESIDE_MAX_DEPTH` folder levels; for a SEG given as a
   DICOMweb reference, the referenced series on the same server instead (one
   WADO-RS metadata request, no pixels).

A folder is matched like ``create_datalist`` pairs: the series named by the
SEG's ReferencedSeriesSequence (PS3.3 C.10.4), or, for a SEG without one, the
only image series sharing its FrameOfReferenceUID (PS3.3 C.7.4.1). Folder
scans read headers only (``stop_before_pixels``, a few tags) and are cached per
folder and process (:func:`clear_series_cache` forgets them); so is each
series' geometry.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset

from monai_dicomseg.enums import is_seg_sop_class
from monai_dicomseg.errors import DicomWebNotFoundError, GeometryError, InputError, InputTypeError
from monai_dicomseg.io.source_series import SourceSeries, load_source_geometry
from monai_dicomseg.io.source_volumes import VolumeSelector, seg_frame_references

__all__ = [
    "BESIDE_MAX_FILES", "BESIDE_MAX_DEPTH", "SeriesResolver", "SeriesIndex", "FoundSeries", "SeriesLookup",
    "scan_series", "clear_series_cache", "series_references", "match_series", "series_geometry",
    "find_source_series",
]

BESIDE_MAX_FILES = 2000
"""At most this many files are opened when searching beside a SEG (its folder and sub-folders)."""

BESIDE_MAX_DEPTH = 3
"""Sub-folder levels below the SEG's folder searched beside it (0: the SEG's folder only)."""

SeriesResolver = Callable[[Dataset], Any]
"""``header Dataset of the SEG -> series source`` (folder, file list, DicomWebSeries, ``dicomweb+`` URI) or None."""

_TAGS = ["SOPClassUID", "SeriesInstanceUID", "FrameOfReferenceUID"]
_LOCK = threading.Lock()
_SCANS: dict[tuple[str, int, "int | None", "int | None"], "SeriesIndex"] = {}
_GEOMETRIES: dict[Any, SourceSeries] = {}


@dataclass(frozen=True)
class SeriesIndex:
    """Image series found under a folder by :func:`scan_series`.

    Attributes
    ----------
    files
        SeriesInstanceUID -> paths of its image instances (SEG instances excluded).
    frames_of_reference
        SeriesInstanceUID -> FrameOfReferenceUID ('' if absent).
    scanned
        Number of files opened.
    truncated
        True when the scan stopped at its file or depth bound.
    """

    files: dict[str, tuple[str, ...]]
    frames_of_reference: dict[str, str]
    scanned: int
    truncated: bool


@dataclass(frozen=True)
class FoundSeries:
    """The source series of a SEG: its header-only geometry and where it was found."""

    series: SourceSeries
    where: str


@dataclass(frozen=True)
class SeriesLookup:
    """Result of :func:`find_source_series`: ``found`` or None, and the places searched (for messages)."""

    found: "FoundSeries | None"
    searched: tuple[str, ...]


def clear_series_cache() -> None:
    """Forget every cached folder scan and series geometry of this process."""
    with _LOCK:
        _SCANS.clear()
        _GEOMETRIES.clear()


def _walk(root: Path, max_depth: "int | None") -> Iterator[tuple[Path, bool]]:
    """``(file, False)`` for each file under ``root`` in sorted order; ``(folder, True)`` where depth stops."""
    for folder, dirs, files in os.walk(root):
        depth = len(Path(folder).relative_to(root).parts)
        dirs.sort()
        if max_depth is not None and depth >= max_depth:
            if dirs:
                yield Path(folder), True
            dirs[:] = []
        for name in sorted(files):
            yield Path(folder) / name, False


def _header(path: Path) -> "Dataset | None":
    """A few tags of ``path`` if it is a DICOM Part 10 file (preamble + ``DICM``), else None."""
    try:
        if not pydicom.misc.is_dicom(str(path)):
            return None
        return pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=_TAGS)
    except Exception:  # unreadable / truncated: not a series instance we can use
        return None


def _scan(root: Path, max_files: "int | None", max_depth: "int | None") -> SeriesIndex:
    files: dict[str, list[str]] = {}
    frames: dict[str, str] = {}
    scanned, truncated = 0, False
    for path, stopped in _walk(root, max_depth):
        if stopped:  # a sub-folder below max_depth is not searched
            truncated = True
            continue
        if max_files is not None and scanned >= max_files:
            truncated = True
            break
        scanned += 1
        ds = _header(path)
        if ds is None or is_seg_sop_class(ds.get("SOPClassUID")) or "SeriesInstanceUID" not in ds:
            continue
        uid = str(ds.SeriesInstanceUID)
        files.setdefault(uid, []).append(str(path))
        frames.setdefault(uid, str(ds.get("FrameOfReferenceUID", "") or ""))
    return SeriesIndex({k: tuple(v) for k, v in files.items()}, frames, scanned, truncated)


def scan_series(folder: "str | os.PathLike[str]", *, max_files: "int | None" = None,
                max_depth: "int | None" = None, refresh: bool = False) -> SeriesIndex:
    """Index the image series under ``folder`` (recursive, headers only), cached per process.

    Parameters
    ----------
    folder
        An existing folder.
    max_files
        Stop after opening this many files (None: no bound).
    max_depth
        Sub-folder levels to descend (None: all).
    refresh
        Scan again even if cached.

    Raises
    ------
    InputError
        If ``folder`` is not an existing folder.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"source_root must be an existing folder; {str(folder)!r} is not a directory")
    key = (os.path.realpath(root), root.stat().st_mtime_ns, max_files, max_depth)
    with _LOCK:
        cached = None if refresh else _SCANS.get(key)
    if cached is not None:
        return cached
    index = _scan(root, max_files, max_depth)
    with _LOCK:
        _SCANS[key] = index
    return index


def series_references(seg: Any) -> list[tuple["str | None", str]]:
    """``(StudyInstanceUID or None, SeriesInstanceUID)`` of each series the SEG references (PS3.3 C.10.4).

    ReferencedSeriesSequence items are of the SEG's own study;
    StudiesContainingOtherReferencedInstancesSequence items name theirs.
    """
    own = str(seg.get("StudyInstanceUID", "") or "") or None
    pairs = [(own, str(item.SeriesInstanceUID)) for item in seg.get("ReferencedSeriesSequence", [])
             if "SeriesInstanceUID" in item]
    for study in seg.get("StudiesContainingOtherReferencedInstancesSequence", []):
        study_uid = str(study.get("StudyInstanceUID", "") or "") or None
        pairs.extend((study_uid, str(item.SeriesInstanceUID)) for item in study.get("ReferencedSeriesSequence", [])
                     if "SeriesInstanceUID" in item)
    return list(dict.fromkeys(pairs))


def match_series(index: SeriesIndex, seg: Any) -> "str | None":
    """SeriesInstanceUID in ``index`` that ``seg`` belongs to, as ``create_datalist`` pairs them.

    The first series of the SEG's ReferencedSeriesSequence present in the
    index; for a SEG without one, the only series sharing its
    FrameOfReferenceUID (None when none or several do).
    """
    referenced = [series for _, series in series_references(seg)]
    if referenced:
        return next((uid for uid in referenced if uid in index.files), None)
    frame = str(seg.get("FrameOfReferenceUID", "") or "")
    same = [uid for uid, value in index.frames_of_reference.items() if frame and value == frame]
    return same[0] if len(same) == 1 else None


def _volume_key(volume: VolumeSelector) -> Any:
    """Hashable cache key of a volume selector."""
    if isinstance(volume, dict):
        return tuple(sorted((k, str(v)) for k, v in volume.items()))
    return volume


def _dicomweb_geometry(reference: Any, volume: VolumeSelector = None, irregular_slices: str = "error") -> SourceSeries:
    """Header-only geometry of a DICOMweb series: one WADO-RS metadata request (PS3.18 10.4), no pixels."""
    from monai_dicomseg.dicomweb.frames import header_from_metadata
    from monai_dicomseg.dicomweb.retrieve import as_reference, series_metadata

    items = series_metadata(as_reference(reference.series()))
    return load_source_geometry([header_from_metadata(item, per_frame=False) for item in items], volume=volume,
                                irregular_slices=irregular_slices)


def _source_key(source: Any) -> Any:
    from monai_dicomseg.dicomweb import parse_dicomweb

    web = parse_dicomweb(source)
    if web is not None:
        return ("dicomweb", web.url, web.study_uid, web.series_uid)
    if isinstance(source, (str, os.PathLike)):
        return ("path", os.path.realpath(source))
    if isinstance(source, (list, tuple)) and all(isinstance(p, (str, os.PathLike)) for p in source):
        return ("files", tuple(os.path.realpath(p) for p in source))
    return None  # datasets: not cached


def series_geometry(source: Any, prefer: "list[str] | tuple[str, ...]" = (),
                    volume: VolumeSelector = None, irregular_slices: str = "error") -> SourceSeries:
    """Header-only geometry (:func:`~monai_dicomseg.io.source_series.load_source_geometry`) of a series source.

    Parameters
    ----------
    source
        A folder, a list of files or datasets, a DicomWebSeries or a
        ``dicomweb+`` URI. A folder holding several image series (directly
        inside it) gives the first of ``prefer`` that it holds.
    prefer
        SeriesInstanceUIDs to choose from a folder holding several series.
    volume
        Which volume of a series holding several (stacks, phases, echoes):
        the lookups pass the SEG's
        :func:`~monai_dicomseg.io.source_volumes.seg_frame_references`, so a
        SEG lands on the volume whose frames it references.
    irregular_slices
        Gap policy of the series grid (``"error"``, ``"fill"``, ``"resample"``;
        :mod:`monai_dicomseg.geometry.slice_grid`).

    Raises
    ------
    InputError, GeometryError, DicomWebError
        As :func:`~monai_dicomseg.io.source_series.load_source_geometry` and
        the DICOMweb retrieval.
    """
    from monai_dicomseg.dicomweb import parse_dicomweb

    key = _source_key(source)
    cache_key = (key, tuple(prefer), _volume_key(volume), irregular_slices)
    with _LOCK:
        cached = None if key is None else _GEOMETRIES.get(cache_key)
    if cached is not None:
        return cached
    web = parse_dicomweb(source)
    if web is not None:
        series = _dicomweb_geometry(web, volume, irregular_slices)
    elif isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
        index = scan_series(source, max_depth=0)
        chosen = next((uid for uid in prefer if uid in index.files), None)
        series = load_source_geometry(list(index.files[chosen]) if chosen else source, volume=volume,
                                      irregular_slices=irregular_slices)
    else:
        series = load_source_geometry(source, volume=volume, irregular_slices=irregular_slices)
    if key is not None:
        with _LOCK:
            _GEOMETRIES[cache_key] = series
    return series


def _from_resolver(seg: Any, resolver: SeriesResolver, prefer: list[str],
                   irregular_slices: str = "error") -> "FoundSeries | None":
    if not callable(resolver):
        raise InputTypeError(f"series_resolver must be a callable (SEG header Dataset -> series source); "
                             f"got {type(resolver).__name__}")
    source = resolver(seg)
    if source is None:
        return None
    return FoundSeries(series_geometry(source, prefer, seg_frame_references(seg), irregular_slices),
                       f"series_resolver -> {_describe(source)}")


def _from_folder(seg: Any, folder: Path, *, bounded: bool,
                 irregular_slices: str = "error") -> "tuple[FoundSeries | None, str]":
    """Search ``folder``; returns ``(found or None, description of the search)``."""
    index = scan_series(folder, max_files=BESIDE_MAX_FILES if bounded else None,
                        max_depth=BESIDE_MAX_DEPTH if bounded else None)
    what = ("beside the SEG" if bounded else "under source_root") + f" in {str(folder)!r}"
    if index.truncated:
        what += f" (stopped at {BESIDE_MAX_FILES} files / {BESIDE_MAX_DEPTH} folder levels)"
    uid = match_series(index, seg)
    if uid is None:
        return None, what
    try:
        found = series_geometry(list(index.files[uid]), volume=seg_frame_references(seg),
                                irregular_slices=irregular_slices)
        return FoundSeries(found, what), what
    except (InputError, GeometryError) as error:  # found but not one regular volume: say so, do not guess
        return None, f"{what}: series {uid!r} found but its geometry is unusable ({error})"


def _describe(source: Any) -> str:
    uri = getattr(source, "uri", None)
    if isinstance(uri, str):
        return repr(uri)
    if isinstance(source, (list, tuple)) and source and isinstance(source[0], (str, os.PathLike)):
        return repr(str(source[0])) + (f" (+{len(source) - 1} files)" if len(source) > 1 else "")
    return repr(str(source)) if isinstance(source, (str, os.PathLike)) else f"<{type(source).__name__}>"


def _from_dicomweb(seg: Any, seg_source: Any, irregular_slices: str = "error") -> "tuple[FoundSeries | None, str]":
    """The referenced series on the server the SEG came from (a DICOMweb SEG only)."""
    from monai_dicomseg.dicomweb import DicomWebSeries, parse_dicomweb

    web = parse_dicomweb(seg_source)
    what = f"on the DICOMweb server {web.url!r} of the SEG" if web is not None else "on the SEG's DICOMweb server"
    for study, series in series_references(seg):
        if web is None:
            break
        candidate = DicomWebSeries(web.url, study or web.study_uid, series, server=web.server)
        try:
            return FoundSeries(series_geometry(candidate, volume=seg_frame_references(seg),
                                               irregular_slices=irregular_slices),
                               f"{what} ({candidate.series_url})"), what
        except DicomWebNotFoundError:
            continue
    return None, what


def find_source_series(seg: Any, seg_source: Any = None, *, source_root: "str | os.PathLike[str] | None" = None,
                       series_resolver: "SeriesResolver | None" = None, beside: bool = True,
                       irregular_slices: str = "error") -> SeriesLookup:
    """Find the geometry of the series ``seg`` was made from (see the module docstring for the order).

    Parameters
    ----------
    seg
        The SEG (a pydicom Dataset / Segmentation; its header is what is read).
    seg_source
        Where the SEG came from: a path (searched beside) or a DICOMweb
        reference (its server is asked); anything else: not searched beside.
    source_root, series_resolver
        Explicit places (see the module docstring).
    beside
        Search beside the SEG / on its DICOMweb server.
    irregular_slices
        Gap policy of the found series' grid (:func:`series_geometry`).

    Returns
    -------
    SeriesLookup
        ``found`` is None when no place had the series; ``searched`` says where
        it was looked for.

    Raises
    ------
    InputError, GeometryError, DicomWebError
        A series given by ``series_resolver`` cannot be read, a found series
        is not one regular volume, or ``source_root`` is not a folder.
    """
    from monai_dicomseg.dicomweb import parse_dicomweb

    prefer = [series for _, series in series_references(seg)]
    searched: list[str] = []
    if series_resolver is not None:
        found = _from_resolver(seg, series_resolver, prefer, irregular_slices)
        if found is not None:
            return SeriesLookup(found, (found.where,))
        searched.append("series_resolver (returned None)")
    places: list[Callable[[], tuple["FoundSeries | None", str]]] = []
    if source_root is not None:
        places.append(lambda: _from_folder(seg, Path(source_root), bounded=False, irregular_slices=irregular_slices))
    if beside and parse_dicomweb(seg_source) is not None:
        places.append(lambda: _from_dicomweb(seg, seg_source, irregular_slices))
    elif beside and isinstance(seg_source, (str, os.PathLike)) and os.path.isfile(seg_source):
        places.append(lambda: _from_folder(seg, Path(os.path.abspath(seg_source)).parent, bounded=True,
                                           irregular_slices=irregular_slices))
    for place in places:
        found, what = place()
        searched.append(what)
        if found is not None:
            return SeriesLookup(found, tuple(searched))
    return SeriesLookup(None, tuple(searched))
