"""Source series from real archives: multi-frame instances and several volumes in one series.

A source series reaches the loaders as a list of instances. Each instance is
either one image plane (a single-frame CT/MR/PET image, PS3.3 C.7.6.2 Image
Plane Module) or many (an Enhanced CT/MR/PET or Legacy Converted Enhanced
image, PS3.3 C.7.6.16 Multi-frame Functional Groups). This module turns both
into one flat table of *planes*, then splits the planes into *volumes* and
picks one:

* a multi-frame plane takes its geometry from the shared and per-frame
  functional groups (Plane Position, Plane Orientation, Pixel Measures:
  C.7.6.16.2.3/.4/.1), its rescale from Pixel Value Transformation
  (C.7.6.16.2.9) or Real World Value Mapping (C.7.6.16.2.11), its volume
  attributes from Frame Content (C.7.6.16.2.2: StackID, TemporalPositionIndex,
  FrameAcquisitionNumber) and MR Echo (C.8.13.5.2: EffectiveEchoTime);
* planes are grouped into volumes by :data:`VOLUME_KEYS`: the orientation and
  the StackID always split (a stack is a volume, PS3.3 C.7.6.16.2.2.4); the
  temporal position, echo and acquisition split only where planes would
  otherwise share a position (a DCE / multi-phase / multi-echo series);
* one volume is chosen by a *selector* (:data:`VolumeSelector`): None (the
  only volume), an int (index into the listed volumes), a mapping
  ``{key: value}`` over :data:`VOLUME_KEYS`, or the :class:`FrameReferences`
  of a SEG (the volume holding the frames it references). Several volumes and
  no selector is a :class:`~monai_dicomseg.errors.GeometryError` listing them.

Every plane remembers its ``(SOPInstanceUID, frame number)`` (frame number
None for a single-frame instance), so a SEG can reference source frames.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from monai_dicomseg.errors import GeometryError, InputError, InputTypeError
from monai_dicomseg.geometry.affine import slice_normal
from monai_dicomseg.geometry.tolerances import POSITION_TOLERANCE_MM

__all__ = [
    "VOLUME_KEYS", "SPLIT_ALWAYS", "VolumeSelector", "FrameReferences", "FramePlane", "SourceVolumeInfo",
    "SelectedVolume", "is_multiframe", "source_planes", "group_volumes", "select_volume",
    "seg_frame_references", "selector_json", "PreparedPlanes", "prepare_planes", "segmentation_sources",
    "describe_volumes",
    "parse_selector", "VOLUME_ITEM_KEY", "selector_for_seg", "frames_key", "frames_outside", "VolumeIdentity",
]

VOLUME_ITEM_KEY = "volume"
"""Datalist key holding a per-item volume selector (JSON text; '' for a one-volume series), written by
``create_datalist`` and read by ``LoadDicomSeriesd``."""

VOLUME_KEYS: tuple[str, ...] = (
    "ImageOrientationPatient", "StackID", "TemporalPositionIndex", "TemporalPositionIdentifier",
    "EchoNumbers", "EchoTime", "AcquisitionNumber",
)
"""Attributes that tell volumes of one series apart, in the order they are tried.

For a multi-frame instance they are read per frame: ``StackID``,
``TemporalPositionIndex`` and ``AcquisitionNumber`` (FrameAcquisitionNumber)
from the Frame Content Sequence, ``EchoTime`` from the MR Echo Sequence
(EffectiveEchoTime), ``ImageOrientationPatient`` from the Plane Orientation
Sequence; for a single-frame image, the attribute itself."""

SPLIT_ALWAYS: tuple[str, ...] = ("ImageOrientationPatient", "StackID")
"""Keys that always split a series into volumes where they differ; the others split only where
planes would otherwise share a position."""

_ORIENTATION_DECIMALS = 4


class FrameReferences(frozenset):
    """The source frames a SEG references: a frozenset of ``(SOPInstanceUID, frame number or None)``.

    Built by :func:`seg_frame_references`; as a selector it picks the volume
    holding the referenced frames.
    """


VolumeSelector = None | int | Mapping[str, Any] | FrameReferences
"""``volume=`` of the series loaders: None, an index, ``{key: value}`` over :data:`VOLUME_KEYS`, or FrameReferences."""


class FramePlane:
    """One frame of a multi-frame instance seen as a single-frame image plane (duck-typed).

    Attributes are those the series geometry reads (ImagePositionPatient,
    ImageOrientationPatient, PixelSpacing, SliceThickness, Rows, Columns,
    SeriesInstanceUID, FrameOfReferenceUID, RescaleSlope/RescaleIntercept,
    RealWorldValueMappingSequence) taken from the functional groups of frame
    ``frame_number`` (1-based) of ``instance``; ``pixel_array`` decodes the
    instance once and returns that frame ``(R, C)``.
    """

    def __init__(self, instance: Dataset, frame_number: int, per_frame: "Dataset | None",
                 shared: "Dataset | None") -> None:
        self.instance = instance
        self.frame_number = int(frame_number)
        self.SOPInstanceUID = str(instance.SOPInstanceUID)
        for keyword in ("SeriesInstanceUID", "FrameOfReferenceUID", "Rows", "Columns", "SOPClassUID"):
            if keyword in instance:
                setattr(self, keyword, instance[keyword].value)
        position = _group(per_frame, shared, "PlanePositionSequence")
        if position is not None and "ImagePositionPatient" in position:
            self.ImagePositionPatient = position.ImagePositionPatient
        orientation = _group(per_frame, shared, "PlaneOrientationSequence")
        if orientation is not None and "ImageOrientationPatient" in orientation:
            self.ImageOrientationPatient = orientation.ImageOrientationPatient
        measures = _group(per_frame, shared, "PixelMeasuresSequence")
        if measures is not None and "PixelSpacing" in measures:
            self.PixelSpacing = tuple(float(v) for v in measures.PixelSpacing)
        if measures is not None and measures.get("SliceThickness") is not None:
            self.SliceThickness = measures.SliceThickness
        if measures is not None and measures.get("SpacingBetweenSlices") is not None:
            self.SpacingBetweenSlices = measures.SpacingBetweenSlices
        _set_rescale(self, instance, per_frame, shared)
        content = _group(per_frame, shared, "FrameContentSequence") or Dataset()
        echo = _group(per_frame, shared, "MREchoSequence") or Dataset()
        self.volume_attributes = {
            "StackID": content.get("StackID"),
            "TemporalPositionIndex": content.get("TemporalPositionIndex"),
            "AcquisitionNumber": content.get("FrameAcquisitionNumber"),
            "EchoTime": echo.get("EffectiveEchoTime"),
            "InStackPositionNumber": content.get("InStackPositionNumber"),
        }

    @property
    def pixel_array(self) -> np.ndarray:
        """``(R, C)`` (``(R, C, 3)`` for RGB) stored values of this frame."""
        array = self.instance.pixel_array  # pydicom decodes once and keeps it on the dataset
        return array if int(self.instance.get("NumberOfFrames", 1) or 1) == 1 else array[self.frame_number - 1]


def _group(per_frame: "Dataset | None", shared: "Dataset | None", sequence: str) -> "Dataset | None":
    """Item 0 of a functional group sequence, per-frame first, then shared (PS3.3 C.7.6.16)."""
    for item in (per_frame, shared):
        if item is not None and item.get(sequence):
            return item[sequence].value[0]
    return None


def _set_rescale(plane: FramePlane, instance: Dataset, per_frame: "Dataset | None",
                 shared: "Dataset | None") -> None:
    """Rescale of a frame: Pixel Value Transformation (C.7.6.16.2.9) / Real World Value Mapping groups."""
    transform = _group(per_frame, shared, "PixelValueTransformationSequence")
    source = transform if transform is not None else instance
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        if source.get(keyword) is not None:
            setattr(plane, keyword, source[keyword].value)
    for item in (per_frame, shared):
        if item is not None and item.get("RealWorldValueMappingSequence"):
            plane.RealWorldValueMappingSequence = item.RealWorldValueMappingSequence  # type: ignore[attr-defined]  # FramePlane is duck-typed: its optional attributes are set by name
            return
    if instance.get("RealWorldValueMappingSequence"):
        plane.RealWorldValueMappingSequence = instance.RealWorldValueMappingSequence  # type: ignore[attr-defined]  # FramePlane is duck-typed: its optional attributes are set by name


def is_multiframe(dataset: Any) -> bool:
    """True for an instance with NumberOfFrames > 1 or functional groups (PS3.3 C.7.6.16)."""
    frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
    return frames > 1 or getattr(dataset, "PerFrameFunctionalGroupsSequence", None) is not None


def _frames_of(instance: Dataset, index: int) -> list[FramePlane]:
    number = int(instance.get("NumberOfFrames", 1) or 1)
    per_frame = instance.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and len(per_frame) != number:
        raise GeometryError(
            f"source instance {index} has NumberOfFrames {number} but {len(per_frame)} "
            "PerFrameFunctionalGroupsSequence items (PS3.3 C.7.6.16)")
    shared_items = instance.get("SharedFunctionalGroupsSequence")
    shared = shared_items[0] if shared_items else None
    planes = [FramePlane(instance, k + 1, None if per_frame is None else per_frame[k], shared)
              for k in range(number)]
    missing = [p.frame_number for p in planes if not hasattr(p, "ImagePositionPatient")
               or not hasattr(p, "ImageOrientationPatient") or not hasattr(p, "PixelSpacing")]
    if missing or not instance.get("FrameOfReferenceUID"):
        what = ("no FrameOfReferenceUID" if not missing else
                f"frame(s) {missing[:5]} without Plane Position / Plane Orientation / Pixel Measures "
                "functional groups (PS3.3 C.7.6.16.2.1/.3/.4)")
        raise GeometryError(
            f"multi-frame source instance {index} ({_sop_class_name(instance)}, "
            f"{number} frames) has {what}: it is not a volume in the patient coordinate system")
    return planes


def _sop_class_name(instance: Dataset) -> str:
    uid = instance.get("SOPClassUID")
    return "unknown SOP class" if uid is None else str(getattr(uid, "name", uid) or uid)


def source_planes(datasets: Sequence[Dataset]) -> "tuple[list[Any], list[int]]":
    """All image planes of the instances: the datasets themselves, or one FramePlane per frame.

    Returns
    -------
    tuple
        ``(planes, instance index of each plane)``.

    Raises
    ------
    GeometryError
        A multi-frame instance without patient plane geometry (e.g. pydicom's
        ``emri_small.dcm``, which has no functional groups).
    """
    planes: list[Any] = []
    owners: list[int] = []
    for index, dataset in enumerate(datasets):
        frames = _frames_of(dataset, index) if is_multiframe(dataset) else [dataset]
        planes.extend(frames)
        owners.extend([index] * len(frames))
    return planes, owners


def _value(plane: Any, key: str) -> Any:
    """Value of volume key ``key`` for a plane (normalised: str, number or orientation tuple)."""
    if key == "ImageOrientationPatient":
        value = getattr(plane, "ImageOrientationPatient", None)
        return None if value is None else tuple(
            round(float(v), _ORIENTATION_DECIMALS) + 0.0 for v in value)
    attributes = getattr(plane, "volume_attributes", None)
    value = attributes.get(key) if attributes is not None else getattr(plane, key, None)
    return _normalise(value, key)


_TEXT_KEYS = ("StackID",)  # SH: compared as text ('1' and '01' are different stacks)


def _normalise(value: Any, key: str = "") -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if key in _TEXT_KEYS:
        return str(value).strip()
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return tuple(_normalise(v) for v in value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value).strip()
    return int(number) if number.is_integer() else number


def _has_duplicates(planes: Sequence[Any]) -> bool:
    """True when two planes lie at the same position (mixed orientations count as a duplicate)."""
    orientations = {_value(p, "ImageOrientationPatient") for p in planes}
    if len(orientations) != 1 or None in orientations:
        return len(orientations) > 1
    normal = slice_normal(np.asarray(next(iter(orientations)), dtype=np.float64))
    try:
        points = np.array([[float(v) for v in p.ImagePositionPatient] for p in planes], dtype=np.float64)
    except (AttributeError, TypeError, ValueError):
        return False  # the geometry check names the missing attribute
    distances = np.sort(points @ normal)
    return bool(np.any(np.diff(distances) < POSITION_TOLERANCE_MM))


@dataclass(frozen=True)
class SourceVolumeInfo:
    """One volume found in a source series.

    Attributes
    ----------
    index
        Position in the list of volumes (the int selector).
    attributes
        ``{key: value}`` of the keys that tell the volumes apart (empty when
        the series holds one volume).
    plane_indices
        Indices of its planes in :func:`source_planes` order.
    instances
        Number of instances holding its planes.
    """

    index: int
    attributes: Mapping[str, Any]
    plane_indices: tuple[int, ...]
    instances: int

    @property
    def frames(self) -> int:
        """Number of planes (frames) of the volume."""
        return len(self.plane_indices)

    def selector(self) -> dict[str, Any]:
        """The ``volume=`` mapping that picks this volume (``{}`` for the only one)."""
        return {key: (list(value) if isinstance(value, tuple) else value) for key, value in self.attributes.items()}

    def describe(self) -> str:
        """E.g. ``"StackID 1: 20 frames"``."""
        names = ", ".join(f"{key} {_show(value)}" for key, value in self.attributes.items()) or "volume"
        return f"{names}: {self.frames} frames"


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) + "]"
    return str(value)


def group_volumes(planes: Sequence[Any], owners: Sequence[int]) -> list[SourceVolumeInfo]:
    """Split planes into volumes by :data:`VOLUME_KEYS` (see the module docstring for the rule).

    Keys in :data:`SPLIT_ALWAYS` split wherever they differ; each other key is
    added, in order, only while some group still has two planes at one
    position. Volumes are listed in the order of their key values.
    """
    keys: list[str] = []
    groups = _regroup(planes, keys)
    for key in VOLUME_KEYS:
        varies = len({_value(p, key) for p in planes}) > 1
        if not varies:
            continue
        bad = [g for g in groups.values() if _has_duplicates([planes[i] for i in g])]
        if key in SPLIT_ALWAYS or any(len({_value(planes[i], key) for i in g}) > 1 for g in bad):
            keys.append(key)
            groups = _regroup(planes, keys)
    ordered = sorted(groups.items(), key=lambda item: tuple(_sort_key(v) for v in item[0]))
    return [SourceVolumeInfo(n, dict(zip(keys, values)) if len(ordered) > 1 else {}, tuple(indices),
                             len({owners[i] for i in indices}))
            for n, (values, indices) in enumerate(ordered)]


def _regroup(planes: Sequence[Any], keys: Sequence[str]) -> dict[tuple, list[int]]:
    groups: dict[tuple, list[int]] = {}
    for index, plane in enumerate(planes):
        groups.setdefault(tuple(_value(plane, key) for key in keys), []).append(index)
    return groups


def _sort_key(value: Any) -> tuple:
    if value is None:
        return (0, "")
    if isinstance(value, (int, float)):
        return (1, float(value), "")
    if isinstance(value, tuple):
        return (2, 0.0, str(value))
    return (3, 0.0, str(value))


def describe_volumes(volumes: Sequence[SourceVolumeInfo], what: str) -> str:
    """``"<what> in 2 stacks (StackID 1: 20 frames; StackID 2: 12 frames)"`` for messages."""
    keys = list(dict.fromkeys(k for v in volumes for k in v.attributes))
    noun = "stacks" if keys in (["StackID"], ["ImageOrientationPatient"]) else "volumes"
    by = "/".join(keys) if keys else "position"
    return (f"{what} in {len(volumes)} {noun} (told apart by {by}: "
            + "; ".join(v.describe() for v in volumes) + ")")


def _how_to_choose(volumes: Sequence[SourceVolumeInfo]) -> str:
    example = volumes[0].selector()
    return (f"pass volume={example!r} (any of the volumes' values), or volume=<index 0..{len(volumes) - 1}> "
            "into this list, to LoadDicomSeries(d) / load_source_series")


@dataclass(frozen=True)
class SelectedVolume:
    """The planes of the chosen volume and what was found.

    Attributes
    ----------
    planes
        Its planes (datasets or :class:`FramePlane`), unsorted.
    plane_instances
        Index into the input datasets of each plane.
    info
        The chosen volume.
    volumes
        Every volume found.
    multiframe
        True when any plane is a frame of a multi-frame instance.
    """

    planes: list[Any]
    plane_instances: list[int]
    info: SourceVolumeInfo
    volumes: tuple[SourceVolumeInfo, ...]
    multiframe: bool


def _what(datasets: Sequence[Dataset], planes: Sequence[Any], multiframe: bool) -> str:
    if multiframe and len(datasets) == 1:
        return f"multi-frame instance with {len(planes)} frames"
    if multiframe:
        return f"{len(datasets)} multi-frame instances with {len(planes)} frames"
    return f"series of {len(datasets)} instances"


def select_volume(datasets: Sequence[Dataset], selector: VolumeSelector = None) -> SelectedVolume:
    """Group the planes of ``datasets`` into volumes and pick one.

    Parameters
    ----------
    datasets
        The image instances of one series (single- or multi-frame).
    selector
        See :data:`VolumeSelector`.

    Raises
    ------
    GeometryError
        Several volumes and no selector (the message lists them and how to
        choose), a selector matching several volumes, a SEG's frames spread
        over several volumes, or a multi-frame instance without geometry.
    InputError
        A selector naming no volume (an index out of range, a value found in
        none, an unknown key).
    InputTypeError
        A selector of another type.
    """
    planes, owners = source_planes(datasets)
    multiframe = any(isinstance(p, FramePlane) for p in planes)
    volumes = tuple(group_volumes(planes, owners))
    what = _what(datasets, planes, multiframe)
    info = _choose(volumes, planes, owners, datasets, selector, what)
    return SelectedVolume([planes[i] for i in info.plane_indices], [owners[i] for i in info.plane_indices],
                          info, volumes, multiframe)


def _choose(volumes: Sequence[SourceVolumeInfo], planes: Sequence[Any], owners: Sequence[int],
            datasets: Sequence[Dataset], selector: VolumeSelector, what: str) -> SourceVolumeInfo:
    if isinstance(selector, FrameReferences):
        return _by_references(volumes, planes, selector, what)
    if selector is None:
        if len(volumes) == 1:
            return volumes[0]
        raise GeometryError(f"{describe_volumes(volumes, what)}: {_how_to_choose(volumes)}")
    if isinstance(selector, (bool, np.bool_)) or not isinstance(selector, (int, np.integer, Mapping)):
        raise InputTypeError(
            "volume must be None, an int index or a mapping such as {'StackID': '1'}; "
            f"got {type(selector).__name__}")
    if not isinstance(selector, Mapping):
        if not 0 <= int(selector) < len(volumes):
            raise InputError(
                f"volume={int(selector)} is out of range: {describe_volumes(volumes, what)}; "
                f"valid indices are 0..{len(volumes) - 1}")
        return volumes[int(selector)]
    return _by_mapping(volumes, planes, selector, what)


def _by_mapping(volumes: Sequence[SourceVolumeInfo], planes: Sequence[Any], selector: Mapping[str, Any],
                what: str) -> SourceVolumeInfo:
    unknown = [key for key in selector if key not in VOLUME_KEYS]
    if unknown or not selector:
        raise InputError(f"volume keys must be among {list(VOLUME_KEYS)}; got {list(selector) or 'none'}")
    wanted = {key: (tuple(round(float(v), _ORIENTATION_DECIMALS) + 0.0 for v in value)
                    if key == "ImageOrientationPatient" else _normalise(value, key))
              for key, value in selector.items()}
    matches = [v for v in volumes if all(
        {_value(planes[i], key) for i in v.plane_indices} == {value} for key, value in wanted.items())]
    if not matches:
        raise InputError(f"volume={dict(selector)!r} matches none of the {describe_volumes(volumes, what)}")
    if len(matches) > 1:
        raise GeometryError(
            f"volume={dict(selector)!r} matches {len(matches)} volumes of the "
            f"{describe_volumes(volumes, what)}; {_how_to_choose(volumes)}")
    return matches[0]


def _plane_key(plane: Any) -> tuple[str, "int | None"]:
    if isinstance(plane, FramePlane):
        return plane.SOPInstanceUID, plane.frame_number
    return str(getattr(plane, "SOPInstanceUID", "")), None


def _by_references(volumes: Sequence[SourceVolumeInfo], planes: Sequence[Any], references: FrameReferences,
                   what: str) -> SourceVolumeInfo:
    """The volume holding the SEG's referenced frames (instance-level references as a fallback)."""
    keys = [_plane_key(p) for p in planes]
    frame_level = {(uid, frame) for uid, frame in references if frame is not None}
    instance_level = {uid for uid, _ in references}
    hits = [v for v in volumes if any(keys[i] in frame_level for i in v.plane_indices)]
    if not hits:  # single-frame planes, or a SEG without per-frame references
        hits = [v for v in volumes if any(keys[i][0] in instance_level and keys[i][1] is None
                                          for i in v.plane_indices)]
    if not hits and len(volumes) == 1:
        return volumes[0]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise GeometryError(
            f"the SEG references none of the frames of the source {describe_volumes(volumes, what)}; "
            f"{_how_to_choose(volumes)}")
    raise GeometryError(
        f"the SEG references frames of {len(hits)} volumes of the source "
        f"{describe_volumes(volumes, what)}; {_how_to_choose(volumes)}")


def seg_frame_references(seg: Any) -> FrameReferences:
    """Source ``(SOPInstanceUID, frame number or None)`` a SEG derives from.

    Read from each frame's Derivation Image Sequence (PS3.3 C.7.6.16.2.6:
    ReferencedSOPInstanceUID, ReferencedFrameNumber) and, for instance-level
    references, the Referenced Series Sequence (C.10.4). A reference without
    ReferencedFrameNumber has frame None.
    """
    found: set[tuple[str, "int | None"]] = set()
    for frame in seg.get("PerFrameFunctionalGroupsSequence", None) or []:
        for derivation in frame.get("DerivationImageSequence", None) or []:
            for source in derivation.get("SourceImageSequence", None) or []:
                uid = str(source.get("ReferencedSOPInstanceUID", "") or "")
                numbers = source.get("ReferencedFrameNumber")
                if not uid:
                    continue
                if numbers is None or numbers == "":
                    found.add((uid, None))
                else:
                    values = numbers if isinstance(numbers, (list, tuple)) or hasattr(numbers, "__iter__") \
                        and not isinstance(numbers, str) else [numbers]
                    found.update((uid, int(n)) for n in values)
    for series in seg.get("ReferencedSeriesSequence", None) or []:
        for instance in series.get("ReferencedInstanceSequence", None) or []:
            if instance.get("ReferencedSOPInstanceUID"):
                found.add((str(instance.ReferencedSOPInstanceUID), None))
    return FrameReferences(found)


def selector_json(info: "SourceVolumeInfo | None", volumes: Sequence[SourceVolumeInfo] = ()) -> str:
    """JSON text of the selector picking ``info`` ('' when the series holds one volume)."""
    if info is None or len(volumes) <= 1:
        return ""
    return json.dumps(info.selector(), sort_keys=True)


@dataclass(frozen=True)
class PreparedPlanes:
    """The chosen volume's planes sorted along the slice normal, ready for the series geometry.

    Attributes
    ----------
    planes
        Sorted planes: element ``k`` is frame ``k`` of the volume (our ``(F, R, C)`` order).
    references
        ``(SOPInstanceUID, frame number or None)`` of each plane.
    datasets
        Single-frame series: the planes themselves; multi-frame: the instances
        holding them, in the order of their first plane.
    filenames
        File of each element of ``datasets`` (None for datasets input).
    selection
        What was found and chosen.
    """

    planes: list[Any]
    references: list[tuple[str, "int | None"]]
    datasets: list[Dataset]
    filenames: "list[str] | None"
    selection: SelectedVolume


def prepare_planes(datasets: Sequence[Dataset], filenames: "Sequence[str] | None",
                   selector: VolumeSelector = None) -> PreparedPlanes:
    """Select the volume (:func:`select_volume`) and sort its planes by position (PS3.3 C.7.6.2)."""
    from monai_dicomseg.geometry.sorting import get_dataset_sort_index

    selection = select_volume(datasets, selector)
    order = get_dataset_sort_index(selection.planes)
    planes = [selection.planes[i] for i in order]
    owners = [selection.plane_instances[i] for i in order]
    if selection.multiframe:
        kept = list(dict.fromkeys(owners))
    else:
        kept = owners
    return PreparedPlanes(
        planes=planes, references=[_plane_key(p) for p in planes], datasets=[datasets[i] for i in kept],
        filenames=None if filenames is None else [str(filenames[i]) for i in kept], selection=selection)


def segmentation_sources(instances: Sequence[Dataset], references: Sequence[tuple[str, "int | None"]],
                         planes: Sequence[Any]) -> dict[str, Any]:
    """Keyword arguments of :class:`~monai_dicomseg.seg.segmentation.Segmentation` for a source volume.

    A single-frame series gives ``source_images`` in frame order. One
    multi-frame instance whose frames 1..N are the volume's planes in order
    gives ``source_images=[instance]`` (frame ``k + 1`` <-> plane ``k``);
    otherwise the planes' positions are passed explicitly, so that each SEG
    frame references the source frame at its position (Derivation Image
    Sequence with ReferencedFrameNumber, PS3.3 C.7.6.16.2.6).

    Raises
    ------
    UnsupportedError
        Planes from several multi-frame instances (a SEG references one
        multi-frame source here, as highdicom's ``Segmentation`` does).
    """
    from monai_dicomseg.errors import UnsupportedError

    if all(frame is None for _, frame in references):
        return {"source_images": list(instances)}
    if len(instances) != 1:
        raise UnsupportedError(
            f"writing a SEG over a source volume spread across {len(instances)} multi-frame instances is not "
            "supported: a SEG's source images are single-frame images or one multi-frame instance here, as in "
            "highdicom's Segmentation; convert the series to one multi-frame instance or to single-frame images")
    instance = instances[0]
    frames = int(instance.get("NumberOfFrames", 1) or 1)
    if [frame for _, frame in references] == list(range(1, frames + 1)):
        return {"source_images": [instance]}
    instance = _volume_view(instance, {int(frame) for _, frame in references if frame is not None})
    positions = []
    for plane in planes:
        item = Dataset()
        item.ImagePositionPatient = list(plane.ImagePositionPatient)
        positions.append([item])
    orientation = Dataset()
    orientation.ImageOrientationPatient = list(planes[0].ImageOrientationPatient)
    measures = Dataset()
    measures.PixelSpacing = list(planes[0].PixelSpacing)
    thickness = getattr(planes[0], "SliceThickness", None)
    if thickness is not None:
        measures.SliceThickness = thickness
    return {"source_images": [instance], "plane_positions": positions, "plane_orientation": [orientation],
            "pixel_measures": [measures]}


_OUT_OF_REACH_MM = "1e9"
"""Position given, in :func:`_volume_view`, to the frames of other volumes: no SEG plane matches it."""


def _volume_view(instance: Dataset, keep: "set[int]") -> Dataset:
    """A header view of a multi-frame ``instance`` whose frames not in ``keep`` no SEG plane can match.

    The SEG writer references, for each written frame, the source frames at
    its position (Derivation Image Sequence, PS3.3 C.7.6.16.2.6). Two volumes
    of one instance at the same positions (phases, echoes) would give each
    frame two references, one to the other volume. In this view (a new
    Dataset sharing the instance's elements; the instance is untouched) the
    other volumes' frames have their Plane Position moved out of reach, so
    only the volume's own frame matches; frame numbers, UIDs and everything
    the SEG copies are unchanged (a matched frame's position is its own).
    """
    per_frame = instance.get("PerFrameFunctionalGroupsSequence")
    if per_frame is None or all(k in keep for k in range(1, len(per_frame) + 1)):
        return instance
    view = Dataset()
    for element in instance:
        view.add(element)
    if hasattr(instance, "file_meta"):
        view.file_meta = instance.file_meta
    items = []
    for number, item in enumerate(per_frame, start=1):
        if number in keep:
            items.append(item)
            continue
        moved = Dataset()
        for element in item:
            if element.keyword != "PlanePositionSequence":
                moved.add(element)
        position = Dataset()
        position.ImagePositionPatient = [_OUT_OF_REACH_MM] * 3
        moved.PlanePositionSequence = [position]
        items.append(moved)
    view.PerFrameFunctionalGroupsSequence = items
    return view


def parse_selector(value: Any) -> VolumeSelector:
    """A selector from JSON text (``meta["source_volume"]``, a datalist entry); '' or None give None."""
    if value is None or isinstance(value, (int, Mapping, FrameReferences)):
        return value
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            parsed = json.loads(value)
        except ValueError:
            raise InputError(f"volume selector must be JSON such as '{{\"StackID\": \"1\"}}'; got {value!r}") from None
        if isinstance(parsed, (int, dict)) and not isinstance(parsed, bool):
            return parsed or None
        raise InputError(f"volume selector JSON must be an object or an int; got {value!r}")
    raise InputTypeError(f"volume selector must be JSON text, an int or a mapping; got {type(value).__name__}")


def selector_for_seg(seg_path: str, image_files: Sequence[str]) -> str:
    """Selector JSON of the volume of ``image_files`` that the SEG at ``seg_path`` references.

    Headers only (the SEG's Derivation Image / Referenced Series sequences,
    the series' functional groups). '' when the series holds one volume.

    Raises
    ------
    GeometryError
        The SEG's references do not pick one volume (the message lists them).
    """
    import pydicom

    from monai_dicomseg.io.source_series import load_source_geometry

    seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
    return load_source_geometry(list(image_files), volume=seg_frame_references(seg)).volume_selector


# --------------------------------------------------------------------------- which frames an image was built from

def _uid_hash(uid: str) -> str:
    """8 hex digits (32 bits) standing for a SOPInstanceUID in :func:`frames_key`."""
    import hashlib

    return hashlib.blake2b(uid.encode("ascii", "replace"), digest_size=4).hexdigest()


def _ranges(numbers: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3+7"``."""
    runs: list[list[int]] = []
    for number in sorted(set(numbers)):
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return "+".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def frames_key(references: Sequence[tuple[str, "int | None"]]) -> str:
    """Compact text naming the source frames an image was built from (``meta["source_frames"]``).

    One entry per source instance, sorted: 8 hex digits of a hash of its
    SOPInstanceUID, then, for a multi-frame instance, ``:`` and its frame
    numbers as ranges (``"1a2b3c4d:1-6+13"``); entries joined by ``,``. About
    9 characters per single-frame image and per multi-frame instance: small
    enough for ``MetaTensor.meta`` (a string, so batches collate), exact
    enough to tell the volumes of one series apart (a SEG reference outside
    the set is missed with probability ~ instances / 2**32).
    """
    frames: dict[str, list[int]] = {}
    for uid, frame in references:
        frames.setdefault(_uid_hash(str(uid)), [])
        if frame is not None:
            frames[_uid_hash(str(uid))].append(int(frame))
    return ",".join(f"{key}:{_ranges(numbers)}" if numbers else key for key, numbers in sorted(frames.items()))


def _parse_frames_key(text: str) -> "dict[str, set[int] | None]":
    """:func:`frames_key`'s text back to ``{uid hash: frame numbers, or None for a single-frame image}``."""
    table: dict[str, "set[int] | None"] = {}
    for entry in filter(None, text.split(",")):
        key, _, ranges = entry.partition(":")
        if not ranges:
            table[key] = None
            continue
        numbers: set[int] = set()
        for run in ranges.split("+"):
            first, _, last = run.partition("-")
            numbers.update(range(int(first), int(last or first) + 1))
        table[key] = numbers
    return table


def frames_outside(key: str, references: "Sequence[tuple[str, int | None]] | frozenset") -> list[tuple[str, "int | None"]]:
    """The ``(SOPInstanceUID, frame)`` references that are not among the frames :func:`frames_key` names.

    A reference without a frame number (an instance-level reference, PS3.3
    C.10.4) needs only its instance; a frame number needs that frame of a
    multi-frame instance (frame 1 of a single-frame image is the image).
    """
    table = _parse_frames_key(key)
    outside = []
    for uid, frame in sorted(references, key=lambda r: (str(r[0]), -1 if r[1] is None else int(r[1]))):
        frames = table.get(_uid_hash(str(uid)), ())
        if frames == () or (frame is not None and (frames is None and int(frame) != 1
                                                   or frames is not None and int(frame) not in frames)):
            outside.append((str(uid), frame))
    return outside


@dataclass(frozen=True)
class VolumeIdentity:
    """Which frames of its series an image was loaded from (the image's side of the SEG/volume rule).

    Attributes
    ----------
    frames
        :func:`frames_key` of its frames (``meta["source_frames"]``; '' when unknown: no check).
    selector
        Its ``volume=`` selector JSON (``meta["source_volume"]``; '' for a one-volume series).
    source
        Where it was loaded from (folder or file; '' when unknown), read again only to name the SEG's
        volume in an error.
    """

    frames: str = ""
    selector: str = ""
    source: str = ""

    @classmethod
    def from_meta(cls, meta: "Mapping[str, Any] | None") -> "VolumeIdentity | None":
        """From an image's metadata (``LoadDicomSeries(d)``'s keys); None when it names no frames."""
        from monai_dicomseg.meta_keys import MetaKey

        meta = meta or {}
        frames = str(meta.get(MetaKey.SOURCE_FRAMES, "") or "")
        if not frames:
            return None
        source = meta.get(MetaKey.FILENAME_OR_OBJ, "")
        return cls(frames, str(meta.get(MetaKey.SOURCE_VOLUME, "") or ""), source if isinstance(source, str) else "")

    def check(self, seg: Any) -> None:
        """Refuse a SEG that references frames/instances the image was not built from.

        A series with several volumes at the same positions (phases, echoes,
        acquisitions) gives identical grids: the geometry alone would place a
        SEG of phase 2 on an image of phase 1 without a trace. The SEG's
        references (:func:`seg_frame_references`: Referenced Series Sequence,
        PS3.3 C.10.4; per-frame Derivation Image Sequence, C.7.6.16.2.6) must
        be a subset of the image's frames.

        Raises
        ------
        GeometryError
            Naming the image's volume, the SEG's (when the series can be read
            again from ``source``) and the option ``volume=``.
        """
        outside = frames_outside(self.frames, seg_frame_references(seg))
        if not outside:
            return
        uid, frame = outside[0]
        first = f"SOPInstanceUID {uid}" + ("" if frame is None else f" frame {frame}")
        image = f"volume {self.selector}" if self.selector else "its only volume"
        raise GeometryError(
            f"the SEG references {len(outside)} source image(s)/frame(s) the reference image was not loaded from "
            f"(e.g. {first}): the image is {image} of its series, the SEG is on {self._seg_volume(seg)}; the grids "
            "may be identical but the voxels are not the SEG's. Load the image with LoadDicomSeries(d)(volume=<the SEG's "
            "volume>) (create_datalist writes it as the item's 'volume'; selector_for_seg(seg_path, files) gives it)")

    def _seg_volume(self, seg: Any) -> str:
        """The SEG's volume of the image's series, as a selector, when the series can be read again."""
        if not self.source:
            return "another volume or series"
        from monai_dicomseg.io.source_series import load_source_geometry

        try:
            selector = load_source_geometry(self.source, volume=seg_frame_references(seg),
                                            irregular_slices="resample").volume_selector
        except Exception:  # noqa: BLE001 - only to word the error: any failure leaves it unnamed
            return "another volume or series"
        return f"volume {selector}" if selector else "another volume or series"
