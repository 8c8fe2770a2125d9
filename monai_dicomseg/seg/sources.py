"""Source images of a segmentation: validation and per-frame references.

A segmentation is derived either from a list of single-frame images
(``pixel_array[i]`` ↔ ``source_images[i]``) or from one multi-frame image
(``pixel_array[i]`` ↔ frame ``i + 1``). This module turns either form into
one flat table of *source frames* with their references and plane positions
(PS3.3 C.7.6.2 Image Plane Module; C.7.6.16.2.1 Pixel Measures,
C.7.6.16.2.3 Plane Position, C.7.6.16.2.4 Plane Orientation macros).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag

from monai_dicomseg.codec.vr import check_uid
from monai_dicomseg.enums import CoordinateSystemNames
from monai_dicomseg.errors import GeometryError, InputError, InputTypeError
from monai_dicomseg.geometry.affine import check_image_orientation
from monai_dicomseg.geometry.tolerances import (
    DIRECTION_COSINE_TOLERANCE,
    PIXEL_SPACING_MATCH_ATOL_MM,
    PIXEL_SPACING_MATCH_RTOL,
)
from monai_dicomseg.seg.tiling import (
    SlideGeometry,
    slide_geometry,
    slide_offsets,
    source_tile_positions,
)

__all__ = ["SourceFrames", "collect_source_frames", "stored_uid", "require_pixel_spacing"]


@dataclass(frozen=True)
class SourceFrames:
    """Flat description of the frames a segmentation is derived from.

    Attributes
    ----------
    datasets
        The source datasets, as given.
    rows, columns
        Frame size shared by all sources.
    coordinate_system
        PATIENT when the sources have a Frame of Reference with patient
        plane geometry, else ``None`` (e.g. plain radiographs).
    frame_of_reference_uid
        Shared Frame of Reference UID or ``None``.
    sop_class_uids, sop_instance_uids
        Per source frame, ``(N,)`` lists of str.
    frame_numbers
        Per source frame: 1-based frame number for a multi-frame source,
        ``None`` for single-frame sources.
    position_strings
        Per source frame, the three DS strings of ImagePositionPatient as
        stored in the source (copied verbatim), or ``None``.
    positions
        ``(N, 3) float64`` ImagePositionPatient in mm (LPS), or ``None``.
    orientation
        The six ImageOrientationPatient values (DS strings), or ``None``.
    pixel_spacing
        The two PixelSpacing values (DS strings), or ``None``.
    slice_thickness
        SliceThickness (DS string) or ``None``.
    spacing_between_slices
        SpacingBetweenSlices (DS string) or ``None``.
    slide
        Total-pixel-matrix geometry of a tiled (slide microscopy) source,
        else ``None``; then ``coordinate_system`` is SLIDE and ``positions``
        are slide coordinates of each tile's top-left pixel.
    tile_positions
        ``(N, 2) int64`` 1-based (row, column) of each source tile, or ``None``.
    """

    datasets: tuple[Dataset, ...]
    rows: int
    columns: int
    coordinate_system: CoordinateSystemNames | None
    frame_of_reference_uid: str | None
    sop_class_uids: list[str]
    sop_instance_uids: list[str]
    frame_numbers: list[int | None]
    position_strings: list[tuple[str, str, str]] | None
    positions: np.ndarray | None
    orientation: tuple[str, ...] | None
    pixel_spacing: tuple[str, str] | None
    slice_thickness: str | None
    spacing_between_slices: str | None
    slide: SlideGeometry | None = None
    tile_positions: np.ndarray | None = None

    @property
    def number_of_frames(self) -> int:
        """int: number of source frames."""
        return len(self.sop_instance_uids)

    @property
    def is_multiframe(self) -> bool:
        """bool: whether the frames come from one multi-frame instance."""
        return self.frame_numbers[0] is not None

    @property
    def first(self) -> Dataset:
        """Dataset: the first source dataset (patient/study information)."""
        return self.datasets[0]


def _ds_strings(element_value: object, count: int, attribute: str) -> tuple[str, ...]:
    values = element_value if isinstance(element_value, (list, tuple)) or hasattr(
        element_value, "__len__") and not isinstance(element_value, str) else [element_value]
    strings = tuple(getattr(v, "original_string", None) or repr(float(v)) for v in values)  # type: ignore[attr-defined]  # values is a list/tuple/sized value or a one-item list (narrowed by hasattr, invisible to mypy)
    if len(strings) != count:
        raise GeometryError(f"{attribute} must have {count} values; got {len(strings)}")
    return strings


@cache
def _tag(keyword: str) -> BaseTag:
    """The tag of ``keyword``, built once (pydicom's keyword lookups dominate a 1,000-image series)."""
    return Tag(keyword)


def _raw_strings(dataset: Dataset, keyword: str) -> "tuple[str, ...] | None":
    """The stored strings of a not yet converted text element (DS, IS, UI, CS), else None.

    The values pydicom would give (``original_string`` of a DS, the str of
    a UI) without building its value objects: a 1,000-slice series is read
    in milliseconds instead of a second. None when the element is absent,
    already converted, or not plain ASCII (the caller then asks pydicom).
    """
    element = dataset.get_item(_tag(keyword))
    if not isinstance(element, RawDataElement) or element.value is None:
        return None
    try:
        text = element.value.decode("ascii")
    except (UnicodeDecodeError, AttributeError):
        return None
    return tuple(part.strip(" \x00") for part in text.strip(" \x00").split("\\"))


def _ds_strings_of(dataset: Dataset, keyword: str, count: int) -> tuple[str, ...]:
    """The ``count`` DS strings of ``keyword`` as stored (verbatim, for copying into the SEG)."""
    strings = _raw_strings(dataset, keyword)
    if strings is not None and len(strings) == count:
        try:
            for value in strings:
                float(value)
            return strings
        except ValueError:
            pass  # pydicom's conversion decides what a malformed value means
    return _ds_strings(dataset.get(keyword), count, keyword)


def stored_uid(dataset: Dataset, keyword: str) -> str:
    """A UI element's value as stored (``""`` when absent), read without pydicom's conversion when possible."""
    strings = _raw_strings(dataset, keyword)
    if strings is not None and len(strings) == 1:
        return strings[0]
    value = dataset.get(keyword)
    return "" if value is None else str(value)  # an empty element is "", never "None"


_REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
"""UIDs of a source image that the SEG writes (references, study): Type 1 there (PS3.3 C.12.2, C.7.6.16.2.6)."""


def _check_dataset(dataset: object, index: int) -> Dataset:
    """A source image with what the SEG copies from it; every UID it copies well formed (PS3.5 9.1).

    The UIDs are written into the SEG (Study Instance UID, Frame of Reference
    UID, Referenced Series / SOP Class / SOP Instance UIDs), so a damaged
    source (or a SEG read back by ``convert``) is refused here, naming the
    attribute, instead of being copied into an invalid file.
    """
    if not isinstance(dataset, Dataset):
        raise InputTypeError(
            f"source_images[{index}] must be a pydicom Dataset; got {type(dataset).__name__}"
        )
    for keyword in ("Rows", "Columns") + _REQUIRED_UIDS:
        if dataset.get_item(_tag(keyword)) is None:
            raise InputError(f"source_images[{index}] lacks {keyword}")
    for keyword in _REQUIRED_UIDS:
        check_uid(stored_uid(dataset, keyword), f"source_images[{index}].{keyword}")
    frame_of_reference = stored_uid(dataset, "FrameOfReferenceUID")
    if frame_of_reference:
        check_uid(frame_of_reference, f"source_images[{index}].FrameOfReferenceUID")
    return dataset


def _number_of_frames(dataset: Dataset) -> int:
    return int(dataset.get("NumberOfFrames", 1) or 1)


def collect_source_frames(source_images: Sequence[Dataset]) -> SourceFrames:
    """Validate the sources and flatten them into a :class:`SourceFrames` table.

    Parameters
    ----------
    source_images
        A non-empty list of single-frame images of one series, or a list
        holding one multi-frame image.

    Raises
    ------
    InputError
        Empty list, several multi-frame images, differing Rows/Columns,
        StudyInstanceUID or SeriesInstanceUID (one series per SEG), duplicated
        SOPInstanceUIDs, a missing or malformed UID (PS3.5 9.1: the UIDs are
        copied into the SEG), named as ``source_images[i].Keyword``.
    GeometryError
        Differing Frame of Reference UIDs, mixed orientations or pixel
        spacings, PixelSpacing on some images only, or incomplete plane
        geometry.
    """
    if isinstance(source_images, Dataset) or not isinstance(source_images, Sequence):
        raise InputTypeError(
            f"source_images must be a list of pydicom Datasets; got {type(source_images).__name__}"
        )
    if len(source_images) == 0:
        raise InputError("source_images must contain at least one image; got an empty list")
    datasets = tuple(_check_dataset(ds, i) for i, ds in enumerate(source_images))
    if len(datasets) == 1 and (
        _number_of_frames(datasets[0]) > 1 or "PerFrameFunctionalGroupsSequence" in datasets[0]
        or "TotalPixelMatrixRows" in datasets[0]
    ):
        return _collect_multiframe(datasets[0])
    multiframe = [i for i, ds in enumerate(datasets) if _number_of_frames(ds) > 1]
    if multiframe:
        raise InputError(
            "source_images must be single-frame images or exactly one multi-frame image; "
            f"source_images[{multiframe[0]}] has {_number_of_frames(datasets[multiframe[0]])} frames "
            f"among {len(datasets)} images"
        )
    return _collect_single_frames(datasets)


def _require_same(datasets: Sequence[Dataset], keyword: str, error: type[Exception]) -> object:
    tag = tag_for_keyword(keyword)
    stored = datasets[0].get_item(tag)  # type: ignore[arg-type]  # tag_for_keyword of a dictionary keyword is never None
    if isinstance(stored, RawDataElement) and all(
            isinstance(other := ds.get_item(tag), RawDataElement)
            and other.value == stored.value and other.is_little_endian == stored.is_little_endian
            and other.VR == stored.VR for ds in datasets[1:]):
        return datasets[0].get(keyword)  # the same stored bytes everywhere: one conversion
    first = datasets[0].get(keyword)
    for index, ds in enumerate(datasets[1:], start=1):
        value = ds.get(keyword)
        if value != first:
            raise error(
                f"all source_images must share {keyword}: source_images[0] has {first!r}, "
                f"source_images[{index}] has {value!r}"
            )
    return first


def _collect_single_frames(datasets: tuple[Dataset, ...]) -> SourceFrames:
    # long because: gathers every per-source attribute the writer needs (size, frame of reference,
    #   positions/orientation or their absence, spacing) with one consistency error each, into one SourceFrames
    rows = int(_require_same(datasets, "Rows", InputError))  # type: ignore[call-overload]  # _require_same returns the element value (typed object); Rows is a US integer
    columns = int(_require_same(datasets, "Columns", InputError))  # type: ignore[call-overload]  # _require_same returns the element value (typed object); Columns is a US integer
    _require_same(datasets, "StudyInstanceUID", InputError)
    _require_one_series(datasets)
    sop_instance_uids = [stored_uid(ds, "SOPInstanceUID") for ds in datasets]
    _require_distinct_instances(sop_instance_uids)
    frame_of_reference = _require_same(datasets, "FrameOfReferenceUID", GeometryError)
    has_geometry = [("ImagePositionPatient" in ds and "ImageOrientationPatient" in ds) for ds in datasets]
    position_strings = positions = orientation = None
    coordinate_system = None
    if all(has_geometry) and frame_of_reference is not None:
        coordinate_system = CoordinateSystemNames.PATIENT
        orientations = [_ds_strings_of(ds, "ImageOrientationPatient", 6) for ds in datasets]
        check_image_orientation(np.array(orientations[0], dtype=float),
                                "ImageOrientationPatient of source_images[0]")
        _check_same_orientation(np.array(orientations, dtype=float))
        orientation = orientations[0]
        position_strings = [_ds_strings_of(ds, "ImagePositionPatient", 3) for ds in datasets]
        positions = np.array(position_strings, dtype=np.float64)
    elif any(has_geometry) and not all(has_geometry):
        missing = has_geometry.index(False)
        raise GeometryError(
            f"source_images[{missing}] lacks ImagePositionPatient/ImageOrientationPatient "
            "while other source images have them"
        )
    elif frame_of_reference is not None and any(
            ("ImagePositionPatient" in ds) != ("ImageOrientationPatient" in ds) for ds in datasets):
        index = next(i for i, ds in enumerate(datasets)
                     if ("ImagePositionPatient" in ds) != ("ImageOrientationPatient" in ds))
        absent = "ImagePositionPatient" if "ImagePositionPatient" not in datasets[index] else (
            "ImageOrientationPatient")
        raise GeometryError(
            f"source_images[{index}] has a FrameOfReferenceUID but lacks {absent}: the image "
            "plane (PS3.3 C.7.6.2) needs both ImagePositionPatient and ImageOrientationPatient"
        )
    spacing = None
    _require_all_or_none(datasets, "PixelSpacing")
    if all("PixelSpacing" in ds for ds in datasets):
        spacings = [_ds_strings_of(ds, "PixelSpacing", 2) for ds in datasets]
        values = np.array(spacings, dtype=float)
        differs = ~np.all(np.isclose(values, values[0], rtol=PIXEL_SPACING_MATCH_RTOL, atol=PIXEL_SPACING_MATCH_ATOL_MM), axis=1)
        if differs.any():
            index = int(np.argmax(differs))
            raise GeometryError(
                f"all source_images must share PixelSpacing: source_images[0] has "
                f"{list(spacings[0])}, source_images[{index}] has {list(spacings[index])}"
            )
        spacing = spacings[0]
    first = datasets[0]
    return SourceFrames(
        datasets=datasets,
        rows=rows,
        columns=columns,
        coordinate_system=coordinate_system,
        frame_of_reference_uid=str(frame_of_reference) if frame_of_reference else None,
        sop_class_uids=[stored_uid(ds, "SOPClassUID") for ds in datasets],
        sop_instance_uids=sop_instance_uids,
        frame_numbers=[None] * len(datasets),
        position_strings=position_strings,  # type: ignore[arg-type]  # _ds_strings(..., 3, ...) raises unless it returns exactly 3 strings
        positions=positions,
        orientation=orientation,
        pixel_spacing=spacing,  # type: ignore[arg-type]  # spacing holds 2 values (_ds_strings_of(..., 2) checks it)
        slice_thickness=_optional_ds(first, "SliceThickness"),
        spacing_between_slices=_optional_ds(first, "SpacingBetweenSlices"),
    )


def _require_one_series(datasets: Sequence[Dataset]) -> None:
    """Single-frame sources must belong to one series (highdicom refuses others too).

    A SEG references its source images in its Common Instance Reference
    module (PS3.3 C.12.2) and is derived from one image series (the guide:
    ``source_images`` is *a* series, or one multi-frame image); images of two
    series are not the planes of one volume.

    Raises
    ------
    InputError
        Naming the first source image whose SeriesInstanceUID differs.
    """
    first = stored_uid(datasets[0], "SeriesInstanceUID")
    for index, dataset in enumerate(datasets[1:], start=1):
        other = stored_uid(dataset, "SeriesInstanceUID")
        if other != first:
            raise InputError(
                f"all source_images must belong to one series: source_images[0] has SeriesInstanceUID "
                f"{first!r}, source_images[{index}] has {other!r} (a SEG is derived from the images of one "
                "series, or from one multi-frame image)"
            )


def _require_distinct_instances(sop_instance_uids: Sequence[str]) -> None:
    """Each single-frame source is another instance: SOP Instance UIDs are unique (PS3.3 C.12.1.1.1).

    Raises
    ------
    InputError
        Naming the two source images that share a SOPInstanceUID.
    """
    seen: dict[str, int] = {}
    for index, uid in enumerate(sop_instance_uids):
        first = seen.setdefault(uid, index)
        if first != index:
            raise InputError(
                f"source_images[{first}] and source_images[{index}] have the same SOPInstanceUID {uid!r}; "
                "each source image must be a distinct instance (a duplicated image would be referenced, and "
                "its frame segmented, twice)"
            )


def _require_all_or_none(datasets: Sequence[Dataset], keyword: str) -> None:
    """``keyword`` is present in every source image or in none (else it would be silently dropped)."""
    present = [keyword in ds for ds in datasets]
    if any(present) and not all(present):
        raise GeometryError(
            f"source_images[{present.index(False)}] lacks {keyword} while source_images[{present.index(True)}] "
            "has it; the source images must all have it or all lack it"
        )


def require_pixel_spacing(sources: SourceFrames) -> None:
    """Refuse sources with patient plane geometry but no pixel spacing.

    A SEG whose frames have plane positions and an orientation (PATIENT
    coordinates) records their Pixel Measures (PS3.3 C.7.6.16.2.1, in the
    Shared Functional Groups, C.8.20.3); the writer takes them from the
    sources when ``pixel_array`` is aligned with them (highdicom does the same
    and fails on a source without PixelSpacing). Explicit ``pixel_measures``
    or a ``Volume`` supply them otherwise.

    Raises
    ------
    GeometryError
        Naming the attribute the sources lack.
    """
    if sources.coordinate_system is not CoordinateSystemNames.PATIENT or sources.pixel_spacing is not None:
        return
    where = ("PixelSpacing in PixelMeasuresSequence of its Shared or Per-Frame Functional Groups"
             if sources.is_multiframe else "PixelSpacing")
    raise GeometryError(
        f"source_images[0] lacks {where}: the SEG's planes have patient positions and an orientation, so it "
        "needs their Pixel Measures (PS3.3 C.7.6.16.2.1); expected two positive numbers (mm), got none. "
        "Pass pixel_measures, or sources that have PixelSpacing"
    )


def _optional_ds(dataset: Dataset, keyword: str) -> str | None:
    if keyword not in dataset or dataset[keyword].value in (None, ""):
        return None
    value = dataset[keyword].value
    return getattr(value, "original_string", None) or repr(float(value))


def _check_same_orientation(orientations: np.ndarray) -> None:
    """Raise GeometryError unless all ``(N, 6)`` ImageOrientationPatient rows agree."""
    differs = ~np.all(np.isclose(orientations, orientations[0], atol=DIRECTION_COSINE_TOLERANCE, rtol=0), axis=1)
    if differs.any():
        index = int(np.argmax(differs))
        raise GeometryError(
            "all source frames must share ImageOrientationPatient: frame 1 has "
            f"{orientations[0].tolist()}, frame {index + 1} has {orientations[index].tolist()}"
        )


def _functional_group(dataset: Dataset, frame_item: Dataset | None, sequence: str) -> Dataset | None:
    """Return the item of ``sequence`` for one frame, per-frame first then shared."""
    if frame_item is not None and sequence in frame_item:
        return frame_item[sequence].value[0]
    shared = dataset.get("SharedFunctionalGroupsSequence")
    if shared and sequence in shared[0]:
        return shared[0][sequence].value[0]
    return None


def _collect_tiled(dataset: Dataset, geometry: SlideGeometry) -> SourceFrames:
    """Source frames of a tiled image: tile positions and their slide coordinates."""
    number_of_frames = _number_of_frames(dataset)
    tiles = source_tile_positions(dataset, geometry)
    frame_of_reference = dataset.get("FrameOfReferenceUID")
    spacing = tuple(repr(v) for v in geometry.pixel_spacing)
    measures = _functional_group(dataset, None, "PixelMeasuresSequence")
    if measures is not None and "PixelSpacing" in measures:
        spacing = _ds_strings(measures.PixelSpacing, 2, "PixelSpacing")
    offsets = slide_offsets(geometry, tiles)
    return SourceFrames(
        datasets=(dataset,),
        rows=int(dataset.Rows),
        columns=int(dataset.Columns),
        coordinate_system=CoordinateSystemNames.SLIDE,
        frame_of_reference_uid=str(frame_of_reference) if frame_of_reference else None,
        sop_class_uids=[str(dataset.SOPClassUID)] * number_of_frames,
        sop_instance_uids=[str(dataset.SOPInstanceUID)] * number_of_frames,
        frame_numbers=list(range(1, number_of_frames + 1)),
        position_strings=[tuple(p) for p in offsets.tolist()],
        positions=offsets,
        orientation=tuple(repr(v) for v in geometry.orientation),
        pixel_spacing=spacing,  # type: ignore[arg-type]  # spacing holds 2 values (_ds_strings_of(..., 2) checks it)
        slice_thickness=None if measures is None else _optional_ds(measures, "SliceThickness"),
        spacing_between_slices=None,
        slide=geometry,
        tile_positions=tiles,
    )


def _collect_multiframe(dataset: Dataset) -> SourceFrames:
    number_of_frames = _number_of_frames(dataset)
    geometry = slide_geometry(dataset)
    if geometry is not None:
        return _collect_tiled(dataset, geometry)
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and len(per_frame) != number_of_frames:
        raise InputError(
            f"source image has NumberOfFrames {number_of_frames} but "
            f"{len(per_frame)} PerFrameFunctionalGroupsSequence items"
        )
    items = list(per_frame) if per_frame is not None else [None] * number_of_frames
    position_strings: list[tuple[str, str, str]] | None = []
    orientations = []
    for frame_item in items:
        position = _functional_group(dataset, frame_item, "PlanePositionSequence")
        orientation = _functional_group(dataset, frame_item, "PlaneOrientationSequence")
        if position is None or orientation is None or "ImagePositionPatient" not in position:
            position_strings = None
            break
        position_strings.append(_ds_strings(position.ImagePositionPatient, 3,  # type: ignore[union-attr,arg-type]  # _ds_strings(..., 3, ...) raises unless it returns exactly 3 strings
                                            "ImagePositionPatient"))
        orientations.append(np.array(
            _ds_strings(orientation.ImageOrientationPatient, 6, "ImageOrientationPatient"), dtype=float))
    frame_of_reference = dataset.get("FrameOfReferenceUID")
    coordinate_system = None
    orientation_strings = None
    positions = None
    if position_strings is not None and frame_of_reference:
        check_image_orientation(orientations[0], "ImageOrientationPatient of the source frames")
        _check_same_orientation(np.array(orientations))
        coordinate_system = CoordinateSystemNames.PATIENT
        first_orientation = _functional_group(dataset, items[0], "PlaneOrientationSequence")
        orientation_strings = _ds_strings(first_orientation.ImageOrientationPatient, 6,  # type: ignore[union-attr]  # every frame item has a PlaneOrientationSequence here (position_strings is None otherwise)
                                          "ImageOrientationPatient")
        positions = np.array(position_strings, dtype=np.float64)
    else:
        position_strings = None
    measures = _functional_group(dataset, items[0], "PixelMeasuresSequence")
    spacing = thickness = between = None
    if measures is not None:
        if "PixelSpacing" in measures:
            spacing = _ds_strings(measures.PixelSpacing, 2, "PixelSpacing")
        thickness = _optional_ds(measures, "SliceThickness")
        between = _optional_ds(measures, "SpacingBetweenSlices")
    return SourceFrames(
        datasets=(dataset,),
        rows=int(dataset.Rows),
        columns=int(dataset.Columns),
        coordinate_system=coordinate_system,
        frame_of_reference_uid=str(frame_of_reference) if frame_of_reference else None,
        sop_class_uids=[str(dataset.SOPClassUID)] * number_of_frames,
        sop_instance_uids=[str(dataset.SOPInstanceUID)] * number_of_frames,
        frame_numbers=list(range(1, number_of_frames + 1)),
        position_strings=position_strings,
        positions=positions,
        orientation=orientation_strings,
        pixel_spacing=spacing,  # type: ignore[arg-type]  # spacing holds 2 values (_ds_strings_of(..., 2) checks it)
        slice_thickness=thickness,
        spacing_between_slices=between,
    )
