"""STOW-RS (PS3.18 10.5): store SEG files on a DICOMweb server; nothing is lost when it fails.

:func:`store` posts each file. When the request fails (server down after the
retries, credentials refused, a 4xx/5xx, or a response whose Failed SOP
Sequence (0008,1198) names the instance, e.g. a server that refuses the Label
Map Segmentation SOP class), the file is first copied into the spool folder and
then :class:`~monai_dicomseg.errors.DicomWebStoreError` is raised, naming the
URL (redacted), the SOP Instance UID and the spool path (``error.spool_path``).
Re-sending a spooled file later is a plain :func:`store` of that path.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from monai_dicomseg.dicomweb.cache import default_cache_dir
from monai_dicomseg.dicomweb.reference import redact_url
from monai_dicomseg.dicomweb.session import DicomWebServer, server_for, translate_errors
from monai_dicomseg.errors import DicomWebError, DicomWebStoreError, InputError, InputTypeError

__all__ = ["store", "spool_dir_for"]


def spool_dir_for(server: DicomWebServer) -> Path:
    """``server.spool_dir``, or ``<cache dir>/spool``."""
    if server.spool_dir:
        return Path(server.spool_dir)
    return Path(server.cache_dir or default_cache_dir()) / "spool"


def _spool(path: Path, server: DicomWebServer, sop_uid: str) -> str:
    folder = spool_dir_for(server)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{sop_uid or path.stem}.dcm"
    if path.resolve() != target.resolve():
        tmp = target.with_name(f".tmp-{os.getpid()}-{target.name}")
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)
    return str(target)


def _failed_reason(response: Any, sop_uid: str) -> "str | None":
    """Why the STOW response says ``sop_uid`` failed (PS3.18 10.5.3, Failed SOP Sequence), else None."""
    failed = list(getattr(response, "FailedSOPSequence", []) or [])
    for item in failed:
        if str(getattr(item, "ReferencedSOPInstanceUID", "")) in (sop_uid, ""):
            reason = getattr(item, "FailureReason", None)
            return f"Failure Reason {int(reason):#06x}" if reason is not None else "listed in FailedSOPSequence"
    referenced = [str(getattr(i, "ReferencedSOPInstanceUID", "")) for i in
                  getattr(response, "ReferencedSOPSequence", []) or []]
    if referenced and sop_uid not in referenced:
        return "not listed in ReferencedSOPSequence"
    return None


def _verify_stored(server: DicomWebServer, dataset: Any, sop_uid: str) -> None:
    study = str(getattr(dataset, "StudyInstanceUID", ""))
    series = str(getattr(dataset, "SeriesInstanceUID", ""))
    url = f"{server.url}/studies/{study}/series/{series}/instances"
    with translate_errors(server, url, sop_uid, "check stored instance"):
        found = server.client().search_for_instances(
            study_instance_uid=study, series_instance_uid=series, search_filters={"SOPInstanceUID": sop_uid})
    if not found:
        raise DicomWebError(
            f"the DICOMweb server acknowledged but does not hold the instance (filtered out or refused, "
            f"e.g. its SOP Class {getattr(dataset, 'SOPClassUID', '?')}): store instance {redact_url(url)} "
            f"(UID {sop_uid})")


def store(
    files: Any,
    server: "DicomWebServer | str",
    *,
    study_uid: "str | None" = None,
    verify: bool = True,
) -> list[str]:
    """Store Part 10 files with STOW-RS, one request per file.

    Parameters
    ----------
    files
        A path or a list of paths (SEG or any other instance).
    server
        :class:`~monai_dicomseg.dicomweb.session.DicomWebServer`, or a service
        root URL (settings from :func:`~monai_dicomseg.dicomweb.session.server_for`).
    study_uid
        Post to ``/studies/<uid>`` (default: ``/studies``).
    verify
        After the server acknowledged the instance, ask for it (QIDO-RS,
        one request) and treat its absence as a failure: some servers
        acknowledge an instance that a filter then drops (Orthanc's
        ``ReceivedInstanceFilter`` does).

    Returns
    -------
    list of str
        SOP Instance UIDs stored.

    Raises
    ------
    DicomWebStoreError
        The store failed; the file is in the spool folder (``error.spool_path``).
    InputError
        A path is missing or not DICOM.
    """
    import pydicom

    if isinstance(server, str):
        server = server_for(server)
    if not isinstance(server, DicomWebServer):
        raise InputTypeError(f"server must be a DicomWebServer or a service root URL; got {type(server).__name__}")
    paths = [files] if isinstance(files, (str, os.PathLike)) else list(files)
    stored = []
    url = f"{server.url}/studies" + (f"/{study_uid}" if study_uid else "")
    for item in paths:
        path = Path(item)
        if not path.is_file():
            raise InputError(f"file to store {str(path)!r} does not exist")
        try:
            dataset = pydicom.dcmread(path)
        except Exception as error:  # InvalidDicomError, truncated file
            raise InputError(f"file to store {str(path)!r} is not readable as DICOM: {error}") from None
        sop_uid = str(getattr(dataset, "SOPInstanceUID", ""))
        try:
            with translate_errors(server, url, sop_uid, "store instance"):
                response = server.client().store_instances([dataset], study_instance_uid=study_uid)
            reason = _failed_reason(response, sop_uid)
            if reason is not None:
                raise DicomWebError(f"the DICOMweb server refused the instance: store instance {redact_url(url)} "
                                    f"(UID {sop_uid}): {reason}")
            if verify:
                _verify_stored(server, dataset, sop_uid)
        except DicomWebError as error:
            spooled = _spool(path, server, sop_uid)
            raise DicomWebStoreError(
                f"STOW-RS failed; the file is kept at {spooled}: {error}", spool_path=spooled) from None
        stored.append(sop_uid)
    return stored
