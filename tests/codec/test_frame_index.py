"""Frame index: the raw-bytes scanner and pydicom's parsed items agree; TILED_FULL implied positions."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest

from corpus import SEG_NAMES
from monai_dicomseg.codec.frame_index import build_frame_index
from monai_dicomseg.errors import DecodeError


@pytest.mark.parametrize("name", SEG_NAMES, ids=SEG_NAMES)
def test_raw_scan_matches_parsed_items(name: str, highdicom_data_dir) -> None:
    raw = pydicom.dcmread(highdicom_data_dir / name)
    parsed = pydicom.dcmread(highdicom_data_dir / name)
    if "PerFrameFunctionalGroupsSequence" in parsed:
        parsed.PerFrameFunctionalGroupsSequence  # parse into Datasets
    a, b = build_frame_index(raw), build_frame_index(parsed)
    assert a.number_of_frames == b.number_of_frames == int(parsed.get("NumberOfFrames", 1))
    np.testing.assert_array_equal(a.segment_numbers, b.segment_numbers)
    np.testing.assert_array_equal(a.dimension_index_values, b.dimension_index_values)
    assert a.dimension_index_pointers == b.dimension_index_pointers
    if a.image_positions is not None:
        np.testing.assert_allclose(a.image_positions, b.image_positions)
    assert a.ref_sop_instance_uid.tolist() == b.ref_sop_instance_uid.tolist()
    np.testing.assert_array_equal(a.ref_frame_number, b.ref_frame_number)


def test_values_against_pydicom_items(highdicom_data_dir) -> None:
    ds = pydicom.dcmread(highdicom_data_dir / "seg_image_ct_binary_overlap.dcm")
    index = build_frame_index(ds)
    items = ds.PerFrameFunctionalGroupsSequence
    assert index.segment_numbers.tolist() == [
        i.SegmentIdentificationSequence[0].ReferencedSegmentNumber for i in items]
    assert index.dimension_index_values.tolist() == [
        list(i.FrameContentSequence[0].DimensionIndexValues) for i in items]
    np.testing.assert_allclose(index.image_positions, [
        [float(v) for v in i.PlanePositionSequence[0].ImagePositionPatient] for i in items])
    assert index.ref_spatial_locations_preserved.tolist() == ["YES"] * len(items)


def test_tiled_full_matches_tiled_sparse_equivalent(highdicom_data_dir) -> None:
    from highdicom.spatial import iter_tiled_full_frame_data

    ds = pydicom.dcmread(highdicom_data_dir / "seg_image_sm_dots_tiled_full.dcm")
    index = build_frame_index(ds)
    assert index.is_tiled_full and not index.has_frame_references
    expected = list(iter_tiled_full_frame_data(ds))
    assert index.segment_numbers.tolist() == [e[0] for e in expected]
    assert index.tile_positions[:, 1].tolist() == [e[2] for e in expected]
    assert index.tile_positions[:, 0].tolist() == [e[3] for e in expected]
    np.testing.assert_allclose(index.image_positions[:, :2], [[e[4], e[5]] for e in expected], atol=1e-6)


def test_labelmap_has_no_segment_identification(highdicom_data_dir) -> None:
    index = build_frame_index(pydicom.dcmread(highdicom_data_dir / "seg_image_sm_control_labelmap.dcm"))
    assert np.all(index.segment_numbers == 0)
    assert index.tile_positions is not None


@pytest.mark.parametrize("mutation, message", [
    ("frames", r"NumberOfFrames = 4 item\(s\), found 3"),
    ("segment", r"ReferencedSegmentNumber 7 is not defined"),
    ("shared", r"SharedFunctionalGroupsSequence is missing"),
    ("perframe", r"PerFrameFunctionalGroupsSequence is missing"),
    ("segseq", r"SegmentSequence is missing"),
    ("dimvalues", r"DimensionIndexValues must have one value per"),
], ids=lambda v: v if isinstance(v, str) and " " not in v and "\\" not in v else None)
def test_invalid_functional_groups(mutation: str, message: str, highdicom_data_dir) -> None:
    ds = pydicom.dcmread(highdicom_data_dir / "seg_image_ct_binary.dcm")
    if mutation == "frames":
        ds.NumberOfFrames = 4
    elif mutation == "segment":
        # per frame, or in the shared groups when every frame has the same segment (highdicom >= 0.23)
        item = ds.PerFrameFunctionalGroupsSequence[1]
        if "SegmentIdentificationSequence" not in item:
            item = ds.SharedFunctionalGroupsSequence[0]
        item.SegmentIdentificationSequence[0].ReferencedSegmentNumber = 7
    elif mutation == "shared":
        del ds.SharedFunctionalGroupsSequence
    elif mutation == "perframe":
        del ds.PerFrameFunctionalGroupsSequence
    elif mutation == "segseq":
        del ds.SegmentSequence
    elif mutation == "dimvalues":
        ds.PerFrameFunctionalGroupsSequence[0].FrameContentSequence[0].DimensionIndexValues = [1]
    with pytest.raises(DecodeError, match=message):
        build_frame_index(ds)


def test_truncated_raw_sequence_is_a_decode_error() -> None:
    from monai_dicomseg.codec.element_scan import scan_sequence
    from monai_dicomseg.codec.frame_index import FUNCTIONAL_GROUPS_SPEC

    item = b"\xfe\xff\x00\xe0" + (100).to_bytes(4, "little") + b"\x20\x00\x11\x91"
    with pytest.raises(DecodeError, match="exceeds"):
        scan_sequence(item, FUNCTIONAL_GROUPS_SPEC, implicit=True)
    with pytest.raises(DecodeError, match="expected an Item tag"):
        scan_sequence(b"\x08\x00\x16\x00" + bytes(4), FUNCTIONAL_GROUPS_SPEC, implicit=True)
