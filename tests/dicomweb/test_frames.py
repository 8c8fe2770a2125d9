"""Frame-level retrieval of the selected segments of a SEG (WADO-RS ``/frames/``), against a live Orthanc.

Orthanc serves 8-bit (FRACTIONAL) frames, native or transcoded from RLE, and
refuses 1-bit (BINARY) ones with HTTP 400; 1-bit frames are therefore also
served by :class:`FrameServingAdapter` from the local file (byte-aligned frames,
as a server that supports them answers) in front of the same Orthanc. The module
runs its own Orthanc (the ``orthanc`` fixture below), so its SEGs never show up in
the session server's listings. The last tests need no server.
"""
from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests

import monai_dicomseg as mds
from monai_dicomseg import synthetic
from monai_dicomseg.dicomweb import DicomWebSeries, InstanceCache, frames, register_server, store, unregister_server
from monai_dicomseg.dicomweb.frames import header_from_metadata, partial_instance, plan_frames
from monai_dicomseg.errors import DicomWebResponseError, InputError
from monai_dicomseg.io.segload import load_seg_array
from oracles import build_segmentation
from dicomweb.test_orthanc import CountingSession, TruncatingAdapter, count  # tests/ is on the path (pyproject)

torch = pytest.importorskip("torch")
SHAPE = (4, 16, 20)
ODD_SHAPE = (3, 5, 7)  # Rows x Columns = 35: 1-bit frames do not end on a byte boundary
RLE = "1.2.840.10008.1.2.5"


def _labels(shape):
    """Three segments on different slices: segment 1 on slices 0-1, 2 on 1-3, 3 on 2-3."""
    labels = np.zeros(shape, np.uint8)
    rows, cols = shape[1], shape[2]
    labels[0:2, : rows // 2, : cols // 2] = 1
    labels[1:, rows // 2:, cols // 2:] = 2
    labels[2:, : rows // 2, cols // 2:] = 3
    return labels


def _fractions(labels):
    return np.stack([(labels == n) * (0.25 * n) for n in (1, 2, 3)], -1).astype(np.float32)


def _frames_of(path, segments):
    ds = pydicom.dcmread(path)
    return [i for i, item in enumerate(ds.PerFrameFunctionalGroupsSequence, 1)
            if int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber) in segments]


@pytest.fixture(scope="module")
def orthanc(orthanc, tmp_path_factory):
    """This module's own Orthanc, without the session server's LABELMAP filter: the SEGs uploaded here stay
    out of the session server, whose whole content other tests list (the README example). Requesting the
    session fixture keeps its rules: skip without Orthanc, fail with CI=true."""
    from monai_dicomseg.dicomweb.orthanc import start_orthanc

    with start_orthanc(tmp_path_factory.mktemp("frames-orthanc"), password="frames-Pa55word") as server:
        yield server


@pytest.fixture(autouse=True)
def _forget_refusals(monkeypatch):
    """Every test starts with no server remembered as refusing frames (the set is per process), and with
    frames retrieved whatever the SEG's size (the test SEGs are far below FRAMES_MIN_PIXEL_BYTES)."""
    monkeypatch.setattr(frames, "_REFUSED", set())
    monkeypatch.setattr(frames, "FRAMES_MIN_PIXEL_BYTES", 0)


def _write(root, name, seg):
    path = root / f"{name}.dcm"
    seg.save_as(path)
    return path


@pytest.fixture(scope="module")
def segs(orthanc, tmp_path_factory):
    """A CT series and BINARY / FRACTIONAL (native, RLE) SEGs of three segments on different slices."""
    root = tmp_path_factory.mktemp("frames")
    labels = _labels(SHAPE)
    ct = synthetic.make_ct_series(SHAPE, labels=labels, seed=3)
    odd_labels = _labels(ODD_SHAPE)
    odd_ct = synthetic.make_ct_series(ODD_SHAPE, labels=odd_labels, seed=4)
    paths = {
        "binary": _write(root, "binary", build_segmentation(mds, ct, labels, "BINARY")),
        "fractional": _write(root, "fractional", build_segmentation(mds, ct, _fractions(labels), "FRACTIONAL")),
        "fractional-rle": _write(root, "fractional-rle", build_segmentation(
            mds, ct, _fractions(labels), "FRACTIONAL", transfer_syntax_uid=RLE)),
        "binary-odd": _write(root, "binary-odd", build_segmentation(mds, odd_ct, odd_labels, "BINARY")),
    }
    ct_files = synthetic.write_series(ct, root / "ct")
    admin = orthanc.server(cache_dir=str(root / "admin-cache"))
    store(ct_files, admin)
    store(list(paths.values()), admin)
    return {"root": root, "paths": paths, "ct_folder": str(root / "ct")}


def _ref(orthanc, path, server, instance=True):
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return DicomWebSeries(orthanc.url, str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID),
                          str(ds.SOPInstanceUID) if instance else None, server=server)


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _whole_instance_gets(log: Path) -> list[str]:
    return [line for line in _lines(log) if "/instances/" in line and "/frames/" not in line
            and not line.endswith("/metadata")]


def _frames_asked(log: Path) -> list[int]:
    return [int(n) for line in _lines(log) if "/frames/" in line for n in line.rsplit("/", 1)[1].split(",")]


def _load_pair(transform_kwargs, ref, local_path, ct_folder):
    """The same SEG through LoadDicomSegd from the server and from the local file."""
    from monai_dicomseg.transforms.load import LoadDicomSegd
    from monai_dicomseg.transforms.load_series import LoadDicomSeriesd

    image = LoadDicomSeriesd(keys="image")({"image": ct_folder})
    load = LoadDicomSegd(keys="label", ref_key="image", **transform_kwargs)
    remote = load({**image, "label": ref})["label"]
    local = load({**image, "label": str(local_path)})["label"]
    return remote, local


def _assert_same(remote, local):
    assert remote.shape == local.shape and remote.dtype == local.dtype
    assert torch.equal(remote.as_tensor(), local.as_tensor())
    assert np.allclose(remote.affine, local.affine)
    for key in ("segments", "channel_segments", "channel_values", "segmentation_type", "SOPInstanceUID",
                "SeriesInstanceUID", "FrameOfReferenceUID", "source_series_instance_uid", "threshold"):
        assert remote.meta[key] == local.meta[key], key


def test_small_seg_comes_whole_even_with_a_selection(orthanc, segs, tmp_path, monkeypatch):
    """Below FRAMES_MIN_PIXEL_BYTES one whole-instance request is cheaper than planning frames."""
    monkeypatch.setattr(frames, "FRAMES_MIN_PIXEL_BYTES", 8 * 1024**2)  # the default
    log = tmp_path / "requests.log"
    server = orthanc.server(cache_dir=str(tmp_path / "cache"), session=CountingSession(str(log)))
    path = segs["paths"]["fractional"]
    assert pydicom.dcmread(path).PixelData.__len__() < frames.FRAMES_MIN_PIXEL_BYTES
    remote, local = _load_pair({"mode": "stacked", "segment_numbers": [1, 3]}, _ref(orthanc, path, server), path,
                               segs["ct_folder"])
    _assert_same(remote, local)
    assert not _frames_asked(log) and len(_whole_instance_gets(log)) == 1


# --------------------------------------------------------------------------- live: FRACTIONAL, Orthanc serves frames

@pytest.mark.parametrize("name", ["fractional", "fractional-rle"], ids=["native", "rle"])
def test_selected_fractional_frames_only_then_cache_then_other_selection_then_whole(orthanc, segs, tmp_path, name):
    log = tmp_path / "requests.log"
    server = orthanc.server(cache_dir=str(tmp_path / "cache"), session=CountingSession(str(log)))
    path = segs["paths"][name]
    ref = _ref(orthanc, path, server)
    remote, local = _load_pair({"mode": "stacked", "segment_numbers": [1, 3]}, ref, path, segs["ct_folder"])
    _assert_same(remote, local)
    assert json.loads(remote.meta["channel_segments"]) == [[1], [3]]
    assert [line.rsplit("/", 1)[1] for line in _lines(log)] == ["metadata", ",".join(map(str, _frames_asked(log)))]
    assert _frames_asked(log) == _frames_of(path, {1, 3}) and not _whole_instance_gets(log)

    before = count(log)  # second epoch, same selection: no request at all
    again, _ = _load_pair({"mode": "stacked", "segment_numbers": [1, 3]}, ref, path, segs["ct_folder"])
    assert count(log) == before and torch.equal(again.as_tensor(), remote.as_tensor())

    other, other_local = _load_pair({"mode": "labelmap", "threshold": 0.1, "segment_labels": ["organ 2"]},
                                    ref, path, segs["ct_folder"])
    _assert_same(other, other_local)
    assert count(log) == before + 1 and _lines(log)[-1].endswith(",".join(map(str, _frames_of(path, {2}))))

    whole, whole_local = _load_pair({"mode": "stacked"}, ref, path, segs["ct_folder"])  # no selection
    _assert_same(whole, whole_local)
    assert len(_whole_instance_gets(log)) == 1 and count(log) == before + 3  # series metadata + instance
    partials = list((tmp_path / "cache" / "instances").rglob("*.segments-*.dcm"))
    assert len(partials) == 2
    before = count(log)  # the whole instance is cached: a new selection makes no request
    _load_pair({"mode": "stacked", "segment_numbers": [2]}, ref, path, segs["ct_folder"])
    assert count(log) == before


def test_dataloader_workers_fetch_the_frames_once_and_the_second_epoch_makes_no_request(orthanc, segs, tmp_path):
    from monai.data import DataLoader, Dataset
    from monai.transforms import Compose

    from monai_dicomseg.transforms.load import LoadDicomSegd
    from monai_dicomseg.transforms.load_series import LoadDicomSeriesd

    log = tmp_path / "requests.log"
    server = orthanc.server(cache_dir=str(tmp_path / "cache"), session=CountingSession(str(log)))
    path = segs["paths"]["fractional"]
    items = [{"image": segs["ct_folder"], "label": _ref(orthanc, path, server)} for _ in range(4)]
    transform = Compose([LoadDicomSeriesd(keys="image"),
                         LoadDicomSegd(keys="label", ref_key="image", mode="stacked", segment_numbers=[2])])
    loader = DataLoader(Dataset(items, transform=transform), batch_size=2, num_workers=2)
    first = [batch["label"] for batch in loader]
    assert [line.rsplit("/", 1)[1] for line in _lines(log)] == ["metadata", ",".join(map(str, _frames_of(path, {2})))]
    after_first = count(log)
    second = [batch["label"] for batch in loader]
    assert count(log) == after_first and all(torch.equal(a, b) for a, b in zip(first, second))


def test_partial_seg_is_a_valid_seg_on_its_own_grid(orthanc, segs, tmp_path):
    """The SEG's own grid (no reference) spans the positions of every segment, not only the selected ones."""
    from monai.transforms import LoadImage

    from monai_dicomseg.io.reader import DicomSegReader

    log = tmp_path / "requests.log"
    server = orthanc.server(cache_dir=str(tmp_path / "cache"), session=CountingSession(str(log)))
    path = segs["paths"]["fractional"]
    reader = DicomSegReader(mode="stacked", segment_numbers=[1])
    register_server(server)  # the URI form carries no credentials
    try:
        remote = LoadImage(reader=reader, image_only=True)(_ref(orthanc, path, server, instance=False).uri)
    finally:
        unregister_server(orthanc.url)
    local = LoadImage(reader=DicomSegReader(mode="stacked", segment_numbers=[1]), image_only=True)(str(path))
    assert remote.shape == local.shape == (1, SHAPE[2], SHAPE[1], SHAPE[0])
    assert torch.equal(remote.as_tensor(), local.as_tensor()) and np.allclose(remote.affine, local.affine)
    assert _frames_asked(log) == _frames_of(path, {1})  # slices 0-1 retrieved; 2-3 kept as empty frames
    partial = pydicom.dcmread(next((tmp_path / "cache" / "instances").rglob("*.segments-*.dcm")))
    assert partial.SOPInstanceUID == pydicom.dcmread(path).SOPInstanceUID
    assert int(partial.NumberOfFrames) == SHAPE[0] and partial.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"


# --------------------------------------------------------------------------- live: BINARY

def test_binary_frames_refused_by_orthanc_fall_back_to_the_whole_instance_once(orthanc, segs, tmp_path):
    log = tmp_path / "requests.log"
    server = orthanc.server(cache_dir=str(tmp_path / "cache"), session=CountingSession(str(log)))
    path = segs["paths"]["binary"]
    ref = _ref(orthanc, path, server)
    remote, local = _load_pair({"mode": "labelmap", "segment_numbers": [2]}, ref, path, segs["ct_folder"])
    _assert_same(remote, local)
    assert len([line for line in _lines(log) if "/frames/" in line]) == 1  # HTTP 400 from Orthanc, no error
    assert len(_whole_instance_gets(log)) == 1
    assert frames.frames_refused(orthanc.url, 1)


def test_cached_whole_instance_serves_any_selection_without_request(orthanc, segs, tmp_path):
    log = tmp_path / "requests.log"
    server = orthanc.server(cache_dir=str(tmp_path / "cache"), session=CountingSession(str(log)))
    path = segs["paths"]["fractional"]
    ref = _ref(orthanc, path, server)
    load_seg_array(ref, mode="stacked")  # no selection: the whole instance, as before
    before = count(log)
    assert len(_whole_instance_gets(log)) == 1
    selected = load_seg_array(ref, mode="stacked", segment_numbers=[2])
    assert count(log) == before
    assert np.array_equal(selected.array, load_seg_array(str(path), mode="stacked", segment_numbers=[2]).array)


class FrameServingAdapter(requests.adapters.HTTPAdapter):
    """Answers ``/frames/`` of one local SEG as a frame-serving server would (each 1-bit frame
    byte-aligned, padded after its last pixel); ``truncate`` drops the last part."""

    def __init__(self, path, truncate=False):
        super().__init__()
        self.dataset = pydicom.dcmread(path)
        self.truncate = truncate

    def _frame(self, number):
        ds = self.dataset
        pixels = int(ds.Rows) * int(ds.Columns)
        bits = np.unpackbits(np.frombuffer(ds.PixelData, np.uint8), bitorder="little")
        return np.packbits(bits[(number - 1) * pixels: number * pixels], bitorder="little").tobytes()

    def send(self, request, **kwargs):
        if "/frames/" not in request.url or self.dataset.SOPInstanceUID not in request.url:
            return super().send(request, **kwargs)
        numbers = [int(n) for n in request.url.rsplit("/", 1)[1].split(",")]
        if self.truncate:
            numbers = numbers[:-1]
        part = b"Content-Type: application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1\r\n\r\n"
        body = b"".join(b"--frontier\r\n" + part + self._frame(n) + b"\r\n" for n in numbers) + b"--frontier--"
        response = requests.Response()
        response.status_code, response.url, response.request, response._content = 200, request.url, request, body
        response.headers["Content-Type"] = ('multipart/related; type="application/octet-stream"; '
                                            "boundary=frontier")
        return response


@pytest.mark.parametrize("name", ["binary", "binary-odd"], ids=["rows-x-columns-multiple-of-8", "35-pixels"])
def test_binary_frames_are_repacked_contiguously(orthanc, segs, tmp_path, name):
    log = tmp_path / "requests.log"
    session = CountingSession(str(log))
    path = segs["paths"][name]
    session.mount("http://", FrameServingAdapter(path))
    server = orthanc.server(cache_dir=str(tmp_path / "cache"), session=session)
    ref = _ref(orthanc, path, server)
    for selection in ([1], [2, 3]):
        remote = load_seg_array(ref, mode="stacked", segment_numbers=selection)
        local = load_seg_array(str(path), mode="stacked", segment_numbers=selection)
        assert np.array_equal(remote.array, local.array) and np.allclose(remote.meta["affine"], local.meta["affine"])
    assert _frames_asked(log) == _frames_of(path, {1}) + _frames_of(path, {2, 3})
    assert not _whole_instance_gets(log)


# --------------------------------------------------------------------------- live: fall-backs and faults

class RefusingSession(CountingSession):
    """Answers every ``/frames/`` request with ``status`` (a server without frame retrieval)."""

    status = 501

    def request(self, method, url, *args, **kwargs):
        if "/frames/" not in url:
            return super().request(method, url, *args, **kwargs)
        with open(self.log_path, "a") as handle:
            handle.write(f"{method} {url}\n")
        response = requests.Response()
        response.status_code, response.url, response._content = self.status, url, b"no frames here"
        if self.status == 200:  # an answer, but not multipart/related
            response.headers["Content-Type"] = "application/dicom"
        return response


@pytest.mark.parametrize("status", [501, 400, 406, 200], ids=["501", "400", "406", "200-not-multipart"])
def test_server_refusing_frames_gives_the_same_result_from_the_whole_instance(orthanc, segs, tmp_path, status):
    log = tmp_path / "requests.log"
    session = RefusingSession(str(log))
    session.status = status
    server = orthanc.server(cache_dir=str(tmp_path / "cache"), session=session)
    path = segs["paths"]["fractional"]
    ref = _ref(orthanc, path, server)
    remote, local = _load_pair({"mode": "stacked", "segment_numbers": [3]}, ref, path, segs["ct_folder"])
    _assert_same(remote, local)
    InstanceCache(tmp_path / "cache").discard(ref.instance_uid)  # force another retrieval
    _load_pair({"mode": "stacked", "segment_numbers": [1]}, ref, path, segs["ct_folder"])
    assert len([line for line in _lines(log) if "/frames/" in line]) == 1  # remembered: asked once
    assert len(_whole_instance_gets(log)) == 2


def test_truncated_frames_answer_is_an_error_and_caches_nothing(orthanc, segs, tmp_path):
    session = requests.Session()
    path = segs["paths"]["binary"]
    session.mount("http://", FrameServingAdapter(path, truncate=True))
    server = orthanc.server(cache_dir=str(tmp_path / "cache"), session=session)
    ref = _ref(orthanc, path, server)
    uid = ref.instance_uid.replace(".", "[.]")
    expected = rf"truncated.*127[.]0[.]0[.]1.*/frames/1,2 [(]SOPInstanceUID {uid}[)] returned 1 of 2"
    with pytest.raises(DicomWebResponseError, match=expected):
        load_seg_array(ref, segment_numbers=[1])
    assert not list((tmp_path / "cache" / "instances").rglob("*.dcm"))


def test_frames_body_cut_in_half_by_the_connection_is_an_error(orthanc, segs, tmp_path):
    session = requests.Session()
    session.mount("http://", TruncatingAdapter())  # cuts every instance-level body, /frames/ included
    server = orthanc.server(cache_dir=str(tmp_path / "cache"), session=session)
    ref = _ref(orthanc, segs["paths"]["fractional"], server)
    with pytest.raises(DicomWebResponseError, match=rf"truncated.*/frames/.*{ref.instance_uid.replace('.', '[.]')}"):
        load_seg_array(ref, mode="stacked", segment_numbers=[2])
    assert not list((tmp_path / "cache" / "instances").rglob("*.dcm"))


def test_wrong_frame_length_is_an_error(orthanc, segs, tmp_path):
    class Short(FrameServingAdapter):
        def _frame(self, number):
            return super()._frame(number)[:-1]

    session = requests.Session()
    session.mount("http://", Short(segs["paths"]["binary"]))
    server = orthanc.server(cache_dir=str(tmp_path / "cache"), session=session)
    ref = _ref(orthanc, segs["paths"]["binary"], server)
    with pytest.raises(DicomWebResponseError, match=r"frame 1 has 39 bytes, Rows x Columns x BitsAllocated needs 40"):
        load_seg_array(ref, segment_numbers=[1])


def test_labelmap_is_retrieved_whole(orthanc, segs, tmp_path):
    labels = _labels(SHAPE)
    ct = synthetic.make_ct_series(SHAPE, labels=labels, seed=3)
    path = _write(tmp_path, "labelmap", build_segmentation(mds, ct, labels, "LABELMAP"))
    store([path], orthanc.server(cache_dir=str(tmp_path / "admin")))
    log = tmp_path / "requests.log"
    server = orthanc.server(cache_dir=str(tmp_path / "cache"), session=CountingSession(str(log)))
    remote = load_seg_array(_ref(orthanc, path, server), segment_numbers=[2])
    assert np.array_equal(remote.array, load_seg_array(str(path), segment_numbers=[2]).array)
    assert not _frames_asked(log) and len(_whole_instance_gets(log)) == 1


# --------------------------------------------------------------------------- no server: plan, partial, cache

@pytest.fixture(scope="module")
def local_segs(tmp_path_factory):
    root = tmp_path_factory.mktemp("local-frames")
    labels = _labels(ODD_SHAPE)
    ct = synthetic.make_ct_series(ODD_SHAPE, labels=labels, seed=5)
    return {kind: _write(root, kind, build_segmentation(mds, ct, labels if kind != "FRACTIONAL" else _fractions(labels),
                                                       kind))
            for kind in ("BINARY", "FRACTIONAL", "LABELMAP")}


def _header(path):
    return header_from_metadata(pydicom.dcmread(path).to_json_dict(bulk_data_threshold=1,
                                                                  bulk_data_element_handler=lambda e: "bulk"))


def test_plan_frames_decides_when_the_whole_instance_is_the_answer(local_segs):
    binary = _header(local_segs["BINARY"])
    assert "PixelData" not in binary
    assert plan_frames(binary, None) is None  # no selection
    assert plan_frames(binary, []) is None  # nothing to hold
    assert plan_frames(binary, [1, 2, 3]) is None  # every frame selected
    assert plan_frames(_header(local_segs["LABELMAP"]), [1]) is None  # a frame holds every segment
    del binary.PerFrameFunctionalGroupsSequence[0].SegmentIdentificationSequence
    assert plan_frames(binary, [1]) is None  # not addressable by segment
    plan = plan_frames(_header(local_segs["FRACTIONAL"]), [1])
    assert plan.retrieved == _frames_of(local_segs["FRACTIONAL"], {1})
    assert len(plan.entries) == ODD_SHAPE[0]  # one frame per position: slice 2 is an empty frame of segment 1
    other = plan_frames(_header(local_segs["FRACTIONAL"]), [2])
    assert plan.variant.startswith("segments-") and plan.variant != other.variant
    assert frames.variant_name([3, 1, 3]) == frames.variant_name([1, 3]) != frames.variant_name([1])
    light = header_from_metadata(pydicom.dcmread(local_segs["FRACTIONAL"]).to_json_dict(), per_frame=False)
    assert "PerFrameFunctionalGroupsSequence" not in light and len(light.SegmentSequence) == 3


@pytest.mark.parametrize("kind", ["BINARY", "FRACTIONAL", "LABELMAP"])
def test_plan_from_json_equals_plan_from_the_parsed_header(local_segs, tmp_path, kind):
    """The loader plans from the DICOM JSON (no Dataset of every per-frame item) and builds only the
    items the partial SEG holds; plan and partial SEG bytes equal those from the fully parsed header."""
    item = pydicom.dcmread(local_segs[kind]).to_json_dict(bulk_data_threshold=1,
                                                          bulk_data_element_handler=lambda e: "bulk")
    full, light = header_from_metadata(item), header_from_metadata(item, per_frame=False)
    per_frame = item["52009230"]["Value"]
    for selection in ([1], [3], [2, 3], [1, 2, 3], None):
        plan = plan_frames(full, selection)
        assert plan_frames(light, selection, frames.frame_segments_from_json(item)) == plan
        if plan is not None:
            got = [bytes(frames._frame_bytes(full))] * len(plan.retrieved)
            built = partial_instance(light, plan, got, lambda number: pydicom.Dataset.from_json(per_frame[number - 1]))
            assert built == partial_instance(full, plan, got)
    per_frame[0].pop("0062000A", None)  # a frame without its segment: not addressable, whole instance
    assert frames.frame_segments_from_json(item) is None


@pytest.mark.parametrize("kind", ["BINARY", "FRACTIONAL"])
def test_partial_instance_decodes_like_the_whole_one(local_segs, tmp_path, kind):
    path = local_segs[kind]
    whole = pydicom.dcmread(path)
    header = _header(path)
    size = frames._frame_bytes(header)
    pixels = int(whole.Rows) * int(whole.Columns)
    bits = np.unpackbits(np.frombuffer(whole.PixelData, np.uint8), bitorder="little")
    for selection in ([1], [3], [2, 3]):
        plan = plan_frames(header, selection)
        if kind == "BINARY":
            got = [np.packbits(bits[(n - 1) * pixels: n * pixels], bitorder="little").tobytes() for n in plan.retrieved]
        else:
            got = [whole.PixelData[(n - 1) * size: n * size] for n in plan.retrieved]
        partial = tmp_path / f"{kind}-{selection}.dcm"
        partial.write_bytes(partial_instance(header, plan, got))
        for mode in ("stacked",):
            a = load_seg_array(str(partial), mode=mode, segment_numbers=selection)
            b = load_seg_array(str(path), mode=mode, segment_numbers=selection)
            assert np.array_equal(a.array, b.array) and np.allclose(a.meta["affine"], b.meta["affine"])


def test_header_from_metadata_drops_bulk_data():
    item = {"00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^J"}]},
            "00282000": {"vr": "OB", "BulkDataURI": "http://server/bulk/icc"},
            "52009230": {"vr": "SQ", "Value": [{"00189004": {"vr": "OB", "BulkDataURI": "http://server/b"}}]},
            "7FE00010": {"vr": "OB", "BulkDataURI": "http://server/bulk/pixels"}}
    header = header_from_metadata(item)
    assert "PixelData" not in header and "ICCProfile" not in header
    assert str(header.PatientName) == "Doe^J" and len(header.PerFrameFunctionalGroupsSequence[0]) == 0


def test_cache_variants_are_separate_verified_and_evictable(tmp_path):
    cache = InstanceCache(tmp_path, max_bytes=150)
    cache.put("1.2.3", b"w" * 100)
    cache.put("1.2.3", b"p" * 40, "segments-0123abcd")
    cache.put_metadata("1.2.3", {"00080018": {"vr": "UI", "Value": ["1.2.3"]}})
    assert Path(cache.get("1.2.3")).read_bytes() == b"w" * 100
    assert Path(cache.get("1.2.3", "segments-0123abcd")).read_bytes() == b"p" * 40
    assert cache.metadata("1.2.3")["00080018"]["Value"] == ["1.2.3"]
    Path(cache.path("1.2.3", "segments-0123abcd")).write_bytes(b"q" * 40)  # corrupted: same size, new bytes
    assert cache.get("1.2.3", "segments-0123abcd") is None and cache.get("1.2.3") is not None
    with pytest.raises(InputError, match=r"cache variant must match .*got '\.\./x'"):
        cache.path("1.2.3", "../x")
    cache.put("1.2.4", b"n" * 100)
    assert cache.evict(keep=["1.2.4"]) >= 1 and cache.get("1.2.3") is None and cache.get("1.2.4") is not None


def test_reader_never_discards_an_entry_a_writer_is_replacing(tmp_path):
    """A reader that finds a new file beside the old sidecar waits for the writer (entry lock) instead of
    deleting the entry as corrupt (several DataLoader workers rewriting and reading one entry)."""
    from monai_dicomseg.dicomweb import cache as cache_module

    cache = InstanceCache(tmp_path)
    cache.put("1.2.5", b"a" * 10)
    path = cache.path("1.2.5")
    result = {}
    reader = threading.Thread(target=lambda: result.setdefault("path", cache.get("1.2.5")))
    with cache.lock(cache_module._entry_lock(path)):  # a writer between the file and its sidecar
        path.write_bytes(b"b" * 12)
        reader.start()
        reader.join(0.2)
        record = {"size": 12, "sha256": hashlib.sha256(b"b" * 12).hexdigest()}
        path.with_suffix(".json").write_text(json.dumps(record))
    reader.join(30)
    assert result["path"] == str(path) and path.read_bytes() == b"b" * 12
