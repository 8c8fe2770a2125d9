"""Rewrite a DICOM SEG with another type (BINARY <-> LABELMAP, FRACTIONAL -> BINARY/LABELMAP) or compression.

The segments, their descriptions and every labelled voxel are kept; the new
instance gets new Series and SOP Instance UIDs. Three kinds of SEG are handled:

* a SEG with a patient volume (Frame of Reference and plane positions: CT,
  MR, ...) is rewritten through :meth:`get_volume`; without ``--source`` the
  source images are reconstructed from the SEG's own references (each frame's
  Derivation Image Sequence and plane position), enough for single-frame
  series; ``--source SERIES_DIR`` matches the volume to a real series;
* a tiled SEG (slide microscopy, PS3.3 C.8.12.4; TILED_SPARSE or TILED_FULL)
  is rewritten from its total pixel matrix (:meth:`get_total_pixel_matrix`)
  through the tiled writer path (``tile_pixel_array=True``) with the same tile
  size, total pixel matrix origin, orientation and dimension organisation
  type; the multi-frame source comes from ``--source`` (the referenced
  instance found in the folder by SOP Instance UID) or is reconstructed as a
  header from the SEG's slide attributes, which the SEG copied from it
  (Specimen, Whole Slide Microscopy Image and Multi-frame Functional Groups
  modules, PS3.3 A.51.3);
* a SEG of single-frame images without patient geometry (CR, DX, ...) is
  rewritten frame by frame (:meth:`get_pixels_by_source_instance`), one
  frame per referenced instance, against the referenced instances found in
  ``--source`` or header-only stand-ins named as the SEG references them.

A PALETTE COLOR LABELMAP rewritten as LABELMAP keeps its Palette Color
Lookup Table (PS3.3 C.7.9) when it has the ICC Profile a PALETTE COLOR SEG
needs (C.11.15); without one the output is MONOCHROME2 (labels unchanged;
copying the palette alone would write an invalid file). Overlapping segments cannot be
a LABELMAP (refused).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from monai_dicomseg.cli._common import (
    SEGMENTATION_TYPES,
    add_compress_option,
    add_profile_option,
    add_overwrite_option,
    add_threshold_option,
    check_output,
    check_threshold,
    load_series,
    read_seg,
    strict_keywords,
)
from monai_dicomseg.errors import GeometryError, InputError, OverlapError, UnsupportedError
from monai_dicomseg.enums import FRACTIONAL as _FRACTIONAL, LABELMAP as _LABELMAP

__all__ = ["add_arguments", "add_options", "run", "convert_seg"]

_COPIED = ("SeriesDescription", "ContentCreatorName", "BodyPartExamined", "ClinicalTrialSeriesID",
           "ClinicalTrialTimePointID", "ClinicalTrialCoordinatingCenterName")


def add_options(parser: argparse.ArgumentParser, batch: bool = False) -> None:
    """The options (no positionals), shared with ``batch convert``."""
    parser.add_argument("--type", dest="segmentation_type", choices=SEGMENTATION_TYPES, default=None,
                        type=str.upper,
                        help="segmentation type of the output (default: the input's, e.g. to recompress). "
                             "FRACTIONAL only from a FRACTIONAL SEG (fractions kept as stored)")
    add_threshold_option(parser)
    add_compress_option(parser, workers=not batch)
    add_profile_option(parser)
    add_overwrite_option(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("seg", metavar="SEG", help="DICOM Segmentation file")
    parser.add_argument("output", metavar="OUT.dcm", help="SEG file to write")
    parser.add_argument("--source", metavar="SERIES_DIR",
                        help="folder of the source images: a series matched by geometry, or (slides, CR) the "
                             "instances the SEG references, found by SOP Instance UID (default: rebuilt from "
                             "the SEG's references)")
    add_options(parser)


def run(args: argparse.Namespace) -> int:
    info = convert_seg(args.seg, args.output, segmentation_type=args.segmentation_type,
                       source=args.source, compress=args.compress, workers=args.workers,
                       overwrite=args.overwrite, threshold=args.threshold,
                       **({"profile": args.profile} if getattr(args, "profile", None) else {}))
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

    index = seg.get_frame_index()
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


_PATIENT_STUDY = ("SpecificCharacterSet", "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                  "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
                  "AccessionNumber", "StudyDescription")
# Attributes a tiled SEG copies from its slide source (PS3.3 A.51.3: Frame of Reference,
# Specimen C.7.6.22, Whole Slide Microscopy Image C.8.12.4): enough to stand in for its header.
_SLIDE = ("FrameOfReferenceUID", "PositionReferenceIndicator", "ContainerIdentifier",
          "IssuerOfTheContainerIdentifierSequence", "AlternateContainerIdentifierSequence",
          "ContainerTypeCodeSequence", "ContainerDescription", "ContainerComponentSequence",
          "SpecimenDescriptionSequence", "TotalPixelMatrixRows", "TotalPixelMatrixColumns",
          "TotalPixelMatrixOriginSequence", "ImageOrientationSlide", "TotalPixelMatrixFocalPlanes")
# Palette Color Lookup Table Module (C.7.9) and ICC Profile (C.11.15) of a PALETTE COLOR LABELMAP.
_PALETTE = ("RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor",
            "BluePaletteColorLookupTableDescriptor", "PaletteColorLookupTableUID",
            "RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData",
            "BluePaletteColorLookupTableData", "SegmentedRedPaletteColorLookupTableData",
            "SegmentedGreenPaletteColorLookupTableData", "SegmentedBluePaletteColorLookupTableData",
            "ICCProfile", "ColorSpace")


def _referenced_instances(seg: Any) -> list[tuple[str, str, str]]:
    """``(series UID, SOP Class UID, SOP Instance UID)`` of every instance in ReferencedSeriesSequence."""
    instances = []
    for series in seg.get("ReferencedSeriesSequence", []):
        for item in series.get("ReferencedInstanceSequence", []):
            instances.append((str(series.get("SeriesInstanceUID", "")), str(item.get("ReferencedSOPClassUID", "")),
                              str(item.get("ReferencedSOPInstanceUID", ""))))
    if not instances or not all(uid for _, _, uid in instances):
        raise UnsupportedError("the SEG's ReferencedSeriesSequence names no source instance (each item needs "
                               "ReferencedSOPInstanceUID); cannot rebuild its sources")
    return instances


def _stand_in(seg: Any, series_uid: str, sop_class_uid: str, sop_instance_uid: str, tiled: bool) -> Any:
    """A header-only source dataset named as the SEG references it, with what the SEG copied from it.

    For a tiled SEG the stand-in is a TILED_FULL multi-frame slide image with
    the SEG's tile size (Rows, Columns), total pixel matrix, origin,
    orientation and Pixel Measures: the tile grid the SEG's frames (and their
    ReferencedFrameNumber) index.
    """
    from pydicom.dataset import Dataset

    ds = Dataset()
    # Patient Orientation: what the SEG recorded of its source (the writer copies it, C.7.6.1 Type 2C).
    for keyword in _PATIENT_STUDY + (_SLIDE if tiled else ("PatientOrientation",)):
        if keyword in seg:
            ds[keyword] = copy.deepcopy(seg[keyword])
    if not series_uid:
        raise UnsupportedError("the SEG's ReferencedSeriesSequence item lacks SeriesInstanceUID; pass --source")
    ds.SOPClassUID = sop_class_uid or "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture when unnamed
    ds.SOPInstanceUID = sop_instance_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "SM" if tiled else "OT"
    ds.Rows, ds.Columns = int(seg.Rows), int(seg.Columns)
    if tiled:
        rows, columns = int(seg.TotalPixelMatrixRows), int(seg.TotalPixelMatrixColumns)
        ds.NumberOfFrames = -(-rows // ds.Rows) * -(-columns // ds.Columns)
        ds.DimensionOrganizationType = "TILED_FULL"
        shared = seg.get("SharedFunctionalGroupsSequence") or []
        measures = shared[0].get("PixelMeasuresSequence") if len(shared) == 1 else None
        if not measures:
            raise UnsupportedError("the tiled SEG has no shared PixelMeasuresSequence to rebuild its slide "
                                   "source from; pass --source")
        item = Dataset()
        item.PixelMeasuresSequence = copy.deepcopy(measures)
        ds.SharedFunctionalGroupsSequence = [item]
    return ds


def _sources_from_folder(folder: "str | list[str]", wanted: list[str]) -> list[Any]:
    """The datasets (headers) of ``folder`` (or of a list of files) whose SOP Instance UIDs are ``wanted``, in order."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    if isinstance(folder, (list, tuple)):  # the files of one series (batch --source-root)
        files = sorted(Path(p) for p in folder)
    elif Path(folder).is_dir():
        files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    else:
        raise InputError(f"--source {str(folder)!r} must be a folder of DICOM files")
    found: dict[str, Any] = {}
    for file in files:
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            continue
        uid = str(ds.get("SOPInstanceUID", ""))
        if uid in wanted:
            found.setdefault(uid, ds)
    missing = [uid for uid in wanted if uid not in found]
    if missing:
        raise InputError(f"--source {str(folder)!r} lacks {len(missing)} of the {len(wanted)} instance(s) the SEG "
                         f"references, e.g. SOPInstanceUID {missing[0]}")
    return [found[uid] for uid in wanted]


def _framewise(seg: Any, combine: bool, source: str | None, threshold: float | None = None,
               keep_fractions: bool = False) -> tuple[list[Any], Any, dict[str, Any]]:
    """Sources, pixel array and writer options for a SEG without a patient volume.

    Tiled SEG: ``(H, W)`` label map or ``(1, H, W, S)`` stacked total pixel
    matrix, written with ``tile_pixel_array=True`` in the SEG's tile size and
    dimension organisation type. Otherwise ``(N, R, C)`` / ``(N, R, C, S)``,
    one frame per referenced single-frame instance. A FRACTIONAL SEG is read
    as rescaled fractions and thresholded (``threshold``), or kept as
    fractions (``keep_fractions``: FRACTIONAL output).
    """
    from monai_dicomseg.io.segload import threshold_masks

    instances = _referenced_instances(seg)
    tiled = bool(seg.is_tiled)
    if tiled and len(instances) != 1:
        raise UnsupportedError(f"a tiled SEG must reference one slide image to be rewritten; it references "
                               f"{len(instances)}")
    uids = [uid for _, _, uid in instances]
    if source is not None:
        sources = _sources_from_folder(source, uids)
    else:
        sources = [_stand_in(seg, *instance, tiled=tiled) for instance in instances]
    fractional = threshold is not None or keep_fractions
    read: dict[str, Any] = {"combine_segments": combine and not fractional}
    if fractional:
        read.update(rescale_fractional=True, dtype="float32")
    with _labelmap_overlap():
        if tiled:
            pixels = seg.get_total_pixel_matrix(**read)
        else:
            pixels = seg.get_pixels_by_source_instance(uids, assert_missing_frames_are_empty=True, **read)
        if threshold is not None:  # the loaders' threshold rule: (..., S) fractions -> masks / label map
            pixels = threshold_masks(pixels, float(threshold), [int(n) for n in seg.segment_numbers],
                                     combine=combine, channel_axis=-1)
    if tiled and not combine:
        pixels = pixels[None]
    options: dict[str, Any] = {}
    if tiled:
        organization = str(seg.get("DimensionOrganizationType", "") or "TILED_SPARSE")
        options = {"tile_pixel_array": True, "tile_size": (int(seg.Rows), int(seg.Columns)),
                   "dimension_organization_type": organization,
                   "omit_empty_frames": organization != "TILED_FULL"}
    return sources, pixels, options


@contextlib.contextmanager
def _labelmap_overlap() -> Iterator[None]:
    """Re-raise an OverlapError (the loaders' class for the same input) saying what the LABELMAP output needs."""
    try:
        yield
    except OverlapError as error:
        raise OverlapError(f"segments overlap; a LABELMAP cannot hold them (keep BINARY, or raise --threshold): "
                           f"{error}") from error


def _slice_thickness(seg: Any) -> float | None:
    """SliceThickness of the SEG's shared (or first per-frame) Pixel Measures, if recorded."""
    for groups in (seg.get("SharedFunctionalGroupsSequence"), seg.get("PerFrameFunctionalGroupsSequence")):
        if groups and groups[0].get("PixelMeasuresSequence"):
            value = groups[0].PixelMeasuresSequence[0].get("SliceThickness")
            if value not in (None, ""):
                return float(value)
    return None


def _volume_pixels(seg: Any, combine: bool, source: str | None, threshold: float | None,
                   keep_fractions: bool = False) -> tuple[list[Any], Any]:
    """Source datasets and pixel array of a SEG with a patient volume (``threshold`` set for FRACTIONAL input).

    With ``source`` the volume is matched onto that series' grid and its datasets are the sources;
    without it, stand-in sources are built from the SEG's own references. ``keep_fractions``
    (FRACTIONAL output): the ``(F, R, C, S)`` float32 fractions rescaled to [0, 1], which the
    writer stores back as ``round(fraction * MaximumFractionalValue)``, the stored values.
    """
    from monai_dicomseg.io.segload import threshold_masks

    with _labelmap_overlap():
        if keep_fractions or threshold is not None:
            volume = seg.get_volume(combine_segments=False, rescale_fractional=True, dtype="float32")
            if threshold is not None:  # the loaders' threshold rule on the (F, R, C, S) fractions
                volume = volume.with_array(threshold_masks(
                    volume.array, threshold, [int(n) for n in seg.segment_numbers], combine=combine,
                    channel_axis=-1))
        else:
            volume = seg.get_volume(combine_segments=combine)
    if source is not None:
        series = load_series(source)
        try:
            volume = volume.match_geometry(series.geometry)
        except GeometryError as error:
            raise GeometryError(f"the SEG's frames do not lie on the source series' grid: {error}") from None
        if set(series.segmentation_sources()) != {"source_images"}:  # frames not 1..N in volume order
            raise UnsupportedError("convert --source over a multi-frame source whose frames are not stored in "
                                   "slice order is not supported; convert without --source")
        sources = series.segmentation_sources()["source_images"]
    else:
        sources = _pseudo_sources(seg, volume)
    return sources, volume.array


def _copy_attributes(seg: Any, new: Any, combine: bool, copy_references: bool) -> None:
    """Copy onto ``new`` the attributes of ``seg`` that a conversion keeps (``_COPIED``, references, palette)."""
    for keyword in _COPIED:
        if seg.get(keyword):
            new[keyword] = copy.deepcopy(seg[keyword])
    if copy_references and "ReferencedSeriesSequence" in seg:
        new.ReferencedSeriesSequence = copy.deepcopy(seg.ReferencedSeriesSequence)
    if combine and str(seg.get("PhotometricInterpretation", "")) == "PALETTE COLOR" and seg.get("ICCProfile"):
        # Same labels (segment numbers 1..N), so the input's palette still colours them (C.7.9). A SEG's
        # PALETTE COLOR needs an ICC Profile (C.11.15, Type 1): without one in the input, MONOCHROME2 is kept.
        new.PhotometricInterpretation = "PALETTE COLOR"
        for keyword in _PALETTE:
            if keyword in seg:
                new[keyword] = copy.deepcopy(seg[keyword])


def _check_type(segmentation_type: "str | None") -> "str | None":
    """``--type`` upper-cased, or None (keep the input's); InputError for another value."""
    if segmentation_type is None:
        return None
    requested = str(segmentation_type).upper()
    if requested not in SEGMENTATION_TYPES:
        raise InputError(f"--type must be one of {', '.join(SEGMENTATION_TYPES)} (or omitted: the input's type); "
                         f"got {segmentation_type!r}")
    return requested


def _output_type(requested: "str | None", seg: Any, threshold: "float | None", seg_path: str) -> str:
    """The output SegmentationType: ``requested``, or the input's when None.

    Raises
    ------
    UnsupportedError
        FRACTIONAL from a BINARY/LABELMAP SEG (there are no fractions to keep);
        a FRACTIONAL SEG to BINARY/LABELMAP without ``threshold``.
    InputError
        ``threshold`` with a FRACTIONAL output (it would be ignored).
    """
    kind = seg.segmentation_type.value
    target = requested or kind
    if target == _FRACTIONAL:
        if kind != _FRACTIONAL:
            raise UnsupportedError(f"{str(seg_path)!r} is a {kind} SEG: --type FRACTIONAL rewrites FRACTIONAL SEGs "
                                   "only (to recompress them); keep BINARY or LABELMAP")
        if threshold is not None:
            raise InputError(f"--threshold {threshold} makes masks, but the output is FRACTIONAL (the input's type "
                             "when --type is omitted): pass --type BINARY or LABELMAP, or drop --threshold")
    elif kind == _FRACTIONAL and threshold is None:
        raise UnsupportedError(
            f"{str(seg_path)!r} is a FRACTIONAL SEG: converting it to {target} needs --threshold "
            "(threshold=): the fraction at or above which a voxel belongs to a segment")
    return target


@strict_keywords
def convert_seg(
    seg_path: str,
    output: str,
    *,
    segmentation_type: "str | None" = None,
    source: str | None = None,
    compress: str = "none",
    workers: int = 0,
    overwrite: bool = False,
    threshold: float | None = None,
    profile: "str | None" = None,
) -> dict[str, Any]:
    """Write ``output``: the SEG at ``seg_path`` with another type and/or compression.

    ``segmentation_type`` None (``--type`` omitted) keeps the input's type: a
    recompression. A FRACTIONAL SEG rewritten as FRACTIONAL keeps its stored
    values, MaximumFractionalValue and SegmentationFractionalType; FRACTIONAL
    output from a BINARY/LABELMAP SEG is refused. A FRACTIONAL SEG becomes
    BINARY/LABELMAP only with ``threshold`` (a voxel belongs to a segment when
    its fraction, rescaled to [0, 1] by MaximumFractionalValue, is >=
    ``threshold``); without it the conversion would lose information
    silently, so it is refused, as is ``threshold`` with a FRACTIONAL output.
    """
    from monai_dicomseg import __version__
    from monai_dicomseg.codec.compression import compression_transfer_syntax
    from monai_dicomseg.codec.vr import check_dataset_values
    from monai_dicomseg.seg.segmentation import Segmentation
    from monai_dicomseg.uid import UID

    out = check_output(output, overwrite)
    requested = _check_type(segmentation_type)
    threshold = check_threshold(threshold)
    seg = read_seg(seg_path)
    segmentation_type = _output_type(requested, seg, threshold, seg_path)
    if profile is not None:  # the kept/requested type must be one the consumer reads; it picks the compression
        from monai_dicomseg.seg.profiles import resolve_profile

        resolved = resolve_profile(profile, segmentation_type, None if compress in (None, "none") else compress)
        compress = resolved.compression
    fractional = seg.segmentation_type.value == _FRACTIONAL
    keep_fractions = segmentation_type == _FRACTIONAL
    if int(seg.get("NumberOfFrames", 0) or 0) == 0:
        raise InputError("the SEG holds no frames")
    combine = segmentation_type == _LABELMAP
    numbers = [int(n) for n in seg.segment_numbers]
    if numbers != list(range(1, len(numbers) + 1)):
        raise UnsupportedError(f"segment numbers must be 1..N to be rewritten; got {numbers[:10]}")
    options: dict[str, Any] = {}
    cut = threshold if fractional and not keep_fractions else None
    if seg.is_tiled or "FrameOfReferenceUID" not in seg:
        # No patient volume (slides: SLIDE coordinates; CR/DX: none): keep the SEG's own frame structure.
        sources, pixels, options = _framewise(seg, combine, source, cut, keep_fractions)
    else:
        sources, pixels = _volume_pixels(seg, combine, source, cut, keep_fractions)
    if keep_fractions:  # the stored values are round(fraction * MaximumFractionalValue): keep both as read
        options.update(max_fractional_value=int(seg.MaximumFractionalValue),
                       fractional_type=str(seg.SegmentationFractionalType))
    descriptions = [seg.get_segment_description(n) for n in numbers]
    new = Segmentation(
        source_images=sources,
        pixel_array=pixels,
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
        transfer_syntax_uid=compression_transfer_syntax(compress),
        workers=workers,
        **options,
    )
    _copy_attributes(seg, new, combine, copy_references=source is None)
    check_dataset_values(new)  # what was copied from the input is checked like every written value
    new.save_as(Path(out), overwrite=overwrite, release_frames=True)  # written once: frames let go as written
    return {"segmentation_type": segmentation_type, "segments": len(descriptions),
            "frames": int(new.get("NumberOfFrames", 0))}
