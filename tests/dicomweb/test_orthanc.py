"""Against a live Orthanc (``orthanc`` fixture): datalist, training loads, STOW back, faults, cache reuse."""
from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests

import monai_dicomseg as mds
from monai_dicomseg import synthetic
from monai_dicomseg.dicomweb import (
    DicomWebSeries, DicomWebServer, create_datalist_from_server, materialize, register_server, store,
    unregister_server,
)
from monai_dicomseg.errors import (
    DicomWebAuthError, DicomWebConnectionError, DicomWebError, DicomWebNotFoundError, DicomWebResponseError,
    DicomWebStoreError,
)
from oracles import build_segmentation

torch = pytest.importorskip("torch")
SHAPE = (4, 16, 20)


class CountingSession(requests.Session):
    """A ``requests.Session`` that appends one line per request to a file (visible across worker processes)."""

    def __init__(self, log_path: str) -> None:
        super().__init__()
        self.log_path = log_path

    def request(self, method, url, *args, **kwargs):  # noqa: D102
        with open(self.log_path, "a") as handle:
            handle.write(f"{method} {url}\n")
        return super().request(method, url, *args, **kwargs)

    def __getstate__(self):
        return {**super().__getstate__(), "log_path": self.log_path}

    def __setstate__(self, state):
        self.log_path = state.pop("log_path")
        super().__setstate__(state)


def count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


class TruncatingAdapter(requests.adapters.HTTPAdapter):
    """Cuts WADO-RS instance bodies in half (a connection dropped mid-transfer)."""

    def build_response(self, req, resp):
        response = super().build_response(req, resp)
        if req.method == "GET" and "/instances/" in req.url and not req.url.endswith("/metadata"):
            body = response.content
            response._content = body[: len(body) // 2]
        return response


@pytest.fixture(scope="module")
def study(orthanc, tmp_path_factory):
    """One synthetic study on the server: a CT series, a SEG from our writer, a SEG from highdicom."""
    root = tmp_path_factory.mktemp("study")
    labels = synthetic.make_ellipsoid_labels(SHAPE, n_labels=2, seed=1)
    ct = synthetic.make_ct_series(SHAPE, labels=labels, seed=1)
    files = synthetic.write_series(ct, root / "ct")
    ours = build_segmentation(mds, ct, labels, "BINARY")
    ours.save_as(root / "ours.dcm")
    paths = [root / "ours.dcm"]
    highdicom = pytest.importorskip("highdicom")
    theirs = build_segmentation(highdicom, ct, labels, "BINARY")
    theirs.save_as(root / "highdicom.dcm")
    paths.append(root / "highdicom.dcm")
    admin = orthanc.server(cache_dir=str(root / "admin-cache"))
    store(files, admin)
    store(paths, admin)
    return {"root": root, "ct": ct, "ct_files": files, "labels": labels, "segs": paths,
            "study_uid": str(ct[0].StudyInstanceUID), "series_uid": str(ct[0].SeriesInstanceUID),
            "seg_uids": {str(pydicom.dcmread(p).SOPInstanceUID): p for p in paths}}


def _items(datalist, study_uid):
    return [d for d in datalist if d["study_instance_uid"] == study_uid]


def test_datalist_from_server_pairs_each_seg_with_its_series(orthanc, study, tmp_path):
    server = orthanc.server(cache_dir=str(tmp_path / "cache"))
    datalist, problems = create_datalist_from_server(server, study_uid=study["study_uid"], return_unpaired=True)
    assert len(datalist) == 2 and not [p for p in problems if p["kind"] == "seg"]
    for item in datalist:
        image, label = DicomWebSeries.from_uri(item["image"]), DicomWebSeries.from_uri(item["label"])
        assert image.series_uid == item["series_instance_uid"] == study["series_uid"]
        assert label.instance_uid in study["seg_uids"] and item["paired_by"] == "ReferencedSeriesSequence"
        assert item["patient_id"] == str(study["ct"][0].PatientID)
    assert set(datalist[0]) >= {"image", "label", "series_instance_uid", "seg_series_instance_uid",
                                "frame_of_reference_uid", "study_instance_uid", "patient_id", "paired_by"}
    other = create_datalist_from_server(server, patient_id="NOBODY-AT-ALL")
    assert other == []


def test_retrieved_seg_is_the_stored_dataset(orthanc, study, tmp_path):
    server = orthanc.server(cache_dir=str(tmp_path / "cache"))
    for sop, local in study["seg_uids"].items():
        seg_series = str(pydicom.dcmread(local).SeriesInstanceUID)
        path = materialize(DicomWebSeries(orthanc.url, study["study_uid"], seg_series, sop, server=server),
                           expect_seg=True)[0]
        assert pydicom.dcmread(path) == pydicom.dcmread(local)  # dataset equality (not transport bytes)


def _training_transforms():
    from monai.transforms import Compose

    from monai_dicomseg.transforms.load import LoadDicomSegd
    from monai_dicomseg.transforms.load_series import LoadDicomSeriesd

    return Compose([LoadDicomSeriesd(keys="image"), LoadDicomSegd(keys="label", ref_key="image", mode="labelmap")])


def test_training_from_server_with_workers_and_second_epoch_without_requests(orthanc, study, tmp_path):
    from monai.data import DataLoader, Dataset

    log = tmp_path / "requests.log"
    server = orthanc.server(cache_dir=str(tmp_path / "cache"), session=CountingSession(str(log)))
    datalist = create_datalist_from_server(server, study_uid=study["study_uid"])  # registers the server
    try:
        loader = DataLoader(Dataset(datalist, transform=_training_transforms()), batch_size=1, num_workers=2)
        model = torch.nn.Conv3d(1, 1, 3, padding=1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        first = count(log)
        for batch in loader:  # epoch 1: retrieves into the cache
            image, label = batch["image"], batch["label"]
            assert image.shape == (1, 1, SHAPE[2], SHAPE[1], SHAPE[0]) and label.shape[2:] == image.shape[2:]
            assert label.shape[1] == 1 and int(label.sum()) == int(study["labels"].sum())
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(image / 1000.0), (label > 0).float())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        after_first = count(log)
        assert after_first > first
        for _ in loader:  # epoch 2: everything from the verified cache
            pass
        assert count(log) == after_first, "the second epoch made requests"
    finally:
        unregister_server(orthanc.url)


def test_loaded_from_server_equals_loaded_from_files(orthanc, study, tmp_path):
    from monai_dicomseg.transforms.load import LoadDicomSeg
    from monai_dicomseg.transforms.load_series import LoadDicomSeries

    server = orthanc.server(cache_dir=str(tmp_path / "cache"))
    register_server(server)
    try:
        item = create_datalist_from_server(server, study_uid=study["study_uid"])[0]
        remote_image = LoadDicomSeries()(item["image"])
        local_image = LoadDicomSeries()(str(study["ct_files"][0].parent))
        assert torch.equal(remote_image, local_image)
        assert np.allclose(remote_image.affine, local_image.affine)
        assert remote_image.meta["filename_or_obj"] == item["image"]
        sop = DicomWebSeries.from_uri(item["label"]).instance_uid
        remote = LoadDicomSeg(mode="labelmap")(DicomWebSeries.from_uri(item["label"], server=server), remote_image)
        local = LoadDicomSeg(mode="labelmap")(str(study["seg_uids"][sop]), local_image)
        assert torch.equal(remote, local)
        from monai.transforms import LoadImage

        from monai_dicomseg.io.reader import DicomSegReader

        # the reader finds the referenced series on the SEG's own server (series metadata, no pixels) and
        # returns the label on that series' full grid, as LoadDicomSeg does with the image as reference
        through_monai = LoadImage(reader=DicomSegReader(mode="labelmap"), image_only=True)(item["label"])
        assert through_monai.meta["grid"] == "source_series"
        assert tuple(through_monai.shape) == tuple(local.shape)
        assert torch.equal(through_monai.to(local.dtype), local.as_tensor())
        assert np.allclose(through_monai.affine, local.affine)
    finally:
        unregister_server(orthanc.url)


def test_inference_result_stored_back_and_read_voxel_for_voxel(orthanc, study, tmp_path, caplog):
    from monai_dicomseg.transforms.load import LoadDicomSeg
    from monai_dicomseg.transforms.save import SaveDicomSeg
    from monai_dicomseg.transforms.load_series import LoadDicomSeries

    server = orthanc.server(cache_dir=str(tmp_path / "cache"))
    register_server(server)
    try:
        uri = DicomWebSeries(orthanc.url, study["study_uid"], study["series_uid"]).uri
        caplog.set_level(logging.DEBUG)
        image = LoadDicomSeries()(uri)
        prediction = LoadDicomSeg(mode="labelmap")(str(study["segs"][0]), image).float()  # "model output": labels
        prediction.meta.update(image.meta)
        saved = SaveDicomSeg(output_dir=tmp_path / "out", store_to=server, labels=["organ 1", "organ 2"])(
            prediction, reference=image)
        local = pydicom.dcmread(saved.meta["saved_to"])
        back = DicomWebSeries(orthanc.url, str(local.StudyInstanceUID), str(local.SeriesInstanceUID),
                              str(local.SOPInstanceUID))
        path = materialize(back, refresh=True, expect_seg=True)[0]
        assert pydicom.dcmread(path) == local
        reread = LoadDicomSeg(mode="labelmap")(back.uri, image)
        assert reread.shape == prediction.shape
        assert torch.equal(reread.to(torch.uint8), prediction.to(torch.uint8))
        assert np.allclose(reread.affine, image.affine)
        secret = base64.b64encode(f"{orthanc.username}:{orthanc.password}".encode()).decode()
        everywhere = repr(dict(image.meta)) + repr(dict(reread.meta)) + caplog.text + str(local)
        assert "/dicom-web/studies/" in caplog.text  # the HTTP debug lines were captured ...
        assert orthanc.password not in everywhere and secret not in everywhere  # ... without credentials
    finally:
        unregister_server(orthanc.url)


# --------------------------------------------------------------------------- faults

def test_wrong_credentials(orthanc, study, tmp_path):
    server = DicomWebServer(orthanc.url, username=orthanc.username, password="wrong-Pa55", retries=0,
                            cache_dir=str(tmp_path))
    ref = DicomWebSeries(orthanc.url, study["study_uid"], study["series_uid"], server=server)
    with pytest.raises(DicomWebAuthError, match=rf"HTTP 401 .*127\.0\.0\.1.*UID {study['series_uid']}") as info:
        materialize(ref)
    assert "wrong-Pa55" not in str(info.value)
    with pytest.raises(DicomWebAuthError, match="HTTP 401"):
        create_datalist_from_server(server, register=False)


@pytest.mark.parametrize("which", ["series", "instance"])
def test_unknown_uid_is_not_found(orthanc, study, tmp_path, which):
    server = orthanc.server(cache_dir=str(tmp_path))
    series = "1.2.3.999" if which == "series" else study["series_uid"]
    instance = "1.2.3.999.1" if which == "instance" else None
    ref = DicomWebSeries(orthanc.url, study["study_uid"], series, instance, server=server)
    uid = instance or series
    with pytest.raises(DicomWebNotFoundError, match=rf"{uid.replace('.', '[.]')}"):
        materialize(ref)


def test_image_series_is_not_a_seg(orthanc, study, tmp_path):
    from monai_dicomseg.transforms.load import LoadDicomSeg

    server = orthanc.server(cache_dir=str(tmp_path))
    ref = DicomWebSeries(orthanc.url, study["study_uid"], study["series_uid"], server=server)
    with pytest.raises(DicomWebResponseError, match=r"is not a Segmentation.*Modality 'CT'") as info:
        LoadDicomSeg()(ref)
    assert study["series_uid"] in str(info.value)
    assert not list((tmp_path / "instances").rglob("*.dcm")), "pixels were downloaded before the check"


def test_truncated_response(orthanc, study, tmp_path):
    session = requests.Session()
    session.mount("http://", TruncatingAdapter())
    server = orthanc.server(cache_dir=str(tmp_path), session=session)
    sop, local = next(iter(study["seg_uids"].items()))
    seg_series = str(pydicom.dcmread(local).SeriesInstanceUID)
    ref = DicomWebSeries(orthanc.url, study["study_uid"], seg_series, sop, server=server)
    with pytest.raises(DicomWebResponseError, match=rf"truncated.*{sop.replace('.', '[.]')}"):
        materialize(ref)
    assert not list((tmp_path / "instances").rglob("*.dcm")), "a truncated instance was cached"


def test_stow_rejection_keeps_the_file_in_the_spool(orthanc, study, tmp_path):
    labelmap = build_segmentation(mds, study["ct"], study["labels"], "LABELMAP")
    path = tmp_path / "labelmap.dcm"
    labelmap.save_as(path)
    server = orthanc.server(cache_dir=str(tmp_path / "cache"), spool_dir=str(tmp_path / "spool"))
    sop = str(labelmap.SOPInstanceUID)
    with pytest.raises(DicomWebStoreError, match=rf"kept at .*spool.*does not hold the instance.*UID {sop}") as info:
        store(path, server)
    assert info.value.spool_path and Path(info.value.spool_path).read_bytes() == path.read_bytes()


def test_stow_with_wrong_credentials_spools_without_leaking(orthanc, study, tmp_path, caplog):
    server = DicomWebServer(orthanc.url, token="TOKEN-must-not-leak", retries=0, spool_dir=str(tmp_path / "spool"))
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(DicomWebStoreError, match="HTTP 401") as info:
            store(study["segs"][0], server)
    assert "TOKEN-must-not-leak" not in str(info.value) + caplog.text
    assert os.path.exists(info.value.spool_path)


def test_retries_are_bounded_on_server_errors_and_absent_on_4xx(orthanc, study, tmp_path):
    log = tmp_path / "requests.log"

    class Failing(CountingSession):
        def request(self, method, url, *args, **kwargs):
            super().request(method, url, *args, **kwargs)
            response = requests.Response()
            response.status_code, response.url, response._content = (503 if "/series/" in url else 400), url, b""
            return response

    server = orthanc.server(cache_dir=str(tmp_path), session=Failing(str(log)), retries=2, backoff=0.001)
    ref = DicomWebSeries(orthanc.url, study["study_uid"], study["series_uid"], server=server)
    with pytest.raises(DicomWebError, match=r"HTTP 503 .*after 3 attempts"):
        materialize(ref)
    assert count(log) == 3
    with pytest.raises(DicomWebError, match="HTTP 400"):
        create_datalist_from_server(server, register=False)
    assert count(log) == 4  # a 4xx is not retried


def test_connection_error_through_loader_names_uri(study, tmp_path):
    from monai_dicomseg.transforms.load_series import LoadDicomSeries

    url = "http://127.0.0.1:9/dicom-web"  # discard port: nothing listens
    register_server(DicomWebServer(url, retries=0, timeout=(1, 1), cache_dir=str(tmp_path)))
    try:
        with pytest.raises(DicomWebConnectionError, match=rf"127\.0\.0\.1:9.*UID {study['series_uid']}"):
            LoadDicomSeries()(DicomWebSeries(url, study["study_uid"], study["series_uid"]).uri)
    finally:
        unregister_server(url)
