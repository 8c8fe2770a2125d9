"""Decode a SEG into a channel-first array in MONAI order, on its own or a reference grid.

This is the single code path behind :class:`~monai_dicomseg.io.reader.DicomSegReader`
and :class:`~monai_dicomseg.transforms.load.LoadDicomSeg`: it reads the SEG
(:func:`~monai_dicomseg.seg.segread`), resolves the segment selection
(:mod:`monai_dicomseg.io.segments`), builds the LPS volume by plane position
(``Segmentation.get_volume``: omitted frames and any frame order are fine), and
places it exactly on the target grid (:mod:`monai_dicomseg.geometry.grid_placement`).
The target grid is either a reference image's (its MONAI affine and spatial
shape) or the SEG's own geometry in MONAI order (see
:mod:`monai_dicomseg.io.source_series`). numpy only; no torch.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from monai_dicomseg.enums import LoadMode, SegmentationTypeValues
from monai_dicomseg.errors import GeometryError, InputError, InputTypeError, error_with_context
from monai_dicomseg.geometry.affine import LPS, RAS, check_space, lps_to_ras_affine, ras_to_lps_affine
from monai_dicomseg.geometry.grid_placement import destination_view, place_on_grid, plan_placement
from monai_dicomseg.io.segments import (
    SELECTION_OPTIONS,
    SegmentSelection,
    SegmentSelectionPlan,
    cached_segment_table,
    header_segment_table,
    segment_sequence_key,
    segment_table,
)
from monai_dicomseg.options import check_options
from monai_dicomseg.io.source_series import SEG_SOP_CLASS_UIDS, monai_affine_from_lps
from monai_dicomseg.io.source_volumes import VolumeIdentity
from monai_dicomseg.meta_keys import GRID_REFERENCE, GRID_SEG, GRID_SOURCE_SERIES, GRIDS, MetaKey  # re-exported

__all__ = [
    "MetaKey",
    "ReferenceGrid", "LoadedSeg", "read_segmentation", "segment_resolver", "load_seg_array", "MODES", "DEFAULT_MODE",
    "META_KEYS", "SERIES_META_KEYS", "error_with_context", "source_name", "check_threshold",
    "GRID_SOURCE_SERIES", "GRID_REFERENCE", "GRID_SEG", "GRIDS", "OTHER_SERIES_OPTION", "threshold_masks",
    "READING_MODULES", "import_reading_modules",
]

MODES = tuple(mode.value for mode in LoadMode)

DEFAULT_MODE = LoadMode.LABELMAP.value
"""Default ``mode`` of every loader (``load_seg_array``, ``LoadDicomSeg(d)``,
``DicomSegReader``, ``DicomSegDataset``, ``load_transforms``): one channel of
segment numbers, so that batches collate whatever the number of segments of
each SEG, and the label convention of MONAI's losses/metrics
(``DiceLoss(to_onehot_y=True)``, ``AsDiscrete(to_onehot=N)``)."""

META_KEYS: dict[str, str] = {
    # every value is a str, an int/float, or a fixed-shape array, so that
    # monai.data.list_data_collate batches SEGs with any segment count/order/type
    # and decollate_batch gives back each item's value.
    MetaKey.AFFINE: "(4, 4) float64 index -> `space` mm affine (MetaTensor.affine; the reference image's when "
                    "placed on it)",
    MetaKey.ORIGINAL_AFFINE: "(4, 4) float64 copy of `affine` as loaded",
    MetaKey.SPATIAL_SHAPE: "(3,) int spatial shape (X, Y, Z)",
    MetaKey.SPACE: "'RAS' (default, as MONAI) or 'LPS'",
    MetaKey.ORIGINAL_CHANNEL_DIM: "0: the array is already channel-first",
    MetaKey.SEGMENTATION_TYPE: "SegmentationType of the SEG: 'BINARY', 'FRACTIONAL' or 'LABELMAP'",
    MetaKey.MODE: "'labelmap' (1 channel of values) or 'stacked' (one channel per segment/value)",
    MetaKey.THRESHOLD: "FRACTIONAL threshold applied (float in (0, 1]); 0.0 when none",
    MetaKey.SEGMENTS: "JSON list, one object per segment of the SEG (number, label, category, type, modifier, color, "
                        "tracking_id); segment 0 / background is never listed; read with segments_from_meta",
    MetaKey.CHANNEL_SEGMENTS: "JSON list per output channel of the SEG segment numbers feeding it",
    MetaKey.CHANNEL_VALUES: "JSON list: stacked mode, the value of each channel (segment number or label_map "
                            "value); "
                              "labelmap mode, the values the channel can hold, 0 (background) first",
    MetaKey.LABELS: "JSON object of the label_map used ({key: value}), or '' without one",
    MetaKey.SERIES_INSTANCE_UID: "SeriesInstanceUID of the SEG",
    MetaKey.SOP_INSTANCE_UID: "SOPInstanceUID of the SEG",
    MetaKey.FRAME_OF_REFERENCE_UID: "FrameOfReferenceUID of the SEG ('' if absent)",
    MetaKey.SOURCE_SERIES_INSTANCE_UID: "comma-separated SeriesInstanceUIDs the SEG references "
                                        "(ReferencedSeriesSequence)",
    MetaKey.GRID: "grid the label is on: 'source_series' (the referenced series' full grid, found by "
                  "DicomSegReader), 'reference' (a reference image's: LoadDicomSegd(ref_key=...)) or 'seg' (the "
                  "SEG's own grid: only the frames it stores)",
    MetaKey.FILENAME_OR_OBJ: "path of the SEG file ('' for a file object or dataset)",
}
"""Keys that :func:`load_seg_array`, ``LoadDicomSeg(d)`` and ``DicomSegReader`` put in
``MetaTensor.meta``, with a one-line description each (the README table is built from it)."""

SERIES_META_KEYS: dict[str, str] = {
    MetaKey.AFFINE: "(4, 4) float64 index -> `space` mm affine (MetaTensor.affine)",
    MetaKey.ORIGINAL_AFFINE: "(4, 4) float64 copy of `affine` as loaded",
    MetaKey.SPATIAL_SHAPE: "(3,) int spatial shape (X, Y, Z)",
    MetaKey.SPACE: "'RAS' (default, as MONAI) or 'LPS'",
    MetaKey.ORIGINAL_CHANNEL_DIM: "0: the channel axis added on load is first (EnsureChannelFirstd is a no-op); "
                                  "'no_channel' with ensure_channel_first=False",
    MetaKey.SERIES_INSTANCE_UID: "SeriesInstanceUID of the series",
    MetaKey.FRAME_OF_REFERENCE_UID: "FrameOfReferenceUID of the series ('' if absent)",
    MetaKey.SLICE_ORDER: f"{MetaKey.SLICE_ORDER_BY_POSITION.value!r}: slices sorted along the normal (not by InstanceNumber)",
    MetaKey.SHEARED: "gantry/detector tilt in degrees: the slice step (affine column 2) is off the normal of the "
                     "image planes by this angle, a sheared affine; 0.0 when not sheared",
    MetaKey.SLICE_GRID: "'source' (one slice per source image), 'filled' or 'resampled' (irregular_slices='fill' / "
                        "'resample')",
    MetaKey.FILLED_SLICES: "JSON list of the slice indices (last spatial axis) no source image lies on: filled "
                           "(padding value) or interpolated; '[]' for a regular series",
    MetaKey.SOURCE_VOLUME: "JSON of the volume= selector that picks the loaded volume among several in the series "
                           "('' when the series holds one)",
    MetaKey.SOURCE_VOLUMES: "number of volumes found in the series (stacks, temporal positions, echoes, "
                            "acquisitions)",
    MetaKey.MULTIFRAME: "True when the frames come from multi-frame (Enhanced / Legacy Converted) instances",
    MetaKey.SOURCE_FRAMES: "compact text naming the source images/frames loaded (a 32-bit hash per instance, frame "
                           "ranges of multi-frame ones), when the series holds several volumes or multi-frame "
                           "instances, else '': LoadDicomSegd(ref_key=...) refuses a SEG referencing others",
    MetaKey.FILENAME_OR_OBJ: "the series folder (or first file) as given",
}
"""Keys that ``LoadDicomSeries(d)`` puts in ``MetaTensor.meta``, one-line description each."""


READING_MODULES = (
    "monai_dicomseg.seg.segmentation", "monai_dicomseg.seg.reader", "monai_dicomseg.seg.stacking",
    "monai_dicomseg.codec.decode", "monai_dicomseg.codec.assemble", "monai_dicomseg.codec.bulk_frame_header",
    "monai_dicomseg.codec.frame_index", "monai_dicomseg.io.fractional_labels", "monai_dicomseg.dicomweb",
)
"""The modules a SEG read imports on first use (with them pydicom.sr's code tables and the codec stack)."""


def import_reading_modules() -> None:
    """Import :data:`READING_MODULES` now, where a loader is built.

    The read path imports them lazily (a package import stays light), about
    0.4 s on a 2-core machine. A loader built in the main process calls this,
    so the ``DataLoader`` workers forked from it, new ones every epoch unless
    ``persistent_workers``, inherit the modules instead of each paying that
    import on its first item (which made a training epoch ~20 % slower than
    with ``.nii.gz`` labels in ``benchmarks/training.py``).
    """
    import importlib

    for name in READING_MODULES:
        importlib.import_module(name)


def source_name(value: Any) -> str:
    """A SEG or series source as errors name it: a quoted path (first file ``+N files``), a URI or ``<Type>``."""
    if isinstance(value, (str, os.PathLike)):
        return repr(str(value))
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (str, os.PathLike)):
        return repr(str(value[0])) + (f" (+{len(value) - 1} files)" if len(value) > 1 else "")
    uri = getattr(value, "uri", None)  # a DicomWebSeries
    if isinstance(uri, str) and uri:
        return repr(uri)
    return f"<{type(value).__name__}>"


def check_threshold(threshold: Any) -> "float | None":
    """Validate a FRACTIONAL ``threshold``: None or a float in (0, 1]."""
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating, np.integer)):
        raise InputTypeError(f"threshold must be a float in (0, 1] or None; got {type(threshold).__name__}")
    value = float(threshold)
    if not 0.0 < value <= 1.0:
        raise InputError(f"threshold must be in (0, 1]; got {threshold!r}")
    return value


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
    identity
        The source frames the image was built from (``meta["source_frames"]``), when known: a SEG of its
        series must reference only those (:class:`~monai_dicomseg.io.source_volumes.VolumeIdentity`).
    """

    affine: np.ndarray
    spatial_shape: tuple[int, int, int]
    space: str = "RAS"
    frame_of_reference_uid: "str | None" = None
    series_instance_uid: "str | None" = None
    identity: "VolumeIdentity | None" = None

    def lps_affine(self) -> np.ndarray:
        """The affine in LPS."""
        return ras_to_lps_affine(self.affine) if self.space == RAS else np.array(self.affine, dtype=np.float64)


@dataclass
class LoadedSeg:
    """Result of :func:`load_seg_array`: channel-first array and MONAI metadata."""

    array: np.ndarray
    meta: dict[str, Any]


def segment_resolver(selection: "SegmentSelection | None") -> "Any | None":
    """The ``segments=`` callable of :func:`read_segmentation` for ``selection`` (None: keep every segment).

    It maps a header-only SEG ``Dataset`` (no Pixel Data, e.g. built from
    DICOMweb metadata) to the segment numbers ``selection.plan(segment_table(...))``
    keeps: the loader's own selection code, run before any pixel is fetched.
    """
    if selection is None or selection == SegmentSelection():
        return None

    def resolve(header: Dataset) -> list[int]:
        return [int(n) for n in selection.plan(header_segment_table(header), warn=False).segment_numbers]

    return resolve


def read_segmentation(seg: Any, segments: "Any | None" = None) -> Any:
    """Return a :class:`~monai_dicomseg.seg.Segmentation` from a path, file object or dataset.

    Parameters
    ----------
    seg
        The SEG: path, file object, pydicom Dataset, Segmentation, or a DICOMweb
        reference (:class:`~monai_dicomseg.dicomweb.DicomWebSeries` / ``dicomweb+`` URI).
    segments
        DICOMweb references only (ignored otherwise): a callable ``header Dataset
        -> segment numbers or None`` (:func:`segment_resolver`). With it, a
        BINARY/FRACTIONAL SEG may be retrieved as a partial SEG holding only the
        frames of those segments (same header, fewer frames): decode only those
        segments from the result.

    Raises
    ------
    InputError
        If a path does not exist.
    DecodeError
        If the file or dataset is not a DICOM Segmentation.
    """
    from monai_dicomseg.errors import DecodeError
    from monai_dicomseg.seg.segmentation import segread
    from monai_dicomseg.dicomweb import local_paths
    from monai_dicomseg.seg.segmentation import Segmentation

    seg = local_paths(seg, expect_seg=True, segments=segments)  # DICOMweb reference -> cached file
    if isinstance(seg, Segmentation):
        return seg
    if isinstance(seg, Dataset):
        if str(getattr(seg, "SOPClassUID", "")) not in SEG_SOP_CLASS_UIDS:
            raise DecodeError(
                f"SOPClassUID must be a Segmentation Storage class {sorted(SEG_SOP_CLASS_UIDS)}; "
                f"got {getattr(seg, 'SOPClassUID', None)!r}"
            )
        return Segmentation.from_dataset(seg, copy=False)
    if isinstance(seg, (str, os.PathLike)):
        if not os.path.isfile(seg):
            raise InputError(f"SEG file {str(seg)!r} does not exist")
    elif not hasattr(seg, "read"):
        raise InputTypeError(f"a SEG must be a path, a file object or a pydicom Dataset; got {type(seg).__name__}")
    seg = segread(seg)
    _check_seg_sop_class(seg)
    return seg


def _check_seg_sop_class(seg: Any) -> None:
    from monai_dicomseg.errors import DecodeError

    if str(getattr(seg, "SOPClassUID", "")) not in SEG_SOP_CLASS_UIDS:
        raise DecodeError(
            f"SOPClassUID must be a Segmentation Storage class {sorted(SEG_SOP_CLASS_UIDS)}; "
            f"got {getattr(seg, 'SOPClassUID', None)!r}"
        )


def _read_with_table(seg: Any, segments: "Any | None") -> "tuple[Any, list[dict[str, Any]]]":
    """:func:`read_segmentation` and the segment table; a path or file object read here uses the table cache.

    Only a SEG this function parses itself is keyed by its stored
    SegmentSequence bytes (:func:`~monai_dicomseg.io.segments.segment_sequence_key`,
    taken before anything converts them): a Dataset or Segmentation passed in
    may have been changed in memory, so its table is always computed.
    """
    from monai_dicomseg.dicomweb import local_paths
    from monai_dicomseg.seg.reader import read_segmentation_dataset
    from monai_dicomseg.seg.segmentation import Segmentation

    seg = local_paths(seg, expect_seg=True, segments=segments)  # DICOMweb reference -> cached file
    fresh = isinstance(seg, (str, os.PathLike)) and os.path.isfile(seg)
    if fresh or not isinstance(seg, Dataset) and hasattr(seg, "read"):
        dataset = read_segmentation_dataset(seg)
        key = segment_sequence_key(dataset)
        seg = Segmentation.from_dataset(dataset, copy=False)
        _check_seg_sop_class(seg)
        return seg, cached_segment_table(seg, key)
    seg = read_segmentation(seg, segments=segments)
    return seg, segment_table(seg)


def referenced_series_uids(seg: Any) -> list[str]:
    """SeriesInstanceUIDs the SEG derives from (ReferencedSeriesSequence, PS3.3 C.10.4).

    Reads only the series level (not every referenced instance), also inside
    StudiesContainingOtherReferencedInstancesSequence.
    """
    items = list(seg.get("ReferencedSeriesSequence", []))
    for study in seg.get("StudiesContainingOtherReferencedInstancesSequence", []):
        items.extend(study.get("ReferencedSeriesSequence", []))
    return list(dict.fromkeys(str(item.SeriesInstanceUID) for item in items if "SeriesInstanceUID" in item))


OTHER_SERIES_OPTION = "allow_other_series"
"""Name of the option that lets a SEG land on another series of its Frame of Reference."""


def _check_reference_identity(seg: Any, reference: ReferenceGrid, allow_other_series: bool = False) -> None:
    """Refuse a reference image of another Frame of Reference, or of another series unless allowed.

    A SEG's positions are only comparable with an image of the same Frame of
    Reference (PS3.3 C.7.4.1): another FrameOfReferenceUID is always an error.
    An image that is not among the SEG's ReferencedSeriesSequence (PS3.3
    C.10.4) but shares its Frame of Reference (another kernel, another phase)
    is accepted only with ``allow_other_series=True``, and only when both
    FrameOfReferenceUIDs are known; the placement is still exact or a
    GeometryError.
    """
    seg_for = str(getattr(seg, "FrameOfReferenceUID", "") or "")
    if reference.frame_of_reference_uid and seg_for and seg_for != reference.frame_of_reference_uid:
        raise GeometryError(
            f"FrameOfReferenceUID of the SEG is {seg_for!r} but the reference image's is "
            f"{reference.frame_of_reference_uid!r}; positions are not comparable"
        )
    series = referenced_series_uids(seg)
    if not reference.series_instance_uid or not series or reference.series_instance_uid in series:
        return
    if not allow_other_series:
        raise GeometryError(
            f"the SEG references SeriesInstanceUID {series} (ReferencedSeriesSequence) but the reference image is "
            f"series {reference.series_instance_uid!r}; if that image is another series of the same Frame of "
            f"Reference (another kernel or phase), pass {OTHER_SERIES_OPTION}=True (the placement is still "
            "checked voxel by voxel)"
        )
    if not (seg_for and reference.frame_of_reference_uid):
        raise GeometryError(
            f"{OTHER_SERIES_OPTION}=True needs the FrameOfReferenceUID of both the SEG ({seg_for or 'absent'!r}) "
            f"and the reference image ({reference.frame_of_reference_uid or 'absent'!r}) to confirm that the "
            f"reference series {reference.series_instance_uid!r} shares the SEG's Frame of Reference"
        )


def _decode(seg: Any, plan: SegmentSelectionPlan, mode: str, rescale_fractional: bool,
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
        for index, value in enumerate(plan.values):
            target = plan.channel_values.index(value)
            np.maximum(channels[target], stacked[index], out=channels[target])
        stacked = channels
    return stacked, volume


def threshold_masks(fractions: np.ndarray, threshold: float, values: "Sequence[int]", *, combine: bool,
                    skip_overlap_checks: bool = False, channel_axis: int = 0) -> np.ndarray:
    """FRACTIONAL fractions (rescaled to [0, 1]) -> masks ``fraction >= threshold``, or one label map.

    The one threshold rule of every door (``load_seg_array``, ``to-nifti``,
    ``convert``): a voxel belongs to a segment where its fraction is
    ``>= threshold`` (PS3.3 C.8.20.2.3).

    Parameters
    ----------
    fractions
        Fractions with one channel per segment along ``channel_axis`` (float).
    threshold
        In (0, 1] (:func:`check_threshold`).
    values
        The value each channel paints in the label map (segment numbers, or ``label_map`` values).
    combine
        False: bool masks, shape of ``fractions``. True: the label map (``channel_axis`` removed), uint8
        (uint16 above 255), 0 where no channel passes.
    skip_overlap_checks
        ``combine``: where several channels pass, the highest value wins instead of an OverlapError.
    channel_axis
        The channel axis of ``fractions``.

    Raises
    ------
    OverlapError
        ``combine``, not ``skip_overlap_checks``, and a voxel passes in more than one channel.
    """
    from monai_dicomseg.errors import OverlapError

    masks = np.moveaxis(np.asarray(fractions) >= np.float32(threshold), channel_axis, 0)
    if not combine:
        return np.moveaxis(masks, 0, channel_axis)
    values = [int(v) for v in values]
    out = np.zeros(masks.shape[1:], dtype=np.uint8 if max(values, default=0) <= 255 else np.uint16)
    if not values:
        return out
    if not skip_overlap_checks and masks.shape[0] > 1:
        overlapping = int(np.count_nonzero(masks.sum(axis=0, dtype=np.uint16) > 1))
        if overlapping:
            raise OverlapError(
                f"cannot combine FRACTIONAL segments at threshold {threshold}: {overlapping} voxel(s) "
                "are >= threshold in more than one segment (pass skip_overlap_checks=True to keep the "
                "highest value, or raise the threshold)"
            )
    for channel in np.argsort(values, kind="stable"):  # ascending: the highest value is painted last
        out[masks[channel]] = values[channel]
    return out


def _apply_threshold(stacked: np.ndarray, plan: SegmentSelectionPlan, mode: str, threshold: float,
                     skip_overlap_checks: bool) -> np.ndarray:
    """FRACTIONAL ``(channels, F, R, C)`` fractions -> 0/1 channels or a ``(1, F, R, C)`` label map
    (:func:`threshold_masks`; in ``"labelmap"`` mode each channel paints its ``plan.channel_values``)."""
    if mode == "stacked":
        return threshold_masks(stacked, threshold, (), combine=False).astype(np.uint8)
    values = [int(v) for v in plan.channel_values] if plan.segment_numbers else []
    if not values:
        return np.zeros((1, *np.shape(stacked)[1:]), dtype=np.uint8)
    return threshold_masks(stacked, threshold, values, combine=True, skip_overlap_checks=skip_overlap_checks)[None]


def _scatter(seg: Any, plan: SegmentSelectionPlan, mode: str, layout: Any, placements: Any,
             target_shape: tuple[int, ...], dtype: Any, skip_overlap_checks: bool,
             rescale_fractional: bool = True) -> np.ndarray:
    """BINARY / LABELMAP, FRACTIONAL stacked: decode the selected frames once, straight into the final array.

    The output is allocated in its final channel-first layout and dtype and
    the frames are scattered into a view of it that is indexed like the SEG
    volume (:func:`~monai_dicomseg.geometry.grid_placement.destination_view`): no
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
        fractional = SegmentationTypeValues(getattr(seg.segmentation_type, "value", seg.segmentation_type)) \
            == SegmentationTypeValues.FRACTIONAL
        natural = output_dtype(None, max_value=1, rescaled=fractional and rescale_fractional)
        channels = len(plan.channel_values)
        targets = [plan.channel_values.index(v) for v in plan.values]
    out = np.zeros((channels, *target_shape), dtype=natural if dtype is None else dtype)
    if plan.segment_numbers:
        view = destination_view(out, placements, geometry.spatial_shape)
        view = view[0] if mode == "labelmap" else np.moveaxis(view, 0, -1)  # (F, R, C[, channels])
        seg.assemble_volume_into(
            view, frames, list(plan.segment_numbers), combine_segments=(mode == "labelmap"),
            targets=targets, skip_overlap_checks=skip_overlap_checks, rescale_fractional=rescale_fractional,
        )
    return out


def load_seg_array(
    seg: Any,
    *,
    mode: str = DEFAULT_MODE,
    selection: "SegmentSelection | None" = None,
    rescale_fractional: bool = True,
    skip_overlap_checks: bool = False,
    reference: "ReferenceGrid | None" = None,
    space: str = "RAS",
    dtype: "np.dtype | type | str | None" = None,
    threshold: "float | None" = None,
    allow_other_series: bool = False,
    **selection_options: Any,
) -> LoadedSeg:
    """Decode a SEG into a channel-first array on the MONAI grid.

    Parameters
    ----------
    seg
        The SEG: path, file object, pydicom Dataset or Segmentation.
    mode
        ``"labelmap"`` (default, :data:`DEFAULT_MODE`): ``(1, X, Y, Z)`` of
        segment numbers (or ``label_map`` values), uint8 (uint16 above 255),
        0 = background; one channel whatever the segment count, so batches of
        different SEGs collate, and MONAI's label convention
        (``DiceLoss(to_onehot_y=True)``). ``"stacked"``: ``(S, X, Y, Z)``, one
        channel per selected segment (or per ``label_map`` value), uint8 0/1
        for BINARY/LABELMAP, float32 for FRACTIONAL (uint8 0/1 with a
        ``threshold``).
    selection
        A :class:`~monai_dicomseg.io.segments.SegmentSelection`, or None.
    **selection_options
        ``segment_numbers``, ``segment_labels``, ``segmented_property_types``,
        ``label_map`` by keyword instead of ``selection``
        (:data:`~monai_dicomseg.io.segments.SELECTION_OPTIONS`; see
        :func:`~monai_dicomseg.io.segments.plan_segment_selection`).
    rescale_fractional
        Map FRACTIONAL stored values to [0, 1] (PS3.3 C.8.20.2.3
        MaximumFractionalValue); False keeps stored integers.
    skip_overlap_checks
        ``"labelmap"`` mode: let the highest segment number win where BINARY
        segments overlap instead of raising.
    reference
        Target grid (an image loaded by MONAI or :mod:`monai_dicomseg`);
        None uses the SEG's own geometry in MONAI order (axes (C, R, S), see
        :mod:`monai_dicomseg.io.source_series`) spanning the frames it contains.
    space
        ``"RAS"`` or ``"LPS"`` for the output affine without ``reference``
        (with one, the reference's space is used).
    dtype
        Output dtype (default as described under ``mode``).
    threshold
        FRACTIONAL SEGs only (ignored for BINARY/LABELMAP): a voxel belongs to
        a segment where its fraction (rescaled to [0, 1], PS3.3 C.8.20.2.3) is
        ``>= threshold``; a float in (0, 1]. Required for a FRACTIONAL SEG in
        ``"labelmap"`` mode; in ``"stacked"`` mode it turns the channels into
        uint8 0/1. Where several segments pass, the highest output value wins
        with ``skip_overlap_checks``, else an OverlapError is raised.
    allow_other_series
        Accept a ``reference`` image that is not among the series the SEG
        references (ReferencedSeriesSequence, PS3.3 C.10.4) when it shares the
        SEG's FrameOfReferenceUID (another kernel, another phase of the same
        acquisition); the placement is still exact or a GeometryError. Another
        Frame of Reference is refused whatever this option.

    Returns
    -------
    LoadedSeg
        ``array`` ``(channels, X, Y, Z)``; ``meta`` with ``affine``,
        ``original_affine``, ``spatial_shape``, ``space``, ``segments`` (segment
        table of :func:`~monai_dicomseg.io.segments.segment_table` as a JSON
        string, so that ``DataLoader`` collation works across SEGs with
        different segments; parse with :func:`~monai_dicomseg.io.segments.segments_from_meta`),
        ``channel_segments`` (JSON list: SEG segment numbers feeding each
        channel), ``channel_values`` (JSON list of int), ``labels`` (label_map
        as JSON, or ""), ``threshold``, ``segmentation_type``,
        ``SeriesInstanceUID`` and ``SOPInstanceUID`` of the SEG,
        ``FrameOfReferenceUID``, ``source_series_instance_uid``, ``grid``
        (``"reference"`` with a reference, else ``"seg"``),
        ``filename_or_obj``: exactly the keys of :data:`META_KEYS`, each a
        str, a number or a fixed-shape array so that ``list_data_collate``
        batches any mix of SEGs.

    Raises
    ------
    InputTypeError
        (a ``TypeError``) an unknown keyword option, naming the closest valid one.
    InputError
        Bad mode/selection/threshold, missing file, a FRACTIONAL SEG in
        ``"labelmap"`` mode without ``threshold``.
    OverlapError
        ``"labelmap"`` mode: segments overlap and ``skip_overlap_checks`` is False.
    DecodeError
        Not a SEG.
    GeometryError
        Reference grid incompatible (FrameOfReference, series (see
        ``allow_other_series``), orientation,
        spacing, sub-voxel offset, SEG frames outside the grid).
    """
    # Over 60 lines on purpose: the one decode path of every loader (select -> read -> decode straight
    # into the output when the layout allows, else decode + place -> metadata); the steps are helpers
    # (_decode, _scatter, _apply_threshold, plan_placement) and what remains is the branching between them.
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}; got {mode!r}")
    check_options(selection_options, SELECTION_OPTIONS, "load_seg_array")
    selection = SegmentSelection.from_options(selection_options, selection)
    label_map = selection.label_map
    threshold = check_threshold(threshold)
    given, (seg, table) = seg, _read_with_table(seg, segment_resolver(selection))  # given: as passed
    plan = selection.plan(table, where=source_name(given if isinstance(given, str) else seg.get("filename") or given))
    seg_type = seg.segmentation_type
    seg_type = SegmentationTypeValues(getattr(seg_type, "value", seg_type))
    fractional = seg_type == SegmentationTypeValues.FRACTIONAL
    if mode == "labelmap" and fractional and threshold is None:
        name = f" {str(given)!r}" if isinstance(given, (str, os.PathLike)) else ""
        raise InputError(
            f"mode='labelmap' of the FRACTIONAL SEG{name} (SegmentationType) needs a threshold: pass "
            "threshold= (a float in (0, 1], e.g. threshold=0.5), or use mode='stacked' for the fractions"
        )
    if reference is not None:
        _check_reference_identity(seg, reference, allow_other_series)
        if reference.identity is not None and reference.series_instance_uid in referenced_series_uids(seg):
            reference.identity.check(seg)  # the grids of two phases are identical: the frames must be its own
    layout = seg.volume_layout()  # None for a tiled SLIDE segmentation
    if layout is not None:
        volume_affine, volume_shape = layout[0].affine, layout[0].spatial_shape
    elif fractional and threshold is not None:
        values, volume = _decode(seg, plan, "stacked", True, skip_overlap_checks)
        values = _apply_threshold(values, plan, mode, threshold, skip_overlap_checks)
        volume_affine, volume_shape = volume.affine, volume.spatial_shape
    else:
        values, volume = _decode(seg, plan, mode, rescale_fractional, skip_overlap_checks)
        volume_affine, volume_shape = volume.affine, volume.spatial_shape
    n_frames = volume_shape[0]
    if reference is None:
        out_space = check_space(space)
        target_lps = monai_affine_from_lps(volume_affine, n_frames, space=LPS)
        target_shape = tuple(int(s) for s in volume_shape[::-1])
        affine = lps_to_ras_affine(target_lps) if out_space == RAS else target_lps
    else:
        target_lps = reference.lps_affine()
        target_shape = tuple(int(s) for s in reference.spatial_shape)
        affine = np.array(reference.affine, dtype=np.float64)
        out_space = reference.space
    placements = plan_placement(volume_affine, volume_shape, target_lps, target_shape)
    if layout is not None and fractional and threshold is not None:  # stored frames -> masks: no float stack
        from monai_dicomseg.io.fractional_labels import threshold_to_grid

        array = threshold_to_grid(seg, plan, mode, layout, placements, target_shape, dtype, threshold,
                                  skip_overlap_checks)
    elif layout is not None:
        array = _scatter(seg, plan, mode, layout, placements, target_shape, dtype, skip_overlap_checks,
                         rescale_fractional)
    else:
        out_dtype = dtype
        if out_dtype is None and values.dtype == bool:
            out_dtype = np.uint8
        array = place_on_grid(values, placements, target_shape, dtype=out_dtype)  # type: ignore[arg-type]  # a dtype name (str) is as valid for numpy as a dtype or a type
    if mode == "labelmap":
        channel_segments = [list(plan.segment_numbers)]
    else:
        channel_segments = [[n for n, v in zip(plan.segment_numbers, plan.values) if v == c]
                            for c in plan.channel_values]
    meta: dict[str, Any] = {
        MetaKey.AFFINE: affine,
        MetaKey.ORIGINAL_AFFINE: affine.copy(),
        MetaKey.SPATIAL_SHAPE: np.asarray(target_shape),
        MetaKey.SPACE: out_space,
        MetaKey.ORIGINAL_CHANNEL_DIM: 0,
        MetaKey.SEGMENTATION_TYPE: seg_type.value,
        MetaKey.MODE: mode,
        MetaKey.SEGMENTS: json.dumps(table),
        MetaKey.CHANNEL_SEGMENTS: json.dumps(channel_segments),
        MetaKey.THRESHOLD: float(threshold) if fractional and threshold is not None else 0.0,
        MetaKey.CHANNEL_VALUES: json.dumps([int(v) for v in plan.channel_values] if mode == "stacked"
                                     else [0, *(int(v) for v in plan.channel_values)]),
        MetaKey.LABELS: "" if label_map is None else json.dumps({str(k): int(v) for k, v in label_map.items()}),
        MetaKey.SERIES_INSTANCE_UID: str(getattr(seg, "SeriesInstanceUID", "")),
        MetaKey.SOP_INSTANCE_UID: str(getattr(seg, "SOPInstanceUID", "")),
        MetaKey.FRAME_OF_REFERENCE_UID: str(getattr(seg, "FrameOfReferenceUID", "") or ""),
        MetaKey.SOURCE_SERIES_INSTANCE_UID: ",".join(referenced_series_uids(seg)),
        MetaKey.GRID: GRID_SEG if reference is None else GRID_REFERENCE,
        MetaKey.FILENAME_OR_OBJ: str(given) if isinstance(given, (str, os.PathLike)) else "",
    }
    return LoadedSeg(array, meta)
