"""FRACTIONAL SEG -> masks or a label map, frame by frame, never the float stack.

The threshold rule of every door (``load_seg_array(threshold=...)``,
``LoadDicomSegd``, CLI ``to-nifti``/``convert --threshold``): a voxel belongs
to a segment where its fraction, ``stored / MaximumFractionalValue`` in
float32 (PS3.3 C.8.20.2.3), is ``>= threshold``
(:func:`monai_dicomseg.io.segload.threshold_masks` states it on a float array).

Here the rule is applied to the stored integers through a lookup table
computed with exactly that float32 arithmetic (:func:`passing_table`), so no
fraction is ever materialised: stored frames are decoded a chunk at a time
(uint8, one byte per voxel) and painted straight into the caller's output
(typically a view of the final MONAI-grid array). Peak memory is the output
plus one chunk of stored frames (:data:`CHUNK_VALUES` values), whatever the
number of segments: a 117-segment FRACTIONAL SEG read as a label map no
longer builds its ``(117, F, R, C)`` float32 stack.

Overlaps (label map): a voxel passing in channels of different values is an
:class:`~monai_dicomseg.errors.OverlapError` (counted exactly, as the float
path counts them) unless ``skip_overlap_checks``, where the highest value
wins. Channels sharing a value (a ``label_map`` naming several segments) are
OR-ed, not overlaps.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from monai_dicomseg.codec.assemble import PLANE_BLOCK, FramePlacement, check_unique, copy_planes
from monai_dicomseg.codec.decode import decode_frames, pixel_layout
from monai_dicomseg.errors import DecodeError, InputError, OverlapError

__all__ = ["passing_table", "passing_rule", "paint_thresholded", "threshold_to_grid", "threshold_volume", "CHUNK_VALUES"]

CHUNK_VALUES = 1 << 22
"""Stored values decoded at a time (4 M: 4 MB of uint8 frames, plus as many bytes of masks)."""


def passing_table(threshold: float, maximum: int, size: int = 256) -> np.ndarray:
    """``table[v]`` is True where stored value ``v`` passes: ``float32(v) / float32(maximum) >= float32(threshold)``.

    Parameters
    ----------
    threshold
        In (0, 1] (checked by :func:`~monai_dicomseg.io.segload.check_threshold`).
    maximum
        MaximumFractionalValue (PS3.3 C.8.20.2.3), >= 1.
    size
        Number of stored values covered (256 for 8-bit frames).

    Returns
    -------
    numpy.ndarray
        ``(size,)`` bool; the same decision as rescaling to float32 then comparing.

    Raises
    ------
    InputError
        ``maximum`` is not positive.
    """
    if int(maximum) <= 0:
        raise InputError(f"MaximumFractionalValue must be positive to rescale; got {maximum!r}")
    values = np.arange(size, dtype=np.float32)
    values /= np.float32(int(maximum))
    return values >= np.float32(threshold)


def passing_rule(table: np.ndarray) -> Any:
    """``stored -> table[stored]`` as one comparison where ``table`` is False then True (a :func:`passing_table`).

    ``fraction >= threshold`` is monotone in the stored value, so a value
    passes where it is at least the first passing one: ``stored >= first``
    is the same mask as the lookup at a fraction of its cost (a comparison
    instead of a gather per voxel). A table of any other shape keeps the lookup.
    """
    first = int(np.argmax(table)) if table.any() else int(table.size)
    if not table[first:].all():
        return lambda stored: table[stored]
    if first >= table.size:
        return lambda stored: np.zeros(np.shape(stored), dtype=bool)
    return lambda stored: stored >= first


def _selected(placement: FramePlacement, segment_numbers: Sequence[int], targets: Sequence[int]
              ) -> tuple[FramePlacement, np.ndarray]:
    """The frames of the requested segments and each frame's target (channel or value)."""
    segs = np.asarray(list(segment_numbers), dtype=np.int64)
    size = int(max(segs.max(initial=0), placement.segment.max(initial=0))) + 1
    target_of = np.full(size, -1, dtype=np.int64)
    target_of[segs] = np.asarray(list(targets), dtype=np.int64)
    placement = placement.select(target_of[placement.segment] >= 0)
    check_unique(placement, by_segment=True)
    return placement, target_of[placement.segment]


def _chunks(seg: Any, layout: Any, frames: np.ndarray, maximum: int):
    """Decode ``frames`` a chunk at a time: yields ``(begin, stored)``; checks stored <= maximum at the end.

    Raises
    ------
    DecodeError
        A stored value above MaximumFractionalValue (after the last chunk, as the float path).
    """
    step = max(1, CHUNK_VALUES // max(1, layout.rows * layout.columns))
    largest = 0
    for begin in range(0, frames.size, step):
        stored = decode_frames(seg, frames[begin:begin + step], layout)
        if stored.size:
            largest = max(largest, int(stored.max()))
        yield begin, stored
    if largest > maximum:
        raise DecodeError(f"PixelData holds values up to {largest}, above MaximumFractionalValue = {maximum}")


def paint_thresholded(seg: Any, placement: FramePlacement, out: np.ndarray, segment_numbers: Sequence[int],
                      targets: Sequence[int], *, threshold: float, combine: bool,
                      skip_overlap_checks: bool = False, zero_filled: bool = False) -> np.ndarray:
    """Threshold the FRACTIONAL frames of ``placement`` into ``out``, one chunk of stored frames at a time.

    Parameters
    ----------
    seg
        A FRACTIONAL :class:`~monai_dicomseg.seg.Segmentation`.
    placement
        Stored frames and their output positions (``seg.volume_layout()[1]``).
    out
        Zero-filled, any strides/dtype: ``(N, R, C)`` when ``combine`` (the
        label map), else ``(N, R, C, channels)`` (0/1 masks).
    segment_numbers, targets
        Requested segments and, per segment, its output value (``combine``,
        >= 1) or channel (stacked; segments may share one: OR-ed).
    threshold
        In (0, 1]: a voxel passes where ``fraction >= threshold``.
    combine
        Paint values into one label map instead of 0/1 channels.
    skip_overlap_checks
        ``combine``: the highest value wins where different values pass, instead of an OverlapError.
    zero_filled
        ``out`` holds only zeros (a fresh ``np.zeros``): the label map is painted from zeros instead of
        reading ``out`` back first.

    Returns
    -------
    numpy.ndarray
        ``out``.

    Raises
    ------
    OverlapError
        ``combine``, not ``skip_overlap_checks``, and a voxel passes for two different values.
    DecodeError
        A stored value above MaximumFractionalValue.
    FrameMismatchError
        Two stored frames of one segment at one position.
    """
    layout = pixel_layout(seg)  # validated once per read (cheap: header attributes only)
    maximum = int(seg.get("MaximumFractionalValue") or 0)
    placement, target = _selected(placement, segment_numbers, targets)
    table = passing_table(threshold, maximum, 1 << (8 * decode_dtype_size(layout)))
    if combine:  # position major, value ascending: the highest value is painted last
        order = np.lexsort((target, placement.position))
    else:
        order = np.argsort(placement.frame, kind="stable")  # file order: adjacent reads
    placement, target = placement.select(order), target[order]
    if combine:
        overlapping = _paint_labels(seg, layout, placement, target, out, table, maximum, skip_overlap_checks,
                                    zero_filled)
        if overlapping:
            raise OverlapError(
                f"cannot combine FRACTIONAL segments at threshold {threshold}: {overlapping} voxel(s) "
                "are >= threshold in more than one segment (pass skip_overlap_checks=True to keep the "
                "highest value, or raise the threshold)"
            )
        return out
    passes = passing_rule(table)
    for begin, stored in _chunks(seg, layout, placement.frame, maximum):
        masks = passes(stored)
        for offset in range(masks.shape[0]):
            mask = masks[offset]
            if mask.any():
                plane = out[placement.position[begin + offset], :, :, target[begin + offset]]
                plane[mask] = 1
    return out


def decode_dtype_size(layout: Any) -> int:
    """Bytes per stored FRACTIONAL value (1 for BitsAllocated 8, 2 for 16)."""
    return 2 if int(getattr(layout, "bits_allocated", 8)) > 8 else 1


def _paint_labels(seg: Any, layout: Any, placement: FramePlacement, value: np.ndarray, out: np.ndarray,
                  table: np.ndarray, maximum: int, skip_overlap_checks: bool, zero_filled: bool = False) -> int:
    """Paint each passing frame's value (frames sorted by position, then value); returns overlapping voxels.

    The frames are painted into a contiguous copy of the
    :data:`~monai_dicomseg.codec.assemble.PLANE_BLOCK` output planes from their
    position on (a slab, read from ``out`` a block at a time), written into
    ``out`` once when the positions move past it: ``out`` is usually a transposed view of the
    MONAI-ordered result, where every masked read and write, and every
    single-plane copy, would stride.
    """
    overlapping = 0
    over = np.zeros((layout.rows, layout.columns), dtype=bool)
    conflict = np.empty_like(over)
    slab = _Slab(out, zero_filled)
    work = over  # replaced at the first frame (current = -1 is no position)
    current, blank = -1, True  # blank: nothing painted on the current plane yet (no overlap possible)
    painted = None  # the last value painted on the current plane
    passes = passing_rule(table)
    positions, labels = placement.position.tolist(), list(np.asarray(value))  # labels: numpy scalars, as before
    for begin, stored in _chunks(seg, layout, placement.frame, maximum):
        masks = passes(stored)
        passing = masks.reshape(masks.shape[0], -1).any(axis=1).tolist()
        for offset in range(masks.shape[0]):
            position, label = positions[begin + offset], labels[begin + offset]
            if position != current:
                overlapping += int(np.count_nonzero(over))
                over[:] = False
                current, painted = position, None
                work = slab.plane(position)
                blank = zero_filled or not work.any()
            if not passing[offset]:
                continue
            mask = masks[offset]
            if not skip_overlap_checks and not blank:
                if zero_filled and label != painted:
                    # the plane holds only this position's smaller values (ascending): any non-zero one conflicts
                    np.logical_and(mask, work, out=conflict)
                else:
                    np.logical_and(mask, work != label, out=conflict)
                    conflict &= work != 0
                over |= conflict
            np.putmask(work, mask, label)
            blank, painted = False, label
    slab.flush()
    return overlapping + int(np.count_nonzero(over))


class _Slab:
    """Up to ``PLANE_BLOCK`` consecutive planes of ``out`` (axis 0), painted in a contiguous copy.

    Positions must be visited in ascending order: a slab starts at the first
    position past the previous one and is written back whole when left, so
    no plane is written twice. The copy starts from what ``out`` holds (read
    a block of planes at a time, :func:`~monai_dicomseg.codec.assemble.copy_planes`),
    so planes of the slab that no frame paints are written back unchanged,
    whatever ``out`` held; with ``zero_filled`` (the caller's promise that
    ``out`` holds only zeros, as :func:`threshold_to_grid` makes it) the copy
    starts from zeros instead of reading them back.
    """

    def __init__(self, out: np.ndarray, zero_filled: bool = False) -> None:
        self.out, self.first = out, 0
        self.copy: np.ndarray | None = None
        self.zero_filled = zero_filled

    def plane(self, position: int) -> np.ndarray:
        """The working plane of ``out[position]`` (``0 <= position < len(out)``)."""
        if self.copy is None or not self.first <= position < self.first + self.copy.shape[0]:
            self.flush()
            self.first = position
            planes = max(1, min(PLANE_BLOCK, len(self.out) - position))
            if self.zero_filled:
                copy = np.zeros((planes, *self.out.shape[1:]), dtype=self.out.dtype)
            else:
                copy = np.empty((planes, *self.out.shape[1:]), dtype=self.out.dtype)
                copy_planes(copy, self.out[position:position + planes])
            self.copy = copy
        return self.copy[position - self.first]

    def flush(self) -> None:
        """Write the working copy back into ``out``."""
        if self.copy is not None:
            copy_planes(self.out[self.first:self.first + self.copy.shape[0]], self.copy)
            self.copy = None


def threshold_to_grid(seg: Any, plan: Any, mode: str, layout: Any, placements: Any, target_shape: Sequence[int],
                      dtype: Any, threshold: float, skip_overlap_checks: bool) -> np.ndarray:
    """``load_seg_array``'s FRACTIONAL + ``threshold`` output, painted straight onto the MONAI grid.

    Parameters
    ----------
    seg, plan, mode
        The SEG, its :class:`~monai_dicomseg.io.segments.SegmentSelectionPlan` and ``"labelmap"``/``"stacked"``.
    layout
        ``seg.volume_layout()``: ``(VolumeGeometry, FramePlacement)``.
    placements, target_shape
        :func:`~monai_dicomseg.geometry.grid_placement.plan_placement` of the SEG volume onto the target grid.
    dtype
        Output dtype, or None: uint8 masks (stacked), uint8 label map (uint16 above 255).
    threshold, skip_overlap_checks
        As :func:`paint_thresholded`.

    Returns
    -------
    numpy.ndarray
        ``(1, X, Y, Z)`` label map or ``(channels, X, Y, Z)`` masks: equal to thresholding the float32
        fractions (:func:`~monai_dicomseg.io.segload.threshold_masks`) and placing them on the grid.
    """
    from monai_dicomseg.geometry.grid_placement import destination_view

    geometry, frames = layout
    combine = mode == "labelmap"
    if combine:
        targets = [int(v) for v in plan.values]
        natural = np.uint8 if max(targets, default=0) <= 255 else np.uint16
        out = np.zeros((1, *target_shape), dtype=natural if dtype is None else dtype)
    else:
        targets = [plan.channel_values.index(v) for v in plan.values]
        out = np.zeros((len(plan.channel_values), *target_shape), dtype=np.uint8 if dtype is None else dtype)
    if plan.segment_numbers:
        view = destination_view(out, placements, geometry.spatial_shape)
        view = view[0] if combine else np.moveaxis(view, 0, -1)  # (F, R, C[, channels])
        paint_thresholded(seg, frames, view, list(plan.segment_numbers), targets, threshold=threshold,
                          combine=combine, skip_overlap_checks=skip_overlap_checks, zero_filled=True)
    return out


def threshold_volume(seg: Any, threshold: float, *, combine: bool, skip_overlap_checks: bool = False) -> Any:
    """``seg.get_volume()`` of a FRACTIONAL SEG thresholded, built without the float volume (CLI ``convert``).

    Parameters
    ----------
    seg
        A FRACTIONAL :class:`~monai_dicomseg.seg.Segmentation` in the PATIENT coordinate system.
    threshold
        In (0, 1]: a voxel belongs to a segment where its fraction is ``>= threshold``.
    combine
        True: ``(F, R, C)`` label map of segment numbers (uint8, uint16 above 255). False: ``(F, R, C, S)``
        bool masks, one channel per segment in ``seg.segment_numbers`` order.
    skip_overlap_checks
        ``combine``: the highest segment number wins where several pass, instead of an OverlapError.

    Returns
    -------
    Volume
        The geometry of ``seg.get_volume()`` (LPS), with the masks or label map as its array.
    """
    from monai_dicomseg.geometry.volume import Volume

    geometry, placement = seg.volume_layout()
    numbers = [int(n) for n in seg.segment_numbers]
    shape = tuple(int(n) for n in geometry.spatial_shape)
    if combine:
        out = np.zeros(shape, dtype=np.uint8 if max(numbers, default=0) <= 255 else np.uint16)
        targets = numbers
    else:
        out = np.zeros((*shape, len(numbers)), dtype=bool)
        targets = list(range(len(numbers)))
    paint_thresholded(seg, placement, out, numbers, targets, threshold=threshold, combine=combine,
                      skip_overlap_checks=skip_overlap_checks, zero_filled=True)
    channels = None if combine else {"SegmentNumber": numbers}
    return Volume(out, geometry.affine, coordinate_system=geometry.coordinate_system,
                  frame_of_reference_uid=geometry.frame_of_reference_uid, channels=channels)
