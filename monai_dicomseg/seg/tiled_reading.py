"""Tiled (slide microscopy) reading: total pixel matrices from TILED_FULL / TILED_SPARSE SEGs.

Mixed into :class:`~monai_dicomseg.seg.segmentation.Segmentation` through
:class:`~monai_dicomseg.seg.reader.SegmentationReaderMixin`; uses its frame
index and pixel layout. PS3.3 C.7.6.17.3 (TILED_FULL), C.8.12.4 (total pixel matrix).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any
from collections.abc import Sequence

import numpy as np

from monai_dicomseg.enums import (
    CoordinateSystemNames,
)
from monai_dicomseg.errors import (
    DecodeError,
    GeometryError,
    UnsupportedError,
)

if TYPE_CHECKING:  # pragma: no cover
    from monai_dicomseg.codec.tiled_region import TilePlacement
    from monai_dicomseg.geometry.volume import Volume
from monai_dicomseg.seg.selection import check_segment_request
from monai_dicomseg.seg.volume_reading import _slice_range

__all__ = ["TiledReaderMixin"]


class TiledReaderMixin:
    """``is_tiled``, ``get_total_pixel_matrix`` and the one-slice volume of a tiled SEG."""

    @property
    def is_tiled(self) -> bool:
        """Whether the image is tiled (has TotalPixelMatrixRows/Columns, PS3.3 C.8.12.4)."""
        return "TotalPixelMatrixRows" in self and "TotalPixelMatrixColumns" in self  # type: ignore[operator]  # mixin: self is the Segmentation (a pydicom Dataset) it is mixed into

    def _total_matrix_size(self) -> tuple[int, int]:
        """(TotalPixelMatrixRows, TotalPixelMatrixColumns), checked (UL, >= 1, PS3.3 C.8.12.4)."""
        sizes = []
        for keyword in ("TotalPixelMatrixRows", "TotalPixelMatrixColumns"):
            try:
                value = int(self.get(keyword))
            except Exception:  # absent, unparsable, odd byte length (pydicom error types vary)
                raise DecodeError(f"{keyword} must be an integer (UL, PS3.3 C.8.12.4); it cannot be read") from None
            if not 1 <= value < 2**32:
                raise DecodeError(f"{keyword} must be in [1, 2**32) (UL, PS3.3 C.8.12.4); got {value}")
            sizes.append(value)
        return sizes[0], sizes[1]

    def _tile_placement(self) -> "TilePlacement":
        """Every stored frame with the 0-based total-pixel-matrix offset of its top-left pixel."""
        from monai_dicomseg.codec.tiled_region import TilePlacement

        if not self.is_tiled:
            raise UnsupportedError(
                "the segmentation is not a tiled image: TotalPixelMatrixRows/TotalPixelMatrixColumns "
                "are missing (PS3.3 C.8.12.4), so it has no total pixel matrix"
            )
        index = self.get_frame_index()
        if index.tile_positions is None:
            raise DecodeError(
                "cannot place the frames in the total pixel matrix: some frames lack "
                "PlanePositionSlideSequence/RowPositionInTotalImagePixelMatrix and "
                "ColumnPositionInTotalImagePixelMatrix (PS3.3 C.8.12.6.1) and "
                "DimensionOrganizationType is not TILED_FULL"
            )
        tiles = index.tile_positions
        return TilePlacement(
            np.arange(index.number_of_frames, dtype=np.int64),
            tiles[:, 0] - 1,
            tiles[:, 1] - 1,
            index.segment_numbers,
        )

    def get_total_pixel_matrix(
        self,
        row_start: int | None = None,
        row_end: int | None = None,
        column_start: int | None = None,
        column_end: int | None = None,
        segment_numbers: Sequence[int] | None = None,
        combine_segments: bool = False,
        relabel: bool = False,
        rescale_fractional: bool = True,
        skip_overlap_checks: bool = False,
        dtype: "type | str | np.dtype | None" = None,
        apply_palette_color_lut: bool = False,
        apply_icc_profile: bool | None = None,
        as_indices: bool = False,
    ) -> np.ndarray:
        """A region of the total pixel matrix of a tiled segmentation.

        Only the frames (tiles) that overlap the region are decoded; tiles
        may extend past the right/bottom edge of the matrix (they are
        cropped) and positions without a stored tile are empty. Works for
        TILED_SPARSE (per-frame Plane Position (Slide), PS3.3 C.8.12.6.1) and
        TILED_FULL (positions implied by frame order, PS3.3 C.7.6.17.3).

        Parameters
        ----------
        row_start, row_end, column_start, column_end
            1-based row/column numbers of the first and one-past-last
            row/column (0-based with ``as_indices``); negative values count
            from the end, ``-1`` being the last row/column. ``None``: the
            edge of the matrix.
        segment_numbers
            Segments to include, in output channel order (default: all).
        combine_segments, relabel, rescale_fractional, skip_overlap_checks, dtype
            As for :meth:`get_pixels_by_source_instance`.
        apply_palette_color_lut, apply_icc_profile
            Accepted for compatibility with highdicom; applying a palette
            colour LUT is not supported (``UnsupportedError``).
        as_indices
            Interpret the region bounds as 0-based indices.

        Returns
        -------
        numpy.ndarray
            ``(H, W, S)`` stacked segments in ``segment_numbers`` order, or
            ``(H, W)`` with ``combine_segments``. Dtype as highdicom:
            ``float32`` for rescaled FRACTIONAL, else the smallest unsigned
            integer type.

        Raises
        ------
        UnsupportedError
            (``NotImplementedError``, a ``RuntimeError``) if the segmentation
            is not tiled, or ``apply_palette_color_lut`` is requested.
        InputError
            (``ValueError``) for a region out of range or empty, or invalid
            segment numbers.
        FrameMismatchError
            (``RuntimeError``) if two frames share a tile position and
            segment (e.g. several focal planes).
        OverlapError
            Combining overlapping segments without ``skip_overlap_checks``.
        """
        from monai_dicomseg.codec.tiled_region import (
            assemble_region,
            standardize_region,
            tiles_in_region,
        )

        if apply_palette_color_lut or apply_icc_profile:
            raise UnsupportedError(
                "apply_palette_color_lut/apply_icc_profile are not supported; read the stored labels "
                "and map them with the segment colours (RecommendedDisplayCIELabValue) instead"
            )
        placement = self._tile_placement()
        region = standardize_region(
            row_start, row_end, column_start, column_end,
            rows=self._total_matrix_size()[0],
            columns=self._total_matrix_size()[1],
            as_indices=as_indices,
        )
        if segment_numbers is None:
            segment_numbers = list(self.segment_numbers)
        requested = check_segment_request(segment_numbers, list(self.segment_numbers))
        layout = self._get_pixel_layout()
        top_left = np.stack([placement.row, placement.column], axis=1) + 1
        placement = placement.select(tiles_in_region(top_left, layout.rows, layout.columns, region))
        return assemble_region(
            self,  # type: ignore[arg-type]  # mixin: self is the Segmentation (a pydicom Dataset) it is mixed into
            layout,
            placement,
            region,
            segmentation_type=self.segmentation_type,
            segment_numbers=requested,
            combine_segments=combine_segments,
            relabel=relabel,
            rescale_fractional=rescale_fractional,
            skip_overlap_checks=skip_overlap_checks,
            dtype=dtype,
            maximum_fractional_value=self.get("MaximumFractionalValue"),
            all_segment_numbers=list(self.segment_numbers),
        )

    def _slide_plane(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """``(origin, ImageOrientationSlide, PixelSpacing, slice spacing)`` of the total pixel matrix.

        Origin from TotalPixelMatrixOriginSequence (Z 0 when absent), slice
        spacing SpacingBetweenSlices or 1.0 (as highdicom 0.28); PS3.3
        C.8.12.2.1, C.8.12.4. Shared by ``get_volume`` and ``get_volume_geometry``.
        """
        index = self.get_frame_index()
        origin_items = self.get("TotalPixelMatrixOriginSequence")
        orientation = self.get("ImageOrientationSlide")
        if not origin_items or orientation is None or index.pixel_spacing is None:
            raise GeometryError(
                "a tiled segmentation needs TotalPixelMatrixOriginSequence, ImageOrientationSlide and a "
                "shared PixelSpacing to form a volume (PS3.3 C.8.12.4, C.8.12.6.1)"
            )
        origin = origin_items[0]
        try:
            position = np.array([
                float(origin.XOffsetInSlideCoordinateSystem),
                float(origin.YOffsetInSlideCoordinateSystem),
                float(origin.get("ZOffsetInSlideCoordinateSystem", 0.0) or 0.0),
            ])
            cosines = np.asarray(orientation, dtype=np.float64).reshape(6)
        except (AttributeError, TypeError, ValueError, OverflowError) as exc:
            raise GeometryError(
                "TotalPixelMatrixOriginSequence needs numeric X/YOffsetInSlideCoordinateSystem and "
                f"ImageOrientationSlide six numbers (PS3.3 C.8.12.2.1); {exc}"
            ) from None
        return position, cosines, index.pixel_spacing, index.spacing_between_slices or 1.0

    def _get_tiled_volume(
        self,
        *,
        slice_start: int | None,
        slice_end: int | None,
        row_start: int | None,
        row_end: int | None,
        column_start: int | None,
        column_end: int | None,
        as_indices: bool,
        **options: Any,
    ) -> "Volume":
        """Single-slice Volume of (a region of) the total pixel matrix (SLIDE coordinates)."""
        from monai_dicomseg.codec.tiled_region import standardize_region
        from monai_dicomseg.geometry.volume import Volume

        _slice_range(slice_start, slice_end, as_indices, 1)
        box = standardize_region(
            row_start, row_end, column_start, column_end,
            rows=self._total_matrix_size()[0],
            columns=self._total_matrix_size()[1],
            as_indices=as_indices,
        )
        position, cosines, spacing, slice_spacing = self._slide_plane()
        position = position + cosines[3:] * spacing[0] * box.row_start + cosines[:3] * spacing[1] * box.column_start
        array = self.get_total_pixel_matrix(
            box.row_start, box.row_end, box.column_start, box.column_end, as_indices=True, **options
        )[None]
        segment_numbers = options.get("segment_numbers")
        if segment_numbers is None:
            segment_numbers = list(self.segment_numbers)
        channels = None if options.get("combine_segments") else {
            "SegmentNumber": [int(s) for s in segment_numbers]
        }
        return Volume.from_attributes(
            array=array, image_position=position, image_orientation=cosines, pixel_spacing=spacing,
            spacing_between_slices=slice_spacing,
            coordinate_system=CoordinateSystemNames.SLIDE,
            frame_of_reference_uid=self.get("FrameOfReferenceUID"),
            channels=channels,
        )
