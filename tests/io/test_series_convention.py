"""Source-series loader and the MONAI axis/affine convention (checked against MONAI itself)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from monai.transforms import LoadImage

from monai_dicomseg import synthetic
from monai_dicomseg.errors import GeometryError, InputError
from monai_dicomseg.io.source_series import (
    from_monai_array,
    lps_affine_from_monai,
    load_source_geometry,
    load_source_series,
    monai_affine_from_lps,
    to_monai_array,
)
from monai_cases import truth_on_grid

SHAPE = (6, 14, 10)
ORIENTATIONS = ["axial", "sagittal", "coronal", "oblique"]


def _pydicom_load(folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LoadImage(reader="PydicomReader", image_only=True)(str(folder))


@pytest.mark.parametrize("orientation", ORIENTATIONS, ids=ORIENTATIONS)
@pytest.mark.parametrize("flip_rows", [False, True], ids=["rows", "flipped_rows"])
def test_matches_monai_pydicom_reader(tmp_path, orientation, flip_rows):
    """Our series in MONAI order == LoadImage(reader='PydicomReader') (instance numbers in order)."""
    datasets = synthetic.make_ct_series(SHAPE, orientation=orientation, flip_rows=flip_rows)
    synthetic.write_series(datasets, tmp_path)
    image = _pydicom_load(tmp_path)
    series = load_source_series(tmp_path)
    assert tuple(image.shape) == series.monai_array().shape == (SHAPE[2], SHAPE[1], SHAPE[0])
    np.testing.assert_allclose(np.asarray(image.affine), series.monai_affine("RAS"), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(image), series.monai_array())
    assert image.meta["space"] == "RAS"


def test_shuffled_instance_numbers_misorder_pydicom_reader_not_us(tmp_path):
    """PydicomReader sorts by InstanceNumber: voxels no longer sit where its affine says. Ours do."""
    labels = synthetic.make_ellipsoid_labels(SHAPE, 3, seed=2)
    datasets = synthetic.make_ct_series(SHAPE, labels=labels, shuffle_instance_numbers=True, seed=2)
    synthetic.write_series(datasets, tmp_path)
    hu = synthetic.labels_to_hounsfield(labels)
    series = load_source_series(tmp_path)
    truth = truth_on_grid(hu, datasets, series.monai_affine(), series.monai_array().shape)
    np.testing.assert_array_equal(series.monai_array(), truth)
    image = _pydicom_load(tmp_path)
    monai_truth = truth_on_grid(hu, datasets, np.asarray(image.affine), tuple(image.shape)) \
        if _aligned(image, datasets) else None
    assert monai_truth is None or not np.array_equal(np.asarray(image), monai_truth)


def _aligned(image, datasets) -> bool:
    try:
        truth_on_grid(np.zeros(SHAPE), datasets, np.asarray(image.affine), tuple(image.shape))
        return True
    except AssertionError:
        return False


@pytest.mark.parametrize("reverse_order", [False, True], ids=["forward", "reversed"])
def test_reversed_and_shuffled_files(tmp_path, reverse_order):
    labels = synthetic.make_ellipsoid_labels(SHAPE, 3, seed=3)
    datasets = synthetic.make_ct_series(SHAPE, labels=labels, reverse_order=reverse_order, shuffle=True, seed=3)
    synthetic.write_series(datasets, tmp_path)
    series = load_source_series(tmp_path)
    hu = synthetic.labels_to_hounsfield(labels)
    ordered = sorted(datasets, key=lambda ds: int(ds.InstanceNumber))
    truth = truth_on_grid(hu, ordered, series.monai_affine(), series.monai_array().shape)
    np.testing.assert_array_equal(series.monai_array(), truth)
    # headers-only geometry is the same, and datasets are given in the same order
    geometry = load_source_geometry(tmp_path)
    np.testing.assert_allclose(geometry.geometry.affine, series.volume.affine, atol=1e-6)
    assert [d.SOPInstanceUID for d in geometry.datasets] == [d.SOPInstanceUID for d in series.datasets]
    assert series.series_instance_uid == datasets[0].SeriesInstanceUID
    assert series.frame_of_reference_uid == datasets[0].FrameOfReferenceUID


def test_datasets_input_and_round_trips():
    datasets = synthetic.make_ct_series(SHAPE, orientation="oblique")
    series = load_source_series(datasets)
    assert series.filenames is None
    array = series.volume.array
    np.testing.assert_array_equal(from_monai_array(to_monai_array(array)), array)
    affine = series.volume.affine
    back = lps_affine_from_monai(monai_affine_from_lps(affine, SHAPE[0]), SHAPE[0])
    np.testing.assert_allclose(back, affine, atol=1e-9)
    lps = monai_affine_from_lps(affine, SHAPE[0], space="LPS")
    np.testing.assert_allclose(lps_affine_from_monai(lps, SHAPE[0], space="LPS"), affine, atol=1e-9)


def test_bad_sources(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_source_series(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no image instances"):
        load_source_series(tmp_path / "empty")
    synthetic.write_series(synthetic.make_ct_series(SHAPE, series_number=1), tmp_path / "two" / "a")
    two = synthetic.make_ct_series(SHAPE, series_number=2, seed=5)
    for k, ds in enumerate(two):
        ds.save_as(tmp_path / "two" / "a" / f"b{k}.dcm", enforce_file_format=True)
    with pytest.raises(InputError, match="holds 2 series"):
        load_source_series(tmp_path / "two" / "a")
    chosen = load_source_series(tmp_path / "two" / "a", series_instance_uid=two[0].SeriesInstanceUID)
    assert chosen.series_instance_uid == two[0].SeriesInstanceUID
    with pytest.raises(InputError, match="space must be"):
        monai_affine_from_lps(np.eye(4), 3, space="XYZ")
    with pytest.raises(InputError, match="at least 3 dimensions"):
        to_monai_array(np.zeros((2, 2)))
    broken = synthetic.make_ct_series(SHAPE)
    broken[2].ImagePositionPatient = [0.0, 0.0, 500.0]
    with pytest.raises(GeometryError):
        load_source_series(broken)
