"""Retrieve only the frames of the selected segments of a SEG (WADO-RS ``/frames/``, PS3.18 10.4.1.1.3).

A BINARY or FRACTIONAL SEG stores one frame per segment and plane position
(PS3.3 C.8.20.3: each item of the Per-frame Functional Groups Sequence names its
segment in SegmentIdentificationSequence > ReferencedSegmentNumber). When a
loader asks for some segments only, :func:`materialize_segments`:

1. reads the instance's WADO-RS metadata (DICOM JSON; the series metadata that
   builds the manifest is reused and each SEG instance's object is cached as
   its own verified entry, so a second epoch plans without a request) and
   makes a header-only ``pydicom.Dataset`` of it (:func:`header_from_metadata`:
   every ``BulkDataURI`` element is dropped: Pixel Data, and, rarely, another
   binary element such as an ICC profile, which the loader never reads);
2. asks the loader's own selection code for the segment numbers (the
   ``segments`` callable; nothing here duplicates the selection rules) and
   lists their frames (:func:`plan_frames`);
3. retrieves those frames as native Explicit VR Little Endian
   (``Accept: multipart/related; type="application/octet-stream";
   transfer-syntax=1.2.840.10008.1.2.1``): a compressed (RLE, JPEG-LS) SEG is
   transcoded by the server, so the local instance never needs an
   encapsulation or offset table of its own. A 1-bit BINARY frame is expected
   on its own, starting at a byte boundary (``ceil(Rows x Columns / 8)``
   bytes, padding bits after the last pixel); frames are unpacked and re-packed
   contiguously (PS3.5 8.1.1) so Rows x Columns need not be a multiple of 8;
4. writes a valid partial SEG into the cache under the variant
   ``segments-<digest of the segment numbers>`` of the SOP Instance UID (never
   taken for the whole instance; verified on read and evictable like it): the
   same header, PerFrameFunctionalGroupsSequence reduced to those frames (in
   their order), NumberOfFrames and Pixel Data to match. So that the SEG's own
   grid (which spans the plane positions its frames occupy) stays what the
   whole instance gives, a plane position that only left-out segments occupy
   keeps one **empty** frame of the first selected segment (all zero: what an
   omitted frame means anyway, PS3.3 C.8.20.2); those are made here, never
   retrieved.

The whole instance is retrieved instead (:func:`~monai_dicomseg.dicomweb.retrieve.materialize`)
when it is already cached (then no request at all), for a LABELMAP SEG (its
frames hold every segment), when the selection keeps every segment that has
frames, when frames cannot be addressed by segment (TILED_FULL, a frame without
its own segment identification or plane position), and when the server does
not serve frames: a 4xx other than 401/403, a 501, or an answer that is not
``multipart/related``. That is remembered per server and pixel encoding
(BitsAllocated, and AvailableTransferSyntaxUID when the metadata lists it) for
the life of the process, so the refused request is made once. Orthanc 1.x, for one, refuses 1-bit frames (HTTP 400)
and serves 8-bit ones, native or transcoded from RLE / JPEG-LS.

A frames answer with fewer parts than frames asked for, or a part of the wrong
length, is a :class:`~monai_dicomseg.errors.DicomWebResponseError` naming the URL
(redacted) and the SOP Instance UID; nothing is cached then.
"""
from __future__ import annotations

import copy
import hashlib
import io
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import UID

from monai_dicomseg.codec.bitpack import repack_frames
from monai_dicomseg.codec.transfer_syntax import EXPLICIT_VR_LITTLE_ENDIAN, NATIVE_FRAME_MEDIA_TYPES
from monai_dicomseg.dicomweb.cache import InstanceCache
from monai_dicomseg.dicomweb.reference import DicomWebSeries
from monai_dicomseg.dicomweb.retrieve import (
    SEG_SOP_CLASSES, _check_kind, _server, as_reference, cache_for, json_value, manifest_from_metadata, materialize,
    series_metadata,
)
from monai_dicomseg.dicomweb.session import translate_errors
from monai_dicomseg.enums import SegmentationTypeValues
from monai_dicomseg.errors import DicomWebResponseError

_ONE_SEGMENT_PER_FRAME = (SegmentationTypeValues.BINARY.value, SegmentationTypeValues.FRACTIONAL.value)
"""Segmentation Types whose frames each hold one segment (PS3.3 C.8.20.2), so frames can be picked by segment."""

__all__ = ["materialize_segments", "header_from_metadata", "plan_frames", "variant_name", "FramePlan",
           "SegmentsCallable", "FRAME_MEDIA_TYPES", "frames_refused", "partial_instance", "remember_refusal",
           "fetch_frames", "instance_metadata"]

SegmentsCallable = Callable[[Dataset], "Sequence[int] | None"]
"""Header-only SEG ``Dataset`` -> the segment numbers a loader keeps (None: all of them)."""

FRAME_MEDIA_TYPES = NATIVE_FRAME_MEDIA_TYPES
"""What the frames are asked for as: native, Explicit VR Little Endian (PS3.18 8.7.3.5.2)."""

_MAX_LIST_CHARS = 1500  # frame list characters per request: URLs stay well below common 8 KiB limits
_REFUSED: set[tuple[str, int, str]] = set()
_REFUSED_LOCK = threading.Lock()
_PER_FRAME = Tag(0x52009230)  # PerFrameFunctionalGroupsSequence
_NUMBER_OF_FRAMES = Tag(0x00280008)
_FORMAT = "v1"  # part of the variant digest: a change of the partial layout makes new cache entries


def frames_refused(server_url: str, bits_allocated: int, transfer_syntax: str = "") -> bool:
    """True when this process saw ``server_url`` refuse frames of this pixel encoding."""
    return (server_url, int(bits_allocated), transfer_syntax) in _REFUSED


def remember_refusal(server_url: str, bits_allocated: int, transfer_syntax: str = "") -> None:
    """Remember (for the process) that ``server_url`` refuses frames of this pixel encoding."""
    with _REFUSED_LOCK:
        _REFUSED.add((server_url, int(bits_allocated), transfer_syntax))


# --------------------------------------------------------------------------- header and plan

def _drop_bulk(item: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for tag, element in item.items():
        if not isinstance(element, dict) or "BulkDataURI" in element:
            continue
        if element.get("vr") == "SQ" and element.get("Value"):
            element = {**element, "Value": [_drop_bulk(x) if isinstance(x, dict) else x for x in element["Value"]]}
        out[tag] = element
    return out


_PER_FRAME_TAG = "52009230"  # PerFrameFunctionalGroupsSequence


def header_from_metadata(item: dict[str, Any], per_frame: bool = True) -> Dataset:
    """A header-only ``Dataset`` from one instance's WADO-RS metadata (DICOM JSON, PS3.18 F.2).

    Elements given by ``BulkDataURI`` (Pixel Data; any other binary element,
    e.g. an ICC profile) are dropped, never fetched: the loader reads none of
    them and the partial instance is a cache artefact, not a copy to share.
    ``per_frame=False`` also leaves out the Per-frame Functional Groups (the
    bulk of a large SEG's header): enough to resolve a segment selection.
    """
    item = item if per_frame else {tag: value for tag, value in item.items() if tag.upper() != _PER_FRAME_TAG}
    return Dataset.from_json(_drop_bulk(item))


def variant_name(segment_numbers: Sequence[int]) -> str:
    """Cache variant of the partial SEG of ``segment_numbers``: ``segments-<digest>``."""
    text = f"{_FORMAT}:" + ",".join(str(n) for n in sorted({int(n) for n in segment_numbers}))
    return "segments-" + hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class FramePlan:
    """Which frames a partial SEG holds.

    Attributes
    ----------
    segment_numbers
        The selected segment numbers, ascending.
    entries
        One ``(frame number, segment number or None)`` per frame of the partial
        SEG, in the original order: None takes the original frame (retrieved);
        a number makes an empty frame of that segment at that frame's position.
    """

    segment_numbers: tuple[int, ...]
    entries: tuple[tuple[int, "int | None"], ...]

    @property
    def retrieved(self) -> list[int]:
        """1-based frame numbers to retrieve."""
        return [number for number, made in self.entries if made is None]

    @property
    def variant(self) -> str:
        """Cache variant name (:func:`variant_name` of the segment numbers)."""
        return variant_name(self.segment_numbers)


def _position(item: Any, shared: Any) -> "tuple[str, ...] | None":
    for group in (item, shared):
        for keyword in ("PlanePositionSequence", "PlanePositionSlideSequence"):
            seq = group.get(keyword) if group is not None else None
            if seq:
                return (keyword, *(f"{element.tag}={element.value}" for element in seq[0]))
    return None


def _frame_segments(header: Dataset) -> "list[tuple[int, tuple[str, ...]]] | None":
    """``(segment number, position key)`` per frame, or None when frames are not addressable by segment."""
    items = header.get("PerFrameFunctionalGroupsSequence")
    if not items or len(items) != int(header.get("NumberOfFrames", 1) or 1):
        return None
    shared = (header.get("SharedFunctionalGroupsSequence") or [None])[0]
    frames = []
    for item in items:
        ident = item.get("SegmentIdentificationSequence")
        position = _position(item, shared)
        if not ident or "ReferencedSegmentNumber" not in ident[0] or position is None:
            return None
        frames.append((int(ident[0].ReferencedSegmentNumber), position))
    return frames


def _json_items(element: Any) -> list[dict[str, Any]]:
    return list((element or {}).get("Value") or []) if isinstance(element, dict) else []


def frame_segments_from_json(item: dict[str, Any]) -> "list[tuple[int, tuple[str, ...]]] | None":
    """:func:`_frame_segments` read straight from an instance's DICOM JSON (PS3.18 F.2).

    The per-frame groups of a large SEG are thousands of nested items;
    pydicom's ``Dataset.from_json`` of all of them cost more than the frames
    saved. Only the two attributes the plan needs are read here: Referenced
    Segment Number and the plane position (PS3.3 C.7.6.16.2.3 / C.8.12.6.1),
    per frame or shared.
    """
    per_frame = _json_items(item.get(_PER_FRAME_TAG))
    try:
        count = int(json_value(item, "00280008", 1) or 1)
    except (TypeError, ValueError):
        return None
    if not per_frame or len(per_frame) != count:
        return None
    shared = (_json_items(item.get("52009229")) or [{}])[0]
    frames = []
    for group in per_frame:
        ident = _json_items(group.get("0062000A"))
        number = json_value(ident[0], "0062000B") if ident else None
        position = None
        for holder in (group, shared):
            for tag in ("00209113", "0048021A"):  # PlanePositionSequence, PlanePositionSlideSequence
                values = _json_items(holder.get(tag))
                if values and position is None:
                    position = (tag, *sorted(f"{key}={value.get('Value')}" for key, value in values[0].items()))
        if number is None or position is None:
            return None
        frames.append((int(number), position))
    return frames


def plan_frames(header: Dataset, segment_numbers: "Sequence[int] | None",
                frames: "list[tuple[int, tuple[str, ...]]] | None" = None) -> "FramePlan | None":
    """The frames a partial SEG of ``segment_numbers`` holds, or None when the whole instance is the answer.

    None for: no selection, a SEG that is not BINARY/FRACTIONAL (a LABELMAP
    frame holds every segment), native pixels that are not 1 or 8 bits,
    frames not addressable by segment (PS3.3 C.8.20.3), and a selection that
    keeps every frame.
    """
    if segment_numbers is None or str(header.get("SegmentationType", "")) not in _ONE_SEGMENT_PER_FRAME:
        return None
    if int(header.get("BitsAllocated", 0) or 0) not in (1, 8) or int(header.get("SamplesPerPixel", 1) or 1) != 1:
        return None
    frames = frames if frames is not None else _frame_segments(header)
    if frames is None:
        return None
    selected = tuple(sorted({int(n) for n in segment_numbers}))
    chosen = set(selected)
    if not selected or all(segment in chosen for segment, _ in frames):
        return None
    covered = {position for segment, position in frames if segment in chosen}
    entries: list[tuple[int, "int | None"]] = []
    for number, (segment, position) in enumerate(frames, start=1):
        if segment in chosen:
            entries.append((number, None))
        elif position not in covered:
            entries.append((number, selected[0]))
            covered.add(position)
    return FramePlan(selected, tuple(entries))


# --------------------------------------------------------------------------- retrieval

FRAMES_MIN_PIXEL_BYTES = 8 * 1024**2
"""Below this much (native) Pixel Data, a SEG is retrieved whole even with a selection. On loopback, one
segment of a 3.4 MB FRACTIONAL SEG took 0.16-0.20 s whole and 0.26-0.32 s by frames (the metadata request,
planning and building the partial SEG cost more than the bytes saved); at 19.5 MB both took ~0.7 s and the
frames left a quarter of the bytes in the cache; on a real network the bytes saved count more. Tests set it
to 0."""


def _stored_pixel_bytes(item: dict[str, Any]) -> int:
    """Native Pixel Data size from the instance metadata: frames x Rows x Columns x BitsAllocated / 8."""
    try:
        frames = int(json_value(item, "00280008", 1) or 1)
        pixels = int(json_value(item, "00280010", 0) or 0) * int(json_value(item, "00280011", 0) or 0)
        return (frames * pixels * int(json_value(item, "00280100", 8) or 8) + 7) // 8
    except (TypeError, ValueError):
        return 0


def _frame_bytes(header: Dataset) -> int:
    pixels = int(header.Rows) * int(header.Columns) * int(header.get("SamplesPerPixel", 1) or 1)
    return (pixels * int(header.BitsAllocated) + 7) // 8


def _chunks(numbers: list[int]) -> list[list[int]]:
    chunks: list[list[int]] = [[]]
    size = 0
    for number in numbers:
        if chunks[-1] and size + len(str(number)) + 1 > _MAX_LIST_CHARS:
            chunks.append([])
            size = 0
        chunks[-1].append(number)
        size += len(str(number)) + 1
    return [chunk for chunk in chunks if chunk]


def _get_parts(ref: DicomWebSeries, uid: str, numbers: list[int], url: str) -> "list[bytes] | None":
    """The frame parts of one request, or None when the server does not serve frames."""
    import requests

    server = _server(ref)
    with translate_errors(server, url, uid, "retrieve frames"):
        try:
            return server.client().retrieve_instance_frames(
                ref.study_uid, ref.series_uid, uid, numbers, media_types=FRAME_MEDIA_TYPES)
        except requests.HTTPError as error:
            status = error.response.status_code if error.response is not None else 0
            if status == 501 or (400 <= status < 500 and status not in (401, 403)):
                return None
            raise
        except ValueError as error:  # dicomweb-client: the answer is not multipart/related
            if "media type" in str(error).lower():
                return None
            raise


def _check_parts(parts: list[bytes], numbers: list[int], expected: int, url: str, uid: str) -> None:
    from monai_dicomseg.dicomweb.reference import redact_url

    if len(parts) != len(numbers):
        raise DicomWebResponseError(
            f"truncated response from the DICOMweb server: retrieve frames {redact_url(url)} (SOPInstanceUID "
            f"{uid}) returned {len(parts)} of {len(numbers)} frames")
    for number, part in zip(numbers, parts):
        if len(part) != expected and not (expected % 2 and len(part) == expected + 1):
            raise DicomWebResponseError(
                f"truncated or malformed response from the DICOMweb server: retrieve frames {redact_url(url)} "
                f"(SOPInstanceUID {uid}): frame {number} has {len(part)} bytes, Rows x Columns x BitsAllocated "
                f"needs {expected}")


def _fetch_frames(ref: DicomWebSeries, uid: str, numbers: list[int], header: Dataset) -> "list[bytes] | None":
    """The native frames ``numbers`` (1-based) of instance ``uid``; None when the server refuses frames."""
    expected = _frame_bytes(header)
    frames: list[bytes] = []
    for chunk in _chunks(numbers):
        url = f"{ref.series_url}/instances/{uid}/frames/{','.join(str(n) for n in chunk)}"
        parts = _get_parts(ref, uid, chunk, url)
        if parts is None:
            return None
        _check_parts(parts, chunk, expected, url, uid)
        frames.extend(part[:expected] for part in parts)
    return frames


# --------------------------------------------------------------------------- the partial instance

def _pixel_data(header: Dataset, plan: FramePlan, frames: list[bytes]) -> bytes:
    """Native Pixel Data of the partial SEG: retrieved frames and empty ones, 1-bit frames re-packed."""
    size = _frame_bytes(header)
    source = iter(frames)
    ordered = [next(source) if made is None else bytes(size) for _, made in plan.entries]
    if int(header.BitsAllocated) == 1:
        pixels = int(header.Rows) * int(header.Columns) * int(header.get("SamplesPerPixel", 1) or 1)
        data = repack_frames(ordered, pixels)
    else:
        data = b"".join(ordered)
    return data + b"\0" if len(data) % 2 else data


def _made_item(item: Dataset, segment: int, header: Dataset) -> Dataset:
    """A copy of a per-frame item naming ``segment`` (also in DimensionIndexValues, PS3.3 C.7.6.17)."""
    made = copy.deepcopy(item)
    made.SegmentIdentificationSequence[0].ReferencedSegmentNumber = segment
    pointers = [getattr(d, "DimensionIndexPointer", None) for d in header.get("DimensionIndexSequence", [])]
    content = made.get("FrameContentSequence")
    if content and "DimensionIndexValues" in content[0] and 0x0062000B in pointers:
        values = list(np.atleast_1d(content[0].DimensionIndexValues))
        index = pointers.index(0x0062000B)
        if index < len(values):
            values[index] = segment
            content[0].DimensionIndexValues = [int(v) for v in values] if len(values) > 1 else int(values[0])
    return made


def partial_instance(header: Dataset, plan: FramePlan, frames: list[bytes],
                     items: "Callable[[int], Dataset] | None" = None) -> bytes:
    """The Part 10 bytes of the partial SEG (Explicit VR Little Endian, native Pixel Data).

    Parameters
    ----------
    header
        Header-only SEG (:func:`header_from_metadata`); not changed.
    plan
        :func:`plan_frames`.
    frames
        The retrieved frames, in ``plan.retrieved`` order, each ``_frame_bytes`` long.
    items
        ``items(frame number)``: that frame's Per-frame Functional Groups item
        (default: from ``header.PerFrameFunctionalGroupsSequence``).
    """
    dataset = Dataset()  # header's elements shared, not deep-copied (the per-frame items are most of it)
    for tag in header.keys():
        if tag not in (_PER_FRAME, _NUMBER_OF_FRAMES):
            dataset[tag] = header[tag]
    if items is None:
        sequence = header.PerFrameFunctionalGroupsSequence
        items = lambda number: sequence[number - 1]  # noqa: E731
    dataset.PerFrameFunctionalGroupsSequence = [
        items(number) if made is None else _made_item(items(number), made, header)
        for number, made in plan.entries]
    dataset.NumberOfFrames = len(plan.entries)
    dataset.PixelData = _pixel_data(header, plan, frames)
    dataset["PixelData"].VR = "OB"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = header.SOPClassUID
    meta.MediaStorageSOPInstanceUID = header.SOPInstanceUID
    meta.TransferSyntaxUID = UID(EXPLICIT_VR_LITTLE_ENDIAN)
    dataset.file_meta = meta
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


# --------------------------------------------------------------------------- entry point

def _instance_metadata(ref: DicomWebSeries, cache: InstanceCache) -> "tuple[str | None, dict[str, Any] | None]":
    """``(SOP Instance UID, its metadata)`` of the SEG ``ref`` names (or its series' only instance).

    Reads the cache; else one series metadata request, whose manifest and SEG
    instance objects are cached. ``(None, None)``: not one known instance (the
    whole-series path reports why).
    """
    manifest = cache.manifest(ref.series_uid)
    found = _known(ref, cache, manifest)
    if found is not None:
        return found
    with cache.lock(ref.series_uid):
        found = _known(ref, cache, cache.manifest(ref.series_uid))  # another worker may have fetched it
        if found is not None:
            return found
        items = series_metadata(ref)
        manifest = manifest_from_metadata(ref, items)
        for each in items:
            if str(json_value(each, "00080016", "")) in SEG_SOP_CLASSES:
                cache.put_metadata(str(json_value(each, "00080018")), each)
        cache.put_manifest(ref.series_uid, manifest)
    uid = ref.instance_uid or _only_instance(manifest)
    if uid is None or uid not in {i["uid"] for i in manifest["instances"]}:
        return None, None
    _check_kind(ref, manifest, [uid], True)
    return uid, cache.metadata(uid)


def _known(ref: DicomWebSeries, cache: InstanceCache,
           manifest: "dict[str, Any] | None") -> "tuple[str, dict[str, Any]] | None":
    """``(uid, metadata)`` from the cache alone (manifest and metadata entry both present), else None."""
    uid = ref.instance_uid or _only_instance(manifest)
    if manifest is None or uid is None or uid not in {i["uid"] for i in manifest["instances"]}:
        return None
    item = cache.metadata(uid)
    if item is None:
        return None
    _check_kind(ref, manifest, [uid], True)
    return uid, item


def _cached_whole(ref: DicomWebSeries, cache: InstanceCache) -> "str | None":
    """The cached whole instance when the cached manifest lists it (no metadata needed, no request)."""
    manifest = cache.manifest(ref.series_uid)
    uid = ref.instance_uid or _only_instance(manifest)
    if manifest is None or uid is None or uid not in {i["uid"] for i in manifest["instances"]}:
        return None
    path = cache.get(uid)
    if path is not None:
        _check_kind(ref, manifest, [uid], True)
    return path


def _only_instance(manifest: "dict[str, Any] | None") -> "str | None":
    if not manifest or len(manifest["instances"]) != 1:
        return None
    return str(manifest["instances"][0]["uid"])


def _whole(ref: DicomWebSeries, uid: str, cache: InstanceCache) -> str:
    instance = DicomWebSeries(ref.url, ref.study_uid, ref.series_uid, uid, server=ref.server)
    return materialize(instance, cache=cache, expect_seg=True)[0]


def _partial(ref: DicomWebSeries, uid: str, cache: InstanceCache, header: Dataset, plan: FramePlan,
             items: "Callable[[int], Dataset] | None" = None) -> "str | None":
    """Path of the cached partial SEG (retrieved now if missing); None when the server refuses frames."""
    refused_key = (ref.url, int(header.BitsAllocated), str(header.get("AvailableTransferSyntaxUID", "") or ""))
    if refused_key in _REFUSED:
        return None
    path = cache.get(uid, plan.variant)
    if path is not None:
        return path
    with cache.lock(uid):
        path = cache.get(uid, plan.variant) or cache.get(uid)
        if path is not None:
            return path
        frames = _fetch_frames(ref, uid, plan.retrieved, header) if plan.retrieved else []
        if frames is None:
            with _REFUSED_LOCK:
                _REFUSED.add(refused_key)
            return None
        path = cache.put(uid, partial_instance(header, plan, frames, items), plan.variant)
    cache.evict(keep=[uid])
    return path


def materialize_segments(
    source: Any,
    segments: SegmentsCallable,
    *,
    server: Any = None,
    cache: "InstanceCache | None" = None,
) -> "str | None":
    """A local SEG file holding (at least) the frames of the segments ``segments`` selects.

    Parameters
    ----------
    source
        :class:`~monai_dicomseg.dicomweb.reference.DicomWebSeries` or ``dicomweb+``
        URI naming a SEG instance, or a SEG series of one instance.
    segments
        Called with the header-only SEG ``Dataset``; returns the segment
        numbers the loader keeps, or None for all (the loader's own selection
        code, e.g. ``SegmentSelection.plan(segment_table(header))``).
    server, cache
        As for :func:`~monai_dicomseg.dicomweb.retrieve.materialize`.

    Returns
    -------
    str or None
        The cached whole instance when it is cached or needed (see the module
        docstring), else the cached partial SEG. None when ``source`` does not
        name one SEG instance (the caller's whole-series path then reports it).

    Raises
    ------
    DicomWebResponseError
        Not a Segmentation; a truncated frames answer (naming URL and UID).
    DicomWebError
        Connection, credentials, not found (as for ``materialize``).
    """
    ref = as_reference(source, server)
    cache = cache if cache is not None else cache_for(_server(ref))
    whole = _cached_whole(ref, cache)
    if whole is not None:
        return whole
    uid, item = _instance_metadata(ref, cache)
    if uid is None:
        return None
    whole = cache.get(uid)
    if whole is not None:
        return whole
    if item is None:  # pragma: no cover - evicted between storing and reading
        return _whole(ref, uid, cache)
    numbers = segments(header_from_metadata(item, per_frame=False))  # the loader's own selection code
    if numbers is not None and _stored_pixel_bytes(item) < FRAMES_MIN_PIXEL_BYTES:
        return _whole(ref, uid, cache)  # small: one request beats metadata parsing + frames requests
    if numbers is not None and str(json_value(item, "00620001", "")) in _ONE_SEGMENT_PER_FRAME:
        path = cache.get(uid, variant_name(numbers))  # later epochs: no full header, no request
        if path is not None:
            return path
    header = header_from_metadata(item, per_frame=False)  # per-frame items: only those the partial SEG holds
    per_frame = _json_items(item.get(_PER_FRAME_TAG))
    plan = plan_frames(header, numbers, frame_segments_from_json(item))
    items = lambda number: Dataset.from_json(_drop_bulk(per_frame[number - 1]))  # noqa: E731
    path = _partial(ref, uid, cache, header, plan, items) if plan is not None else None
    return path if path is not None else _whole(ref, uid, cache)


def fetch_frames(ref: DicomWebSeries, uid: str, numbers: list[int], header: Dataset) -> "list[bytes] | None":
    """The native frames ``numbers`` (1-based) of instance ``uid`` (checked, URL-length chunks); None: refused.

    For other layers (slides/remote.py retrieves image and SEG tiles per patch with it).
    """
    return _fetch_frames(ref, uid, numbers, header)


def instance_metadata(ref: DicomWebSeries, cache: InstanceCache) -> "tuple[str | None, dict[str, Any] | None]":
    """``(SOP Instance UID, metadata)`` of the SEG ``ref`` names, from the cache or one series metadata request."""
    return _instance_metadata(ref, cache)
