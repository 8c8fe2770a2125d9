"""Reading Segmentation images: :func:`read_segmentation_dataset` and :class:`SegmentationReaderMixin`.

(:func:`~monai_dicomseg.seg.segmentation.segread` wraps the first in a
``Segmentation``; this module never imports ``segmentation`` at run time.)

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
import mmap
import os
from copy import deepcopy
from typing import TYPE_CHECKING, Any, BinaryIO
from collections.abc import Sequence

import numpy as np
import pydicom
from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset

from monai_dicomseg.codec.assemble import FramePlacement, assemble_frames
from monai_dicomseg.codec.decode import PixelLayout, deferred_pixel_source, pixel_layout
from monai_dicomseg.codec.deflate import inflate_if_deflated
from monai_dicomseg.codec.element_scan import check_structure, locate_top_level_element, read_file_meta
from monai_dicomseg.codec.transfer_syntax import Storage, lookup
from monai_dicomseg.codec.frame_index import FrameIndex, build_frame_index
from monai_dicomseg.enums import (
    CoordinateSystemNames,
    DimensionOrganizationTypeValues,
    SegmentAlgorithmTypeValues,
    SegmentationFractionalTypeValues,
    SegmentationTypeValues,
    SegSOPClass,
    is_seg_sop_class,
)
from monai_dicomseg.errors import (
    DecodeError,
    DicomSegError,
    FrameMismatchError,
    InputError,
    InputTypeError,
    MissingSourceError,
    SegmentNumberError,
    UnsupportedError,
)
from monai_dicomseg.seg.selection import check_segment_request
from monai_dicomseg.seg.tiled_reading import TiledReaderMixin
from monai_dicomseg.seg.volume_reading import VolumeReaderMixin
from monai_dicomseg.uid import UID

if TYPE_CHECKING:  # pragma: no cover
    from monai_dicomseg.seg.content import SegmentDescription
    from monai_dicomseg.seg.segmentation import Segmentation

__all__ = [
    "read_segmentation_dataset", "SegmentationReaderMixin", "DEFER_PIXEL_DATA_BYTES",
]

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
    row = lookup(syntax)
    if row is None or not row.little_endian or row.deflated:
        return buf
    implicit = row.implicit_vr
    found = locate_top_level_element(buf, start, "PerFrameFunctionalGroupsSequence", implicit=implicit)
    if found is None or not found[3]:
        return buf
    element_start, value_start, value_end, _ = found
    length = value_end - value_start
    tag = tag_for_keyword("PerFrameFunctionalGroupsSequence")
    group, element = tag >> 16, tag & 0xFFFF  # type: ignore[operator]  # tag_for_keyword of a dictionary keyword is never None
    header = group.to_bytes(2, "little") + element.to_bytes(2, "little")
    if not implicit:
        header += b"SQ\x00\x00"
    header += length.to_bytes(4, "little")
    if len(header) != value_start - element_start:
        return buf
    return b"".join((buf[:element_start], header, buf[value_start:value_end], buf[value_end + 8 :]))


_LAZY_KEYWORDS = frozenset({"PerFrameFunctionalGroupsSequence"})  # Pixel Data: converting OB/OW keeps the bytes
# one item per source instance: only their structure is checked at read (pydicom parses them slowly)
_PER_SOURCE_KEYWORDS = frozenset({
    "ReferencedSeriesSequence", "SourceImageSequence", "StudiesContainingOtherReferencedInstancesSequence",
    "ReferencedImageSequence", "SourceImageEvidenceSequence",
})


def _convert_header(dataset: Dataset) -> None:
    """Convert the raw header elements now; walk the per-source sequences with the bounded scanner.

    pydicom converts raw elements on first access; a malformed one (odd byte
    length, truncated nested item) would otherwise raise pydicom's own errors
    from whichever accessor touches it first. The per-frame groups, the Pixel
    Data and the sequences with one item per source instance stay unparsed
    (their bytes are checked structurally, which costs microseconds per item).
    """
    from pydicom.dataelem import RawDataElement

    from monai_dicomseg.codec.element_scan import ScanSpec, scan_sequence

    for holder in (getattr(dataset, "file_meta", None), dataset):
        if holder is None:
            continue
        # plain values first (items may consult them, e.g. PixelRepresentation); no conversion here
        tags = sorted(holder.keys(), key=lambda t: getattr(holder.get_item(t, keep_deferred=True), "VR", None) == "SQ")
        for tag in tags:
            keyword = keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
            if keyword in _LAZY_KEYWORDS:
                continue
            try:
                raw = holder.get_item(tag, keep_deferred=True)  # as stored: no conversion, no deferred read
                if keyword == "PixelData" and deferred_pixel_source(holder) is not None:
                    continue  # left in the file (read_segmentation_dataset): checked by pixel_layout
                if (
                    isinstance(raw, RawDataElement) and raw.is_little_endian
                    and isinstance(raw.value, (bytes, bytearray, memoryview))
                    and keyword != "PixelData"  # encapsulated fragments are items, not data sets
                    and (raw.VR == "SQ" or keyword in _PER_SOURCE_KEYWORDS or raw.length == 0xFFFFFFFF)
                ):
                    # a sequence: its structure now (fast), its values when accessed (guarded there)
                    scan_sequence(raw.value, ScanSpec({}), implicit=bool(raw.is_implicit_VR), what=keyword)
                    continue
                element = holder[tag]
                if element.VR == "SQ" and keyword not in _PER_SOURCE_KEYWORDS:
                    for item in element.value:  # parsed eagerly (undefined length): convert its values
                        for _ in item.iterall():
                            pass
            except DecodeError:
                raise
            except Exception as exc:  # pydicom's conversion errors vary (OSError, BytesLengthException, ...)
                raise DecodeError(f"{keyword} cannot be decoded: {exc}") from exc


def _parse(source: Any) -> Dataset:
    try:
        dataset = pydicom.dcmread(source, force=True)
    except Exception as exc:  # pydicom raises many types on corrupt input
        raise DecodeError(f"cannot parse the file as DICOM: {exc}") from exc
    _convert_header(dataset)
    return dataset


DEFER_PIXEL_DATA_BYTES: int = 64 << 20
"""Files at least this large (bytes) with native Pixel Data are read without loading it (default 64 MiB).

The Pixel Data of such a file stays in the file, read by byte range through
an open descriptor (:mod:`monai_dicomseg.codec.pixel_source`); encapsulated
(compressed) Pixel Data is always loaded.
"""


def _native_pixel_data(buf: "bytes | mmap.mmap") -> tuple[int, int, int, bool] | None:
    """``(element_start, value_start, value_end, implicit)`` of native top-level Pixel Data, else ``None``.

    ``None`` also for anything unusual (no DICM preamble, an encapsulated or
    malformed element): such files are read whole, as before.
    """
    meta = read_file_meta(buf)  # type: ignore[arg-type]  # an mmap is a read-only buffer that slices like bytes; the parser only slices and unpacks it
    row = lookup(meta[1]) if meta is not None else None
    if meta is None or row is None or row.storage is not Storage.NATIVE or not row.little_endian:
        return None
    start = meta[0]
    implicit = row.implicit_vr
    try:
        found = locate_top_level_element(buf, start, "PixelData", implicit=implicit)  # type: ignore[arg-type]  # an mmap is a read-only buffer that slices like bytes; the parser only slices and unpacks it
    except DecodeError:
        return None
    if found is None or found[3]:
        return None
    if not implicit and bytes(buf[found[0] + 4:found[0] + 6]) not in (b"OB", b"OW"):
        return None  # an odd VR: read whole, so that pydicom's conversion reports it as before
    return found[0], found[1], found[2], implicit


def _read_deferred(path: "str | os.PathLike[str]", handle: BinaryIO, mapped: Any,
                   where: tuple[int, int, int, bool]) -> Dataset:
    """Parse everything but the Pixel Data value; leave a deferred element served by a ``FilePixelData``.

    pydicom parses the bytes before (and any after) the Pixel Data element;
    the element itself is a ``RawDataElement`` with value ``None`` whose bytes
    are read from a duplicate of ``handle``'s descriptor, which the data set
    owns (as its ``buffer``, where pydicom's deferred read looks).
    """
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    from monai_dicomseg.codec.pixel_source import FilePixelData

    element_start, value_start, value_end, implicit = where
    header = bytes(mapped[:element_start]) + bytes(mapped[value_end:])
    try:
        header = _defer_per_frame_groups(header)
    except DecodeError:
        pass  # let pydicom report (or tolerate) the problem below
    dataset = _parse(io.BytesIO(header))
    vr = None if implicit else bytes(mapped[element_start + 4:element_start + 6]).decode("ascii", "replace")
    name = repr(os.fspath(path))
    source = FilePixelData(os.dup(handle.fileno()), element_start, value_start, value_end - value_start, name)
    dataset[Tag("PixelData")] = RawDataElement(
        Tag("PixelData"), vr, value_end - value_start, None, value_start, implicit, True,
    )
    dataset.buffer = source
    dataset.filename = os.fspath(path)
    return dataset


def _read_mapped(path: "str | os.PathLike[str]", handle: BinaryIO, mapped: Any, size: int) -> "Dataset | None":
    """Parse the mapped file (see :func:`_read_path`); ``None``: let pydicom read ``handle`` as it is."""
    check_structure(mapped, repr(os.fspath(path)))
    where = _native_pixel_data(mapped) if size >= DEFER_PIXEL_DATA_BYTES else None
    if where is not None:
        return _read_deferred(path, handle, mapped, where)
    try:
        rewritten = _defer_per_frame_groups(mapped)
    except DecodeError:
        rewritten = mapped
    if rewritten is not mapped:
        dataset = _parse(io.BytesIO(rewritten))
        dataset.filename = os.fspath(path)
        return dataset
    return None


def _read_inflated(path: "str | os.PathLike[str]", inflated: "bytes | BinaryIO", syntax: str) -> Dataset:
    """Parse the inflated image of a deflated file (PS3.5 A.5); the data set keeps its Transfer Syntax UID.

    In memory it is read like a file object; spilled to a temporary file, like
    a file on disk (a large one keeps its Pixel Data there, read by byte range).
    """
    dataset: Dataset | None
    if isinstance(inflated, bytes):
        dataset = _read_buffer(inflated, repr(os.fspath(path)))
    else:
        with inflated:
            size = os.fstat(inflated.fileno()).st_size
            with mmap.mmap(inflated.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                dataset = _read_mapped(path, inflated, mapped, size)
            if dataset is None:
                inflated.seek(0)
                dataset = _parse(inflated)
    dataset.filename = os.fspath(path)
    dataset.file_meta.TransferSyntaxUID = UID(syntax)
    return dataset


def _read_path(path: "str | os.PathLike[str]") -> Dataset:
    """Parse a file, letting pydicom read it directly unless the per-frame groups need a rewrite.

    The file is memory-mapped for the structure check (header pages only),
    so a file that needs no rewrite (ours: defined-length sequences) is
    copied into memory only once. A file of at least
    :data:`DEFER_PIXEL_DATA_BYTES` with native Pixel Data is parsed without
    its Pixel Data value (:func:`_read_deferred`). A deflated file is
    inflated first (:func:`~monai_dicomseg.codec.deflate.inflate_if_deflated`).
    """
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise DecodeError(f"cannot read {os.fspath(path)!r}: {exc}") from exc
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            raise DecodeError(f"{os.fspath(path)!r} is empty: not a DICOM file")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            inflated = inflate_if_deflated(mapped, repr(os.fspath(path)), DEFER_PIXEL_DATA_BYTES)
            if inflated is None:
                dataset = _read_mapped(path, handle, mapped, size)
                if dataset is not None:
                    return dataset
    if inflated is not None:
        return _read_inflated(path, *inflated)
    return _parse(path)


def _read_buffer(buf: bytes, what: str) -> Dataset:
    """Parse a whole file held in memory (a file object's bytes, an inflated file)."""
    check_structure(buf, what)
    try:
        buf = _defer_per_frame_groups(buf)
    except DecodeError:
        pass  # let pydicom report (or tolerate) the problem below
    dataset = _parse(io.BytesIO(buf))
    dataset.filename = None  # do not keep the whole buffer alive through the data set
    return dataset


def read_segmentation_dataset(fp: "str | os.PathLike[str] | BinaryIO") -> Dataset:
    """Parse a Segmentation file into a pydicom ``Dataset`` (what :func:`~monai_dicomseg.seg.segread` wraps).

    ``fp`` and the errors are those of :func:`~monai_dicomseg.seg.segread`.
    The data set is structure checked; PerFrameFunctionalGroupsSequence stays
    undecoded until accessed. A path to a file of at least
    :data:`DEFER_PIXEL_DATA_BYTES` with native Pixel Data leaves the Pixel
    Data value in the file: the data set holds an open descriptor to it
    (:class:`~monai_dicomseg.codec.pixel_source.FilePixelData`), frames are
    read by byte range, and ``dataset.PixelData`` loads the value on first
    access. Pass it to ``Segmentation.from_dataset(dataset, copy=False)``.
    """
    if isinstance(fp, (str, os.PathLike)):
        return _read_path(fp)
    buf = _read_bytes(fp)
    inflated = inflate_if_deflated(buf, "the file object", spill_bytes=len(buf) + (1 << 62))
    if inflated is None:
        return _read_buffer(buf, "the file object")
    dataset = _read_buffer(inflated[0], "the file object")  # type: ignore[arg-type]  # spill_bytes beyond the buffer size: the inflated data stays in memory (bytes)
    dataset.file_meta.TransferSyntaxUID = UID(inflated[1])
    return dataset


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


class SegmentationReaderMixin(VolumeReaderMixin, TiledReaderMixin):
    """Read-side API of a Segmentation (mixed into a ``pydicom.Dataset`` subclass)."""

    # -- construction -----------------------------------------------------

    @classmethod
    def from_dataset(cls, dataset: Dataset, copy: bool = True) -> "Segmentation":
        """Turn a ``pydicom.Dataset`` holding a SEG into an instance of ``cls``.

        Parameters
        ----------
        dataset
            A Segmentation or Label Map Segmentation data set
            (:class:`~monai_dicomseg.enums.SegSOPClass`).
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

        layout = _check_readable_seg(dataset)
        seg = deepcopy(dataset) if copy else dataset
        seg.__class__ = cls  # type: ignore[assignment]  # the dataset becomes a Segmentation in place (pydicom boundary; see issue 22)
        try:
            seg.SegmentSequence = [SegmentDescription.from_dataset(item, copy=False) for item in seg.SegmentSequence]
        except DicomSegError:
            raise
        except Exception as exc:  # values converted lazily by pydicom (odd lengths, bad numbers)
            raise DecodeError(f"SegmentSequence cannot be decoded: {exc}") from exc
        seg._pixel_layout = layout
        seg._frame_index = None
        return seg  # type: ignore[return-value]  # its class was set to cls above

    @property
    def _coordinate_system(self) -> CoordinateSystemNames | None:
        """SLIDE for tiled images, PATIENT with a Frame of Reference and plane geometry, else None.

        Derived from the data set on each access, so it holds for segmentations
        built in memory as well as for those read from files.
        """
        if "ImageOrientationSlide" in self or "TotalPixelMatrixOriginSequence" in self:  # type: ignore[operator]  # mixin: self is the Segmentation (a pydicom Dataset) it is mixed into
            return CoordinateSystemNames.SLIDE
        shared_items = self.get("SharedFunctionalGroupsSequence") or []  # type: ignore[attr-defined]  # mixin: self is the Segmentation (a pydicom Dataset) it is mixed into
        if len(shared_items) != 1:
            raise DecodeError(
                "SharedFunctionalGroupsSequence must have exactly 1 item (PS3.3 C.7.6.16); "
                f"found {len(shared_items)}"
            )
        shared = shared_items[0]
        if "FrameOfReferenceUID" in self and (  # type: ignore[operator]  # mixin: self is the Segmentation (a pydicom Dataset) it is mixed into
                "PlaneOrientationSequence" in shared or "PerFrameFunctionalGroupsSequence" in self):  # type: ignore[operator]  # mixin: self is the Segmentation (a pydicom Dataset) it is mixed into
            return CoordinateSystemNames.PATIENT
        return None

    # -- cached state -----------------------------------------------------

    def get_frame_index(self) -> FrameIndex:
        """The frame index of this SEG (built once, then cached; decodes no pixels).

        One entry per frame: its segment number, plane position / dimension
        index values and source references (PS3.3 C.7.6.16 per-frame
        functional groups); see :class:`~monai_dicomseg.codec.frame_index.FrameIndex`.
        Public seam for the command line and the MONAI layer.
        """
        index = getattr(self, "_frame_index", None)
        if index is None:
            index = build_frame_index(self)  # type: ignore[arg-type]  # mixin: self is the Segmentation (a pydicom Dataset) it is mixed into
            self._frame_index = index
        return index

    def _get_pixel_layout(self) -> PixelLayout:
        layout = getattr(self, "_pixel_layout", None)
        if layout is None:
            layout = pixel_layout(self)  # type: ignore[arg-type]  # mixin: self is the Segmentation (a pydicom Dataset) it is mixed into
            self._pixel_layout = layout
        return layout

    # -- segment metadata -------------------------------------------------

    @property
    def segmentation_type(self) -> SegmentationTypeValues:
        """SegmentationType (0062,0001)."""
        return SegmentationTypeValues(self.SegmentationType)  # type: ignore[attr-defined]  # mixin: self is the Segmentation (a pydicom Dataset) it is mixed into

    @property
    def segmentation_fractional_type(self) -> SegmentationFractionalTypeValues | None:
        """SegmentationFractionalType (0062,0010), ``None`` unless FRACTIONAL."""
        value = self.get("SegmentationFractionalType")  # type: ignore[attr-defined]  # mixin: self is the Segmentation (a pydicom Dataset) it is mixed into
        return None if value is None else SegmentationFractionalTypeValues(value)

    @property
    def segment_numbers(self) -> "range | list[int]":
        """Non-background segment numbers, a ``range`` when consecutive.

        A LABELMAP SEG may declare its background as a segment (dcmqi writes
        a segment 0 "Background"). The background is the pixel value given by
        PixelPaddingValue (0028,0120) (Supplement 243, Label Map Segmentation;
        PS3.3 C.7.5.1.1.2) and, in a LABELMAP SEG, always the value 0 (older
        dcmqi wrote segment 0 without PixelPaddingValue; the decoder never
        paints stored 0). Such a segment is excluded here and therefore from
        every accessor (``get_volume``, ``get_pixels_by_*``) and from the
        MONAI loaders' channels and metadata: it is never returned as a
        segment. BINARY and FRACTIONAL SEGs number segments from 1 (PS3.3
        C.8.20.2), so nothing is excluded there.
        """
        padding = self.get("PixelPaddingValue")  # type: ignore[attr-defined]  # mixin: self is the Segmentation (a pydicom Dataset) it is mixed into
        background = set() if padding is None else {int(padding)}
        if str(self.get("SegmentationType", "")) == SegmentationTypeValues.LABELMAP.value:  # type: ignore[attr-defined]  # mixin: self is the Segmentation (a pydicom Dataset) it is mixed into
            background.add(0)
        numbers = [
            int(item.SegmentNumber) for item in self.SegmentSequence  # type: ignore[attr-defined]  # mixin: self is the Segmentation (a pydicom Dataset) it is mixed into
            if int(item.SegmentNumber) not in background
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

        for item in self.SegmentSequence:  # type: ignore[attr-defined]  # mixin: self is the Segmentation (a pydicom Dataset) it is mixed into
            if int(item.SegmentNumber) == int(segment_number):
                if not isinstance(item, SegmentDescription):  # e.g. parsed from raw bytes
                    item = SegmentDescription.from_dataset(item, copy=False)
                return item
        raise SegmentNumberError(
            f"segment_number {segment_number} is not defined in SegmentSequence; "
            f"expected one of {[int(i.SegmentNumber) for i in self.SegmentSequence]}"  # type: ignore[attr-defined]  # mixin: self is the Segmentation (a pydicom Dataset) it is mixed into
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
        background = self.get("PixelPaddingValue")  # type: ignore[attr-defined]  # mixin: self is the Segmentation (a pydicom Dataset) it is mixed into
        matches = []
        for desc in self.SegmentSequence:  # type: ignore[attr-defined]  # mixin: self is the Segmentation (a pydicom Dataset) it is mixed into
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

        Raises
        ------
        DecodeError
            If a referenced item lacks one of its UIDs or cannot be decoded.
        """
        try:
            return self._source_image_uids()
        except DicomSegError:
            raise
        except Exception as exc:  # pydicom converts these sequences lazily: odd lengths, bad values
            raise DecodeError(f"the referenced source instances cannot be decoded: {exc}") from exc

    def _source_image_uids(self) -> list[tuple[UID, UID, UID]]:
        found: list[tuple[UID, UID, UID]] = []
        studies = [self] + list(self.get("StudiesContainingOtherReferencedInstancesSequence", []))  # type: ignore[attr-defined]  # mixin: self is the Segmentation (a pydicom Dataset) it is mixed into
        studies += list(self.get("SourceImageEvidenceSequence", []))  # type: ignore[attr-defined]  # mixin: self is the Segmentation (a pydicom Dataset) it is mixed into

        def required(item: Any, keyword: str, where: str) -> UID:
            value = item.get(keyword)
            if not value:
                raise DecodeError(f"{where} lacks {keyword} (Type 1, PS3.3 C.7.6.16.2.6 / C.12.2); found none")
            return UID(str(value))

        for study in studies:
            for series in study.get("ReferencedSeriesSequence", []):  # type: ignore[attr-defined]  # study is self (a Segmentation, i.e. a Dataset) or a Dataset item; the mixin alone has no get
                instances = series.get("ReferencedInstanceSequence") or series.get("ReferencedSOPSequence") or []
                if not instances:
                    continue
                study_uid = required(study, "StudyInstanceUID", "a study that holds a ReferencedSeriesSequence")
                series_uid = required(series, "SeriesInstanceUID", "a ReferencedSeriesSequence item")
                for instance in instances:
                    found.append((
                        study_uid,
                        series_uid,
                        required(instance, "ReferencedSOPInstanceUID", "a ReferencedInstanceSequence item"),
                    ))
        return list(dict.fromkeys(found))

    # -- reconstruction -----------------------------------------------------

    def _assemble(self, placement: FramePlacement, n_out: int, segment_numbers: Sequence[int] | None, **options: Any) -> np.ndarray:
        if segment_numbers is None:
            segment_numbers = list(self.segment_numbers)
        requested = check_segment_request(segment_numbers, list(self.segment_numbers))
        return assemble_frames(
            self,  # type: ignore[arg-type]  # mixin: self is the Segmentation (a pydicom Dataset) it is mixed into
            self._get_pixel_layout(),
            placement,
            n_out,
            segmentation_type=self.segmentation_type,
            segment_numbers=requested,
            maximum_fractional_value=self.get("MaximumFractionalValue"),  # type: ignore[attr-defined]  # mixin: self is the Segmentation (a pydicom Dataset) it is mixed into
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
        index = self.get_frame_index()
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
        index = self.get_frame_index()
        if not ignore_spatial_locations:
            wanted &= index.ref_spatial_locations_preserved == "YES"
        rows, outs = _join(index.ref_sop_instance_uid[wanted], uids)
        frames = index.ref_frame[wanted][rows]
        placement = FramePlacement(frames, outs, index.segment_numbers[frames])
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
        index = self.get_frame_index()
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
        placement = FramePlacement(frames, outs, index.segment_numbers[frames])
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
        index = self.get_frame_index()
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
        placement = FramePlacement(frames, outs, index.segment_numbers[frames])
        return self._assemble(
            placement, len(queries), segment_numbers, combine_segments=combine_segments, relabel=relabel,
            rescale_fractional=rescale_fractional, skip_overlap_checks=skip_overlap_checks, dtype=dtype,
        )


# ---------------------------------------------------------------------------
# what makes a Dataset a readable SEG (Segmentation.from_dataset), in order, each with its own error


def _check_readable_seg(dataset: Any) -> PixelLayout:
    """Check that ``dataset`` is a SEG this package can read; return its validated pixel layout.

    The checks run in order: type, SOP Class (PS3.4 B.5), byte order, pixel
    layout, the Segmentation module (PS3.3 C.8.20.2), the functional groups
    (PS3.3 C.7.6.16), the FRACTIONAL attributes and PixelPaddingValue.

    Raises
    ------
    InputTypeError
        ``dataset`` is not a ``pydicom.Dataset``.
    DecodeError, UnsupportedError
        As for :meth:`SegmentationReaderMixin.from_dataset`.
    """
    if not isinstance(dataset, Dataset):
        raise InputTypeError(f"dataset must be a pydicom.Dataset; got {type(dataset).__name__}")
    sop_class = dataset.get("SOPClassUID")
    if not is_seg_sop_class(sop_class):
        raise DecodeError(
            f"SOPClassUID must be Segmentation Storage ({SegSOPClass.SEGMENTATION}) or Label "
            f"Map Segmentation Storage ({SegSOPClass.LABEL_MAP_SEGMENTATION}); got {sop_class!r}: "
            "dataset is not a Segmentation"
        )
    if getattr(dataset, "is_little_endian", True) is False:
        raise UnsupportedError("big-endian data sets are not supported; expected little endian")
    layout = pixel_layout(dataset)
    _check_segmentation_module(dataset)
    _check_functional_groups(dataset, layout)
    if dataset.SegmentationType == SegmentationTypeValues.FRACTIONAL.value:
        _check_fractional_attributes(dataset)
    padding = dataset.get("PixelPaddingValue")
    if padding is not None and not isinstance(padding, int):
        raise DecodeError(f"PixelPaddingValue must be one integer (US/SS, VM 1); got {padding!r}")
    return layout


def _check_segmentation_module(dataset: Dataset) -> None:
    """SegmentSequence present and not empty; SegmentationType one of the defined terms (PS3.3 C.8.20.2)."""
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


def _check_functional_groups(dataset: Dataset, layout: PixelLayout) -> None:
    """Shared functional groups present; per-frame ones too unless TILED_FULL (PS3.3 C.7.6.16)."""
    if "SharedFunctionalGroupsSequence" not in dataset:
        raise DecodeError(
            "SharedFunctionalGroupsSequence is missing (Type 1, PS3.3 C.7.6.16); expected 1 item"
        )
    if (
        "PerFrameFunctionalGroupsSequence" not in dataset
        and dataset.get("DimensionOrganizationType") != DimensionOrganizationTypeValues.TILED_FULL.value
    ):
        raise DecodeError(
            "PerFrameFunctionalGroupsSequence is missing (required unless DimensionOrganizationType "
            f"is TILED_FULL, PS3.3 C.7.6.16); expected {layout.number_of_frames} item(s)"
        )


def _check_fractional_attributes(dataset: Dataset) -> None:
    """SegmentationFractionalType and MaximumFractionalValue of a FRACTIONAL SEG (Type 1C, PS3.3 C.8.20.2)."""
    fractional_type = dataset.get("SegmentationFractionalType")
    if fractional_type not in [v.value for v in SegmentationFractionalTypeValues]:
        raise DecodeError(
            "SegmentationFractionalType must be PROBABILITY or OCCUPANCY for a FRACTIONAL "
            f"segmentation (Type 1C, PS3.3 C.8.20.2); got {fractional_type!r}"
        )
    maximum = dataset.get("MaximumFractionalValue")
    if not isinstance(maximum, int) or not 1 <= maximum <= 255:
        raise DecodeError(
            "MaximumFractionalValue must be one integer in [1, 255] for a FRACTIONAL segmentation "
            f"(Type 1C, PS3.3 C.8.20.2.3); got {maximum!r}"
        )
