"""segread / from_dataset refuse bad input with named attributes and expected vs actual."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest

from monai_dicomseg.errors import DecodeError, FrameMismatchError, InputError, UnsupportedError
from monai_dicomseg.seg.reader import segread


def _data_dir() -> Path | None:
    for parent in Path(__file__).resolve().parents:
        if (parent / "shared" / "data" / "highdicom").is_dir():
            return parent / "shared" / "data" / "highdicom"
    return None


DATA = _data_dir()
pytestmark = pytest.mark.skipif(DATA is None, reason="shared/data/highdicom not found")


def _dataset(name: str = "seg_image_ct_binary.dcm") -> pydicom.Dataset:
    return pydicom.dcmread(DATA / name)


def _bytes(ds: pydicom.Dataset) -> io.BytesIO:
    buffer = io.BytesIO()
    ds.save_as(buffer)
    buffer.seek(0)
    return buffer


def test_not_a_segmentation() -> None:
    with pytest.raises(DecodeError, match=r"SOPClassUID must be .*got '1.2.840.10008.5.1.4.1.1.2'"):
        segread(DATA / "ct_image.dcm")


def test_truncated_pixel_data() -> None:
    ds = _dataset()
    ds.PixelData = ds.PixelData[:10]
    with pytest.raises(DecodeError, match=r"PixelData is truncated.*needs 96 bytes; PixelData has 10"):
        segread(_bytes(ds))


def test_number_of_frames_disagrees_with_pixel_data() -> None:
    ds = _dataset()
    ds.NumberOfFrames = 400
    with pytest.raises(DecodeError, match=r"NumberOfFrames"):
        segread(_bytes(ds))


def test_number_of_frames_disagrees_with_functional_groups() -> None:
    ds = _dataset()
    ds.NumberOfFrames = 2
    seg = segread(_bytes(ds))
    with pytest.raises(DecodeError, match=r"expected NumberOfFrames = 2 item\(s\), found 3"):
        seg.get_volume()


def test_frame_references_undefined_segment() -> None:
    ds = _dataset()
    ds.PerFrameFunctionalGroupsSequence[0].SegmentIdentificationSequence[0].ReferencedSegmentNumber = 9
    seg = segread(_bytes(ds))
    with pytest.raises(DecodeError, match=r"ReferencedSegmentNumber 9 is not defined in SegmentSequence; expected one of \[1\]"):
        seg.get_volume()


@pytest.mark.parametrize("keyword", ["SegmentSequence", "SharedFunctionalGroupsSequence",
                                     "PerFrameFunctionalGroupsSequence"])
def test_missing_required_sequence(keyword: str) -> None:
    ds = _dataset()
    delattr(ds, keyword)
    with pytest.raises(DecodeError, match=f"{keyword} is missing"):
        segread(_bytes(ds))


def test_absurd_header_sizes_refused() -> None:
    ds = _dataset()
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = 2_000_000_000
    with pytest.raises(DecodeError, match=r"Rows x Columns x NumberOfFrames"):
        segread(_bytes(ds))


def test_big_endian_refused() -> None:
    ds = _dataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRBigEndian
    with pytest.raises(UnsupportedError, match="little-endian"):
        from monai_dicomseg.seg.segmentation import Segmentation

        Segmentation.from_dataset(ds)


def test_unknown_transfer_syntax_refused() -> None:
    ds = _dataset()
    ds.file_meta.TransferSyntaxUID = "1.2.3.4"
    with pytest.raises(UnsupportedError, match="TransferSyntaxUID 1.2.3.4"):
        segread(_bytes(ds))


def test_garbage_bytes() -> None:
    with pytest.raises(DecodeError):
        segread(io.BytesIO(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x40\x00" + b"1" * 8))


def test_not_one_to_one_with_sources() -> None:
    seg = segread(DATA / "seg_image_sm_numbers.dcm")
    uid = seg.get_source_image_uids()[0][2]
    with pytest.raises(FrameMismatchError, match="uniquely"):
        seg.get_pixels_by_source_instance([uid])
    assert issubclass(FrameMismatchError, RuntimeError)


def test_tiled_full_cannot_index_by_source() -> None:
    seg = segread(DATA / "seg_image_sm_dots_tiled_full.dcm")
    with pytest.raises(RuntimeError, match="TILED_FULL"):
        seg.get_pixels_by_source_frame(seg.get_source_image_uids()[0][2], [1])


def test_invalid_segment_numbers_and_missing_sources() -> None:
    seg = segread(DATA / "seg_image_ct_binary.dcm")
    uid = seg.get_source_image_uids()[0][2]
    with pytest.raises(InputError, match=r"segment_numbers contains \[5\]"):
        seg.get_pixels_by_source_instance([uid], segment_numbers=[5])
    with pytest.raises(KeyError, match="not referenced"):
        seg.get_pixels_by_source_instance(["1.2.3"])
    empty = seg.get_pixels_by_source_instance(["1.2.3"], assert_missing_frames_are_empty=True)
    assert empty.shape == (1, 16, 16, 1) and not np.any(empty)
    with pytest.raises(IndexError, match="segment_number 3 is not defined"):
        seg.get_segment_description(3)
