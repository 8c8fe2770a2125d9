"""Dense FRACTIONAL written in bounded memory (issue 25): the frame store, streamed Pixel Data, slab threads.

* The same file bytes whether the stored frames stay in memory or go to the
  frame store's temporary file (and the value is streamed at ``save_as``),
  and whether slabs are computed by one thread or several; the per-class
  numpy path is the reference. Native, RLE, BINARY frames that end on a byte
  and frames that do not, empty frames kept.
* Slab threads: blocks in order, equal to one thread's; an error in a slab
  propagates and leaves no thread behind.
* Memory (tracemalloc, in a child): an uncertain softmax whose native
  FRACTIONAL Pixel Data is ~80 MB is written with a peak far below it; with
  the frames kept in memory the peak is above it (the control run).
"""
from __future__ import annotations

import functools
import json
import os
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
from monai_dicomseg.codec.pixel_data import StreamedPixelData
from monai_dicomseg.io import device_grid
from monai_dicomseg.io.prediction import plan_output_segments, to_source_grid
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


def _case(source_shape, classes=4, scale=6.0, zoom=2.0, seed=1):
    transform, shape = model_transform(source_shape, zoom)
    return softmax(shape, classes, seed, scale), plan_for(transform, shape, source_shape)


def _seg(array, grid, source_shape, segmentation_type="FRACTIONAL", **options):
    plan = plan_output_segments("probabilities", array.shape[0], None, algorithm_type="MANUAL")
    discretize = {} if segmentation_type == "FRACTIONAL" else {"discretize": "argmax"}
    pixels = to_source_grid(array, plan, grid, segmentation_type, **discretize)
    series = _SERIES.setdefault(source_shape, synthetic.make_ct_series(shape=source_shape))
    return Segmentation(source_images=series, pixel_array=pixels, segmentation_type=segmentation_type,
                        segment_descriptions=plan.descriptions, series_instance_uid="1.2.3.4",
                        sop_instance_uid="1.2.3.5", instance_number=1, series_number=1, manufacturer="x",
                        manufacturer_model_name="x", software_versions="1", device_serial_number="1", **options)


_FRACTIONAL_SOURCE = device_grid.fractional_source


def source_plane(args) -> int:
    return int(args[2][1] * args[2][2])


def _bytes(monkeypatch, threshold, threads, *args, per_class=False, **options):
    with monkeypatch.context() as patch:
        patch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", threshold)
        patch.setattr(device_grid, "slab_threads", lambda: threads)
        patch.setattr(device_grid, "fractional_source",  # small slabs: many of them, so the threads have work
                      functools.partial(_FRACTIONAL_SOURCE, slab_values=2 * source_plane(args)))
        if per_class:
            patch.setattr(device_grid, "available", lambda: False)
        seg = _seg(*args, **options)
        return deterministic_bytes(seg, fix_uids=True), seg


@pytest.mark.parametrize("segmentation_type,source_shape,syntax", [
    ("FRACTIONAL", (5, 12, 14), None), ("FRACTIONAL", (5, 12, 14), "1.2.840.10008.1.2.5"),
    ("BINARY", (5, 8, 16), None), ("BINARY", (5, 9, 7), None)],  # RLE is not a BINARY transfer syntax
    ids=["fractional-native", "fractional-rle", "binary-whole-bytes", "binary-bits-across-frames"])
@pytest.mark.parametrize("omit", [True, False], ids=["omit-empty", "keep-empty"])
def test_spilled_streamed_and_threaded_files_equal_the_in_memory_and_per_class_ones(
        monkeypatch, segmentation_type, source_shape, syntax, omit):
    array, grid = _case(source_shape, scale=6.0 if omit else 12.0)
    options = {"omit_empty_frames": omit, **({"transfer_syntax_uid": syntax} if syntax else {})}
    arguments = (array, grid, source_shape, segmentation_type)
    reference, _ = _bytes(monkeypatch, 1 << 40, 1, *arguments, per_class=True, **options)
    in_memory, _ = _bytes(monkeypatch, 1 << 40, 1, *arguments, **options)
    spilled, seg = _bytes(monkeypatch, 16, 3, *arguments, **options)  # frames to the file, value streamed
    assert in_memory == reference
    assert spilled == reference
    if syntax is None:
        assert isinstance(seg.buffer, StreamedPixelData)


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


CHILD = textwrap.dedent("""
    import json, sys, tracemalloc
    import numpy as np, torch
    from monai.data import MetaTensor
    from monai_dicomseg import synthetic
    from monai_dicomseg.codec import pixel_data
    from monai_dicomseg.io.source_series import load_source_geometry
    from monai_dicomseg.io.writer import DicomSegWriter

    folder, out, stream = sys.argv[1:4]
    pixel_data.STREAM_PIXEL_DATA_BYTES = (4 << 20) if stream == "on" else (1 << 50)
    frames, rows, columns, classes = 60, 256, 256, 20
    synthetic.write_series(synthetic.make_ct_series((frames, rows, columns), seed=0), folder)
    source = load_source_geometry(folder)
    shape = (64, 64, 30)  # model grid (MONAI order): 4 x 4 x 2 coarser
    affine = source.monai_affine() @ np.diag([4.0, 4.0, 2.0, 1.0])
    labels = np.random.default_rng(0).integers(0, classes + 1, size=shape)
    logits = np.eye(classes + 1, dtype=np.float32)[labels].transpose(3, 0, 1, 2) * np.float32(6.0)
    probabilities = torch.softmax(torch.from_numpy(logits), dim=0)  # uncertain: every frame stored
    output = MetaTensor(probabilities, affine=torch.as_tensor(affine))
    writer = DicomSegWriter(segmentation_type="FRACTIONAL", labels=["background"] + [f"c{i}" for i in range(classes)])
    writer.set_data_array(output, channel_dim=0)
    writer.set_metadata(output.meta, source=folder)
    tracemalloc.start()
    writer.write(out)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    import pydicom
    stored = int(pydicom.dcmread(out, stop_before_pixels=True).NumberOfFrames)
    print(json.dumps({"peak": peak, "pixel_data": stored * rows * columns, "frames": stored,
                      "all_frames": frames * (classes + 1)}))
""")


def _child(tmp_path: Path, stream: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "ct"), str(tmp_path / f"{stream}.dcm"), stream],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["frames"] > 0.9 * result["all_frames"]  # uncertain: (nearly) every frame stored
    return result


def test_dense_fractional_write_peak_does_not_grow_with_the_pixel_data(tmp_path):
    """~80 MB of native FRACTIONAL Pixel Data: peak < 0.6 of it (~0.47: the model copy, slabs, 4 MiB of frames) when the frames wait in the frame store's file
    and the value streams at save_as; > 1.0 of it when they are kept in memory and joined."""
    streamed = _child(tmp_path, "on")
    assert streamed["peak"] < 0.6 * streamed["pixel_data"], streamed
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
