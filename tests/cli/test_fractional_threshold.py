"""FRACTIONAL SEGs become label maps / BINARY / LABELMAP only with ``--threshold``."""
from __future__ import annotations

import nibabel
import numpy as np
import pydicom
import pytest

from monai_dicomseg.io.source_series import from_monai_array, to_monai_array


@pytest.fixture
def fractional_seg(axial_case, cli, tmp_path):
    """A FRACTIONAL SEG of 3 segments: 0.8 inside each organ, 0.1 elsewhere (and 0 in no frame)."""
    volumes = [np.asfortranarray(to_monai_array((axial_case.truth == k) * 0.7 + 0.1)).astype(np.float32)
               for k in (1, 2, 3)]
    path = tmp_path / "probs.nii.gz"
    from monai_dicomseg.io.source_series import monai_affine_from_lps

    nibabel.save(nibabel.Nifti1Image(np.stack(volumes, axis=-1),
                                     monai_affine_from_lps(axial_case.affine, axial_case.truth.shape[0])), str(path))
    out = tmp_path / "fractional.dcm"
    status, _, stderr = cli("from-nifti", path, axial_case.folder, out, "--type", "FRACTIONAL",
                            "--labels", "liver,spleen,kidney")
    assert status == 0, stderr
    assert pydicom.dcmread(out, stop_before_pixels=True).SegmentationType == "FRACTIONAL"
    return out


@pytest.mark.parametrize("segmentation_type", ["BINARY", "LABELMAP"])
def test_convert_needs_threshold(fractional_seg, cli, tmp_path, axial_case, segmentation_type):
    out = tmp_path / "converted.dcm"
    status, _, stderr = cli("convert", fractional_seg, out, "--type", segmentation_type)
    assert status == 1 and "--threshold" in stderr and "FRACTIONAL" in stderr
    assert not out.exists()
    status, _, stderr = cli("convert", fractional_seg, out, "--type", segmentation_type, "--threshold", "0.5",
                            "--source", axial_case.folder)
    assert status == 0, stderr
    nifti = tmp_path / "back.nii.gz"
    status, _, stderr = cli("to-nifti", out, nifti, "--source", axial_case.folder)
    assert status == 0, stderr
    labels = from_monai_array(np.asarray(nibabel.load(str(nifti)).dataobj))
    np.testing.assert_array_equal(labels, axial_case.truth)


def test_to_nifti_label_map_needs_threshold(fractional_seg, cli, tmp_path, axial_case):
    out = tmp_path / "labels.nii.gz"
    status, _, stderr = cli("to-nifti", fractional_seg, out, "--label-map")
    assert status == 1 and "--threshold" in stderr
    assert not out.exists()
    status, _, stderr = cli("to-nifti", fractional_seg, out, "--threshold", "0.5", "--source", axial_case.folder)
    assert status == 0, stderr
    labels = from_monai_array(np.asarray(nibabel.load(str(out)).dataobj))
    np.testing.assert_array_equal(labels, axial_case.truth)
    # without --threshold the fractions are kept (4D float stack), as before
    stack = tmp_path / "stack.nii.gz"
    status, _, stderr = cli("to-nifti", fractional_seg, stack, "--source", axial_case.folder)
    assert status == 0, stderr
    assert nibabel.load(str(stack)).shape[-1] == 3


def test_threshold_overlap_and_range(fractional_seg, cli, tmp_path, axial_case):
    status, _, stderr = cli("to-nifti", fractional_seg, tmp_path / "x.nii.gz", "--threshold", "0.05")
    assert status == 1 and "more than one segment" in stderr
    status, _, stderr = cli("to-nifti", fractional_seg, tmp_path / "y.nii.gz", "--threshold", "1.5")
    assert status == 1 and "--threshold must be in (0, 1]" in stderr
    status, _, stderr = cli("to-nifti", fractional_seg, tmp_path / "z", "--threshold", "0.5", "--per-segment",
                            "--no-sidecar")
    assert status == 1  # .nii(.gz) required
    out = tmp_path / "masks.nii.gz"
    status, _, stderr = cli("to-nifti", fractional_seg, out, "--threshold", "0.5", "--stack",
                            "--source", axial_case.folder)
    assert status == 0, stderr
    masks = np.asarray(nibabel.load(str(out)).dataobj)
    assert masks.dtype == np.uint8 and masks.shape[-1] == 3


def test_threshold_on_binary_is_an_error(axial_case, cli, tmp_path):
    labels_path = axial_case.nifti(tmp_path / "labels.nii.gz")
    seg = tmp_path / "seg.dcm"
    assert cli("from-nifti", labels_path, axial_case.folder, seg, "--labels", "liver,spleen,kidney")[0] == 0
    status, _, stderr = cli("to-nifti", seg, tmp_path / "o.nii.gz", "--threshold", "0.5")
    assert status == 1 and "FRACTIONAL SEGs only" in stderr


def test_batch_convert_and_to_nifti_pass_threshold(fractional_seg, cli, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "case.dcm").write_bytes(fractional_seg.read_bytes())
    status, _, stderr = cli("batch", "convert", inputs, tmp_path / "out", "--type", "LABELMAP")
    assert status == 1 and "--threshold" in stderr
    status, _, stderr = cli("batch", "convert", inputs, tmp_path / "out2", "--type", "LABELMAP", "--threshold", "0.5")
    assert status == 0, stderr
    assert pydicom.dcmread(tmp_path / "out2" / "case.dcm", stop_before_pixels=True).SegmentationType == "LABELMAP"
    status, _, stderr = cli("batch", "to-nifti", inputs, tmp_path / "nii", "--threshold", "0.5")
    assert status == 0, stderr
    assert nibabel.load(str(tmp_path / "nii" / "case.nii.gz")).ndim == 3
