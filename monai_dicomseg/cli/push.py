"""Push SEG files to a DICOMweb server (STOW-RS), or convert a NIfTI to a SEG and push it.

``URL`` is the service root (``https://host/dicom-web``). Each ``FILE`` is a
DICOM SEG (or any DICOM instance), stored as it is; a ``.nii``/``.nii.gz``
file is first converted with ``from-nifti`` onto ``--series SERIES_URI``
(retrieved through the cache) and written to ``--output`` (default: next to
the NIfTI, ``<name>_seg.dcm``). After each store the server is asked for the
instance. A refused store keeps the file in the spool folder and the command
fails naming it. Credentials come from the environment (see ``--token-env``,
``--user``/``--password-env``), never from the command line.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from monai_dicomseg.cli import from_nifti
from monai_dicomseg.cli._dicomweb import add_server_options, server_from_args, staged_folder

__all__ = ["add_arguments", "run", "push"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", metavar="URL", help="DICOMweb service root, e.g. https://pacs/dicom-web")
    parser.add_argument("files", metavar="FILE", nargs="+", help="SEG files, or NIfTI files with --series")
    parser.add_argument("--series", metavar="SERIES_URI", help="source series on the server for NIfTI input")
    parser.add_argument("--output", metavar="OUT.dcm", help="where the SEG made from a NIfTI is written")
    parser.add_argument("--spool", metavar="DIR", help="where refused files are kept (default: <cache>/spool)")
    from_nifti.add_options(parser)
    add_server_options(parser)


def _is_nifti(path: str) -> bool:
    return path.lower().endswith((".nii", ".nii.gz"))


def push(files: list[str], server: Any, *, series: "str | None" = None, output: "str | None" = None,
         **options: Any) -> list[str]:
    """Store ``files`` (NIfTI converted first); returns the SOP Instance UIDs stored."""
    from monai_dicomseg.dicomweb import DicomWebSeries, local_paths, store
    from monai_dicomseg.errors import InputError

    nifti = [f for f in files if _is_nifti(f)]
    if nifti and not series:
        raise InputError(f"NIfTI input {nifti[0]!r} needs --series SERIES_URI (the source series on the server)")
    if len(nifti) > 1 and output:
        raise InputError("--output names one SEG; give one NIfTI file per push")
    to_store = []
    for path in files:
        if not _is_nifti(path):
            to_store.append(path)
            continue
        name = Path(path).name.removesuffix(".gz").removesuffix(".nii")
        target = output or str(Path(path).with_name(f"{name}_seg.dcm"))
        ref = DicomWebSeries.from_uri(series, server=server)  # type: ignore[arg-type]  # NIfTI input without --series was refused above
        with staged_folder(local_paths(ref)) as folder:
            from_nifti.nifti_to_seg(path, str(folder), target, **options)
        to_store.append(target)
    return store(to_store, server)


def run(args: argparse.Namespace) -> int:
    server = server_from_args(args.url, args)
    if args.spool:
        server = server.with_options(spool_dir=args.spool)
    stored = push(args.files, server, series=args.series, output=args.output, **from_nifti.options_from_args(args))
    print(f"stored {len(stored)} instance(s) on {server.url}: {', '.join(stored)}")
    return 0
