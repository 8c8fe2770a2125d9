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
from monai_dicomseg.geometry.series import get_volume_from_series
from monai_dicomseg.geometry.sorting import get_dataset_sort_index
from monai_dicomseg.geometry.volume import Volume, VolumeGeometry

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
        is frame ``k`` of ``volume`` (our ``(F, R, C)`` order).
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
    """

    datasets: list[Dataset]
    volume: "Volume | None"
    series_instance_uid: str
    frame_of_reference_uid: "str | None"
    geometry: VolumeGeometry
    filenames: "list[str] | None" = field(default=None)

    def monai_affine(self, space: str = "RAS") -> np.ndarray:
        """``(4, 4) float64`` affine of the volume in MONAI order (see module docstring)."""
        return monai_affine_from_lps(self.geometry.affine, self.geometry.spatial_shape[0], space=space)

    def monai_array(self) -> np.ndarray:
        """Voxel array in MONAI order ``(C, R, S)`` (a view; see :func:`to_monai_array`)."""
        if self.volume is None:
            raise InputError("this SourceSeries was loaded headers-only; it has no voxel array")
        return to_monai_array(self.volume.array)


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
        datasets = list(source)  # type: ignore[arg-type]
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
) -> SourceSeries:
    """Load a single-frame image series, sorted by position, as an LPS volume.

    Parameters
    ----------
    source
        Folder, list of file paths, or list of pydicom datasets of the series.
    series_instance_uid
        Choose a series when the source holds several.
    dtype
        dtype of the voxel array (modality rescale applied when present).
    apply_modality_transform
        See :func:`~monai_dicomseg.geometry.series.stored_to_output_transform`.

    Returns
    -------
    SourceSeries
        ``volume.array`` is ``(F, R, C)`` ``dtype``.

    Raises
    ------
    InputError
        Missing/unreadable/empty source (see :func:`read_series_datasets`).
    GeometryError
        If the instances do not form one regularly spaced volume.
    """
    datasets, filenames = read_series_datasets(source, series_instance_uid=series_instance_uid)
    datasets, filenames = _sorted(datasets, filenames)
    volume = get_volume_from_series(datasets, dtype=dtype, apply_modality_transform=apply_modality_transform)
    return SourceSeries(
        datasets=datasets,
        volume=volume,
        series_instance_uid=str(datasets[0].SeriesInstanceUID),
        frame_of_reference_uid=volume.frame_of_reference_uid,
        geometry=volume.get_geometry(),
        filenames=filenames,
    )


def load_source_geometry(
    source: SeriesSource, *, series_instance_uid: "str | None" = None
) -> SourceSeries:
    """Like :func:`load_source_series` but reads headers only (``volume`` is None).

    The geometry is checked as strictly as when loading pixels (one regular
    volume; PS3.3 C.7.6.2).
    """
    from monai_dicomseg.geometry.affine import affine_from_image_plane, regular_slice_spacing
    from monai_dicomseg.geometry.sorting import check_common_orientation, read_image_position

    datasets, filenames = read_series_datasets(
        source, series_instance_uid=series_instance_uid, stop_before_pixels=True
    )
    datasets, filenames = _sorted(datasets, filenames)
    orientation = check_common_orientation(datasets)
    positions = np.stack([read_image_position(ds, i) for i, ds in enumerate(datasets)])
    if len(datasets) > 1:
        spacing = regular_slice_spacing(positions, orientation)
    else:
        spacing = float(getattr(datasets[0], "SpacingBetweenSlices", None) or 1.0)
    pixel_spacing = [float(v) for v in datasets[0].PixelSpacing]
    affine = affine_from_image_plane(positions[0], orientation, pixel_spacing, spacing)
    shape = (len(datasets), int(datasets[0].Rows), int(datasets[0].Columns))
    frame_of_reference = getattr(datasets[0], "FrameOfReferenceUID", None)
    geometry = VolumeGeometry(affine, shape, "PATIENT",
                              None if frame_of_reference is None else str(frame_of_reference))
    return SourceSeries(
        datasets=datasets, volume=None, series_instance_uid=str(datasets[0].SeriesInstanceUID),
        frame_of_reference_uid=geometry.frame_of_reference_uid, geometry=geometry, filenames=filenames,
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
