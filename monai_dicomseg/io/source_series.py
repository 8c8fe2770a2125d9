"""Source-series loading and the MONAI axis/affine convention for DICOM volumes.

One geometry code path serves both the image and its segmentation: a source
series is sorted *spatially* (by Image Position (Patient) along the slice
normal, PS3.3 C.7.6.2), never by Instance Number or file name, and turned into
a :class:`~monai_dicomseg.geometry.volume.Volume` by
:func:`~monai_dicomseg.geometry.series.get_volume_from_series`.

The MONAI convention
--------------------
Our internal arrays are ``(F, R, C)`` (frames, rows, columns) with an LPS
affine whose frame axis runs along ``cross(column_cosines, row_cosines)``
(highdicom's ``Volume``). MONAI's DICOM readers return something else. For a
series folder, ``LoadImage(reader="PydicomReader")`` (``swap_ij=True``,
``affine_lps_to_ras=True``, the defaults) stacks ``pixel_array`` ``(R, C)``
slices along a new *last* axis in Instance Number order and then swaps the
first two axes, so its array is ``(C, R, S)`` (column, row, slice), and its
affine has column 0 = row cosines x column spacing, column 1 = column cosines
x row spacing, column 2 = (last - first position) / (S - 1), translation =
position of the first slice, then rows 0 and 1 negated (LPS -> RAS).
``ITKReader`` returns the same ``(C, R, S)`` order (ITK index ``i, j, k``)
with slices sorted along ``cross(row_cosines, column_cosines)`` by GDCM.

The MONAI convention used throughout this package ("MONAI order") is that
one: spatial axes ``(C, R, S)``, slice axis ``S`` along
``cross(row_cosines, column_cosines)``, affine in RAS (LPS on request). It
equals what ``PydicomReader`` gives whenever Instance Numbers increase along
that normal (the usual case, and what :func:`~monai_dicomseg.synthetic.make_ct_series`
writes), and what ``ITKReader`` gives always. Relative to our volumes this is
a transpose ``(2, 1, 0)`` plus a reversal of the frame axis::

    monai[c, r, s] == ours[F - 1 - s, r, c]

Note
----
``PydicomReader`` sorts by Instance Number only: a series whose Instance
Numbers are not spatially monotonic loads with its slices scrambled while its
affine is computed from the first and last instance. :func:`load_source_series`
(and :class:`~monai_dicomseg.transforms.load_series.LoadDicomSeries`) sort by
position and do not have that problem.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from monai_dicomseg.enums import SEG_SOP_CLASS_UIDS  # re-exported: skipped when loading a series
from monai_dicomseg.errors import GeometryError, InputError, InputTypeError
from monai_dicomseg.geometry.affine import (
    RAS,
    check_space,
    flip_affine,
    lps_to_ras_affine,
    permute_affine,
    ras_to_lps_affine,
)
from monai_dicomseg.geometry.series import get_series_volume, plan_series_grid
from monai_dicomseg.geometry.slice_grid import SliceGrid
from monai_dicomseg.geometry.sorting import get_dataset_sort_index
from monai_dicomseg.geometry.volume import Volume, VolumeGeometry
from monai_dicomseg.io.source_volumes import (
    SourceVolumeInfo,
    VolumeSelector,
    frames_key,
    prepare_planes,
    segmentation_sources,
    selector_json,
)

__all__ = [
    "SEG_SOP_CLASS_UIDS",
    "SourceSeries",
    "SeriesSource",
    "list_dicom_files",
    "read_series_datasets",
    "load_source_series",
    "load_source_geometry",
    "to_monai_array",
    "from_monai_array",
    "monai_affine_from_lps",
    "lps_affine_from_monai",
    "volume_to_monai",
]


SeriesSource = Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]], Sequence[Dataset]]
"""A folder, a list of files, or a list of pydicom datasets of one series."""


@dataclass
class SourceSeries:
    """A source image series sorted spatially, with its volume.

    Attributes
    ----------
    datasets
        The single-frame datasets sorted along the slice normal: element ``k``
        is frame ``k`` of ``volume`` (our ``(F, R, C)`` order). For a
        multi-frame source: the instances holding the volume's frames (see
        ``frame_references`` for frame ``k``).
    volume
        ``(F, R, C)`` volume with an LPS affine (``None`` when loaded
        headers-only by :func:`load_source_geometry`).
    series_instance_uid
        SeriesInstanceUID shared by the datasets.
    frame_of_reference_uid
        FrameOfReferenceUID shared by the datasets (None if absent).
    filenames
        Paths of the datasets in the order of ``datasets`` (None when the
        source was given as datasets).
    geometry
        Geometry of the volume (always set).
    frame_references
        ``(SOPInstanceUID, frame number)`` of each frame ``k`` of the volume;
        frame number None for a single-frame instance
        (:mod:`monai_dicomseg.io.source_volumes`).
    planes
        The image plane of each frame ``k`` (a dataset, or a
        :class:`~monai_dicomseg.io.source_volumes.FramePlane`).
    volume_info, volumes
        The volume loaded and every volume found in the source (one unless the
        series holds several stacks, phases, echoes...; see ``volume=``).
    slice_grid
        How the volume's frames relate to the sorted source frames
        (:class:`~monai_dicomseg.geometry.slice_grid.SliceGrid`: sheared,
        filled or resampled; ``irregular_slices=``). With ``"fill"`` or
        ``"resample"`` the volume may hold frames no source image holds
        (``filled_slices``); :meth:`source_frames` keeps those that one does.
    """

    datasets: list[Dataset]
    volume: "Volume | None"
    series_instance_uid: str
    frame_of_reference_uid: "str | None"
    geometry: VolumeGeometry
    filenames: "list[str] | None" = field(default=None)
    frame_references: "list[tuple[str, int | None]] | None" = field(default=None)
    planes: "list[Any] | None" = field(default=None)
    volume_info: "SourceVolumeInfo | None" = field(default=None)
    volumes: "tuple[SourceVolumeInfo, ...]" = field(default=())
    slice_grid: "SliceGrid | None" = field(default=None)

    @property
    def tilt_degrees(self) -> float:
        """Gantry/detector tilt: angle between the slice step and the normal of the image planes (0.0: none)."""
        return 0.0 if self.slice_grid is None else self.slice_grid.tilt_degrees

    @property
    def filled_slices(self) -> list[int]:
        """Frames of the volume (our ``(F, R, C)`` order) that no source image holds."""
        return [] if self.slice_grid is None else self.slice_grid.filled_slices

    def source_frames(self, array: np.ndarray) -> np.ndarray:
        """Frames of ``array`` (on this volume's grid, frames first) that lie on a source image, in order.

        A SEG is written for the source images only: filled frames have none
        and are dropped (no source reference is ever invented for them).
        """
        grid = self.slice_grid
        if grid is None or grid.kind == "source":
            return array
        from monai_dicomseg.seg.inputs import StackedSegmentSource

        if isinstance(array, StackedSegmentSource):
            return _source_planes_of(array, grid)
        return grid.source_frames(array)

    @property
    def is_multiframe(self) -> bool:
        """True when the volume's frames come from multi-frame instances."""
        return any(frame is not None for _, frame in (self.frame_references or []))

    @property
    def frames_key(self) -> str:
        """:func:`~monai_dicomseg.io.source_volumes.frames_key` of the volume's frames (``meta["source_frames"]``).

        Set when the source holds several volumes or multi-frame instances
        (where a SEG of another volume can share the grid); '' otherwise (one
        volume of single-frame images: the SeriesInstanceUID check suffices).
        """
        if not self.frame_references or (len(self.volumes) <= 1 and not self.is_multiframe):
            return ""
        return frames_key(self.frame_references)

    @property
    def volume_selector(self) -> str:
        """JSON of the ``volume=`` selector that picks this volume ('' when the source holds one)."""
        return selector_json(self.volume_info, self.volumes)

    def segmentation_sources(self) -> dict[str, Any]:
        """``source_images`` (and plane geometry) for a SEG over this volume (references by frame)."""
        if self.frame_references is None or self.planes is None:
            return {"source_images": list(self.datasets)}
        return segmentation_sources(self.datasets, self.frame_references, self.planes)

    def monai_affine(self, space: str = "RAS") -> np.ndarray:
        """``(4, 4) float64`` affine of the volume in MONAI order (see module docstring)."""
        return monai_affine_from_lps(self.geometry.affine, self.geometry.spatial_shape[0], space=space)

    def monai_array(self) -> np.ndarray:
        """Voxel array in MONAI order ``(C, R, S)`` (a view; see :func:`to_monai_array`)."""
        if self.volume is None:
            raise InputError("this SourceSeries was loaded headers-only; it has no voxel array")
        return to_monai_array(self.volume.array)


def _source_planes_of(stacked: Any, grid: SliceGrid) -> Any:
    """A ``StackedSegmentSource`` served without the planes no source image lies on (filled slices)."""
    from monai_dicomseg.seg.inputs import StackedSegmentSource

    grid.source_frames(np.zeros(grid.number_of_slices))  # refuses a grid some source slice is off
    keep = grid.source_slices >= 0
    rank = np.concatenate([[0], np.cumsum(keep)])

    def blocks() -> Any:
        for start, stop, first, last, values in stacked.blocks():
            mask = keep[start:stop]
            if mask.any():
                yield int(rank[start]), int(rank[stop]), first, last, values[:, mask]

    return StackedSegmentSource((int(keep.sum()), *stacked.shape[1:]), stacked.dtype, blocks)


# --------------------------------------------------------------------------- reading

def list_dicom_files(folder: "str | os.PathLike[str]") -> list[str]:
    """Sorted paths of the files directly in ``folder`` that carry the DICOM preamble.

    Raises
    ------
    InputError
        If ``folder`` is not a directory.
    """
    path = Path(folder)
    if not path.is_dir():
        raise InputError(f"source must be an existing folder; {str(folder)!r} is not a directory")
    return sorted(str(p) for p in path.iterdir() if p.is_file() and pydicom.misc.is_dicom(str(p)))


def _read(path: str, stop_before_pixels: bool) -> Dataset:
    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except FileNotFoundError:
        raise InputError(f"source file {path!r} does not exist") from None
    except (pydicom.errors.InvalidDicomError, OSError, ValueError) as error:
        raise InputError(f"source file {path!r} is not readable as DICOM: {error}") from None


def read_series_datasets(
    source: SeriesSource,
    *,
    series_instance_uid: "str | None" = None,
    stop_before_pixels: bool = False,
) -> tuple[list[Dataset], "list[str] | None"]:
    """Read the image datasets of one series (unsorted) and their file names.

    Parameters
    ----------
    source
        A folder (all DICOM files directly inside it), a list of file paths,
        or a list of datasets. Segmentation instances are skipped.
    series_instance_uid
        Keep only this series; required when ``source`` holds several.
    stop_before_pixels
        Read headers only.

    Returns
    -------
    tuple
        ``(datasets, filenames)``; ``filenames`` is None for datasets input.

    Raises
    ------
    InputError
        If the source is missing, empty, unreadable, or holds several series
        and ``series_instance_uid`` is not given (or matches none).
    InputTypeError
        If ``source`` is not a folder, paths or datasets.
    """
    from monai_dicomseg.dicomweb import local_paths

    source = local_paths(source)  # a DicomWebSeries / 'dicomweb+' URI -> cached file paths
    filenames: "list[str] | None"
    if isinstance(source, (str, os.PathLike)):
        if not Path(source).exists():
            raise InputError(f"source series {str(source)!r} does not exist")
        if Path(source).is_dir():
            paths = list_dicom_files(source)
        else:
            paths = [str(source)]
        datasets = [_read(p, stop_before_pixels) for p in paths]
        filenames = paths
    elif isinstance(source, Sequence) and len(source) > 0 and all(isinstance(d, Dataset) for d in source):
        datasets = list(source)  # type: ignore[arg-type]  # every item was checked to be a Dataset on the line above
        filenames = None
    elif isinstance(source, Sequence) and all(isinstance(p, (str, os.PathLike)) for p in source):
        filenames = [str(p) for p in source]
        datasets = [_read(p, stop_before_pixels) for p in filenames]
    else:
        raise InputTypeError(
            "source must be a folder, a list of file paths or a list of pydicom Datasets; "
            f"got {type(source).__name__}"
        )
    keep = [i for i, ds in enumerate(datasets) if str(getattr(ds, "SOPClassUID", "")) not in SEG_SOP_CLASS_UIDS]
    uids = sorted({str(getattr(datasets[i], "SeriesInstanceUID", "")) for i in keep})
    if series_instance_uid is not None:
        keep = [i for i in keep if str(getattr(datasets[i], "SeriesInstanceUID", "")) == str(series_instance_uid)]
        if not keep:
            raise InputError(
                f"source holds no instance of SeriesInstanceUID {series_instance_uid!r}; found {uids}"
            )
    elif len(uids) > 1:
        raise InputError(
            f"source holds {len(uids)} series ({uids}); pass series_instance_uid to choose one"
        )
    if not keep:
        raise InputError(f"source {_describe(source)} holds no image instances")
    datasets = [datasets[i] for i in keep]
    if filenames is not None:
        filenames = [filenames[i] for i in keep]
    return datasets, filenames


def _describe(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return repr(str(source))
    return f"<{len(source)} items>" if isinstance(source, Sequence) else repr(source)


def _sorted(datasets: list[Dataset], filenames: "list[str] | None") -> tuple[list[Dataset], "list[str] | None"]:
    """Sort datasets (and file names) along the slice normal, our frame order."""
    order = get_dataset_sort_index(datasets)
    return [datasets[i] for i in order], None if filenames is None else [filenames[i] for i in order]


def load_source_series(
    source: SeriesSource,
    *,
    series_instance_uid: "str | None" = None,
    dtype: "type | str | np.dtype" = np.float32,
    apply_modality_transform: "bool | None" = None,
    volume: VolumeSelector = None,
    irregular_slices: str = "error",
) -> SourceSeries:
    """Load an image series (single- or multi-frame), sorted by position, as an LPS volume.

    A sheared stack (gantry/detector tilt) loads exactly, with a sheared
    affine (:mod:`monai_dicomseg.geometry.sheared`); gaps and irregular
    spacing follow ``irregular_slices``.

    Parameters
    ----------
    source
        Folder, list of file paths, or list of pydicom datasets of the series.
    series_instance_uid
        Choose a series when the source holds several.
    dtype
        dtype of the voxel array (modality rescale applied when present).
    apply_modality_transform
        See :func:`~monai_dicomseg.geometry.series.stored_to_output_transform`
        (a multi-frame frame's rescale comes from its Pixel Value
        Transformation / Real World Value Mapping functional group).
    volume
        Which volume when the source holds several (stacks, temporal
        positions, echoes, acquisitions): an index into the volumes listed by
        the error, ``{key: value}`` over
        :data:`~monai_dicomseg.io.source_volumes.VOLUME_KEYS` (e.g.
        ``{"StackID": "1"}``, ``{"TemporalPositionIndex": 2}``), or a SEG's
        :class:`~monai_dicomseg.io.source_volumes.FrameReferences`.
    irregular_slices
        ``"error"`` (default: a GeometryError naming the gap), ``"fill"`` (a
        regular grid, missing slices filled with the Pixel Padding Value or
        the series minimum) or ``"resample"`` (linear interpolation onto a
        regular grid at the median spacing); see
        :mod:`monai_dicomseg.geometry.slice_grid`.

    Returns
    -------
    SourceSeries
        ``volume.array`` is ``(F, R, C)`` ``dtype``.

    Raises
    ------
    InputError
        Missing/unreadable/empty source (see :func:`read_series_datasets`).
    GeometryError
        If the instances do not form one regularly spaced volume, or hold
        several volumes and ``volume`` does not pick one (the message lists them).
    """
    datasets, filenames = read_series_datasets(source, series_instance_uid=series_instance_uid)
    prepared = prepare_planes(datasets, filenames, volume)
    loaded, grid = get_series_volume(prepared.planes, irregular_slices=irregular_slices, dtype=dtype,
                                     apply_modality_transform=apply_modality_transform)
    return SourceSeries(
        datasets=prepared.datasets,
        volume=loaded,
        series_instance_uid=str(prepared.datasets[0].SeriesInstanceUID),
        frame_of_reference_uid=loaded.frame_of_reference_uid,
        geometry=loaded.get_geometry(),
        filenames=prepared.filenames,
        frame_references=prepared.references,
        planes=prepared.planes,
        volume_info=prepared.selection.info,
        volumes=prepared.selection.volumes,
        slice_grid=grid,
    )


def load_source_geometry(
    source: SeriesSource, *, series_instance_uid: "str | None" = None, volume: VolumeSelector = None,
    irregular_slices: str = "error",
) -> SourceSeries:
    """Like :func:`load_source_series` but reads headers only (``volume`` is None).

    The geometry is checked as strictly as when loading pixels (one volume,
    PS3.3 C.7.6.2; sheared stacks accepted, gaps as ``irregular_slices`` says).
    """
    datasets, filenames = read_series_datasets(
        source, series_instance_uid=series_instance_uid, stop_before_pixels=True
    )
    prepared = prepare_planes(datasets, filenames, volume)
    instances, datasets = prepared.datasets, prepared.planes
    grid, geometry = plan_series_grid(datasets, irregular_slices=irregular_slices)
    return SourceSeries(
        datasets=instances, volume=None, series_instance_uid=str(datasets[0].SeriesInstanceUID),
        frame_of_reference_uid=geometry.frame_of_reference_uid, geometry=geometry, filenames=prepared.filenames,
        frame_references=prepared.references, planes=prepared.planes, volume_info=prepared.selection.info,
        volumes=prepared.selection.volumes, slice_grid=grid,
    )


# --------------------------------------------------------------------------- conventions

def to_monai_array(array: np.ndarray) -> np.ndarray:
    """Reorder an ``(F, R, C, *rest)`` array of ours to MONAI order ``(C, R, S, *rest)``.

    ``out[c, r, s] = array[F - 1 - s, r, c]`` (a view, no copy). Trailing
    (channel) axes are kept in place.
    """
    if array.ndim < 3:
        raise InputError(f"array must have at least 3 dimensions (F, R, C); got shape {array.shape}")
    axes = (2, 1, 0, *range(3, array.ndim))
    return np.transpose(array[::-1], axes)


def from_monai_array(array: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_monai_array`: ``(C, R, S, *rest)`` -> ``(F, R, C, *rest)``."""
    if array.ndim < 3:
        raise InputError(f"array must have at least 3 dimensions (C, R, S); got shape {array.shape}")
    axes = (2, 1, 0, *range(3, array.ndim))
    return np.transpose(array, axes)[::-1]


def monai_affine_from_lps(volume_affine: np.ndarray, number_of_frames: int, space: str = "RAS") -> np.ndarray:
    """Affine of :func:`to_monai_array`'s output from one of our ``(F, R, C)`` LPS affines.

    Parameters
    ----------
    volume_affine
        ``(4, 4)`` map from ``(frame, row, column)`` to LPS mm.
    number_of_frames
        ``F``, needed because the frame axis is reversed.
    space
        ``"RAS"`` (MONAI's default, ``affine_lps_to_ras=True``) or ``"LPS"``.

    Returns
    -------
    numpy.ndarray
        ``(4, 4) float64`` map from ``(c, r, s)`` to ``space`` mm.
    """
    flipped = flip_affine(np.asarray(volume_affine, dtype=np.float64), (int(number_of_frames), 1, 1), [0])
    affine = permute_affine(flipped, (2, 1, 0))
    return lps_to_ras_affine(affine) if check_space(space) == RAS else affine


def lps_affine_from_monai(affine: np.ndarray, number_of_slices: int, space: str = "RAS") -> np.ndarray:
    """Inverse of :func:`monai_affine_from_lps`: our ``(F, R, C)`` LPS affine."""
    matrix = np.asarray(affine, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise InputError(f"affine must have shape (4, 4); got {matrix.shape}")
    lps = ras_to_lps_affine(matrix) if check_space(space) == RAS else matrix.copy()
    permuted = permute_affine(lps, (2, 1, 0))
    return flip_affine(permuted, (int(number_of_slices), 1, 1), [0])


def volume_to_monai(volume: "Volume", space: str = "RAS") -> tuple[np.ndarray, np.ndarray]:
    """``(array in MONAI order, affine in space)`` of a :class:`Volume`."""
    return to_monai_array(volume.array), monai_affine_from_lps(volume.affine, volume.spatial_shape[0], space)


def check_spatial_affine(affine: Any, argument: str = "affine") -> np.ndarray:
    """Return a ``(4, 4) float64`` copy of a MONAI affine (torch or numpy) or raise GeometryError."""
    try:
        matrix = np.asarray(affine.detach().cpu().numpy() if hasattr(affine, "detach") else affine,
                            dtype=np.float64)
    except (TypeError, ValueError):
        raise GeometryError(f"{argument} must be a (4, 4) numeric matrix; got {type(affine).__name__}") from None
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise GeometryError(f"{argument} must be a finite (4, 4) matrix; got shape {matrix.shape}")
    return matrix
