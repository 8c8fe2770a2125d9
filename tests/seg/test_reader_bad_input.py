"""segread / from_dataset refuse bad input with named attributes and expected vs actual."""
from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest

from monai_dicomseg.errors import DecodeError, FrameMismatchError, InputError, UnsupportedError
from monai_dicomseg.seg.segmentation import segread


@pytest.fixture
def data(highdicom_data_dir):
    """Folder-like source of highdicom's test files (generated, or ``../shared`` when present)."""
    return highdicom_data_dir


@pytest.fixture
def ct_binary(data) -> pydicom.Dataset:
    """``seg_image_ct_binary.dcm``: BINARY, one segment, 3 frames of 16 x 16."""
    return pydicom.dcmread(data / "seg_image_ct_binary.dcm")


def _bytes(ds: pydicom.Dataset) -> io.BytesIO:
    buffer = io.BytesIO()
    ds.save_as(buffer)
    buffer.seek(0)
    return buffer


def test_not_a_segmentation(data) -> None:
    with pytest.raises(DecodeError, match=r"SOPClassUID must be .*got '1.2.840.10008.5.1.4.1.1.2'"):
        segread(data / "ct_image.dcm")


def test_truncated_pixel_data(ct_binary: pydicom.Dataset) -> None:
    ds = ct_binary
    ds.PixelData = ds.PixelData[:10]
    with pytest.raises(DecodeError, match=r"PixelData is truncated.*needs 96 bytes; PixelData has 10"):
        segread(_bytes(ds))


def test_number_of_frames_disagrees_with_pixel_data(ct_binary: pydicom.Dataset) -> None:
    ds = ct_binary
    ds.NumberOfFrames = 400
    with pytest.raises(DecodeError, match=r"NumberOfFrames"):
        segread(_bytes(ds))


def test_number_of_frames_disagrees_with_functional_groups(ct_binary: pydicom.Dataset) -> None:
    ds = ct_binary
    ds.NumberOfFrames = 2
    seg = segread(_bytes(ds))
    with pytest.raises(DecodeError, match=r"expected NumberOfFrames = 2 item\(s\), found 3"):
        seg.get_volume()


def test_frame_references_undefined_segment(ct_binary: pydicom.Dataset) -> None:
    ds = ct_binary
    item = ds.PerFrameFunctionalGroupsSequence[0]
    if "SegmentIdentificationSequence" not in item:  # highdicom >= 0.23 shares a single segment's item
        item = ds.SharedFunctionalGroupsSequence[0]
    item.SegmentIdentificationSequence[0].ReferencedSegmentNumber = 9
    seg = segread(_bytes(ds))
    with pytest.raises(DecodeError, match=r"ReferencedSegmentNumber 9 is not defined in SegmentSequence; expected one of \[1\]"):
        seg.get_volume()


@pytest.mark.parametrize("keyword", ["SegmentSequence", "SharedFunctionalGroupsSequence",
                                     "PerFrameFunctionalGroupsSequence"])
def test_missing_required_sequence(keyword: str, ct_binary: pydicom.Dataset) -> None:
    ds = ct_binary
    delattr(ds, keyword)
    with pytest.raises(DecodeError, match=f"{keyword} is missing"):
        segread(_bytes(ds))


def test_absurd_header_sizes_refused(ct_binary: pydicom.Dataset) -> None:
    ds = ct_binary
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = 2_000_000_000
    with pytest.raises(DecodeError, match=r"Rows x Columns x NumberOfFrames"):
        segread(_bytes(ds))


def test_big_endian_refused(ct_binary: pydicom.Dataset) -> None:
    ds = ct_binary
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRBigEndian
    with pytest.raises(UnsupportedError, match="little-endian"):
        from monai_dicomseg.seg.segmentation import Segmentation

        Segmentation.from_dataset(ds)


def test_unknown_transfer_syntax_refused(ct_binary: pydicom.Dataset) -> None:
    ds = ct_binary
    ds.file_meta.TransferSyntaxUID = "1.2.3.4"
    with pytest.raises(UnsupportedError, match="TransferSyntaxUID 1.2.3.4"):
        segread(_bytes(ds))


def test_garbage_bytes() -> None:
    with pytest.raises(DecodeError):
        segread(io.BytesIO(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x40\x00" + b"1" * 8))


def test_not_one_to_one_with_sources(data) -> None:
    seg = segread(data / "seg_image_sm_numbers.dcm")
    uid = seg.get_source_image_uids()[0][2]
    with pytest.raises(FrameMismatchError, match="uniquely"):
        seg.get_pixels_by_source_instance([uid])
    assert issubclass(FrameMismatchError, RuntimeError)


def test_tiled_full_cannot_index_by_source(data) -> None:
    seg = segread(data / "seg_image_sm_dots_tiled_full.dcm")
    with pytest.raises(RuntimeError, match="TILED_FULL"):
        seg.get_pixels_by_source_frame(seg.get_source_image_uids()[0][2], [1])


def test_invalid_segment_numbers_and_missing_sources(data) -> None:
    seg = segread(data / "seg_image_ct_binary.dcm")
    uid = seg.get_source_image_uids()[0][2]
    with pytest.raises(InputError, match=r"segment_numbers contains \[5\]"):
        seg.get_pixels_by_source_instance([uid], segment_numbers=[5])
    with pytest.raises(KeyError, match="not referenced"):
        seg.get_pixels_by_source_instance(["1.2.3"])
    empty = seg.get_pixels_by_source_instance(["1.2.3"], assert_missing_frames_are_empty=True)
    assert empty.shape == (1, 16, 16, 1) and not np.any(empty)
    with pytest.raises(IndexError, match="segment_number 3 is not defined"):
        seg.get_segment_description(3)
