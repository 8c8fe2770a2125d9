"""Pull a SEG from a DICOMweb server (WADO-RS) and convert it to NIfTI.

``SEG_URI`` is ``dicomweb+https://host/dicom-web/studies/<uid>/series/<uid>[/instances/<uid>]``
(a SEG series with one instance may leave out the instance). The files go
through the local instance cache, so pulling again makes no request. With
``--source-grid`` the NIfTI is written on the grid of the series the SEG
references (fetched too); ``--source SERIES_URI`` names that series
explicitly. Credentials come from the environment (see ``--token-env``,
``--user``/``--password-env``), never from the command line. The other
options are those of ``to-nifti``.
"""
from __future__ import annotations

import argparse
from typing import Any

from monai_dicomseg.cli import to_nifti
from monai_dicomseg.cli._dicomweb import add_server_options, server_from_args, staged_folder

__all__ = ["add_arguments", "run", "pull"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("seg", metavar="SEG_URI", help="dicomweb+http(s)://.../studies/<uid>/series/<uid>[/instances/<uid>]")
    parser.add_argument("output", metavar="OUT.nii.gz", help="NIfTI file to write (.nii.gz or .nii)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--source", metavar="SERIES_URI", help="source series on the server: write on its grid")
    source.add_argument("--source-grid", action="store_true",
                        help="write on the grid of the series the SEG references (ReferencedSeriesSequence)")
    to_nifti.add_options(parser)
    add_server_options(parser)


def pull(seg_uri: str, output: str, server: Any, *, source: "str | None" = None, source_grid: bool = False,
         **options: Any) -> list:
    """Retrieve ``seg_uri`` (and its source series) and write NIfTI; returns the written paths."""
    import pydicom

    from monai_dicomseg.dicomweb import DicomWebSeries, local_paths
    from monai_dicomseg.errors import InputError

    seg_ref = DicomWebSeries.from_uri(seg_uri, server=server)
    seg_path = local_paths(seg_ref, expect_seg=True)
    source_ref = DicomWebSeries.from_uri(source, server=server) if source else None
    if source_grid:
        header = pydicom.dcmread(seg_path, stop_before_pixels=True)
        series = [str(item.SeriesInstanceUID) for item in header.get("ReferencedSeriesSequence", [])]
        if not series:
            raise InputError(f"--source-grid: the SEG {seg_ref.uri} has no ReferencedSeriesSequence; use --source")
        source_ref = DicomWebSeries(seg_ref.url, str(header.StudyInstanceUID), series[0], server=server)
    if source_ref is None:
        return to_nifti.seg_to_nifti(str(seg_path), output, **options)
    with staged_folder(local_paths(source_ref)) as folder:
        return to_nifti.seg_to_nifti(str(seg_path), output, source=str(folder), **options)


def run(args: argparse.Namespace) -> int:
    from monai_dicomseg.dicomweb import DicomWebSeries

    server = server_from_args(DicomWebSeries.from_uri(args.seg).url, args)
    options = to_nifti.options_from_args(args)
    options.pop("source", None)
    written = pull(args.seg, args.output, server, source=args.source, source_grid=args.source_grid, **options)
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0
