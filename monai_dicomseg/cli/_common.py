"""Helpers shared by the subcommands: reading inputs, writing outputs, options.

Heavy libraries (numpy, pydicom, nibabel) are imported inside the functions so
that building the argument parser stays instant.
"""
from __future__ import annotations

import argparse
import functools
import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from monai_dicomseg.codec.transfer_syntax import by_name, compression_names, writable_syntaxes
from monai_dicomseg.errors import GeometryError, InputError
from monai_dicomseg.enums import BINARY as _BINARY, FRACTIONAL as _FRACTIONAL, LABELMAP as _LABELMAP

#: ``--compress`` name -> transfer syntax UID (all lossless): the written rows of the one table.
COMPRESSION: dict[str, str] = {name: by_name(name).uid for name in compression_names()}

SEGMENTATION_TYPES = (_BINARY, _LABELMAP, _FRACTIONAL)

NIFTI_SUFFIXES = (".nii.gz", ".nii")

_F = TypeVar("_F", bound=Callable[..., Any])


def strict_keywords(function: _F) -> _F:
    """Make an unknown keyword to ``function`` an InputTypeError naming the closest valid one.

    Python's own ``TypeError`` for an unexpected keyword does not suggest the
    option that was meant; the functions the subcommands call (and that
    scripts call directly) use this so ``overwite=True`` says
    ``did you mean 'overwrite'?``.
    """
    from monai_dicomseg.options import check_options

    names = tuple(name for name, parameter in inspect.signature(function).parameters.items()
                  if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY))

    @functools.wraps(function)
    def checked(*args: Any, **kwargs: Any) -> Any:
        check_options(kwargs, names, function.__name__)
        return function(*args, **kwargs)

    return checked  # type: ignore[return-value]  # functools.wraps keeps the signature: checked is called like function


def add_compress_option(parser: argparse.ArgumentParser, workers: bool = True) -> None:
    kinds = {kind: "/".join(row.name for row in writable_syntaxes(kind)) for kind in SEGMENTATION_TYPES}
    parser.add_argument("--compress", choices=list(COMPRESSION), default="none",
                        help="lossless compression (default: none; deflate: the whole data set, PS3.5 A.5). "
                             + "; ".join(f"{kind}: {names}" for kind, names in kinds.items()))
    if workers:
        parser.add_argument("--workers", type=int, default=0, metavar="N",
                            help="processes compressing frames (0: in process, -1: all cores)")


def add_overwrite_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--overwrite", action="store_true",
                        help="replace output files that exist (default: refuse)")


def add_threshold_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threshold", type=float, default=None, metavar="P",
                        help="FRACTIONAL input only: a voxel belongs to a segment when its fraction is >= P "
                             "(0 < P <= 1); needed to make a label map or a BINARY/LABELMAP SEG of one")


def check_threshold(threshold: "float | str | None") -> "float | None":
    """``threshold`` as a float in (0, 1], or None: the loaders' rule
    (:func:`monai_dicomseg.io.segload.check_threshold`), with errors naming ``--threshold``."""
    from monai_dicomseg.errors import InputTypeError
    from monai_dicomseg.io.segload import check_threshold as check

    if isinstance(threshold, str):
        try:
            threshold = float(threshold)
        except ValueError:
            raise InputError(f"--threshold must be a number in (0, 1]; got {threshold!r}") from None
    try:
        return check(threshold)
    except (InputError, InputTypeError) as error:
        raise type(error)(f"--{error}") from None


def check_input_file(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a Path; InputError naming ``what`` when it is missing or not a file."""
    result = Path(path)
    if not result.exists():
        raise InputError(f"{what} {str(path)!r} does not exist")
    if not result.is_file():
        raise InputError(f"{what} {str(path)!r} is not a file")
    return result


def check_output(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """``path`` as a Path after checking its folder exists and it may be written.

    The writer's check (:func:`monai_dicomseg.io.segwrite.prepare_output_path`), except that a missing
    folder is refused rather than created; an existing file is an OutputExistsError naming ``--overwrite``.
    """
    from monai_dicomseg.io.segwrite import prepare_output_path

    return prepare_output_path(path, overwrite, create_folder=False, overwrite_hint="--overwrite")


def read_seg(path: str | os.PathLike[str]) -> Any:
    """Read a DICOM Segmentation as the loaders do (:func:`monai_dicomseg.io.segload.read_segmentation`).

    Raises
    ------
    InputError
        Missing file, or a path that is not a file.
    DecodeError
        A file that is not a DICOM Segmentation, or cannot be parsed as one (the message names the path).
    """
    from monai_dicomseg.errors import DecodeError
    from monai_dicomseg.io.segload import read_segmentation

    file = check_input_file(path, "SEG file")
    try:
        return read_segmentation(str(file))
    except DecodeError as error:
        raise DecodeError(f"{str(path)!r} is not a readable DICOM Segmentation: {error}") from error


def nifti_stem(path: str | os.PathLike[str]) -> tuple[Path, str]:
    """``(folder, stem)`` of a NIfTI path: ``a/b.nii.gz`` -> ``(a, 'b')``."""
    path = Path(path)
    for suffix in NIFTI_SUFFIXES:
        if path.name.endswith(suffix):
            return path.parent, path.name[: -len(suffix)]
    raise InputError(f"NIfTI output {str(path)!r} must end with .nii.gz or .nii")


def nifti_suffix(path: str | os.PathLike[str]) -> str:
    name = Path(path).name
    return ".nii.gz" if name.endswith(".nii.gz") else ".nii"


def save_nifti(image: Any, path: Path, overwrite: bool) -> None:
    """Save a nibabel image atomically (:func:`monai_dicomseg.atomic.atomic_write`).

    The image is serialised in memory (gzip level 1, as nibabel writes
    ``.nii.gz``) and written through a ``.<name>.<random>.part`` temporary, so
    the file gets normal permissions and a killed run leaves only a temporary
    that the next write cleans up.
    """
    import gzip

    from monai_dicomseg.atomic import atomic_write

    check_output(path, overwrite)
    data = image.to_bytes()
    if nifti_suffix(path) == ".nii.gz":
        data = gzip.compress(data, compresslevel=1, mtime=0)
    atomic_write(path, lambda stream: stream.write(data), overwrite=True)


def save_json(document: Any, path: Path, overwrite: bool) -> None:
    """Write a JSON document atomically."""
    from monai_dicomseg.atomic import atomic_write

    check_output(path, overwrite)
    data = (json.dumps(document, indent=2) + "\n").encode()
    atomic_write(path, lambda stream: stream.write(data), overwrite=True)


def load_json(path: str | os.PathLike[str], what: str) -> Any:
    file = check_input_file(path, what)
    try:
        return json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{what} {str(path)!r} is not valid JSON: {error}") from None


def load_series(folder: "str | os.PathLike[str] | list[str]", headers_only: bool = True, *, volume: Any = None,
                irregular_slices: str = "error") -> Any:
    """Load a source series folder, or the list of its files, (sorted spatially) as a ``SourceSeries``.

    ``headers_only`` skips the pixel data: the SEG writer and the geometry
    need only the headers. ``volume`` (a selector, or the ``--volume`` text:
    JSON such as ``'{"StackID": "2"}'`` or an index) and ``irregular_slices``
    (``--irregular-slices``) are those of
    :func:`~monai_dicomseg.io.source_series.load_source_series`.
    """
    from monai_dicomseg.io.source_series import load_source_geometry, load_source_series
    from monai_dicomseg.io.source_volumes import parse_selector

    options = {"volume": parse_selector(volume), "irregular_slices": irregular_slices}
    if not isinstance(folder, (list, tuple)):
        path = Path(folder)
        if not path.exists():
            raise InputError(f"source series {str(folder)!r} does not exist")
        if not path.is_dir():
            raise InputError(f"source series {str(folder)!r} must be a folder of DICOM files")
    try:  # a list: the files of one series (batch --source-root: a shared folder)
        load = load_source_geometry if headers_only else load_source_series
        return load(list(folder) if isinstance(folder, (list, tuple)) else Path(folder), **options)  # type: ignore[arg-type]  # options are the loaders' own keyword options, built from the parsed arguments
    except (GeometryError, InputError) as error:
        raise _with_cli_options(error) from None


def _with_cli_options(error: Exception) -> Exception:
    """The loaders' error, with the command-line spelling of the option it names (``--volume``, ...)."""
    text = str(error)
    hints = [flag for name, flag in (("volume=", "--volume JSON|INDEX"),
                                     ("irregular_slices=", "--irregular-slices fill|resample")) if name in text]
    if not hints:
        return error
    try:
        return type(error)(f"{text} (on the command line: {' / '.join(hints)})")
    except TypeError:  # a subclass with another signature: keep it as it is
        return error


def add_series_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``--volume JSON|INDEX`` and ``--irregular-slices POLICY``: how the source series is loaded (``what``)."""
    # the choices of geometry.slice_grid.IRREGULAR_SLICES_POLICIES (not imported here: --help stays light)
    parser.add_argument("--volume", metavar="JSON|INDEX",
                        help=f"{what}: which volume when the series holds several (stacks, temporal positions, "
                             "echoes, acquisitions): an index into the volumes the error lists, or JSON such as "
                             "'{\"StackID\": \"2\"}' or '{\"TemporalPositionIndex\": 2}'")
    parser.add_argument("--irregular-slices", choices=("error", "fill", "resample"), default="error",
                        help=f"{what}: slices not evenly spaced (a missing slice): error (default), fill (a regular "
                             "grid, missing slices filled) or resample (a regular grid at the median spacing)")


def add_profile_option(parser: argparse.ArgumentParser) -> None:
    """``--profile NAME``: the consumer the SEG is for (:mod:`monai_dicomseg.seg.profiles`)."""
    from monai_dicomseg.seg.profiles import profile_names

    parser.add_argument("--profile", choices=profile_names(), default=None,
                        help="the consumer the SEG is for: it chooses --type and --compress (those left at their "
                             "defaults); an explicit value it does not read is an error")


def profile_cli_choice(profile: "str | None", segmentation_type: str, compress: str) -> tuple[str, str]:
    """``(type, compress)`` after ``--profile``: ``--type BINARY`` / ``--compress none`` (the defaults) are chosen
    by the profile; other values are kept when the consumer reads them, else InputError naming both."""
    if profile is None:
        return segmentation_type, compress
    from monai_dicomseg.seg.profiles import resolve_profile

    resolved = resolve_profile(profile, None if segmentation_type == _BINARY else segmentation_type,
                               None if compress in (None, "none") else compress)
    return resolved.segmentation_type, resolved.compression


def profile_notes(profile: "str | None", seg: Any) -> list[str]:
    """What ``--profile``'s consumer may still misread in the SEG ``seg`` just built (e.g. OHIF: BINARY frames
    whose layout it guesses from the padded length, segment numbers above 255)."""
    if profile is None:
        return []
    from monai_dicomseg.seg.profiles import dataset_problems

    return [f"profile {profile!r}: {problem}" for problem in dataset_problems(profile, seg)]
