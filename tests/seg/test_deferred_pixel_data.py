"""Large native SEG files are read without loading their Pixel Data (issue 15, reader side).

``segread(path)`` of a file of at least ``DEFER_PIXEL_DATA_BYTES`` with native
Pixel Data keeps an open descriptor and reads the byte ranges of the frames
it decodes. Here the threshold is monkeypatched to 0 ("deferred") or to
something huge ("loaded") and every accessor must give byte-identical
results; the file may be deleted or replaced after reading; a truncated
file gives a DecodeError; copies, pickling and ``save_as`` work.
"""
from __future__ import annotations

import copy
import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import build_segmentation
from pydicom.uid import JPEGLSLossless

import monai_dicomseg
from monai_dicomseg import synthetic
from monai_dicomseg.codec.decode import decode_frames, deferred_pixel_source, pixel_layout
from monai_dicomseg.codec.pixel_source import BytesPixelData, FilePixelData, PixelSource
from monai_dicomseg.errors import DecodeError
from monai_dicomseg.seg import reader
from monai_dicomseg.seg.segmentation import Segmentation, segread

REPO = Path(__file__).resolve().parents[2]
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmRSS is a Linux fact")


def _read(path: Path, deferred: bool) -> Segmentation:
    saved = reader.DEFER_PIXEL_DATA_BYTES
    reader.DEFER_PIXEL_DATA_BYTES = 0 if deferred else 1 << 62
    try:
        seg = segread(path)
    finally:
        reader.DEFER_PIXEL_DATA_BYTES = saved
    assert (deferred_pixel_source(seg) is not None) == deferred
    return seg


def _labels(shape: tuple[int, int, int], n_segments: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_segments + 1, size=shape).astype(np.uint16 if n_segments > 255 else np.uint8)
    labels[shape[0] // 2] = 0  # an empty plane: omitted frames
    return labels


def _write(tmp_path: Path, name: str, shape: tuple[int, int, int], seg_type: str, n_segments: int,
           **kwargs) -> Path:
    series = synthetic.make_ct_series(shape, seed=3)
    labels = _labels(shape, n_segments)
    if seg_type == "FRACTIONAL":
        rng = np.random.default_rng(1)
        pixels = (rng.random((*shape, n_segments)) * (labels[..., None] > 0)).astype(np.float32)
    else:
        pixels = labels
    seg = build_segmentation(monai_dicomseg, series, pixels, seg_type, n_segments, **kwargs)
    path = tmp_path / name
    seg.save_as(path)
    return path


CASES = {
    # name: (shape, type, segments): BINARY 35-pixel frames straddle bytes; 8x16 frames are byte aligned
    "binary-unaligned": ((6, 5, 7), "BINARY", 3),
    "binary-aligned": ((6, 8, 16), "BINARY", 3),
    "labelmap-8": ((5, 6, 7), "LABELMAP", 4),
    "labelmap-16": ((3, 4, 5), "LABELMAP", 300),
    "fractional": ((5, 6, 7), "FRACTIONAL", 2),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("deferred")
    return {name: _write(folder, f"{name}.dcm", *case) for name, case in CASES.items()}


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_volumes_and_source_frames_are_identical(files, name):
    loaded, deferred = _read(files[name], False), _read(files[name], True)
    for kwargs in ({}, {"combine_segments": True}, {"segment_numbers": [2]}, {"combine_segments": True,
                                                                              "relabel": True}):
        if CASES[name][1] == "FRACTIONAL" and kwargs.get("combine_segments"):
            continue
        a, b = loaded.get_volume(**kwargs).array, deferred.get_volume(**kwargs).array
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b, err_msg=str(kwargs))
    uids = [uid for _, _, uid in loaded.get_source_image_uids()][::-1]
    np.testing.assert_array_equal(loaded.get_pixels_by_source_instance(uids),
                                  deferred.get_pixels_by_source_instance(uids))
    assert deferred_pixel_source(deferred) is not None  # nothing above loaded the whole value


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_any_frame_selection_decodes_identically(files, name, data):
    loaded, deferred = _read(files[name], False), _read(files[name], True)
    n = int(loaded.NumberOfFrames)
    frames = data.draw(st.lists(st.integers(0, n - 1), max_size=2 * n))
    np.testing.assert_array_equal(decode_frames(loaded, frames), decode_frames(deferred, frames))


def test_whole_value_accessors_load_once_and_agree(files):
    path = files["binary-unaligned"]
    loaded, deferred = _read(path, False), _read(path, True)
    np.testing.assert_array_equal(deferred.pixel_array, loaded.pixel_array)
    assert deferred_pixel_source(deferred) is None  # loaded now, by pydicom's deferred read
    assert deferred.PixelData == loaded.PixelData
    deferred = _read(path, True)
    assert deferred.PixelData == loaded.PixelData


def _tiled(tmp_path: Path, seg_type: str) -> Path:
    source = synthetic.make_slide_image((60, 70), (16, 16), photometric="MONOCHROME2")
    mask = np.zeros((60, 70), np.uint8)
    mask[3:20, 5:40] = 1
    mask[30:60, 50:70] = 2
    mask[40:45, 2:9] = 1
    seg = build_segmentation(monai_dicomseg, [source], mask[None], seg_type, 2, tile_pixel_array=True,
                             omit_empty_frames=True)
    path = tmp_path / f"tiled-{seg_type}.dcm"
    seg.save_as(path)
    return path


@pytest.mark.parametrize("seg_type", ["BINARY", "LABELMAP"])
def test_tiled_regions_are_identical_and_read_only_their_tiles(tmp_path, monkeypatch, seg_type):
    path = _tiled(tmp_path, seg_type)
    loaded, deferred = _read(path, False), _read(path, True)
    for kwargs in ({}, {"combine_segments": True}, {"row_start": 17, "row_end": 33, "column_start": 40,
                                                    "column_end": 70}):
        np.testing.assert_array_equal(loaded.get_total_pixel_matrix(**kwargs),
                                      deferred.get_total_pixel_matrix(**kwargs), err_msg=str(kwargs))
    reads: list[tuple[int, int]] = []
    original = PixelSource.read_range
    monkeypatch.setattr(PixelSource, "read_range",
                        lambda self, start, stop: reads.append((start, stop)) or original(self, start, stop))
    layout = pixel_layout(deferred)
    frame_bytes = layout.pixels_per_frame * layout.bits_allocated // 8
    # 0-based rows 32..47, columns 48..63: exactly the tile at (32, 48), which only segment 2 covers
    region = deferred.get_total_pixel_matrix(row_start=33, row_end=49, column_start=49, column_end=65)
    assert region.shape[:2] == (16, 16)
    assert len(reads) == 1, reads
    start, stop = reads[0]
    assert stop - start == frame_bytes and start % frame_bytes == 0
    np.testing.assert_array_equal(region, loaded.get_total_pixel_matrix(row_start=33, row_end=49,
                                                                        column_start=49, column_end=65))


def test_adjacent_frames_are_read_in_one_run(files, monkeypatch):
    deferred = _read(files["labelmap-8"], True)
    reads: list[tuple[int, int]] = []
    original = PixelSource.read_range
    monkeypatch.setattr(PixelSource, "read_range",
                        lambda self, start, stop: reads.append((start, stop)) or original(self, start, stop))
    layout = pixel_layout(deferred)
    size = layout.pixels_per_frame
    decode_frames(deferred, [3, 1, 0, 1])
    assert reads == [(0, 2 * size), (3 * size, 4 * size)]
    reads.clear()
    decode_frames(deferred, [])
    assert reads == []


def test_unaligned_binary_reads_the_covering_bytes(files, monkeypatch):
    deferred = _read(files["binary-unaligned"], True)
    reads: list[tuple[int, int]] = []
    original = PixelSource.read_range
    monkeypatch.setattr(PixelSource, "read_range",
                        lambda self, start, stop: reads.append((start, stop)) or original(self, start, stop))
    decode_frames(deferred, [2, 3])  # bits 70..140: bytes 8..18 (35 pixels a frame)
    assert reads == [(8, 18)]


def test_file_deleted_after_reading_still_reads(tmp_path, files):
    path = tmp_path / "copy.dcm"
    path.write_bytes(files["labelmap-8"].read_bytes())
    expected = _read(path, False).get_volume(combine_segments=True).array
    deferred = _read(path, True)
    path.unlink()
    np.testing.assert_array_equal(deferred.get_volume(combine_segments=True).array, expected)


def test_file_replaced_by_rename_still_reads_the_original(tmp_path, files):
    path = tmp_path / "copy.dcm"
    path.write_bytes(files["labelmap-8"].read_bytes())
    expected = _read(path, False).get_volume(combine_segments=True).array
    deferred = _read(path, True)
    other = tmp_path / "other.dcm"
    other.write_bytes(files["labelmap-16"].read_bytes())
    os.replace(other, path)
    np.testing.assert_array_equal(deferred.get_volume(combine_segments=True).array, expected)
    assert bytes(deferred.PixelData) == bytes(_read(files["labelmap-8"], False).PixelData)


def test_truncated_file_is_a_decode_error(tmp_path, files):
    path = tmp_path / "copy.dcm"
    path.write_bytes(files["labelmap-8"].read_bytes())
    deferred = _read(path, True)
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size - 50)
    with pytest.raises(DecodeError, match=r"copy\.dcm.*cannot read bytes .*file ends after"):
        deferred.get_volume(combine_segments=True)
    with pytest.raises(DecodeError, match=r"copy\.dcm.*truncated"):
        deferred.PixelData
    with pytest.raises(DecodeError, match=r"copy\.dcm"):
        deferred.save_as(io.BytesIO())


def test_save_as_copies_the_file_bytes(tmp_path, files):
    for name in ("binary-unaligned", "labelmap-16"):
        deferred = _read(files[name], True)
        out = tmp_path / f"{name}-saved.dcm"
        deferred.save_as(out)
        assert out.read_bytes() == files[name].read_bytes()
        assert deferred_pixel_source(deferred) is not None  # streamed from the file, not loaded
        deferred.save_as(out)  # over the file itself: the descriptor still reads the old one
        assert out.read_bytes() == files[name].read_bytes()


def test_save_as_over_its_own_file(tmp_path, files):
    path = tmp_path / "copy.dcm"
    path.write_bytes(files["binary-aligned"].read_bytes())
    deferred = _read(path, True)
    deferred.save_as(path)
    assert path.read_bytes() == files["binary-aligned"].read_bytes()


def test_copies_and_pickles(files):
    path = files["labelmap-8"]
    expected = _read(path, False).get_volume(combine_segments=True).array
    deferred = _read(path, True)
    copied = copy.deepcopy(deferred)
    assert isinstance(copied.buffer, FilePixelData) and copied.buffer is not deferred.buffer
    from_dataset = Segmentation.from_dataset(deferred, copy=True)
    deferred.buffer.close()  # the copies own their own descriptors
    for other in (copied, from_dataset):
        assert deferred_pixel_source(other) is not None
        np.testing.assert_array_equal(other.get_volume(combine_segments=True).array, expected)
    with pytest.raises(DecodeError, match="source was closed"):
        deferred.get_volume(combine_segments=True)
    unpickled = pickle.loads(pickle.dumps(copied))  # carries the bytes: readable anywhere
    assert isinstance(unpickled.buffer, BytesPixelData)
    np.testing.assert_array_equal(unpickled.get_volume(combine_segments=True).array, expected)
    assert unpickled.PixelData == _read(path, False).PixelData


def test_small_files_and_encapsulated_files_are_loaded(tmp_path, monkeypatch):
    series = synthetic.make_ct_series((3, 8, 8), seed=1)
    labels = np.zeros((3, 8, 8), np.uint8)
    labels[1, 2:5, 2:6] = 1
    seg = build_segmentation(monai_dicomseg, series, labels, "LABELMAP", 1, transfer_syntax_uid=JPEGLSLossless)
    path = tmp_path / "jpegls.dcm"
    seg.save_as(path)
    monkeypatch.setattr(reader, "DEFER_PIXEL_DATA_BYTES", 0)
    assert deferred_pixel_source(segread(path)) is None
    native = _write(tmp_path, "native.dcm", (3, 8, 8), "LABELMAP", 1)
    monkeypatch.setattr(reader, "DEFER_PIXEL_DATA_BYTES", native.stat().st_size + 1)
    assert deferred_pixel_source(segread(native)) is None
    monkeypatch.setattr(reader, "DEFER_PIXEL_DATA_BYTES", native.stat().st_size)
    assert deferred_pixel_source(segread(native)) is not None
    with open(native, "rb") as handle:  # file objects are read whole
        assert deferred_pixel_source(segread(handle)) is None


def test_pixel_data_shorter_than_the_header_says_is_refused(tmp_path, files):
    data = bytearray(files["labelmap-8"].read_bytes())
    path = tmp_path / "short.dcm"
    deferred = _read(files["labelmap-8"], True)
    length = deferred.buffer.length
    value_start = deferred.buffer.value_start
    data[value_start - 4:value_start] = (length - 8).to_bytes(4, "little")  # shorter element, same file
    path.write_bytes(bytes(data[:value_start + length - 8]))
    with pytest.raises(DecodeError, match="PixelData is truncated"):
        _read(path, True)


def test_range_outside_the_value_is_refused(files):
    source = _read(files["labelmap-8"], True).buffer
    with pytest.raises(DecodeError, match=r"byte range 0\.\.\d+ is outside its value"):
        source.read_range(0, source.length + 1)


CHILD = textwrap.dedent("""
    import json, sys
    from monai_dicomseg.seg import segread

    def rss_mb():
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024

    before = rss_mb()
    seg = segread(sys.argv[1])
    index = seg.get_frame_index()
    chunk = seg.get_volume(combine_segments=True, slice_start=10, slice_end=14).array
    print(json.dumps({"before": before, "after": rss_mb(), "sum": int(chunk.sum())}))
""")


@linux_only
def test_reading_a_chunk_of_a_large_file_keeps_memory_small(tmp_path):
    """segread of a ~200 MB native LABELMAP + one 4-slice read: RSS grows far less than the file."""
    shape = (200, 1024, 1024)
    series = synthetic.make_ct_series((shape[0], 16, 16), seed=2)
    for ds in series:  # 1024 x 1024 planes without 1024 x 1024 CT pixels: only the header is used
        ds.Rows, ds.Columns = shape[1:]
    labels = np.lib.format.open_memmap(tmp_path / "labels.npy", mode="w+", dtype=np.uint8, shape=shape)
    labels[:, 100:200, 100:300] = 1
    labels.flush()
    seg = build_segmentation(monai_dicomseg, series, labels, "LABELMAP", 1, omit_empty_frames=False)
    path = tmp_path / "big.dcm"
    seg.save_as(path)
    del seg, labels
    assert path.stat().st_size > 200 << 20
    done = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"})
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["sum"] == 4 * 100 * 200
    assert result["after"] - result["before"] < 0.25 * path.stat().st_size / 2**20, result


@pytest.mark.parametrize("deferred", [False, True], ids=["loaded", "deferred"])
def test_implicit_vr_files_read_and_save(tmp_path, files, deferred):
    """Implicit VR Little Endian: the Pixel Data VR comes from the data dictionary; save_as writes an
    implicit header (the streaming writer wrote an explicit one into implicit files before)."""
    import pydicom

    original = pydicom.dcmread(files["labelmap-16"])
    original.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    path = tmp_path / "implicit.dcm"
    original.save_as(path, implicit_vr=True, little_endian=True)
    expected = _read(files["labelmap-16"], False).get_volume(combine_segments=True).array
    seg = _read(path, deferred)
    np.testing.assert_array_equal(seg.get_volume(combine_segments=True).array, expected)
    out = tmp_path / "saved.dcm"
    seg.save_as(out)
    assert out.read_bytes() == path.read_bytes()
    np.testing.assert_array_equal(segread(out).get_volume(combine_segments=True).array, expected)


def test_close_and_with_release_the_file(files):
    """Segmentation.close() / ``with segread(path) as seg:`` release the descriptor a deferred SEG holds; its
    header stays usable, its pixels no longer readable; a SEG held in memory is unaffected."""
    path = files["labelmap-8"]
    deferred = _read(path, True)
    with deferred as seg:
        assert seg is deferred
        expected = seg.get_volume(combine_segments=True).array
    assert int(deferred.NumberOfFrames) > 0  # the header is still there
    with pytest.raises(DecodeError, match="source was closed"):
        deferred.get_volume(combine_segments=True)
    loaded = _read(path, False)
    loaded.close()  # nothing to release
    np.testing.assert_array_equal(loaded.get_volume(combine_segments=True).array, expected)
    again = _read(path, True)
    assert again.PixelData == loaded.PixelData  # loaded whole, once
    again.close()  # the descriptor goes; the loaded value stays
    np.testing.assert_array_equal(again.get_volume(combine_segments=True).array, expected)
