"""``monai-dicomseg``: the command line over the public SEG API.

Subcommands (one module each, imported only when run, so ``--help`` never
imports numpy, pydicom, nibabel or torch):

``info SEG``
    Type, SOP class, frames, geometry and a table of segments.
``to-nifti SEG OUT.nii.gz``
    SEG -> NIfTI label map (or one file per segment / a 4D stack) plus a
    JSON sidecar in dcmqi's metadata format.
``from-nifti LABELS.nii.gz SERIES_DIR OUT.dcm``
    NIfTI -> SEG matched to the source series (resampled when needed).
``convert SEG OUT.dcm``
    Change segmentation type or compression losslessly.
``batch COMMAND INPUT_DIR OUTPUT_DIR``
    One of the above over every file of a folder.
``check FILE...``
    Validity (structure, IOD, Pixel Data, VR rules) and which consumer
    profiles (ohif, slicer, highdicom, archive) read each file; exit 1 when
    one is invalid, 3 when a consumer named by ``--profile`` cannot read one.

Errors print one line on stderr and exit with status 1 (argparse usage errors
exit with 2); ``--debug`` prints the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

PROG = "monai-dicomseg"

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("monai_dicomseg.cli.info", "describe a SEG: type, frames, geometry, segments"),
    "to-nifti": ("monai_dicomseg.cli.to_nifti", "convert a SEG to NIfTI (+ dcmqi-style JSON sidecar)"),
    "from-nifti": ("monai_dicomseg.cli.from_nifti", "convert a NIfTI label map to a SEG of a source series"),
    "convert": ("monai_dicomseg.cli.convert", "change a SEG's type or compression losslessly"),
    "batch": ("monai_dicomseg.cli.batch", "run info/to-nifti/from-nifti/convert over a folder; pull/push in bulk"),
    "pull": ("monai_dicomseg.cli.pull", "retrieve a SEG from a DICOMweb server (WADO-RS) as NIfTI"),
    "push": ("monai_dicomseg.cli.push", "store SEG (or NIfTI -> SEG) files on a DICOMweb server (STOW-RS)"),
    "check": ("monai_dicomseg.cli.check", "validate SEG files and say which viewers/consumers can read them"),
}


def _debug_parent(default: object) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--debug", action="store_true", default=default,
                        help="print the full traceback on error")
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand (imports only the light command modules)."""
    parser = argparse.ArgumentParser(
        prog=PROG, parents=[_debug_parent(False)],
        description="DICOM Segmentation (SEG) <-> NIfTI conversion and inspection.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(
            name, help=help_text, description=(module.__doc__ or help_text).strip().split("\n\n")[0],
            parents=[_debug_parent(argparse.SUPPRESS)],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("monai_dicomseg")
    except Exception:  # pragma: no cover - not installed
        return "unknown"


def one_line(error: BaseException) -> str:
    """The error as one line: its message (or its type when it has none), whitespace collapsed."""
    text = " ".join(str(error).split())
    if isinstance(error, KeyError) and text.startswith("'") and text.endswith("'"):
        text = text[1:-1]
    if not text:
        text = type(error).__name__
    elif not _is_ours(error) and not isinstance(error, (OSError,)):
        text = f"{type(error).__name__}: {text}"
    return text


def _is_ours(error: BaseException) -> bool:
    module = type(error).__module__ or ""
    return module.startswith("monai_dicomseg")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 success, 1 error, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        except OSError:  # pragma: no cover
            pass
        return 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the command line reports every failure
        if args.debug:
            traceback.print_exc()
        else:
            print(f"{PROG} {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
