"""Streamed writer inputs give the same files as the in-memory paths (issue 15).

A stacked ``(F, R, C, S)`` input given as an ndarray, a numpy memmap, a
minimal array-like or a :class:`StackedSegmentSource` must encode to the same
bytes; the writer's lazy source-grid provider (``to_source_grid(lazy=True)``)
must equal the materialised array it replaces.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracles import build_segmentation, deterministic_bytes

import monai_dicomseg
from monai_dicomseg import synthetic
from monai_dicomseg.errors import InputError, InputTypeError, OverlapError
from monai_dicomseg.seg.inputs import StackedSegmentSource

SHAPE = (6, 20, 24)
SEGMENTS = 3
UIDS = {"series_instance_uid": "1.2.3.4", "sop_instance_uid": "1.2.3.5"}



def file_bytes(seg) -> bytes:
    return deterministic_bytes(seg, fix_uids=False)

class SliceOnly:
    """A minimal array-like: shape, dtype and slicing only (like a zarr or dask array)."""

    def __init__(self, array: np.ndarray) -> None:
        self._array = array
        self.shape = array.shape
        self.dtype = array.dtype
        self.reads: list = []

    def __getitem__(self, key):
        self.reads.append(key)
        return np.array(self._array[key])



@pytest.fixture(scope="module")
def sources():
    return synthetic.make_ct_series(SHAPE, seed=3)


def fractions(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.random((*SHAPE, SEGMENTS)).astype(np.float32)
    values[values < 0.6] = 0.0  # some empty and quantised-empty frames
    values[1] = 0.0
    values[2, ..., 1] = 0.001  # rounds to 0 of 255: omitted
    return values


def masks(seed: int = 0, overlap: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = (rng.random((*SHAPE, SEGMENTS)) > 0.7).astype(np.uint8)
    values[3] = 0
    if not overlap:
        values[..., 1:] &= (values[..., :1] == 0)
        values[..., 2] &= (values[..., 1] == 0)
    return values


def as_memmap(array: np.ndarray, folder) -> np.memmap:
    mapped = np.memmap(folder / "pixels.dat", dtype=array.dtype, mode="w+", shape=array.shape)
    mapped[:] = array
    mapped.flush()
    return np.memmap(folder / "pixels.dat", dtype=array.dtype, mode="r", shape=array.shape)


def as_source(array: np.ndarray) -> StackedSegmentSource:
    """A provider serving one segment (all planes) per block."""
    def blocks():
        for s in range(array.shape[3]):
            yield 0, array.shape[0], s, s + 1, np.moveaxis(array[..., s:s + 1], -1, 0)
    return StackedSegmentSource(array.shape, array.dtype, blocks)


CASES = [
    ("fractional", "FRACTIONAL", {}),
    ("fractional-rle", "FRACTIONAL", {"transfer_syntax_uid": "1.2.840.10008.1.2.5"}),
    ("fractional-keep-empty", "FRACTIONAL", {"omit_empty_frames": False}),
    ("binary", "BINARY", {}),
    ("binary-keep-empty", "BINARY", {"omit_empty_frames": False}),
    ("labelmap", "LABELMAP", {}),
]


@pytest.mark.parametrize("kind", ["memmap", "array-like", "source"])
@pytest.mark.parametrize("name,segmentation_type,options", CASES, ids=[c[0] for c in CASES])
def test_streamed_inputs_encode_identically(tmp_path, sources, kind, name, segmentation_type, options):
    if segmentation_type == "FRACTIONAL":
        array = fractions()
    else:
        array = masks(overlap=segmentation_type == "BINARY")
    expected = file_bytes(build_segmentation(monai_dicomseg, sources, array, segmentation_type, SEGMENTS,
                                             **UIDS, **options))
    given = {"memmap": lambda: as_memmap(array, tmp_path), "array-like": lambda: SliceOnly(array),
             "source": lambda: as_source(array)}[kind]()
    seg = build_segmentation(monai_dicomseg, sources, given, segmentation_type, SEGMENTS, **UIDS, **options)
    assert file_bytes(seg) == expected


def test_odd_frame_size_binary_bits_identical():
    """1-bit frames that do not end on a byte boundary are placed bit-exactly."""
    odd = synthetic.make_ct_series((5, 7, 9), seed=2)
    array = (np.random.default_rng(1).random((5, 7, 9, 2)) > 0.5).astype(bool)
    expected = file_bytes(build_segmentation(monai_dicomseg, odd, array, "BINARY", 2, **UIDS))
    assert file_bytes(build_segmentation(monai_dicomseg, odd, SliceOnly(array), "BINARY", 2, **UIDS)) == expected


def test_binary_float_stacked_streamed_identically(sources):
    """0/1 floats stored as FRACTIONAL: same overlap flag and frames as in memory."""
    array = masks().astype(np.float32)
    expected = file_bytes(build_segmentation(monai_dicomseg, sources, array, "FRACTIONAL", SEGMENTS, **UIDS))
    assert file_bytes(build_segmentation(monai_dicomseg, sources, SliceOnly(array), "FRACTIONAL", SEGMENTS,
                                         **UIDS)) == expected


def test_labelmap_array_like_read_by_slabs(sources):
    labels = np.random.default_rng(0).integers(0, 4, size=SHAPE).astype(np.uint16)
    expected = file_bytes(build_segmentation(monai_dicomseg, sources, labels, "LABELMAP", 3, **UIDS))
    wrapped = SliceOnly(labels)
    assert file_bytes(build_segmentation(monai_dicomseg, sources, wrapped, "LABELMAP", 3, **UIDS)) == expected
    # validated by slabs, then read one stored frame at a time: never as a whole
    assert wrapped.reads and all(isinstance(key, (slice, int)) for key in wrapped.reads)
    assert all(key.stop - key.start < SHAPE[0] or SHAPE[0] == 1 for key in wrapped.reads
               if isinstance(key, slice)) or len(wrapped.reads) > 1


@pytest.mark.parametrize("segmentation_type,compression", [
    ("LABELMAP", None), ("LABELMAP", "1.2.840.10008.1.2.5"), ("BINARY", None), ("FRACTIONAL", None),
], ids=["labelmap", "labelmap-rle", "binary", "fractional"])
@pytest.mark.parametrize("form", ["memmap", "array-like"])
def test_label_array_likes_encode_identically(tmp_path, sources, segmentation_type, compression, form):
    labels = np.random.default_rng(5).integers(0, 4, size=SHAPE).astype(np.uint8)
    labels[2] = 0
    options = {} if compression is None else {"transfer_syntax_uid": compression}
    expected = file_bytes(build_segmentation(monai_dicomseg, sources, labels, segmentation_type, 3, **UIDS,
                                             **options))
    given = as_memmap(labels, tmp_path) if form == "memmap" else SliceOnly(labels)
    seg = build_segmentation(monai_dicomseg, sources, given, segmentation_type, 3, **UIDS, **options)
    assert file_bytes(seg) == expected


def test_label_array_like_value_checked(sources):
    labels = np.full(SHAPE, 5, dtype=np.uint8)
    with pytest.raises(InputError, match="label value 5"):
        build_segmentation(monai_dicomseg, sources, SliceOnly(labels), "LABELMAP", 3)
    with pytest.raises(InputError, match="negative"):
        build_segmentation(monai_dicomseg, sources, SliceOnly(-labels.astype(np.int8)), "LABELMAP", 3)


@pytest.mark.parametrize("bad,error,match", [
    (lambda a: np.where(a > 0.9, np.nan, a).astype(np.float32), InputError, "NaN"),
    (lambda a: a * 2, InputError, r"\[0, 1\]"),
    (lambda a: a.shape, InputTypeError, "array-like"),
], ids=["nan", "range", "not-an-array"])
def test_streamed_bad_values(sources, bad, error, match):
    with pytest.raises(error, match=match):
        given = bad(fractions())
        build_segmentation(monai_dicomseg, sources, given if isinstance(given, tuple) else SliceOnly(given),
                           "FRACTIONAL", SEGMENTS)


def test_streamed_fractions_refused_for_binary(sources):
    with pytest.raises(InputError, match="fractional values but segmentation_type is BINARY"):
        build_segmentation(monai_dicomseg, sources, SliceOnly(fractions()), "BINARY", SEGMENTS)


def test_streamed_labelmap_overlap_refused(sources):
    with pytest.raises(OverlapError, match="overlap"):
        build_segmentation(monai_dicomseg, sources, SliceOnly(masks(overlap=True)), "LABELMAP", SEGMENTS)


def test_streamed_integer_above_one_refused(sources):
    with pytest.raises(InputError, match="only 0 and 1"):
        build_segmentation(monai_dicomseg, sources, SliceOnly(masks() * 2), "BINARY", SEGMENTS)


def test_streamed_channel_count_checked(sources):
    with pytest.raises(InputError, match="3 segment channels"):
        build_segmentation(monai_dicomseg, sources, SliceOnly(fractions()), "FRACTIONAL", 2)


def test_source_bad_block_shape(sources):
    def blocks():
        yield 0, 1, 0, SEGMENTS, np.zeros((SEGMENTS, 2, *SHAPE[1:]), dtype=np.float32)
    source = StackedSegmentSource((*SHAPE, SEGMENTS), np.float32, blocks)
    with pytest.raises(InputError, match="block for planes 0:1"):
        build_segmentation(monai_dicomseg, sources, source, "FRACTIONAL", SEGMENTS)


def test_source_bad_shape():
    with pytest.raises(InputError, match=r"\(F, R, C, S\) shape"):
        StackedSegmentSource((2, 3), np.float32, lambda: iter(()))


def test_fractional_reader_has_no_full_size_temporary(monkeypatch):
    """get_pixels of a FRACTIONAL file, rescaled: the float output is the only full-size array."""
    import tracemalloc

    from monai_dicomseg.codec import assemble

    monkeypatch.setattr(assemble, "_DECODE_CHUNK_VALUES", 64 * 64 * 16)  # chunks well below the output

    shape = (24, 64, 64)
    series = synthetic.make_ct_series(shape, seed=5)
    values = np.random.default_rng(2).random((*shape, 6)).astype(np.float32)
    seg = build_segmentation(monai_dicomseg, series, values, "FRACTIONAL", 6)
    buffer = io.BytesIO()
    seg.save_as(buffer)
    read = monai_dicomseg.seg.segread(io.BytesIO(buffer.getvalue()))
    uids = [str(ds.SOPInstanceUID) for ds in series]
    read.get_pixels_by_source_instance(uids, rescale_fractional=True, dtype=np.float32)  # load, index
    tracemalloc.start()
    try:
        pixels = read.get_pixels_by_source_instance(uids, rescale_fractional=True, dtype=np.float32)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_allclose(pixels, np.rint(values * 255) / 255, atol=1e-6)
    # before: uint8 copy + float copy + quotient = 2.25x the output
    assert peak < 1.5 * pixels.nbytes, (peak, pixels.nbytes)


def test_fractional_into_equals_general_path(monkeypatch, sources):
    """Stored FRACTIONAL values scattered into a caller's array: chunked path == build-then-move path."""
    from monai_dicomseg.codec import assemble

    seg = build_segmentation(monai_dicomseg, sources, fractions(), "FRACTIONAL", SEGMENTS)
    buffer = io.BytesIO()
    seg.save_as(buffer)
    read = monai_dicomseg.seg.segread(io.BytesIO(buffer.getvalue()))
    placement, count, _, _ = read._volume_frames()
    targets = [2, 0, 1]

    def fill():
        out = np.zeros((count, *SHAPE[1:], SEGMENTS), dtype=np.uint8)
        return read.assemble_volume_into(out, placement, [1, 2, 3], combine_segments=False, targets=targets)

    chunked = fill()
    monkeypatch.setattr(assemble, "_fractional_into", lambda *args, **kwargs: None)
    np.testing.assert_array_equal(chunked, fill())
    expected = np.rint(fractions() * 255).astype(np.uint8)
    if placement.position.size and not np.array_equal(chunked[..., targets], expected):
        expected = expected[::-1]  # the volume runs along the slice normal: the source order reversed
    np.testing.assert_array_equal(chunked[..., targets], expected)


@pytest.mark.parametrize("maximum", [1, 7, 100, 255])
def test_streamed_presence_equals_quantised_presence_at_the_rounding_edge(maximum):
    """Plane maxima decide presence exactly as rounding every value does (half to even at 0.5)."""
    from monai_dicomseg.enums import SegmentationTypeValues
    from monai_dicomseg.seg.frames import fractional_presence
    from monai_dicomseg.seg.inputs import scan_stream

    edge = np.float32(0.5) / np.float32(maximum)
    steps = np.arange(-40, 41)
    values = np.array([np.float32(edge) + np.float32(k) * np.spacing(np.float32(edge)) for k in steps],
                      dtype=np.float32)
    stacked = np.zeros((values.size, 2, 2, 2), dtype=np.float32)
    stacked[:, 0, 1, 0] = values
    stacked[:, 1, 0, 1] = values[::-1]
    stacked[0, 0, 0, 0] = 0.75  # fractional, so quantised presence applies
    scan = scan_stream(StackedSegmentSource.from_array(stacked), SegmentationTypeValues.FRACTIONAL, maximum)
    np.testing.assert_array_equal(scan.presence, fractional_presence(stacked, maximum))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**16), segments=st.integers(1, 5), fill=st.floats(0.0, 0.9),
       segmentation_type=st.sampled_from(["BINARY", "FRACTIONAL", "LABELMAP"]),
       form=st.sampled_from(["bool", "uint8", "float32"]))
def test_stacked_one_hot_encodes_like_its_label_map(sources, seed, segments, fill, segmentation_type, form):
    """Two independent writer paths: the (F, R, C, S) one-hot of a label map goes through the block-by-block
    scan, the label map itself through the per-frame label path; the files must be the same bytes."""
    rng = np.random.default_rng(seed)
    labels = np.where(rng.random(SHAPE) < fill, rng.integers(1, segments + 1, SHAPE), 0).astype(np.uint8)
    one_hot = (labels[..., None] == np.arange(1, segments + 1)).astype(form)
    expected = file_bytes(build_segmentation(monai_dicomseg, sources, labels, segmentation_type, segments, **UIDS))
    assert file_bytes(build_segmentation(monai_dicomseg, sources, one_hot, segmentation_type, segments,
                                         **UIDS)) == expected


@pytest.mark.parametrize("pending_bytes", [1, 64 << 20], ids=["flush-every-block", "one-batch"])
def test_streamed_compression_is_batched_across_blocks(monkeypatch, sources, pending_bytes):
    """Frames to compress are collected across blocks (one encode_frames call, so one process pool with
    workers, not one per block); the bytes do not depend on where the batches are cut."""
    from monai_dicomseg.seg import encode as encode_module

    array = fractions()
    options = {"transfer_syntax_uid": "1.2.840.10008.1.2.5"}
    expected = file_bytes(build_segmentation(monai_dicomseg, sources, array, "FRACTIONAL", SEGMENTS, **UIDS,
                                             **options))
    calls = []
    original = encode_module.encode_frames
    monkeypatch.setattr(encode_module, "encode_frames", lambda n, *a, **k: calls.append(n) or original(n, *a, **k))
    monkeypatch.setattr(encode_module, "_PENDING_BYTES", pending_bytes)
    seg = build_segmentation(monai_dicomseg, sources, as_source(array), "FRACTIONAL", SEGMENTS, **UIDS, **options)
    assert file_bytes(seg) == expected
    blocks_with_frames = sum(1 for s in range(SEGMENTS) if np.rint(array[..., s] * 255).any())
    assert len(calls) == (blocks_with_frames if pending_bytes == 1 else 1)
