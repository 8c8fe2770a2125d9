"""Compressed SEG writing and reading (issue 7; guide: "Compression", "Multiprocessing").

The matrix {LABELMAP, FRACTIONAL} x {RLE, JPEG 2000, JPEG-LS} plus BINARY x
JPEG 2000, over {single-frame series, multi-frame Enhanced CT} x {1, 12
segments}, is written with ``transfer_syntax_uid`` and then

* validated by ``dciodvfy -allpffgitems`` (no ``Error - `` line),
* read back exactly by highdicom and by our reader (FRACTIONAL: the quantised
  stored values, ``rescale_fractional=False``),
* decoded by pydicom (``Dataset.pixel_array``) to the same stored values as the
  uncompressed file,
* checked for one fragment per frame behind a Basic Offset Table that points at
  each frame's item (:mod:`pydicom.encaps` parsers).

Then: ``workers=2`` vs ``workers=0`` give identical Pixel Data; the Extended
Offset Table is valid and usable; reading one segment decodes only its frames;
missing codec packages, disallowed syntaxes, small JPEG 2000 frames and bad
``workers`` values raise our errors.
"""
from __future__ import annotations

import importlib.util
import io
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.encaps import generate_fragmented_frames, get_frame, parse_basic_offsets
from pydicom.pixels.decoders.base import DecodeRunner
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from monai_dicomseg import synthetic
from oracles import (
    BACKEND_NAME,
    backend_errors,
    build_segmentation,
    dciodvfy_errors,
    highdicom_pixels,
    match_message,
    one_hot,
)

#: Tests of behaviour specific to monai_dicomseg (our errors, our reader's decoding);
#: the rest also pass with ``MDS_TEST_BACKEND=highdicom``.
ours_only = pytest.mark.skipif(BACKEND_NAME != "monai_dicomseg",
                               reason="checks monai_dicomseg-specific behaviour")

SYNTAXES = {"rle": RLELossless, "jpeg2000": JPEG2000Lossless, "jpegls": JPEGLSLossless}
COMBINATIONS = [
    pytest.param(seg_type, codec, id=f"{seg_type.lower()}-{codec}")
    for seg_type in ("LABELMAP", "FRACTIONAL") for codec in SYNTAXES
] + [pytest.param("BINARY", "jpeg2000", id="binary-jpeg2000")]
SEGMENT_COUNTS = [1, 12]
MAX_FRACTIONAL_VALUE = 255
SHAPE = (5, 32, 40)  # JPEG 2000 needs at least 32 x 32


# --------------------------------------------------------------------------- inputs


def make_labels(shape: tuple[int, int, int], n_segments: int, seed: int) -> np.ndarray:
    """``(F, R, C) uint8`` labels ``0..S`` with every segment on most frames and one empty frame."""
    frames, rows, columns = shape
    rng = np.random.default_rng(seed)
    band = (np.arange(columns) * n_segments // columns + 1).astype(np.uint8)
    labels = np.empty(shape, dtype=np.uint8)
    for frame in range(frames):
        labels[frame] = np.roll(band, 3 * frame)[None, :]
    labels[rng.random(shape) < 0.3] = 0
    labels[1] = 0  # an empty plane: omitted (LABELMAP) / omitted per segment
    return labels


def quantised_fractional(labels: np.ndarray, n_segments: int, seed: int) -> np.ndarray:
    """``(F, R, C, S) uint8`` stored FRACTIONAL values (0..255) on the labelled pixels."""
    rng = np.random.default_rng(seed)
    levels = rng.integers(1, MAX_FRACTIONAL_VALUE + 1, size=(*labels.shape, n_segments))
    return np.where(one_hot(labels, n_segments), levels, 0).astype(np.uint8)


def case_arrays(segmentation_type: str, labels: np.ndarray, n_segments: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(pixel_array input, expected stacked (F, R, C, S) stored values)``."""
    if segmentation_type == "FRACTIONAL":
        stored = quantised_fractional(labels, n_segments, seed=n_segments)
        return (stored / np.float32(MAX_FRACTIONAL_VALUE)).astype(np.float32), stored
    stacked = one_hot(labels, n_segments).astype(np.uint8)
    if segmentation_type == "BINARY":
        return stacked.astype(bool), stacked
    return labels, stacked


@pytest.fixture(scope="module")
def series_source() -> list[pydicom.Dataset]:
    return synthetic.make_ct_series(SHAPE, labels=np.zeros(SHAPE, np.uint8), seed=1)


@pytest.fixture(scope="module")
def multiframe_source() -> list[pydicom.Dataset]:
    return [synthetic.make_enhanced_ct(SHAPE, labels=np.zeros(SHAPE, np.uint8), seed=2)]


@pytest.fixture(scope="module", params=["series", "multiframe"])
def sources(request: pytest.FixtureRequest, series_source, multiframe_source) -> list[pydicom.Dataset]:
    return series_source if request.param == "series" else multiframe_source


def our_pixels(hd: Any, seg_source: Any, sources: list[pydicom.Dataset],
               segment_numbers: list[int] | None = None) -> np.ndarray:
    """Our reader's stacked stored values, frames in source order."""
    if hasattr(seg_source, "seek"):
        seg_source.seek(0)
    seg = hd.seg.segread(seg_source)
    options = {"segment_numbers": segment_numbers, "combine_segments": False,
               "rescale_fractional": False, "assert_missing_frames_are_empty": True}
    first = sources[0]
    if len(sources) == 1 and int(getattr(first, "NumberOfFrames", 1)) > 1:
        return seg.get_pixels_by_source_frame(
            source_sop_instance_uid=first.SOPInstanceUID,
            source_frame_numbers=list(range(1, int(first.NumberOfFrames) + 1)), **options)
    return seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[ds.SOPInstanceUID for ds in sources], **options)


def check_encapsulation(seg: pydicom.Dataset) -> None:
    """One fragment per frame; the Basic Offset Table points at each frame's item."""
    pixel_data = seg.PixelData
    n_frames = int(seg.NumberOfFrames)
    offsets = parse_basic_offsets(pixel_data)
    assert len(offsets) == n_frames
    first_item = 8 + 4 * n_frames
    for index, offset in enumerate(offsets):
        group, element, length = struct.unpack_from("<HHL", pixel_data, first_item + offset)
        assert (group, element) == (0xFFFE, 0xE000), f"frame {index}: no item at its offset"
        next_offset = offsets[index + 1] if index + 1 < n_frames else None
        if next_offset is not None:
            assert next_offset == offset + 8 + length  # exactly one fragment per frame
    fragmented = list(generate_fragmented_frames(pixel_data, number_of_frames=n_frames))
    assert len(fragmented) == n_frames
    assert all(len(fragments) == 1 for fragments in fragmented)
    assert "ExtendedOffsetTable" not in seg


# --------------------------------------------------------------------------- matrix


@pytest.mark.dciodvfy
@pytest.mark.highdicom
@pytest.mark.parametrize("n_segments", SEGMENT_COUNTS, ids=lambda n: f"{n}seg")
@pytest.mark.parametrize("segmentation_type, codec", COMBINATIONS)
def test_compressed_matrix(hd: Any, sources: list[pydicom.Dataset], segmentation_type: str,
                           codec: str, n_segments: int, tmp_path: Path) -> None:
    syntax = SYNTAXES[codec]
    labels = make_labels(SHAPE, n_segments, seed=n_segments)
    pixel_array, expected = case_arrays(segmentation_type, labels, n_segments)
    seg = build_segmentation(hd, sources, pixel_array, segmentation_type, n_segments,
                             max_fractional_value=MAX_FRACTIONAL_VALUE,
                             transfer_syntax_uid=syntax)
    assert seg.file_meta.TransferSyntaxUID == syntax
    path = tmp_path / "seg.dcm"
    seg.save_as(path)

    assert dciodvfy_errors(path) == []

    reread = pydicom.dcmread(path)
    assert reread.file_meta.TransferSyntaxUID == syntax
    check_encapsulation(reread)

    theirs = highdicom_pixels(path, sources, rescale_fractional=False)
    np.testing.assert_array_equal(theirs, expected)
    ours = our_pixels(hd, str(path), sources)
    np.testing.assert_array_equal(ours, expected)

    # pydicom decodes the same stored values as from the uncompressed file.
    native = build_segmentation(hd, sources, pixel_array, segmentation_type, n_segments,
                                max_fractional_value=MAX_FRACTIONAL_VALUE)
    assert int(native.NumberOfFrames) == int(reread.NumberOfFrames)
    np.testing.assert_array_equal(reread.pixel_array, native.pixel_array)


@pytest.mark.highdicom
@pytest.mark.parametrize("segmentation_type, codec", COMBINATIONS)
def test_compressed_round_trip_through_bytes(hd: Any, series_source: list[pydicom.Dataset],
                                            segmentation_type: str, codec: str) -> None:
    labels = make_labels(SHAPE, 3, seed=5)
    pixel_array, expected = case_arrays(segmentation_type, labels, 3)
    seg = build_segmentation(hd, series_source, pixel_array, segmentation_type, 3,
                             transfer_syntax_uid=SYNTAXES[codec])
    buffer = io.BytesIO()
    seg.save_as(buffer)
    np.testing.assert_array_equal(our_pixels(hd, buffer, series_source), expected)
    buffer.seek(0)
    np.testing.assert_array_equal(
        highdicom_pixels(buffer, series_source, rescale_fractional=False), expected)


@pytest.mark.highdicom
@pytest.mark.parametrize("segmentation_type", ["LABELMAP", "BINARY"], ids=str.lower)
def test_jpeg2000_odd_frame_size(hd: Any, segmentation_type: str) -> None:
    """Rows x Columns not a multiple of 8 (BINARY frames would straddle bytes natively)."""
    shape = (3, 33, 35)
    labels = make_labels(shape, 2, seed=9)
    sources = synthetic.make_ct_series(shape, labels=np.zeros(shape, np.uint8))
    pixel_array, expected = case_arrays(segmentation_type, labels, 2)
    seg = build_segmentation(hd, sources, pixel_array, segmentation_type, 2,
                             transfer_syntax_uid=JPEG2000Lossless)
    np.testing.assert_array_equal(our_pixels(hd, _to_bytes(seg), sources), expected)
    np.testing.assert_array_equal(highdicom_pixels(_to_bytes(seg), sources), expected)


def _to_bytes(seg: pydicom.Dataset) -> io.BytesIO:
    buffer = io.BytesIO()
    seg.save_as(buffer)
    buffer.seek(0)
    return buffer


# --------------------------------------------------------------------------- workers


WORKER_CASES = [
    pytest.param("LABELMAP", "jpeg2000", id="labelmap-jpeg2000"),
    pytest.param("FRACTIONAL", "rle", id="fractional-rle"),
    pytest.param("LABELMAP", "jpegls", id="labelmap-jpegls"),
    pytest.param("BINARY", "jpeg2000", id="binary-jpeg2000"),
]


@pytest.mark.parametrize("segmentation_type, codec", WORKER_CASES)
def test_workers_give_identical_pixel_data(hd: Any, series_source: list[pydicom.Dataset],
                                           segmentation_type: str, codec: str) -> None:
    labels = make_labels(SHAPE, 4, seed=4)
    pixel_array, expected = case_arrays(segmentation_type, labels, 4)
    common = {"transfer_syntax_uid": SYNTAXES[codec], "series_instance_uid": "1.2.3",
              "sop_instance_uid": "1.2.3.4"}
    serial = build_segmentation(hd, series_source, pixel_array, segmentation_type, 4,
                                workers=0, **common)
    parallel = build_segmentation(hd, series_source, pixel_array, segmentation_type, 4,
                                  workers=2, **common)
    assert int(serial.NumberOfFrames) >= 4
    assert parallel.PixelData == serial.PixelData
    assert parallel.file_meta.TransferSyntaxUID == serial.file_meta.TransferSyntaxUID
    np.testing.assert_array_equal(our_pixels(hd, _to_bytes(parallel), series_source), expected)


def test_all_cores_workers(hd: Any, series_source: list[pydicom.Dataset]) -> None:
    labels = make_labels(SHAPE, 2, seed=6)
    serial = build_segmentation(hd, series_source, labels, "LABELMAP", 2,
                                transfer_syntax_uid=JPEGLSLossless, workers=0)
    every_core = build_segmentation(hd, series_source, labels, "LABELMAP", 2,
                                    transfer_syntax_uid=JPEGLSLossless, workers=-1)
    assert every_core.PixelData == serial.PixelData


@ours_only
@pytest.mark.parametrize("workers", ["2", 1.5, None, True], ids=["str", "float", "none", "bool"])
def test_workers_must_be_an_int(hd: Any, series_source: list[pydicom.Dataset], workers: Any) -> None:
    labels = make_labels(SHAPE, 2, seed=6)
    with pytest.raises((TypeError, ValueError), match=match_message("workers must be an int")):
        build_segmentation(hd, series_source, labels, "LABELMAP", 2,
                           transfer_syntax_uid=JPEGLSLossless, workers=workers)


# --------------------------------------------------------------------------- offset tables


@pytest.mark.dciodvfy
@pytest.mark.highdicom
@pytest.mark.parametrize("segmentation_type, codec", [
    pytest.param("LABELMAP", "jpegls", id="labelmap-jpegls"),
    pytest.param("FRACTIONAL", "rle", id="fractional-rle"),
    pytest.param("BINARY", "jpeg2000", id="binary-jpeg2000"),
])
def test_extended_offset_table(hd: Any, sources: list[pydicom.Dataset], segmentation_type: str,
                               codec: str, tmp_path: Path) -> None:
    labels = make_labels(SHAPE, 3, seed=3)
    pixel_array, expected = case_arrays(segmentation_type, labels, 3)
    seg = build_segmentation(hd, sources, pixel_array, segmentation_type, 3,
                             transfer_syntax_uid=SYNTAXES[codec], use_extended_offset_table=True)
    path = tmp_path / "seg.dcm"
    seg.save_as(path)
    assert dciodvfy_errors(path) == []
    reread = pydicom.dcmread(path)
    n_frames = int(reread.NumberOfFrames)
    offsets = np.frombuffer(reread.ExtendedOffsetTable, dtype="<u8")
    lengths = np.frombuffer(reread.ExtendedOffsetTableLengths, dtype="<u8")
    assert len(offsets) == len(lengths) == n_frames
    assert parse_basic_offsets(reread.PixelData) == []  # PS3.5 A.4: empty BOT with an EOT
    first_item = 8
    for index in range(n_frames):
        group, element, length = struct.unpack_from("<HHL", reread.PixelData,
                                                    first_item + int(offsets[index]))
        assert (group, element) == (0xFFFE, 0xE000)
        assert length == int(lengths[index])
        frame = get_frame(reread.PixelData, index, number_of_frames=n_frames,
                          extended_offsets=(reread.ExtendedOffsetTable,
                                            reread.ExtendedOffsetTableLengths))
        assert len(frame) == length
    # pydicom, highdicom and our reader all decode it.
    native = build_segmentation(hd, sources, pixel_array, segmentation_type, 3)
    np.testing.assert_array_equal(reread.pixel_array, native.pixel_array)
    np.testing.assert_array_equal(highdicom_pixels(path, sources, rescale_fractional=False),
                                  expected)
    np.testing.assert_array_equal(our_pixels(hd, str(path), sources), expected)


def test_extended_offset_table_is_off_by_default(hd: Any, series_source: list[pydicom.Dataset]) -> None:
    labels = make_labels(SHAPE, 2, seed=2)
    seg = build_segmentation(hd, series_source, labels, "LABELMAP", 2,
                             transfer_syntax_uid=RLELossless)
    assert "ExtendedOffsetTable" not in seg
    assert "ExtendedOffsetTableLengths" not in seg
    assert len(parse_basic_offsets(seg.PixelData)) == int(seg.NumberOfFrames)


# --------------------------------------------------------------------------- frame-wise decoding


@pytest.fixture
def decoded_frames(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """0-based indices of every encapsulated frame pydicom's decoders decode."""
    calls: list[int] = []
    real_decode = DecodeRunner.decode

    def spy(self: DecodeRunner, index: int) -> Any:
        calls.append(index)
        return real_decode(self, index)

    monkeypatch.setattr(DecodeRunner, "decode", spy)
    return calls


@ours_only
def test_one_binary_segment_decodes_only_its_frames(
        hd: Any, series_source: list[pydicom.Dataset], decoded_frames: list[int]) -> None:
    n_segments = 12
    labels = make_labels(SHAPE, n_segments, seed=12)
    seg = build_segmentation(hd, series_source, one_hot(labels, n_segments), "BINARY", n_segments,
                             transfer_syntax_uid=JPEG2000Lossless)
    wanted = 7
    frames_of_segment = [
        index for index, item in enumerate(seg.PerFrameFunctionalGroupsSequence)
        if int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber) == wanted
    ]
    assert 0 < len(frames_of_segment) < int(seg.NumberOfFrames) // 4
    reader = hd.seg.segread(_to_bytes(seg))
    assert decoded_frames == []  # reading the header decodes nothing
    pixels = reader.get_pixels_by_source_instance(
        [ds.SOPInstanceUID for ds in series_source], segment_numbers=[wanted])
    np.testing.assert_array_equal(pixels[..., 0], labels == wanted)
    assert sorted(decoded_frames) == frames_of_segment


@ours_only
def test_labelmap_subset_of_planes_decodes_only_those_frames(
        hd: Any, series_source: list[pydicom.Dataset], decoded_frames: list[int]) -> None:
    n_segments = 12
    labels = make_labels(SHAPE, n_segments, seed=12)
    seg = build_segmentation(hd, series_source, labels, "LABELMAP", n_segments,
                             transfer_syntax_uid=JPEGLSLossless, omit_empty_frames=False)
    assert int(seg.NumberOfFrames) == SHAPE[0]
    target = series_source[3].SOPInstanceUID
    frame_of_source = [
        index for index, item in enumerate(seg.PerFrameFunctionalGroupsSequence)
        if item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID == target
    ]
    assert len(frame_of_source) == 1
    reader = hd.seg.segread(_to_bytes(seg))
    wanted = [target]
    pixels = reader.get_pixels_by_source_instance(wanted, segment_numbers=[5],
                                                  combine_segments=False)
    np.testing.assert_array_equal(pixels[..., 0], labels[3:4] == 5)
    assert decoded_frames == frame_of_source


# --------------------------------------------------------------------------- errors


def _hide_module(monkeypatch: pytest.MonkeyPatch, hidden: str, how: str) -> None:
    if how == "sys_modules":
        monkeypatch.setitem(sys.modules, hidden, None)
        return
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name.split(".")[0] == hidden else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@ours_only
@pytest.mark.parametrize("how", ["find_spec", "sys_modules"])
@pytest.mark.parametrize("segmentation_type, codec, module, package", [
    pytest.param("LABELMAP", "jpeg2000", "openjpeg", "pylibjpeg-openjpeg", id="labelmap-jpeg2000"),
    pytest.param("FRACTIONAL", "jpeg2000", "openjpeg", "pylibjpeg-openjpeg", id="fractional-jpeg2000"),
    pytest.param("BINARY", "jpeg2000", "openjpeg", "pylibjpeg-openjpeg", id="binary-jpeg2000"),
    pytest.param("LABELMAP", "jpegls", "jpeg_ls", "pyjpegls", id="labelmap-jpegls"),
    pytest.param("FRACTIONAL", "jpegls", "jpeg_ls", "pyjpegls", id="fractional-jpegls"),
])
def test_missing_codec_package(hd: Any, series_source: list[pydicom.Dataset],
                               monkeypatch: pytest.MonkeyPatch, segmentation_type: str, codec: str,
                               module: str, package: str, how: str) -> None:
    from monai_dicomseg.errors import MissingDependencyError

    labels = make_labels(SHAPE, 2, seed=1)
    pixel_array, _ = case_arrays(segmentation_type, labels, 2)
    _hide_module(monkeypatch, module, how)
    with pytest.raises(MissingDependencyError, match=rf"pip install {package}") as info:
        build_segmentation(hd, series_source, pixel_array, segmentation_type, 2,
                           transfer_syntax_uid=SYNTAXES[codec])
    assert isinstance(info.value, ImportError)
    assert package in str(info.value)


@pytest.mark.highdicom
def test_rle_without_the_rle_plugin(hd: Any, series_source: list[pydicom.Dataset],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """RLE needs no optional package: pydicom's encoder stands in for pylibjpeg-rle."""
    labels = make_labels(SHAPE, 3, seed=8)
    _hide_module(monkeypatch, "rle", "find_spec")
    seg = build_segmentation(hd, series_source, labels, "LABELMAP", 3,
                             transfer_syntax_uid=RLELossless)
    monkeypatch.undo()
    expected = one_hot(labels, 3)
    np.testing.assert_array_equal(highdicom_pixels(_to_bytes(seg), series_source), expected)
    np.testing.assert_array_equal(our_pixels(hd, _to_bytes(seg), series_source), expected)


@pytest.mark.parametrize("segmentation_type, syntax, pattern", [
    pytest.param("BINARY", RLELossless, "RLE Lossless", id="binary-rle"),
    pytest.param("BINARY", JPEGLSLossless, "JPEG-LS", id="binary-jpegls"),
    pytest.param("BINARY", ImplicitVRLittleEndian, "Implicit VR", id="binary-implicit",
                 marks=ours_only),  # highdicom accepts Implicit VR
    pytest.param("LABELMAP", ImplicitVRLittleEndian, "Implicit VR", id="labelmap-implicit",
                 marks=ours_only),  # highdicom accepts Implicit VR
    pytest.param("FRACTIONAL", ImplicitVRLittleEndian, "Implicit VR", id="fractional-implicit",
                 marks=ours_only),  # highdicom accepts Implicit VR
    pytest.param("LABELMAP", "1.2.3.4.5.6", r"1\.2\.3\.4\.5\.6", id="labelmap-unknown"),
    pytest.param("FRACTIONAL", "1.2.3.4.5.6", r"1\.2\.3\.4\.5\.6", id="fractional-unknown"),
    pytest.param("BINARY", "1.2.3.4.5.6", r"1\.2\.3\.4\.5\.6", id="binary-unknown"),
])
def test_disallowed_transfer_syntax(hd: Any, series_source: list[pydicom.Dataset],
                                    segmentation_type: str, syntax: str, pattern: str) -> None:
    labels = make_labels(SHAPE, 2, seed=1)
    pixel_array, _ = case_arrays(segmentation_type, labels, 2)
    with pytest.raises(backend_errors().InputError,
                       match=match_message(rf"transfer_syntax_uid .*{pattern}.*not allowed "
                                           rf"for {segmentation_type}")):
        build_segmentation(hd, series_source, pixel_array, segmentation_type, 2,
                           transfer_syntax_uid=syntax)


@pytest.mark.parametrize("segmentation_type", ["LABELMAP", "FRACTIONAL", "BINARY"], ids=str.lower)
@pytest.mark.parametrize("shape", [(2, 16, 40), (2, 40, 31)], ids=["16rows", "31columns"])
def test_jpeg2000_small_frames(hd: Any, segmentation_type: str, shape: tuple[int, int, int]) -> None:
    sources = synthetic.make_ct_series(shape, labels=np.zeros(shape, np.uint8))
    labels = make_labels(shape, 2, seed=1)
    labels[0, 0, 0] = 1
    pixel_array, _ = case_arrays(segmentation_type, labels, 2)
    with pytest.raises(backend_errors().EncodeError,
                       match=match_message(rf"JPEG 2000 Lossless cannot encode {shape[1]}x{shape[2]} "
                                           r"frames .*at least 32")):
        build_segmentation(hd, sources, pixel_array, segmentation_type, 2,
                           transfer_syntax_uid=JPEG2000Lossless)


def test_small_frames_are_fine_with_other_codecs(hd: Any) -> None:
    shape = (2, 7, 9)
    sources = synthetic.make_ct_series(shape, labels=np.zeros(shape, np.uint8))
    labels = make_labels(shape, 2, seed=1)
    labels[0, 0, 0] = 1
    for syntax in (RLELossless, JPEGLSLossless):
        seg = build_segmentation(hd, sources, labels, "LABELMAP", 2, transfer_syntax_uid=syntax)
        np.testing.assert_array_equal(our_pixels(hd, _to_bytes(seg), sources), one_hot(labels, 2))


def test_default_is_explicit_vr_little_endian(hd: Any, series_source: list[pydicom.Dataset]) -> None:
    labels = make_labels(SHAPE, 2, seed=1)
    seg = build_segmentation(hd, series_source, labels, "LABELMAP", 2)
    assert seg.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert not seg.file_meta.TransferSyntaxUID.is_compressed
