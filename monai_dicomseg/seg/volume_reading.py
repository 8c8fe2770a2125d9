"""Reading a SEG as a :class:`~monai_dicomseg.geometry.volume.Volume` (guide, "Reconstructing Volumes").

Mixed into :class:`~monai_dicomseg.seg.segmentation.Segmentation` through
:class:`~monai_dicomseg.seg.reader.SegmentationReaderMixin`: frames are placed
by plane position (omitted frames, reversed or scrambled order, gaps).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any
from collections.abc import Sequence

import numpy as np

from monai_dicomseg.codec.assemble import FramePlacement, assemble_frames
from monai_dicomseg.enums import (
    CoordinateSystemNames,
)
from monai_dicomseg.errors import (
    GeometryError,
    InputError,
    UnsupportedError,
)

if TYPE_CHECKING:  # pragma: no cover
    from monai_dicomseg.geometry.volume import Volume, VolumeGeometry

from monai_dicomseg.seg.selection import check_segment_request

__all__ = ["VolumeReaderMixin"]


class VolumeReaderMixin:
    """``get_volume`` and the layout helpers the MONAI loader builds on."""

    def get_volume(
        self,
        *,
        slice_start: int | None = None,
        slice_end: int | None = None,
        row_start: int | None = None,
        row_end: int | None = None,
        column_start: int | None = None,
        column_end: int | None = None,
        as_indices: bool = False,
        dtype: "type | str | np.dtype | None" = None,
        segment_numbers: Sequence[int] | None = None,
        combine_segments: bool = False,
        relabel: bool = False,
        rescale_fractional: bool = True,
        skip_overlap_checks: bool = False,
        apply_palette_color_lut: bool = False,
        apply_icc_profile: bool | None = None,
        allow_missing_positions: bool = True,
        rtol: float | None = None,
        atol: float | None = None,
        perpendicular_tol: float | None = None,
    ) -> "Volume":
        """Segmentation as a :class:`~monai_dicomseg.geometry.volume.Volume`.

        Frames are placed by ImagePositionPatient on a regular grid along the
        slice normal (missing positions allowed); order in the file and
        omitted frames do not matter.

        Parameters
        ----------
        slice_start, slice_end
            First and one-past-last volume position, 1-based unless
            ``as_indices`` (negative values count from the end).
        row_start, row_end, column_start, column_end
            Spatial crop, with the same conventions (see
            :meth:`get_total_pixel_matrix`).

        Returns
        -------
        Volume
            Array ``(F, R, C, S)`` with channel ``SegmentNumber`` or
            ``(F, R, C)`` when combined; LPS affine. A tiled segmentation in
            the SLIDE coordinate system gives a single-slice volume of its
            total pixel matrix (``F = 1``) whose affine is built from
            TotalPixelMatrixOriginSequence, ImageOrientationSlide and
            PixelSpacing (as highdicom 0.28).

        Raises
        ------
        GeometryError
            If frames do not form a regularly spaced volume.
        UnsupportedError
            For segmentations with no frame of reference, or in the SLIDE
            coordinate system but not tiled.
        """
        from monai_dicomseg.geometry.volume import Volume

        if apply_palette_color_lut or apply_icc_profile:
            raise UnsupportedError("apply_palette_color_lut/apply_icc_profile are not supported")
        if self.is_tiled and self._coordinate_system == CoordinateSystemNames.SLIDE:
            return self._get_tiled_volume(
                slice_start=slice_start, slice_end=slice_end, row_start=row_start, row_end=row_end,
                column_start=column_start, column_end=column_end, as_indices=as_indices, dtype=dtype,
                segment_numbers=segment_numbers, combine_segments=combine_segments, relabel=relabel,
                rescale_fractional=rescale_fractional, skip_overlap_checks=skip_overlap_checks,
            )
        placement, n_out, origin, spacing = self._volume_frames(
            slice_start=slice_start, slice_end=slice_end, as_indices=as_indices, rtol=rtol, atol=atol,
            perpendicular_tol=perpendicular_tol, allow_missing_positions=allow_missing_positions,
        )
        index = self.get_frame_index()
        if segment_numbers is None:
            segment_numbers = list(self.segment_numbers)
        array = self._assemble(
            placement, n_out, segment_numbers, combine_segments=combine_segments, relabel=relabel,
            rescale_fractional=rescale_fractional, skip_overlap_checks=skip_overlap_checks, dtype=dtype,
        )
        if (row_start, row_end, column_start, column_end) != (None, None, None, None):
            from monai_dicomseg.codec.tiled_region import standardize_region

            box = standardize_region(
                row_start, row_end, column_start, column_end,
                rows=array.shape[1], columns=array.shape[2], as_indices=as_indices,
            )
            array = array[:, box.row_start:box.row_end, box.column_start:box.column_end]
            origin = (
                origin + index.image_orientation[3:] * index.pixel_spacing[0] * box.row_start
                + index.image_orientation[:3] * index.pixel_spacing[1] * box.column_start
            )
        channels = None if combine_segments else {"SegmentNumber": [int(s) for s in segment_numbers]}
        return Volume.from_attributes(
            array=array, image_position=origin, image_orientation=index.image_orientation,
            pixel_spacing=index.pixel_spacing, spacing_between_slices=spacing,
            coordinate_system=CoordinateSystemNames.PATIENT,
            frame_of_reference_uid=self.get("FrameOfReferenceUID"),
            channels=channels,
        )

    def _volume_frames(
        self,
        *,
        slice_start: int | None = None,
        slice_end: int | None = None,
        as_indices: bool = False,
        rtol: float | None = None,
        atol: float | None = None,
        perpendicular_tol: float | None = None,
        allow_missing_positions: bool = True,
        allow_shear: bool = False,
    ) -> tuple[FramePlacement, int, np.ndarray, float]:
        """Frames of a PATIENT volume: ``(placement, N, LPS origin of the first slice, slice spacing)``.

        The geometry part of :meth:`get_volume` (no pixel is decoded).
        """
        index = self.get_frame_index()
        if self._coordinate_system != CoordinateSystemNames.PATIENT:
            raise UnsupportedError(
                "get_volume supports segmentations in the PATIENT coordinate system only; "
                f"this one uses {getattr(self._coordinate_system, 'value', None)}"
            )
        if index.image_positions is None:
            raise GeometryError("PlanePositionSequence/ImagePositionPatient is missing for some frames")
        if index.image_orientation is None or index.pixel_spacing is None:
            raise GeometryError(
                "ImageOrientationPatient and PixelSpacing must be shared by all frames to form a volume"
            )
        from monai_dicomseg.seg.stacking import volume_positions

        spacing, positions = volume_positions(
            index.image_positions, index.image_orientation, spacing_hint=index.spacing_between_slices,
            rtol=rtol, atol=atol, perpendicular_tol=perpendicular_tol,
            allow_missing_positions=allow_missing_positions, allow_shear=allow_shear,
        )
        n_positions = int(positions.max()) + 1
        start, end = _slice_range(slice_start, slice_end, as_indices, n_positions)
        origin = index.image_positions[int(np.flatnonzero(positions == 0)[0])]
        keep = (positions >= start) & (positions < end)
        frames = np.flatnonzero(keep)
        placement = FramePlacement(frames, positions[frames] - start, index.segment_numbers[frames])
        normal = np.cross(index.image_orientation[3:], index.image_orientation[:3])
        normal /= np.linalg.norm(normal)
        return placement, end - start, origin + normal * spacing * start, spacing

    def volume_layout(self) -> "tuple[VolumeGeometry, FramePlacement] | None":
        """Geometry of :meth:`get_volume` (default arguments) and where each frame goes, decoding nothing.

        Public seam for the MONAI layer (``io/segload.py``), which allocates
        its final array from this layout and fills it with
        :meth:`assemble_volume_into` (no intermediate volume).

        Returns
        -------
        tuple or None
            ``(VolumeGeometry, FramePlacement)`` (LPS affine, spatial shape
            ``(N, R, C)``), or None for a tiled segmentation in the SLIDE
            coordinate system (use :meth:`get_volume`).
        """
        from monai_dicomseg.geometry.volume import VolumeGeometry

        if self.is_tiled and self._coordinate_system == CoordinateSystemNames.SLIDE:
            return None
        placement, n_out, origin, spacing = self._volume_frames(allow_shear=True)
        index = self.get_frame_index()
        layout = self._get_pixel_layout()
        sheared = _sheared_geometry(index, placement, origin, spacing, n_out, layout,
                                    self.get("FrameOfReferenceUID"))
        if sheared is not None:  # frames of a gantry/detector-tilted source: the sheared grid, exactly
            return sheared, placement
        geometry = VolumeGeometry.from_attributes(
            image_position=origin, image_orientation=index.image_orientation, rows=layout.rows,
            columns=layout.columns, pixel_spacing=index.pixel_spacing,
            spacing_between_slices=spacing, number_of_frames=n_out,
            coordinate_system=CoordinateSystemNames.PATIENT,
            frame_of_reference_uid=self.get("FrameOfReferenceUID"),
        )
        return geometry, placement

    def assemble_volume_into(
        self,
        out: np.ndarray,
        placement: FramePlacement,
        segment_numbers: Sequence[int],
        *,
        combine_segments: bool,
        targets: "Sequence[int] | None" = None,
        skip_overlap_checks: bool = False,
        rescale_fractional: bool = False,
    ) -> np.ndarray:
        """Write the frames of :meth:`volume_layout` into ``out``.

        ``out`` is a zero-filled ``(N, R, C, channels)`` (stacked) or
        ``(N, R, C)`` (combined) array of any strides and dtype, typically a
        view of the caller's final array; ``targets`` gives each requested
        segment's output channel (stacked) or value (combined). Only the
        selected frames are decoded, once. FRACTIONAL frames (stacked) are
        written chunk by chunk, divided by MaximumFractionalValue when
        ``rescale_fractional`` (``out`` then float32 to avoid a conversion).
        """
        requested = check_segment_request(segment_numbers, list(self.segment_numbers))
        maximum = self.get("MaximumFractionalValue")
        return assemble_frames(
            self,  # type: ignore[arg-type]  # mixin: self is the Segmentation (a pydicom Dataset) it is mixed into
            self._get_pixel_layout(), placement, out.shape[0],
            segmentation_type=self.segmentation_type, segment_numbers=requested,
            combine_segments=combine_segments, relabel=False, rescale_fractional=rescale_fractional,
            skip_overlap_checks=skip_overlap_checks, dtype=None,
            maximum_fractional_value=None if maximum is None else int(maximum),
            all_segment_numbers=list(self.segment_numbers), out=out, targets=targets,
        )


def _slice_range(start: int | None, end: int | None, as_indices: bool, n: int) -> tuple[int, int]:
    """Standardise 1-based (or 0-based with ``as_indices``) slice bounds to ``[start, end)``."""
    if not as_indices:
        if start == 0:
            raise InputError("slice_start cannot be 0 (numbers are 1-based); did you mean as_indices=True?")
        if start is not None and start > 0:
            start -= 1
        if end is not None and end > 0:
            end -= 1
    start = 0 if start is None else (n + start if start < 0 else start)
    if end is None:
        end = n
    elif end > n or end < -n:
        raise InputError(f"slice_end {end} is not valid for a volume with {n} positions")
    elif end < 0:
        end = n + end
    if end - start < 1:
        raise InputError(f"slice_start/slice_end select an empty volume ([{start}, {end}) of {n})")
    return start, end


def _sheared_geometry(index: Any, placement: FramePlacement, origin: np.ndarray, spacing: float, n_out: int,
                      layout: Any, frame_of_reference_uid: "str | None") -> "Any | None":
    """``ShearedVolumeGeometry`` of frames stacked off the normal (gantry/detector tilt), else None.

    The frames' positions are fitted as ``origin + slice * step``
    (:func:`~monai_dicomseg.geometry.slice_grid.fit_stack_step`, which refuses
    frames off that line); None when the step is along the normal.
    """
    from monai_dicomseg.geometry.affine import affine_from_image_plane, slice_normal
    from monai_dicomseg.geometry.sheared import ShearedVolumeGeometry
    from monai_dicomseg.geometry.slice_grid import fit_stack_step

    step = fit_stack_step(index.image_positions[placement.frame], placement.position, index.image_orientation,
                          spacing)
    if np.array_equal(step, slice_normal(index.image_orientation) * float(spacing)):
        return None
    affine = affine_from_image_plane(origin, index.image_orientation, index.pixel_spacing, spacing)
    affine[:3, 0] = step
    return ShearedVolumeGeometry(affine, (n_out, layout.rows, layout.columns), CoordinateSystemNames.PATIENT,
                                 frame_of_reference_uid)
