"""Decode a SEG into a channel-first array in MONAI order, on its own or a reference grid.

This is the single code path behind :class:`~monai_dicomseg.io.reader.DicomSegReader`
and :class:`~monai_dicomseg.transforms.load.LoadDicomSeg`: it reads the SEG
(:func:`~monai_dicomseg.seg.segread`), resolves the segment selection
(:mod:`monai_dicomseg.io.segments`), builds the LPS volume by plane position
(``Segmentation.get_volume``: omitted frames and any frame order are fine), and
places it exactly on the target grid (:mod:`monai_dicomseg.io.placement`).
The target grid is either a reference image's (its MONAI affine and spatial
shape) or the SEG's own geometry in MONAI order (see
:mod:`monai_dicomseg.io.series`). numpy only; no torch.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from monai_dicomseg.enums import SegmentationTypeValues
from monai_dicomseg.errors import GeometryError, InputError, InputTypeError
from monai_dicomseg.geometry.affine import lps_to_ras_affine, ras_to_lps_affine
from monai_dicomseg.io.placement import destination_view, place_on_grid, plan_placement
from monai_dicomseg.io.segments import SegmentPlan, plan_segments, segment_table
from monai_dicomseg.io.series import SEG_SOP_CLASS_UIDS, monai_affine_from_lps

__all__ = ["ReferenceGrid", "LoadedSeg", "read_segmentation", "load_seg_array", "MODES"]

MODES = ("stacked", "labelmap")


@dataclass(frozen=True)
class ReferenceGrid:
    """The grid a label must share with its image.

    Attributes
    ----------
    affine
        ``(4, 4)`` index -> ``space`` mm affine of the image (as MONAI stores it).
    spatial_shape
        ``(X, Y, Z)`` spatial shape of the image.
    space
        ``"RAS"`` or ``"LPS"`` (MONAI's ``meta["space"]``).
    frame_of_reference_uid, series_instance_uid
        Of the image when known (checked against the SEG).
    """

    affine: np.ndarray
    spatial_shape: tuple[int, int, int]
    space: str = "RAS"
    frame_of_reference_uid: "str | None" = None
    series_instance_uid: "str | None" = None

    def lps_affine(self) -> np.ndarray:
        """The affine in LPS."""
        return ras_to_lps_affine(self.affine) if self.space == "RAS" else np.array(self.affine, dtype=np.float64)


@dataclass
class LoadedSeg:
    """Result of :func:`load_seg_array`: channel-first array and MONAI metadata."""

    array: np.ndarray
    meta: dict[str, Any]


def read_segmentation(source: Any) -> Any:
    """Return a :class:`~monai_dicomseg.seg.Segmentation` from a path, file object or dataset.

    Raises
    ------
    InputError
        If a path does not exist.
    DecodeError
        If the file or dataset is not a DICOM Segmentation.
    """
    from monai_dicomseg.errors import DecodeError
    from monai_dicomseg.seg.reader import segread
    from monai_dicomseg.seg.segmentation import Segmentation

    if isinstance(source, Segmentation):
        return source
    if isinstance(source, Dataset):
        if str(getattr(source, "SOPClassUID", "")) not in SEG_SOP_CLASS_UIDS:
            raise DecodeError(
                f"SOPClassUID must be a Segmentation Storage class {sorted(SEG_SOP_CLASS_UIDS)}; "
                f"got {getattr(source, 'SOPClassUID', None)!r}"
            )
        return Segmentation.from_dataset(source, copy=False)
    if isinstance(source, (str, os.PathLike)):
        if not os.path.isfile(source):
            raise InputError(f"SEG file {str(source)!r} does not exist")
    elif not hasattr(source, "read"):
        raise InputTypeError(f"a SEG must be a path, a file object or a pydicom Dataset; got {type(source).__name__}")
    seg = segread(source)
    if str(getattr(seg, "SOPClassUID", "")) not in SEG_SOP_CLASS_UIDS:
        raise DecodeError(
            f"SOPClassUID must be a Segmentation Storage class {sorted(SEG_SOP_CLASS_UIDS)}; "
            f"got {getattr(seg, 'SOPClassUID', None)!r}"
        )
    return seg


def referenced_series_uids(seg: Any) -> list[str]:
    """SeriesInstanceUIDs the SEG derives from (ReferencedSeriesSequence, PS3.3 C.10.4).

    Reads only the series level (not every referenced instance), also inside
    StudiesContainingOtherReferencedInstancesSequence.
    """
    items = list(seg.get("ReferencedSeriesSequence", []))
    for study in seg.get("StudiesContainingOtherReferencedInstancesSequence", []):
        items.extend(study.get("ReferencedSeriesSequence", []))
    return list(dict.fromkeys(str(item.SeriesInstanceUID) for item in items if "SeriesInstanceUID" in item))


def _check_reference_identity(seg: Any, reference: ReferenceGrid) -> None:
    seg_for = getattr(seg, "FrameOfReferenceUID", None)
    if reference.frame_of_reference_uid and seg_for and str(seg_for) != reference.frame_of_reference_uid:
        raise GeometryError(
            f"FrameOfReferenceUID of the SEG is {str(seg_for)!r} but the reference image's is "
            f"{reference.frame_of_reference_uid!r}; positions are not comparable"
        )
    if reference.series_instance_uid:
        series = referenced_series_uids(seg)
        if series and reference.series_instance_uid not in series:
            raise GeometryError(
                f"the SEG references SeriesInstanceUID {series} but the reference image is series "
                f"{reference.series_instance_uid!r} (ReferencedSeriesSequence)"
            )


def _decode(seg: Any, plan: SegmentPlan, mode: str, rescale_fractional: bool,
            skip_overlap_checks: bool) -> tuple[np.ndarray, Any]:
    """``(*lead, F, R, C)`` values and the LPS volume of the selected segments."""
    numbers = list(plan.segment_numbers) or [int(seg.segment_numbers[0])]
    volume = seg.get_volume(
        segment_numbers=numbers, combine_segments=(mode == "labelmap"), relabel=False,
        rescale_fractional=rescale_fractional, skip_overlap_checks=skip_overlap_checks,
    )
    array = volume.array
    if not plan.segment_numbers:  # nothing of the label_map is in this SEG
        array = np.zeros_like(array)
    if mode == "labelmap":
        if not plan.is_identity and plan.segment_numbers:
            top = max(plan.values)
            lut = np.zeros(int(array.max(initial=0)) + 1 if array.size else 1,
                           dtype=np.uint8 if top <= 255 else np.uint16)
            for number, value in zip(plan.segment_numbers, plan.values):
                if number < lut.size:
                    lut[number] = value
            array = lut[array]
        return array[None], volume
    stacked = np.moveaxis(array, -1, 0)  # (S, F, R, C) view
    if not plan.is_identity:
        channels = np.zeros((len(plan.channel_values), *stacked.shape[1:]), dtype=stacked.dtype)
        for source, value in enumerate(plan.values):
            target = plan.channel_values.index(value)
            np.maximum(channels[target], stacked[source], out=channels[target])
        stacked = channels
    return stacked, volume


def _scatter(seg: Any, plan: SegmentPlan, mode: str, layout: Any, placements: Any,
             target_shape: tuple[int, ...], dtype: Any, skip_overlap_checks: bool) -> np.ndarray:
    """BINARY / LABELMAP: decode the selected frames once, straight into the final array.

    The output is allocated in its final channel-first layout and dtype and
    the frames are scattered into a view of it that is indexed like the SEG
    volume (:func:`~monai_dicomseg.io.placement.destination_view`): no
    ``(F, R, C, S)`` volume, no transposed copy, no dtype conversion.
    """
    from monai_dicomseg.codec.assemble import output_dtype

    geometry, frames = layout
    if mode == "labelmap":
        top = max(plan.values) if plan.segment_numbers else int(seg.segment_numbers[0])
        natural = output_dtype(None, max_value=int(top), rescaled=False)
        channels = 1
        targets = list(plan.values)
    else:
        natural = np.dtype(np.uint8)
        channels = len(plan.channel_values)
        targets = [plan.channel_values.index(v) for v in plan.values]
    out = np.zeros((channels, *target_shape), dtype=natural if dtype is None else dtype)
    if plan.segment_numbers:
        view = destination_view(out, placements, geometry.spatial_shape)
        view = view[0] if mode == "labelmap" else np.moveaxis(view, 0, -1)  # (F, R, C[, channels])
        seg._assemble_volume_into(
            view, frames, list(plan.segment_numbers), combine_segments=(mode == "labelmap"),
            targets=targets, skip_overlap_checks=skip_overlap_checks,
        )
    return out


def load_seg_array(
    source: Any,
    *,
    mode: str = "stacked",
    segment_numbers: "Sequence[int] | None" = None,
    segment_labels: "Sequence[str] | None" = None,
    segmented_property_types: "Sequence[Any] | None" = None,
    label_map: "Mapping[Any, int] | None" = None,
    rescale_fractional: bool = True,
    skip_overlap_checks: bool = False,
    reference: "ReferenceGrid | None" = None,
    space: str = "RAS",
    dtype: "np.dtype | type | str | None" = None,
) -> LoadedSeg:
    """Decode a SEG into a channel-first array on the MONAI grid.

    Parameters
    ----------
    source
        SEG path, file object, pydicom Dataset or Segmentation.
    mode
        ``"stacked"``: ``(S, X, Y, Z)``, one channel per selected segment (or
        per ``label_map`` value), uint8 0/1 for BINARY/LABELMAP, float32 for
        FRACTIONAL. ``"labelmap"``: ``(1, X, Y, Z)`` of segment numbers (or
        ``label_map`` values), uint8 (uint16 above 255).
    segment_numbers, segment_labels, segmented_property_types, label_map
        See :func:`~monai_dicomseg.io.segments.plan_segments`.
    rescale_fractional
        Map FRACTIONAL stored values to [0, 1] (PS3.3 C.8.20.2.3
        MaximumFractionalValue); False keeps stored integers.
    skip_overlap_checks
        ``"labelmap"`` mode: let the highest segment number win where BINARY
        segments overlap instead of raising.
    reference
        Target grid (an image loaded by MONAI or :mod:`monai_dicomseg`);
        None uses the SEG's own geometry in MONAI order (axes (C, R, S), see
        :mod:`monai_dicomseg.io.series`) spanning the frames it contains.
    space
        ``"RAS"`` or ``"LPS"`` for the output affine without ``reference``
        (with one, the reference's space is used).
    dtype
        Output dtype (default as described under ``mode``).

    Returns
    -------
    LoadedSeg
        ``array`` ``(channels, X, Y, Z)``; ``meta`` with ``affine``,
        ``original_affine``, ``spatial_shape``, ``space``, ``segments`` (segment
        table of :func:`~monai_dicomseg.io.segments.segment_table` as a JSON
        string, so that ``DataLoader`` collation works across SEGs with
        different segments; parse with :func:`~monai_dicomseg.io.segments.segments_from_meta`),
        ``channel_segments`` (JSON list: SEG segment numbers feeding each
        channel), ``channel_values`` (list of int), ``labels`` (label_map as JSON, or ""),
        ``segmentation_type``, ``SeriesInstanceUID`` and ``SOPInstanceUID`` of
        the SEG, ``FrameOfReferenceUID``, ``source_series_instance_uid``,
        ``filename_or_obj``.

    Raises
    ------
    InputError
        Bad mode/selection, missing file.
    DecodeError
        Not a SEG.
    GeometryError
        Reference grid incompatible (FrameOfReference, series, orientation,
        spacing, sub-voxel offset, SEG frames outside the grid).
    """
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}; got {mode!r}")
    seg = read_segmentation(source)
    table = segment_table(seg)
    plan = plan_segments(
        table, segment_numbers=segment_numbers, segment_labels=segment_labels,
        segmented_property_types=segmented_property_types, label_map=label_map,
    )
    seg_type = seg.segmentation_type
    seg_type = SegmentationTypeValues(getattr(seg_type, "value", seg_type))
    if mode == "labelmap" and seg_type == SegmentationTypeValues.FRACTIONAL:
        raise InputError(
            "mode='labelmap' needs a BINARY or LABELMAP SEG; this SEG is FRACTIONAL "
            "(SegmentationType): use mode='stacked'"
        )
    if reference is not None:
        _check_reference_identity(seg, reference)
    layout = None
    if seg_type != SegmentationTypeValues.FRACTIONAL and hasattr(seg, "_volume_layout"):
        layout = seg._volume_layout()  # None for a tiled SLIDE segmentation
    if layout is not None:
        volume_affine, volume_shape = layout[0].affine, layout[0].spatial_shape
    else:
        values, volume = _decode(seg, plan, mode, rescale_fractional, skip_overlap_checks)
        volume_affine, volume_shape = volume.affine, volume.spatial_shape
    n_frames = volume_shape[0]
    if reference is None:
        out_space = str(getattr(space, "value", space)).upper()
        target_lps = monai_affine_from_lps(volume_affine, n_frames, space="LPS")
        target_shape = tuple(int(s) for s in volume_shape[::-1])
        affine = lps_to_ras_affine(target_lps) if out_space == "RAS" else target_lps
        if out_space not in ("RAS", "LPS"):
            raise InputError(f"space must be 'RAS' or 'LPS'; got {space!r}")
    else:
        target_lps = reference.lps_affine()
        target_shape = tuple(int(s) for s in reference.spatial_shape)
        affine = np.array(reference.affine, dtype=np.float64)
        out_space = reference.space
    placements = plan_placement(volume_affine, volume_shape, target_lps, target_shape)
    if layout is not None:
        array = _scatter(seg, plan, mode, layout, placements, target_shape, dtype, skip_overlap_checks)
    else:
        out_dtype = dtype
        if out_dtype is None and values.dtype == bool:
            out_dtype = np.uint8
        array = place_on_grid(values, placements, target_shape, dtype=out_dtype)
    if mode == "labelmap":
        channel_segments = [list(plan.segment_numbers)]
    else:
        channel_segments = [[n for n, v in zip(plan.segment_numbers, plan.values) if v == c]
                            for c in plan.channel_values]
    meta: dict[str, Any] = {
        "affine": affine,
        "original_affine": affine.copy(),
        "spatial_shape": np.asarray(target_shape),
        "space": out_space,
        "original_channel_dim": 0,
        "segmentation_type": seg_type.value,
        "mode": mode,
        "segments": json.dumps(table),
        "channel_segments": json.dumps(channel_segments),
        "channel_values": list(plan.channel_values) if mode == "stacked" else [0, *plan.channel_values],
        "labels": "" if label_map is None else json.dumps({str(k): int(v) for k, v in label_map.items()}),
        "SeriesInstanceUID": str(getattr(seg, "SeriesInstanceUID", "")),
        "SOPInstanceUID": str(getattr(seg, "SOPInstanceUID", "")),
        "FrameOfReferenceUID": str(getattr(seg, "FrameOfReferenceUID", "") or ""),
        "source_series_instance_uid": ",".join(referenced_series_uids(seg)),
        "filename_or_obj": str(source) if isinstance(source, (str, os.PathLike)) else "",
    }
    return LoadedSeg(array, meta)
