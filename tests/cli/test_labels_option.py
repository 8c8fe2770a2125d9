"""``from-nifti --labels`` follows the writer's labels contract (lists, bundle channel_def JSON, background)."""
from __future__ import annotations

import json

import nibabel
import numpy as np
import pydicom
import pytest

from monai_dicomseg.io.source_series import monai_affine_from_lps, to_monai_array

CHANNEL_DEF = {"0": "background", "1": "liver", "2": "spleen", "3": "kidney"}


def _segments(path):
    seg = pydicom.dcmread(path)
    return [str(item.SegmentLabel) for item in seg.SegmentSequence]


@pytest.mark.parametrize("labels", [
    "liver,spleen,kidney",
    "background,liver,spleen,kidney",
    "Background, liver, spleen, kidney",
    json.dumps(CHANNEL_DEF),
    json.dumps({"3": "kidney", "1": "liver", "2": "spleen"}),
], ids=["list", "list_background", "list_Background", "channel_def", "json_unordered"])
def test_labels_forms_agree(axial_case, cli, tmp_path, labels):
    nifti = axial_case.nifti(tmp_path / "labels.nii.gz")
    out = tmp_path / "seg.dcm"
    status, _, stderr = cli("from-nifti", nifti, axial_case.folder, out, "--labels", labels, "--type", "LABELMAP")
    assert status == 0, stderr
    assert _segments(out) == ["liver", "spleen", "kidney"]
    back = tmp_path / "back.nii.gz"
    assert cli("to-nifti", out, back, "--source", axial_case.folder)[0] == 0
    np.testing.assert_array_equal(np.asarray(nibabel.load(str(back)).dataobj),
                                  np.asarray(nibabel.load(str(nifti)).dataobj))


def test_sparse_keys_are_renumbered(axial_case, cli, tmp_path):
    truth = axial_case.truth.copy()
    truth[truth == 3] = 7
    nifti = tmp_path / "sparse.nii.gz"
    nibabel.save(nibabel.Nifti1Image(np.asfortranarray(to_monai_array(truth)),
                                     monai_affine_from_lps(axial_case.affine, truth.shape[0])), str(nifti))
    out = tmp_path / "seg.dcm"
    status, _, stderr = cli("from-nifti", nifti, axial_case.folder, out, "--labels",
                            json.dumps({"1": "liver", "2": "spleen", "7": "kidney"}))
    assert status == 0, stderr
    assert _segments(out) == ["liver", "spleen", "kidney"]


@pytest.mark.parametrize("labels, message", [
    ("background,liver", "holds label values 1..3 but --labels names 1"),
    (json.dumps({"0": "background", "1": "liver", "2": "spleen"}), "holds label values 1..3 but --labels names 2"),
    (json.dumps({"0": "liver", "1": "spleen", "2": "a", "3": "b"}), "label value 0"),
    ("liver,background,spleen", "first entry"),
    ('{"liver": 1}', "must map label values to names"),
    ('{"liver": "spleen"}', "labels keys"),
    ("{not json", "not valid JSON"),
])
def test_labels_errors(axial_case, cli, tmp_path, labels, message):
    nifti = axial_case.nifti(tmp_path / "labels.nii.gz")
    status, _, stderr = cli("from-nifti", nifti, axial_case.folder, tmp_path / "seg.dcm", "--labels", labels)
    assert status == 1 and message in stderr, stderr
    assert not (tmp_path / "seg.dcm").exists()


def test_stacked_background_volume_is_dropped(axial_case, cli, tmp_path):
    volumes = [np.asfortranarray(to_monai_array(axial_case.truth == k)).astype(np.uint8) for k in (0, 1, 2)]
    nifti = tmp_path / "stack.nii.gz"
    nibabel.save(nibabel.Nifti1Image(np.stack(volumes, axis=-1),
                                     monai_affine_from_lps(axial_case.affine, axial_case.truth.shape[0])), str(nifti))
    out = tmp_path / "seg.dcm"
    status, _, stderr = cli("from-nifti", nifti, axial_case.folder, out, "--labels", "background,liver,spleen")
    assert status == 0, stderr
    assert _segments(out) == ["liver", "spleen"]
    status, _, stderr = cli("from-nifti", nifti, axial_case.folder, tmp_path / "x.dcm", "--labels",
                            json.dumps(CHANNEL_DEF))
    assert status == 1 and "as a list" in stderr
