"""Our writer → our reader, in memory and through bytes (property-based).

highdicom is the independent oracle elsewhere; here the point is that a
Segmentation built in memory already answers every read accessor, and that
``segread`` of its bytes gives the same arrays.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.sr.codedict import codes

import monai_dicomseg as hd
from monai_dicomseg.synthetic import make_ct_series


def _descriptions(count: int):
    return [hd.seg.SegmentDescription(
        segment_number=n, segment_label=f"s{n}", segmented_property_category=codes.SCT.Organ,
        segmented_property_type=codes.SCT.Liver, algorithm_type="MANUAL") for n in range(1, count + 1)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frames=st.integers(1, 5), rows=st.integers(1, 13), columns=st.integers(1, 11),
    segments=st.integers(1, 6), seg_type=st.sampled_from(["BINARY", "FRACTIONAL", "LABELMAP"]),
    omit=st.booleans(), seed=st.integers(0, 10_000),
)
def test_in_memory_and_bytes_agree(frames, rows, columns, segments, seg_type, omit, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, segments + 1, (frames, rows, columns)).astype(np.uint8)
    labels[rng.random(frames) < 0.4] = 0  # some empty planes
    series = make_ct_series(shape=(frames, rows, columns), labels=labels)
    seg = hd.seg.Segmentation(
        source_images=series, pixel_array=labels, segmentation_type=seg_type,
        segment_descriptions=_descriptions(segments), series_instance_uid=hd.UID(), series_number=1,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="x", manufacturer_model_name="x",
        software_versions="0", device_serial_number="0", omit_empty_frames=omit)
    uids = [str(ds.SOPInstanceUID) for ds in series]
    buffer = io.BytesIO()
    seg.save_as(buffer)
    buffer.seek(0)
    reread = hd.seg.segread(buffer)
    for segmentation in (seg, reread):
        assert segmentation.number_of_segments == segments
        combined = segmentation.get_pixels_by_source_instance(
            uids, combine_segments=True, assert_missing_frames_are_empty=True)
        np.testing.assert_array_equal(combined, labels)
        stacked = segmentation.get_pixels_by_source_instance(
            uids, assert_missing_frames_are_empty=True, rescale_fractional=False)
        scale = 255 if seg_type == "FRACTIONAL" else 1
        for number in range(1, segments + 1):
            np.testing.assert_array_equal(stacked[..., number - 1], (labels == number) * scale)
        volume = segmentation.get_volume(combine_segments=True)
        assert volume.spatial_shape[1:] == (rows, columns)


@pytest.mark.parametrize("seg_type", ["BINARY", "FRACTIONAL", "LABELMAP"])
def test_segment_metadata_in_memory(seg_type):
    series = make_ct_series(shape=(2, 8, 8))
    seg = hd.seg.Segmentation(
        source_images=series, pixel_array=np.ones((2, 8, 8), np.uint8), segmentation_type=seg_type,
        segment_descriptions=_descriptions(1), series_instance_uid=hd.UID(), series_number=1,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="x", manufacturer_model_name="x",
        software_versions="0", device_serial_number="0")
    assert seg.segmentation_type.value == seg_type
    assert seg.get_segment_description(1).segmented_property_type == codes.SCT.Liver
    assert seg.get_segment_numbers(segment_label="s1") == [1]
    assert [uid[2] for uid in seg.get_source_image_uids()] == [str(ds.SOPInstanceUID) for ds in series]


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.90"],
                         ids=["native", "jpeg2000"])
def test_combining_overlapping_binary_segments(syntax):
    """Overlap is refused, or resolved to the highest segment, for native and compressed frames."""
    series = make_ct_series(shape=(2, 32, 32))
    stacked = np.zeros((2, 32, 32, 3), np.uint8)
    stacked[:, 2:20, 2:20, 0] = 1
    stacked[:, 10:30, 10:30, 2] = 1  # overlaps segment 1
    stacked[1, 0:3, 25:31, 1] = 1
    seg = hd.seg.Segmentation(
        source_images=series, pixel_array=stacked, segmentation_type="BINARY",
        segment_descriptions=_descriptions(3), series_instance_uid=hd.UID(), series_number=1,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="x", manufacturer_model_name="x",
        software_versions="0", device_serial_number="0", transfer_syntax_uid=syntax)
    buffer = io.BytesIO()
    seg.save_as(buffer)
    buffer.seek(0)
    reread = hd.seg.segread(buffer)
    uids = [str(ds.SOPInstanceUID) for ds in series]
    with pytest.raises(hd.errors.OverlapError, match="overlap"):
        reread.get_pixels_by_source_instance(uids, combine_segments=True)
    combined = reread.get_pixels_by_source_instance(uids, combine_segments=True, skip_overlap_checks=True)
    expected = np.zeros((2, 32, 32), np.uint8)
    for number in (1, 2, 3):
        expected[stacked[..., number - 1] == 1] = number
    np.testing.assert_array_equal(combined, expected)


@pytest.mark.parametrize("charset, encodings", [("ISO_IR 100", ["latin_1"]), ("ISO_IR 192", ["UTF8"]), (None, None)])
def test_specific_character_set_is_the_original_encoding(charset, encodings):
    """The encoder records the SEG's SpecificCharacterSet as pydicom's original encoding (public API only)."""
    import pydicom

    series = make_ct_series(shape=(2, 8, 8))
    for ds in series:
        if charset is None:
            del ds.SpecificCharacterSet
        else:
            ds.SpecificCharacterSet = charset
    description = _descriptions(1)[0]
    description.SegmentLabel = "Läsion"
    seg = hd.seg.Segmentation(
        source_images=series, pixel_array=np.ones((2, 8, 8), np.uint8), segmentation_type="BINARY",
        segment_descriptions=[description], series_instance_uid=hd.UID(), series_number=1,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="x", manufacturer_model_name="x",
        software_versions="0", device_serial_number="0")
    written = seg.get("SpecificCharacterSet")
    expected = pydicom.charset.convert_encodings(written) if written else pydicom.charset.default_encoding
    if encodings is not None:
        assert expected == encodings
    assert seg.original_character_set == expected
    buffer = io.BytesIO()
    seg.save_as(buffer)
    buffer.seek(0)
    assert pydicom.dcmread(buffer).SegmentSequence[0].SegmentLabel == "Läsion"
