"""highdicom's remaining read accessors of a Segmentation, implemented on our frame index.

Mixed into :class:`~monai_dicomseg.seg.segmentation.Segmentation` (next to
:class:`~monai_dicomseg.seg.reader.SegmentationReaderMixin`):

* :meth:`~SegmentAccessorsMixin.iter_segments`: the stored frames of each segment,
  their per-frame functional group items and the segment's description;
* :meth:`~SegmentAccessorsMixin.get_tracking_ids`: unique (Tracking ID, Tracking UID) pairs;
* :attr:`~SegmentAccessorsMixin.segmented_property_categories` /
  :attr:`~SegmentAccessorsMixin.segmented_property_types`: unique codes of the segments;
* :meth:`~SegmentAccessorsMixin.are_dimension_indices_unique`: whether index values
  address frames one-to-one (what ``get_pixels_by_dimension_index_values`` needs);
* :meth:`~SegmentAccessorsMixin.get_volume_geometry`: the volume grid without decoding pixels.

Signatures, return types and semantics follow highdicom 0.28
(``highdicom.seg.Segmentation``); where highdicom would fail or is silent the
rule used here is stated in the method's docstring. Like every accessor of
this package, they describe the non-background segments only
(:attr:`~monai_dicomseg.seg.reader.SegmentationReaderMixin.segment_numbers`).

DICOM references: Segment Description (PS3.3 C.8.20.2), Multi-frame Dimension
(C.7.6.17), Plane Position / Orientation (C.7.6.16.2.3-4), total pixel matrix
(C.8.12.4).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset

from monai_dicomseg.codec.decode import decode_frames
from monai_dicomseg.enums import (
    CoordinateSystemNames,
    SegmentAlgorithmTypeValues,
    SegmentationTypeValues,
    to_enum,
)
from monai_dicomseg.errors import GeometryError, InputError, InputTypeError, UnsupportedError
from monai_dicomseg.sr.coding import as_coded_concept
from monai_dicomseg.uid import UID

if TYPE_CHECKING:  # pragma: no cover
    from monai_dicomseg.codec.frame_index import FrameIndex
    from monai_dicomseg.geometry.volume import VolumeGeometry
    from monai_dicomseg.seg.content import SegmentDescription
    from monai_dicomseg.sr.coding import CodedConcept

__all__ = ["SegmentAccessorsMixin", "dimension_pointer_keywords"]

SegmentFrames = tuple[np.ndarray, tuple[Dataset, ...], "SegmentDescription"]
"""One item of :meth:`SegmentAccessorsMixin.iter_segments`."""


def dimension_pointer_keywords(pointers: Any, available: Sequence[str]) -> list[str]:
    """Keywords of the requested Dimension Index Pointers, checked against those of the image.

    Parameters
    ----------
    pointers
        Tags (``int`` / ``pydicom.tag.BaseTag``) or keywords of attributes
        used as dimension indices (PS3.3 C.7.6.17.1).
    available
        Keywords of the image's Dimension Index Pointers, in Dimension Index
        Sequence order.

    Raises
    ------
    InputTypeError
        If ``pointers`` is a single string or holds something other than
        tags or keywords.
    InputError
        If it is empty or names an attribute that is not a dimension index of
        the image (highdicom raises ``KeyError`` there).
    """
    if isinstance(pointers, (str, bytes)) or not isinstance(pointers, Sequence):
        raise InputTypeError(
            "dimension_index_pointers must be a sequence of tags or keywords; "
            f"got {type(pointers).__name__} {pointers!r}"
        )
    if len(pointers) == 0:
        raise InputError("dimension_index_pointers may not be empty; expected at least one tag or keyword")
    keywords = []
    for pointer in pointers:
        if isinstance(pointer, str):
            keyword = pointer
        elif isinstance(pointer, (int, np.integer)) and not isinstance(pointer, bool):
            keyword = keyword_for_tag(int(pointer)) or f"({int(pointer) >> 16:04X},{int(pointer) & 0xFFFF:04X})"
        else:
            raise InputTypeError(
                f"each dimension index pointer must be a tag (int) or a keyword (str); got {pointer!r}"
            )
        if keyword not in available:
            raise InputError(
                f"{keyword} is not used as a dimension index in this image (DimensionIndexSequence, "
                f"PS3.3 C.7.6.17); expected one of {list(available)}"
            )
        keywords.append(keyword)
    return keywords


def _optional_code(code: Any, argument: str) -> "CodedConcept | None":
    """``code`` as a CodedConcept (None stays None); anything else is an InputTypeError naming ``argument``."""
    return None if code is None else as_coded_concept(code, argument)


def _has_duplicate_positions(index: "FrameIndex") -> bool:
    """Whether two frames share an ImagePositionPatient (e.g. one frame per segment at one plane)."""
    positions = index.image_positions
    return positions is not None and np.unique(positions, axis=0).shape[0] < positions.shape[0]


class SegmentAccessorsMixin:
    """``iter_segments``, tracking identifiers, segment codes, index uniqueness and the volume geometry."""

    # -- segments -----------------------------------------------------------

    def iter_segments(self) -> Iterator[SegmentFrames]:
        """Iterate over the segments stored in the frames of this image.

        Returns
        -------
        Iterator[tuple[numpy.ndarray, tuple[pydicom.Dataset, ...], SegmentDescription]]
            For each segment, in increasing segment number: its stored frames
            ``(n, R, C)`` (``uint8``: 0/1 for BINARY, the stored values
            0..MaximumFractionalValue for FRACTIONAL), the items of
            PerFrameFunctionalGroupsSequence describing those frames (in stored
            order) and the SegmentSequence item describing the segment. Only
            segments referenced by at least one frame are visited (as
            highdicom). Frames are decoded one segment at a time.

            LABELMAP (where every frame holds every segment, so highdicom has
            no answer): for each non-background segment, the mask
            ``frame == segment_number`` (``uint8`` 0/1) of *every* stored
            frame, with every per-frame item.

        Raises
        ------
        UnsupportedError
            For a TILED_FULL image: its frames have no per-frame functional
            group items (PS3.3 C.7.6.17.3); use ``get_total_pixel_matrix``.
        SegmentNumberError
            If a frame references a segment SegmentSequence does not describe.
        """
        index = self.get_frame_index()
        if index.is_tiled_full:
            raise UnsupportedError(
                "iter_segments needs PerFrameFunctionalGroupsSequence, which a TILED_FULL image "
                "(DimensionOrganizationType, PS3.3 C.7.6.17.3) does not have; use get_total_pixel_matrix"
            )
        if self.segmentation_type == SegmentationTypeValues.LABELMAP:
            return self._iter_labelmap_segments()
        numbers = [int(n) for n in np.unique(index.segment_numbers)]
        descriptions = [self.get_segment_description(n) for n in numbers]
        return self._iter_stored_segments(index, numbers, descriptions)

    def _iter_stored_segments(self, index: "FrameIndex", numbers: list[int],
                              descriptions: list["SegmentDescription"]) -> Iterator[SegmentFrames]:
        items = self.PerFrameFunctionalGroupsSequence
        layout = self._get_pixel_layout()
        for number, description in zip(numbers, descriptions):
            frames = np.flatnonzero(index.segment_numbers == number)
            yield (decode_frames(self, frames, layout),  # type: ignore[arg-type]  # mixin: self is the Segmentation (a pydicom Dataset) it is mixed into
                   tuple(items[int(f)] for f in frames), description)

    def _iter_labelmap_segments(self) -> Iterator[SegmentFrames]:
        layout = self._get_pixel_layout()
        items = tuple(self.PerFrameFunctionalGroupsSequence)
        descriptions = [self.get_segment_description(n) for n in self.segment_numbers]
        values = decode_frames(self, np.arange(layout.number_of_frames), layout)  # type: ignore[arg-type]  # mixin: self is the Segmentation (a pydicom Dataset) it is mixed into
        for description in descriptions:
            yield (values == description.segment_number).astype(np.uint8), items, description

    def _background_free_descriptions(self) -> list["SegmentDescription"]:
        """SegmentSequence items of the non-background segments, in SegmentSequence order."""
        return [self.get_segment_description(n) for n in self.segment_numbers]

    # -- segment metadata -----------------------------------------------------

    def get_tracking_ids(
        self,
        segmented_property_category: Any = None,
        segmented_property_type: Any = None,
        algorithm_type: Any = None,
    ) -> list[tuple[str, UID]]:
        """Unique (Tracking ID, Tracking UID) pairs of the segments matching every given filter.

        Parameters
        ----------
        segmented_property_category, segmented_property_type
            ``pydicom.sr.coding.Code`` or ``CodedConcept`` the segment's
            SegmentedPropertyCategory/TypeCodeSequence must equal.
        algorithm_type
            ``SegmentAlgorithmTypeValues`` or its string (``"AUTOMATIC"``,
            ``"SEMIAUTOMATIC"``, ``"MANUAL"``).

        Returns
        -------
        list[tuple[str, UID]]
            TrackingID (0062,0020) and TrackingUID (0062,0021) of each matching
            segment that has both (PS3.3 C.8.20.2), without duplicates, in
            segment order (highdicom's order is arbitrary).

        Raises
        ------
        InputError
            If ``algorithm_type`` is not one of the enumerated values.
        InputTypeError
            If a code filter is not a ``Code`` / ``CodedConcept``.
        """
        matching = self.get_segment_numbers(
            segmented_property_category=_optional_code(segmented_property_category, "segmented_property_category"),
            segmented_property_type=_optional_code(segmented_property_type, "segmented_property_type"),
            algorithm_type=None if algorithm_type is None else to_enum(
                SegmentAlgorithmTypeValues, algorithm_type, "algorithm_type"),
        )
        wanted = set(matching) & set(self.segment_numbers)
        found: dict[tuple[str, UID], None] = {}
        for description in self._background_free_descriptions():
            if description.segment_number not in wanted:
                continue
            if description.tracking_id is not None and description.tracking_uid is not None:
                found[(str(description.tracking_id), UID(str(description.tracking_uid)))] = None
        return list(found)

    @property
    def segmented_property_categories(self) -> list["CodedConcept"]:
        """Unique SegmentedPropertyCategoryCodeSequence codes of the non-background segments (segment order)."""
        found: list["CodedConcept"] = []
        for description in self._background_free_descriptions():
            if description.segmented_property_category not in found:
                found.append(description.segmented_property_category)
        return found

    @property
    def segmented_property_types(self) -> list["CodedConcept"]:
        """Unique SegmentedPropertyTypeCodeSequence codes of the non-background segments (segment order)."""
        found: list["CodedConcept"] = []
        for description in self._background_free_descriptions():
            if description.segmented_property_type not in found:
                found.append(description.segmented_property_type)
        return found

    # -- frames ---------------------------------------------------------------

    def are_dimension_indices_unique(self, dimension_index_pointers: Sequence["int | str"]) -> bool:
        """Whether these dimension indices identify one frame per segment.

        Every combination of Dimension Index Values (PS3.3 C.7.6.17) of the
        given pointers must occur in at most one frame per segment (BINARY,
        FRACTIONAL: the frame's ReferencedSegmentNumber is added to the
        combination, as highdicom does) or at most one frame (LABELMAP). This
        is what :meth:`get_pixels_by_dimension_index_values` needs.

        Parameters
        ----------
        dimension_index_pointers
            Tags or keywords (highdicom takes tags only) of dimension indices
            of this image.

        Returns
        -------
        bool
            True if the combinations are unique.

        Raises
        ------
        InputError
            If the sequence is empty or names an attribute that is not a
            dimension index of the image (highdicom: ``ValueError`` /
            ``KeyError``).
        InputTypeError
            If it is a single string or holds something else than tags/keywords.
        """
        index = self.get_frame_index()
        available = list(index.dimension_index_pointers)
        keywords = dimension_pointer_keywords(dimension_index_pointers, available)
        keys = index.dimension_index_values[:, [available.index(k) for k in keywords]]
        if self.segmentation_type != SegmentationTypeValues.LABELMAP:
            keys = np.column_stack([keys, index.segment_numbers])
        return int(np.unique(keys, axis=0).shape[0]) == index.number_of_frames

    # -- geometry ---------------------------------------------------------------

    def get_volume_geometry(
        self,
        *,
        rtol: float | None = None,
        atol: float | None = None,
        perpendicular_tol: float | None = None,
        allow_missing_positions: bool = True,
        allow_duplicate_positions: bool = True,
    ) -> "VolumeGeometry | None":
        """Geometry of :meth:`get_volume`'s grid, or None if the frames do not form a volume.

        No pixel is decoded. PATIENT coordinate system: the frames stacked
        along their shared normal on a regular grid (tolerances as in
        :meth:`get_volume`). Tiled SLIDE image: its total pixel matrix as one
        slice (TotalPixelMatrixOriginSequence, ImageOrientationSlide,
        PixelSpacing; SpacingBetweenSlices or 1.0).

        Parameters
        ----------
        rtol, atol
            Relative (default 0.01) or absolute (mm) tolerance on the
            regularity of the slice spacing; not both.
        perpendicular_tol
            Allowed ``1 - cos`` between the stacking direction and the
            normal (default 1e-3).
        allow_missing_positions
            Allow grid positions without a frame (default True: segmentations
            usually omit empty frames).
        allow_duplicate_positions
            Allow several frames at one position (one per segment in a
            BINARY/FRACTIONAL SEG); with False such an image gives None.

        Returns
        -------
        VolumeGeometry or None
            LPS (PATIENT) or slide affine and spatial shape ``(F, R, C)``;
            None without a frame of reference, for a SLIDE image that is not
            tiled, or when the frames are not a regularly spaced stack (as
            highdicom). Corrupt headers still raise ``DecodeError``.

        Raises
        ------
        InputTypeError
            If both ``rtol`` and ``atol`` are given (a ``TypeError`` as highdicom).
        """
        if rtol is not None and atol is not None:
            raise InputTypeError(f"rtol and atol may not be given together; got rtol={rtol!r}, atol={atol!r}")
        try:
            if self.is_tiled and self._coordinate_system == CoordinateSystemNames.SLIDE:
                return self._tiled_volume_geometry()
            geometry = self._stacked_volume_geometry(rtol, atol, perpendicular_tol, allow_missing_positions)
        except (GeometryError, UnsupportedError):
            return None
        if not allow_duplicate_positions and _has_duplicate_positions(self.get_frame_index()):
            return None
        return geometry

    def _stacked_volume_geometry(self, rtol: float | None, atol: float | None, perpendicular_tol: float | None,
                                 allow_missing_positions: bool) -> "VolumeGeometry":
        from monai_dicomseg.geometry.volume import VolumeGeometry

        _, n_positions, origin, spacing = self._volume_frames(
            rtol=rtol, atol=atol, perpendicular_tol=perpendicular_tol,
            allow_missing_positions=allow_missing_positions,
        )
        index = self.get_frame_index()
        layout = self._get_pixel_layout()
        return VolumeGeometry.from_attributes(
            image_position=origin, image_orientation=index.image_orientation, rows=layout.rows,
            columns=layout.columns, pixel_spacing=index.pixel_spacing, spacing_between_slices=spacing,
            number_of_frames=n_positions, coordinate_system=CoordinateSystemNames.PATIENT,
            frame_of_reference_uid=self.get("FrameOfReferenceUID"),
        )

    def _tiled_volume_geometry(self) -> "VolumeGeometry":
        from monai_dicomseg.geometry.volume import VolumeGeometry

        position, cosines, pixel_spacing, slice_spacing = self._slide_plane()
        rows, columns = self._total_matrix_size()
        return VolumeGeometry.from_attributes(
            image_position=position, image_orientation=cosines, rows=rows, columns=columns,
            pixel_spacing=pixel_spacing, spacing_between_slices=slice_spacing, number_of_frames=1,
            coordinate_system=CoordinateSystemNames.SLIDE,
            frame_of_reference_uid=self.get("FrameOfReferenceUID"),
        )

