"""Native Pixel Data streamed to the file (issue 25): ``StreamedPixelData`` past ``STREAM_PIXEL_DATA_BYTES``.

* Byte-identical files whichever path built them (property test over types,
  sizes on both sides of the threshold, native / RLE / deflate, volume and tiled).
* ``PixelData`` / ``pixel_array`` / ``get_volume`` / ``deepcopy`` / ``pickle``
  of a streamed SEG give the bytes of the in-memory path.
* The CRC guard: an input changed between construction and ``save_as`` is
  refused (:class:`EncodeError`) and no file is left.
* Memory: writing a ~200 MB native LABELMAP grows the peak RSS of a
  subprocess by far less than the file (and by the whole file with streaming
  off, so the test fails if a whole Pixel Data buffer comes back).
"""
from __future__ import annotations

import copy
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from oracles import build_segmentation, deterministic_bytes

import monai_dicomseg
from monai_dicomseg import synthetic
from monai_dicomseg.codec import pixel_data
from monai_dicomseg.codec.pixel_data import StreamedPixelData, native_pixel_data_length
from monai_dicomseg.errors import EncodeError

REPO = Path(__file__).resolve().parents[2]
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is a Linux fact")

SYNTAXES = {"native": None, "rle": "1.2.840.10008.1.2.5", "deflate": "1.2.840.10008.1.2.1.99"}
BITS = {"BINARY": 1, "FRACTIONAL": 8, "LABELMAP": 8}


def _sources(layout: str, shape: tuple[int, ...]) -> list:
    """Source images for ``(F, R, C)`` labels (built once per case: their UIDs are random)."""
    if layout == "volume":
        return synthetic.make_ct_series(shape, seed=1)
    return [synthetic.make_slide_image(shape[1:], (8, 8), photometric="MONOCHROME2")]


def _build(sources: list, labels: np.ndarray, seg_type: str, segments: int, syntax: str | None) -> object:
    extra = {} if syntax is None else {"transfer_syntax_uid": syntax}
    if "TotalPixelMatrixRows" in sources[0]:
        extra["tile_pixel_array"] = True
    return build_segmentation(monai_dicomseg, sources, labels, seg_type, segments, **extra)


def _streamed(seg: object) -> bool:
    return isinstance(getattr(seg, "buffer", None), StreamedPixelData)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seg_type=st.sampled_from(sorted(BITS)),
    syntax=st.sampled_from(sorted(SYNTAXES)),
    layout=st.sampled_from(["volume", "tiled"]),
    frames=st.integers(1, 5),
    rows=st.integers(3, 19),
    columns=st.integers(3, 19),
    segments=st.integers(1, 3),
    delta=st.sampled_from([-1, 0, 1, None]),
    seed=st.integers(0, 2**16),
)
def test_streamed_and_in_memory_files_are_byte_identical(monkeypatch, seg_type, syntax, layout, frames, rows,
                                                         columns, segments, delta, seed):
    """Threshold at the native length + delta: streamed when delta <= 0 (None: threshold 1), same file bytes."""
    assume(not (seg_type == "BINARY" and syntax == "rle"))  # RLE is not written for 1-bit (PS3.3 C.8.20.2)
    if layout == "tiled":
        frames = 1
    labels = np.random.default_rng(seed).integers(0, segments + 1, (frames, rows, columns)).astype(np.uint8)
    sources = _sources(layout, labels.shape)
    monkeypatch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", 1 << 40)
    old = _build(sources, labels, seg_type, segments, SYNTAXES[syntax])
    length = native_pixel_data_length(int(old.NumberOfFrames), int(old.Rows), int(old.Columns), BITS[seg_type])
    threshold = 1 if delta is None else max(1, length + delta)
    monkeypatch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", threshold)
    new = _build(sources, labels, seg_type, segments, SYNTAXES[syntax])
    assert not _streamed(old)
    # encapsulated (RLE) Pixel Data stays in memory: compressed frames must precede the offset table
    assert _streamed(new) == (syntax != "rle" and length >= threshold)
    assert deterministic_bytes(new, fix_uids=True) == deterministic_bytes(old, fix_uids=True)
    assert _streamed(new) == (syntax != "rle" and length >= threshold)  # writing did not load the value


@pytest.mark.parametrize("seg_type", sorted(BITS))
def test_streamed_seg_reads_like_the_in_memory_one(monkeypatch, seg_type):
    """get_volume (range reads), then PixelData / pixel_array / deepcopy / pickle: the in-memory bytes."""
    labels = np.random.default_rng(2).integers(0, 4, (7, 21, 13)).astype(np.uint8)  # 1-bit frames straddle bytes
    sources = _sources("volume", labels.shape)
    old = _build(sources, labels, seg_type, 3, None)
    monkeypatch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", 1)
    new = _build(sources, labels, seg_type, 3, None)
    assert _streamed(new)
    np.testing.assert_array_equal(new.get_volume().array, old.get_volume().array)
    copied, unpickled = copy.deepcopy(new), pickle.loads(pickle.dumps(new))
    assert _streamed(new) and _streamed(copied)  # neither range reads nor copying loaded the value
    assert copied.PixelData == old.PixelData
    assert unpickled.PixelData == old.PixelData
    np.testing.assert_array_equal(new.pixel_array, old.pixel_array)
    assert new.PixelData == old.PixelData
    assert deterministic_bytes(new, fix_uids=True) == deterministic_bytes(old, fix_uids=True)


def test_sixteen_bit_labelmap_streams_the_same_bytes(monkeypatch):
    """LABELMAP with more than 255 segments: 16-bit little-endian frames (OW), streamed identically."""
    labels = (np.arange(2 * 9 * 11).reshape(2, 9, 11) % 301).astype(np.uint16)
    sources = _sources("volume", labels.shape)
    old = _build(sources, labels, "LABELMAP", 300, None)
    monkeypatch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", 1)
    new = _build(sources, labels, "LABELMAP", 300, None)
    assert _streamed(new) and int(new.BitsAllocated) == 16
    assert deterministic_bytes(new, fix_uids=True) == deterministic_bytes(old, fix_uids=True)


@pytest.mark.parametrize("seg_type", sorted(BITS))
@pytest.mark.parametrize("syntax", ["native", "deflate"])
def test_input_changed_before_save_as_is_refused_and_leaves_no_file(monkeypatch, tmp_path, seg_type, syntax):
    labels = np.random.default_rng(3).integers(0, 4, (6, 16, 16)).astype(np.uint8)
    monkeypatch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", 1)
    seg = _build(_sources("volume", labels.shape), labels, seg_type, 3, SYNTAXES[syntax])
    original = labels[4, 3, 3]
    labels[4, 3, 3] = (original + 1) % 4
    target = tmp_path / "seg.dcm"
    with pytest.raises(EncodeError, match=r"pixel_array changed after the Segmentation was constructed: frames? "):
        seg.save_as(target)
    assert list(tmp_path.iterdir()) == []  # atomic write: neither the file nor its temporary
    with pytest.raises(EncodeError, match="do not modify the array before that, or pass a copy"):
        seg.PixelData  # noqa: B018 - the whole-value load is checked too
    labels[4, 3, 3] = original  # back as it was: written again
    seg.save_as(target)
    assert target.exists()


def test_below_the_threshold_the_input_is_not_kept(monkeypatch):
    """One byte short of the threshold: today's in-memory value (the input may change afterwards)."""
    labels = np.random.default_rng(4).integers(0, 3, (3, 10, 10)).astype(np.uint8)
    length = native_pixel_data_length(3, 10, 10, 8)
    monkeypatch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", length + 1)
    seg = _build(_sources("volume", labels.shape), labels, "LABELMAP", 2, None)
    assert not _streamed(seg)
    before = bytes(seg.PixelData)
    labels[:] = 0
    assert seg.PixelData == before


CHILD = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import monai_dicomseg
    from monai_dicomseg import synthetic
    from monai_dicomseg.codec import pixel_data
    from oracles import build_segmentation

    def kib(key):
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(key):
                    return int(line.split()[1])

    matrix_path, out, rows, columns, tile, stream = sys.argv[1:7]
    rows, columns, tile = int(rows), int(columns), int(tile)
    if stream == "off":
        pixel_data.STREAM_PIXEL_DATA_BYTES = 1 << 50
    matrix = np.memmap(matrix_path, dtype=np.uint8, mode="r", shape=(rows, columns))
    source = synthetic.make_slide_image((tile, tile), (tile, tile), photometric="MONOCHROME2")
    source.TotalPixelMatrixRows, source.TotalPixelMatrixColumns = rows, columns
    source.NumberOfFrames = -(-rows // tile) * -(-columns // tile)
    small = build_segmentation(monai_dicomseg, [source], np.ones((1, tile, tile), np.uint8), "LABELMAP", 2,
                               tile_pixel_array=True)
    small.save_as(out)  # first-use work (imports, caches) before the baseline
    before = kib("VmHWM:")
    seg = build_segmentation(monai_dicomseg, [source], matrix[None], "LABELMAP", 2, tile_pixel_array=True)
    seg.save_as(out)
    print(json.dumps({"before": before, "after": kib("VmHWM:"), "size": os.path.getsize(out),
                      "frames": int(seg.NumberOfFrames)}))
""")


def _peak_growth(tmp_path: Path, stream: str) -> dict:
    rows, columns, tile = 8192, 24576, 512
    path = tmp_path / "matrix.u8"
    if not path.exists():
        matrix = np.memmap(path, dtype=np.uint8, mode="w+", shape=(rows, columns))
        for start in range(0, rows, 512):  # dense: every tile stored
            matrix[start:start + 512] = (np.arange(columns, dtype=np.uint32) // 7 % 3).astype(np.uint8)
        matrix.flush()
        del matrix
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(tmp_path / f"seg-{stream}.dcm"), str(rows), str(columns),
         str(tile), stream],
        capture_output=True, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"})
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["frames"] == (rows // tile) * (columns // tile)
    assert result["size"] > rows * columns
    return result


@linux_only
def test_native_write_peak_does_not_grow_with_the_file(tmp_path):
    """192 MB native LABELMAP from a memory-mapped matrix: peak RSS + far less than the file when streamed;
    + at least the file with streaming off (the check this test makes would catch a whole buffer)."""
    streamed = _peak_growth(tmp_path, "on")
    grown = (streamed["after"] - streamed["before"]) * 1024
    assert grown < 0.25 * streamed["size"], streamed
    in_memory = _peak_growth(tmp_path, "off")
    assert (in_memory["after"] - in_memory["before"]) * 1024 > 0.9 * in_memory["size"], in_memory
