"""Convert a DICOM SEG to NIfTI, with a JSON sidecar in dcmqi's metadata format.

By default one label map (voxel value = segment number) is written; with
``--per-segment`` one file per segment (``OUT-<n>.nii.gz``); with ``--stack``
one 4D file (segments along the 4th axis, in segment-number order). A
FRACTIONAL SEG is written as a stack (or one 3D file for one segment), with
stored values (``--fractional raw``, uint8) or probabilities (``float``).

With ``--source SERIES_DIR`` the NIfTI grid is the grid of the source series
(every slice, including those with no SEG frame); otherwise it spans the SEG's
own frames. Arrays are in ITK/MONAI order (columns, rows, slices) with slices
along the slice normal and a RAS affine, as dcmqi and MONAI write them. The
sidecar ``OUT.json`` lists each file's segments (``labelID`` = voxel value)
and can be passed back to ``from-nifti --metadata``.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from monai_dicomseg.cli._common import (
    add_overwrite_option,
    add_series_options,
    add_threshold_option,
    check_output,
    check_threshold,
    load_series,
    nifti_stem,
    nifti_suffix,
    read_seg,
    save_json,
    save_nifti,
    strict_keywords,
)
from monai_dicomseg.errors import GeometryError, InputError
from monai_dicomseg.enums import FRACTIONAL as _FRACTIONAL

__all__ = ["add_arguments", "add_options", "run", "seg_to_nifti"]


def add_options(parser: argparse.ArgumentParser, batch: bool = False) -> None:
    """The options (no positionals), shared with ``batch to-nifti``."""
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument("--per-segment", action="store_true", help="one file per segment: OUT-<n>.nii.gz")
    layout.add_argument("--stack", action="store_true", help="one 4D file, one volume per segment")
    layout.add_argument("--label-map", action="store_true",
                        help="one label map (the default for BINARY/LABELMAP; a FRACTIONAL SEG needs --threshold)")
    parser.add_argument("--fractional", choices=("raw", "float"), default="float",
                        help="FRACTIONAL values: stored integers (raw) or floats in [0, 1] (default)")
    parser.add_argument("--no-sidecar", action="store_true", help="do not write the JSON sidecar")
    parser.add_argument("--allow-other-series", action="store_true",
                        help="with --source: accept a series the SEG does not reference if it shares the SEG's "
                             "Frame of Reference (another kernel or phase; placement still exact)")
    add_series_options(parser, "with --source" if not batch else "with a source series")
    add_threshold_option(parser)
    add_overwrite_option(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("seg", metavar="SEG", help="DICOM Segmentation file")
    parser.add_argument("output", metavar="OUT.nii.gz", help="NIfTI file to write (.nii.gz or .nii)")
    parser.add_argument("--source", metavar="SERIES_DIR",
                        help="source series folder: write on its full grid instead of the SEG's extent")
    add_options(parser)


def run(args: argparse.Namespace) -> int:
    written = seg_to_nifti(args.seg, args.output, **options_from_args(args))
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "source": getattr(args, "source", None),
        "per_segment": args.per_segment,
        "stack": args.stack,
        "fractional": args.fractional,
        "sidecar": not args.no_sidecar,
        "overwrite": args.overwrite,
        "threshold": getattr(args, "threshold", None),
        "label_map": getattr(args, "label_map", None) or None,
        "allow_other_series": bool(getattr(args, "allow_other_series", False)),
        "volume": getattr(args, "volume", None),
        "irregular_slices": getattr(args, "irregular_slices", "error"),
    }


def _source_grid(source: "str | list[str]", seg: Any = None, volume: Any = None,
                 irregular_slices: str = "error") -> Any:
    """The source series' full grid as the loaders take a reference image (RAS, MONAI order).

    ``volume`` None picks the volume whose frames ``seg`` references (as
    ``DicomSegReader`` does), the only one of a one-volume series.
    """
    from monai_dicomseg.io.segload import ReferenceGrid
    from monai_dicomseg.io.source_volumes import VolumeIdentity, seg_frame_references

    if (volume is None or volume == "") and seg is not None:
        volume = seg_frame_references(seg)
    series = load_series(source, volume=volume, irregular_slices=irregular_slices)
    where = "" if isinstance(source, (list, tuple)) else str(source)  # read again only to name the SEG's volume
    identity = VolumeIdentity(series.frames_key, series.volume_selector, where) if series.frames_key else None
    return ReferenceGrid(
        affine=series.monai_affine("RAS"),
        spatial_shape=tuple(int(n) for n in series.geometry.spatial_shape[::-1]),  # type: ignore[arg-type]  # tuple() of the 3 spatial sizes is typed tuple[int, ...]
        space="RAS", frame_of_reference_uid=series.frame_of_reference_uid,
        series_instance_uid=series.series_instance_uid,
        identity=identity)  # with --volume: a SEG of another volume of the series is refused


def load_label_array(seg: Any, *, mode: str, raw: bool, threshold: "float | None", source: Any = None,
                     allow_other_series: bool = False, volume: Any = None, irregular_slices: str = "error") -> Any:
    """The SEG as the loaders decode it (:func:`monai_dicomseg.io.segload.load_seg_array`): ``LoadedSeg``.

    ``array`` is ``(C, X, Y, Z)`` in MONAI order and ``meta["affine"]`` RAS, on
    the SEG's own extent or, with ``source``, on the source series' full grid
    (the same placement as ``LoadDicomSegd(ref_key=...)``: exact or a
    GeometryError).

    Raises
    ------
    OverlapError
        ``mode="labelmap"`` and segments overlap (or pass ``threshold`` in more than one segment).
    GeometryError
        With ``source``: the SEG is not on the source series' grid, or is of another Frame of Reference or
        (unless ``allow_other_series``) of another series.
    """
    from monai_dicomseg.io.segload import load_seg_array

    if int(seg.get("NumberOfFrames", 0) or 0) == 0:
        raise InputError("the SEG holds no frames; there is no extent to convert (use --source)")
    reference = None if source is None else _source_grid(source, seg, volume, irregular_slices)
    try:
        return load_seg_array(seg, mode=mode, rescale_fractional=not raw, reference=reference, threshold=threshold,
                              allow_other_series=allow_other_series)
    except GeometryError as error:
        if reference is None:
            raise
        raise GeometryError(f"the SEG's frames do not lie on the source series' grid: {error}") from None


def _nifti(array: Any, affine: Any) -> Any:
    """nibabel image of an ``(X, Y, Z[, S])`` array in ITK/MONAI order with its RAS affine."""
    import nibabel
    import numpy as np

    image = nibabel.Nifti1Image(np.asfortranarray(array), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    return image


def _check_layout(seg: Any, seg_path: str, *, label_map: bool | None, split: bool, threshold: float | None) -> None:
    """Refuse ``label_map`` with a per-segment/stacked layout (``split``), and a threshold that does not apply.

    Raises
    ------
    InputError
        ``label_map`` with ``split``; a label map of a FRACTIONAL SEG without ``threshold``; ``threshold``
        for a SEG that is not FRACTIONAL.
    """
    fractional = seg.segmentation_type.value == _FRACTIONAL
    if label_map and split:
        raise InputError("label_map cannot be combined with per_segment or stack")
    if fractional and label_map and threshold is None:
        raise InputError(
            f"{str(seg_path)!r} is a FRACTIONAL SEG: a label map of it needs --threshold (threshold=), the "
            "fraction at or above which a voxel belongs to a segment")
    if threshold is not None and not fractional:
        raise InputError(f"--threshold applies to FRACTIONAL SEGs only; {str(seg_path)!r} is "
                         f"{seg.segmentation_type.value}")


@strict_keywords
def seg_to_nifti(
    seg_path: str,
    output: str,
    *,
    source: str | None = None,
    per_segment: bool = False,
    stack: bool = False,
    fractional: str = "float",
    sidecar: bool = True,
    overwrite: bool = False,
    threshold: float | None = None,
    label_map: bool | None = None,
    allow_other_series: bool = False,
    volume: "str | int | None" = None,
    irregular_slices: str = "error",
) -> list[Path]:
    """Convert a SEG file to NIfTI file(s); return the paths written (sidecar last).

    A FRACTIONAL SEG is written as fractions (a 4D stack, or one 3D file for
    one segment) unless ``threshold`` is given: then each segment is the mask
    ``fraction >= threshold`` (fractions rescaled to [0, 1]) and the output is
    laid out as for a BINARY SEG (label map by default, ``per_segment``,
    ``stack``). ``label_map=True`` asks for a label map explicitly; for a
    FRACTIONAL SEG it needs ``threshold`` (InputError naming ``--threshold``
    otherwise).

    The arrays are those of the loaders
    (:func:`monai_dicomseg.io.segload.load_seg_array`, as ``LoadDicomSeg``
    gives them): ``(X, Y, Z)`` label map or ``(X, Y, Z, S)`` stack, RAS
    affine; with ``source`` on the series' full grid, placed exactly as
    ``LoadDicomSegd(ref_key=...)`` places it (``allow_other_series``: a
    series of the SEG's Frame of Reference that the SEG does not reference).
    ``volume`` (``--volume``) picks the volume of a ``source`` holding
    several (default: the one whose frames the SEG references) and
    ``irregular_slices`` (``--irregular-slices``) is the gap policy of its
    grid, as in ``LoadDicomSeries``.

    Raises
    ------
    InputError
        Missing input, unwritable output.
    DecodeError
        The input is not a DICOM Segmentation.
    OverlapError
        Overlapping segments (or, with ``threshold``, fractions passing in
        two segments) for a label map: the loaders' error.
    GeometryError
        With ``source``: the SEG is not on the source series' grid.
    """
    import numpy as np

    from monai_dicomseg.cli.dcmqi_meta import dcmqi_metadata_from_seg

    folder, stem = nifti_stem(output)
    suffix = nifti_suffix(output)
    check_output(output, overwrite)
    if fractional not in ("raw", "float"):
        raise InputError(f"fractional must be 'raw' or 'float'; got {fractional!r}")
    threshold = check_threshold(threshold)
    seg = read_seg(seg_path)
    _check_layout(seg, seg_path, label_map=label_map, split=per_segment or stack, threshold=threshold)
    numbers = [int(n) for n in seg.segment_numbers]
    # FRACTIONAL with a threshold: masks from here on, laid out as a BINARY SEG
    is_fractional = seg.segmentation_type.value == _FRACTIONAL and threshold is None
    combine = not (per_segment or stack or is_fractional)
    loaded = load_label_array(seg, mode="labelmap" if combine else "stacked", raw=fractional == "raw",
                              threshold=threshold, source=source, allow_other_series=allow_other_series,
                              volume=volume, irregular_slices=irregular_slices)
    array, affine = loaded.array, loaded.meta["affine"]
    outputs: list[tuple[Path, Any]] = []
    groups: list[list[int]]
    if combine:
        outputs.append((Path(output), array[0]))
        groups = [numbers]
    elif per_segment or (is_fractional and not stack and len(numbers) == 1):
        for channel, number in enumerate(numbers):
            values = array[channel]
            if not is_fractional:
                values = values * (np.uint8(number) if number <= 255 else np.uint16(number))
            path = Path(output) if len(numbers) == 1 and is_fractional and not per_segment \
                else folder / f"{stem}-{number}{suffix}"
            outputs.append((path, values))
        groups = [[n] for n in numbers]
    else:
        outputs.append((Path(output), np.moveaxis(array, 0, -1)))
        groups = [[n] for n in numbers]
    for path, _ in outputs[1:]:
        check_output(path, overwrite)
    written = []
    for path, values in outputs:
        save_nifti(_nifti(values, affine), path, overwrite)
        written.append(path)
    if sidecar:
        json_path = folder / f"{stem}.json"
        save_json(dcmqi_metadata_from_seg(seg, groups), json_path, overwrite)
        written.append(json_path)
    return written
