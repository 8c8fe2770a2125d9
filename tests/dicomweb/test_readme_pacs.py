"""The README's "From and to a PACS" example, run as written against the live Orthanc."""
from __future__ import annotations

import pydicom
import pytest

import monai_dicomseg as mds
from monai_dicomseg import synthetic
from monai_dicomseg.dicomweb import store, unregister_server
from oracles import build_segmentation
from test_readme import pacs_blocks

pytestmark = pytest.mark.monai  # the README block uses DicomSegDataset / SaveDicomSegd


def test_readme_pacs_block_runs(orthanc, tmp_path, monkeypatch):
    shape = (4, 16, 20)
    labels = synthetic.make_ellipsoid_labels(shape, n_labels=2, seed=7)
    ct = synthetic.make_ct_series(shape, labels=labels, seed=7)
    files = synthetic.write_series(ct, tmp_path / "ct")
    build_segmentation(mds, ct, labels, "BINARY").save_as(tmp_path / "seg.dcm")
    admin = orthanc.server(cache_dir=str(tmp_path / "admin-cache"))
    store([*files, tmp_path / "seg.dcm"], admin)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MONAI_DICOMSEG_DICOMWEB_CACHE", str(tmp_path / "cache"))
    blocks = pacs_blocks()
    assert len(blocks) == 1
    namespace = {"mds": mds, "pacs_url": orthanc.url, "pacs_user": orthanc.username,
                 "pacs_password": orthanc.password}
    try:
        exec(compile(blocks[0], "<README.md PACS block>", "exec"), namespace)  # noqa: S102
    finally:
        if "pacs" in namespace:
            unregister_server(namespace["pacs"].url)
    assert namespace["datalist"] and str(namespace["datalist"][0]["label"]).startswith("dicomweb+")
    saved = namespace["item"]["pred"].meta["saved_to"]
    stored = pydicom.dcmread(saved)
    assert stored.Modality == "SEG"
    assert str(stored.SOPInstanceUID) in {str(d["SOPInstanceUID"]) for d in _stored_instances(orthanc, stored)}


def _stored_instances(orthanc, stored):
    import requests

    url = (f"{orthanc.url}/studies/{stored.StudyInstanceUID}/series/{stored.SeriesInstanceUID}/instances")
    answer = requests.get(url, auth=(orthanc.username, orthanc.password), timeout=30)
    answer.raise_for_status()
    return [{"SOPInstanceUID": item["00080018"]["Value"][0]} for item in answer.json()]
