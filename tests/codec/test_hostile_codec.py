"""Hostile bytes at the codec layer (issue 17): bounded scanning, typed errors, cheap rejection."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monai_dicomseg.codec import element_scan
from monai_dicomseg.codec.element_scan import (
    MAX_DEPTH,
    MAX_SKIPPED_ITEMS,
    ScanSpec,
    check_structure,
    locate_top_level_element,
    scan_sequence,
)
from monai_dicomseg.errors import DecodeError

_ITEM_UNDEFINED = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
_ITEM_END = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
_SEQ_END = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def _element(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    if vr in (b"SQ", b"OB", b"UN"):
        return struct.pack("<HH", group, element) + vr + b"\x00\x00" + struct.pack("<I", len(value)) + value
    return struct.pack("<HH", group, element) + vr + struct.pack("<H", len(value)) + value


def _item(*elements: bytes) -> bytes:
    body = b"".join(elements)
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body


def _nested(depth: int) -> bytes:
    head = struct.pack("<HH", 0x0040, 0xA730) + b"SQ\x00\x00" + struct.pack("<I", 0xFFFFFFFF)
    return (head + _ITEM_UNDEFINED) * depth + head + _SEQ_END + (_ITEM_END + _SEQ_END) * depth


SPEC = ScanSpec({
    "ReferencedFrameNumber": "IS",
    "ImagePositionPatient": "DS",
})


@pytest.mark.parametrize("value, keyword, vr", [
    (b"inf ", "ReferencedFrameNumber", b"IS"),
    (b"1e400", "ReferencedFrameNumber", b"IS"),
    (b"nan ", "ReferencedFrameNumber", b"IS"),
    (b"4294967296", "ReferencedFrameNumber", b"IS"),
    (b"abc ", "ReferencedFrameNumber", b"IS"),
    (b"abc\\1\\2 ", "ImagePositionPatient", b"DS"),
    (b"1e400\\1\\2 ", "ImagePositionPatient", b"DS"),
    (b"nan\\1\\2 ", "ImagePositionPatient", b"DS"),
], ids=lambda v: v.decode("ascii", "replace") if isinstance(v, bytes) else str(v))
def test_numeric_text_values_are_decode_errors(value: bytes, keyword: str, vr: bytes) -> None:
    group, element = (0x0008, 0x1160) if keyword == "ReferencedFrameNumber" else (0x0020, 0x0032)
    data = _item(_element(group, element, vr, value))
    with pytest.raises(DecodeError, match=rf"{keyword} \({vr.decode()}\) has an invalid value"):
        scan_sequence(data, SPEC, implicit=False, what="PerFrameFunctionalGroupsSequence")


def test_valid_numbers_still_decode() -> None:
    data = _item(_element(0x0008, 0x1160, b"IS", b"12"), _element(0x0020, 0x0032, b"DS", b"1.5\\-2\\3e2 "))
    assert scan_sequence(data, SPEC, implicit=False) == [{"ReferencedFrameNumber": [12],
                                                          "ImagePositionPatient": [1.5, -2.0, 300.0]}]


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 900, 20_000])
def test_depth_is_limited_not_recursive(depth: int) -> None:
    data = _item(_nested(depth))
    with pytest.raises(DecodeError, match=f"nested more than {MAX_DEPTH} levels deep"):
        scan_sequence(data, ScanSpec({}), implicit=False)


def test_depth_within_the_limit_is_read() -> None:
    assert scan_sequence(_item(_nested(MAX_DEPTH - 2)), ScanSpec({}), implicit=False) == [{}]


def test_skipped_sequences_have_an_item_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(element_scan, "MAX_SKIPPED_ITEMS", 10)
    head = struct.pack("<HH", 0x0040, 0xA730) + b"SQ\x00\x00" + struct.pack("<I", 0xFFFFFFFF)
    many = head + (_ITEM_UNDEFINED + _ITEM_END) * 11 + _SEQ_END
    with pytest.raises(DecodeError, match="more than 10 items"):
        locate_top_level_element(many, 0, "PerFrameFunctionalGroupsSequence", implicit=False)
    assert MAX_SKIPPED_ITEMS == 100_000


def _meta(transfer_syntax: bytes = b"1.2.840.10008.1.2.1\x00") -> bytes:
    return b"\x00" * 128 + b"DICM" + _element(0x0002, 0x0010, b"UI", transfer_syntax)


@pytest.mark.parametrize("data, message", [
    (b"", "only 0 bytes"),
    (bytes(16 << 20), r"no 'DICM' prefix at byte 128.*\(0000,0000\)"),
    (b"\xff" * 300, r"\(FFFF,FFFF\)"),
    (_meta() + bytes(1 << 16), r"begins with \(0000,0000\); expected an element of group 0004 or above"),
    (_meta() + _nested(500), r"nested more than 64 levels deep"),
], ids=["empty", "zeros", "ff", "zeros-after-meta", "deep"])
def test_check_structure_rejects(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        check_structure(data, "case")


def test_check_structure_accepts_raw_data_sets_and_part10() -> None:
    check_structure(_element(0x0008, 0x0016, b"UI", b"1.2\x00"), "raw data set")
    check_structure(_meta() + _element(0x0008, 0x0016, b"UI", b"1.2\x00"), "part 10")


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=600))
def test_scanner_on_random_bytes_only_raises_decode_error(data: bytes) -> None:
    for implicit in (False, True):
        try:
            scan_sequence(data, SPEC, implicit=implicit)
        except DecodeError:
            pass
    try:
        check_structure(data, "random")
    except DecodeError:
        pass


def test_decoded_size_budget_is_checked_before_decoding() -> None:
    from pydicom.dataset import Dataset
    from pydicom.uid import ExplicitVRLittleEndian

    from monai_dicomseg.codec.decode import decode_frames, max_decoded_bytes, pixel_layout

    ds = Dataset()
    ds.Rows, ds.Columns, ds.NumberOfFrames, ds.BitsAllocated, ds.SamplesPerPixel = 4, 4, 2, 8, 1
    ds.PixelData = bytes(32)
    ds.file_meta = Dataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    layout = pixel_layout(ds)
    assert decode_frames(ds, [0, 1], layout).shape == (2, 4, 4)
    with max_decoded_bytes(31):
        with pytest.raises(DecodeError, match=r"2 decoded frame\(s\) of shape \(2, 4, 4\)"):
            decode_frames(ds, [0, 1], layout)
    ds.SamplesPerPixel = [1, 1]
    with pytest.raises(DecodeError, match="SamplesPerPixel must be an integer"):
        pixel_layout(ds)
    assert np.dtype(layout.dtype) == np.uint8
