"""NIfTI -> SEG -> NIfTI is lossless for BINARY and LABELMAP over several geometries."""
from __future__ import annotations

import nibabel
import numpy as np
import pytest

GEOMETRIES = {
    "axial": {"orientation": "axial"},
    "sagittal": {"orientation": "sagittal", "shape": (5, 24, 20)},
    "oblique": {"orientation": "oblique"},
    "axial-reversed": {"orientation": "axial", "reverse_order": True},
    "coronal-reversed": {"orientation": "coronal", "reverse_order": True, "shape": (7, 20, 30)},
}


#: (type, compression); BINARY supports JPEG 2000 compression only (slow), so it is tested uncompressed
TYPES = [("BINARY", "none"), ("LABELMAP", "none"), ("LABELMAP", "rle")]


@pytest.mark.parametrize("segmentation_type, compress", TYPES, ids=["binary", "labelmap", "labelmap-rle"])
@pytest.mark.parametrize("geometry", list(GEOMETRIES), ids=list(GEOMETRIES))
def test_nifti_seg_nifti_lossless(make_series, cli, tmp_path, geometry, segmentation_type, compress):
    case = make_series("ct", n_labels=4, **GEOMETRIES[geometry])
    original = case.nifti(tmp_path / "in.nii.gz")
    seg = tmp_path / "seg.dcm"
    status, _, stderr = cli("from-nifti", original, case.folder, seg, "--type", segmentation_type,
                            "--compress", compress)
    assert status == 0, stderr
    back = tmp_path / "back.nii.gz"
    status, _, stderr = cli("to-nifti", seg, back, "--source", case.folder)
    assert status == 0, stderr
    before, after = nibabel.load(str(original)), nibabel.load(str(back))
    np.testing.assert_array_equal(np.asarray(after.dataobj), np.asarray(before.dataobj))
    np.testing.assert_allclose(after.affine, before.affine, atol=1e-4)
    # the sidecar feeds from-nifti again and gives the same segments
    seg2 = tmp_path / "seg2.dcm"
    status, _, stderr = cli("from-nifti", back, case.folder, seg2, "--metadata", tmp_path / "back.json",
                            "--type", segmentation_type)
    assert status == 0, stderr
    back2 = tmp_path / "back2.nii.gz"
    assert cli("to-nifti", seg2, back2, "--source", case.folder)[0] == 0
    np.testing.assert_array_equal(np.asarray(nibabel.load(str(back2)).dataobj), np.asarray(before.dataobj))
