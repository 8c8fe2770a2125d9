"""Slides on a DICOMweb server: image and SEG tiles retrieved per patch with WADO-RS ``/frames/``.

Torch-free. A slide served by a PACS is read tile by tile, never whole, where
the server serves frames (PS3.18 10.4.1.1.3):

* :class:`DicomWebSlide`: the levels of a VL Whole Slide Microscopy series
  (its WADO-RS series metadata, cached) and :meth:`DicomWebSlide.get_patch`,
  an RGB patch in MONAI ``WSIReader`` terms (``(3, H, W)`` uint8,
  ``location = (top, left)`` level-0 pixels, ``size`` at ``level``; pixels
  outside the total pixel matrix are 0, as OpenSlide gives them) assembled
  from only the level's frames under the patch, retrieved as native
  Explicit VR Little Endian (the server transcodes a compressed slide);
* :func:`remote_segmentation`: a tiled SEG instance as a
  :class:`~monai_dicomseg.seg.Segmentation` whose header comes from the
  instance's WADO-RS metadata (cached) and whose Pixel Data is served by
  :class:`RemotePixelSource`: ``get_total_pixel_matrix`` retrieves the frames
  under the region (of the requested segments) and the package's own decoder
  reads them. :class:`~monai_dicomseg.slides.SlideLabels` takes ``dicomweb+``
  URIs and :class:`~monai_dicomseg.dicomweb.DicomWebSeries` for its SEG
  levels through it.

Frames are cached one per entry (cache variant ``frame-<number>`` of the SOP
Instance UID: the raw native frame bytes, verified on read like every entry),
so a later epoch, another DataLoader worker or an overlapping patch makes no
request. Missing frames of one patch are asked in requests of at most
``frames_per_request`` frames, at most ``max_workers`` in flight
(:func:`~monai_dicomseg.dicomweb.concurrency.bounded_map`). Two workers asking
the same tile at the same moment may both retrieve it (the cache keeps one).

The whole instance is retrieved into the cache instead (and read locally)
when the server does not serve its frames (a 4xx other than 401/403, a 501,
an answer that is not multipart; Orthanc 1.x refuses 1-bit BINARY frames with
HTTP 400), remembered per server and pixel encoding for the process as
:mod:`~monai_dicomseg.dicomweb.frames` does, so the refused request is made
once; also for a 1-bit SEG whose frames do not end on a byte boundary
(``Rows x Columns`` not a multiple of 8), and for an image whose native frames
are not 8-bit RGB (its whole instance is decoded with pydicom, which converts
YBR to RGB).
"""
from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import UID

from monai_dicomseg.codec.pixel_source import PixelSource
from monai_dicomseg.codec.tiled_region import Region, standardize_region, tiles_in_region
from monai_dicomseg.codec.transfer_syntax import EXPLICIT_VR_LITTLE_ENDIAN
from monai_dicomseg.dicomweb import frames as wado_frames
from monai_dicomseg.dicomweb.cache import InstanceCache
from monai_dicomseg.dicomweb.concurrency import DEFAULT_MAX_WORKERS, bounded_map, check_max_workers
from monai_dicomseg.dicomweb.reference import DicomWebSeries, is_dicomweb_uri, redact_url
from monai_dicomseg.dicomweb.retrieve import (
    as_reference, cache_for, json_value, manifest_from_metadata, materialize, series_metadata,
)
from monai_dicomseg.enums import SegmentationTypeValues
from monai_dicomseg.errors import DecodeError, InputError, UnsupportedError
from monai_dicomseg.seg.segmentation import Segmentation, segread
from monai_dicomseg.seg.tiling import slide_geometry, source_tile_positions
from monai_dicomseg.slides.geometry import SlideImage, level_region

__all__ = ["DicomWebSlide", "RemoteFrames", "RemotePixelSource", "RemoteSegmentation", "remote_segmentation",
           "is_remote", "FRAMES_PER_REQUEST"]

FRAMES_PER_REQUEST = 16
"""At most this many frames per ``/frames/`` request (a patch's missing tiles are split over requests)."""

_PIXEL_DATA = Tag("PixelData")


class FramesRefused(Exception):
    """Internal: the server does not serve this instance's frames (the whole instance is read instead)."""


def is_remote(source: Any) -> bool:
    """True for a :class:`~monai_dicomseg.dicomweb.DicomWebSeries` or a ``dicomweb+`` URI."""
    return isinstance(source, DicomWebSeries) or is_dicomweb_uri(source)


def _refusal_key(ref: DicomWebSeries, header: Dataset) -> tuple[str, int, str]:
    """The key :mod:`~monai_dicomseg.dicomweb.frames` remembers refusals under (server, encoding)."""
    return (ref.url, int(header.BitsAllocated), str(header.get("AvailableTransferSyntaxUID", "") or ""))


def frame_size(header: Dataset) -> int:
    """Bytes of one native frame: ``ceil(Rows x Columns x SamplesPerPixel x BitsAllocated / 8)``."""
    pixels = int(header.Rows) * int(header.Columns) * int(header.get("SamplesPerPixel", 1) or 1)
    return (pixels * int(header.BitsAllocated) + 7) // 8


class RemoteFrames:
    """The native frames of one instance on a server, retrieved on demand and cached one per entry.

    Parameters
    ----------
    ref
        The instance (a :class:`DicomWebSeries` with ``instance_uid``, bound to its server).
    header
        Its header (Rows, Columns, SamplesPerPixel, BitsAllocated, NumberOfFrames).
    cache
        The instance cache (frames under the variant ``frame-<number>``).
    max_workers, frames_per_request
        Requests in flight at once; frames per request.
    """

    def __init__(self, ref: DicomWebSeries, header: Dataset, cache: InstanceCache,
                 max_workers: int = DEFAULT_MAX_WORKERS, frames_per_request: int = FRAMES_PER_REQUEST) -> None:
        if ref.instance_uid is None:
            raise InputError(f"RemoteFrames needs an instance reference; got the series {ref.series_url}")
        self.ref, self.header, self.cache = ref, header, cache
        self.max_workers = check_max_workers(max_workers)
        self.frames_per_request = check_max_workers(frames_per_request)
        self.frame_bytes = frame_size(header)
        self.number_of_frames = int(header.get("NumberOfFrames", 1) or 1)
        self._recent: dict[int, bytes] = {}  # the frames of the latest patch (read again by the decoder)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_recent": {}}

    @property
    def refused(self) -> bool:
        """Whether this process saw the server refuse frames of this pixel encoding."""
        return wado_frames.frames_refused(*_refusal_key(self.ref, self.header))

    def _variant(self, number: int) -> str:
        return f"frame-{number}"

    def _cached(self, number: int) -> "bytes | None":
        path = self.cache.get(str(self.ref.instance_uid), self._variant(number))
        if path is None:
            return None
        with open(path, "rb") as handle:
            return handle.read()

    def _fetch(self, numbers: list[int]) -> list[bytes]:
        got = wado_frames.fetch_frames(self.ref, str(self.ref.instance_uid), numbers, self.header)
        if got is None:
            wado_frames.remember_refusal(*_refusal_key(self.ref, self.header))
            raise FramesRefused(self.ref.uri)
        for number, data in zip(numbers, got):
            self.cache.put(str(self.ref.instance_uid), data, self._variant(number))
        return got

    def get(self, numbers: Sequence[int]) -> dict[int, bytes]:
        """``{number: frame bytes}`` of the 1-based frame ``numbers``: cached ones read, the rest retrieved.

        Raises
        ------
        FramesRefused
            The server does not serve frames (the caller reads the whole instance).
        DicomWebResponseError
            A truncated or malformed frames answer (nothing is cached then).
        """
        wanted = sorted({int(n) for n in numbers})
        bad = [n for n in wanted if not 1 <= n <= self.number_of_frames]
        if bad:
            raise InputError(f"frame number {bad[0]} is outside 1..NumberOfFrames={self.number_of_frames}")
        found = {n: self._recent[n] for n in wanted if n in self._recent}
        missing = []
        for number in (n for n in wanted if n not in found):
            data = self._cached(number)
            if data is None:
                missing.append(number)
            else:
                found[number] = data
        if missing:
            if self.refused:
                raise FramesRefused(self.ref.uri)
            size = max(1, min(self.frames_per_request, math.ceil(len(missing) / self.max_workers)))
            groups = [missing[i:i + size] for i in range(0, len(missing), size)]
            for group, fetched in zip(groups, bounded_map(self._fetch, groups, self.max_workers)):
                found.update(zip(group, fetched))
            self.cache.evict(keep=[str(self.ref.instance_uid)])
        self._recent = found
        return found


class RemotePixelSource(PixelSource):
    """Native Pixel Data of a SEG on a server: byte ranges served from its frames (:class:`RemoteFrames`).

    The decoder reads native Pixel Data by byte range
    (:func:`~monai_dicomseg.codec.decode.pixel_bytes`); each range is mapped
    to the frames that hold it. Frames must be byte aligned (8/16 bits, or
    1 bit with ``Rows x Columns`` a multiple of 8). pydicom's read of the
    whole element (``dataset.PixelData``) retrieves every frame.
    """

    def __init__(self, frames: RemoteFrames) -> None:
        length = frames.frame_bytes * frames.number_of_frames
        self._header_bytes = (b"\xe0\x7f\x10\x00" + (b"OB" if int(frames.header.BitsAllocated) <= 8 else b"OW")
                              + b"\x00\x00" + (length + length % 2).to_bytes(4, "little"))
        super().__init__(0, len(self._header_bytes), length + length % 2, redact_url(frames.ref.uri))
        self.frames = frames

    def read_range(self, start: int, stop: int) -> bytearray:
        """Bytes ``[start, stop)`` of the Pixel Data value, from the frames that hold them."""
        if not 0 <= start <= stop <= self.length:
            raise DecodeError(f"{self.name}: Pixel Data byte range {start}..{stop} is outside its value of "
                              f"{self.length} bytes")
        size = self.frames.frame_bytes
        first, last = start // size, min(-(-stop // size), self.frames.number_of_frames)
        got = self.frames.get(range(first + 1, last + 1)) if last > first else {}
        data = b"".join(got[n] for n in range(first + 1, last + 1)) + bytes(self.length % 2)
        return bytearray(data[start - first * size:stop - first * size])

    def _pread_into(self, view: memoryview, position: int) -> int:
        if position < self.value_start:
            chunk = self._header_bytes[position:position + len(view)]
        else:
            offset = position - self.value_start
            chunk = bytes(self.read_range(offset, min(offset + len(view), self.length)))
        view[:len(chunk)] = chunk
        return len(chunk)


class RemoteSegmentation(Segmentation):
    """A tiled SEG on a server whose region reads retrieve only the frames under the region.

    Made by :func:`remote_segmentation`; ``get_total_pixel_matrix`` first
    retrieves (bounded, cached per frame) the frames the region needs, then
    decodes them as any SEG. When the server refuses frames, the whole
    instance is retrieved into the cache once and read from there.
    """

    def get_total_pixel_matrix(self, row_start: "int | None" = None, row_end: "int | None" = None,
                               column_start: "int | None" = None, column_end: "int | None" = None,
                               segment_numbers: "Sequence[int] | None" = None, *args: Any,
                               as_indices: bool = False, **options: Any) -> np.ndarray:
        """As :meth:`Segmentation.get_total_pixel_matrix`; frames retrieved per tile (see the class)."""
        call = (row_start, row_end, column_start, column_end, segment_numbers, *args)
        whole = getattr(self, "_whole", None)
        if whole is None and not self._remote_frames.refused:
            try:
                self._prefetch(row_start, row_end, column_start, column_end, segment_numbers, as_indices)
                return super().get_total_pixel_matrix(*call, as_indices=as_indices, **options)  # type: ignore[misc]  # call holds the 5 region arguments plus *args positionals before as_indices; mypy cannot count a tuple splat
            except FramesRefused:
                pass
        return self.whole_instance().get_total_pixel_matrix(*call, as_indices=as_indices, **options)  # type: ignore[misc]  # call holds the 5 region arguments plus *args positionals before as_indices; mypy cannot count a tuple splat

    def region_frames(self, row_start: "int | None", row_end: "int | None", column_start: "int | None",
                      column_end: "int | None", segment_numbers: "Sequence[int] | None" = None,
                      as_indices: bool = False) -> np.ndarray:
        """1-based numbers of the stored frames a region read decodes (tiles under it, of those segments)."""
        region = standardize_region(row_start, row_end, column_start, column_end,
                                    rows=int(self.TotalPixelMatrixRows), columns=int(self.TotalPixelMatrixColumns),
                                    as_indices=as_indices)
        index = self.get_frame_index()
        mask = tiles_in_region(index.tile_positions, int(self.Rows), int(self.Columns), region)  # type: ignore[arg-type]  # a tiled SEG's frame index always has tile positions (TILED_* layouts only reach this reader)
        if self.segmentation_type is not SegmentationTypeValues.LABELMAP:
            numbers = list(self.segment_numbers) if segment_numbers is None else [int(n) for n in segment_numbers]
            mask &= np.isin(np.asarray(index.segment_numbers), numbers)
        return np.flatnonzero(mask) + 1

    def _prefetch(self, *region: Any) -> None:
        numbers = self.region_frames(*region)
        if numbers.size:
            self._remote_frames.get(numbers.tolist())

    def whole_instance(self) -> Segmentation:
        """The whole instance, retrieved into the cache (once) and read from there."""
        whole = getattr(self, "_whole", None)
        if whole is None:
            frames = self._remote_frames
            path = materialize(frames.ref, cache=frames.cache, expect_seg=True)[0]
            whole = self._whole = segread(path)
        return whole


def _instance_item(ref: DicomWebSeries, cache: InstanceCache) -> tuple[str, dict[str, Any]]:
    """``(SOP Instance UID, WADO-RS metadata)`` of the SEG ``ref`` names (cached; one request the first time)."""
    uid, item = wado_frames.instance_metadata(ref, cache)
    if uid is None or item is None:
        raise InputError(f"the DICOMweb reference {ref.uri} must name one Segmentation instance: add "
                         "/instances/<SOPInstanceUID> (or use a SEG series that holds one instance)")
    return uid, item


def remote_segmentation(source: Any, *, server: Any = None, max_workers: int = DEFAULT_MAX_WORKERS,
                        frames_per_request: int = FRAMES_PER_REQUEST) -> Segmentation:
    """A tiled SEG on a server whose region reads retrieve only the frames under the region.

    Parameters
    ----------
    source
        :class:`~monai_dicomseg.dicomweb.DicomWebSeries` or ``dicomweb+`` URI of
        a SEG instance (or a SEG series of one instance).
    server
        :class:`~monai_dicomseg.dicomweb.DicomWebServer` (default: the one registered for the URL).
    max_workers, frames_per_request
        Requests in flight at once; frames per request.

    Returns
    -------
    Segmentation
        A :class:`RemoteSegmentation`; or the whole instance read from the
        cache (a plain ``Segmentation``) when it is cached already, when this
        process saw the server refuse frames of its encoding, or for 1-bit
        frames not on byte boundaries.

    Raises
    ------
    DicomWebResponseError
        Not a Segmentation.
    InputError
        The reference names several SEG instances.
    """
    ref = as_reference(source, server)
    cache = cache_for(ref.server)  # type: ignore[arg-type]  # as_reference binds a server (server_for never returns None)
    uid, item = _instance_item(ref, cache)
    instance = DicomWebSeries(ref.url, ref.study_uid, ref.series_uid, uid, server=ref.server)
    header = wado_frames.header_from_metadata(item)
    unaligned = int(header.BitsAllocated) == 1 and (int(header.Rows) * int(header.Columns)) % 8
    whole = cache.get(uid)
    if whole is not None or unaligned or wado_frames.frames_refused(*_refusal_key(ref, header)):
        return segread(whole or materialize(instance, cache=cache, expect_seg=True)[0])
    frames = RemoteFrames(instance, header, cache, max_workers, frames_per_request)
    source_ = RemotePixelSource(frames)
    header.file_meta = FileMetaDataset()
    header.file_meta.TransferSyntaxUID = UID(EXPLICIT_VR_LITTLE_ENDIAN)
    header.file_meta.MediaStorageSOPClassUID = header.SOPClassUID
    header.file_meta.MediaStorageSOPInstanceUID = header.SOPInstanceUID
    vr = "OB" if int(header.BitsAllocated) <= 8 else "OW"
    header[_PIXEL_DATA] = RawDataElement(_PIXEL_DATA, vr, source_.length, None, source_.value_start, False, True)
    header.buffer = source_
    seg = RemoteSegmentation.from_dataset(header, copy=False)
    seg._remote_frames = frames
    return seg


# --------------------------------------------------------------------------- slide images

def series_items(ref: DicomWebSeries, cache: InstanceCache) -> list[dict[str, Any]]:
    """WADO-RS metadata of every instance of the series (cached: the manifest and one entry per instance).

    One series metadata request the first time (under the series lock, so
    workers fetch it once); none later.
    """
    def cached() -> "list[dict[str, Any]] | None":
        manifest = cache.manifest(ref.series_uid)
        if not manifest:
            return None
        items = [cache.metadata(entry["uid"]) for entry in manifest["instances"]]
        return None if any(item is None for item in items) else items  # type: ignore[return-value]  # no item is None on this branch (list[dict | None] narrowed by any())

    found = cached()
    if found is not None:
        return found
    with cache.lock(ref.series_uid):
        found = cached()
        if found is not None:
            return found
        items = series_metadata(ref)
        for item in items:
            cache.put_metadata(str(json_value(item, "00080018")), item)
        cache.put_manifest(ref.series_uid, manifest_from_metadata(ref, items))
    return items


class _LevelTiles:
    """The tiles of one image level: positions, native RGB frames (per tile) or the whole instance."""

    def __init__(self, ref: DicomWebSeries, header: Dataset, cache: InstanceCache, max_workers: int,
                 frames_per_request: int) -> None:
        geometry = slide_geometry(header)
        self.positions = source_tile_positions(header, geometry) - 1  # type: ignore[arg-type]  # a WSI level header (VL Whole Slide Microscopy) always has a slide geometry; 0-based top-left (row, column)
        if len(np.unique(self.positions, axis=0)) != len(self.positions):
            raise UnsupportedError(
                f"slide level {header.SOPInstanceUID} holds several focal planes or optical paths "
                f"({len(self.positions)} frames for {len(np.unique(self.positions, axis=0))} tile positions); "
                "only single-plane, single-path levels are read from DICOMweb")
        self.rows, self.columns = int(header.TotalPixelMatrixRows), int(header.TotalPixelMatrixColumns)
        self.tile_rows, self.tile_columns = int(header.Rows), int(header.Columns)
        self.header = header
        self.frames = RemoteFrames(ref, header, cache, max_workers, frames_per_request)
        self.native_rgb = (str(header.get("PhotometricInterpretation", "")) == "RGB"
                           and int(header.get("SamplesPerPixel", 1)) == 3 and int(header.BitsAllocated) == 8)
        self._whole: "Dataset | None" = None

    def tiles(self, numbers: list[int]) -> dict[int, np.ndarray]:
        """``{number: (tile_rows, tile_columns, 3) uint8}`` of the 1-based frame ``numbers``."""
        if self.native_rgb and self._whole is None and not self.frames.refused:
            try:
                return {n: self._rgb(data) for n, data in self.frames.get(numbers).items()}
            except FramesRefused:
                pass
        return {n: self._whole_frame(n) for n in numbers}

    def _rgb(self, data: bytes) -> np.ndarray:
        pixels = np.frombuffer(data, np.uint8, count=self.tile_rows * self.tile_columns * 3)
        if int(self.header.get("PlanarConfiguration", 0) or 0):
            return pixels.reshape(3, self.tile_rows, self.tile_columns).transpose(1, 2, 0)
        return pixels.reshape(self.tile_rows, self.tile_columns, 3)

    def _whole_frame(self, number: int) -> np.ndarray:
        import pydicom
        from pydicom.pixels import pixel_array

        if self._whole is None:
            self._whole = pydicom.dcmread(materialize(self.frames.ref, cache=self.frames.cache)[0])
        frame = pixel_array(self._whole, index=number - 1)
        if frame.ndim == 2:  # monochrome: the grey value in each channel (as an RGB reader shows it)
            frame = np.repeat(frame[..., None], 3, axis=-1)
        return np.asarray(frame, np.uint8)


class DicomWebSlide:
    """A DICOM WSI on a DICOMweb server: its levels (headers from WADO-RS metadata) and RGB patches by tile.

    Parameters
    ----------
    source
        :class:`~monai_dicomseg.dicomweb.DicomWebSeries` or ``dicomweb+`` URI of
        the WSI series (or of one of its instances: its series is read).
    server
        :class:`~monai_dicomseg.dicomweb.DicomWebServer` (default: the one registered for the URL).
    max_workers, frames_per_request
        Requests in flight at once; frames per request.

    Attributes
    ----------
    image
        The :class:`~monai_dicomseg.slides.SlideImage` of the levels (what
        :class:`~monai_dicomseg.slides.SlideLabels` pairs a SEG with).
    """

    def __init__(self, source: Any, *, server: Any = None, max_workers: int = DEFAULT_MAX_WORKERS,
                 frames_per_request: int = FRAMES_PER_REQUEST) -> None:
        ref = as_reference(source, server)
        self.ref = ref.series()
        cache = cache_for(ref.server)  # type: ignore[arg-type]  # as_reference binds a server (server_for never returns None)
        headers = [wado_frames.header_from_metadata(item) for item in series_items(self.ref, cache)]
        self.image = SlideImage(headers)
        by_uid = {str(h.SOPInstanceUID): h for h in headers}
        self._levels = [
            _LevelTiles(DicomWebSeries(ref.url, ref.study_uid, ref.series_uid, plane.sop_instance_uid,
                                       server=ref.server), by_uid[plane.sop_instance_uid], cache,
                        max_workers, frames_per_request)
            for plane in self.image.levels]
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def level_frames(self, location: Sequence[int], size: Sequence[int], level: int = 0) -> list[int]:
        """1-based frame numbers of the level's tiles under the patch (what :meth:`get_patch` retrieves)."""
        tiles = self._levels[self.image.levels.index(self.image.level(level))]
        region = self._region(location, size, level, tiles)
        if region is None:
            return []
        mask = tiles_in_region(tiles.positions + 1, tiles.tile_rows, tiles.tile_columns, region)
        return (np.flatnonzero(mask) + 1).tolist()

    def _region(self, location: Sequence[int], size: Sequence[int], level: int,
                tiles: _LevelTiles) -> "Region | None":
        row, column, height, width = level_region(location, size, self.image.downsample(level))
        r0, r1 = max(row, 0), min(row + height, tiles.rows)
        c0, c1 = max(column, 0), min(column + width, tiles.columns)
        return Region(r0, r1, c0, c1) if r0 < r1 and c0 < c1 else None

    def get_patch(self, location: Sequence[int], size: Sequence[int], level: int = 0) -> np.ndarray:
        """The RGB patch ``(location, size, level)`` in MONAI ``WSIReader`` terms.

        Returns
        -------
        numpy.ndarray
            ``(3, H, W)`` uint8, channel first; 0 outside the total pixel matrix.

        Raises
        ------
        InputError
            Bad level, size, or a location off the level's pixel grid
            (:func:`~monai_dicomseg.slides.geometry.level_region`).
        """
        tiles = self._levels[self.image.levels.index(self.image.level(level))]
        row, column, height, width = level_region(location, size, self.image.downsample(level))
        out = np.zeros((height, width, 3), np.uint8)
        region = self._region(location, size, level, tiles)
        numbers = self.level_frames(location, size, level)
        with self._lock:
            decoded = tiles.tiles(numbers) if numbers else {}
        for number, tile in decoded.items():
            top, left = tiles.positions[number - 1]
            r0, r1 = max(region.row_start, top), min(region.row_end, top + tiles.tile_rows)  # type: ignore[union-attr]  # region is None only for an empty region, which has no frames: the loop does not run
            c0, c1 = max(region.column_start, left), min(region.column_end, left + tiles.tile_columns)  # type: ignore[union-attr]  # region is None only for an empty region, which has no frames: the loop does not run
            out[r0 - row:r1 - row, c0 - column:c1 - column] = tile[r0 - top:r1 - top, c0 - left:c1 - left]
        return np.ascontiguousarray(np.moveaxis(out, -1, 0))

