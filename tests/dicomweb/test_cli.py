"""``monai-dicomseg pull`` / ``push`` against the live Orthanc (credentials from the environment only)."""
from __future__ import annotations

import re

import numpy as np
import pydicom
import pytest

import monai_dicomseg as mds
from monai_dicomseg import synthetic
from monai_dicomseg.cli.main import main
from monai_dicomseg.dicomweb import DicomWebSeries, store
from oracles import build_segmentation

nibabel = pytest.importorskip("nibabel")
SHAPE = (3, 12, 14)


@pytest.fixture(scope="module")
def uploaded(orthanc, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    labels = synthetic.make_ellipsoid_labels(SHAPE, n_labels=2, seed=3)
    ct = synthetic.make_ct_series(SHAPE, labels=labels, seed=3)
    files = synthetic.write_series(ct, root / "ct")
    seg = build_segmentation(mds, ct, labels, "BINARY")
    seg.save_as(root / "seg.dcm")
    store([*files, root / "seg.dcm"], orthanc.server(cache_dir=str(root / "cache")))
    series = DicomWebSeries(orthanc.url, str(ct[0].StudyInstanceUID), str(ct[0].SeriesInstanceUID))
    seg_ref = DicomWebSeries(orthanc.url, str(seg.StudyInstanceUID), str(seg.SeriesInstanceUID))
    return {"root": root, "ct_folder": root / "ct", "seg": root / "seg.dcm", "series": series, "seg_ref": seg_ref}


@pytest.fixture
def credentials(orthanc, monkeypatch, tmp_path):
    monkeypatch.setenv("MONAI_DICOMSEG_DICOMWEB_USERNAME", orthanc.username)
    monkeypatch.setenv("MONAI_DICOMSEG_DICOMWEB_PASSWORD", orthanc.password)
    return ["--cache", str(tmp_path / "cache"), "--retries", "0"]


def test_pull_equals_local_to_nifti(uploaded, credentials, tmp_path, capsys):
    assert main(["pull", uploaded["seg_ref"].uri, str(tmp_path / "remote.nii.gz"), "--source-grid",
                 "--no-sidecar", *credentials]) == 0
    assert main(["to-nifti", str(uploaded["seg"]), str(tmp_path / "local.nii.gz"), "--source",
                 str(uploaded["ct_folder"]), "--no-sidecar"]) == 0
    remote, local = nibabel.load(tmp_path / "remote.nii.gz"), nibabel.load(tmp_path / "local.nii.gz")
    assert np.array_equal(remote.get_fdata(), local.get_fdata()) and np.allclose(remote.affine, local.affine)
    assert remote.shape == (SHAPE[2], SHAPE[1], SHAPE[0])


def test_push_nifti_then_pull_it_back(uploaded, credentials, tmp_path, capsys):
    assert main(["to-nifti", str(uploaded["seg"]), str(tmp_path / "labels.nii.gz"), "--source",
                 str(uploaded["ct_folder"]), "--no-sidecar"]) == 0
    out = tmp_path / "pushed.dcm"
    assert main(["push", uploaded["series"].url, str(tmp_path / "labels.nii.gz"), "--series",
                 uploaded["series"].uri, "--output", str(out), "--labels", "a,b", *credentials]) == 0
    pushed = pydicom.dcmread(out)
    assert str(pushed.SOPInstanceUID) in capsys.readouterr().out
    back = DicomWebSeries(uploaded["series"].url, str(pushed.StudyInstanceUID), str(pushed.SeriesInstanceUID))
    assert main(["pull", back.uri, str(tmp_path / "back.nii.gz"), "--source", uploaded["series"].uri,
                 "--no-sidecar", *credentials]) == 0
    assert np.array_equal(nibabel.load(tmp_path / "back.nii.gz").get_fdata(),
                          nibabel.load(tmp_path / "labels.nii.gz").get_fdata())


def test_push_refused_names_the_spool_and_no_secret(uploaded, orthanc, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MONAI_DICOMSEG_DICOMWEB_USERNAME", orthanc.username)
    monkeypatch.setenv("MONAI_DICOMSEG_DICOMWEB_PASSWORD", "not-the-Pa55word")
    status = main(["push", uploaded["series"].url, str(uploaded["seg"]), "--spool", str(tmp_path / "spool"),
                   "--retries", "0", "--cache", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert status == 1 and "HTTP 401" in err and str(tmp_path / "spool") in err
    assert "not-the-Pa55word" not in err


@pytest.mark.parametrize("argv, match", [
    (["push", "http://127.0.0.1:9/dicom-web", "x.nii.gz"], "needs --series"),
    (["pull", "http://127.0.0.1:9/dicom-web/studies/1.2/series/1.3", "o.nii.gz"], "starts with 'dicomweb\\+'"),
    (["pull", "dicomweb+http://127.0.0.1:9/dicom-web/studies/1.2/series/1.3", "o.nii.gz", "--user", "bob",
      "--password-env", "MDS_TEST_UNSET_VARIABLE"], "needs the password in the environment variable"),
], ids=["nifti-without-series", "not-a-uri", "password-not-in-env"])
def test_cli_bad_input(argv, match, capsys, monkeypatch):
    monkeypatch.delenv("MDS_TEST_UNSET_VARIABLE", raising=False)
    assert main(argv) == 1
    assert re.search(match, capsys.readouterr().err)
