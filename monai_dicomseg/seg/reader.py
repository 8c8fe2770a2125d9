"""Reading Segmentation images: :func:`segread` and :class:`SegmentationReaderMixin`.

The mixin gives :class:`~monai_dicomseg.seg.segmentation.Segmentation` the
read-side API of highdicom 0.28 (segment metadata, source references and
mask reconstruction by source instance, source frame, dimension index values
or as a :class:`~monai_dicomseg.geometry.volume.Volume`). A columnar frame
index (:mod:`monai_dicomseg.codec.frame_index`) is built on first use and
cached; only the frames needed by a request are decoded.

DICOM references: Segmentation IOD (PS3.3 A.51, C.8.20), Multi-frame
Functional Groups (C.7.6.16), Multi-frame Dimension (C.7.6.17).
"""
from __future__ import annotations

import io
import os
from copy import deepcopy
from typing import TYPE_CHECKING, Any, BinaryIO, Sequence

import numpy as np
import pydicom
from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from monai_dicomseg.codec.assemble import Placement, assemble_frames
from monai_dicomseg.codec.decode import PixelLayout, pixel_layout
from monai_dicomseg.codec.element_scan import locate_top_level_element, read_file_meta
from monai_dicomseg.codec.frame_index import FrameIndex, build_frame_index
from monai_dicomseg.enums import (
    CoordinateSystemNames,
    SegmentAlgorithmTypeValues,
    SegmentationFractionalTypeValues,
    SegmentationTypeValues,
)
from monai_dicomseg.errors import (
    DecodeError,
    DicomSegError,
    FrameMismatchError,
    GeometryError,
    InputError,
    InputTypeError,
    UnsupportedError,
)
from monai_dicomseg.uid import UID

if TYPE_CHECKING:  # pragma: no cover
    from monai_dicomseg.codec.tiled_region import TilePlacement
    from monai_dicomseg.geometry.volume import Volume, VolumeGeometry
    from monai_dicomseg.seg.content import SegmentDescription
    from monai_dicomseg.seg.segmentation import Segmentation

__all__ = ["segread", "SegmentationReaderMixin", "SEGMENTATION_SOP_CLASS_UIDS"]

SEGMENTATION_SOP_CLASS_UIDS = (
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation Storage
    "1.2.840.10008.5.1.4.1.1.66.7",  # Label Map Segmentation Storage
)


class SegmentNumberError(InputError, IndexError):
    """A segment number that the segmentation does not define."""


class MissingSourceError(DicomSegError, KeyError):
    """A requested source instance is not referenced by the segmentation."""


# ---------------------------------------------------------------------------
# segread


def _read_bytes(fp: "str | os.PathLike[str] | BinaryIO") -> bytes:
    if isinstance(fp, (str, os.PathLike)):
        with open(fp, "rb") as handle:
            return handle.read()
    if hasattr(fp, "read"):
        return fp.read()
    raise InputTypeError(f"fp must be a path or a readable binary file object; got {type(fp).__name__}")


def _defer_per_frame_groups(buf: bytes) -> bytes:
    """Re-encode an undefined-length PerFrameFunctionalGroupsSequence with a defined length.

    pydicom parses undefined-length sequences eagerly (one Dataset per frame)
    but keeps defined-length ones as raw bytes until accessed; the frame
    index scans those bytes directly. Only the element header changes and
    the Sequence Delimitation Item is dropped (PS3.5 7.5.2).
    """
    meta = read_file_meta(buf)
    if meta is None:
        return buf
    start, syntax = meta
    if syntax == ImplicitVRLittleEndian:
        implicit = True
    elif syntax == ExplicitVRLittleEndian or (
        pydicom.uid.UID(syntax).is_transfer_syntax and pydicom.uid.UID(syntax).is_compressed
    ):
        implicit = False
    else:
        return buf
    found = locate_top_level_element(buf, start, "PerFrameFunctionalGroupsSequence", implicit=implicit)
    if found is None or not found[3]:
        return buf
    element_start, value_start, value_end, _ = found
    length = value_end - value_start
    tag = tag_for_keyword("PerFrameFunctionalGroupsSequence")
    group, element = tag >> 16, tag & 0xFFFF
    header = group.to_bytes(2, "little") + element.to_bytes(2, "little")
    if not implicit:
        header += b"SQ\x00\x00"
    header += length.to_bytes(4, "little")
    if len(header) != value_start - element_start:
        return buf
    return b"".join((buf[:element_start], header, buf[value_start:value_end], buf[value_end + 8 :]))


def _parse(source: Any) -> Dataset:
    try:
        return pydicom.dcmread(source, force=True)
    except Exception as exc:  # pydicom raises many types on corrupt input
        raise DecodeError(f"cannot parse the file as DICOM: {exc}") from exc


def _read_path(path: "str | os.PathLike[str]") -> Dataset:
    """Parse a file, letting pydicom read it directly unless the per-frame groups need a rewrite.

    The file is memory-mapped for the check, so a file that needs no rewrite
    (ours: defined-length sequences) is copied into memory only once.
    """
    import mmap

    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise DecodeError(f"cannot read {os.fspath(path)!r}: {exc}") from exc
    with handle:
        if os.fstat(handle.fileno()).st_size == 0:
            raise DecodeError(f"{os.fspath(path)!r} is empty: not a DICOM file")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            try:
                rewritten = _defer_per_frame_groups(mapped)
            except DecodeError:
                rewritten = mapped
            if rewritten is not mapped:
                dataset = _parse(io.BytesIO(rewritten))
                dataset.filename = os.fspath(path)
                return dataset
    return _parse(path)


def segread(fp: "str | os.PathLike[str] | BinaryIO") -> "Segmentation":
    """Read a Segmentation image from a file.

    Parameters
    ----------
    fp
        Path or readable binary file object of a DICOM Part 10 file.

    Returns
    -------
    monai_dicomseg.seg.Segmentation
        The segmentation; PerFrameFunctionalGroupsSequence stays undecoded
        until accessed.

    Raises
    ------
    DecodeError
        If the file is not a readable DICOM Segmentation.
    UnsupportedError
        For transfer syntaxes that cannot be read.
    """
    from monai_dicomseg.seg.segmentation import Segmentation

    if isinstance(fp, (str, os.PathLike)):
        dataset = _read_path(fp)
    else:
        buf = _read_bytes(fp)
        try:
            buf = _defer_per_frame_groups(buf)
        except DecodeError:
            pass  # let pydicom report (or tolerate) the problem below
        dataset = _parse(io.BytesIO(buf))
        dataset.filename = None  # do not keep the whole buffer alive through the data set
    return Segmentation.from_dataset(dataset, copy=False)


# ---------------------------------------------------------------------------
# helpers


def _join(keys: np.ndarray, queries: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """All (key row, query row) pairs with equal values (hashable scalars)."""
    positions: dict[Any, list[int]] = {}
    for q, value in enumerate(queries):
        positions.setdefault(value, []).append(q)
    rows: list[int] = []
    outs: list[int] = []
    for k, value in enumerate(keys.tolist()):
        for q in positions.get(value, ()):
            rows.append(k)
            outs.append(q)
    return np.asarray(rows, dtype=np.int64), np.asarray(outs, dtype=np.int64)


def _check_segment_request(segment_numbers: Sequence[int], available: Sequence[int]) -> list[int]:
    requested = [int(s) for s in segment_numbers]
    if len(requested) == 0:
        raise InputError("segment_numbers may not be empty; expected at least one segment number")
    invalid = sorted(set(requested) - set(available))
    if invalid:
        raise InputError(
            f"segment_numbers contains {invalid}, not defined in SegmentSequence; "
            f"expected values from {list(available)}"
        )
    if len(set(requested)) != len(requested):
        raise InputError(f"segment_numbers must not repeat a segment; got {requested}")
    return requested


class SegmentationReaderMixin:
    """Read-side API of a Segmentation (mixed into a ``pydicom.Dataset`` subclass)."""

    # -- construction -----------------------------------------------------

    @classmethod
    def from_dataset(cls, dataset: Dataset, copy: bool = True) -> "Segmentation":
        """Turn a ``pydicom.Dataset`` holding a SEG into an instance of ``cls``.

        Parameters
        ----------
        dataset
            A Segmentation (1.2.840.10008.5.1.4.1.1.66.4) or Label Map
            Segmentation (1.2.840.10008.5.1.4.1.1.66.7) data set.
        copy
            Deep-copy the data set first (else it is changed in place).

        Raises
        ------
        InputTypeError
            If ``dataset`` is not a ``pydicom.Dataset``.
        DecodeError
            Wrong SOP Class, missing SegmentSequence / functional groups,
            pixel attributes inconsistent with the Pixel Data.
        UnsupportedError
            Big-endian or otherwise unsupported transfer syntax.
        """
        from monai_dicomseg.seg.content import SegmentDescription

        if not isinstance(dataset, Dataset):
            raise InputTypeError(f"dataset must be a pydicom.Dataset; got {type(dataset).__name__}")
        sop_class = dataset.get("SOPClassUID")
        if sop_class not in SEGMENTATION_SOP_CLASS_UIDS:
            raise DecodeError(
                f"SOPClassUID must be Segmentation Storage ({SEGMENTATION_SOP_CLASS_UIDS[0]}) or Label "
                f"Map Segmentation Storage ({SEGMENTATION_SOP_CLASS_UIDS[1]}); got {sop_class!r}: "
                "dataset is not a Segmentation"
            )
        if getattr(dataset, "is_little_endian", True) is False:
            raise UnsupportedError("big-endian data sets are not supported; expected little endian")
        layout = pixel_layout(dataset)
        if "SegmentSequence" not in dataset or len(dataset.SegmentSequence) == 0:
            raise DecodeError(
                "SegmentSequence is missing or empty (Type 1, PS3.3 C.8.20.2); expected at least 1 item"
            )
        if "SegmentationType" not in dataset:
            raise DecodeError("SegmentationType is missing (Type 1, PS3.3 C.8.20.2)")
        try:
            SegmentationTypeValues(dataset.SegmentationType)
        except ValueError:
            raise DecodeError(
                "SegmentationType must be BINARY, FRACTIONAL or LABELMAP; "
                f"got {dataset.SegmentationType!r}"
            ) from None
        if "SharedFunctionalGroupsSequence" not in dataset:
            raise DecodeError(
                "SharedFunctionalGroupsSequence is missing (Type 1, PS3.3 C.7.6.16); expected 1 item"
            )
        if (
            "PerFrameFunctionalGroupsSequence" not in dataset
            and dataset.get("DimensionOrganizationType") != "TILED_FULL"
        ):
            raise DecodeError(
                "PerFrameFunctionalGroupsSequence is missing (required unless DimensionOrganizationType "
                f"is TILED_FULL, PS3.3 C.7.6.16); expected {layout.number_of_frames} item(s)"
            )
        seg = deepcopy(dataset) if copy else dataset
        seg.__class__ = cls
        seg.SegmentSequence = [SegmentDescription.from_dataset(item, copy=False) for item in seg.SegmentSequence]
        seg._pixel_layout = layout
        seg._frame_index = None
        return seg  # type: ignore[return-value]

    @property
    def _coordinate_system(self) -> CoordinateSystemNames | None:
        """SLIDE for tiled images, PATIENT with a Frame of Reference and plane geometry, else None.

        Derived from the data set on each access, so it holds for segmentations
        built in memory as well as for those read from files.
        """
        if "ImageOrientationSlide" in self or "TotalPixelMatrixOriginSequence" in self:  # type: ignore[operator]
            return CoordinateSystemNames.SLIDE
        shared = self.SharedFunctionalGroupsSequence[0]  # type: ignore[attr-defined]
        if "FrameOfReferenceUID" in self and (  # type: ignore[operator]
                "PlaneOrientationSequence" in shared or "PerFrameFunctionalGroupsSequence" in self):  # type: ignore[operator]
            return CoordinateSystemNames.PATIENT
        return None

    # -- cached state -----------------------------------------------------

    def _get_frame_index(self) -> FrameIndex:
        index = getattr(self, "_frame_index", None)
        if index is None:
            index = build_frame_index(self)  # type: ignore[arg-type]
            self._frame_index = index
        return index

    def _get_pixel_layout(self) -> PixelLayout:
        layout = getattr(self, "_pixel_layout", None)
        if layout is None:
            layout = pixel_layout(self)  # type: ignore[arg-type]
            self._pixel_layout = layout
        return layout

    # -- segment metadata -------------------------------------------------

    @property
    def segmentation_type(self) -> SegmentationTypeValues:
        """SegmentationType (0062,0001)."""
        return SegmentationTypeValues(self.SegmentationType)  # type: ignore[attr-defined]

    @property
    def segmentation_fractional_type(self) -> SegmentationFractionalTypeValues | None:
        """SegmentationFractionalType (0062,0010), ``None`` unless FRACTIONAL."""
        value = self.get("SegmentationFractionalType")  # type: ignore[attr-defined]
        return None if value is None else SegmentationFractionalTypeValues(value)

    @property
    def segment_numbers(self) -> "range | list[int]":
        """Non-background segment numbers, a ``range`` when consecutive.

        A segment whose number equals PixelPaddingValue (a LABELMAP background
        segment) is excluded.
        """
        padding = self.get("PixelPaddingValue")  # type: ignore[attr-defined]
        numbers = [
            int(item.SegmentNumber) for item in self.SegmentSequence  # type: ignore[attr-defined]
            if padding is None or int(item.SegmentNumber) != int(padding)
        ]
        if numbers and numbers == list(range(numbers[0], numbers[0] + len(numbers))):
            return range(numbers[0], numbers[0] + len(numbers))
        return numbers

    @property
    def number_of_segments(self) -> int:
        """Number of non-background segments."""
        return len(self.segment_numbers)

    def get_segment_description(self, segment_number: int) -> "SegmentDescription":
        """SegmentSequence item describing ``segment_number``.

        Raises
        ------
        SegmentNumberError
            (``IndexError``/``ValueError``) if no segment has that number.
        """
        from monai_dicomseg.seg.content import SegmentDescription

        for item in self.SegmentSequence:  # type: ignore[attr-defined]
            if int(item.SegmentNumber) == int(segment_number):
                if not isinstance(item, SegmentDescription):  # e.g. parsed from raw bytes
                    item = SegmentDescription.from_dataset(item, copy=False)
                return item
        raise SegmentNumberError(
            f"segment_number {segment_number} is not defined in SegmentSequence; "
            f"expected one of {[int(i.SegmentNumber) for i in self.SegmentSequence]}"  # type: ignore[attr-defined]
        )

    def get_segment_numbers(
        self,
        segment_label: str | None = None,
        segmented_property_category: Any = None,
        segmented_property_type: Any = None,
        algorithm_type: "SegmentAlgorithmTypeValues | str | None" = None,
        tracking_uid: str | None = None,
        tracking_id: str | None = None,
    ) -> list[int]:
        """Non-background segment numbers whose description matches every given filter."""
        algorithm = None if algorithm_type is None else SegmentAlgorithmTypeValues(
            getattr(algorithm_type, "value", algorithm_type)
        )
        background = self.get("PixelPaddingValue")  # type: ignore[attr-defined]
        matches = []
        for desc in self.SegmentSequence:  # type: ignore[attr-defined]
            if background is not None and desc.segment_number == int(background):
                continue
            if segment_label is not None and desc.segment_label != segment_label:
                continue
            if segmented_property_category is not None and desc.segmented_property_category != segmented_property_category:
                continue
            if segmented_property_type is not None and desc.segmented_property_type != segmented_property_type:
                continue
            if algorithm is not None and SegmentAlgorithmTypeValues(
                getattr(desc.algorithm_type, "value", desc.algorithm_type)
            ) != algorithm:
                continue
            if tracking_uid is not None and desc.tracking_uid != tracking_uid:
                continue
            if tracking_id is not None and desc.tracking_id != tracking_id:
                continue
            matches.append(desc.segment_number)
        return matches

    def get_source_image_uids(self) -> list[tuple[UID, UID, UID]]:
        """(StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID) of every referenced instance.

        Collected, without duplicates, from ReferencedSeriesSequence,
        StudiesContainingOtherReferencedInstancesSequence and
        SourceImageEvidenceSequence (PS3.3 C.7.6.16.2.6, C.12.2).
        """
        found: list[tuple[UID, UID, UID]] = []
        studies = [self] + list(self.get("StudiesContainingOtherReferencedInstancesSequence", []))  # type: ignore[attr-defined]
        studies += list(self.get("SourceImageEvidenceSequence", []))  # type: ignore[attr-defined]
        for study in studies:
            for series in study.get("ReferencedSeriesSequence", []):
                instances = series.get("ReferencedInstanceSequence") or series.get("ReferencedSOPSequence") or []
                for instance in instances:
                    found.append((
                        UID(study.StudyInstanceUID),
                        UID(series.SeriesInstanceUID),
                        UID(instance.ReferencedSOPInstanceUID),
                    ))
        return list(dict.fromkeys(found))

    # -- reconstruction -----------------------------------------------------

    def _assemble(self, placement: Placement, n_out: int, segment_numbers: Sequence[int] | None, **options: Any) -> np.ndarray:
        if segment_numbers is None:
            segment_numbers = list(self.segment_numbers)
        requested = _check_segment_request(segment_numbers, list(self.segment_numbers))
        return assemble_frames(
            self,  # type: ignore[arg-type]
            self._get_pixel_layout(),
            placement,
            n_out,
            segmentation_type=self.segmentation_type,
            segment_numbers=requested,
            maximum_fractional_value=self.get("MaximumFractionalValue"),  # type: ignore[attr-defined]
            all_segment_numbers=list(self.segment_numbers),
            **options,
        )

    def _check_source_indexing(
        self,
        uids: Sequence[str],
        ignore_spatial_locations: bool,
        assert_missing_frames_are_empty: bool,
    ) -> np.ndarray:
        """Validate indexing by source; return a mask over the frame references to use."""
        index = self._get_frame_index()
        if index.is_tiled_full:
            raise FrameMismatchError(
                "indexing by source frames is not possible: DimensionOrganizationType is TILED_FULL "
                "(frames carry no derivation references)"
            )
        if not index.has_frame_references:
            raise FrameMismatchError(
                "indexing by source frames is not possible: no frame has a "
                "DerivationImageSequence/SourceImageSequence reference"
            )
        if not assert_missing_frames_are_empty:
            known = {uid for _, _, uid in self.get_source_image_uids()}
            missing = [u for u in uids if u not in known]
            if missing:
                raise MissingSourceError(
                    f"SOP Instance UID(s) {missing} are not referenced by the segmentation; pass "
                    "assert_missing_frames_are_empty=True to return empty frames for them"
                )
        wanted = np.isin(index.ref_sop_instance_uid, np.asarray(list(uids), dtype=object))
        if ignore_spatial_locations:
            return wanted
        preserved = index.ref_spatial_locations_preserved[wanted]
        if any(v is not None and v != "YES" for v in preserved):
            raise FrameMismatchError(
                "SpatialLocationsPreserved is not 'YES' for a requested source frame, so frames cannot be "
                "indexed by source; pass ignore_spatial_locations=True to override"
            )
        if any(v is None for v in preserved):
            raise FrameMismatchError(
                "SpatialLocationsPreserved is absent for a requested source frame (expected 'YES'); "
                "pass ignore_spatial_locations=True if spatial locations are known to be preserved"
            )
        return wanted

    def get_pixels_by_source_instance(
        self,
        source_sop_instance_uids: Sequence[str],
        segment_numbers: Sequence[int] | None = None,
        combine_segments: bool = False,
        relabel: bool = False,
        ignore_spatial_locations: bool = False,
        assert_missing_frames_are_empty: bool = False,
        rescale_fractional: bool = True,
        skip_overlap_checks: bool = False,
        dtype: "type | str | np.dtype | None" = None,
    ) -> np.ndarray:
        """Mask for each listed single-frame source instance.

        Returns
        -------
        numpy.ndarray
            ``(N, R, C, S)`` (stacked segments, in ``segment_numbers`` order)
            or ``(N, R, C)`` with ``combine_segments``; ``N`` follows
            ``source_sop_instance_uids``. Dtype as highdicom: ``float32`` for
            rescaled FRACTIONAL, else the smallest unsigned type.

        Raises
        ------
        FrameMismatchError
            (``RuntimeError``) if frames are not one-to-one with the sources.
        """
        if isinstance(source_sop_instance_uids, str):
            raise InputTypeError("source_sop_instance_uids must be a sequence of UIDs, not a single UID")
        uids = [str(u) for u in source_sop_instance_uids]
        if not uids:
            raise InputError("source_sop_instance_uids may not be empty")
        wanted = self._check_source_indexing(uids, ignore_spatial_locations, assert_missing_frames_are_empty)
        index = self._get_frame_index()
        if not ignore_spatial_locations:
            wanted &= index.ref_spatial_locations_preserved == "YES"
        rows, outs = _join(index.ref_sop_instance_uid[wanted], uids)
        frames = index.ref_frame[wanted][rows]
        placement = Placement(frames, outs, index.segment_numbers[frames])
        return self._assemble(
            placement, len(uids), segment_numbers, combine_segments=combine_segments, relabel=relabel,
            rescale_fractional=rescale_fractional, skip_overlap_checks=skip_overlap_checks, dtype=dtype,
        )

    def get_pixels_by_source_frame(
        self,
        source_sop_instance_uid: str,
        source_frame_numbers: Sequence[int] | None = None,
        segment_numbers: Sequence[int] | None = None,
        combine_segments: bool = False,
        relabel: bool = False,
        ignore_spatial_locations: bool = False,
        assert_missing_frames_are_empty: bool = False,
        rescale_fractional: bool = True,
        skip_overlap_checks: bool = False,
        dtype: "type | str | np.dtype | None" = None,
    ) -> np.ndarray:
        """Mask for listed frames (1-based) of one multi-frame source instance.

        Returns
        -------
        numpy.ndarray
            ``(N, R, C, S)`` or ``(N, R, C)``, ``N = len(source_frame_numbers)``
            (all referenced frames ``1..max`` when ``None``).
        """
        uid = str(source_sop_instance_uid)
        if source_frame_numbers is not None:
            numbers = [int(f) for f in source_frame_numbers]
            if not numbers:
                raise InputError("source_frame_numbers may not be empty")
            if min(numbers) < 1:
                raise InputError(f"source_frame_numbers are 1-based and must be > 0; got {min(numbers)}")
        wanted = self._check_source_indexing([uid], ignore_spatial_locations, assert_missing_frames_are_empty)
        index = self._get_frame_index()
        referenced = index.ref_frame_number[index.ref_sop_instance_uid == uid]
        max_frame = int(referenced.max()) if referenced.size and referenced.max() > 0 else None
        if source_frame_numbers is None:
            if max_frame is None:
                raise FrameMismatchError(f"no ReferencedFrameNumber is recorded for source instance {uid}")
            numbers = list(range(1, max_frame + 1))
        elif not assert_missing_frames_are_empty:
            if max_frame is None:
                raise FrameMismatchError(f"no ReferencedFrameNumber is recorded for source instance {uid}")
            if max(numbers) > max_frame:
                raise InputError(
                    f"source frame number {max(numbers)} is larger than any referenced frame ({max_frame}); "
                    "pass assert_missing_frames_are_empty=True to return empty frames"
                )
        if not ignore_spatial_locations:
            wanted &= index.ref_spatial_locations_preserved == "YES"
        rows, outs = _join(index.ref_frame_number[wanted], numbers)
        frames = index.ref_frame[wanted][rows]
        placement = Placement(frames, outs, index.segment_numbers[frames])
        return self._assemble(
            placement, len(numbers), segment_numbers, combine_segments=combine_segments, relabel=relabel,
            rescale_fractional=rescale_fractional, skip_overlap_checks=skip_overlap_checks, dtype=dtype,
        )

    def get_pixels_by_dimension_index_values(
        self,
        dimension_index_values: Sequence[Sequence[int]],
        dimension_index_pointers: Sequence["int | str"] | None = None,
        segment_numbers: Sequence[int] | None = None,
        combine_segments: bool = False,
        relabel: bool = False,
        assert_missing_frames_are_empty: bool = False,
        rescale_fractional: bool = True,
        skip_overlap_checks: bool = False,
        dtype: "type | str | np.dtype | None" = None,
    ) -> np.ndarray:
        """Mask for each listed tuple of Dimension Index Values (PS3.3 C.7.6.17).

        Parameters
        ----------
        dimension_index_values
            One sequence of 1-based index values per output frame, one value
            per pointer.
        dimension_index_pointers
            Tags or keywords of the indexed dimensions (default: all but
            ReferencedSegmentNumber).
        """
        index = self._get_frame_index()
        available = index.dimension_index_pointers
        if dimension_index_pointers is None:
            pointers = [p for p in available if p != "ReferencedSegmentNumber"]
        else:
            pointers = [p if isinstance(p, str) else keyword_for_tag(p) or f"{int(p):08X}" for p in dimension_index_pointers]
            if not pointers:
                raise InputError("dimension_index_pointers must not be empty")
            for p in pointers:
                if p == "ReferencedSegmentNumber":
                    raise InputError("do not include ReferencedSegmentNumber in dimension_index_pointers")
                if p not in available:
                    raise InputError(f"{p} is not a dimension index of this image; expected one of {available}")
        queries = [tuple(int(v) for v in row) for row in dimension_index_values]
        if not queries:
            raise InputError("dimension_index_values must not be empty")
        if any(len(q) != len(pointers) for q in queries):
            raise InputError(
                f"each item of dimension_index_values needs one value per pointer ({len(pointers)}: {pointers})"
            )
        columns = [available.index(p) for p in pointers]
        keys = np.empty(index.number_of_frames, dtype=object)
        keys[:] = [tuple(r) for r in index.dimension_index_values[:, columns].tolist()]
        if not assert_missing_frames_are_empty:
            missing = set(queries) - set(keys.tolist())
            if missing:
                raise InputError(
                    f"dimension index values {sorted(missing)} match no segmentation frame; pass "
                    "assert_missing_frames_are_empty=True to return empty frames"
                )
        frames, outs = _join(keys, queries)
        placement = Placement(frames, outs, index.segment_numbers[frames])
        return self._assemble(
            placement, len(queries), segment_numbers, combine_segments=combine_segments, relabel=relabel,
            rescale_fractional=rescale_fractional, skip_overlap_checks=skip_overlap_checks, dtype=dtype,
        )

    @property
    def is_tiled(self) -> bool:
        """Whether the image is tiled (has TotalPixelMatrixRows/Columns, PS3.3 C.8.12.4)."""
        return "TotalPixelMatrixRows" in self and "TotalPixelMatrixColumns" in self  # type: ignore[operator]

    def _tile_placement(self) -> "TilePlacement":
        """Every stored frame with the 0-based total-pixel-matrix offset of its top-left pixel."""
        from monai_dicomseg.codec.tiled_region import TilePlacement

        if not self.is_tiled:
            raise UnsupportedError(
                "the segmentation is not a tiled image: TotalPixelMatrixRows/TotalPixelMatrixColumns "
                "are missing (PS3.3 C.8.12.4), so it has no total pixel matrix"
            )
        index = self._get_frame_index()
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
        from monai_dicomseg.codec.tiled_region import assemble_region, standardize_region, tiles_in_region

        if apply_palette_color_lut or apply_icc_profile:
            raise UnsupportedError(
                "apply_palette_color_lut/apply_icc_profile are not supported; read the stored labels "
                "and map them with the segment colours (RecommendedDisplayCIELabValue) instead"
            )
        placement = self._tile_placement()
        region = standardize_region(
            row_start, row_end, column_start, column_end,
            rows=int(self.TotalPixelMatrixRows),  # type: ignore[attr-defined]
            columns=int(self.TotalPixelMatrixColumns),  # type: ignore[attr-defined]
            as_indices=as_indices,
        )
        if segment_numbers is None:
            segment_numbers = list(self.segment_numbers)
        requested = _check_segment_request(segment_numbers, list(self.segment_numbers))
        layout = self._get_pixel_layout()
        top_left = np.stack([placement.row, placement.column], axis=1) + 1
        placement = placement.select(tiles_in_region(top_left, layout.rows, layout.columns, region))
        return assemble_region(
            self,  # type: ignore[arg-type]
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
            maximum_fractional_value=self.get("MaximumFractionalValue"),  # type: ignore[attr-defined]
            all_segment_numbers=list(self.segment_numbers),
        )

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
        index = self._get_frame_index()
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
            frame_of_reference_uid=self.get("FrameOfReferenceUID"),  # type: ignore[attr-defined]
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
    ) -> tuple[Placement, int, np.ndarray, float]:
        """Frames of a PATIENT volume: ``(placement, N, LPS origin of the first slice, slice spacing)``.

        The geometry part of :meth:`get_volume` (no pixel is decoded).
        """
        index = self._get_frame_index()
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
        from monai_dicomseg.seg._stacking import volume_positions

        spacing, positions = volume_positions(
            index.image_positions, index.image_orientation, spacing_hint=index.spacing_between_slices,
            rtol=rtol, atol=atol, perpendicular_tol=perpendicular_tol,
            allow_missing_positions=allow_missing_positions,
        )
        n_positions = int(positions.max()) + 1
        start, end = _slice_range(slice_start, slice_end, as_indices, n_positions)
        origin = index.image_positions[int(np.flatnonzero(positions == 0)[0])]
        keep = (positions >= start) & (positions < end)
        frames = np.flatnonzero(keep)
        placement = Placement(frames, positions[frames] - start, index.segment_numbers[frames])
        normal = np.cross(index.image_orientation[3:], index.image_orientation[:3])
        normal /= np.linalg.norm(normal)
        return placement, end - start, origin + normal * spacing * start, spacing

    def _volume_layout(self) -> "tuple[VolumeGeometry, Placement] | None":
        """Geometry of :meth:`get_volume` (default arguments) and where each frame goes, decoding nothing.

        Returns
        -------
        tuple or None
            ``(VolumeGeometry, Placement)`` (LPS affine, spatial shape
            ``(N, R, C)``), or None for a tiled segmentation in the SLIDE
            coordinate system (use :meth:`get_volume`).
        """
        from monai_dicomseg.geometry.volume import VolumeGeometry

        if self.is_tiled and self._coordinate_system == CoordinateSystemNames.SLIDE:
            return None
        placement, n_out, origin, spacing = self._volume_frames()
        index = self._get_frame_index()
        layout = self._get_pixel_layout()
        geometry = VolumeGeometry.from_attributes(
            image_position=origin, image_orientation=index.image_orientation, rows=layout.rows,
            columns=layout.columns, pixel_spacing=index.pixel_spacing,
            spacing_between_slices=spacing, number_of_frames=n_out,
            coordinate_system=CoordinateSystemNames.PATIENT,
            frame_of_reference_uid=self.get("FrameOfReferenceUID"),  # type: ignore[attr-defined]
        )
        return geometry, placement

    def _assemble_volume_into(
        self,
        out: np.ndarray,
        placement: Placement,
        segment_numbers: Sequence[int],
        *,
        combine_segments: bool,
        targets: "Sequence[int] | None" = None,
        skip_overlap_checks: bool = False,
    ) -> np.ndarray:
        """Write the frames of :meth:`_volume_layout` into ``out`` (BINARY / LABELMAP).

        ``out`` is a zero-filled ``(N, R, C, channels)`` (stacked) or
        ``(N, R, C)`` (combined) array of any strides and dtype, typically a
        view of the caller's final array; ``targets`` gives each requested
        segment's output channel (stacked) or value (combined). Only the
        selected frames are decoded, once.
        """
        requested = _check_segment_request(segment_numbers, list(self.segment_numbers))
        return assemble_frames(
            self,  # type: ignore[arg-type]
            self._get_pixel_layout(), placement, out.shape[0],
            segmentation_type=self.segmentation_type, segment_numbers=requested,
            combine_segments=combine_segments, relabel=False, rescale_fractional=False,
            skip_overlap_checks=skip_overlap_checks, dtype=None,
            all_segment_numbers=list(self.segment_numbers), out=out, targets=targets,
        )

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
            rows=int(self.TotalPixelMatrixRows),  # type: ignore[attr-defined]
            columns=int(self.TotalPixelMatrixColumns),  # type: ignore[attr-defined]
            as_indices=as_indices,
        )
        index = self._get_frame_index()
        origin_items = self.get("TotalPixelMatrixOriginSequence")  # type: ignore[attr-defined]
        orientation = self.get("ImageOrientationSlide")  # type: ignore[attr-defined]
        if not origin_items or orientation is None or index.pixel_spacing is None:
            raise GeometryError(
                "a tiled segmentation needs TotalPixelMatrixOriginSequence, ImageOrientationSlide and a "
                "shared PixelSpacing to form a volume (PS3.3 C.8.12.4, C.8.12.6.1)"
            )
        origin = origin_items[0]
        position = np.array([
            float(origin.XOffsetInSlideCoordinateSystem),
            float(origin.YOffsetInSlideCoordinateSystem),
            float(origin.get("ZOffsetInSlideCoordinateSystem", 0.0) or 0.0),
        ])
        cosines = np.asarray(orientation, dtype=np.float64)
        spacing = index.pixel_spacing
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
            spacing_between_slices=index.spacing_between_slices or 1.0,
            coordinate_system=CoordinateSystemNames.SLIDE,
            frame_of_reference_uid=self.get("FrameOfReferenceUID"),  # type: ignore[attr-defined]
            channels=channels,
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
