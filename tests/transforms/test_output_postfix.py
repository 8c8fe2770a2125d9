"""``SaveDicomSeg(d)`` names files as MONAI's ``SaveImage`` does: ``<name>_<postfix><ext>`` (issue 21).

``output_postfix="x"`` used to give ``<uid>x.dcm``. Now the postfix follows ``"_"`` (default
``"seg"``: ``<uid>_seg.dcm`` as before), ``""`` adds nothing, and a postfix given with its own
leading ``"_"`` is not doubled.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import SaveImage

from monai_dicomseg import synthetic
from monai_dicomseg.io.source_series import load_source_geometry, to_monai_array
from monai_dicomseg.io.writer import DicomSegWriter
from monai_dicomseg.transforms.save import SaveDicomSeg, SaveDicomSegd

SHAPE = (4, 16, 12)


@pytest.fixture
def case(tmp_path: Path):
    labels = synthetic.make_ellipsoid_labels(SHAPE, n_labels=2, seed=7)
    datasets = synthetic.make_ct_series(SHAPE, labels=labels, seed=7)
    folder = tmp_path / "ct"
    synthetic.write_series(datasets, folder)
    source = load_source_geometry(folder)
    order = {str(ds.SOPInstanceUID): k for k, ds in enumerate(datasets)}
    truth = labels[[order[str(ds.SOPInstanceUID)] for ds in source.datasets]]
    array = np.ascontiguousarray(to_monai_array(truth))[None].astype(np.float32)
    label = MetaTensor(torch.from_numpy(array), affine=torch.as_tensor(source.monai_affine()),
                       meta={"filename_or_obj": str(folder)})
    return source, label


@pytest.mark.parametrize("postfix, suffix", [
    (None, "_seg.dcm"), ("x", "_x.dcm"), ("_x", "_x.dcm"), ("ai_v2", "_ai_v2.dcm"), ("", ".dcm"),
], ids=["default", "plain", "leading_underscore", "underscore_inside", "empty"])
def test_postfix_follows_monai(tmp_path, case, postfix, suffix):
    source, label = case
    options = {} if postfix is None else {"output_postfix": postfix}
    out = SaveDicomSegd(keys="pred", output_dir=tmp_path / "out", labels=["liver", "spleen"], **options)(
        {"pred": label})
    assert Path(out["pred"].meta["saved_to"]).name == f"{source.series_instance_uid}{suffix}"


def test_same_name_as_saveimage(tmp_path, case):
    """With ``output_name="source"`` the name is the one MONAI's SaveImage gives the same output."""
    _, label = case
    SaveDicomSeg(output_dir=tmp_path / "ours", output_name="source", output_postfix="x",
                 labels=["liver", "spleen"])(label)
    ours = Path(label.meta["saved_to"]).name
    saver = SaveImage(output_dir=tmp_path / "monai", output_postfix="x", output_ext=".dcm", writer=DicomSegWriter,
                      separate_folder=False)
    saver.set_options(init_kwargs={"labels": ["liver", "spleen"]})
    saver(label)
    assert ours == "ct_x.dcm" and Path(label.meta["saved_to"]).name == ours
