"""``create_datalist_from_server``: QIDO-RS search for SEG series, each paired with its image series.

The server-side sibling of :func:`monai_dicomseg.data.datalist.create_datalist`,
returning the same dicts, with ``dicomweb+`` URIs (or
:class:`~monai_dicomseg.dicomweb.reference.DicomWebSeries`) where the folder
version has paths:

1. ``GET /series?Modality=SEG`` (PS3.18 10.6; optional StudyInstanceUID /
   PatientID filters);
2. for each SEG series, its metadata (one request; it is also stored as the
   series' cache manifest): every SEG instance, its FrameOfReferenceUID and
   ReferencedSeriesSequence (PS3.3 C.10.4);
3. the image series of each study are listed once; a SEG is paired with the
   series its ReferencedSeriesSequence names, or, without one, with the only
   image series of its study sharing its FrameOfReferenceUID (PS3.3 C.7.4.1).

One dict per SEG instance; nothing but metadata is downloaded. The requests
of steps 2 and 3 run ``max_workers`` at a time
(:func:`~monai_dicomseg.dicomweb.concurrency.bounded_map`, each with the
server's retries and backoff); the datalist, the unpaired list and the set of
requests made are those of the sequential walk (``max_workers=1``).
"""
from __future__ import annotations

import warnings
from typing import Any

from monai_dicomseg.dicomweb.concurrency import DEFAULT_MAX_WORKERS, bounded_map, check_max_workers
from monai_dicomseg.dicomweb.reference import DicomWebSeries
from monai_dicomseg.dicomweb.retrieve import SEG_SOP_CLASSES, cache_for, json_value, manifest_from_metadata
from monai_dicomseg.dicomweb.session import DicomWebServer, register_server, server_for, translate_errors
from monai_dicomseg.errors import InputTypeError

__all__ = ["create_datalist_from_server"]

_STUDY, _SERIES, _SOP, _CLASS, _MODALITY, _FOR, _PATIENT, _REFERENCED = (
    "0020000D", "0020000E", "00080018", "00080016", "00080060", "00200052", "00100020", "00081115")


def _search_series(server: DicomWebServer, study_uid: "str | None", filters: dict[str, Any]) -> list[dict]:
    url = f"{server.url}/studies/{study_uid}/series" if study_uid else f"{server.url}/series"
    with translate_errors(server, url, study_uid or "(all studies)", "search for series"):
        return list(server.client().search_for_series(
            study_instance_uid=study_uid, search_filters=filters or None, get_remaining=True) or [])


def _metadata(server: DicomWebServer, study_uid: str, series_uid: str) -> list[dict]:
    url = f"{server.url}/studies/{study_uid}/series/{series_uid}/metadata"
    with translate_errors(server, url, series_uid, "retrieve series metadata"):
        return list(server.client().retrieve_series_metadata(study_uid, series_uid) or [])


def _image_series(found: list[dict]) -> dict[str, dict]:
    """``SeriesInstanceUID -> QIDO item`` of the non-SEG series of a study."""
    return {str(json_value(s, _SERIES)): s for s in found
            if str(json_value(s, _MODALITY, "")) != "SEG" and json_value(s, _SERIES)}


def _referenced_series(item: dict) -> list[str]:
    sequence = (item.get(_REFERENCED) or {}).get("Value") or []
    return [str(json_value(entry, _SERIES)) for entry in sequence if json_value(entry, _SERIES)]


def create_datalist_from_server(
    server: "DicomWebServer | str",
    *,
    study_uid: "str | None" = None,
    patient_id: "str | None" = None,
    image_key: str = "image",
    label_key: str = "label",
    as_uri: bool = True,
    register: bool = True,
    return_unpaired: bool = False,
    warn_unpaired: bool = True,
    max_workers: int = DEFAULT_MAX_WORKERS,
) -> "list[dict[str, Any]] | tuple[list[dict[str, Any]], list[dict[str, str]]]":
    """Pair every SEG on a DICOMweb server with its image series.

    Parameters
    ----------
    server
        :class:`~monai_dicomseg.dicomweb.session.DicomWebServer` or a service root URL.
    study_uid, patient_id
        Optional QIDO-RS filters (StudyInstanceUID, PatientID).
    image_key, label_key
        Keys of the image and SEG entries.
    as_uri
        True (default): ``dicomweb+`` URI strings (JSON-serialisable, collate
        in a ``DataLoader``); False: :class:`DicomWebSeries` bound to ``server``.
    register
        Register ``server`` (:func:`~monai_dicomseg.dicomweb.session.register_server`)
        so the URIs resolve with its credentials in this process and in forked workers.
    return_unpaired, warn_unpaired
        As in :func:`~monai_dicomseg.data.datalist.create_datalist`.
    max_workers
        QIDO-RS/WADO-RS metadata requests in flight at once (default
        :data:`~monai_dicomseg.dicomweb.concurrency.DEFAULT_MAX_WORKERS`; 1:
        one at a time). The result does not depend on it.

    Returns
    -------
    list of dict or tuple
        Dicts with ``image_key`` (the image series), ``label_key`` (the SEG
        instance), ``series_instance_uid``, ``seg_series_instance_uid``,
        ``frame_of_reference_uid``, ``study_instance_uid``, ``patient_id`` and
        ``paired_by``; sorted by study, SEG series and SEG instance UID. With
        ``return_unpaired``, also ``{"path", "kind", "reason"}`` problems
        (``"path"`` is a URI).

    Raises
    ------
    DicomWebError
        (and subclasses) when the server cannot be queried.
    InputError, InputTypeError
        ``max_workers`` not an int >= 1.
    """
    # long because: the QIDO-RS walk (SEG series -> referenced image series -> pairing) uses two closures over one
    #   per-call cache; the searches and reference parsing are helpers
    if isinstance(server, str):
        server = server_for(server)
    if not isinstance(server, DicomWebServer):
        raise InputTypeError(f"server must be a DicomWebServer or a service root URL; got {type(server).__name__}")
    check_max_workers(max_workers)
    if register:
        register_server(server)
    filters: dict[str, Any] = {"Modality": "SEG"}
    if patient_id:
        filters["PatientID"] = patient_id
    cache = cache_for(server)

    def ref(study: str, series: str, instance: "str | None" = None) -> Any:
        item = DicomWebSeries(server.url, study, series, instance, server=None if as_uri else server)
        return item.uri if as_uri else item

    seg_series = sorted({(str(json_value(s, _STUDY)), str(json_value(s, _SERIES)))
                         for s in _search_series(server, study_uid, filters)})
    metadata = bounded_map(lambda key: _metadata(server, *key), seg_series, max_workers)
    study_uids = sorted({study for study, _ in seg_series})
    studies = {study: _image_series(found) for study, found in zip(
        study_uids, bounded_map(lambda study: _search_series(server, study, {}), study_uids, max_workers))}
    frames_of_reference: dict[tuple[str, str], str] = {}

    def frame_of_reference_of(study: str, uid: str) -> str:
        if (study, uid) not in frames_of_reference:
            frames_of_reference[study, uid] = str(json_value(
                (_metadata(server, study, uid) or [{}])[0], _FOR, "") or "")
        return frames_of_reference[study, uid]

    datalist: list[dict[str, Any]] = []
    unpaired: list[dict[str, str]] = []
    used: set[tuple[str, str]] = set()
    for (study, series), items in zip(seg_series, metadata):
        cache.put_manifest(series, manifest_from_metadata(DicomWebSeries(server.url, study, series), items))
        candidates = studies[study]
        for item in sorted(items, key=lambda i: str(json_value(i, _SOP))):
            if str(json_value(item, _CLASS, "")) not in SEG_SOP_CLASSES:
                continue
            sop = str(json_value(item, _SOP))
            label = ref(study, series, sop)
            frame_of_reference = str(json_value(item, _FOR, "") or "")
            referenced = _referenced_series(item)
            found = [uid for uid in referenced if uid in candidates]
            if found:
                source, how = found[0], "ReferencedSeriesSequence"
            elif referenced:
                unpaired.append({"path": str(label), "kind": "seg",
                                 "reason": f"referenced series {referenced} not found on the server in study {study}"})
                continue
            else:
                same = [uid for uid in candidates
                        if frame_of_reference and frame_of_reference_of(study, uid) == frame_of_reference]
                if len(same) != 1:
                    unpaired.append({"path": str(label), "kind": "seg", "reason": (
                        f"no ReferencedSeriesSequence and {len(same)} series share FrameOfReferenceUID "
                        f"{frame_of_reference!r}")})
                    continue
                source, how = same[0], "FrameOfReferenceUID"
            used.add((study, source))
            datalist.append({
                image_key: ref(study, source),
                label_key: label,
                "series_instance_uid": source,
                "seg_series_instance_uid": series,
                "frame_of_reference_uid": frame_of_reference,
                "study_instance_uid": study,
                "patient_id": str(json_value(item, _PATIENT, "") or ""),
                "paired_by": how,
            })
    problems = list(unpaired)
    for study, series_map in sorted(studies.items()):
        for uid in sorted(series_map):
            if (study, uid) not in used:
                unpaired.append({"path": str(ref(study, uid)), "kind": "series",
                                 "reason": f"no SEG refers to series {uid}"})
    if problems and warn_unpaired:
        warnings.warn(
            f"create_datalist_from_server: {len(problems)} SEG(s) not paired: "
            + "; ".join(f"{p['path']} ({p['reason']})" for p in problems[:5]), stacklevel=2)
    return (datalist, unpaired) if return_unpaired else datalist
