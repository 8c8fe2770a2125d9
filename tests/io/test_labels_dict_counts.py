"""A ``labels`` mapping (a bundle's ``channel_def``) must name every output channel / present label value.

Issue 21: a 3-entry ``channel_def`` on a 4-channel softmax wrote channels 1 and 2 only and
exited 0 (channel 3's voxels became background); the same names as a list raised the count
error. Now a mapping that leaves a channel (one-hot / softmax / sigmoid) or a present label
value (argmax labels) unnamed is the same InputError naming both counts, through
``plan_output_segments``, ``SaveDicomSegd``, ``DicomSegWriter`` and ``from-nifti --labels``.
Both sides of the boundary: the 4-entry mapping passes.
"""
from __future__ import annotations

import json
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor

from monai_dicomseg import synthetic
from monai_dicomseg.errors import InputError
from monai_dicomseg.io import prediction
from monai_dicomseg.io.source_series import load_source_geometry, to_monai_array
from monai_dicomseg.io.writer import DicomSegWriter
from monai_dicomseg.transforms.save import SaveDicomSegd

SHORT = {"0": "background", "1": "liver", "2": "spleen"}
FULL = {**SHORT, "3": "kidney"}
SHAPE = (6, 24, 20)


def plan(*args, **kwargs):
    return prediction.plan_output_segments(*args, algorithm_type="MANUAL", **kwargs)


# --------------------------------------------------------------------------- the planner


@pytest.mark.parametrize("kind", ["probabilities", "onehot"])
@pytest.mark.parametrize("labels", [SHORT, {int(k): v for k, v in SHORT.items()}], ids=["str_keys", "int_keys"])
def test_short_mapping_on_four_channels_is_a_count_error(kind, labels):
    with pytest.raises(InputError, match=r"4 channel\(s\) but labels names 3 .*channel\(s\) 3 have no entry"):
        plan(kind, 4, labels, partition=True)


@pytest.mark.parametrize("kind", ["probabilities", "onehot"])
def test_full_mapping_on_four_channels_passes(kind):
    result = plan(kind, 4, FULL, partition=True)
    assert result.background == 0 and dict(zip(result.sources, result.labels)) == {
        1: "liver", 2: "spleen", 3: "kidney"}


def test_mapping_without_background_key():
    """Channel 0 is the background of a >1-channel output when not named (as before); the rest must be named."""
    with pytest.raises(InputError, match=r"channel\(s\) 3 have no entry"):
        plan("probabilities", 4, {"1": "liver", "2": "spleen"}, partition=True)
    result = plan("probabilities", 4, {"1": "liver", "2": "spleen", "3": "kidney"}, partition=True)
    assert result.background == 0 and result.sources == [1, 2, 3]


def test_sigmoid_mapping_must_name_every_channel():
    with pytest.raises(InputError, match=r"3 channel\(s\) but labels names 2 .*channel\(s\) 2 have no entry"):
        plan("probabilities", 3, {0: "liver", 1: "spleen"}, partition=False)
    assert plan("probabilities", 3, {0: "liver", 1: "spleen", 2: "kidney"}, partition=False).sources == [0, 1, 2]


def test_background_false_leaves_channel_zero_unnamed():
    with pytest.raises(InputError, match=r"channel\(s\) 0 have no entry"):
        plan("probabilities", 3, {1: "liver", 2: "spleen"}, background=False)


def test_explicit_channels_keep_their_meaning():
    """``channels=`` says which channels to write: the mapping then names those (no count error)."""
    result = plan("probabilities", 4, SHORT, channels=[1, 2], partition=True)
    assert result.sources == [1, 2] and result.background == 0


def test_list_and_mapping_agree_on_the_count():
    with pytest.raises(InputError, match=r"4 channel\(s\) but labels names 3"):
        plan("probabilities", 4, list(SHORT.values()), partition=True)
    with pytest.raises(InputError, match=r"4 channel\(s\) but labels names 3"):
        plan("probabilities", 4, SHORT, partition=True)


def test_argmax_labels_value_three():
    with pytest.raises(InputError, match=r"label values 1\.\.3 but labels names 2.*values 3 have no entry"):
        plan("labels", 1, SHORT, present=[0, 1, 2, 3])
    assert plan("labels", 1, FULL, present=[0, 1, 2, 3]).sources == [1, 2, 3]
    assert plan("labels", 1, SHORT, present=[0, 1, 2]).sources == [1, 2]  # value 3 absent: nothing unnamed


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def case(tmp_path: Path):
    """``(folder, SourceSeries, truth (F, R, C) sorted, labels MetaTensor (1, X, Y, Z) with values 0..3)``."""
    labels = synthetic.make_ellipsoid_labels(SHAPE, n_labels=3, seed=5)
    datasets = synthetic.make_ct_series(SHAPE, labels=labels, seed=5)
    folder = tmp_path / "ct"
    synthetic.write_series(datasets, folder)
    source = load_source_geometry(folder)
    order = {str(ds.SOPInstanceUID): k for k, ds in enumerate(datasets)}
    truth = labels[[order[str(ds.SOPInstanceUID)] for ds in source.datasets]]
    assert set(np.unique(truth)) == {0, 1, 2, 3}
    array = np.ascontiguousarray(to_monai_array(truth))[None].astype(np.float32)
    tensor = MetaTensor(torch.from_numpy(array), affine=torch.as_tensor(source.monai_affine()),
                        meta={"filename_or_obj": str(folder)})
    return folder, source, truth, tensor


def _softmax(label: MetaTensor) -> MetaTensor:
    onehot = torch.nn.functional.one_hot(label[0].long(), 4).permute(3, 0, 1, 2).float()
    return MetaTensor(torch.softmax(onehot * 4.0, dim=0), affine=label.affine, meta=dict(label.meta))


def _segment_labels(path: "str | Path") -> list[str]:
    return [str(item.SegmentLabel) for item in pydicom.dcmread(path).SegmentSequence]


@pytest.mark.parametrize("output", ["softmax", "argmax"])
def test_save_dicom_segd(tmp_path, case, output):
    *_, label = case
    pred = _softmax(label) if output == "softmax" else label
    out = tmp_path / "out"
    match = r"4 channel\(s\) but labels names 3" if output == "softmax" else r"label values 1\.\.3 but labels names 2"
    with pytest.raises(InputError, match=match):
        SaveDicomSegd(keys="pred", output_dir=out, labels=SHORT)({"pred": pred})
    assert not list(out.glob("*.dcm"))
    written = SaveDicomSegd(keys="pred", output_dir=out, labels=FULL)({"pred": pred})["pred"].meta["saved_to"]
    assert _segment_labels(written) == ["liver", "spleen", "kidney"]


@pytest.mark.parametrize("output", ["softmax", "argmax"])
def test_dicom_seg_writer(tmp_path, case, output):
    *_, label = case
    pred = _softmax(label) if output == "softmax" else label
    writer = DicomSegWriter(labels=SHORT)
    writer.set_data_array(pred, channel_dim=0)
    writer.set_metadata(pred.meta)
    with pytest.raises(InputError, match="labels names"):
        writer.write(tmp_path / "short.dcm")
    assert not (tmp_path / "short.dcm").exists()
    writer = DicomSegWriter(labels=FULL)
    writer.set_data_array(pred, channel_dim=0)
    writer.set_metadata(pred.meta)
    assert _segment_labels(writer.write(tmp_path / "full.dcm")) == ["liver", "spleen", "kidney"]


def test_cli_from_nifti_labels(tmp_path, case, capsys):
    from monai_dicomseg.cli.main import main

    folder, source, truth, label = case
    nifti = tmp_path / "labels.nii.gz"
    nibabel.save(nibabel.Nifti1Image(np.asfortranarray(to_monai_array(truth)).astype(np.uint8),
                                     source.monai_affine()), str(nifti))
    status = main(["from-nifti", str(nifti), str(folder), str(tmp_path / "short.dcm"), "--labels", json.dumps(SHORT)])
    stderr = capsys.readouterr().err
    assert status == 1 and "holds label values 1..3 but --labels names 2" in stderr, stderr
    assert not (tmp_path / "short.dcm").exists()
    status = main(["from-nifti", str(nifti), str(folder), str(tmp_path / "full.dcm"), "--labels", json.dumps(FULL)])
    assert status == 0, capsys.readouterr().err
    assert _segment_labels(tmp_path / "full.dcm") == ["liver", "spleen", "kidney"]
