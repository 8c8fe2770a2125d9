"""WADO-RS retrieval into the local cache: metadata first, then only the missing instances.

:func:`materialize` turns a :class:`~monai_dicomseg.dicomweb.reference.DicomWebSeries`
(or its URI) into local Part 10 file paths that the file-based loaders read:

1. the cached manifest of the series, when every instance it lists is cached
   and verified, answers with **no request at all** (second epoch);
2. otherwise, under the series lock, ``GET .../series/<uid>/metadata``
   (PS3.18 10.4, JSON) gives the SOP Instance UIDs and SOP classes; a SEG was
   asked for and the series holds none → :class:`~monai_dicomseg.errors.DicomWebResponseError`
   before any pixel is downloaded;
3. the missing instances are retrieved (the whole series in one request when
   none is cached, else one request per missing instance, ``max_workers`` at
   a time), checked (the UID
   asked for; native Pixel Data not shorter than Rows x Columns x Frames
   needs: a truncated body is an error, not a short volume) and stored.

This is the whole-instance path. A SEG loaded with a segment selection goes
through :func:`~monai_dicomseg.dicomweb.frames.materialize_segments` first: for a
BINARY or FRACTIONAL SEG it retrieves only the frames of the selected segments
(``.../instances/<uid>/frames/<list>``, PS3.18 10.4.1.1.3) into a partial SEG
cached beside the instance, and comes back here for the whole instance when
that is cached, needed (LABELMAP, every segment selected) or when the server
does not serve frames.

:func:`prefetch` materializes many series (a datalist, before training) with at
most ``max_workers`` requests in flight (issue 27); its result equals the
sequential ``[materialize(s) for s in sources]``.
"""
from __future__ import annotations

import io
import os
import threading
from collections.abc import Sequence
from typing import Any

from monai_dicomseg.codec.transfer_syntax import Storage, lookup
from monai_dicomseg.dicomweb.cache import InstanceCache
from monai_dicomseg.dicomweb.concurrency import DEFAULT_MAX_WORKERS, bounded_map, check_max_workers
from monai_dicomseg.dicomweb.reference import DicomWebSeries
from monai_dicomseg.dicomweb.session import DicomWebServer, server_for, translate_errors
from monai_dicomseg.enums import SEG_SOP_CLASS_UIDS
from monai_dicomseg.errors import DicomWebNotFoundError, DicomWebResponseError, InputError, InputTypeError

__all__ = ["materialize", "prefetch", "cache_for", "as_reference", "manifest_from_metadata", "series_metadata", "SEG_SOP_CLASSES",
           "json_value"]

SEG_SOP_CLASSES = SEG_SOP_CLASS_UIDS  # declared once in enums.SegSOPClass
"""Segmentation Storage and Label Map Segmentation Storage (PS3.4 B.5)."""

_CACHES: dict[Any, InstanceCache] = {}
_LOCK = threading.Lock()


def json_value(item: dict[str, Any], tag: str, default: Any = None) -> Any:
    """First value of ``tag`` (``"GGGGEEEE"``) in a DICOM JSON object (PS3.18 F.2), else ``default``."""
    element = item.get(tag) or {}
    values = element.get("Value") or []
    return values[0] if values else default


def cache_for(server: DicomWebServer) -> InstanceCache:
    """The :class:`~monai_dicomseg.dicomweb.cache.InstanceCache` of ``server`` (one object per process)."""
    key = (os.getpid(), server.cache_dir, server.cache_max_bytes)
    with _LOCK:
        cache = _CACHES.get(key)
        if cache is None:
            cache = _CACHES[key] = InstanceCache(server.cache_dir, server.cache_max_bytes)
    return cache


def as_reference(source: Any, server: "DicomWebServer | None" = None) -> DicomWebSeries:
    """``source`` (a :class:`DicomWebSeries` or ``dicomweb+`` URI) as a reference bound to its server."""
    if isinstance(source, str):
        source = DicomWebSeries.from_uri(source)
    if not isinstance(source, DicomWebSeries):
        raise InputTypeError(f"a DICOMweb source must be a DicomWebSeries or a 'dicomweb+' URI; "
                             f"got {type(source).__name__}")
    return source.with_server(server_for(source.url, server or source.server))


def _cached_paths(cache: InstanceCache, manifest: "dict[str, Any] | None",
                  wanted: "Sequence[str] | None") -> "list[str] | None":
    if not manifest:
        return None
    uids = list(wanted) if wanted else [item["uid"] for item in manifest["instances"]]
    paths = []
    for uid in uids:
        path = cache.get(uid)
        if path is None:
            return None
        paths.append(path)
    return paths


def _check_kind(ref: DicomWebSeries, manifest: dict[str, Any], wanted: Sequence[str], expect_seg: "bool | None") -> None:
    if expect_seg is None:
        return
    classes = {item["uid"]: item.get("sop_class", "") for item in manifest["instances"]}
    if expect_seg:
        wrong = [uid for uid in wanted if classes.get(uid) not in SEG_SOP_CLASSES]
        if wrong:
            raise DicomWebResponseError(
                f"the DICOMweb series {ref.series_url} (SeriesInstanceUID {ref.series_uid}) is not a Segmentation: "
                f"Modality {manifest.get('modality')!r}, SOPClassUID {classes.get(wrong[0])!r} "
                f"(expected one of {sorted(SEG_SOP_CLASSES)})")


def _server(ref: DicomWebSeries) -> Any:
    """The server of ``ref`` (a check, not an assert: asserts vanish under python -O)."""
    if ref.server is None:
        raise InputError(f"the DICOMweb reference {ref.series_url!r} has no server; pass server=")
    return ref.server


def series_metadata(ref: DicomWebSeries) -> list[dict[str, Any]]:
    """``GET .../series/<uid>/metadata``: one DICOM JSON object per instance (PS3.18 10.4, F.2).

    Raises
    ------
    DicomWebNotFoundError
        No instance in the series.
    """
    server = _server(ref)
    url = f"{ref.series_url}/metadata"
    with translate_errors(server, url, ref.series_uid, "retrieve series metadata"):
        items = server.client().retrieve_series_metadata(ref.study_uid, ref.series_uid)
    if not items:
        raise DicomWebNotFoundError(
            f"the DICOMweb server has no instance in series {ref.series_url} (SeriesInstanceUID {ref.series_uid})")
    return items


def _fetch_manifest(ref: DicomWebSeries) -> dict[str, Any]:
    return manifest_from_metadata(ref, series_metadata(ref))


def manifest_from_metadata(ref: DicomWebSeries, items: list[dict[str, Any]]) -> dict[str, Any]:
    """The cache manifest of a series from its WADO-RS metadata (DICOM JSON, PS3.18 F.2).

    Per instance: SOP Instance UID, SOP Class UID, the last top-level tag and
    whether Pixel Data is listed (what a complete retrieved instance must hold).
    """
    instances, modalities = [], set()
    for item in items:
        uid = json_value(item, "00080018")
        if not uid:
            raise DicomWebResponseError(f"series metadata without SOPInstanceUID from {ref.series_url}/metadata "
                                        f"(SeriesInstanceUID {ref.series_uid})")
        tags = [key.upper() for key in item if len(key) == 8]
        instances.append({"uid": str(uid), "sop_class": str(json_value(item, "00080016", "")),
                          "last_tag": max(tags) if tags else "", "pixels": "7FE00010" in tags})
        modalities.add(str(json_value(item, "00080060", "")))
    instances.sort(key=lambda i: str(i["uid"]))
    return {"url": ref.url, "study": ref.study_uid, "series": ref.series_uid,
            "modality": ",".join(sorted(modalities)), "instances": instances}


def _part10_bytes(dataset: Any) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _check_complete(dataset: Any, where: str, uid: str, expected: "dict[str, Any] | None" = None) -> None:
    """The instance must be whole: every top-level element up to the last one the metadata
    listed, and native Pixel Data as long as its header says (a truncated body is not a short image)."""
    if expected:
        last = expected.get("last_tag") or ""
        missing = [name for name, tag in (("the last element listed by the metadata", last),
                                          ("Pixel Data", "7FE00010" if expected.get("pixels") else ""))
                   if tag and int(tag, 16) not in dataset]
        if missing:
            raise DicomWebResponseError(
                f"truncated response from the DICOMweb server: {where} (SOPInstanceUID {uid}): "
                f"{missing[0]} is missing")
    if "PixelData" not in dataset or getattr(dataset.file_meta, "TransferSyntaxUID", None) is None:
        return
    row = lookup(dataset.file_meta.TransferSyntaxUID)
    if row is None or row.storage is Storage.ENCAPSULATED:
        return  # frames in fragments: their length is the decoder's to check (native and deflated: checked here)
    try:
        samples = int(dataset.Rows) * int(dataset.Columns) * int(dataset.get("SamplesPerPixel", 1)) \
            * int(dataset.get("NumberOfFrames", 1) or 1)
        bits = int(dataset.BitsAllocated)
    except (AttributeError, TypeError, ValueError):
        return
    needed = (samples * bits + 7) // 8
    if len(dataset.PixelData) < needed:
        raise DicomWebResponseError(
            f"truncated response from the DICOMweb server: {where} (SOPInstanceUID {uid}): Pixel Data has "
            f"{len(dataset.PixelData)} bytes, Rows x Columns x frames x BitsAllocated needs {needed}")


def _retrieve(ref: DicomWebSeries, cache: InstanceCache, missing: list[str], whole_series: bool,
              expected: dict[str, Any], max_workers: int = 1) -> None:
    server = _server(ref)
    if whole_series:
        url = ref.series_url
        with translate_errors(server, url, ref.series_uid, "retrieve series"):
            datasets = server.client().retrieve_series(ref.study_uid, ref.series_uid)
        batches = [(url, ref.series_uid, datasets)]
    else:
        def instance(uid: str) -> tuple[str, str, list[Any]]:
            url = f"{ref.series_url}/instances/{uid}"
            with translate_errors(server, url, uid, "retrieve instance"):
                return url, uid, [server.client().retrieve_instance(ref.study_uid, ref.series_uid, uid)]

        batches = bounded_map(instance, missing, max_workers)
    wanted = set(missing)
    got: set[str] = set()
    for url, _uid, datasets in batches:
        for dataset in datasets:
            sop = str(getattr(dataset, "SOPInstanceUID", ""))
            if sop not in wanted:
                continue
            _check_complete(dataset, url, sop, expected.get(sop))
            with translate_errors(server, url, sop, "encode retrieved instance"):
                data = _part10_bytes(dataset)
            cache.put(sop, data)
            got.add(sop)
    lost = sorted(wanted - got)
    if lost:
        raise DicomWebResponseError(
            f"truncated or incomplete response from the DICOMweb server: {ref.series_url} returned "
            f"{len(got)} of {len(wanted)} instances; missing SOPInstanceUID {lost[0]}"
            + (f" and {len(lost) - 1} more" if len(lost) > 1 else ""))


def materialize(
    source: Any,
    *,
    server: "DicomWebServer | None" = None,
    cache: "InstanceCache | None" = None,
    expect_seg: "bool | None" = None,
    refresh: bool = False,
    max_workers: int = 1,
) -> list[str]:
    """Local, verified Part 10 paths of a DICOMweb series (or of its one named instance).

    Parameters
    ----------
    source
        :class:`DicomWebSeries` or ``dicomweb+`` URI.
    server
        Connection settings (default: ``source.server``, the registered one, or from the environment).
    cache
        Default: the cache of ``server``.
    expect_seg
        True: the instances must be Segmentations (else
        :class:`~monai_dicomseg.errors.DicomWebResponseError`, before pixels are
        retrieved). None: no check.
    refresh
        Ask the server again even when the manifest is cached.
    max_workers
        Instance requests in flight at once when instances are retrieved one
        by one (some of the series already cached); 1 (default): one at a time.

    Returns
    -------
    list of str
        Cached file paths, sorted by SOP Instance UID (spatial sorting is the loader's job).

    Raises
    ------
    DicomWebConnectionError, DicomWebAuthError, DicomWebNotFoundError, DicomWebResponseError, DicomWebError
        Named after the URL (redacted) and the UID.
    """
    check_max_workers(max_workers)
    ref = as_reference(source, server)
    cache = cache if cache is not None else cache_for(_server(ref))
    wanted = [ref.instance_uid] if ref.instance_uid else None
    manifest = None if refresh else cache.manifest(ref.series_uid)
    paths = _cached_paths(cache, manifest, wanted)
    if paths is not None and manifest is not None:
        _check_kind(ref, manifest, wanted or [i["uid"] for i in manifest["instances"]], expect_seg)
        return paths
    with cache.lock(ref.series_uid):
        manifest = None if refresh else cache.manifest(ref.series_uid)  # another worker may have fetched it
        paths = _cached_paths(cache, manifest, wanted)
        if paths is not None and manifest is not None:
            _check_kind(ref, manifest, wanted or [i["uid"] for i in manifest["instances"]], expect_seg)
            return paths
        manifest = _fetch_manifest(ref)
        uids = [item["uid"] for item in manifest["instances"]]
        if wanted and wanted[0] not in uids:
            raise DicomWebNotFoundError(
                f"instance {ref.instance_uid} is not in the DICOMweb series {ref.series_url} "
                f"(SOPInstanceUID {ref.instance_uid})")
        selected = wanted or uids
        _check_kind(ref, manifest, selected, expect_seg)
        missing = [uid for uid in selected if cache.get(uid) is None]
        if missing:
            _retrieve(ref, cache, missing, whole_series=len(missing) == len(uids) and len(uids) > 1,
                      expected={item["uid"]: item for item in manifest["instances"]}, max_workers=max_workers)
        cache.put_manifest(ref.series_uid, manifest)
        paths = []
        for uid in selected:
            path = cache.get(uid)
            if path is None:  # pragma: no cover - evicted or corrupted between put and get
                raise InputError(f"the DICOMweb cache {cache.root} lost SOPInstanceUID {uid} right after storing it; "
                                 "raise cache_max_bytes")
            paths.append(path)
    cache.evict(keep=selected)
    return paths


def prefetch(
    sources: Sequence[Any],
    *,
    server: "DicomWebServer | None" = None,
    expect_seg: "bool | None" = None,
    max_workers: int = DEFAULT_MAX_WORKERS,
) -> list[list[str]]:
    """Materialize many series into the cache with at most ``max_workers`` requests in flight.

    Parameters
    ----------
    sources
        :class:`DicomWebSeries` or ``dicomweb+`` URIs (e.g. every ``image`` and
        ``label`` of a datalist). The same series or instance given twice is
        retrieved once.
    server, expect_seg
        As in :func:`materialize`.
    max_workers
        Series materialized at once; each makes its requests one after another,
        so this bounds the requests in flight.

    Returns
    -------
    list of list of str
        ``[materialize(s) for s in sources]``: the same paths, in the order of ``sources``.

    Raises
    ------
    DicomWebError
        (and subclasses) of the first source, in order, that fails.
    """
    check_max_workers(max_workers)
    references = [as_reference(source, server) for source in sources]
    unique = list(dict.fromkeys(ref.uri for ref in references))
    by_uri = {ref.uri: ref for ref in references}
    paths = dict(zip(unique, bounded_map(
        lambda uri: materialize(by_uri[uri], expect_seg=expect_seg), unique, max_workers)))
    return [list(paths[ref.uri]) for ref in references]
