"""LoadImaged(image) + LoadDicomSegd(label, ref_key="image"): every label voxel on its image voxel.

Truth comes from :mod:`monai_cases` (raw DICOM attributes, not our geometry code).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from monai.transforms import Compose, LoadImage, LoadImaged

from monai_dicomseg import LoadDicomSeg, LoadDicomSegd
from monai_dicomseg.io.segments import segments_from_meta
from monai_dicomseg.transforms.load_series import LoadDicomSeriesd
from monai_cases import make_case, truth_on_grid, write_dcmqi_seg

CASES = {
    "axial": {},
    "sagittal": {"orientation": "sagittal"},
    "coronal": {"orientation": "coronal"},
    "oblique": {"orientation": "oblique"},
    "flipped_rows": {"flip_rows": True},
    "reversed_order": {"reverse_order": True},
    "oblique_flipped_reversed": {"orientation": "oblique", "flip_rows": True, "reverse_order": True},
    "labelmap_type": {"segmentation_type": "LABELMAP"},
    "fractional_type": {"segmentation_type": "FRACTIONAL"},
    "highdicom_omitted_scrambled": {"writer": "highdicom", "scramble_sources": True},
    "highdicom_sagittal_reversed": {"writer": "highdicom", "orientation": "sagittal", "reverse_order": True},
    "ours_scrambled_kept_empty": {"scramble_sources": True, "omit_empty": False},
}


def _pipeline(reader: str, mode: str):
    image = (LoadImaged("image", reader="PydicomReader", ensure_channel_first=True, image_only=True)
             if reader == "PydicomReader" else LoadDicomSeriesd("image"))
    return Compose([image, LoadDicomSegd("label", ref_key="image", mode=mode)])


def _check(out, case):
    image, label = out["image"], out["label"]
    assert label.shape[1:] == image.shape[1:]
    np.testing.assert_allclose(np.asarray(label.affine), np.asarray(image.affine), atol=1e-6)
    truth = truth_on_grid(case.labels, case.datasets, np.asarray(image.affine), tuple(image.shape[1:]))
    assert truth.any()
    return label, truth


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
@pytest.mark.parametrize("reader", ["PydicomReader", "dicomseg"], ids=["monai_pydicom", "ours"])
def test_alignment(tmp_path, name, reader):
    case = make_case(tmp_path, **CASES[name])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stacked = _pipeline(reader, "stacked")({"image": str(case.series_folder), "label": str(case.seg_path)})
    label, truth = _check(stacked, case)
    assert label.shape[0] == 3
    for channel in range(3):
        np.testing.assert_array_equal(np.asarray(label[channel]) > 0.5, truth == channel + 1)
    if CASES[name].get("segmentation_type") == "FRACTIONAL":
        assert label.dtype.is_floating_point and float(label.max()) == 1.0
        return
    labelmap = _pipeline(reader, "labelmap")({"image": str(case.series_folder), "label": str(case.seg_path)})
    label, truth = _check(labelmap, case)
    np.testing.assert_array_equal(np.asarray(label[0]), truth)


@pytest.mark.dcmqi
@pytest.mark.parametrize("name", ["axial", "oblique_flipped_reversed"], ids=["axial", "oblique_flipped_reversed"])
def test_alignment_dcmqi(tmp_path, name):
    case = make_case(tmp_path, **CASES[name])
    path = write_dcmqi_seg(tmp_path, case.series_folder, case.labels, case.datasets)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = _pipeline("PydicomReader", "labelmap")({"image": str(case.series_folder), "label": str(path)})
    label, truth = _check(out, case)
    np.testing.assert_array_equal(np.asarray(label[0]), truth)
    table = segments_from_meta(label.meta)["segments"]
    assert [row["label"] for row in table] == ["liver", "spleen", "kidney"]


def test_own_geometry_matches_monai_load_image(tmp_path):
    """Without a reference (no omitted frames) the SEG's grid is the one MONAI gives its source."""
    case = make_case(tmp_path, orientation="oblique", omit_empty=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image = LoadImage(reader="PydicomReader", image_only=True)(str(case.series_folder))
    label = LoadDicomSeg(mode="labelmap")(str(case.seg_path))
    assert tuple(label.shape[1:]) == tuple(image.shape)
    np.testing.assert_allclose(np.asarray(label.affine), np.asarray(image.affine), atol=1e-4)
    truth = truth_on_grid(case.labels, case.datasets, np.asarray(image.affine), tuple(image.shape))
    np.testing.assert_array_equal(np.asarray(label[0]), truth)
    lps = LoadDicomSeg(mode="labelmap", space="LPS")(str(case.seg_path))
    assert lps.meta["space"] == "LPS"
    np.testing.assert_allclose(np.diag([-1, -1, 1, 1]) @ np.asarray(lps.affine), np.asarray(image.affine), atol=1e-4)


def test_own_geometry_with_omitted_frames_spans_present_frames(tmp_path):
    case = make_case(tmp_path, empty_slices=(0, 1))
    label = LoadDicomSeg(mode="labelmap")(str(case.seg_path))
    truth = truth_on_grid(case.labels, case.datasets, np.asarray(label.affine), tuple(label.shape[1:]))
    np.testing.assert_array_equal(np.asarray(label[0]), truth)
    assert label.shape[-1] <= case.labels.shape[0] - 2
