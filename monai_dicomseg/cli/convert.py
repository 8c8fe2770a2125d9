"""Rewrite a DICOM SEG with another type (BINARY <-> LABELMAP) or compression, losslessly.

The segments, their descriptions and every labelled voxel are kept; the new
instance gets new Series and SOP Instance UIDs. Without ``--source`` the
source images are reconstructed from the SEG's own references (each frame's
Derivation Image Sequence and plane position), which is enough for SEGs of
single-frame series; give ``--source SERIES_DIR`` for anything else.
"""
from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

from monai_dicomseg.cli._common import (
    COMPRESSION,
    add_compress_option,
    add_overwrite_option,
    add_threshold_option,
    check_output,
    check_threshold,
    load_series,
    read_seg,
    strict_keywords,
    thresholded_volume,
)
from monai_dicomseg.errors import GeometryError, InputError, UnsupportedError

__all__ = ["add_arguments", "add_options", "run", "convert_seg"]

_COPIED = ("SeriesDescription", "ContentCreatorName", "BodyPartExamined", "ClinicalTrialSeriesID",
           "ClinicalTrialTimePointID", "ClinicalTrialCoordinatingCenterName")


def add_options(parser: argparse.ArgumentParser, batch: bool = False) -> None:
    """The options (no positionals), shared with ``batch convert``."""
    parser.add_argument("--type", dest="segmentation_type", choices=("BINARY", "LABELMAP"), required=True,
                        type=str.upper, help="segmentation type of the output")
    add_threshold_option(parser)
    add_compress_option(parser, workers=not batch)
    add_overwrite_option(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("seg", metavar="SEG", help="DICOM Segmentation file")
    parser.add_argument("output", metavar="OUT.dcm", help="SEG file to write")
    parser.add_argument("--source", metavar="SERIES_DIR",
                        help="source series folder (default: rebuilt from the SEG's references)")
    add_options(parser)


def run(args: argparse.Namespace) -> int:
    info = convert_seg(args.seg, args.output, segmentation_type=args.segmentation_type,
                       source=args.source, compress=args.compress, workers=args.workers,
                       overwrite=args.overwrite, threshold=args.threshold)
    print(f"wrote {args.output}: {info['segmentation_type']} SEG, {info['segments']} segment(s), "
          f"{info['frames']} frame(s)")
    return 0


def _referenced_classes(seg: Any) -> dict[str, str]:
    classes: dict[str, str] = {}
    for series in seg.get("ReferencedSeriesSequence", []):
        for item in series.get("ReferencedInstanceSequence", []):
            classes[str(item.ReferencedSOPInstanceUID)] = str(item.ReferencedSOPClassUID)
    return classes


def _pseudo_sources(seg: Any, volume: Any) -> list[Any]:
    """One header-only single-frame dataset per plane of ``volume``, named as the SEG references them."""
    import numpy as np
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    index = seg._get_frame_index()
    if index.image_positions is None:
        raise UnsupportedError("the SEG has no plane positions; pass --source")
    if len(index.ref_frame_number) and np.any(index.ref_frame_number > 0):
        raise UnsupportedError("the SEG references frames of multi-frame images; pass --source")
    planes = volume.map_reference_to_indices(index.image_positions, round_output=True)[:, 0]
    uid_of_plane: dict[int, str] = {}
    for frame, uid in zip(index.ref_frame, index.ref_sop_instance_uid):
        uid_of_plane.setdefault(int(planes[frame]), str(uid))
    classes = _referenced_classes(seg)
    series_uids = [str(s.SeriesInstanceUID) for s in seg.get("ReferencedSeriesSequence", [])]
    if len(series_uids) != 1:
        raise UnsupportedError(f"the SEG references {len(series_uids)} series; pass --source")
    thickness = _slice_thickness(seg) or float(volume.spacing_between_slices)
    orientation = [float(v) for v in volume.direction_cosines]
    spacing = [float(v) for v in volume.pixel_spacing]
    sources = []
    for plane in range(volume.spatial_shape[0]):
        ds = Dataset()
        for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
                        "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
                        "StudyDescription", "PositionReferenceIndicator"):
            if keyword in seg:
                ds[keyword] = copy.deepcopy(seg[keyword])
        uid = uid_of_plane.get(plane) or generate_uid()
        ds.SOPInstanceUID = uid
        ds.SOPClassUID = classes.get(uid, "1.2.840.10008.5.1.4.1.1.2")
        ds.SeriesInstanceUID = series_uids[0]
        ds.FrameOfReferenceUID = seg.FrameOfReferenceUID
        ds.Modality = "OT"
        ds.Rows, ds.Columns = int(seg.Rows), int(seg.Columns)
        ds.ImagePositionPatient = [float(v) for v in volume.affine[:3, :3] @ [plane, 0, 0] + volume.affine[:3, 3]]
        ds.ImageOrientationPatient = orientation
        ds.PixelSpacing = spacing
        ds.SliceThickness = thickness
        sources.append(ds)
    return sources


def _slice_thickness(seg: Any) -> float | None:
    """SliceThickness of the SEG's shared (or first per-frame) Pixel Measures, if recorded."""
    for groups in (seg.get("SharedFunctionalGroupsSequence"), seg.get("PerFrameFunctionalGroupsSequence")):
        if groups and groups[0].get("PixelMeasuresSequence"):
            value = groups[0].PixelMeasuresSequence[0].get("SliceThickness")
            if value not in (None, ""):
                return float(value)
    return None


@strict_keywords
def convert_seg(
    seg_path: str,
    output: str,
    *,
    segmentation_type: str,
    source: str | None = None,
    compress: str = "none",
    workers: int = 0,
    overwrite: bool = False,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Write ``output``: the SEG at ``seg_path`` with another type and/or compression.

    A FRACTIONAL SEG becomes BINARY/LABELMAP only with ``threshold`` (a voxel
    belongs to a segment when its fraction, rescaled to [0, 1] by
    MaximumFractionalValue, is >= ``threshold``); without it the conversion
    would lose information silently, so it is refused.
    """
    from monai_dicomseg import __version__
    from monai_dicomseg.errors import OverlapError
    from monai_dicomseg.seg.segmentation import Segmentation
    from monai_dicomseg.uid import UID

    out = check_output(output, overwrite)
    segmentation_type = segmentation_type.upper()
    if segmentation_type not in ("BINARY", "LABELMAP"):
        raise InputError(f"--type must be BINARY or LABELMAP; got {segmentation_type!r}")
    threshold = check_threshold(threshold)
    seg = read_seg(seg_path)
    fractional = seg.segmentation_type.value == "FRACTIONAL"
    if fractional and threshold is None:
        raise UnsupportedError(
            f"{str(seg_path)!r} is a FRACTIONAL SEG: converting it to {segmentation_type} needs --threshold "
            "(threshold=): the fraction at or above which a voxel belongs to a segment")
    if int(seg.get("NumberOfFrames", 0) or 0) == 0:
        raise InputError("the SEG holds no frames")
    combine = segmentation_type == "LABELMAP"
    try:
        volume = thresholded_volume(seg, threshold, combine) if fractional else \
            seg.get_volume(combine_segments=combine)
    except OverlapError:
        raise InputError("segments overlap; a LABELMAP cannot hold them (keep BINARY)") from None
    numbers = [int(n) for n in seg.segment_numbers]
    if numbers != list(range(1, len(numbers) + 1)):
        raise UnsupportedError(f"segment numbers must be 1..N to be rewritten; got {numbers[:10]}")
    if source is not None:
        series = load_series(source)
        try:
            volume = volume.match_geometry(series.geometry)
        except GeometryError as error:
            raise GeometryError(f"the SEG's frames do not lie on the source series' grid: {error}") from None
        sources = series.datasets
    else:
        sources = _pseudo_sources(seg, volume)
    descriptions = [seg.get_segment_description(n) for n in numbers]
    new = Segmentation(
        source_images=sources,
        pixel_array=volume.array,
        segmentation_type=segmentation_type,
        segment_descriptions=descriptions,
        series_instance_uid=UID(),
        series_number=int(seg.get("SeriesNumber", 1) or 1),
        sop_instance_uid=UID(),
        instance_number=int(seg.get("InstanceNumber", 1) or 1),
        manufacturer="monai_dicomseg",
        manufacturer_model_name="monai-dicomseg convert",
        software_versions=__version__,
        device_serial_number="0",
        content_label=seg.get("ContentLabel"),
        content_description=seg.get("ContentDescription"),
        content_creator_name=seg.get("ContentCreatorName"),
        transfer_syntax_uid=COMPRESSION[compress],
        workers=workers,
    )
    for keyword in _COPIED:
        if seg.get(keyword):
            new[keyword] = copy.deepcopy(seg[keyword])
    if source is None and "ReferencedSeriesSequence" in seg:
        new.ReferencedSeriesSequence = copy.deepcopy(seg.ReferencedSeriesSequence)
    new.save_as(Path(out), overwrite=overwrite)
    return {"segmentation_type": segmentation_type, "segments": len(descriptions),
            "frames": int(new.get("NumberOfFrames", 0))}
