"""Tests of the synthetic source-image builders (:mod:`monai_dicomseg.synthetic`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from monai_dicomseg import synthetic
from oracles import dciodvfy_errors, source_grid


def _normal(ds: pydicom.Dataset) -> np.ndarray:
    cosines = np.asarray(ds.ImageOrientationPatient, dtype=float)
    return np.cross(cosines[:3], cosines[3:])


@pytest.mark.parametrize("n_labels", [1, 3, 12, 40], ids=lambda n: f"{n}labels")
def test_labels_present_and_dtype(n_labels: int) -> None:
    labels = synthetic.make_ellipsoid_labels((5, 16, 20), n_labels=n_labels, seed=3)
    assert labels.shape == (5, 16, 20)
    assert labels.dtype == np.uint8
    assert set(np.unique(labels)) == set(range(n_labels + 1))


def test_labels_uint16_beyond_255() -> None:
    labels = synthetic.make_ellipsoid_labels((4, 20, 20), n_labels=300, seed=1)
    assert labels.dtype == np.uint16
    assert set(np.unique(labels)) == set(range(301))


def test_labels_are_deterministic() -> None:
    first = synthetic.make_ellipsoid_labels((6, 32, 40), 4, seed=7)
    second = synthetic.make_ellipsoid_labels((6, 32, 40), 4, seed=7)
    np.testing.assert_array_equal(first, second)


@pytest.mark.dciodvfy
def test_ct_slice_is_valid(tmp_path: Path) -> None:
    paths = synthetic.write_series(synthetic.make_ct_series((3, 16, 20)), tmp_path)
    assert dciodvfy_errors(paths[0]) == []


@pytest.mark.dciodvfy
def test_enhanced_ct_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "ect.dcm"
    synthetic.make_enhanced_ct((3, 16, 20)).save_as(path, enforce_file_format=True)
    assert dciodvfy_errors(path) == []


def test_series_shares_study_series_and_frame_of_reference() -> None:
    series = synthetic.make_ct_series((4, 16, 20))
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert len({ds[keyword].value for ds in series}) == 1, keyword
    assert len({ds.SOPInstanceUID for ds in series}) == 4
    assert [ds.InstanceNumber for ds in series] == [1, 2, 3, 4]


@pytest.mark.parametrize("orientation", ["axial", "coronal", "sagittal", "oblique"])
@pytest.mark.parametrize("reverse_order", [False, True], ids=["forward", "reversed"])
def test_slices_are_evenly_spaced_along_normal(orientation: str, reverse_order: bool) -> None:
    spacing = (2.5, 0.8, 0.7)
    series = synthetic.make_ct_series((5, 16, 20), spacing, orientation,
                                      reverse_order=reverse_order)
    normal = _normal(series[0])
    along = np.array([np.asarray(ds.ImagePositionPatient, dtype=float) @ normal for ds in series])
    expected_step = -spacing[0] if reverse_order else spacing[0]
    np.testing.assert_allclose(np.diff(along), expected_step, atol=1e-4)
    # every slice lies in a plane parallel to the first (no in-plane drift)
    first = np.asarray(series[0].ImagePositionPatient, dtype=float)
    for ds in series:
        offset = np.asarray(ds.ImagePositionPatient, dtype=float) - first
        np.testing.assert_allclose(offset - (offset @ normal) * normal, 0, atol=1e-4)
    assert [float(v) for v in series[0].PixelSpacing] == [0.8, 0.7]


def test_flip_rows_negates_column_direction() -> None:
    plain = synthetic.make_ct_series((2, 8, 8), orientation="axial")
    flipped = synthetic.make_ct_series((2, 8, 8), orientation="axial", flip_rows=True)
    assert [float(v) for v in plain[0].ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    assert [float(v) for v in flipped[0].ImageOrientationPatient] == [1, 0, 0, 0, -1, 0]


def test_explicit_cosines_and_rejection() -> None:
    series = synthetic.make_ct_series((2, 8, 8), orientation=(0, 1, 0, 0, 0, -1))
    assert [float(v) for v in series[0].ImageOrientationPatient] == [0, 1, 0, 0, 0, -1]
    with pytest.raises(ValueError, match="orientation"):
        synthetic.make_ct_series((2, 8, 8), orientation=(1, 0, 0, 1, 0, 0))
    with pytest.raises(ValueError, match="orientation"):
        synthetic.make_ct_series((2, 8, 8), orientation="diagonal")


def test_pixels_encode_labels_as_hounsfield(synthetic_ct, synthetic_labels) -> None:
    hu = np.stack([
        ds.pixel_array.astype(np.int32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        for ds in synthetic_ct
    ])
    assert hu.shape == synthetic_labels.shape
    for label in range(1, int(synthetic_labels.max()) + 1):
        values = hu[synthetic_labels == label]
        expected = synthetic.ORGAN_HU[label - 1]
        assert abs(np.median(values) - expected) <= 3, label
    assert hu.min() == synthetic.AIR_HU


def test_shuffles_keep_geometry_recoverable() -> None:
    labels = synthetic.make_ellipsoid_labels((5, 12, 14), 2, seed=2)
    series = synthetic.make_ct_series((5, 12, 14), labels=labels, shuffle=True,
                                      shuffle_instance_numbers=True, seed=5)
    normal = _normal(series[0])
    ordered = sorted(series, key=lambda ds: np.asarray(ds.ImagePositionPatient, float) @ normal)
    assert ordered != series  # seed 5 actually shuffles
    hu = np.stack([ds.pixel_array for ds in ordered]).astype(np.int32) - 1024
    np.testing.assert_array_equal(hu, synthetic.labels_to_hounsfield(labels))
    assert sorted(ds.InstanceNumber for ds in series) == [1, 2, 3, 4, 5]


def test_enhanced_ct_matches_series_geometry(synthetic_ct, synthetic_enhanced_ct) -> None:
    series_grid = source_grid(synthetic_ct)
    enhanced_grid = source_grid([synthetic_enhanced_ct])
    np.testing.assert_allclose(series_grid.positions, enhanced_grid.positions)
    np.testing.assert_allclose(series_grid.row_cosine, enhanced_grid.row_cosine)
    assert series_grid.shape == enhanced_grid.shape
    frames = synthetic_enhanced_ct.pixel_array
    np.testing.assert_array_equal(frames, np.stack([ds.pixel_array for ds in synthetic_ct]))


def test_write_series_round_trips(synthetic_ct, tmp_path: Path) -> None:
    paths = synthetic.write_series(synthetic_ct[:2], tmp_path / "out")
    assert [p.name for p in paths] == ["0001.dcm", "0002.dcm"]
    back = pydicom.dcmread(paths[1])
    assert back.SOPInstanceUID == synthetic_ct[1].SOPInstanceUID
    assert back.file_meta.MediaStorageSOPInstanceUID == back.SOPInstanceUID
    np.testing.assert_array_equal(back.pixel_array, synthetic_ct[1].pixel_array)
