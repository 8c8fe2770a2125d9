"""Encapsulated Pixel Data streamed to the file (issue 25): never joined past ``STREAM_PIXEL_DATA_BYTES``.

* Byte-identical files whichever path built them: the in-memory value
  (threshold out of reach) vs :class:`StreamedEncapsulatedPixelData`
  (threshold 1), RLE / JPEG-LS / JPEG 2000, the three types, array and
  stacked (frame store) inputs, Basic and Extended Offset Tables.
* The served element: any byte range equals the joined element's; pydicom's
  deferred read (``PixelData``, ``pixel_array``, ``pydicom.dcmwrite``),
  ``deepcopy`` and ``pickle`` give the same bytes; dciodvfy finds no error.
* Before ``save_as``, frames are decoded from the compressed frames (a batch
  encapsulated alone), never by loading the whole value: ``get_volume``,
  ``get_pixels_by_source_frame``, ``decode_frames`` equal the in-memory SEG
  and the value stays streamed; highdicom reads the streamed file equal.
* A frame that fails while written leaves no file; a frame that changed size
  is refused.
* Memory: a dense FRACTIONAL RLE write past the threshold peaks (tracemalloc,
  in a child) far below its Pixel Data value; with streaming off it peaks
  above the value (so the test would catch the joined value coming back).
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
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracles import build_segmentation, dciodvfy_errors, deterministic_bytes, highdicom_pixels

import monai_dicomseg
from monai_dicomseg import synthetic
from monai_dicomseg.codec import decode, pixel_data
from monai_dicomseg.codec.compression import encapsulate_frames
from monai_dicomseg.codec.encapsulated_pixel_data import (
    StreamedEncapsulatedPixelData,
    encapsulated_length,
    set_encapsulated_pixel_data,
)
from monai_dicomseg.errors import EncodeError

REPO = Path(__file__).resolve().parents[2]
RLE, JPEG_LS, JPEG_2000 = "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90"
SYNTAXES = {"BINARY": [JPEG_2000], "FRACTIONAL": [RLE, JPEG_LS, JPEG_2000], "LABELMAP": [RLE, JPEG_LS, JPEG_2000]}
_SERIES: dict = {}


def _series(shape: tuple[int, int, int]) -> list:
    return _SERIES.setdefault(shape, synthetic.make_ct_series(shape, seed=2))


def _pixels(seg_type: str, form: str, shape: tuple[int, int, int], segments: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.where(rng.random(shape) < 0.6, rng.integers(1, segments + 1, shape), 0).astype(np.uint8)
    if seg_type == "LABELMAP" and form == "array":
        return labels
    stacked = labels[..., None] == np.arange(1, segments + 1)
    if seg_type == "FRACTIONAL":
        return np.where(stacked, rng.random(stacked.shape, dtype=np.float32), np.float32(0))
    return stacked


def _file(monkeypatch, threshold: int, *args, **options) -> tuple[bytes, object]:
    with monkeypatch.context() as patch:
        patch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", threshold)
        seg = build_segmentation(monai_dicomseg, *args, **options)
        return deterministic_bytes(seg, fix_uids=True), seg


CASES = [(seg_type, syntax, form) for seg_type, syntaxes in SYNTAXES.items() for syntax in syntaxes
         for form in (["array"] if seg_type == "LABELMAP" else ["array", "stacked"])]


@pytest.mark.parametrize("extended", [False, True], ids=["basic-offsets", "extended-offsets"])
@pytest.mark.parametrize("seg_type,syntax,form", CASES)
def test_streamed_and_in_memory_files_are_byte_identical(monkeypatch, seg_type, syntax, form, extended):
    shape, segments = (3, 32, 33), 3  # openjpeg needs at least 32 rows and columns; odd columns: odd frames
    pixels = _pixels(seg_type, form, shape, segments, seed=7)
    arguments = (_series(shape), pixels, seg_type, segments)
    options = {"transfer_syntax_uid": syntax, "use_extended_offset_table": extended}
    expected, old = _file(monkeypatch, 1 << 40, *arguments, **options)
    assert not isinstance(getattr(old, "buffer", None), StreamedEncapsulatedPixelData)
    actual, new = _file(monkeypatch, 1, *arguments, **options)
    assert isinstance(new.buffer, StreamedEncapsulatedPixelData)
    assert actual == expected


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seg_type=st.sampled_from(["FRACTIONAL", "LABELMAP"]), form=st.sampled_from(["array", "stacked"]),
       frames=st.integers(1, 4), rows=st.integers(2, 11), columns=st.integers(2, 11), segments=st.integers(1, 3),
       omit=st.booleans(), seed=st.integers(0, 2**16))
def test_property_streamed_rle_equals_in_memory(monkeypatch, seg_type, form, frames, rows, columns, segments,
                                                omit, seed):
    """Odd and even frame lengths, empty frames kept or left out: the served items equal the joined ones."""
    shape = (frames, rows, columns)
    pixels = _pixels(seg_type, form, shape, segments, seed)
    arguments = (_series(shape), pixels, seg_type, segments)
    options = {"transfer_syntax_uid": RLE, "omit_empty_frames": omit}
    assert _file(monkeypatch, 1, *arguments, **options)[0] == _file(monkeypatch, 1 << 40, *arguments, **options)[0]


def _frames(seed: int, count: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, int(rng.integers(1, 40)), dtype=np.uint8).tobytes() for _ in range(count)]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), count=st.integers(1, 9), basic=st.booleans(), data=st.data())
def test_property_any_element_range_equals_the_joined_element(seed, count, basic, data):
    """What pydicom's deferred read sees at any (position, size): the joined value between the Pixel Data
    header (undefined length) and the Sequence Delimitation Item, short only past the element's end."""
    frames = _frames(seed, count)
    value, _ = encapsulate_frames(frames, use_extended_offset_table=not basic)
    lengths = np.array([len(frame) for frame in frames])
    source = StreamedEncapsulatedPixelData(frames, lengths, basic_offset_table=basic)
    element = bytes.fromhex("e07f1000") + b"OB\x00\x00" + b"\xff\xff\xff\xff" + value + bytes.fromhex(
        "feffdde000000000")
    assert source.length == len(value) == encapsulated_length(lengths, basic)
    position = data.draw(st.integers(0, len(element) + 4))
    size = data.draw(st.integers(0, len(element) + 8))
    assert source._read_bytes(position, size) == element[position:position + size]
    start = data.draw(st.integers(0, len(value)))
    stop = data.draw(st.integers(start, len(value)))
    assert bytes(source.read_range(start, stop)) == value[start:stop]
    assert b"".join(bytes(chunk) for chunk in source.chunks(7)) == value


def test_deferred_reads_copies_and_pickles_give_the_in_memory_bytes(monkeypatch):
    shape = (4, 10, 12)
    pixels = _pixels("LABELMAP", "array", shape, 3, seed=3)
    expected, old = _file(monkeypatch, 1 << 40, _series(shape), pixels, "LABELMAP", 3, transfer_syntax_uid=RLE)
    monkeypatch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", 1)

    def fresh():
        return build_segmentation(monai_dicomseg, _series(shape), pixels, "LABELMAP", 3, transfer_syntax_uid=RLE)

    assert deterministic_bytes(copy.deepcopy(fresh()), fix_uids=True) == expected
    assert deterministic_bytes(pickle.loads(pickle.dumps(fresh())), fix_uids=True) == expected
    seg = fresh()
    np.testing.assert_array_equal(seg.pixel_array, old.pixel_array)  # pydicom's deferred read of the whole value
    assert seg.PixelData == old.PixelData
    written = io.BytesIO()
    pydicom.dcmwrite(written, fresh(), enforce_file_format=True)  # pydicom's own writer
    assert pydicom.dcmread(io.BytesIO(written.getvalue())).PixelData == old.PixelData
    np.testing.assert_array_equal(fresh().get_volume().array, old.get_volume().array)


def test_streamed_file_is_valid_for_dciodvfy(monkeypatch, tmp_path):
    shape = (4, 16, 16)
    monkeypatch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", 1)
    seg = build_segmentation(monai_dicomseg, _series(shape), _pixels("FRACTIONAL", "stacked", shape, 2, 5),
                             "FRACTIONAL", 2, transfer_syntax_uid=RLE, use_extended_offset_table=True)
    assert isinstance(seg.buffer, StreamedEncapsulatedPixelData)
    path = tmp_path / "seg.dcm"
    seg.save_as(path)
    assert dciodvfy_errors(path) == []


class _FailingFrames:
    """Frames of which one fails when read (a disk error while ``save_as`` streams them)."""

    def __init__(self, frames: list[bytes], failing: int) -> None:
        self.frames, self.failing = frames, failing

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> bytes:
        if index == self.failing:
            raise OSError("the disk went away")
        return self.frames[index]


def test_a_frame_failing_while_written_leaves_no_file(monkeypatch, tmp_path):
    shape = (4, 10, 12)
    monkeypatch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", 1)
    seg = build_segmentation(monai_dicomseg, _series(shape), _pixels("LABELMAP", "array", shape, 3, 1),
                             "LABELMAP", 3, transfer_syntax_uid=RLE)
    frames = [bytes(seg.buffer._frames[index]) for index in range(len(seg.buffer._frames))]
    seg.buffer._frames = _FailingFrames(frames, failing=2)
    target = tmp_path / "seg.dcm"
    with pytest.raises(OSError, match="the disk went away"):
        seg.save_as(target)
    assert list(tmp_path.iterdir()) == []


def test_a_frame_whose_size_changed_is_refused():
    frames = [b"abc", b"defg"]
    source = StreamedEncapsulatedPixelData(frames, np.array([3, 4]), basic_offset_table=True)
    frames[1] = b"xy"
    with pytest.raises(EncodeError, match=r"compressed frame 2 has 2 bytes; 4 were planned"):
        b"".join(bytes(chunk) for chunk in source.chunks(1 << 20))
    with pytest.raises(ValueError, match=r"lengths has shape \(3,\); expected \(2,\)"):
        StreamedEncapsulatedPixelData(frames, np.array([3, 4, 5]), basic_offset_table=True)


def test_below_the_threshold_the_value_is_built_in_memory(monkeypatch):
    frames = _frames(1, 5)
    lengths = np.array([len(frame) for frame in frames])
    monkeypatch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", encapsulated_length(lengths, True) + 1)
    dataset = pydicom.Dataset()
    set_encapsulated_pixel_data(dataset, frames)
    assert dataset.PixelData == encapsulate_frames(frames)[0] and "buffer" not in dataset.__dict__
    monkeypatch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", encapsulated_length(lengths, True))
    streamed = pydicom.Dataset()
    set_encapsulated_pixel_data(streamed, frames)
    assert isinstance(streamed.buffer, StreamedEncapsulatedPixelData)


CHILD = textwrap.dedent("""
    import json, os, sys, tracemalloc
    import numpy as np
    import monai_dicomseg
    from monai_dicomseg import synthetic
    from monai_dicomseg.codec import pixel_data
    from monai_dicomseg.seg import encode
    from monai_dicomseg.seg.inputs import StackedSegmentSource
    from oracles import build_segmentation

    stream, out = sys.argv[1:3]
    pixel_data.STREAM_PIXEL_DATA_BYTES = (1 << 20) if stream == "on" else (1 << 50)
    encode._PENDING_BYTES = 1 << 20  # frames wait for compression in 1 MiB batches
    shape, segments = (80, 256, 256), 12
    series = synthetic.make_ct_series(shape, seed=0)
    noise = np.random.default_rng(0).integers(0, 256, (shape[1], shape[2]), dtype=np.uint8)

    def blocks():  # dense, incompressible fractions: RLE frames about as large as the frames themselves
        for plane in range(shape[0]):
            values = np.empty((segments, 1, shape[1], shape[2]), dtype=np.float32)
            for segment in range(segments):
                values[segment, 0] = (np.roll(noise, plane * 7 + segment * 3) + 1) / np.float32(256)
            yield plane, plane + 1, 0, segments, values

    source = StackedSegmentSource((*shape, segments), np.float32, blocks)
    tracemalloc.start()
    seg = build_segmentation(monai_dicomseg, series, source, "FRACTIONAL", segments, transfer_syntax_uid="1.2.840.10008.1.2.5")
    seg.save_as(out)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(json.dumps({"peak": peak, "file": os.path.getsize(out), "frames": int(seg.NumberOfFrames)}))
""")


def _child(stream: str, tmp_path: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, stream, str(tmp_path / f"seg-{stream}.dcm")],
                          capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_encapsulated_write_peak_does_not_grow_with_the_pixel_data(tmp_path):
    """A ~64 MB RLE FRACTIONAL (every frame stored, incompressible): the frames wait in the frame store's file
    and the value is served item by item to the file, so the traced peak stays far below the Pixel Data; with
    streaming off the frames and the joined value are both in memory (above the file's size)."""
    streamed = _child("on", tmp_path)
    assert streamed["frames"] == 80 * 12
    assert streamed["peak"] < 0.25 * streamed["file"], streamed
    in_memory = _child("off", tmp_path)
    assert in_memory["peak"] > 1.0 * in_memory["file"], in_memory


@pytest.mark.parametrize("batch_bytes", [1, 16 << 20], ids=["frame-by-frame", "one-batch"])
@pytest.mark.parametrize("seg_type,syntax", [("BINARY", JPEG_2000), ("FRACTIONAL", JPEG_LS), ("LABELMAP", RLE),
                                             ("LABELMAP", JPEG_2000)])
def test_unsaved_streamed_seg_decodes_without_loading_the_value(monkeypatch, seg_type, syntax, batch_bytes):
    """An enhanced (multi-frame) source: get_pixels_by_source_frame, get_volume and any frame selection read the
    compressed frames; the Pixel Data element stays deferred and the saved file equals the in-memory one."""
    monkeypatch.setattr(decode, "_SUBSET_BYTES", batch_bytes)
    source = synthetic.make_enhanced_ct((5, 32, 40), seed=4)
    pixels = _pixels(seg_type, "array" if seg_type == "LABELMAP" else "stacked", (5, 32, 40), 3, seed=11)
    arguments = ([source], pixels, seg_type, 3)
    expected, old = _file(monkeypatch, 1 << 40, *arguments, transfer_syntax_uid=syntax)
    monkeypatch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", 1)
    new = build_segmentation(monai_dicomseg, *arguments, transfer_syntax_uid=syntax)
    streamed = new.buffer
    assert isinstance(streamed, StreamedEncapsulatedPixelData)
    uid = source.SOPInstanceUID
    for numbers in ([1, 2, 3, 4, 5], [4, 1, 4]):
        np.testing.assert_array_equal(new.get_pixels_by_source_frame(uid, numbers),
                                      old.get_pixels_by_source_frame(uid, numbers))
    np.testing.assert_array_equal(new.get_volume().array, old.get_volume().array)
    selection = [2, 0, 2, int(new.NumberOfFrames) - 1]
    np.testing.assert_array_equal(decode.decode_frames(new, selection), decode.decode_frames(old, selection))
    assert decode.deferred_pixel_source(new) is streamed  # nothing loaded the joined value into the data set
    assert deterministic_bytes(new, fix_uids=True) == expected


def test_subset_value_is_the_encapsulated_value_of_those_frames():
    frames = _frames(3, 6)
    source = StreamedEncapsulatedPixelData(frames, np.array([len(frame) for frame in frames]),
                                           basic_offset_table=True)
    subset = [4, 1, 4]
    assert source.number_of_frames == 6 and source.frame_length(4) == len(frames[4])
    assert source.subset_value(subset) == encapsulate_frames([frames[i] for i in subset],
                                                             use_extended_offset_table=True)[0]


def test_highdicom_reads_the_streamed_file_equal(monkeypatch, tmp_path):
    shape = (4, 32, 32)
    series = _series(shape)
    pixels = _pixels("FRACTIONAL", "stacked", shape, 2, seed=9)
    options = {"transfer_syntax_uid": JPEG_2000, "use_extended_offset_table": True}
    _, old = _file(monkeypatch, 1 << 40, series, pixels, "FRACTIONAL", 2, **options)
    monkeypatch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", 1)
    seg = build_segmentation(monai_dicomseg, series, pixels, "FRACTIONAL", 2, **options)
    assert isinstance(seg.buffer, StreamedEncapsulatedPixelData)
    path = tmp_path / "seg.dcm"
    seg.save_as(path)
    expected = monai_dicomseg.seg.segread(path).get_pixels_by_source_instance(
        [ds.SOPInstanceUID for ds in series], combine_segments=False, rescale_fractional=False)
    theirs = highdicom_pixels(path, series, rescale_fractional=False)
    np.testing.assert_array_equal(theirs, expected)
    np.testing.assert_array_equal(theirs, highdicom_pixels(old, series, rescale_fractional=False))
    assert theirs.any()
