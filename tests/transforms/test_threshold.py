"""FRACTIONAL SEGs in ``mode="labelmap"`` (and thresholded stacked channels) with ``threshold``."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.transforms import LoadImage
from pydicom.sr.codedict import codes

import monai_dicomseg as mds
from monai_dicomseg import synthetic
from monai_dicomseg.errors import InputError, InputTypeError, OverlapError
from monai_dicomseg.io.segload import load_seg_array
from monai_cases import COMMON, make_case, truth_on_grid

SHAPE = (8, 16, 16)
ORGANS = [("liver", codes.SCT.Liver), ("spleen", codes.SCT.Spleen), ("kidney", codes.SCT.Kidney)]


@pytest.fixture(scope="module")
def fractional(tmp_path_factory):
    """0.75 inside each organ's segment, 0.25 in the other organs' (all stored in 255ths)."""
    folder = tmp_path_factory.mktemp("fractional")
    labels = synthetic.make_ellipsoid_labels(SHAPE, n_labels=3, seed=4)
    datasets = synthetic.make_ct_series(shape=SHAPE, labels=labels, seed=4)
    synthetic.write_series(datasets, folder / "series")
    inside = labels[..., None] == np.arange(1, 4, dtype=labels.dtype)
    fractions = np.where(inside, 0.75, np.where(labels[..., None] > 0, 0.25, 0.0)).astype(np.float32)
    descriptions = [
        mds.seg.SegmentDescription(
            segment_number=n, segment_label=name, segmented_property_category=codes.SCT.Organ,
            segmented_property_type=code, algorithm_type=mds.seg.SegmentAlgorithmTypeValues.MANUAL)
        for n, (name, code) in enumerate(ORGANS, start=1)
    ]
    seg = mds.seg.Segmentation(
        source_images=datasets, pixel_array=fractions, segmentation_type="FRACTIONAL",
        segment_descriptions=descriptions, series_instance_uid=mds.UID(), sop_instance_uid=mds.UID(), **COMMON)
    path = folder / "fractional.dcm"
    seg.save_as(path)
    image = mds.LoadDicomSeries()(str(folder / "series"))
    truth = truth_on_grid(labels, datasets, np.asarray(image.affine), tuple(image.shape[1:]))
    return str(path), image, truth


def test_labelmap_with_threshold(fractional):
    path, image, truth = fractional
    label = mds.LoadDicomSeg(threshold=0.5)(path, image)
    assert label.shape == (1, *image.shape[1:]) and label.dtype == torch.uint8
    np.testing.assert_array_equal(np.asarray(label[0]), truth)
    assert label.meta["threshold"] == 0.5 and label.meta["segmentation_type"] == "FRACTIONAL"
    assert mds.segments_from_meta(label.meta)["channel_values"] == [0, 1, 2, 3]
    # 0.75 is stored as round(0.75 * 255) = 191, i.e. 0.749: it passes 0.74, not 0.8 or 1.0
    np.testing.assert_array_equal(np.asarray(mds.LoadDicomSeg(threshold=0.74)(path, image)[0]), truth)
    assert not mds.LoadDicomSeg(threshold=0.8)(path, image).any()
    assert not mds.LoadDicomSeg(threshold=1.0)(path, image).any()


def test_label_map_with_threshold(fractional):
    path, image, truth = fractional
    label = mds.LoadDicomSeg(threshold=0.5, label_map={"kidney": 1, "liver": 2})(path, image)
    np.testing.assert_array_equal(np.asarray(label[0]), np.select([truth == 3, truth == 1], [1, 2], 0))


def test_overlap_at_low_threshold(fractional):
    path, image, truth = fractional
    with pytest.raises(OverlapError, match=r"fractional\.dcm.*more than one segment"):
        mds.LoadDicomSeg(threshold=0.2)(path, image)
    resolved = mds.LoadDicomSeg(threshold=0.2, skip_overlap_checks=True)(path, image)
    np.testing.assert_array_equal(np.asarray(resolved[0]), np.where(truth > 0, 3, 0))  # highest value wins


def test_stacked_with_threshold(fractional):
    path, image, truth = fractional
    fractions = mds.LoadDicomSeg(mode="stacked")(path, image)
    assert fractions.dtype.is_floating_point and fractions.meta["threshold"] == 0.0
    binary = mds.LoadDicomSeg(mode="stacked", threshold=0.5)(path, image)
    assert binary.dtype == torch.uint8 and binary.shape == fractions.shape
    for channel in range(3):
        np.testing.assert_array_equal(np.asarray(binary[channel]), truth == channel + 1)
        np.testing.assert_array_equal(np.asarray(binary[channel]), np.asarray(fractions[channel]) >= 0.5)


def test_load_seg_array_and_reader(fractional):
    path, image, truth = fractional
    loaded = load_seg_array(path, mode="labelmap", threshold=0.5)  # numpy only: the CLI's entry point
    assert loaded.array.shape[0] == 1 and loaded.array.dtype == np.uint8
    assert set(np.unique(loaded.array)) == {0, 1, 2, 3}
    read = LoadImage(reader=mds.DicomSegReader(threshold=0.5, find_series=False), image_only=True)(path)  # SEG grid
    np.testing.assert_array_equal(np.asarray(read), loaded.array)


def test_without_threshold_is_a_clear_error(fractional):
    path, _, _ = fractional
    with pytest.raises(InputError, match=r"'.*fractional\.dcm'.*needs a threshold: pass threshold="):
        load_seg_array(path)
    with pytest.raises(InputError, match=r"LoadDicomSegd\[key 'label'\] SEG .*fractional\.dcm.*threshold="):
        mds.LoadDicomSegd("label")({"label": path})


@pytest.mark.parametrize("bad, error", [(0, InputError), (0.0, InputError), (1.5, InputError), (-0.1, InputError),
                                        ("0.5", InputTypeError), (True, InputTypeError)],
                         ids=["zero", "zero_float", "above_one", "negative", "string", "bool"])
def test_bad_threshold(fractional, bad, error):
    path, _, _ = fractional
    with pytest.raises(error, match="threshold"):
        mds.LoadDicomSeg(threshold=bad)
    with pytest.raises(error, match="threshold"):
        load_seg_array(path, threshold=bad)


def test_threshold_ignored_for_binary(tmp_path):
    case = make_case(tmp_path, shape=SHAPE)
    plain = mds.LoadDicomSeg()(str(case.seg_path))
    with_threshold = mds.LoadDicomSeg(threshold=0.5)(str(case.seg_path))
    assert np.array_equal(np.asarray(plain), np.asarray(with_threshold))
    assert with_threshold.meta["threshold"] == 0.0

