"""``batch pull`` and ``batch push``: DICOMweb retrieval and storage, sharded and resumable (issue 27).

Both run through :func:`monai_dicomseg.cli.jobs.run_jobs`, so ``--shard K/N|auto``,
``--manifest FILE.jsonl``, ``--retry-failed``, ``--workers``, the summary
and the exit statuses (0 all done, 1 some failed, 2 usage, 130 interrupted)
are those of the other ``batch`` commands.

``batch pull INPUT OUTPUT_DIR``
    ``INPUT`` is a file of SEG URIs, a ``DATALIST.json`` or a DICOMweb
    service root ``http(s)://host/dicom-web`` (expanded with
    :func:`~monai_dicomseg.dicomweb.create_datalist_from_server`, filters
    ``--study`` / ``--patient-id``, every shard lists the server itself); see
    :mod:`monai_dicomseg.cli.batch_inputs` for the formats and the keys. Each
    SEG is retrieved through the instance cache (``--cache``; processes may
    share one) and written as ``pull`` writes it, to ``OUTPUT_DIR/<key>.nii.gz``
    (+ ``.json`` sidecar): datalist and server items on the grid of their
    paired image series (as ``LoadDicomSegd(ref_key=...)`` places them), URI
    list items on the SEG's own extent or, with ``--source-grid``, on the grid
    of the series it references. A SEG the server walk cannot pair with an
    image series is a failed item naming the reason, never a silent omission.
    An item is done and verified while its outputs have their recorded
    SHA-256.
``batch push URL INPUT_DIR``
    Every SEG file in INPUT_DIR (``-r``: sub-folders) is stored with STOW-RS
    (:func:`~monai_dicomseg.dicomweb.store`, which reads each instance back:
    stored means the server holds its SOP Instance UID). The ``done`` record
    names the Study, Series and SOP Instance UIDs. A re-run skips an item whose
    input still has its recorded SHA-256 and that the server still holds (one
    QIDO-RS request each, ``--max-workers`` at once); an item a killed run
    left ``started`` is first looked up on the server and, when held, recorded
    done without a second STOW. A refused store keeps the file in the spool
    folder (``--spool``), and the item fails naming it.
"""
from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_dicomseg.errors import InputError

__all__ = ["add_parsers", "run", "execute", "server_holds"]

_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


def _common(sub: argparse.ArgumentParser) -> None:
    from monai_dicomseg.cli import jobs
    from monai_dicomseg.cli._dicomweb import add_server_options

    sub.add_argument("--workers", type=int, default=1, metavar="N",
                     help="items processed in parallel (default 1; 0 or -1: all cores)")
    sub.add_argument("--max-workers", type=int, default=4, metavar="N",
                     help="DICOMweb requests in flight at once while listing a server or checking stored "
                          "instances (default %(default)s)")
    jobs.add_job_options(sub)
    add_server_options(sub)


def add_parsers(commands: Any) -> None:
    """The ``pull`` and ``push`` subcommands of ``batch`` (``commands``: its sub-parsers)."""
    from monai_dicomseg.cli import batch_inputs, to_nifti

    sub = commands.add_parser("pull", help="SEGs on a DICOMweb server -> NIfTI (URI list, datalist or server)")
    sub.add_argument("input", metavar="INPUT",
                     help="file of SEG URIs (one per line), a DATALIST.json, or a service root http(s)://.../"
                          "dicom-web whose SEGs are listed with create_datalist_from_server")
    sub.add_argument("output_dir", metavar="OUTPUT_DIR", help="folder of the outputs: OUTPUT_DIR/<study>/<series>"
                                                              "[/<instance>].nii.gz (created)")
    sub.add_argument("--study", metavar="UID", help="server INPUT: only this StudyInstanceUID")
    sub.add_argument("--patient-id", metavar="ID", help="server INPUT: only this PatientID")
    sub.add_argument("--source-grid", action="store_true",
                     help="URI list: write on the grid of the series each SEG references (datalist and server "
                          "items are always written on their paired image series' grid)")
    to_nifti.add_options(sub, batch=True)
    batch_inputs.add_datalist_options(sub)
    _common(sub)
    sub = commands.add_parser("push", help="SEG files of a folder -> a DICOMweb server (STOW-RS, verified)")
    sub.add_argument("url", metavar="URL", help="DICOMweb service root, e.g. https://pacs/dicom-web")
    sub.add_argument("input_dir", metavar="INPUT_DIR", help="folder of SEG files")
    sub.add_argument("-r", "--recursive", action="store_true", help="also search sub-folders")
    sub.add_argument("--spool", metavar="DIR", help="where refused files are kept (default: <cache>/spool)")
    _common(sub)


# --------------------------------------------------------------------------- inputs


def _servers(urls: Sequence[str], args: argparse.Namespace) -> dict[str, Any]:
    """``service root -> DicomWebServer`` (credentials and TLS from the options and environment)."""
    from monai_dicomseg.cli._dicomweb import server_from_args

    servers = {}
    for url in sorted(set(urls)):
        server = server_from_args(url, args)
        servers[server.url] = server.with_options(spool_dir=args.spool) if getattr(args, "spool", None) else server
    return servers


def _server_items(args: argparse.Namespace) -> list[Any]:
    """The SEGs of a server (``create_datalist_from_server``); unpaired SEGs become items that fail."""
    from monai_dicomseg.cli._dicomweb import server_from_args
    from monai_dicomseg.cli.batch_inputs import BatchItem, uri_key
    from monai_dicomseg.dicomweb import create_datalist_from_server

    server = server_from_args(args.input, args)
    found: Any = create_datalist_from_server(
        server, study_uid=args.study, patient_id=args.patient_id, image_key=args.image_key, label_key=args.label_key,
        return_unpaired=True, warn_unpaired=False, max_workers=args.max_workers)
    datalist, unpaired = found
    items = [BatchItem(uri_key(entry[args.label_key]), entry[args.label_key], entry[args.image_key])
             for entry in datalist]
    items += [BatchItem(uri_key(problem["path"]), problem["path"], None,
                        problem=f"the server walk paired no image series with this SEG: {problem['reason']}")
              for problem in unpaired if problem["kind"] == "seg"]
    return sorted(items, key=lambda item: item.key)


def _pull_items(args: argparse.Namespace) -> list[Any]:
    from monai_dicomseg.cli import batch_inputs

    if (args.study or args.patient_id) and not batch_inputs.is_server_url(args.input):
        raise InputError(f"--study / --patient-id filter a server INPUT (http(s)://...); got {args.input!r}")
    if batch_inputs.is_server_url(args.input):
        return _server_items(args)
    if batch_inputs.is_datalist(args.input):
        return batch_inputs.read_datalist(args.input, args.image_key, args.label_key, remote=True)
    return batch_inputs.read_uri_list(args.input)


def _pull_jobs(args: argparse.Namespace, items: Sequence[Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    from monai_dicomseg.cli.batch_inputs import output_path
    from monai_dicomseg.cli.to_nifti import options_from_args
    from monai_dicomseg.dicomweb import DicomWebSeries, is_dicomweb_uri

    servers = _servers([DicomWebSeries.from_uri(item.label).url for item in items], args)
    jobs = []
    for item in items:
        options = options_from_args(args)
        options.pop("source", None)
        options.update(server=servers[DicomWebSeries.from_uri(item.label).url], image=item.image,
                       source_grid=bool(args.source_grid) and item.image is None)
        if item.problem:
            options["source_error"] = item.problem
        elif item.image is not None and not is_dicomweb_uri(item.image):
            options["source_error"] = (f"the image of a pulled SEG must be a DICOMweb URI (the series on the server); "
                                       f"got {item.image!r}")
        elif item.volume:
            options["source_error"] = (f"the datalist selects volume {item.volume} of its image series; batch "
                                       "pull writes on a whole series only")
        jobs.append(("pull", item.label, str(output_path(args.output_dir, item.key, ".nii.gz")), options))
    return jobs


def _push_jobs(args: argparse.Namespace, paths: Sequence[Path]) -> list[tuple[str, str, None, dict[str, Any]]]:
    server = next(iter(_servers([args.url], args).values()))
    return [("push", str(path), None, {"server": server, "resumed": False}) for path in paths]


# --------------------------------------------------------------------------- one item (in a worker)


def server_holds(server: Any, study: str, series: str, sop: str) -> bool:
    """True when the server lists the instance (QIDO-RS, PS3.18 10.6, one request)."""
    from monai_dicomseg.dicomweb.session import translate_errors

    url = f"{server.url}/studies/{study}/series/{series}/instances"
    with translate_errors(server, url, sop, "search for stored instance"):
        found = server.client().search_for_instances(
            study_instance_uid=study, series_instance_uid=series, search_filters={"SOPInstanceUID": sop})
    return bool(found)


def _stored(path: str, server: Any) -> dict[str, Any]:
    import pydicom

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(_UIDS))
    except Exception as error:  # noqa: BLE001 - an unreadable file fails its item
        raise InputError(f"file to store {path!r} is not readable as DICOM: {error}") from None
    values = {name: str(header.get(name, "") or "") for name in _UIDS}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise InputError(f"file to store {path!r} has no {', '.join(missing)}")
    return {"study_instance_uid": values["StudyInstanceUID"], "series_instance_uid": values["SeriesInstanceUID"],
            "sop_instance_uid": values["SOPInstanceUID"], "url": server.url}


def _push(source: str, options: dict[str, Any]) -> dict[str, Any]:
    from monai_dicomseg.dicomweb import store

    server = options["server"]
    stored = _stored(source, server)
    uids = (stored["study_instance_uid"], stored["series_instance_uid"], stored["sop_instance_uid"])
    if options.get("resumed") and server_holds(server, *uids):  # the killed attempt had stored it
        return {**stored, "found_on_server": True}
    store([source], server)  # verify=True: the server is asked for the instance after it acknowledged it
    return stored


def execute(command: str, source: str, output: "str | None",
            options: dict[str, Any]) -> "tuple[list[str], str | None, dict[str, Any]]":
    """Run one ``pull`` or ``push`` item; return ``(paths written, None, extra record fields)``."""
    if options.get("source_error"):
        raise InputError(options["source_error"])
    if command == "push":
        return [], None, {"stored": _push(source, options)}
    from monai_dicomseg.cli.pull import pull

    server, image, source_grid = options.pop("server"), options.pop("image"), options.pop("source_grid")
    options.pop("source_error", None)
    written = pull(source, str(output), server, source=image, source_grid=source_grid, **options)
    return [str(p) for p in written], None, {}


# --------------------------------------------------------------------------- running


def _still_held(server: Any, max_workers: int):
    from monai_dicomseg.dicomweb.concurrency import bounded_map

    def check(records: list[Mapping[str, Any]]) -> list[bool]:
        def one(record: Mapping[str, Any]) -> bool:
            stored = record.get("stored") or {}
            uids = [str(stored.get(k) or "") for k in ("study_instance_uid", "series_instance_uid",
                                                       "sop_instance_uid")]
            return all(uids) and server_holds(server, *uids)

        return bounded_map(one, records, max_workers)

    return check


def run(args: argparse.Namespace) -> int:
    """``batch pull`` / ``batch push`` (through :func:`monai_dicomseg.cli.jobs.run_jobs`)."""
    from monai_dicomseg.cli import jobs
    from monai_dicomseg.dicomweb.concurrency import check_max_workers

    check_max_workers(args.max_workers)
    if args.batch_command == "pull":
        items = _pull_items(args)
        return jobs.run_jobs(args, items, _pull_jobs, keys=[item.key for item in items],
                             kind=jobs.ItemKind(remote=True))
    from monai_dicomseg.cli.batch import find_inputs

    inputs = find_inputs("push", args.input_dir, args.recursive)
    if not inputs:
        raise InputError(f"no DICOM SEG files found in {args.input_dir!r}"
                         f"{'' if args.recursive else ' (use --recursive for sub-folders)'}")
    server = next(iter(_servers([args.url], args).values()))
    return jobs.run_jobs(args, inputs, _push_jobs, kind=jobs.ItemKind(still_done=_still_held(server,
                                                                                             args.max_workers)))
