"""DICOMweb (PS3.18): train from and write back to a PACS.

Torch-free (pydicom, ``requests``, ``dicomweb-client``); the MONAI loaders,
the writer transform and the command line call it through one hook each.

* :class:`DicomWebSeries` — a series (or one instance) on a server, with the
  URI form ``dicomweb+https://host/dicom-web/studies/<uid>/series/<uid>``;
* :class:`DicomWebServer` — auth, TLS, timeouts, retries, cache and spool settings;
  :func:`register_server` makes them the default for a URL prefix;
* :func:`materialize` — WADO-RS into the local :class:`InstanceCache`, returns file paths;
  :func:`~monai_dicomseg.dicomweb.frames.materialize_segments` — only the frames of selected SEG segments;
* :func:`create_datalist_from_server` — QIDO-RS SEG series paired with their image series
  (``max_workers`` requests in flight); :func:`prefetch` — many series into the cache, bounded;
* :func:`store` — STOW-RS with a spool folder for failures.

See ``monai_dicomseg/dicomweb/README.md``.
"""
from __future__ import annotations

from typing import Any

from monai_dicomseg.dicomweb.cache import InstanceCache, default_cache_dir
from monai_dicomseg.dicomweb.query import create_datalist_from_server
from monai_dicomseg.dicomweb.reference import DicomWebSeries, is_dicomweb_uri, parse_dicomweb, redact_url
from monai_dicomseg.dicomweb.retrieve import materialize, prefetch
from monai_dicomseg.dicomweb.session import DicomWebServer, register_server, server_for, unregister_server
from monai_dicomseg.dicomweb.store import store

__all__ = [
    "DicomWebSeries", "DicomWebServer", "InstanceCache", "create_datalist_from_server", "default_cache_dir",
    "is_dicomweb_uri", "materialize", "parse_dicomweb", "redact_url", "register_server", "server_for", "store",
    "unregister_server", "local_paths", "prefetch",
]


def local_paths(source: object, *, expect_seg: "bool | None" = None, segments: object = None) -> Any:
    """The hook the file-based loaders call: a DICOMweb reference becomes local file paths.

    Returns ``source`` unchanged unless it is a :class:`DicomWebSeries` or a
    ``dicomweb+`` URI; then the list of cached paths (:func:`materialize`), or
    the one path when the reference names an instance or ``expect_seg`` is
    True (a SEG is one file; a SEG series of several instances needs an
    ``/instances/<uid>`` reference).

    ``segments`` (with ``expect_seg``): a callable ``header Dataset -> segment
    numbers or None`` (the loader's selection); the path may then be a partial
    SEG holding only the frames of those segments
    (:func:`~monai_dicomseg.dicomweb.frames.materialize_segments`).
    """
    if not isinstance(source, DicomWebSeries) and not is_dicomweb_uri(source):
        return source
    if segments is not None and expect_seg:
        from monai_dicomseg.dicomweb.frames import materialize_segments

        path = materialize_segments(source, segments)  # type: ignore[arg-type]  # source is a DicomWebSeries or a dicomweb+ URI here (returned early otherwise)
        if path is not None:
            return path
    paths = materialize(source, expect_seg=expect_seg)
    if expect_seg:
        if len(paths) != 1:
            from monai_dicomseg.errors import InputError

            ref = parse_dicomweb(source)
            raise InputError(
                f"the DICOMweb SEG series {ref.series_url if ref else source} holds {len(paths)} Segmentation "
                "instances; name one with .../instances/<SOPInstanceUID>")
        return paths[0]
    return paths
