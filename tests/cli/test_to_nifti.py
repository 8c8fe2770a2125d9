"""``to-nifti``: SEG -> NIfTI on the source grid or the SEG's extent; against the truth and dcmqi."""
from __future__ import annotations

import json

import nibabel
import numpy as np
import pytest

from monai_dicomseg.io.source_series import from_monai_array, monai_affine_from_lps
from oracles import dcmqi_labels_on_source_grid, dcmqi_segimage2itkimage, one_hot, source_grid


def _seg(case, cli, tmp_path, *options):
    labels_path = case.nifti(tmp_path / "labels.nii.gz")
    out = tmp_path / "seg.dcm"
    status, _, stderr = cli("from-nifti", labels_path, case.folder, out, "--labels", "liver,spleen,kidney",
                            *options)
    assert status == 0, stderr
    return out


@pytest.mark.dcmqi
@pytest.mark.parametrize("segmentation_type", ["BINARY", "LABELMAP"], ids=["binary", "labelmap"])
def test_source_grid_equals_truth_and_dcmqi(axial_case, cli, tmp_path, segmentation_type):
    seg = _seg(axial_case, cli, tmp_path, "--type", segmentation_type)
    out = tmp_path / "out.nii.gz"
    status, _, stderr = cli("to-nifti", seg, out, "--source", axial_case.folder)
    assert status == 0, stderr
    image = nibabel.load(str(out))
    # the truth on the full source grid, including slices without frames
    np.testing.assert_array_equal(from_monai_array(np.asarray(image.dataobj)), axial_case.truth)
    np.testing.assert_allclose(image.affine, monai_affine_from_lps(axial_case.affine, axial_case.truth.shape[0]),
                               atol=1e-6)
    sidecar = json.loads((tmp_path / "out.json").read_text())
    attributes = sidecar["segmentAttributes"][0]
    # dcmqi, voxel for voxel through world coordinates
    grid = source_grid(axial_case.datasets)
    theirs = dcmqi_labels_on_source_grid(dcmqi_segimage2itkimage(seg, tmp_path / "dcmqi", merge_segments=True),
                                         grid)
    ours = dcmqi_labels_on_source_grid([(image, attributes)], grid)
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(ours, one_hot(axial_case.truth, 3))


def test_seg_extent_per_segment_and_stack(axial_case, cli, tmp_path):
    seg = _seg(axial_case, cli, tmp_path)
    grid = source_grid(axial_case.datasets)
    status, _, stderr = cli("to-nifti", seg, tmp_path / "own.nii.gz")
    assert status == 0, stderr
    image = nibabel.load(str(tmp_path / "own.nii.gz"))
    attributes = json.loads((tmp_path / "own.json").read_text())["segmentAttributes"][0]
    assert [a["labelID"] for a in attributes] == [1, 2, 3]
    np.testing.assert_array_equal(dcmqi_labels_on_source_grid([(image, attributes)], grid),
                                  one_hot(axial_case.truth, 3))
    status, stdout, stderr = cli("to-nifti", seg, tmp_path / "seg.nii.gz", "--per-segment", "--source",
                                 axial_case.folder)
    assert status == 0, stderr
    for number in (1, 2, 3):
        data = from_monai_array(np.asarray(nibabel.load(str(tmp_path / f"seg-{number}.nii.gz")).dataobj))
        np.testing.assert_array_equal(data, np.where(axial_case.truth == number, number, 0))
    status, _, stderr = cli("to-nifti", seg, tmp_path / "stack.nii.gz", "--stack", "--source", axial_case.folder)
    assert status == 0, stderr
    data = from_monai_array(np.asarray(nibabel.load(str(tmp_path / "stack.nii.gz")).dataobj))
    np.testing.assert_array_equal(data.astype(bool), one_hot(axial_case.truth, 3))


def test_existing_output_refused_then_overwritten(axial_case, cli, tmp_path):
    seg = _seg(axial_case, cli, tmp_path)
    out = tmp_path / "out.nii.gz"
    out.write_bytes(b"keep")
    status, _, stderr = cli("to-nifti", seg, out)
    assert status == 1 and "--overwrite" in stderr and out.read_bytes() == b"keep"
    status, _, stderr = cli("to-nifti", seg, out, "--overwrite")
    assert status == 0, stderr
