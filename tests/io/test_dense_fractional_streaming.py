"""Dense FRACTIONAL written in bounded memory (issue 25): the frame store, streamed Pixel Data, slab threads.

* The same file bytes whether the stored frames stay in memory or go to the
  frame store's temporary file (and the value is streamed at ``save_as``),
  and whether slabs are computed by one thread or several; the per-class
  numpy path is the reference. Native, RLE, BINARY (by threshold: the
  stacked path) frames that end on a byte and frames that do not; empty
  frames omitted or kept (served as zeros). Deep copies and pickles of an
  unsaved spilled SEG save the same bytes.
* Slab threads: blocks in order, equal to one thread's; an error in a slab,
  or a consumer that stops early, leaves no thread behind.
* Memory (tracemalloc, in a child): an uncertain softmax whose native
  FRACTIONAL Pixel Data is ~110 MB is built and saved with a peak far below
  it; with the frames kept in memory the peak is above it (the control run).
"""
from __future__ import annotations

import copy
import io
import functools
import json
import os
import pickle
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from oracles import dciodvfy_errors, deterministic_bytes

from monai_dicomseg import synthetic
from monai_dicomseg.codec import pixel_data
from monai_dicomseg.codec.encapsulated_pixel_data import StreamedEncapsulatedPixelData
from monai_dicomseg.codec.frame_store import FrameStore
from monai_dicomseg.codec.pixel_data import StreamedPixelData
from monai_dicomseg.errors import EncodeError
from monai_dicomseg.io import device_grid
from monai_dicomseg.io.prediction import plan_output_segments, to_source_grid
from monai_dicomseg.seg import encode as encode_module
from monai_dicomseg.seg.segmentation import Segmentation, segread

torch = pytest.importorskip("torch")
REPO = Path(__file__).resolve().parents[2]


def _dense_fractional_helpers():
    """tests/io/test_dense_fractional.py's builders (tests/io is not on the path: loaded by file)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_dense_fractional_cases", Path(__file__).with_name(
        "test_dense_fractional.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_cases = _dense_fractional_helpers()
model_transform, plan_for, softmax = _cases.model_transform, _cases.plan_for, _cases.softmax
_SERIES: dict = {}


def _case(source_shape, classes=4, scale=6.0, zoom=2.0, seed=1, holes=False):
    """A softmax on a model grid ``zoom`` coarser; ``holes``: class 2 only in the first model planes (segment 2
    has empty frames: omitted, or kept and served as zeros)."""
    transform, shape = model_transform(source_shape, zoom)
    array = softmax(shape, classes, seed, scale)
    if holes:
        array[2, 2:] = 0.0  # model axis 0 is the source's frame axis (no permutation)
    return array, plan_for(transform, shape, source_shape)


def _seg(array, grid, source_shape, segmentation_type="FRACTIONAL", **options):
    plan = plan_output_segments("probabilities", array.shape[0], None, algorithm_type="MANUAL")
    # BINARY by threshold: the stacked (streamed) source; argmax gives a materialised array (no frame store)
    discretize = {} if segmentation_type == "FRACTIONAL" else {"discretize": "threshold", "threshold": 0.3}
    pixels = to_source_grid(array, plan, grid, segmentation_type, **discretize)
    series = _SERIES.setdefault(source_shape, synthetic.make_ct_series(shape=source_shape))
    return Segmentation(source_images=series, pixel_array=pixels, segmentation_type=segmentation_type,
                        segment_descriptions=plan.descriptions, series_instance_uid="1.2.3.4",
                        sop_instance_uid="1.2.3.5", instance_number=1, series_number=1, manufacturer="x",
                        manufacturer_model_name="x", software_versions="1", device_serial_number="1", **options)


_FRACTIONAL_SOURCE = device_grid.fractional_source


def source_plane(args) -> int:
    return int(args[2][1] * args[2][2])


class _RecordedStore(FrameStore):
    """The encoder's frame store, remembered (to tell whether its frames went to the file)."""

    made: list = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _RecordedStore.made.append(self)


def _bytes(monkeypatch, threshold, threads, *args, per_class=False, **options):
    """File bytes and the SEG, built with ``STREAM_PIXEL_DATA_BYTES = threshold`` and ``threads`` slab threads
    (many small slabs); ``per_class``: the numpy per-class reference path (no device grid)."""
    with monkeypatch.context() as patch:
        patch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", threshold)
        patch.setattr(device_grid, "slab_threads", lambda: threads)
        patch.setattr(device_grid, "fractional_source",  # small slabs: many of them, so the threads have work
                      functools.partial(_FRACTIONAL_SOURCE, slab_values=2 * source_plane(args)))
        patch.setattr(encode_module, "FrameStore", _RecordedStore)
        _RecordedStore.made.clear()
        if per_class:
            patch.setattr(device_grid, "available", lambda: False)
        seg = _seg(*args, **options)
        stores = list(_RecordedStore.made)
        return deterministic_bytes(seg, fix_uids=True), seg, stores


def _empty_frames(seg) -> int:
    pixels = np.asarray(seg.pixel_array)
    return int((pixels.reshape(pixels.shape[0], -1).max(axis=1) == 0).sum())


@pytest.mark.parametrize("segmentation_type,source_shape,syntax", [
    ("FRACTIONAL", (5, 12, 14), None), ("FRACTIONAL", (5, 12, 14), "1.2.840.10008.1.2.5"),
    ("BINARY", (5, 10, 12), None), ("BINARY", (5, 9, 7), None)],  # RLE is not a BINARY transfer syntax here
    ids=["fractional-native", "fractional-rle", "binary-whole-bytes", "binary-bits-across-frames"])
@pytest.mark.parametrize("omit", [True, False], ids=["omit-empty", "keep-empty"])
def test_spilled_streamed_and_threaded_files_equal_the_in_memory_and_per_class_ones(
        monkeypatch, segmentation_type, source_shape, syntax, omit):
    """Frames spilled to the store's file and served at save_as (3 slab threads) == frames kept in memory and
    joined (1 thread) == the per-class numpy path; 10 x 12 BINARY frames end on a byte, 9 x 7 ones do not."""
    array, grid = _case(source_shape, holes=True)
    options = {"omit_empty_frames": omit, **({"transfer_syntax_uid": syntax} if syntax else {})}
    arguments = (array, grid, source_shape, segmentation_type)
    reference, reference_seg, _ = _bytes(monkeypatch, 1 << 40, 1, *arguments, per_class=True, **options)
    in_memory, _, kept = _bytes(monkeypatch, 1 << 40, 1, *arguments, **options)
    spilled, seg, stored = _bytes(monkeypatch, 16, 3, *arguments, **options)  # frames to the file, value streamed
    segments = len(reference_seg.SegmentSequence)
    if omit:  # the holes are left out ...
        assert int(reference_seg.NumberOfFrames) < segments * source_shape[0]
    else:  # ... or kept, all zero
        assert int(reference_seg.NumberOfFrames) == segments * source_shape[0] and _empty_frames(reference_seg) > 0
    assert len(kept) == 1 and not kept[0].spilled  # the dense path ran, frames in memory
    assert len(stored) == 1 and stored[0].spilled  # the dense path ran, frames in the temporary file
    assert in_memory == reference
    assert spilled == reference
    assert isinstance(seg.buffer, StreamedEncapsulatedPixelData if syntax else StreamedPixelData)


def test_spilled_file_reads_back_and_validates(monkeypatch, tmp_path):
    source_shape = (4, 16, 16)
    array, grid = _case(source_shape)
    monkeypatch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", 256)
    seg = _seg(array, grid, source_shape)
    assert isinstance(seg.buffer, StreamedPixelData)
    path = tmp_path / "seg.dcm"
    seg.save_as(path)
    monkeypatch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", 1 << 40)
    expected = _seg(array, grid, source_shape)
    np.testing.assert_array_equal(segread(path).pixel_array, expected.pixel_array)
    np.testing.assert_array_equal(seg.pixel_array, expected.pixel_array)  # the unsaved SEG, read from the store
    assert dciodvfy_errors(path) == []


@pytest.mark.parametrize("syntax", [None, "1.2.840.10008.1.2.5"], ids=["native", "rle"])
def test_copies_and_pickles_of_an_unsaved_spilled_seg_save_the_same_bytes(monkeypatch, syntax):
    """``copy.deepcopy`` and ``pickle`` of a constructed, not yet saved SEG whose frames are in the store's
    file give the bytes of the in-memory path (the deep copy shares the store; the pickle carries the value)."""
    source_shape = (4, 16, 16)
    array, grid = _case(source_shape, holes=True)
    options = {"transfer_syntax_uid": syntax} if syntax else {}
    arguments = (array, grid, source_shape, "FRACTIONAL")
    expected, _, _ = _bytes(monkeypatch, 1 << 40, 1, *arguments, **options)
    with monkeypatch.context() as patch:
        patch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", 64)
        patch.setattr(encode_module, "FrameStore", _RecordedStore)
        _RecordedStore.made.clear()
        seg = _seg(*arguments, **options)
    assert _RecordedStore.made[-1].spilled
    copied = copy.deepcopy(seg)
    pickled = pickle.loads(pickle.dumps(seg))
    assert deterministic_bytes(copied, fix_uids=True) == expected
    assert deterministic_bytes(pickled, fix_uids=True) == expected
    assert deterministic_bytes(seg, fix_uids=True) == expected  # the original, after its copies were saved
    assert deterministic_bytes(seg, fix_uids=True) == expected  # and saved twice


def _quantized(array, grid, threads, monkeypatch, plane):
    with monkeypatch.context() as patch:
        patch.setattr(device_grid, "slab_threads", lambda: threads)
        source = device_grid.fractional_source(array, range(1, array.shape[0]), grid, slab_values=plane)
        blocks = source.quantized(255)
        return [(f0, f1, s0, s1, values.copy()) for f0, f1, s0, s1, values in blocks], blocks.fractional


@pytest.mark.parametrize("scale", [6.0, 12.0], ids=["uncertain", "confident"])
def test_threads_give_one_threads_blocks_in_order(monkeypatch, scale):
    source_shape = (9, 12, 14)
    array, grid = _case(source_shape, classes=5, scale=scale)
    plane = source_shape[1] * source_shape[2]
    one, one_fractional = _quantized(array, grid, 1, monkeypatch, plane)
    three, three_fractional = _quantized(array, grid, 3, monkeypatch, plane)
    assert len(one) > 3 and one_fractional == three_fractional
    assert [block[:4] for block in one] == [block[:4] for block in three]
    for left, right in zip(one, three):
        np.testing.assert_array_equal(left[4], right[4])
    with monkeypatch.context() as patch:
        patch.setattr(device_grid, "slab_threads", lambda: 3)
        floats = device_grid.threshold_source(array, range(1, 6), grid, 0.3, slab_values=plane)
        threaded = [values.copy() for *_, values in floats.blocks()]
    with monkeypatch.context() as patch:
        patch.setattr(device_grid, "slab_threads", lambda: 1)
        serial = [values.copy() for *_, values in device_grid.threshold_source(
            array, range(1, 6), grid, 0.3, slab_values=plane).blocks()]
    assert len(threaded) == len(serial)
    for left, right in zip(threaded, serial):
        np.testing.assert_array_equal(left, right)


def test_a_failing_slab_propagates_and_leaves_no_thread(monkeypatch):
    source_shape = (9, 12, 14)
    array, grid = _case(source_shape)
    original = device_grid._Blocks.slab
    calls = []

    def slab(self, *args):
        calls.append(args[0])
        if len(calls) == 3:
            raise RuntimeError("slab 3 failed")
        return original(self, *args)

    monkeypatch.setattr(device_grid._Blocks, "slab", slab)
    monkeypatch.setattr(device_grid, "slab_threads", lambda: 3)
    source = device_grid.fractional_source(array, range(1, 5), grid, slab_values=12 * 14)
    with pytest.raises(RuntimeError, match="slab 3 failed"):
        list(source.quantized(255))
    assert not [t for t in threading.enumerate() if t.name.startswith("monai_dicomseg-slab")]


def test_a_consumer_that_stops_early_leaves_no_thread(monkeypatch):
    source_shape = (9, 12, 14)
    array, grid = _case(source_shape)
    monkeypatch.setattr(device_grid, "slab_threads", lambda: 3)
    blocks = iter(device_grid.fractional_source(array, range(1, 5), grid, slab_values=12 * 14).quantized(255))
    next(blocks)
    assert [t for t in threading.enumerate() if t.name.startswith("monai_dicomseg-slab")]  # slabs ahead
    blocks.close()  # the consumer gives up (an error in the encoder's scan, a generator dropped)
    assert not [t for t in threading.enumerate() if t.name.startswith("monai_dicomseg-slab")]


CHILD = textwrap.dedent("""
    import json, os, sys, tracemalloc
    import numpy as np, torch
    from monai.data import MetaTensor
    from monai_dicomseg import synthetic
    from monai_dicomseg.codec import pixel_data
    from monai_dicomseg.io import device_grid
    from monai_dicomseg.io.source_series import load_source_geometry
    from monai_dicomseg.io.writer import DicomSegWriter

    folder, out, stream = sys.argv[1:4]
    pixel_data.STREAM_PIXEL_DATA_BYTES = (4 << 20) if stream == "on" else (1 << 50)
    device_grid.slab_threads = lambda: 2  # the same slabs in flight on any machine
    frames, rows, columns, classes = 80, 256, 256, 22
    synthetic.write_series(synthetic.make_ct_series((frames, rows, columns), seed=0), folder)
    source = load_source_geometry(folder)
    shape = (64, 64, 20)  # model grid (MONAI order): 4 x 4 x 4 coarser
    affine = source.monai_affine() @ np.diag([4.0, 4.0, 4.0, 1.0])
    labels = np.random.default_rng(0).integers(0, classes + 1, size=shape)
    logits = np.eye(classes + 1, dtype=np.float32)[labels].transpose(3, 0, 1, 2) * np.float32(6.0)
    probabilities = torch.softmax(torch.from_numpy(logits), dim=0)  # uncertain: every frame stored
    del labels, logits
    output = MetaTensor(probabilities, affine=torch.as_tensor(affine))
    writer = DicomSegWriter(segmentation_type="FRACTIONAL", labels=["background"] + [f"c{i}" for i in range(classes)])
    writer.set_data_array(output, channel_dim=0)
    writer.set_metadata(output.meta, source=folder)
    tracemalloc.start()
    seg = writer.build()
    build = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    seg.save_as(out)
    save = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    stored = int(seg.NumberOfFrames)
    print(json.dumps({"build": build, "save": save, "peak": max(build, save), "pixel_data": stored * rows * columns,
                      "frames": stored, "all_frames": frames * (classes + 1), "size": os.path.getsize(out)}))
""")


def _child(tmp_path: Path, stream: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "ct"), str(tmp_path / f"{stream}.dcm"), stream],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["frames"] > 0.9 * result["all_frames"]  # uncertain: (nearly) every frame stored
    assert result["size"] > result["pixel_data"]  # the whole value reached the file
    return result


def test_dense_fractional_write_peak_does_not_grow_with_the_pixel_data(tmp_path):
    """~110 MB of native FRACTIONAL Pixel Data (80 x 256 x 256 source, 23 segments, every frame stored).

    Streamed (frames past 4 MiB in the store's file, the value served at save_as): the save_as peak is
    < 0.25 of the Pixel Data (~0.09: the functional groups, 4 MiB of frames in memory, one batch of the value);
    the build() peak < 0.45 of it (~0.33, none of it the Pixel Data: the float32 model copy 1/16, the scan's
    (F, R, C) counts 1/23, two slab threads' float temporaries ~9 MB, four one-plane blocks ~6 MB, the 4 MiB
    of frames). Control (the frames kept in memory and joined): > 1.0 of it, so the bounds would catch the
    Pixel Data (or the frames) held whole.
    """
    streamed = _child(tmp_path, "on")
    assert streamed["save"] < 0.25 * streamed["pixel_data"], streamed
    assert streamed["peak"] < 0.45 * streamed["pixel_data"], streamed
    in_memory = _child(tmp_path, "off")
    assert in_memory["peak"] > 1.0 * in_memory["pixel_data"], in_memory


def test_slab_threads_follow_the_cpus_and_torch(monkeypatch):
    """At most MAX_SLAB_THREADS, at most the CPUs, at most torch's threads (a DataLoader worker sets 1)."""
    monkeypatch.setattr(device_grid.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    assert device_grid.slab_threads() == device_grid.MAX_SLAB_THREADS
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert device_grid.slab_threads() == 1
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    monkeypatch.setattr(device_grid.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert device_grid.slab_threads() == 2


# --------------------------------------------------------------------------- a SEG written once: frames released


class _BlocksAtClose(_RecordedStore):
    """A recorded store that notes how many bytes its temporary file still had allocated when it was closed."""

    allocated: list = []

    def close(self):
        if self._file is not None:
            _BlocksAtClose.allocated.append(os.fstat(self._file.fileno()).st_blocks * 512)
        super().close()


def _released(monkeypatch, threshold, *args, **options):
    """(bytes saved with ``release_frames=True``, the SEG, its store) with ``STREAM_PIXEL_DATA_BYTES = threshold``."""
    with monkeypatch.context() as patch:
        patch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", threshold)
        patch.setattr(encode_module, "FrameStore", _BlocksAtClose)
        _RecordedStore.made.clear()
        seg = _seg(*args, **options)
        store = _RecordedStore.made[-1]
        streamed = getattr(getattr(seg, "buffer", None), "frame_store", None) is store  # else joined at build
        return deterministic_bytes(seg, fix_uids=True, release_frames=True), seg, store, streamed


@pytest.mark.parametrize("segmentation_type,source_shape,syntax", [
    ("FRACTIONAL", (5, 12, 14), None), ("FRACTIONAL", (5, 12, 14), "1.2.840.10008.1.2.5"),
    ("BINARY", (5, 10, 12), None), ("BINARY", (5, 9, 7), None)],
    ids=["fractional-native", "fractional-rle", "binary-whole-bytes", "binary-bits-across-frames"])
@pytest.mark.parametrize("omit", [True, False], ids=["omit-empty", "keep-empty"])
def test_a_released_write_equals_the_kept_one_and_the_seg_then_refuses_reads(
        monkeypatch, segmentation_type, source_shape, syntax, omit):
    """``save_as(..., release_frames=True)`` writes the bytes of a write that keeps the frames (threshold 16:
    frames in the store's file, value streamed; 4096: frames in memory, small values joined at build). After a
    streamed one the SEG's Pixel Data is an EncodeError naming the option, never zeros or a short value; a
    value joined at build (no store behind it) is kept and reads as before."""
    array, grid = _case(source_shape, holes=True)
    options = {"omit_empty_frames": omit, **({"transfer_syntax_uid": syntax} if syntax else {})}
    arguments = (array, grid, source_shape, segmentation_type)
    expected, expected_seg, _ = _bytes(monkeypatch, 1 << 40, 1, *arguments, **options)
    seen = set()
    for threshold in (16, 4096):
        released, seg, store, streamed = _released(monkeypatch, threshold, *arguments, **options)
        seen.add(streamed)
        assert released == expected
        if not streamed:
            np.testing.assert_array_equal(seg.pixel_array, expected_seg.pixel_array)
            continue
        with pytest.raises(EncodeError, match="release_frames"):
            seg.pixel_array
        with pytest.raises(EncodeError, match="release_frames"):
            seg.save_as(io.BytesIO())
        with pytest.raises(EncodeError, match="release_frames"):
            store.get(next(iter(store._memory), (0, 1)))
    assert True in seen


def test_a_released_write_leaves_the_store_file_without_its_blocks(monkeypatch):
    """The frames' blocks of the store's temporary file are deallocated as they are written (so a multi-GB
    output is never twice in the page cache); the control write, keeping the frames, still holds them."""
    if not sys.platform.startswith("linux"):
        pytest.skip("hole punching (fallocate) is Linux's; elsewhere the frames stay until close, as tested above")
    source_shape = (6, 64, 64)  # 4 KiB frames: the store's file is whole blocks
    array, grid = _case(source_shape)
    arguments = (array, grid, source_shape, "FRACTIONAL")
    _BlocksAtClose.allocated.clear()
    _, seg, store, streamed = _released(monkeypatch, 16, *arguments)
    assert streamed and store._closed and store._end >= 6 * 4 * 64 * 64
    released_blocks = _BlocksAtClose.allocated[-1]
    with monkeypatch.context() as patch:  # the control: the same write keeping its frames
        patch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", 16)
        patch.setattr(encode_module, "FrameStore", _BlocksAtClose)
        kept_seg = _seg(*arguments)
        deterministic_bytes(kept_seg, fix_uids=True)
        kept = _RecordedStore.made[-1]
        kept.close()
    kept_blocks = _BlocksAtClose.allocated[-1]
    assert kept_blocks >= kept._end, (kept_blocks, kept._end)
    assert released_blocks < 0.1 * kept._end, (released_blocks, kept._end)


def test_release_changes_nothing_without_a_frame_store(monkeypatch, tmp_path):
    """A SEG built from an in-memory value (below the threshold: no store behind its Pixel Data) can be saved
    with ``release_frames=True`` again and again: the same bytes each time."""
    source_shape = (4, 16, 16)
    array, grid = _case(source_shape)
    seg = _seg(array, grid, source_shape)
    first = deterministic_bytes(seg, fix_uids=True, release_frames=True)
    assert deterministic_bytes(seg, fix_uids=True, release_frames=True) == first
    seg.save_as(tmp_path / "seg.dcm", release_frames=True)
    assert (tmp_path / "seg.dcm").read_bytes() == first


class _FailingStream(io.BytesIO):
    def write(self, data):
        if self.tell() > 1000:
            raise OSError(28, "No space left on device")
        return super().write(data)


def test_a_released_write_that_fails_closes_the_store_and_leaves_no_file(monkeypatch, tmp_path):
    source_shape = (4, 16, 16)
    array, grid = _case(source_shape)
    with monkeypatch.context() as patch:
        patch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", 16)
        patch.setattr(encode_module, "FrameStore", _RecordedStore)
        seg = _seg(array, grid, source_shape)
        store = _RecordedStore.made[-1]
    with pytest.raises(OSError, match="No space"):
        seg.save_as(_FailingStream(), release_frames=True)
    assert store._closed
    with pytest.raises(EncodeError, match="closed.*release_frames"):
        seg.pixel_array
    seg2 = _seg(array, grid, source_shape)  # to a path: the atomic write leaves nothing behind

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(StreamedPixelData, "chunks", fail)
    with monkeypatch.context() as patch:
        patch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", 16)
        seg2 = _seg(array, grid, source_shape)
    with pytest.raises(OSError, match="No space"):
        seg2.save_as(tmp_path / "seg.dcm", release_frames=True)
    assert list(tmp_path.iterdir()) == []


def test_the_writer_writes_once_releasing_its_frames(monkeypatch, tmp_path):
    """DicomSegWriter.write releases the frames it wrote (they are never read again), and its file holds the
    values of the same SEG built and kept."""
    from monai.data import MetaTensor

    from monai_dicomseg.io.source_series import load_source_series
    from monai_dicomseg.io.writer import DicomSegWriter

    source_shape = (4, 16, 16)
    series = synthetic.make_ct_series(shape=source_shape)
    synthetic.write_series(series, tmp_path / "ct")
    source = load_source_series(tmp_path / "ct")
    probabilities = softmax(source_shape[::-1], 2, 4, 6.0)  # MONAI (3, X, Y, Z) on the source grid
    prediction = MetaTensor(torch.from_numpy(probabilities), affine=torch.as_tensor(source.monai_affine()),
                            meta={"filename_or_obj": str(tmp_path / "ct")})
    calls = []
    original = FrameStore.release_when_read
    monkeypatch.setattr(FrameStore, "release_when_read", lambda self: (calls.append(self), original(self)))
    monkeypatch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", 64)

    def writer():
        made = DicomSegWriter(segmentation_type="FRACTIONAL", labels=["background", "liver", "spleen"])
        made.set_data_array(prediction, channel_dim=0)
        made.set_metadata(prediction.meta)
        return made
    path = writer().write(tmp_path / "seg.dcm")
    assert len(calls) == 1 and calls[0]._closed
    kept = writer().build()
    np.testing.assert_array_equal(segread(path).pixel_array, kept.pixel_array)
