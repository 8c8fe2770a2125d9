"""FRACTIONAL: frames that are all zero after quantisation are omitted, as highdicom does."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

import monai_dicomseg
from monai_dicomseg import synthetic
from monai_dicomseg.seg.frames import fractional_presence
from oracles import build_segmentation

SHAPE = (8, 16, 16)


def small_softmax(seed: int = 0) -> np.ndarray:
    """``(F, R, C, 2)`` organ probabilities of a 3-class softmax: organs in planes 2..4, tiny elsewhere."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(*SHAPE, 3)).astype(np.float32)
    logits[..., 0] += 12.0  # background dominates: organ probabilities ~1e-5 (> 0, round to 0 of 255)
    logits[2:5, 4:12, 4:12, 1] += 16.0
    logits[3:5, 6:10, 6:10, 2] += 20.0
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return probabilities[..., 1:]


@pytest.fixture
def sources():
    return synthetic.make_ct_series(SHAPE, seed=1)


def test_fractional_presence_follows_quantisation():
    values = np.zeros((2, 2, 2, 1), dtype=np.float32)
    values[0, 0, 0, 0] = 0.5 / 255 * 0.99  # rounds to 0
    values[1, 0, 0, 0] = 0.5 / 255 * 1.01  # rounds to 1
    np.testing.assert_array_equal(fractional_presence(values, 255)[:, 0], [False, True])
    assert fractional_presence(values, 1).sum() == 0
    np.testing.assert_array_equal(fractional_presence(values > 0, 255)[:, 0], [True, True])


def test_all_zero_frames_omitted_like_highdicom(tmp_path, sources):
    hd = pytest.importorskip("highdicom")
    probabilities = small_softmax()
    assert np.all(probabilities > 0)  # every frame is non-zero before quantisation
    sizes, frames = {}, {}
    for name, module in (("ours", monai_dicomseg), ("highdicom", hd)):
        seg = build_segmentation(module, sources, probabilities, "FRACTIONAL", 2)
        path = tmp_path / f"{name}.dcm"
        seg.save_as(path)
        sizes[name] = path.stat().st_size
        frames[name] = int(pydicom.dcmread(path, stop_before_pixels=True).NumberOfFrames)
    expected = int(fractional_presence(probabilities, 255).sum())
    assert frames["ours"] == frames["highdicom"] == expected < SHAPE[0] * 2
    assert abs(sizes["ours"] - sizes["highdicom"]) <= 0.1 * sizes["highdicom"], sizes


def test_keep_empty_frames_when_asked(sources):
    seg = build_segmentation(monai_dicomseg, sources, small_softmax(), "FRACTIONAL", 2, omit_empty_frames=False)
    assert int(seg.NumberOfFrames) == SHAPE[0] * 2


def test_savedicomseg_softmax_omits_quantised_empty_frames(tmp_path):
    """Through SaveDicomSeg: a softmax with tiny organ probabilities away from the organs."""
    import torch
    from monai.data import MetaTensor

    from monai_dicomseg.io.source_series import load_source_geometry, to_monai_array
    from monai_dicomseg.transforms.save import SaveDicomSeg

    synthetic.write_series(synthetic.make_ct_series(SHAPE, seed=1), tmp_path / "ct")
    source = load_source_geometry(tmp_path / "ct")
    organs = small_softmax()
    softmax = np.concatenate([1.0 - organs.sum(-1, keepdims=True), organs], axis=-1)  # (F, R, C, 3)
    array = np.stack([np.ascontiguousarray(to_monai_array(softmax[..., c])) for c in range(3)])
    prediction = MetaTensor(torch.from_numpy(array), affine=torch.as_tensor(source.monai_affine()),
                            meta={"filename_or_obj": str(tmp_path / "ct")})
    SaveDicomSeg(output_dir=tmp_path / "o", segmentation_type="FRACTIONAL",
                 labels={"0": "background", "1": "liver", "2": "spleen"})(prediction)
    seg = pydicom.dcmread(Path(prediction.meta["saved_to"]), stop_before_pixels=True)
    assert int(seg.NumberOfFrames) == int(fractional_presence(organs, 255).sum()) < SHAPE[0] * 2
