"""The SEG user guide's reading examples ("Reading Existing Segmentation Images"
to "Reconstructing Volumes"), run with ``import monai_dicomseg as hd``.

The guide's ``data/test_files/`` paths point at highdicom's test files: the
files :mod:`corpus` generates with highdicom (always) and ``../shared/data/highdicom``
(when present). Obvious typos (``...)) == [1]``) are fixed. Where the guide's
asserts hold values only highdicom's own files have (UIDs, an affine), the
expected value is what highdicom reads from the same file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

import highdicom
import monai_dicomseg as hd

DATA: Path


@pytest.fixture(autouse=True)
def _data(highdicom_data_dir) -> None:
    """Point :func:`f` at this run's source of highdicom's test files."""
    global DATA
    DATA = highdicom_data_dir


def f(name: str) -> str:
    return str(DATA / name)


def oracle(name: str) -> highdicom.seg.Segmentation:
    """highdicom's reading of the same file: the expected values the guide hard-codes."""
    return highdicom.seg.segread(f(name))


def test_reading_existing_segmentation_images() -> None:
    seg = hd.seg.segread(f("seg_image_ct_binary.dcm"))
    assert isinstance(seg, hd.seg.Segmentation)

    dcm = pydicom.dcmread(f("seg_image_ct_binary.dcm"))
    seg = hd.Segmentation.from_dataset(dcm)
    assert isinstance(seg, hd.seg.Segmentation)

    seg = hd.seg.segread(f("seg_image_ct_binary.dcm"))
    assert isinstance(seg, pydicom.Dataset)
    assert seg.PatientName == "Doe^Archibald"


def test_examining_segment_metadata() -> None:
    seg = hd.seg.segread(f("seg_image_ct_binary.dcm"))
    assert seg.number_of_segments == 1
    segment_description = seg.get_segment_description(1)
    assert isinstance(segment_description, hd.seg.SegmentDescription)
    assert segment_description.segment_number == 1
    assert segment_description.segment_label == "first segment"
    assert segment_description.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
    assert segment_description.tracking_id == "test segmentation of computed tomography image"
    assert segment_description.tracking_uid == oracle("seg_image_ct_binary.dcm").get_segment_description(1).tracking_uid
    assert segment_description.segmented_property_category == codes.SCT.Tissue
    assert segment_description.segmented_property_type == codes.SCT.Bone


def test_searching_for_segments() -> None:
    seg = hd.seg.segread(f("seg_image_ct_binary_overlap.dcm"))
    expected = oracle("seg_image_ct_binary_overlap.dcm")
    tracking_uid_1 = expected.get_segment_description(1).tracking_uid
    tracking_uid_2 = expected.get_segment_description(2).tracking_uid
    assert tracking_uid_1 and tracking_uid_2 and tracking_uid_1 != tracking_uid_2
    assert seg.number_of_segments == 2
    assert seg.segment_numbers == range(1, 3)
    assert seg.get_segment_numbers(segment_label="first segment") == [1]
    assert seg.get_segment_numbers(segment_label="second segment") == [2]
    assert seg.get_segment_numbers(segmented_property_type=codes.SCT.Bone) == [1]
    assert seg.get_segment_numbers(segmented_property_type=codes.SCT.Spine) == [2]
    assert seg.get_segment_numbers(tracking_uid=tracking_uid_1) == [1]
    assert seg.get_segment_numbers(tracking_uid=tracking_uid_2) == [2]
    segment_1_description = seg.get_segment_description(1)
    assert segment_1_description.segment_label == "first segment"
    assert segment_1_description.tracking_uid == tracking_uid_1


def test_by_source_instance() -> None:
    seg = hd.seg.segread(f("seg_image_ct_binary.dcm"))
    sop_uids = [sop_uid for _, _, sop_uid in seg.get_source_image_uids()]
    assert sop_uids == [uids[2] for uids in oracle("seg_image_ct_binary.dcm").get_source_image_uids()]
    assert len(sop_uids) == 4
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[
            sop_uids[0],
            sop_uids[1],
        ]
    )
    assert pixels.shape == (2, 16, 16, 1)
    assert np.unique(pixels).tolist() == [0, 1]


def test_by_source_frame_multiframe() -> None:
    seg = hd.seg.segread(f("seg_image_sm_numbers.dcm"))
    assert seg.number_of_segments == 20
    _, _, source_sop_instance_uid = seg.get_source_image_uids()[0]
    pixels = seg.get_pixels_by_source_frame(
        source_sop_instance_uid=source_sop_instance_uid,
        source_frame_numbers=range(1, 26),
    )
    assert pixels.shape == (25, 10, 10, 20)
    assert np.unique(pixels).tolist() == [0, 1]


def test_specific_segments_and_label_maps() -> None:
    seg = hd.seg.segread(f("seg_image_sm_numbers.dcm"))
    _, _, source_sop_instance_uid = seg.get_source_image_uids()[0]
    common = dict(source_sop_instance_uid=source_sop_instance_uid, source_frame_numbers=range(1, 26),
                  assert_missing_frames_are_empty=True, segment_numbers=[10, 9, 8])
    pixels = seg.get_pixels_by_source_frame(**common)
    assert pixels.shape == (25, 10, 10, 3)
    pixels = seg.get_pixels_by_source_frame(**common, combine_segments=True)
    assert pixels.shape == (25, 10, 10)
    assert np.unique(pixels).tolist() == [0, 8, 9, 10]
    pixels = seg.get_pixels_by_source_frame(**common, combine_segments=True, relabel=True)
    assert pixels.shape == (25, 10, 10)
    assert np.unique(pixels).tolist() == [0, 1, 2, 3]


def test_fractional() -> None:
    seg = hd.seg.segread(f("seg_image_ct_true_fractional.dcm"))
    assert seg.segmentation_type == hd.seg.SegmentationTypeValues.FRACTIONAL
    sop_uids = [uids[2] for uids in seg.get_source_image_uids()]
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=sop_uids)
    assert pixels.dtype == np.float32
    np.testing.assert_allclose(np.unique(pixels), [0.0, 0.2509804, 0.5019608], rtol=1e-6)


def test_reconstructing_volumes() -> None:
    seg = hd.seg.segread(f("seg_image_ct_binary.dcm"))
    vol = seg.get_volume(combine_segments=True)
    assert vol.spatial_shape == (3, 16, 16)
    expected = oracle("seg_image_ct_binary.dcm").get_volume(combine_segments=True)
    np.testing.assert_allclose(vol.affine, expected.affine, atol=1e-5)
    # and independently of highdicom: 0.488281 mm pixels, 1.25 mm between the 3 stored slices
    np.testing.assert_allclose(np.linalg.norm(vol.affine[:3, :3], axis=0), [1.25, 0.488281, 0.488281],
                               atol=1e-5)
