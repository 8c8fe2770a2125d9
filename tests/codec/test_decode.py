"""Frame-wise decoding equals pydicom's full decode; bad headers are refused up front."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.pixels.utils import pack_bits

from monai_dicomseg.codec.decode import decode_frames, pixel_layout
from corpus import SEG_NAMES
from monai_dicomseg.errors import DecodeError, UnsupportedError


@pytest.mark.parametrize("name", SEG_NAMES, ids=SEG_NAMES)
def test_matches_pydicom_pixel_array(name: str, highdicom_data_dir) -> None:
    ds = pydicom.dcmread(highdicom_data_dir / name)
    full = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
    n = full.shape[0]
    for frames in (list(range(n)), list(range(n))[::-1], [n - 1, 0, n - 1]):
        np.testing.assert_array_equal(decode_frames(ds, frames), full[frames])


def _binary_dataset(frames: np.ndarray) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.Rows, ds.Columns = frames.shape[1:]
    ds.NumberOfFrames = frames.shape[0]
    ds.BitsAllocated = 1
    ds.SamplesPerPixel = 1
    ds.PixelData = pack_bits(frames.reshape(-1))
    return ds


@pytest.mark.parametrize("shape", [(7, 3, 5), (4, 8, 8), (5, 1, 9), (3, 2, 3)], ids=str)
def test_binary_frames_straddling_bytes(shape: tuple[int, int, int]) -> None:
    frames = np.random.default_rng(sum(shape)).integers(0, 2, shape, dtype=np.uint8)
    ds = _binary_dataset(frames)
    order = list(range(shape[0]))[::-1] + [1]
    np.testing.assert_array_equal(decode_frames(ds, order), frames[order])


@pytest.mark.parametrize("syntax", [pydicom.uid.RLELossless, pydicom.uid.JPEGLSLossless,
                                    pydicom.uid.JPEG2000Lossless], ids=lambda s: s.name)
def test_encapsulated_subset(syntax: pydicom.uid.UID) -> None:
    frames = np.random.default_rng(1).integers(0, 5, (6, 32, 40), dtype=np.uint8)
    ds = pydicom.Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.Rows, ds.Columns, ds.NumberOfFrames = 32, 40, 6
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation, ds.SamplesPerPixel = 7, 0, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = frames.tobytes()
    try:
        ds.compress(syntax, encoding_plugin="")
    except (RuntimeError, ValueError, NotImplementedError) as exc:
        pytest.skip(f"no encoder for {syntax.name}: {exc}")
    np.testing.assert_array_equal(decode_frames(ds, [4, 1]), frames[[4, 1]])


def test_truncated_native_pixel_data() -> None:
    ds = _binary_dataset(np.ones((4, 8, 8), np.uint8))
    ds.PixelData = ds.PixelData[:20]
    with pytest.raises(DecodeError, match=r"PixelData is truncated.*needs 32 bytes; PixelData has 20"):
        decode_frames(ds, [0])


def test_absurd_number_of_frames_refused_before_allocating() -> None:
    ds = _binary_dataset(np.ones((2, 512, 512), np.uint8))
    ds.NumberOfFrames = 2_000_000_000
    with pytest.raises(DecodeError, match="NumberOfFrames"):
        pixel_layout(ds)


def test_absurd_encapsulated_frames_refused() -> None:
    ds = _binary_dataset(np.ones((1, 8, 8), np.uint8))
    ds.file_meta.TransferSyntaxUID = pydicom.uid.RLELossless
    ds.PixelData = pydicom.encaps.encapsulate([b"\x00" * 10])
    ds.NumberOfFrames = 10_000
    with pytest.raises(DecodeError, match=r"NumberOfFrames = 10000 cannot fit"):
        pixel_layout(ds)


@pytest.mark.parametrize("syntax", [pydicom.uid.ExplicitVRBigEndian, "1.2.3.4.5"],
                         ids=["big-endian", "unknown"])  # deflated: read (tests/codec/test_deflate.py)
def test_unsupported_transfer_syntax(syntax: str) -> None:
    ds = _binary_dataset(np.ones((1, 8, 8), np.uint8))
    ds.file_meta.TransferSyntaxUID = syntax
    with pytest.raises(UnsupportedError, match="TransferSyntaxUID"):
        decode_frames(ds, [0])


def test_frame_index_out_of_range() -> None:
    ds = _binary_dataset(np.ones((2, 8, 8), np.uint8))
    with pytest.raises(DecodeError, match=r"frame index 2 is out of range"):
        decode_frames(ds, [2])


def test_sixteen_bit() -> None:
    frames = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5) * 300
    ds = _binary_dataset(np.zeros((1, 8, 8), np.uint8))
    ds.Rows, ds.Columns, ds.NumberOfFrames, ds.BitsAllocated = 4, 5, 3, 16
    ds.PixelData = frames.astype("<u2").tobytes()
    np.testing.assert_array_equal(decode_frames(ds, [2, 0]), frames[[2, 0]])
