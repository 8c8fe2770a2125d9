"""Run ``info``, ``to-nifti``, ``from-nifti`` or ``convert`` over every file of a folder; ``pull``, ``push``.

Inputs are the DICOM Segmentations (``info``, ``to-nifti``, ``convert``) or
the NIfTI files (``from-nifti``) directly in INPUT_DIR (``--recursive``: in
its sub-folders too); outputs keep their relative paths under OUTPUT_DIR.

``to-nifti`` and ``convert`` with ``--source-root SERIES_ROOT`` find each SEG's
source series as the loaders do (:mod:`monai_dicomseg.io.series_lookup`,
torch-free: one header-only scan of SERIES_ROOT, recursive, paired by
``match_series`` as ``create_datalist`` and ``DicomSegReader`` pair): the
series named by the SEG's ReferencedSeriesSequence (PS3.3 C.10.4) wherever it
lies under SERIES_ROOT, or, for a SEG without ReferencedSeriesSequence, the
only series under SERIES_ROOT sharing its FrameOfReferenceUID; else the
mirrored folder ``SERIES_ROOT/a/case/`` of ``INPUT_DIR/a/case.dcm``. A SEG
none of these finds fails on its own line. ``from-nifti`` (NIfTI files name
no series) uses the mirrored folder ``SERIES_ROOT/a/case/``, and
``INPUT_DIR/a/case.json`` as metadata when it exists and no ``--metadata``
is given.

``to-nifti DATALIST.json OUTPUT_DIR`` takes a datalist's pairs instead of a
folder (:mod:`monai_dicomseg.cli.batch_inputs`); ``pull`` and ``push`` move
SEGs from and to a DICOMweb server (:mod:`monai_dicomseg.cli.batch_dicomweb`).

Files are processed by ``--workers`` processes with a progress bar; each
failure is reported on one line, a summary follows, and the exit status is 1
if any file failed.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monai_dicomseg.errors import InputError

__all__ = ["add_arguments", "run", "find_inputs", "run_batch"]

_NIFTI = (".nii.gz", ".nii")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from monai_dicomseg.cli import batch_dicomweb, batch_inputs, convert, from_nifti, info, jobs, to_nifti

    commands = parser.add_subparsers(dest="batch_command", metavar="COMMAND")
    commands.required = True

    def common(sub: argparse.ArgumentParser, output: bool = True) -> None:
        sub.add_argument("input_dir", metavar="INPUT_DIR", help="folder of input files")
        if output:
            sub.add_argument("output_dir", metavar="OUTPUT_DIR", help="folder of the outputs (created)")
        sub.add_argument("-r", "--recursive", action="store_true", help="also search sub-folders")
        sub.add_argument("--workers", type=int, default=1, metavar="N",
                         help="files processed in parallel (default 1; 0 or -1: all cores)")
        jobs.add_job_options(sub)

    sub = commands.add_parser("info", help="one line per SEG")
    common(sub, output=False)
    info.add_options(sub, batch=True)
    sub = commands.add_parser("to-nifti", help="SEG files -> NIfTI")
    common(sub)
    sub.add_argument("--source-root", metavar="SERIES_ROOT",
                     help="write on the source grid: each SEG's series is found under SERIES_ROOT by its "
                          "ReferencedSeriesSequence (as create_datalist pairs), else SERIES_ROOT/a/case/ for "
                          "INPUT_DIR/a/case.dcm")
    to_nifti.add_options(sub, batch=True)
    batch_inputs.add_datalist_options(sub)  # INPUT_DIR may be a DATALIST.json (cli/batch_inputs.py)
    sub = commands.add_parser("from-nifti", help="NIfTI files -> SEG")
    sub.add_argument("input_dir", metavar="INPUT_DIR", help="folder of NIfTI files")
    sub.add_argument("series_root", metavar="SERIES_ROOT",
                     help="series of INPUT_DIR/a/case.nii.gz is the folder SERIES_ROOT/a/case/")
    sub.add_argument("output_dir", metavar="OUTPUT_DIR", help="folder of the outputs (created)")
    sub.add_argument("-r", "--recursive", action="store_true", help="also search sub-folders")
    sub.add_argument("--workers", type=int, default=1, metavar="N",
                     help="files processed in parallel (default 1; 0 or -1: all cores)")
    jobs.add_job_options(sub)
    from_nifti.add_options(sub, batch=True)
    sub = commands.add_parser("convert", help="SEG files -> SEG files of another type/compression")
    common(sub)
    sub.add_argument("--source-root", metavar="SERIES_ROOT",
                     help="each SEG's series is found under SERIES_ROOT by its ReferencedSeriesSequence (as "
                          "create_datalist pairs), else SERIES_ROOT/a/case/ for INPUT_DIR/a/case.dcm (default: "
                          "rebuilt from the SEG's references)")
    convert.add_options(sub, batch=True)
    batch_dicomweb.add_parsers(commands)  # batch pull / batch push (cli/batch_dicomweb.py)


# --------------------------------------------------------------------------- discovery


def _files(folder: Path, recursive: bool) -> list[Path]:
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and not p.name.startswith("."))


def _is_seg(path: Path) -> bool:
    import pydicom

    from monai_dicomseg.io.source_series import SEG_SOP_CLASS_UIDS

    if not pydicom.misc.is_dicom(str(path)):
        return False
    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except Exception:  # noqa: BLE001 - unreadable DICOM: let the command report it
        return path.suffix.lower() == ".dcm"
    return str(ds.get("SOPClassUID", "")) in SEG_SOP_CLASS_UIDS


def find_inputs(command: str, folder: str | os.PathLike[str], recursive: bool) -> list[Path]:
    """Input files of ``command`` in ``folder``: SEG files, or NIfTI files for ``from-nifti``."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"input folder {str(folder)!r} does not exist or is not a folder")
    files = _files(root, recursive)
    if command == "from-nifti":
        return [p for p in files if p.name.endswith(_NIFTI)]
    return [p for p in files if _is_seg(p)]


def _stem(path: Path) -> str:
    for suffix in (*_NIFTI, ".dcm", ".DCM"):
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.name


# --------------------------------------------------------------------------- source series


def _seg_header(path: Path) -> Any:
    """The SEG's references (ReferencedSeriesSequence, FrameOfReferenceUID, ...), header only; None when unreadable."""
    import pydicom

    try:
        return pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=[
            "StudyInstanceUID", "ReferencedSeriesSequence", "StudiesContainingOtherReferencedInstancesSequence",
            "FrameOfReferenceUID"])
    except Exception:  # noqa: BLE001 - the command itself reports an unreadable SEG
        return None


@dataclass
class SeriesFinder:
    """The image series under ``--source-root`` (one header-only scan), and the source each SEG gets.

    Attributes
    ----------
    root
        SERIES_ROOT.
    index
        The :class:`~monai_dicomseg.io.series_lookup.SeriesIndex` of SERIES_ROOT (files of each image series),
        from :func:`~monai_dicomseg.io.series_lookup.scan_series`: the scan ``DicomSegReader(source_root=...)``
        uses, torch-free.
    images_per_folder
        Number of image instances (SEGs left out) in each folder.
    """

    root: Path
    index: Any
    images_per_folder: dict[str, int]

    @classmethod
    def scan(cls, root: "str | os.PathLike[str]") -> "SeriesFinder":
        from monai_dicomseg.io.series_lookup import scan_series

        path = Path(root)
        if not path.is_dir():
            raise InputError(f"--source-root {str(root)!r} must be an existing folder")
        index = scan_series(path, refresh=True)  # the loaders' scan (DicomSegReader's source_root)
        per_folder: dict[str, int] = {}
        for files in index.files.values():
            for file in files:
                per_folder[os.path.dirname(file)] = per_folder.get(os.path.dirname(file), 0) + 1
        return cls(path, index, per_folder)

    def _value(self, uid: str) -> "str | list[str]":
        """The series' folder when it holds that series' images only (SEGs may lie beside), else its files."""
        files = self.index.files[uid]
        folders = {os.path.dirname(f) for f in files}
        if len(folders) == 1:
            folder = folders.pop()
            if self.images_per_folder.get(folder, 0) == len(files):
                return folder
        return sorted(files)

    def source(self, seg: Path, mirrored: Path) -> "str | list[str]":
        """The source series of ``seg``: as :func:`~monai_dicomseg.io.series_lookup.match_series` pairs it (the
        referenced series, or for a SEG without references the only series of its Frame of Reference), else the
        ``mirrored`` folder.

        Raises
        ------
        InputError
            None of them found; the message names the referenced series / Frame of Reference and SERIES_ROOT.
        """
        from monai_dicomseg.io.series_lookup import match_series, series_references

        header = _seg_header(seg)
        uid = None if header is None else match_series(self.index, header)
        if uid is not None:
            return self._value(uid)
        if mirrored.is_dir():
            return str(mirrored)
        referenced = [] if header is None else [series for _, series in series_references(header)]
        if referenced:
            raise InputError(f"the series the SEG references ({', '.join(referenced)}) is not under --source-root "
                             f"{str(self.root)!r}, and there is no folder {str(mirrored)!r}")
        frame_of_reference = "" if header is None else str(header.get("FrameOfReferenceUID", "") or "")
        same = [u for u, value in self.index.frames_of_reference.items()
                if frame_of_reference and value == frame_of_reference]
        raise InputError(f"the SEG has no ReferencedSeriesSequence and {len(same)} series under --source-root "
                         f"{str(self.root)!r} share its FrameOfReferenceUID {frame_of_reference!r}; there is no "
                         f"folder {str(mirrored)!r} either")


def _source_option(finder: "SeriesFinder | None", path: Path, mirrored: Path, options: dict[str, Any]) -> None:
    """Set ``options["source"]`` (None without ``--source-root``), or ``options["source_error"]``."""
    options["source"] = None
    if finder is None:
        return
    try:
        options["source"] = finder.source(path, mirrored)
    except InputError as error:
        options["source_error"] = str(error)
        return
    if "allow_other_series" in options and options["source"] == str(mirrored):
        # The mirrored folder was chosen by its path, not by the SEG's references: a re-exported series
        # (new SeriesInstanceUID) is accepted, as --allow-other-series does; its Frame of Reference must still
        # be the SEG's and the placement exact (the loaders' rule).
        options["allow_other_series"] = True


# --------------------------------------------------------------------------- one item


def _item(job: tuple[str, str, str | None, dict[str, Any]]) -> tuple[str, str | None, str | None]:
    """Run one file; return ``(input, error line or None, text to print or None)``."""
    from monai_dicomseg.cli.main import one_line

    command, source, output, options = job
    try:
        text = None
        if options.get("source_error"):
            raise InputError(options["source_error"])
        if command == "info":
            from monai_dicomseg.cli.info import describe_seg

            described = describe_seg(source)
            if options.get("json"):
                import json

                text = json.dumps(described)
            else:
                text = (f"{source}: {described['segmentation_type']}, {len(described['segments'])} segment(s) "
                        f"({', '.join(s['label'] for s in described['segments'])}), {described['frames']} frame(s)")
        elif command == "to-nifti":
            from monai_dicomseg.cli.to_nifti import seg_to_nifti

            seg_to_nifti(source, output, **options)  # type: ignore[arg-type]  # every command but info has an output path
        elif command == "from-nifti":
            from monai_dicomseg.cli.from_nifti import nifti_to_seg

            series = options.pop("series")
            nifti_to_seg(source, series, output, **options)  # type: ignore[arg-type]  # every command but info has an output path
        elif command == "convert":
            from monai_dicomseg.cli.convert import convert_seg

            convert_seg(source, output, **options)  # type: ignore[arg-type]  # every command but info has an output path
        return source, None, text
    except Exception as error:  # noqa: BLE001 - every failure becomes one line
        return source, one_line(error), None


def _jobs(args: argparse.Namespace, inputs: list[Path]) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    command = args.batch_command
    root = Path(args.input_dir)
    out_root = None if command == "info" else Path(args.output_dir)
    source_root = getattr(args, "source_root", None) if command in ("to-nifti", "convert") else None
    finder = SeriesFinder.scan(source_root) if source_root else None
    jobs = []
    for path in inputs:
        relative = path.relative_to(root)
        options: dict[str, Any]
        output = None
        if command == "info":
            options = {"json": args.json}
        elif command == "to-nifti":
            from monai_dicomseg.cli.to_nifti import options_from_args

            options = options_from_args(args)
            _source_option(finder, path, Path(source_root or ".") / relative.parent / _stem(path), options)
            output = str(out_root / relative.parent / f"{_stem(path)}.nii.gz")  # type: ignore[operator]  # out_root is None only for info
        elif command == "from-nifti":
            from monai_dicomseg.cli.from_nifti import options_from_args

            options = options_from_args(args)
            options["workers"] = 0
            options["series"] = str(Path(args.series_root) / relative.parent / _stem(path))
            sidecar = path.with_name(f"{_stem(path)}.json")
            if options["metadata"] is None and options["labels"] is None and sidecar.is_file():
                options["metadata"] = str(sidecar)
            output = str(out_root / relative.parent / f"{_stem(path)}.dcm")  # type: ignore[operator]  # out_root is None only for info
        else:
            options = {"segmentation_type": args.segmentation_type, "compress": args.compress,
                       "overwrite": args.overwrite, "workers": 0, "threshold": args.threshold,
                       **({"profile": args.profile} if getattr(args, "profile", None) else {})}
            _source_option(finder, path, Path(source_root or ".") / relative.parent / _stem(path), options)
            output = str(out_root / relative.parent / f"{_stem(path)}.dcm")  # type: ignore[operator]  # out_root is None only for info
        if output is not None:
            Path(output).parent.mkdir(parents=True, exist_ok=True)
        jobs.append((command, str(path), output, options))
    return jobs


def run_batch(jobs: list[tuple[str, str, str | None, dict[str, Any]]], workers: int,
              progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None) -> list[tuple[str, str | None, str | None]]:
    """Run the jobs (in ``workers`` processes when > 1); results in completion order."""
    if workers <= 0:
        workers = os.cpu_count() or 1
    workers = min(workers, len(jobs)) or 1
    wrap = progress or (lambda iterable, total: iterable)
    if workers == 1:
        return list(wrap((_item(job) for job in jobs), len(jobs)))
    from concurrent.futures import ProcessPoolExecutor, as_completed
    import multiprocessing

    context = multiprocessing.get_context("spawn" if sys.platform == "darwin" else "forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(_item, job) for job in jobs]
        return [f.result() for f in wrap(as_completed(futures), len(jobs))]


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    command = args.batch_command
    if command in ("pull", "push"):  # DICOMweb items: cli/batch_dicomweb.py (always through cli/jobs.py)
        from monai_dicomseg.cli import batch_dicomweb

        return batch_dicomweb.run(args)
    from monai_dicomseg.cli import batch_inputs

    if command == "to-nifti" and batch_inputs.is_datalist(args.input_dir):  # a DATALIST.json: its pairs
        return batch_inputs.datalist_to_nifti(args)
    inputs = find_inputs(command, args.input_dir, args.recursive)
    if not inputs:
        kind = "NIfTI" if command == "from-nifti" else "DICOM SEG"
        raise InputError(f"no {kind} files found in {args.input_dir!r}"
                         f"{'' if args.recursive else ' (use --recursive for sub-folders)'}")
    from monai_dicomseg.cli import jobs as sharded

    if sharded.wanted(args):  # --shard / --manifest / --retry-failed: cli/jobs.py runs it
        return sharded.run_jobs(args, inputs, _jobs)
    jobs = _jobs(args, inputs)

    def progress(iterable: Iterable[Any], total: int) -> Iterable[Any]:
        return tqdm(iterable, total=total, unit="file", desc=f"batch {command}", file=sys.stderr,
                    disable=None, leave=False)

    results = run_batch(jobs, args.workers, progress)
    failed = [(path, error) for path, error, _ in results if error is not None]
    texts = {path: text for path, _, text in results if text is not None}
    for _, path, _, _ in jobs:
        if path in texts:
            print(texts[path])
    for path, error in sorted(failed):
        print(f"FAILED {path}: {error}", file=sys.stderr)
    print(f"batch {command}: {len(jobs) - len(failed)} succeeded, {len(failed)} failed "
          f"(of {len(jobs)})", file=sys.stderr if command == "info" else sys.stdout)
    return 1 if failed else 0
