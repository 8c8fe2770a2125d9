"""Convert a NIfTI segmentation to a DICOM SEG of its source series.

LABELS is a 3D label map (voxel value = label, 0 = background), a 3D float
map (one FRACTIONAL segment) or a 4D stack (one segment per volume). Segment
names, codes and colours come from a dcmqi metadata JSON (``--metadata``,
``segmentAttributes`` with ``labelID``s, accepted as is; segments are numbered
1, 2, ... in ``labelID`` order) or from ``--labels`` names (label ``i`` is the
``i``-th name), looked up in the shipped anatomy table. The NIfTI is placed on
the series grid through both affines (exactly when the grids align, by
nearest neighbour otherwise). A label map whose grid lies mostly outside the
series (less than half of its world box inside the series' box, unless it
covers the whole series and is at most 8 times its size: made for another
series?) is refused unless ``--allow-grid-mismatch`` is given; the rule is
:mod:`monai_dicomseg.geometry.correspondence`'s, shared with the MONAI writer.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monai_dicomseg.cli._common import (
    SEGMENTATION_TYPES,
    add_compress_option,
    add_overwrite_option,
    add_profile_option,
    add_series_options,
    check_input_file,
    check_output,
    load_json,
    load_series,
    profile_cli_choice,
    profile_notes,
    strict_keywords,
)
from monai_dicomseg.enums import Interpolation
from monai_dicomseg.errors import InputError
from monai_dicomseg.enums import BINARY as _BINARY, FRACTIONAL as _FRACTIONAL

__all__ = ["add_arguments", "add_options", "run", "nifti_to_seg"]


def add_options(parser: argparse.ArgumentParser, batch: bool = False) -> None:
    """The options (no positionals), shared with ``batch from-nifti``."""
    parser.add_argument("--metadata", metavar="META.json",
                        help="dcmqi segmentation metadata JSON (segmentAttributes, labelID, codes, colours)")
    parser.add_argument("--labels", metavar="NAME,...",
                        help="segment names (without --metadata): comma-separated for labels 1, 2, ... (a leading "
                             "'background' entry names label 0, so the next names label 1), or a JSON mapping "
                             "such as a bundle's channel_def '{\"0\": \"background\", \"1\": \"liver\"}'")
    parser.add_argument("--type", dest="segmentation_type", choices=SEGMENTATION_TYPES, default=_BINARY,
                        type=str.upper, help="segmentation type (default: BINARY)")
    parser.add_argument("--fractional-type", choices=("PROBABILITY", "OCCUPANCY"), default="PROBABILITY",
                        type=str.upper, help="meaning of FRACTIONAL values (default: PROBABILITY)")
    parser.add_argument("--series-description", help="SeriesDescription of the SEG")
    parser.add_argument("--algorithm-name", default="monai-dicomseg",
                        help="algorithm name recorded with --labels or default names")
    parser.add_argument("--allow-grid-mismatch", action="store_true",
                        help="resample a label map whose grid lies mostly outside the series (less than half of "
                             "its world box inside the series' box, and not a padded grid of the series) instead "
                             "of refusing it")
    # enums.Interpolation's values (io.prediction is not imported here: --help stays light)
    parser.add_argument("--interpolation", choices=[choice.value for choice in Interpolation],
                        default=Interpolation.AUTO.value, type=str.lower,
                        help="when the grids differ by more than flips/permutations/crops/pads: auto (default, as "
                             "the MONAI writer: nearest for label maps and stacks, linear for FRACTIONAL maps), "
                             "nearest or linear")
    add_series_options(parser, "the source series")
    add_compress_option(parser, workers=not batch)
    add_profile_option(parser)
    add_overwrite_option(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("labels_path", metavar="LABELS.nii.gz", help="NIfTI segmentation")
    parser.add_argument("series", metavar="SERIES_DIR", help="folder of the source DICOM series")
    parser.add_argument("output", metavar="OUT.dcm", help="SEG file to write")
    add_options(parser)


def run(args: argparse.Namespace) -> int:
    info = nifti_to_seg(args.labels_path, args.series, args.output, **options_from_args(args))
    for note in info["warnings"]:
        print(f"monai-dicomseg from-nifti: warning: {note}", file=sys.stderr)
    print(f"wrote {args.output}: {info['segmentation_type']} SEG, {info['segments']} segment(s), "
          f"{info['frames']} frame(s){' (resampled)' if info['resampled'] else ''}")
    return 0


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "metadata": args.metadata,
        "labels": parse_labels_option(args.labels),
        "segmentation_type": args.segmentation_type,
        "fractional_type": args.fractional_type,
        "series_description": args.series_description,
        "algorithm_name": args.algorithm_name,
        "compress": args.compress,
        "workers": getattr(args, "workers", 0) if not getattr(args, "batch", False) else 0,
        "overwrite": args.overwrite,
        "allow_grid_mismatch": bool(getattr(args, "allow_grid_mismatch", False)),
        "interpolation": getattr(args, "interpolation", "auto"),
        "profile": getattr(args, "profile", None),
        "volume": getattr(args, "volume", None),
        "irregular_slices": getattr(args, "irregular_slices", "error"),
    }


def parse_labels_option(text: "str | None") -> Any:
    """``--labels``: ``"liver,spleen"`` -> list; ``'{"1": "liver"}'`` (JSON mapping) -> dict."""
    if text is None:
        return None
    if text.lstrip().startswith("{"):
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(f"--labels looks like JSON but is not valid JSON: {error}") from None
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            raise InputError("--labels as JSON must map label values to names, e.g. {\"1\": \"liver\"}")
        return mapping
    return [name.strip() for name in text.split(",")]


# --------------------------------------------------------------------------- work


def _load_nifti(path: str) -> tuple[Any, Any]:
    """``(array (I, J, K[, S]), RAS affine)`` of a NIfTI file."""
    import nibabel
    import numpy as np

    file = check_input_file(path, "NIfTI file")
    try:
        image = nibabel.load(str(file))
        array = np.asanyarray(image.dataobj)  # type: ignore[attr-defined]  # nibabel.load gives a spatial image (Nifti1/2) for a NIfTI file; typed as FileBasedImage
    except Exception as error:  # nibabel raises many types on bad files
        raise InputError(f"{str(path)!r} is not a readable NIfTI image: {error}") from None
    while array.ndim > 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 5 and array.shape[3] == 1:  # ITK vector images (I, J, K, 1, S)
        array = array[:, :, :, 0, :]
    if array.ndim not in (3, 4):
        raise InputError(f"{str(path)!r} must be a 3D or 4D image; got shape {array.shape}")
    return array, np.asarray(image.affine, dtype=np.float64)  # type: ignore[attr-defined]  # nibabel.load gives a spatial image (Nifti1/2) for a NIfTI file; typed as FileBasedImage


def _as_model_output(pixel_array: Any, stacked: bool, fractional: bool) -> tuple[Any, str]:
    """``((C, I, J, K) array, input kind)``: the NIfTI's values as the MONAI writer takes a model output.

    A label map is one channel of labels; a 4D stack one 0/1 channel per
    segment (``value > 0``); a FRACTIONAL map (3D, or a 4D stack) one
    probability channel per segment.
    """
    import numpy as np

    if fractional:
        return (np.moveaxis(pixel_array, 3, 0) if stacked else pixel_array[None]), "probabilities"
    if stacked:
        return np.moveaxis(pixel_array > 0, 3, 0).astype(np.uint8), "onehot"
    return pixel_array[None], "labels"


def _as_labels(array: Any, path: str) -> Any:
    """An unsigned integer label map; InputError for negative or non-integer values."""
    import numpy as np

    if array.dtype.kind == "b":
        return array.astype(np.uint8)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.array_equal(array, np.rint(array)):
            raise InputError(f"{str(path)!r} holds non-integer values; use --type FRACTIONAL for a "
                             "probability map")
    if array.size and array.min() < 0:
        raise InputError(f"{str(path)!r} holds negative labels (minimum {array.min()})")
    top = int(array.max()) if array.size else 0
    if top > 65535:
        raise InputError(f"{str(path)!r} holds labels up to {top}; at most 65535 are supported")
    dtype = np.uint8 if top <= 255 else np.uint16
    return array if array.dtype == dtype else array.astype(dtype)


def _present_labels(labels: Any) -> list[int]:
    import numpy as np

    counts = np.bincount(labels.reshape(-1), minlength=1)
    return [int(v) for v in np.flatnonzero(counts) if v > 0]


def _volume_segments(array: Any, stacked: bool, meta: Any, names: Any, path: str,
                     algorithm_name: str) -> tuple[Any, tuple[list[Any], list[str]], dict[str, Any]]:
    """:func:`_segments` for one volume per segment (``stacked``: the 4th axis) or one fractional volume."""
    from monai_dicomseg.cli.dcmqi_meta import descriptions_from_names
    from monai_dicomseg.io.prediction import is_background_name

    count = array.shape[3] if stacked else 1
    if meta is not None:
        if len(meta.descriptions) != count:
            raise InputError(f"{str(path)!r} has {count} segment volume(s) but the metadata "
                             f"describes {len(meta.descriptions)} segment(s)")
        return array, (meta.descriptions, []), meta.series
    if isinstance(names, Mapping):
        raise InputError(f"{str(path)!r} has {count} segment volume(s): give --labels as a list, one name "
                         "per volume ('background' for a volume that is not a segment)")
    names = names or [f"Segment {n}" for n in range(1, count + 1)]
    if len(names) != count:
        raise InputError(f"{str(path)!r} has {count} segment volume(s) but --labels names {len(names)}")
    keep = [index for index, name in enumerate(names) if not is_background_name(name)]
    if not keep:
        raise InputError(f"--labels names only the background; {str(path)!r} needs at least one segment")
    if len(keep) != count:
        array = array[..., keep]
    return array, descriptions_from_names([names[i] for i in keep], algorithm_name), {}


def _segments(array: Any, stacked: bool, fractional: bool, metadata: Any, names: Any,
              path: str, algorithm_name: str) -> tuple[Any, tuple[list[Any], list[str]], dict[str, Any]]:
    """``(pixel array, (descriptions, warnings), series attributes)`` ready for the writer."""
    import numpy as np

    from monai_dicomseg.cli.dcmqi_meta import descriptions_from_names, read_dcmqi_metadata
    from monai_dicomseg.io.prediction import label_value_names, values_text

    if metadata is not None and names is not None:
        raise InputError("give either --metadata or --labels, not both")
    meta = None
    if metadata is not None:
        meta = read_dcmqi_metadata(load_json(metadata, "metadata JSON"), where=str(metadata))
    if stacked or fractional:
        return _volume_segments(array, stacked, meta, names, path, algorithm_name)
    labels = _as_labels(array, path)
    present = _present_labels(labels)
    if meta is not None:
        unknown = sorted(set(present) - set(meta.label_ids))
        if unknown:
            raise InputError(f"{str(path)!r} holds label(s) {unknown[:10]} that the metadata does not describe "
                             f"(labelIDs {meta.label_ids[:10]}{'...' if len(meta.label_ids) > 10 else ''})")
        if meta.label_ids != list(range(1, len(meta.label_ids) + 1)):
            table = np.zeros(max(meta.label_ids) + 1, dtype=np.uint16 if len(meta.label_ids) > 255 else np.uint8)
            table[meta.label_ids] = np.arange(1, len(meta.label_ids) + 1)
            labels = table[labels]
        return labels, (meta.descriptions, []), meta.series
    top = max(present, default=0)
    if names is not None:
        # the writer's labels contract (monai_dicomseg.io.prediction.plan_output_segments) for label maps
        value_names, background = label_value_names(names)
        keys = sorted(value_names)
        unknown = sorted(set(present) - set(keys) - {background})
        if unknown:
            raise InputError(
                f"{str(path)!r} holds label values {values_text(present)} but --labels names {len(keys)} "
                f"(values {values_text(keys) or 'none'}); values {values_text(unknown)} have no name")
        if not keys:
            raise InputError("--labels names only the background; at least one segment is needed")
        if keys != list(range(1, len(keys) + 1)):
            table = np.zeros(max(keys + [top]) + 1, dtype=np.uint16 if len(keys) > 255 else np.uint8)
            table[keys] = np.arange(1, len(keys) + 1)
            labels = table[labels]
        return labels, descriptions_from_names([value_names[k] for k in keys], algorithm_name), {}
    if top == 0:
        raise InputError(f"{str(path)!r} holds no labelled voxel")
    descriptions, _ = descriptions_from_names([f"Segment {n}" for n in range(1, top + 1)], algorithm_name)
    return labels, (descriptions, []), {}


@strict_keywords
def nifti_to_seg(
    labels_path: str,
    series: str,
    output: str,
    *,
    metadata: str | None = None,
    labels: "list[str] | Mapping[Any, str] | None" = None,
    segmentation_type: str = _BINARY,
    fractional_type: str = "PROBABILITY",
    series_description: str | None = None,
    algorithm_name: str = "monai-dicomseg",
    compress: str = "none",
    workers: int = 0,
    overwrite: bool = False,
    allow_grid_mismatch: bool = False,
    profile: "str | None" = None,
    interpolation: str = "auto",
    volume: "str | int | None" = None,
    irregular_slices: str = "error",
) -> dict[str, Any]:
    """Write ``output``, a SEG of the series in folder ``series``, from a NIfTI file.

    ``labels`` follows the writer's labels contract
    (:func:`monai_dicomseg.io.prediction.plan_output_segments`): a list names label
    values 1, 2, ... (or 0, 1, ... when it starts with ``"background"``), a
    mapping (a bundle's ``channel_def``, keys int or digit strings) names
    them by key; the background is never written; a label value present
    without a name is an InputError naming both counts.

    The NIfTI grid must correspond to the series
    (:func:`monai_dicomseg.geometry.correspondence.check_grid_correspondence`):
    less than half of its world box inside the series' box (unless it covers
    the whole series and is at most 8 times its size) is a GeometryError
    unless ``allow_grid_mismatch`` (``--allow-grid-mismatch``).

    The SEG is planned and encoded by the MONAI writer's own torch-free core
    (:func:`monai_dicomseg.io.segwrite.build_segmentation`, what
    ``DicomSegWriter`` / ``SaveDicomSeg`` call): the NIfTI is the model
    output ``(C, I, J, K)`` (a label map, one 0/1 channel per volume of a
    stack, or FRACTIONAL probabilities) on its RAS grid, so the same input
    gives the same SEG through either door. ``interpolation`` (used only when
    the grids differ by more than flips/permutations/crops/pads): ``"auto"``
    is nearest for labels and stacks, linear for FRACTIONAL maps.

    ``volume`` (``--volume``: JSON such as ``'{"StackID": "2"}'`` or an
    index) picks the volume of a series holding several (stacks, phases,
    echoes); the SEG references that volume's images or frames only.
    ``irregular_slices`` (``--irregular-slices``) is the series' gap policy,
    as in ``LoadDicomSeries``: with ``"fill"`` the NIfTI may be on the
    filled grid (frames are written for the source slices only).

    Returns
    -------
    dict
        ``segmentation_type``, ``segments``, ``frames``, ``resampled``.
    """
    import numpy as np

    from monai_dicomseg import __version__
    from monai_dicomseg.codec.compression import compression_transfer_syntax
    from monai_dicomseg.io.segwrite import build_segmentation

    out = check_output(output, overwrite)
    segmentation_type, compress = profile_cli_choice(profile, segmentation_type.upper(), compress)
    if segmentation_type not in SEGMENTATION_TYPES:
        raise InputError(f"--type must be one of {SEGMENTATION_TYPES}; got {segmentation_type!r}")
    array, affine = _load_nifti(labels_path)
    source = load_series(series, volume=volume, irregular_slices=irregular_slices)
    fractional = segmentation_type == _FRACTIONAL and array.dtype.kind == "f"
    stacked = array.ndim == 4
    if fractional and not np.all(np.isfinite(array)):
        raise InputError(f"{str(labels_path)!r} holds NaN or infinite values")
    if not fractional and not stacked:
        array = _as_labels(array, labels_path)  # integer labels (small dtype) so the mapping moves fewer bytes
    pixel_array, (descriptions, notes), series_attributes = _segments(
        array, stacked, fractional, metadata, labels, labels_path, algorithm_name)
    channels, kind = _as_model_output(pixel_array, stacked, fractional)
    built = build_segmentation(  # the MONAI writer's planner and writer (DicomSegWriter / SaveDicomSeg)
        channels, affine, source, segmentation_type=segmentation_type, space="RAS", labels=descriptions,
        background=None if kind == "labels" else False, input_kind=kind, interpolation=interpolation,
        allow_grid_mismatch=allow_grid_mismatch, encoder_options={
            "series_number": int(series_attributes.get("SeriesNumber", 300)),
            "instance_number": int(series_attributes.get("InstanceNumber", 1)),
            "manufacturer": "monai_dicomseg", "manufacturer_model_name": "monai-dicomseg from-nifti",
            "software_versions": __version__, "device_serial_number": "0", "fractional_type": fractional_type,
            "content_label": series_attributes.get("ContentLabel"),
            "content_description": series_attributes.get("ContentDescription"),
            "content_creator_name": series_attributes.get("ContentCreatorName"),
            "transfer_syntax_uid": compression_transfer_syntax(compress), "workers": workers})
    seg, resampled = built.seg, built.resampled
    for keyword in ("SeriesDescription", "BodyPartExamined", "ClinicalTrialSeriesID",
                    "ClinicalTrialTimePointID", "ClinicalTrialCoordinatingCenterName"):
        if series_attributes.get(keyword):
            setattr(seg, keyword, series_attributes[keyword])
    if series_description:
        seg.SeriesDescription = series_description
    elif "SeriesDescription" not in seg:
        seg.SeriesDescription = "Segmentation"
    notes = [*notes, *profile_notes(profile, seg)]
    seg.save_as(Path(out), overwrite=overwrite, release_frames=True)  # written once: frames let go as written
    return {"segmentation_type": segmentation_type, "segments": len(descriptions),
            "frames": int(seg.get("NumberOfFrames", 0)), "resampled": resampled, "warnings": notes}
