"""A slide and its tiled SEGs served by a live Orthanc: image and label patches retrieved per tile with WADO-RS
``/frames/`` equal the local ones (OpenSlide for the image, the local SEG files for the labels), only the tiles
under the patches are requested (counted), 1-bit frames that Orthanc refuses (HTTP 400) fall back to the whole
instance once, and a DataLoader with workers makes no request in its second epoch."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from oracles import missing_requirement
import requests

from monai_dicomseg.dicomweb import DicomWebSeries, frames, register_server, store, unregister_server
from monai_dicomseg.dicomweb.orthanc import INSTALL_HINT, orthanc_available, start_orthanc
from monai_dicomseg.errors import InputError
from monai_dicomseg.slides import SlideImage, SlideLabels
from monai_dicomseg.slides.remote import DicomWebSlide, RemoteFrames, RemoteSegmentation, remote_segmentation

openslide = pytest.importorskip("openslide")
pytest.importorskip("dicomweb_client", reason="pip install dicomweb-client")

# (location at level 0, size at the level, level): inside one tile, across tile borders, over the bottom/right edge
PATCHES = [((0, 0), (128, 128), 0), ((200, 300), (128, 192), 0), ((700, 960), (100, 100), 0),
           ((128, 256), (128, 128), 1), ((300, 900), (64, 96), 1), ((0, 0), (192, 256), 2)]
KINDS = [("LABELMAP", "TILED_FULL"), ("FRACTIONAL", "TILED_SPARSE"), ("FRACTIONAL", "TILED_FULL"),
         ("BINARY", "TILED_SPARSE")]


class CountingSession(requests.Session):
    """Appends ``METHOD URL`` per request to a file (visible across DataLoader worker processes)."""

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


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _frames_asked(log: Path, uid: str) -> list[int]:
    return [int(n) for line in _lines(log) if f"/instances/{uid}/frames/" in line
            for n in line.rsplit("/", 1)[1].split(",")]


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    """This module's own Orthanc (no SOP class filter: LABELMAP SEGs are stored); skips without Orthanc."""
    if not orthanc_available():
        missing_requirement(INSTALL_HINT, "the DICOMweb server")
    with start_orthanc(tmp_path_factory.mktemp("slides-orthanc"), password="slides-Pa55word") as server:
        yield server


@pytest.fixture(autouse=True)
def _forget_refusals(monkeypatch):
    """No server is remembered as refusing frames at the start of a test (the set is per process)."""
    monkeypatch.setattr(frames, "_REFUSED", set())


@pytest.fixture(scope="module")
def served(orthanc, slide_dir, seg_factory, tmp_path_factory):
    """The slide's levels and SEG pyramids (levels 0 and 1) of each kind, stored on the server."""
    segs = {kind: seg_factory(*kind, (0, 1)) for kind in KINDS}
    admin = orthanc.server(cache_dir=str(tmp_path_factory.mktemp("admin-cache")))
    store(sorted(slide_dir.glob("level-*.dcm")), admin)
    store([path for paths in segs.values() for path in paths], admin)
    return segs


def _ref(orthanc, path, server=None, instance=True) -> DicomWebSeries:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return DicomWebSeries(orthanc.url, str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID),
                          str(ds.SOPInstanceUID) if instance else None, server=server)


@pytest.fixture
def counted(orthanc, tmp_path):
    """``(server, log)``: a fresh cache and a request log."""
    log = tmp_path / "requests.log"
    return orthanc.server(cache_dir=str(tmp_path / "cache"), session=CountingSession(str(log))), log


def _tiles_under(path, location, size, scale=(1, 1), segments=None) -> list[int]:
    """1-based frames of the local file whose tile overlaps the patch (independent of the package).

    ``location`` level-0 pixels, ``size`` in pixels of the image level; ``scale``: (level-0 pixels per pixel of
    the file, pixels of the file per pixel of the image level)."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    r0, c0 = int(location[0] // scale[0]), int(location[1] // scale[0])
    r1 = min(r0 + int(np.ceil(size[0] * scale[1])), ds.TotalPixelMatrixRows)
    c1 = min(c0 + int(np.ceil(size[1] * scale[1])), ds.TotalPixelMatrixColumns)
    across = -(-int(ds.TotalPixelMatrixColumns) // int(ds.Columns))
    down = -(-int(ds.TotalPixelMatrixRows) // int(ds.Rows))
    found = []
    for number in range(1, int(getattr(ds, "NumberOfFrames", 1)) + 1):
        if "PerFrameFunctionalGroupsSequence" in ds:
            item = ds.PerFrameFunctionalGroupsSequence[number - 1]
            position = item.PlanePositionSlideSequence[0]
            top, left = position.RowPositionInTotalImagePixelMatrix - 1, position.ColumnPositionInTotalImagePixelMatrix - 1
            segment = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        else:  # TILED_FULL: segments outermost, then tile rows, then tile columns
            tile = (number - 1) % (across * down)
            top, left = tile // across * ds.Rows, tile % across * ds.Columns
            segment = (number - 1) // (across * down) + 1
        if segments is not None and segment not in segments and ds.Modality == "SEG" \
                and ds.SegmentationType != "LABELMAP":
            continue
        if top < r1 and top + ds.Rows > r0 and left < c1 and left + ds.Columns > c0:
            found.append(number)
    return found


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: "-".join(k))
def test_label_patches_from_the_server_equal_the_local_ones(orthanc, served, slide_dir, counted, kind):
    server, log = counted
    local_paths = served[kind]
    slide = SlideImage.from_path(slide_dir)
    local = SlideLabels(slide, local_paths)
    remote = SlideLabels(slide, [_ref(orthanc, p, server) for p in local_paths])
    assert all(isinstance(seg, RemoteSegmentation) for seg in remote.segmentations)
    expected: dict[str, set[int]] = {}
    for location, size, level in PATCHES:
        for mode in ("labelmap", "stacked") if kind[0] != "FRACTIONAL" else ("stacked",):
            got = remote.get_patch(location, size, level, mode=mode)
            want = local.get_patch(location, size, level, mode=mode)
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want)
        index, _ = local.source_level(level)
        path = local_paths[index]
        uid = local.planes[index].sop_instance_uid
        seg_downsample = local.planes[index].pixel_spacing[0] / slide.levels[0].pixel_spacing[0]
        scale = (seg_downsample, slide.downsample(level)[0] / seg_downsample)
        expected.setdefault(uid, set()).update(_tiles_under(path, location, size, scale))
    for path in local_paths:  # each tile under a patch exactly once, and nothing else
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        assert sorted(_frames_asked(log, uid)) == sorted(expected.get(uid, set())), uid
    assert not [line for line in _lines(log) if "/instances/" in line and "/frames/" not in line
                and not line.endswith("/metadata")]  # no whole instance


class Refusing(requests.adapters.HTTPAdapter):
    """Answers every ``/frames/`` request with HTTP 400 (what Orthanc 1.x answers for some 1-bit frames)."""

    def send(self, request, *args, **kwargs):
        response = super().send(request, *args, **kwargs)
        if "/frames/" in request.url:
            response.status_code, response._content = 400, b"no frames here"
        return response


def _refusing_server(orthanc, tmp_path):
    log = tmp_path / "requests.log"
    session = CountingSession(str(log))
    session.mount("http://", Refusing())
    return orthanc.server(cache_dir=str(tmp_path / "cache"), session=session), log


def test_refused_seg_frames_fall_back_to_the_whole_instance_once(orthanc, served, slide_dir, tmp_path):
    server, log = _refusing_server(orthanc, tmp_path)
    paths = served[("BINARY", "TILED_SPARSE")]
    slide = SlideImage.from_path(slide_dir)
    local = SlideLabels(slide, paths)
    remote = SlideLabels(slide, [_ref(orthanc, p, server) for p in paths])
    for location, size, level in PATCHES:
        np.testing.assert_array_equal(remote.get_patch(location, size, level, mode="stacked"),
                                      local.get_patch(location, size, level, mode="stacked"))
    assert len([line for line in _lines(log) if "/frames/" in line]) == 1  # refused once: remembered
    whole = [line for line in _lines(log) if "/instances/" in line and "/frames/" not in line
             and not line.endswith("/metadata")]
    assert len(whole) == 2  # each SEG level once
    assert frames.frames_refused(orthanc.url, 1)
    again = SlideLabels(slide, [_ref(orthanc, p, server) for p in paths])  # cached whole: no request
    before = len(_lines(log))
    assert not isinstance(again.segmentations[0], RemoteSegmentation)
    np.testing.assert_array_equal(again.get_patch((0, 0), (64, 64)), local.get_patch((0, 0), (64, 64)))
    assert len(_lines(log)) == before




def test_second_pass_makes_no_request(orthanc, served, slide_dir, counted):
    server, log = counted
    paths = served[("LABELMAP", "TILED_FULL")]
    slide = SlideImage.from_path(slide_dir)
    for _ in range(2):
        labels = SlideLabels(slide, [_ref(orthanc, p, server) for p in paths])
        patches = [labels.get_patch(*patch) for patch in PATCHES]
        if _ == 0:
            first = len(_lines(log))
    assert len(_lines(log)) == first and first > 0
    assert all(p.size for p in patches)


@pytest.mark.parametrize("location, size, level", PATCHES)
def test_image_patches_equal_openslide(orthanc, served, slide_dir, counted, location, size, level):
    from monai.data import WSIReader

    server, log = counted
    remote = DicomWebSlide(_ref(orthanc, slide_dir / "level-0.dcm", server, instance=False))
    reader = WSIReader(backend="openslide")
    wsi = reader.read(str(slide_dir / "level-0.dcm"))
    want, _ = reader.get_data(wsi, location=location, size=size, level=level)
    got = remote.get_patch(location, size, level)
    assert got.dtype == np.uint8 and got.shape == (3, *size)
    np.testing.assert_array_equal(got, want)
    uid = remote.image.level(level).sop_instance_uid
    path = slide_dir / f"level-{level}.dcm"
    assert sorted(_frames_asked(log, uid)) == _tiles_under(path, location, size, (2 ** level, 1))
    assert remote.level_frames(location, size, level) == _tiles_under(path, location, size, (2 ** level, 1))


def test_image_frames_refused_fall_back_to_the_whole_instance(orthanc, served, slide_dir, tmp_path):
    server, log = _refusing_server(orthanc, tmp_path)
    remote = DicomWebSlide(_ref(orthanc, slide_dir / "level-0.dcm", server, instance=False))
    from monai.data import WSIReader

    reader = WSIReader(backend="openslide")
    wsi = reader.read(str(slide_dir / "level-0.dcm"))
    for location, size, level in PATCHES[:3]:
        want, _ = reader.get_data(wsi, location=location, size=size, level=level)
        np.testing.assert_array_equal(remote.get_patch(location, size, level), want)
    assert len([line for line in _lines(log) if "/frames/" in line]) == 1  # refused once, remembered


def test_bad_references(orthanc, served, slide_dir, counted):
    server, _ = counted
    series = _ref(orthanc, served[("LABELMAP", "TILED_FULL")][0], server, instance=False)
    assert isinstance(remote_segmentation(series), RemoteSegmentation)  # a SEG series of one instance
    remote = DicomWebSlide(_ref(orthanc, slide_dir / "level-0.dcm", server))  # an instance: its series
    assert remote.image.level_count == 3
    with pytest.raises(InputError, match="not on the level's pixel grid"):
        remote.get_patch((3, 0), (8, 8), 1)
    with pytest.raises(InputError, match="level must be an int"):
        remote.get_patch((0, 0), (8, 8), 3)
    frames_ = remote._levels[0].frames
    with pytest.raises(InputError, match="outside 1..NumberOfFrames=12"):
        frames_.get([13])
    with pytest.raises(InputError, match="needs an instance reference"):
        RemoteFrames(series, frames_.header, frames_.cache)


def test_dataloader_with_workers_second_epoch_makes_no_request(orthanc, served, slide_dir, tmp_path):
    torch = pytest.importorskip("torch")
    from monai.data import DataLoader

    from monai_dicomseg.data.slides import SlidePatchSegDataset, slide_patch_datalist

    log = tmp_path / "requests.log"
    server = orthanc.server(cache_dir=str(tmp_path / "cache"), session=CountingSession(str(log)))
    register_server(server)
    try:
        segs = served[("FRACTIONAL", "TILED_SPARSE")]
        image_uri = _ref(orthanc, slide_dir / "level-0.dcm", instance=False).uri
        seg_uris = [_ref(orthanc, p).uri for p in segs]
        items = slide_patch_datalist(image_uri, seg_uris, 64, level=1, stride=96)
        local_items = slide_patch_datalist(str(slide_dir / "level-0.dcm"), segs, 64, level=1, stride=96)
        assert [i["location"] for i in items] == [i["location"] for i in local_items] and items
        remote = SlidePatchSegDataset(items, label_mode="stacked")
        local = SlidePatchSegDataset(local_items, label_mode="stacked")
        expected = list(DataLoader(local, batch_size=4, num_workers=0))
        before = None
        for epoch in range(2):
            batches = list(DataLoader(remote, batch_size=4, num_workers=2))
            assert len(batches) == len(expected)
            for got, want in zip(batches, expected):
                assert torch.equal(got["image"].as_tensor(), want["image"].as_tensor())
                assert torch.equal(got["label"].as_tensor(), want["label"].as_tensor())
                assert got["image"].meta["backend"][0] == "dicomweb"
                assert got["label"].meta["seg_id"] == want["label"].meta["seg_id"]
            if epoch == 0:
                before = len(_lines(log))
        assert before and len(_lines(log)) == before  # the second epoch: every header and tile from the cache
    finally:
        unregister_server(server.url)
