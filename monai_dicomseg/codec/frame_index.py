"""Columnar index of the frames of a Segmentation (one row per stored frame).

The meaning of each stored frame of a SEG is described by its item of the
Per-Frame Functional Groups Sequence, falling back to the Shared Functional
Groups Sequence (PS3.3 C.7.6.16): the segment it belongs to (Segment
Identification, C.8.20.3), its dimension index values (Frame Content,
C.7.6.16.2.2 and Multi-frame Dimension, C.7.6.17), its plane position (Plane
Position (Patient) C.7.6.16.2.3 or Plane Position (Slide) C.8.12.6.1) and the
source frames it was derived from (Derivation Image, C.7.6.16.2.6).

:func:`build_frame_index` collects these into numpy arrays. When the
Per-Frame Functional Groups Sequence is still an undecoded pydicom
``RawDataElement`` (little endian), its bytes are scanned directly with
:mod:`monai_dicomseg.codec.element_scan` instead of building one
``pydicom.Dataset`` per frame. ``TILED_FULL`` images have no per-frame items;
their tile positions are implied by the frame order (C.7.6.17.3).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.datadict import keyword_for_tag
from pydicom.multival import MultiValue

from monai_dicomseg.codec.element_scan import ScanSpec, scan_sequence
from monai_dicomseg.enums import SegmentationTypeValues, SegSOPClass
from monai_dicomseg.errors import DecodeError, DicomSegError

__all__ = ["FrameIndex", "build_frame_index", "FUNCTIONAL_GROUPS_SPEC"]

_SOURCE_IMAGE = ScanSpec({
    "ReferencedSOPInstanceUID": "UI",
    "ReferencedFrameNumber": "IS",
    "SpatialLocationsPreserved": "CS",
})

FUNCTIONAL_GROUPS_SPEC = ScanSpec({
    "FrameContentSequence": ScanSpec({"DimensionIndexValues": "UL"}),
    "SegmentIdentificationSequence": ScanSpec({"ReferencedSegmentNumber": "US"}),
    "PlanePositionSequence": ScanSpec({"ImagePositionPatient": "DS"}),
    "PlanePositionSlideSequence": ScanSpec({
        "XOffsetInSlideCoordinateSystem": "DS",
        "YOffsetInSlideCoordinateSystem": "DS",
        "ZOffsetInSlideCoordinateSystem": "DS",
        "ColumnPositionInTotalImagePixelMatrix": "SL",
        "RowPositionInTotalImagePixelMatrix": "SL",
    }),
    "PlaneOrientationSequence": ScanSpec({"ImageOrientationPatient": "DS"}),
    "PixelMeasuresSequence": ScanSpec({"PixelSpacing": "DS", "SpacingBetweenSlices": "DS"}),
    "DerivationImageSequence": ScanSpec({"SourceImageSequence": _SOURCE_IMAGE}),
})
"""Attributes kept from each functional groups item (PS3.3 C.7.6.16)."""


@dataclass
class FrameIndex:
    """What each stored frame of a SEG means, as parallel arrays.

    Attributes
    ----------
    number_of_frames
        ``F``, the number of stored frames.
    segment_numbers
        ``(F,) int64`` Referenced Segment Number of each frame; ``0`` for
        LABELMAP (frames hold every segment).
    dimension_index_pointers
        Keywords of the Dimension Index Pointers, in Dimension Index
        Sequence order.
    dimension_index_values
        ``(F, D) int64`` Dimension Index Values of each frame (1-based).
    image_positions
        ``(F, 3) float64`` ImagePositionPatient (PATIENT) or X/Y/Z offsets in
        the slide coordinate system (SLIDE); ``None`` when absent.
    tile_positions
        ``(F, 2) int64`` (RowPositionInTotalImagePixelMatrix,
        ColumnPositionInTotalImagePixelMatrix), 1-based; ``None`` when absent.
    image_orientation
        ``(6,) float64`` shared orientation, ``None`` if absent or varying.
    pixel_spacing
        ``(2,) float64`` shared PixelSpacing, ``None`` if absent or varying.
    spacing_between_slices
        Shared SpacingBetweenSlices, ``None`` if absent or varying.
    ref_frame
        ``(K,) int64`` 0-based stored frame index of each derivation reference
        (a frame may have several or none).
    ref_sop_instance_uid
        ``(K,) object`` Referenced SOP Instance UID of each reference.
    ref_frame_number
        ``(K,) int64`` Referenced Frame Number (0 when absent).
    ref_spatial_locations_preserved
        ``(K,) object`` SpatialLocationsPreserved value or ``None``.
    is_tiled_full
        Whether DimensionOrganizationType is TILED_FULL (positions implied).
    """

    number_of_frames: int
    segment_numbers: np.ndarray
    dimension_index_pointers: list[str]
    dimension_index_values: np.ndarray
    image_positions: np.ndarray | None
    tile_positions: np.ndarray | None
    image_orientation: np.ndarray | None
    pixel_spacing: np.ndarray | None
    spacing_between_slices: float | None
    ref_frame: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ref_sop_instance_uid: np.ndarray = field(default_factory=lambda: np.zeros(0, object))
    ref_frame_number: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ref_spatial_locations_preserved: np.ndarray = field(
        default_factory=lambda: np.zeros(0, object)
    )
    is_tiled_full: bool = False

    @property
    def has_frame_references(self) -> bool:
        """Whether any frame records the source image it was derived from."""
        return self.ref_frame.size > 0


# ---------------------------------------------------------------------------
# reading functional groups items into plain dictionaries


def _dataset_to_dict(item: Dataset, spec: ScanSpec) -> dict[str, Any]:
    """Project a parsed pydicom item onto the same structure the scanner returns."""
    out: dict[str, Any] = {}
    for keyword, kind in spec.fields.items():
        if keyword not in item:
            continue
        value = item[keyword].value
        if isinstance(kind, ScanSpec):
            out[keyword] = [_dataset_to_dict(sub, kind) for sub in (value or [])]
        elif value is None or value == "":
            out[keyword] = [] if kind not in ("UI", "CS", "LO", "SH") else ""
        elif kind in ("UI", "CS", "LO", "SH"):
            out[keyword] = str(value)
        else:
            values = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
            cast = float if kind in ("DS", "FD", "FL") else int
            out[keyword] = [cast(v) for v in values]
    return out


def _per_frame_items(dataset: Dataset) -> list[dict[str, Any]] | None:
    """Per-Frame Functional Groups items as dictionaries, ``None`` if absent."""
    if "PerFrameFunctionalGroupsSequence" not in dataset:
        return None
    element = dataset.get_item("PerFrameFunctionalGroupsSequence")
    if isinstance(element, RawDataElement) and element.is_little_endian and isinstance(
        element.value, (bytes, bytearray, memoryview)
    ):
        return scan_sequence(
            element.value,
            FUNCTIONAL_GROUPS_SPEC,
            implicit=bool(element.is_implicit_VR),
            what="PerFrameFunctionalGroupsSequence",
        )
    sequence = dataset.PerFrameFunctionalGroupsSequence
    return [_dataset_to_dict(item, FUNCTIONAL_GROUPS_SPEC) for item in sequence]


def _first(item: dict[str, Any], sequence: str) -> dict[str, Any] | None:
    values = item.get(sequence)
    return values[0] if values else None


def _lookup(
    item: dict[str, Any] | None, shared: dict[str, Any], sequence: str, keyword: str
) -> Any:
    """Value of ``sequence[0].keyword`` in the per-frame item, else in the shared item."""
    for group in (item, shared):
        if group is None:
            continue
        sub = _first(group, sequence)
        if sub is not None and keyword in sub:
            return sub[keyword]
    return None


def _shared_value(
    items: list[dict[str, Any]] | None, shared: dict[str, Any], sequence: str, keyword: str
) -> np.ndarray | None:
    """One value common to all frames, or ``None`` when absent or varying."""
    if not items:
        value = _lookup(None, shared, sequence, keyword)
        return None if value is None else np.asarray(value, dtype=np.float64)
    values = [_lookup(i, shared, sequence, keyword) for i in items]
    if any(v is None for v in values) or len({len(v) for v in values}) != 1:
        return None
    arr = np.asarray(values, dtype=np.float64)
    if not np.all(arr == arr[0]):
        return None
    return arr[0]


# ---------------------------------------------------------------------------
# building the index


def _dimension_pointers(dataset: Dataset) -> list[str]:
    pointers = []
    for item in dataset.get("DimensionIndexSequence", []):
        tag = item.get("DimensionIndexPointer")
        if tag is None:
            raise DecodeError(
                "DimensionIndexSequence item lacks DimensionIndexPointer "
                "(PS3.3 C.7.6.17: required in every item)"
            )
        pointers.append(keyword_for_tag(tag) or f"{int(tag):08X}")
    return pointers


def _tiled_full_positions(dataset: Dataset, number_of_frames: int, channels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Implied (segment, row/column position, slide offset) of TILED_FULL frames.

    Frames run over segments (outermost), focal planes, tile rows, tile
    columns (innermost) (PS3.3 C.7.6.17.3).
    """
    try:
        rows, columns = int(dataset.Rows), int(dataset.Columns)
        total_rows = int(dataset.TotalPixelMatrixRows)
        total_columns = int(dataset.TotalPixelMatrixColumns)
    except AttributeError as exc:
        raise DecodeError(f"TILED_FULL image lacks {exc.name or 'a total pixel matrix attribute'}") from None
    if rows < 1 or columns < 1:
        raise DecodeError(f"Rows and Columns must be positive; got {rows} x {columns}")
    tiles_down = -(-total_rows // rows)
    tiles_across = -(-total_columns // columns)
    planes = int(dataset.get("TotalPixelMatrixFocalPlanes", 1) or 1)
    expected = channels * planes * tiles_down * tiles_across
    if expected != number_of_frames:
        raise DecodeError(
            f"NumberOfFrames of a TILED_FULL image must equal segments x focal planes x tiles "
            f"= {channels} x {planes} x {tiles_down} x {tiles_across} = {expected}; got {number_of_frames}"
        )
    frame = np.arange(number_of_frames)
    tile = frame % (tiles_down * tiles_across)
    plane = (frame // (tiles_down * tiles_across)) % planes
    channel = frame // (tiles_down * tiles_across * planes)
    row_pos = (tile // tiles_across) * rows + 1
    col_pos = (tile % tiles_across) * columns + 1
    tile_positions = np.stack([row_pos, col_pos], axis=1).astype(np.int64)
    positions = np.zeros((number_of_frames, 3))
    origin = dataset.get("TotalPixelMatrixOriginSequence")
    orientation = dataset.get("ImageOrientationSlide")
    measures = _first(_shared_functional_groups(dataset), "PixelMeasuresSequence") or {}
    spacing = measures.get("PixelSpacing")
    if origin and orientation is not None and spacing:
        o = origin[0]
        start = np.array([float(o.XOffsetInSlideCoordinateSystem), float(o.YOffsetInSlideCoordinateSystem), 0.0])
        cos = np.asarray(orientation, dtype=np.float64)
        slice_spacing = float((measures.get("SpacingBetweenSlices") or [1.0])[0])
        positions = (
            start
            + np.outer((col_pos - 1) * spacing[1], cos[:3])
            + np.outer((row_pos - 1) * spacing[0], cos[3:])
        )
        positions[:, 2] += plane * slice_spacing
    return channel + 1, tile_positions, positions


def _implied_dimension_indices(
    pointers: list[str], segments: np.ndarray, tiles: np.ndarray, positions: np.ndarray
) -> np.ndarray:
    """``(F, D)`` 1-based dimension indices of TILED_FULL frames: rank of each implied value."""
    columns = {
        "ReferencedSegmentNumber": segments,
        "RowPositionInTotalImagePixelMatrix": tiles[:, 0],
        "ColumnPositionInTotalImagePixelMatrix": tiles[:, 1],
        "XOffsetInSlideCoordinateSystem": positions[:, 0],
        "YOffsetInSlideCoordinateSystem": positions[:, 1],
        "ZOffsetInSlideCoordinateSystem": positions[:, 2],
    }
    out = np.zeros((segments.shape[0], len(pointers)), np.int64)
    for d, pointer in enumerate(pointers):
        if pointer in columns:
            _, inverse = np.unique(columns[pointer], return_inverse=True)
            out[:, d] = inverse.reshape(-1) + 1
    return out


def _shared_functional_groups(dataset: Dataset) -> dict[str, Any]:
    sequence = dataset.get("SharedFunctionalGroupsSequence")
    if not sequence:
        return {}
    return _dataset_to_dict(sequence[0], FUNCTIONAL_GROUPS_SPEC)


def build_frame_index(dataset: Dataset) -> FrameIndex:
    """Build the :class:`FrameIndex` of a Segmentation data set.

    A thin guard around :func:`_build_frame_index`: a malformed attribute that
    slips past the explicit checks (a value pydicom cannot convert, an empty
    sequence, an out-of-range number) is reported as a :class:`DecodeError`
    instead of a builtin exception from deep inside.

    Parameters
    ----------
    dataset
        A SEG (or LABELMAP SEG) data set, with PerFrameFunctionalGroupsSequence
        either parsed or still a little-endian ``RawDataElement``.

    Returns
    -------
    FrameIndex

    Raises
    ------
    DecodeError
        If SharedFunctionalGroupsSequence or PerFrameFunctionalGroupsSequence
        is missing (PS3.3 C.7.6.16: both Type 1 for SEG, the latter absent
        only for TILED_FULL), the number of per-frame items differs from
        NumberOfFrames, a frame lacks its Referenced Segment Number or
        Dimension Index Values, or refers to an undefined segment.
    """
    try:
        return _build_frame_index(dataset)
    except DicomSegError:
        raise
    except (ValueError, TypeError, AttributeError, IndexError, KeyError, OverflowError, RecursionError) as exc:
        name = getattr(exc, "name", None)
        what = f" ({name})" if isinstance(exc, AttributeError) and name else ""
        raise DecodeError(
            f"cannot index the frames of the segmentation: a functional group attribute{what} is "
            f"malformed ({type(exc).__name__}: {exc})"
        ) from exc
    except Exception as exc:  # pydicom's own value errors (e.g. BytesLengthException)
        if type(exc).__module__.startswith("pydicom"):
            raise DecodeError(f"cannot index the frames of the segmentation: {exc}") from exc
        raise


def _build_frame_index(dataset: Dataset) -> FrameIndex:
    # long because: one linear pass over the Shared/Per-Frame Functional Groups (C.7.6.16) that fills every
    #   FrameIndex field; the per-macro lookups are helpers and what remains is the order-dependent TILED_FULL vs
    #   per-frame branching
    number_of_frames = int(dataset.get("NumberOfFrames", 1) or 1)
    is_labelmap = (
        dataset.get("SOPClassUID") == SegSOPClass.LABEL_MAP_SEGMENTATION
        or dataset.get("SegmentationType") == SegmentationTypeValues.LABELMAP.value
    )
    is_tiled_full = dataset.get("DimensionOrganizationType") == "TILED_FULL"
    if "SharedFunctionalGroupsSequence" not in dataset:
        raise DecodeError(
            "SharedFunctionalGroupsSequence is missing (Type 1 in the Multi-frame "
            "Functional Groups module, PS3.3 C.7.6.16); expected 1 item, found none"
        )
    shared = _shared_functional_groups(dataset)
    from monai_dicomseg.codec.bulk_frame_header import bulk_frame_index  # all frames at once, if uniform

    bulk = bulk_frame_index(dataset, shared, number_of_frames=number_of_frames, is_labelmap=is_labelmap)
    if bulk is not None:
        return bulk
    items = _per_frame_items(dataset)
    if items is None and not is_tiled_full:
        raise DecodeError(
            "PerFrameFunctionalGroupsSequence is missing (required unless "
            "DimensionOrganizationType is TILED_FULL, PS3.3 C.7.6.16); expected "
            f"{number_of_frames} item(s), found none"
        )
    if items is not None and len(items) != number_of_frames:
        raise DecodeError(
            f"PerFrameFunctionalGroupsSequence must have one item per frame: expected "
            f"NumberOfFrames = {number_of_frames} item(s), found {len(items)}"
        )
    pointers = _dimension_pointers(dataset)
    defined = _defined_segment_numbers(dataset)
    channels = 1 if is_labelmap else max(len(defined), 1)

    tile_positions = None
    positions = None
    if is_tiled_full and not items:
        segments, tile_positions, positions = _tiled_full_positions(dataset, number_of_frames, channels)
        if is_labelmap:
            segments = np.zeros(number_of_frames, np.int64)
        dim_values = _implied_dimension_indices(pointers, segments, tile_positions, positions)
        items = None
    else:
        if items is None:  # excluded above; a check, not an assert (python -O)
            raise DecodeError("PerFrameFunctionalGroupsSequence is missing (required unless TILED_FULL)")
        segments = np.zeros(number_of_frames, np.int64)
        dim_values = np.zeros((number_of_frames, len(pointers)), np.int64)
        raw_positions: list[Any] = []
        raw_tiles: list[Any] = []
        for n, item in enumerate(items):
            if not is_labelmap:
                value = _lookup(item, shared, "SegmentIdentificationSequence", "ReferencedSegmentNumber")
                if not value:
                    raise DecodeError(
                        f"frame {n + 1}: SegmentIdentificationSequence/ReferencedSegmentNumber "
                        "is missing (required for BINARY and FRACTIONAL, PS3.3 C.8.20.3); expected 1 value, found none"
                    )
                segments[n] = value[0]
            if pointers:
                value = _lookup(item, shared, "FrameContentSequence", "DimensionIndexValues")
                if value is None or len(value) != len(pointers):
                    found = "none" if value is None else len(value)
                    raise DecodeError(
                        f"frame {n + 1}: FrameContentSequence/DimensionIndexValues must have one value per "
                        f"DimensionIndexSequence item: expected {len(pointers)}, found {found}"
                    )
                dim_values[n] = value
            raw_positions.append(_lookup(item, shared, "PlanePositionSequence", "ImagePositionPatient"))
            slide = _first(item, "PlanePositionSlideSequence") or _first(shared, "PlanePositionSlideSequence")
            raw_tiles.append(slide)
        positions = _positions_array(raw_positions, raw_tiles)
        tile_positions = _tiles_array(raw_tiles)

    if not is_labelmap and defined and number_of_frames:
        undefined = np.setdiff1d(np.unique(segments), np.asarray(sorted(defined)))
        if undefined.size:
            frame = int(np.flatnonzero(segments == undefined[0])[0]) + 1
            raise DecodeError(
                f"frame {frame}: ReferencedSegmentNumber {int(undefined[0])} is not defined in "
                f"SegmentSequence; expected one of {sorted(defined)}"
            )

    orientation = _sized(_shared_value(items, shared, "PlaneOrientationSequence", "ImageOrientationPatient"), 6)
    pixel_spacing = _sized(_shared_value(items, shared, "PixelMeasuresSequence", "PixelSpacing"), 2)
    index = FrameIndex(
        number_of_frames=number_of_frames,
        segment_numbers=segments.astype(np.int64),
        dimension_index_pointers=pointers,
        dimension_index_values=dim_values,
        image_positions=positions,
        tile_positions=tile_positions,
        image_orientation=orientation,
        pixel_spacing=pixel_spacing,
        spacing_between_slices=_scalar(_shared_value(items, shared, "PixelMeasuresSequence", "SpacingBetweenSlices")),
        is_tiled_full=is_tiled_full,
    )
    if items:
        _add_references(index, items)
    return index


def _sized(value: np.ndarray | None, size: int) -> np.ndarray | None:
    """``value`` when it holds ``size`` finite numbers, else ``None`` (treated as absent downstream)."""
    if value is None or value.size != size or not np.all(np.isfinite(value)):
        return None
    return value


def _scalar(value: np.ndarray | None) -> float | None:
    if value is None or value.size == 0:
        return None
    return float(value.reshape(-1)[0])


def _defined_segment_numbers(dataset: Dataset) -> list[int]:
    if "SegmentSequence" not in dataset:
        raise DecodeError(
            "SegmentSequence is missing (Type 1 in the Segmentation Image module, "
            "PS3.3 C.8.20.2); expected at least 1 item, found none"
        )
    numbers = []
    for n, item in enumerate(dataset.SegmentSequence, 1):
        if "SegmentNumber" not in item:
            raise DecodeError(f"SegmentSequence item {n} lacks SegmentNumber (Type 1)")
        numbers.append(int(item.SegmentNumber))
    return numbers


def _positions_array(raw_positions: list[Any], raw_tiles: list[Any]) -> np.ndarray | None:
    if raw_positions and all(p is not None and len(p) == 3 for p in raw_positions):
        return np.asarray(raw_positions, dtype=np.float64)
    keys = ("XOffsetInSlideCoordinateSystem", "YOffsetInSlideCoordinateSystem", "ZOffsetInSlideCoordinateSystem")
    if raw_tiles and all(t is not None and keys[0] in t and keys[1] in t for t in raw_tiles):
        return np.asarray(
            [[t[k][0] if t.get(k) else 0.0 for k in keys] for t in raw_tiles], dtype=np.float64
        )
    return None


def _tiles_array(raw_tiles: list[Any]) -> np.ndarray | None:
    keys = ("RowPositionInTotalImagePixelMatrix", "ColumnPositionInTotalImagePixelMatrix")
    if raw_tiles and all(t is not None and t.get(keys[0]) and t.get(keys[1]) for t in raw_tiles):
        return np.asarray([[t[keys[0]][0], t[keys[1]][0]] for t in raw_tiles], dtype=np.int64)
    return None


def _add_references(index: FrameIndex, items: list[dict[str, Any]]) -> None:
    """Fill the derivation reference columns from per-frame items."""
    frames: list[int] = []
    uids: list[str] = []
    numbers: list[int] = []
    preserved: list[str | None] = []
    for n, item in enumerate(items):
        for derivation in item.get("DerivationImageSequence", ()):
            for source in derivation.get("SourceImageSequence", ()):
                uid = source.get("ReferencedSOPInstanceUID")
                if not uid:
                    raise DecodeError(
                        f"frame {n + 1}: SourceImageSequence item lacks ReferencedSOPInstanceUID (Type 1)"
                    )
                refs = source.get("ReferencedFrameNumber") or [0]
                slp = source.get("SpatialLocationsPreserved") or None
                for ref in refs:
                    frames.append(n)
                    uids.append(uid)
                    numbers.append(int(ref))
                    preserved.append(slp)
    index.ref_frame = np.asarray(frames, dtype=np.int64)
    index.ref_sop_instance_uid = np.asarray(uids, dtype=object)
    index.ref_frame_number = np.asarray(numbers, dtype=np.int64)
    index.ref_spatial_locations_preserved = np.asarray(preserved, dtype=object)
