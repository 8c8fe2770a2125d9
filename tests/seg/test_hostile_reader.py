"""Hostile files (issue 17): every crash site of the reader is a typed error naming the attribute.

Each file is built at test time from a valid SEG written by our writer (and,
where it matters, by highdicom) from the small synthetic CT series, then
mutated attribute-wise or byte-wise (:mod:`fuzz.hostile_files`).
"""
from __future__ import annotations

import copy
import io
import struct
from pathlib import Path
from typing import Any
from collections.abc import Callable

import numpy as np
import pydicom
import pytest
from pydicom.sequence import Sequence as DicomSequence

from fuzz.hostile_files import (
    insert_top_level,
    mutated,
    nested_sequence,
    replace_top_level_value,
    set_raw_value,
    valid_seg,
    valid_seg_bytes,
    valid_tiled_seg_bytes,
)
from monai_dicomseg.codec import decode as decode_module
from monai_dicomseg.codec.decode import check_decoded_size, max_decoded_bytes
from monai_dicomseg.errors import DecodeError, DicomSegError, InputError
from monai_dicomseg.seg.segmentation import segread

PRODUCERS = ["ours", pytest.param("highdicom", marks=pytest.mark.highdicom)]


def _read(data: bytes) -> Any:
    return segread(io.BytesIO(data))


def _first_source_uid(seg: Any) -> str:
    return seg.get_source_image_uids()[0][2]


# --------------------------------------------------------------------------- crash sites 1-7


@pytest.mark.parametrize("depth", [65, 900, 5000], ids=["65", "900", "5000"])
@pytest.mark.parametrize("producer", PRODUCERS)
def test_deeply_nested_sequence_is_a_decode_error(depth: int, producer: str, tmp_path: Path) -> None:
    """Crash site 1: RecursionError from a sequence nested >= 900 levels deep."""
    tag, element = nested_sequence("ContentSequence", depth)
    data = insert_top_level(valid_seg_bytes("BINARY", producer), tag, element)
    with pytest.raises(DecodeError, match=r"nested more than 64 levels deep"):
        _read(data)
    path = tmp_path / "deep.dcm"
    path.write_bytes(data)
    with pytest.raises(DecodeError, match=r"nested more than 64 levels deep"):
        segread(path)


def test_nesting_inside_per_frame_items_is_bounded() -> None:
    """The per-frame scanner itself refuses deep nesting (pydicom keeps the items unparsed)."""
    from monai_dicomseg.codec.element_scan import ScanSpec, scan_sequence

    _, element = nested_sequence("ContentSequence", 200)
    item = struct.pack("<HHI", 0xFFFE, 0xE000, len(element)) + element
    with pytest.raises(DecodeError, match=r"nested more than 64 levels deep"):
        scan_sequence(item, ScanSpec({}), implicit=False, what="PerFrameFunctionalGroupsSequence")


@pytest.mark.parametrize("value", ["inf", "1e400", "-inf", "nan", "1e30"], ids=str)
def test_number_of_frames_not_finite(value: str) -> None:
    """Crash site 2: OverflowError from NumberOfFrames = "inf" / "1e400"."""
    data = mutated(lambda ds: set_raw_value(ds, "NumberOfFrames", value))
    with pytest.raises(DecodeError, match=r"NumberOfFrames"):
        _read(data)


def _source_frame_number(value: str) -> Callable[[pydicom.Dataset], None]:
    def change(ds: pydicom.Dataset) -> None:
        for item in ds.PerFrameFunctionalGroupsSequence:
            source = item.DerivationImageSequence[0].SourceImageSequence[0]
            source.ReferencedFrameNumber = 1
        source = ds.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
        set_raw_value(source, "ReferencedFrameNumber", value)

    return change


@pytest.mark.parametrize("value", ["inf", "1e400", "nan", "99999999999"], ids=str)
@pytest.mark.parametrize(
    "accessor",
    [
        lambda seg: seg.get_pixels_by_source_instance([_first_source_uid(seg)]),
        lambda seg: seg.get_volume(),
    ],
    ids=["get_pixels_by_source_instance", "get_volume"],
)
def test_referenced_frame_number_not_finite(value: str, accessor: Callable[[Any], Any]) -> None:
    """Crash site 3: OverflowError from ReferencedFrameNumber = "inf"."""
    seg = _read(mutated(_source_frame_number(value)))
    with pytest.raises(DecodeError, match=r"ReferencedFrameNumber \(IS\) has an invalid value"):
        accessor(seg)


@pytest.mark.parametrize("value", ["abc", "1e400", "nan"], ids=str)
def test_image_position_not_a_number(value: str) -> None:
    """A bare ValueError ("could not convert string to float") from the per-frame scanner."""
    def change(ds: pydicom.Dataset) -> None:
        position = ds.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0]
        set_raw_value(position, "ImagePositionPatient", f"{value}\\1\\2")

    seg = _read(mutated(change))
    with pytest.raises(DecodeError, match=r"ImagePositionPatient \(DS\) has an invalid value"):
        seg.get_volume()


@pytest.mark.parametrize(
    "accessor",
    [lambda seg: seg.get_volume(), lambda seg: seg._coordinate_system],
    ids=["get_volume", "coordinate_system"],
)
def test_empty_shared_functional_groups(accessor: Callable[[Any], Any]) -> None:
    """Crash site 4: IndexError from an empty SharedFunctionalGroupsSequence."""
    seg = _read(mutated(lambda ds: setattr(ds, "SharedFunctionalGroupsSequence", DicomSequence([]))))
    with pytest.raises(DecodeError, match=r"SharedFunctionalGroupsSequence must have exactly 1 item.*found 0"):
        accessor(seg)


@pytest.mark.parametrize("keyword", ["Rows", "Columns", "BitsAllocated"])
@pytest.mark.parametrize("producer", PRODUCERS)
def test_odd_byte_length_of_us_attribute(keyword: str, producer: str) -> None:
    """Crash site 5: pydicom BytesLengthException from Rows with an odd byte length."""
    data = replace_top_level_value(valid_seg_bytes("BINARY", producer), keyword, b"\x20\x00\x00")
    with pytest.raises(DecodeError, match=keyword):
        _read(data)


@pytest.mark.parametrize(
    "keyword, where",
    [
        ("ReferencedSOPInstanceUID", lambda ds: ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]),
        ("SeriesInstanceUID", lambda ds: ds.ReferencedSeriesSequence[0]),
        ("StudyInstanceUID", lambda ds: ds),
    ],
    ids=["ReferencedSOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"],
)
def test_referenced_series_item_lacks_uid(keyword: str, where: Callable[[Any], Any]) -> None:
    """Crash site 6: AttributeError from ReferencedSeriesSequence items without their UIDs."""
    seg = _read(mutated(lambda ds: delattr(where(ds), keyword)))
    with pytest.raises(DecodeError, match=f"lacks {keyword}"):
        seg.get_source_image_uids()


@pytest.mark.parametrize("keyword, accessor", [
    ("SegmentedPropertyCategoryCodeSequence", lambda d: d.segmented_property_category),
    ("SegmentedPropertyTypeCodeSequence", lambda d: d.segmented_property_type),
], ids=["category", "type"])
def test_empty_property_code_sequence(keyword: str, accessor: Callable[[Any], Any]) -> None:
    """Crash site 7: IndexError from an empty SegmentedPropertyCategoryCodeSequence."""
    seg = _read(mutated(lambda ds: setattr(ds.SegmentSequence[0], keyword, DicomSequence([]))))
    with pytest.raises(DecodeError, match=f"{keyword} must hold exactly 1 item.*found 0"):
        accessor(seg.get_segment_description(1))


def test_code_item_without_code_value() -> None:
    seg = _read(mutated(lambda ds: delattr(ds.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0], "CodeValue")))
    with pytest.raises(DecodeError, match="SegmentedPropertyTypeCodeSequence item is not a valid code item"):
        seg.get_segment_description(1).segmented_property_type


def test_unknown_algorithm_type() -> None:
    seg = _read(mutated(lambda ds: setattr(ds.SegmentSequence[0], "SegmentAlgorithmType", "MAGIC")))
    with pytest.raises(DecodeError, match="SegmentAlgorithmType must be one of .*got 'MAGIC'"):
        seg.get_segment_description(1).algorithm_type


# --------------------------------------------------------------------------- non-DICOM / absurd files


def test_sixteen_mebibytes_of_zeros_rejected_before_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file of zeros is refused from its first bytes; pydicom never sees it."""
    import monai_dicomseg.seg.reader as reader

    def no_parse(source: Any) -> None:  # pragma: no cover - the point is that it is not called
        raise AssertionError("pydicom was asked to parse a file of zeros")

    monkeypatch.setattr(reader, "_parse", no_parse)
    path = tmp_path / "zeros.dcm"
    path.write_bytes(bytes(16 << 20))
    with pytest.raises(DecodeError, match=r"not a DICOM file: no 'DICM' prefix.*found \(0000,0000\)"):
        segread(path)
    with pytest.raises(DecodeError, match=r"not a DICOM file"):
        segread(io.BytesIO(bytes(16 << 20)))


def test_zeros_after_the_file_meta_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    import monai_dicomseg.seg.reader as reader

    monkeypatch.setattr(reader, "_parse", lambda source: (_ for _ in ()).throw(AssertionError("parsed")))
    raw = valid_seg_bytes()
    start = [e for e in __import__("fuzz.hostile_files").hostile_files.top_level_elements(raw) if e[0] > 0x0002FFFF][0][1]
    with pytest.raises(DecodeError, match=r"begins with \(0000,0000\)"):
        segread(io.BytesIO(raw[:start] + bytes(1 << 20)))


@pytest.mark.parametrize("data", [b"", b"DICM", b"hello world, this is not DICOM" * 10], ids=["empty", "short", "text"])
def test_tiny_and_text_files(data: bytes) -> None:
    with pytest.raises(DecodeError, match="not a DICOM file"):
        _read(data)


@pytest.mark.parametrize("producer", PRODUCERS)
def test_sequence_of_200000_empty_items_rejected(producer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An undefined-length sequence of 200,000 empty items is refused by the bounded pre-walk."""
    import monai_dicomseg.seg.reader as reader

    monkeypatch.setattr(reader, "_parse", lambda source: (_ for _ in ()).throw(AssertionError("parsed")))
    tag = 0x0040A730
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + b"SQ\x00\x00" + struct.pack("<I", 0xFFFFFFFF)
    items = (struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + struct.pack("<HHI", 0xFFFE, 0xE00D, 0)) * 200_000
    element = head + items + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    data = insert_top_level(valid_seg_bytes("BINARY", producer), tag, element)
    with pytest.raises(DecodeError, match=r"more than 100000 items"):
        _read(data)


# --------------------------------------------------------------------------- decoded-size budget


@pytest.mark.parametrize("keyword, value", [
    ("TotalPixelMatrixColumns", 2**31),
    ("TotalPixelMatrixRows", 2**32 - 1),
], ids=["columns-2**31", "rows-2**32-1"])
@pytest.mark.parametrize("producer", PRODUCERS)
@pytest.mark.parametrize("organization", ["TILED_SPARSE", "TILED_FULL"])
def test_absurd_total_pixel_matrix_does_not_allocate(keyword: str, value: int, producer: str, organization: str) -> None:
    """get_total_pixel_matrix refuses before allocating 100 GiB - 9.8 TiB."""
    data = replace_top_level_value(valid_tiled_seg_bytes("BINARY", organization, producer), keyword,
                                   struct.pack("<I", value))
    seg = _read(data)
    with pytest.raises(DecodeError, match=r"decoded-size budget|NumberOfFrames of a TILED_FULL image"):
        seg.get_total_pixel_matrix()
    with pytest.raises(DicomSegError):
        seg.get_volume()


def test_budget_can_be_raised_and_lowered() -> None:
    seg = _read(valid_seg_bytes())
    assert seg.get_volume().array.shape[1:3] == (32, 40)
    with max_decoded_bytes(1000):
        with pytest.raises(DecodeError, match=r"more than the decoded-size budget of 1000 bytes"):
            seg.get_volume()
        with pytest.raises(DecodeError, match=r"decoded-size budget of 1000 bytes"):
            seg.get_pixels_by_source_instance([_first_source_uid(seg)])
    assert decode_module.MAX_DECODED_BYTES == 16 << 30
    tiled = _read(valid_tiled_seg_bytes())
    with max_decoded_bytes(50 * 50 * 2 - 1):
        with pytest.raises(DecodeError, match=r"total pixel matrix region of shape \(50, 50, 2\)"):
            tiled.get_total_pixel_matrix()
    with max_decoded_bytes(50 * 50 * 2):
        assert tiled.get_total_pixel_matrix().shape == (50, 50, 2)


@pytest.mark.parametrize("limit", [0, -1, 1.5, True, "1"], ids=repr)
def test_budget_must_be_a_positive_int(limit: Any) -> None:
    with pytest.raises(InputError, match="limit must be a positive number of bytes"):
        max_decoded_bytes(limit)


def test_check_decoded_size_names_the_array() -> None:
    check_decoded_size((10, 10), np.uint8, "thing")
    with pytest.raises(DecodeError, match=r"the thing of shape \(65535, 65535, 65535\) \(uint16\)"):
        check_decoded_size((65535, 65535, 65535), np.uint16, "thing")


def test_valid_files_still_read() -> None:
    for kind in ("BINARY", "FRACTIONAL", "LABELMAP"):
        seg = _read(valid_seg_bytes(kind))
        assert seg.get_volume().array.shape[1:3] == (32, 40)
        seg.get_segment_description(1).segmented_property_category
    ds = copy.deepcopy(valid_seg())
    assert ds.Rows == 32


# --------------------------------------------------------------------------- found by the fuzz suite


@pytest.mark.parametrize("value", [None, [1, 2]], ids=["empty", "two-values"])
def test_segment_number_must_be_one_integer(value: Any) -> None:
    data = mutated(lambda ds: setattr(ds.SegmentSequence[0], "SegmentNumber", value))
    with pytest.raises(DecodeError, match="SegmentNumber must be one integer"):
        _read(data)


def test_pixel_padding_value_must_be_one_integer() -> None:
    data = mutated(lambda ds: setattr(ds, "PixelPaddingValue", [0, 1]), "LABELMAP")
    with pytest.raises(DecodeError, match="PixelPaddingValue must be one integer"):
        _read(data)


def test_samples_per_pixel_multi_valued() -> None:
    data = mutated(lambda ds: setattr(ds, "SamplesPerPixel", [1, 1]))
    with pytest.raises(DecodeError, match="SamplesPerPixel must be an integer"):
        _read(data)


@pytest.mark.parametrize("keyword", ["BitsStored", "HighBit", "PixelRepresentation"])
def test_malformed_elements_are_decoded_at_read_time(keyword: str) -> None:
    """pydicom converts lazily; a malformed element is reported by segread, not by a later accessor."""
    data = replace_top_level_value(valid_seg_bytes(), keyword, b"\x01")
    with pytest.raises(DecodeError, match=f"{keyword} cannot be decoded"):
        _read(data)


def test_missing_bits_stored_in_compressed_file_is_a_decode_error() -> None:
    from pydicom.uid import JPEG2000Lossless

    ds = pydicom.dcmread(io.BytesIO(valid_seg_bytes("FRACTIONAL", "ours", JPEG2000Lossless)))
    del ds.BitsStored
    seg = _read(__import__("fuzz.hostile_files").hostile_files.to_bytes(ds))
    with pytest.raises(DecodeError, match="cannot decode encapsulated PixelData"):
        seg.get_volume()


def test_tiled_volume_with_empty_pixel_spacing_is_a_geometry_error() -> None:
    from monai_dicomseg.errors import GeometryError

    ds = pydicom.dcmread(io.BytesIO(valid_tiled_seg_bytes("BINARY", "TILED_FULL", "ours")))
    ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing = None
    seg = _read(__import__("fuzz.hostile_files").hostile_files.to_bytes(ds))
    with pytest.raises(GeometryError, match="shared PixelSpacing"):
        seg.get_volume()


@pytest.mark.parametrize("keyword, value, message", [
    ("SegmentationFractionalType", "", "SegmentationFractionalType must be PROBABILITY or OCCUPANCY"),
    ("SegmentationFractionalType", "MAYBE", "SegmentationFractionalType must be PROBABILITY or OCCUPANCY"),
    ("MaximumFractionalValue", [1, 2], r"MaximumFractionalValue must be one integer in \[1, 255\]"),
    ("MaximumFractionalValue", 0, r"MaximumFractionalValue must be one integer in \[1, 255\]"),
    ("MaximumFractionalValue", None, r"MaximumFractionalValue must be one integer in \[1, 255\]"),
], ids=["type-empty", "type-unknown", "max-two-values", "max-zero", "max-empty"])
def test_fractional_attributes_checked_at_read(keyword: str, value: Any, message: str) -> None:
    data = mutated(lambda ds: setattr(ds, keyword, value), "FRACTIONAL")
    with pytest.raises(DecodeError, match=message):
        _read(data)


@pytest.mark.parametrize("case", ["deep", "odd-rows", "zeros"])
def test_load_dicom_seg_raises_typed_errors(case: str, tmp_path: Path) -> None:
    """The MONAI loader goes through segread: the same typed errors (crash sites 1 and 5, the zeros file)."""
    pytest.importorskip("monai")
    from monai_dicomseg.transforms.load import LoadDicomSeg

    if case == "deep":
        tag, element = nested_sequence("ContentSequence", 900)
        data = insert_top_level(valid_seg_bytes(), tag, element)
    elif case == "odd-rows":
        data = replace_top_level_value(valid_seg_bytes(), "Rows", b"\x20\x00\x00")
    else:
        data = bytes(1 << 20)
    path = tmp_path / f"{case}.dcm"
    path.write_bytes(data)
    with pytest.raises(DicomSegError):
        LoadDicomSeg()(str(path))


@pytest.mark.parametrize("target, flipped", [
    (b"\xe0\x7f\x10\x00OB", b"\xe0\x7f\x10\x00NB"),  # Pixel Data
    (b"\x20\x00\x0e\x00UI", b"\x20\x00\x0e\x00TI"),  # first: SeriesInstanceUID inside ReferencedSeriesSequence
], ids=["pixel-data", "nested-series-uid"])
def test_unknown_value_representation_is_a_decode_error(target: bytes, flipped: bytes, tmp_path: Path) -> None:
    raw = valid_seg_bytes()
    assert target in raw
    data = raw.replace(target, flipped, 1)
    with pytest.raises(DecodeError, match=r"Value Representation|cannot be decoded"):
        _read(data)
    path = tmp_path / "flipped.dcm"
    path.write_bytes(data)
    from monai_dicomseg.cli.main import main

    assert main(["info", str(path)]) == 1
