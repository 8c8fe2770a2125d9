"""Check SEG files: valid DICOM, and which consumers (viewers, converters, archives) can read them.

For each file: the structure (the bounded reader), the attributes of the
Segmentation IOD that readers rely on (PS3.3 A.51, C.8.20), the pixel
attributes against the Pixel Data length (every frame decoded unless
``--no-decode``), and every value against its VR (the checks the writer
applies to its own output, :func:`monai_dicomseg.codec.vr.check_dataset_values`);
then, for each consumer profile (:mod:`monai_dicomseg.seg.profiles`: ohif,
slicer, highdicom, archive), whether it reads the file and why not.

Exit status: 0 every file valid (and readable by each ``--profile`` named);
1 a file is invalid or unreadable; 3 every file valid but a consumer named by
``--profile`` cannot read one. Without ``--profile`` consumers are reported
only. ``--json`` prints one JSON object per file per line (keys:
:data:`REPORT_KEYS`).
"""
from __future__ import annotations

import argparse
import json
import os
import warnings
from collections.abc import Sequence
from typing import Any

from monai_dicomseg.cli._common import strict_keywords
from monai_dicomseg.enums import SegSOPClass
from monai_dicomseg.enums import BINARY as _BINARY, FRACTIONAL as _FRACTIONAL, LABELMAP as _LABELMAP

__all__ = ["add_arguments", "run", "check_file", "format_report", "REPORT_KEYS", "EXIT_OK", "EXIT_INVALID",
           "EXIT_CONSUMER"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_CONSUMER = 3

REPORT_KEYS = ("path", "status", "valid", "errors", "warnings", "sop_class_uid", "segmentation_type",
               "transfer_syntax_uid", "compression", "rows", "columns", "frames", "segments", "consumers")
"""Keys of every :func:`check_file` report, in this order (the ``--json`` schema)."""

_SEG_SOP_CLASSES = tuple(sop_class.value for sop_class in SegSOPClass)
_BITS = {_BINARY: (1,), _FRACTIONAL: (8,), _LABELMAP: (8, 16)}
_REQUIRED = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality",
             "SegmentationType", "SegmentSequence", "Rows", "Columns", "BitsAllocated", "PixelData",
             "SharedFunctionalGroupsSequence")
_REQUIRED_UNLESS_TILED_FULL = ("PerFrameFunctionalGroupsSequence", "DimensionIndexSequence")  # PS3.3 C.7.6.17.3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from monai_dicomseg.seg.profiles import profile_names

    parser.add_argument("files", metavar="FILE", nargs="+", help="DICOM Segmentation files")
    parser.add_argument("--json", action="store_true", help="one JSON object per file per line")
    parser.add_argument("--profile", action="append", choices=profile_names(), default=None, metavar="NAME",
                        help=f"a consumer that must read every file ({', '.join(profile_names())}; repeatable): "
                             f"exit {EXIT_CONSUMER} when it cannot. Default: report every consumer, require none")
    parser.add_argument("--no-decode", dest="decode", action="store_false",
                        help="do not decode the frames (faster; compressed frames are then not checked)")


def run(args: argparse.Namespace) -> int:
    reports = [check_file(path, profiles=args.profile, decode=args.decode) for path in args.files]
    for report in reports:
        print(json.dumps(report, sort_keys=False) if args.json else format_report(report))
    return exit_status(reports)


def exit_status(reports: Sequence[dict[str, Any]]) -> int:
    """1 when a report is invalid, 3 when one has a required consumer that cannot read it, else 0."""
    if any(not report["valid"] for report in reports):
        return EXIT_INVALID
    if any(report["status"] == "consumer-problems" for report in reports):
        return EXIT_CONSUMER
    return EXIT_OK


def _new_report(path: "str | os.PathLike[str]") -> dict[str, Any]:
    report: dict[str, Any] = {key: None for key in REPORT_KEYS}
    report.update(path=str(path), errors=[], warnings=[], consumers={})
    return report


@strict_keywords
def check_file(path: "str | os.PathLike[str]", profiles: "Sequence[str] | None" = None,
               decode: bool = True) -> dict[str, Any]:
    """Check one SEG file; never raises for a bad file (its problems are in the report).

    Parameters
    ----------
    path
        The file.
    profiles
        Consumers (:func:`monai_dicomseg.seg.profiles.profile_names`) that
        must read the file: one that cannot makes ``status``
        ``"consumer-problems"``. Default: every consumer is reported, none required.
    decode
        Decode every frame (checks compressed frames; FRACTIONAL values seen).

    Returns
    -------
    dict
        :data:`REPORT_KEYS`: ``status`` is ``"invalid"`` (``errors`` non-empty),
        ``"consumer-problems"`` or ``"ok"``; ``consumers`` maps each profile name
        to ``{"reads": bool, "problems": [str], "required": bool}``.
    """
    from monai_dicomseg.seg.profiles import get_profile, profile_names

    required = [get_profile(name).name for name in (profiles or ())]
    report = _new_report(path)
    dataset = _read(path, report)
    graded = None
    if dataset is not None:
        _check_iod(dataset, report)
        graded = _check_pixels(dataset, report, decode)
        _check_values(dataset, report)
    report["valid"] = not report["errors"]
    if dataset is not None and report["segmentation_type"] is not None and report["transfer_syntax_uid"] is not None:
        _check_consumers(report, dataset, profile_names(), required, graded)
    blocked = any(not report["consumers"].get(name, {}).get("reads", False) for name in required)
    report["status"] = "invalid" if not report["valid"] else ("consumer-problems" if blocked else "ok")
    return report


def _read(path: "str | os.PathLike[str]", report: dict[str, Any]) -> Any:
    """The data set (structure-checked by the bounded reader), or None with the error recorded."""
    from monai_dicomseg.errors import DicomSegError
    from monai_dicomseg.seg.reader import read_segmentation_dataset

    if not os.path.isfile(path):
        report["errors"].append(f"{str(path)!r} is not a file")
        return None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dataset = read_segmentation_dataset(path)
        report["warnings"].extend(str(w.message) for w in caught)
    except (DicomSegError, OSError, ValueError, EOFError) as error:
        report["errors"].append(f"not a readable DICOM Segmentation: {' '.join(str(error).split())}")
        return None
    meta = getattr(dataset, "file_meta", None)
    report["transfer_syntax_uid"] = str(getattr(meta, "TransferSyntaxUID", "") or "") or None
    report["sop_class_uid"] = str(dataset.get("SOPClassUID", "")) or None
    report["segmentation_type"] = str(dataset.get("SegmentationType", "")).upper() or None
    for key, keyword in (("rows", "Rows"), ("columns", "Columns"), ("frames", "NumberOfFrames")):
        value = dataset.get(keyword)
        report[key] = int(value) if value not in (None, "") else None
    report["segments"] = len(dataset.get("SegmentSequence", []) or [])
    return dataset


def _check_iod(dataset: Any, report: dict[str, Any]) -> None:
    """Attributes of the Segmentation IOD the readers rely on (PS3.3 A.51, C.8.20.2, C.7.6.16)."""
    errors = report["errors"]
    if report["sop_class_uid"] not in _SEG_SOP_CLASSES:
        errors.append(f"SOPClassUID {report['sop_class_uid']} is not a Segmentation Storage SOP class "
                      f"(expected one of {list(_SEG_SOP_CLASSES)})")
    tiled_full = str(dataset.get("DimensionOrganizationType", "")).upper() == "TILED_FULL"
    required = _REQUIRED if tiled_full else (*_REQUIRED, *_REQUIRED_UNLESS_TILED_FULL)
    missing = [keyword for keyword in required if keyword not in dataset]
    if missing:
        errors.append(f"required attributes missing: {', '.join(missing)}")
    kind = report["segmentation_type"]
    if kind not in _BITS:
        errors.append(f"SegmentationType must be one of {list(_BITS)}; got {kind!r}")
        return
    bits = dataset.get("BitsAllocated")
    if bits is not None and int(bits) not in _BITS[kind]:
        errors.append(f"BitsAllocated {int(bits)} is not allowed for {kind} (PS3.3 C.8.20.2: {_BITS[kind]})")
    if kind == _FRACTIONAL:
        for keyword in ("SegmentationFractionalType", "MaximumFractionalValue"):
            if keyword not in dataset:
                errors.append(f"{keyword} is required for FRACTIONAL segmentations (PS3.3 C.8.20.2)")
    numbers = [int(item.get("SegmentNumber", 0) or 0) for item in dataset.get("SegmentSequence", []) or []]
    lowest = 0 if kind == _LABELMAP else 1  # a LABELMAP may describe its background as segment 0
    if numbers and (min(numbers) < lowest or len(set(numbers)) != len(numbers)):
        errors.append(f"SegmentNumber values must be distinct and >= {lowest}; got {numbers[:20]}")
    _check_frame_groups(dataset, report)


def _check_frame_groups(dataset: Any, report: dict[str, Any]) -> None:
    """One PerFrameFunctionalGroupsSequence item per frame, each naming a segment of the SEG (not LABELMAP)."""
    from monai_dicomseg.errors import DicomSegError
    from monai_dicomseg.seg.segmentation import Segmentation

    if "PerFrameFunctionalGroupsSequence" not in dataset or report["frames"] is None:
        return
    groups = dataset.PerFrameFunctionalGroupsSequence
    if len(groups) != report["frames"]:
        report["errors"].append(f"PerFrameFunctionalGroupsSequence has {len(groups)} items; NumberOfFrames is "
                                f"{report['frames']}")
        return
    try:  # the frame index every read accessor uses (segment references, positions, dimension indices)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            Segmentation.from_dataset(dataset, copy=False)
        report["warnings"].extend(str(w.message) for w in caught)
    except (DicomSegError, ValueError, KeyError, AttributeError, TypeError) as error:
        report["errors"].append(f"frame index: {' '.join(str(error).split()) or type(error).__name__}")


def _check_pixels(dataset: Any, report: dict[str, Any], decode: bool) -> "bool | None":
    """Pixel attributes vs Pixel Data length; decode every frame. Returns whether FRACTIONAL values are graded."""
    import numpy as np

    from monai_dicomseg.codec.decode import decode_frames, pixel_data_length, pixel_layout
    from monai_dicomseg.errors import DicomSegError

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            layout = pixel_layout(dataset)
            _check_native_length(dataset, layout, pixel_data_length(dataset), report)
            if not decode or report["errors"]:
                return None
            graded = False
            maximum = int(dataset.get("MaximumFractionalValue", 0) or 0)
            for start in range(0, layout.number_of_frames, 256):  # bounded memory
                frames = decode_frames(dataset, np.arange(start, min(start + 256, layout.number_of_frames)), layout)
                if report["segmentation_type"] == _FRACTIONAL:
                    graded = graded or bool(np.any((frames != 0) & (frames != maximum)))
        report["warnings"].extend(str(w.message) for w in caught)
        return graded
    except (DicomSegError, ValueError, MemoryError) as error:
        report["errors"].append(f"Pixel Data: {' '.join(str(error).split())}")
        return None


def _check_native_length(dataset: Any, layout: Any, length: int, report: dict[str, Any]) -> None:
    """Native Pixel Data holds exactly the frames NumberOfFrames says (plus one padding byte, PS3.5 7.1.1)."""
    if layout.encapsulated:
        return
    expected = -(-layout.rows * layout.columns * layout.number_of_frames * layout.bits_allocated // 8)
    if length > expected + 1:
        report["errors"].append(
            f"PixelData has {length} bytes; Rows x Columns x NumberOfFrames x BitsAllocated = {layout.rows} x "
            f"{layout.columns} x {layout.number_of_frames} x {layout.bits_allocated} bits needs {expected} "
            "(+1 padding): NumberOfFrames is wrong or frames are missing from the header")


def _check_values(dataset: Any, report: dict[str, Any]) -> None:
    """Every value valid for its VR (the writer's own output check)."""
    from monai_dicomseg.codec.vr import check_dataset_values
    from monai_dicomseg.errors import DicomSegError

    try:
        check_dataset_values(dataset)
    except (DicomSegError, ValueError) as error:
        report["errors"].append(f"value: {' '.join(str(error).split())}")


def _check_consumers(report: dict[str, Any], dataset: Any, names: Sequence[str], required: Sequence[str],
                     graded: "bool | None") -> None:
    from monai_dicomseg.codec.transfer_syntax import lookup
    from monai_dicomseg.seg.profiles import dataset_problems

    row = lookup(report["transfer_syntax_uid"])
    report["compression"] = row.name if row is not None else None
    for name in names:
        problems = dataset_problems(name, dataset, graded_fractional=graded)
        if not report["valid"]:
            problems = ["the file is invalid", *problems]
        report["consumers"][name] = {"reads": not problems, "problems": problems, "required": name in required}


def format_report(report: dict[str, Any]) -> str:
    """The report as text: a summary line, errors, warnings, one line per consumer."""
    state = {"ok": "valid", "consumer-problems": "valid", "invalid": "INVALID"}[report["status"]]
    what = (f"{report['segmentation_type'] or '?'} SEG, {report['frames'] or '?'} frame(s) of "
            f"{report['rows'] or '?'}x{report['columns'] or '?'}, {report['segments'] or 0} segment(s), "
            f"{report['compression'] or report['transfer_syntax_uid'] or '?'}")
    lines = [f"{report['path']}: {state}: {what}"]
    lines += [f"  error: {text}" for text in report["errors"]]
    lines += [f"  warning: {text}" for text in report["warnings"]]
    for name, verdict in report["consumers"].items():
        flag = " (required)" if verdict["required"] else ""
        text = "reads it" if verdict["reads"] else "cannot read it: " + "; ".join(verdict["problems"])
        lines.append(f"  {name}{flag}: {text}")
    return "\n".join(lines)
