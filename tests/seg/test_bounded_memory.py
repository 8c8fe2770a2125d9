"""Bounded memory of the writer (issue 15): no full-size temporaries, memory-mapped inputs leave the
resident set once read.

* An in-memory ``(F, R, C, S)`` float input is validated and encoded block by
  block: the input is the only full-size array (tracemalloc).
* :func:`~monai_dicomseg.seg.mapped.release_leading_range` drops the pages of a
  shared memmap that were read, never its data; private (``mode="c"``) maps
  are left alone.
* A tiled LABELMAP written from a memory-mapped total pixel matrix keeps the
  child's resident set far below the matrix size (RSS in a subprocess).
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from oracles import build_segmentation

import monai_dicomseg
from monai_dicomseg import synthetic
from monai_dicomseg.seg.mapped import release_leading_range

REPO = Path(__file__).resolve().parents[2]
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmRSS/madvise are Linux facts")


def test_in_memory_stacked_input_has_no_full_size_temporary():
    """FRACTIONAL from a sparse (F, R, C, S) float32 ndarray: peak allocations far below the input size.

    The earlier in-memory path built NaN / 0-or-1 / != 0 boolean arrays of the
    whole input (>= 0.75 x its size for float32)."""
    shape = (24, 128, 128)
    segments = 16
    series = synthetic.make_ct_series(shape, seed=1)
    values = np.zeros((*shape, segments), dtype=np.float32)
    for segment in range(segments):  # each segment lives in one plane: a small output
        values[segment % shape[0], 10:40, 10:40, segment] = 0.25 + segment / 32
    tracemalloc.start()
    try:
        seg = build_segmentation(monai_dicomseg, series, values, "FRACTIONAL", segments)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert int(seg.NumberOfFrames) == segments
    assert peak < 0.4 * values.nbytes, (peak, values.nbytes)


@linux_only
@pytest.mark.parametrize("mode", ["r", "r+"])
def test_release_keeps_the_data_of_shared_maps(tmp_path, mode):
    path = tmp_path / "matrix.u8"
    data = np.arange(64 * 8192, dtype=np.uint32).astype(np.uint8).reshape(64, 8192)
    data.tofile(path)
    matrix = np.memmap(path, dtype=np.uint8, mode=mode, shape=data.shape)
    if mode == "r+":
        matrix[3] = 7  # a dirty page of a shared map is written back, not dropped
    assert release_leading_range(matrix, 0, 64)
    expected = data.copy()
    if mode == "r+":
        expected[3] = 7
    np.testing.assert_array_equal(np.asarray(matrix), expected)


def test_release_leaves_private_maps_and_other_arrays_alone(tmp_path):
    path = tmp_path / "matrix.u8"
    np.zeros((64, 8192), dtype=np.uint8).tofile(path)
    private = np.memmap(path, dtype=np.uint8, mode="c", shape=(64, 8192))
    private[5] = 9  # a copy-on-write change that MADV_DONTNEED would discard
    assert not release_leading_range(private, 0, 64)
    assert (private[5] == 9).all()
    assert not release_leading_range(np.zeros((64, 8192), dtype=np.uint8), 0, 64)
    assert not release_leading_range(np.memmap(path, dtype=np.uint8, mode="r", shape=(64, 8192)), 10, 10)


CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import monai_dicomseg
    from monai_dicomseg import synthetic
    from oracles import build_segmentation

    def rss_mb(key):
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(key):
                    return int(line.split()[1]) / 1024

    path, rows, columns, tile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    matrix = np.memmap(path, dtype=np.uint8, mode="r", shape=(rows, columns))
    source = synthetic.make_slide_image((tile, tile), (tile, tile), photometric="MONOCHROME2")
    source.TotalPixelMatrixRows, source.TotalPixelMatrixColumns = rows, columns
    source.NumberOfFrames = -(-rows // tile) * -(-columns // tile)
    before = rss_mb("VmRSS:")
    seg = build_segmentation(monai_dicomseg, [source], matrix[None], "LABELMAP", 2, tile_pixel_array=True,
                             omit_empty_frames=True)
    print(json.dumps({"before": before, "after": rss_mb("VmRSS:"), "frames": int(seg.NumberOfFrames)}))
""")


@linux_only
def test_tiled_write_from_a_memmap_does_not_keep_the_matrix_resident(tmp_path):
    """Every tile is read (twice: validation, encoding) but the 192 MB matrix never stays mapped in RSS."""
    rows, columns, tile = 8192, 24576, 512
    path = tmp_path / "matrix.u8"
    matrix = np.memmap(path, dtype=np.uint8, mode="w+", shape=(rows, columns))
    matrix[:] = 0
    matrix[100:300, 200:900] = 1  # two non-empty tiles: a small output
    matrix[5000:5010, 20000:20050] = 2
    matrix.flush()
    del matrix
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), str(rows), str(columns), str(tile)],
                          capture_output=True, text=True, cwd=REPO,
                          env={**__import__("os").environ, "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"})
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["frames"] == 3
    grown = result["after"] - result["before"]
    assert grown < 0.25 * rows * columns / 2**20, result  # without the release: + the whole 192 MB matrix


@pytest.mark.parametrize("segmentation_type", ["BINARY", "LABELMAP"])
@pytest.mark.parametrize("combine", [False, True])
def test_volume_reads_have_no_full_size_temporaries(monkeypatch, segmentation_type, combine):
    """get_volume of dense BINARY / LABELMAP frames: the output is the only volume-sized array.

    Before, the stacked read built index arrays of every foreground pixel (8x
    the output) and the combined BINARY read unpacked every partial byte of
    every frame at once (40x)."""
    import io

    from monai_dicomseg.codec import assemble

    shape = (24, 128, 128)
    series = synthetic.make_ct_series(shape, seed=5)
    labels = np.random.default_rng(0).integers(0, 7, shape).astype(np.uint8)  # dense, worst case
    buffer = io.BytesIO()
    build_segmentation(monai_dicomseg, series, labels, segmentation_type, 6).save_as(buffer)
    seg = monai_dicomseg.seg.segread(io.BytesIO(buffer.getvalue()))
    expected = seg.get_volume(combine_segments=combine).array  # default chunks; parse and index outside
    combined = expected if combine else seg.get_volume(combine_segments=True).array
    assert sorted(np.unique(combined).tolist()) == list(range(7))
    if not combine:  # stacked = one-hot of the combined read
        np.testing.assert_array_equal(expected, (combined[..., None] == np.arange(1, 7)).astype(np.uint8))
    monkeypatch.setattr(assemble, "_CHUNK_PIXELS", 64 * 64 * 4)  # chunks well below the volume
    tracemalloc.start()
    try:
        volume = seg.get_volume(combine_segments=combine)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(volume.array, expected)
    assert peak < 1.6 * volume.array.nbytes, (peak, volume.array.nbytes)


def test_fractional_stacked_load_writes_straight_into_the_monai_array(monkeypatch, tmp_path):
    """load_seg_array(mode="stacked") of a FRACTIONAL SEG: fractions go chunk by chunk into the final
    channel-first array (before: a (F, R, C, S) volume, then its transposed copy: 2.25x the output)."""
    from monai_dicomseg.codec import assemble
    from monai_dicomseg.io.segload import load_seg_array

    shape = (24, 96, 80)
    series = synthetic.make_ct_series(shape, seed=4)
    values = np.random.default_rng(3).random((*shape, 5)).astype(np.float32)
    path = tmp_path / "fractional.dcm"
    build_segmentation(monai_dicomseg, series, values, "FRACTIONAL", 5).save_as(path)
    seg = monai_dicomseg.seg.segread(path)  # the stored frames are the input, not a temporary
    expected = load_seg_array(seg, mode="stacked").array  # default chunks; frame index built once
    np.testing.assert_allclose(np.sort(expected.reshape(-1)), np.sort(np.rint(values * 255).reshape(-1) / 255),
                               atol=1e-6)
    monkeypatch.setattr(assemble, "_DECODE_CHUNK_VALUES", 96 * 80 * 4)
    tracemalloc.start()
    try:
        loaded = load_seg_array(seg, mode="stacked")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(loaded.array, expected)
    assert loaded.array.dtype == np.float32
    assert peak < 1.3 * loaded.array.nbytes, (peak, loaded.array.nbytes)


@pytest.mark.parametrize("segmentation_type", ["BINARY", "LABELMAP", "FRACTIONAL"])
def test_native_pixel_data_is_built_once(tmp_path, segmentation_type):
    """Native Pixel Data grows in one buffer that becomes the element's bytes (no ndarray + tobytes copy, no
    frames + join copy): writing allocates little beyond the Pixel Data itself (before: 2x)."""
    shape = (48, 192, 192)
    series = synthetic.make_ct_series(shape, seed=6)
    labels = np.random.default_rng(1).integers(0, 9, shape).astype(np.uint8)  # dense: every frame stored
    pixels = labels if segmentation_type != "FRACTIONAL" else \
        (labels[..., None] == np.arange(1, 9)).astype(np.float32) * np.float32(0.5)
    build_segmentation(monai_dicomseg, series[:2], pixels[:2], segmentation_type, 8)  # first-use work
    tracemalloc.start()
    try:
        seg = build_segmentation(monai_dicomseg, series, pixels, segmentation_type, 8)
        seg.save_as(tmp_path / "seg.dcm")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * len(seg.PixelData), (peak, len(seg.PixelData))
