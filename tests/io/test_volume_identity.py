"""A SEG of one volume never lands on another volume of the same series with the identical grid (issue 24).

The image's meta names the frames it was built from (``meta["source_frames"]``,
:func:`~monai_dicomseg.io.source_volumes.frames_key`); ``LoadDicomSegd(ref_key=...)``
refuses a SEG whose references are not among them. Both sides of the rule: a
SEG of the loaded phase (all or some of its frames) loads; a SEG of the other
phase (single-frame series, one multi-frame instance) is a GeometryError.
"""
from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

import highdicom as hd
from archive_cases import liver_seg as _seg
from archive_cases import write_two_phase_series
from monai_dicomseg.errors import GeometryError
from monai_dicomseg.io.source_series import from_monai_array, load_source_series
from monai_dicomseg.io.source_volumes import frames_key, frames_outside
from monai_dicomseg.synthetic import make_ellipsoid_labels, make_enhanced_ct
from monai_dicomseg.transforms.load import LoadDicomSegd
from monai_dicomseg.transforms.load_series import LoadDicomSeriesd

SHAPE = (6, 20, 24)
PHASE = "TemporalPositionIndex"


def _two_phase_instance() -> pydicom.Dataset:
    """One Enhanced CT instance: frames 1-6 phase 1, frames 7-12 phase 2 at the same positions."""
    one = make_enhanced_ct(SHAPE, labels=make_ellipsoid_labels(SHAPE, 3, 0))
    two = make_enhanced_ct(SHAPE, labels=make_ellipsoid_labels(SHAPE, 3, 1))
    items = list(one.PerFrameFunctionalGroupsSequence) + list(two.PerFrameFunctionalGroupsSequence)
    for k, item in enumerate(items):
        item.FrameContentSequence[0].TemporalPositionIndex = 1 + k // SHAPE[0]
    one.PerFrameFunctionalGroupsSequence = pydicom.Sequence(items)
    one.NumberOfFrames = len(items)
    one.PixelData = one.PixelData + two.PixelData
    return one





def _seg_ours(kwargs: dict, mask: np.ndarray):
    from monai_dicomseg import segment_descriptions_from_names
    from monai_dicomseg.seg.segmentation import Segmentation

    return Segmentation(**kwargs, pixel_array=mask, segmentation_type="BINARY",
                        segment_descriptions=segment_descriptions_from_names(["liver"]),
                        series_instance_uid=hd.UID(), series_number=2, sop_instance_uid=hd.UID(),
                        instance_number=1, manufacturer="t", manufacturer_model_name="t",
                        software_versions="1", device_serial_number="1")


def test_frames_key_is_compact_and_exact():
    references = [("1.2.3", None), ("1.2.4", None)] + [("1.2.9", k) for k in (1, 2, 3, 7, 9, 10)]
    key = frames_key(references)
    assert len(key) < 60 and ":1-3+7+9-10" in key and key.count(",") == 2
    assert frames_outside(key, references) == []
    assert frames_outside(key, [("1.2.3", 1)]) == []  # frame 1 of a single-frame image is the image
    assert frames_outside(key, [("1.2.3", 2), ("1.2.9", 8), ("1.2.9", None), ("1.2.5", None)]) == [
        ("1.2.3", 2), ("1.2.5", None), ("1.2.9", 8)]
    series = [("1.2.826.0.1.3680043.8.498." + "1" * 30 + f".{k}", None) for k in range(300)]
    assert len(frames_key(series)) == 300 * 9 - 1  # 9 characters an image, not a UID


def _pair(folder, seg, selector: dict) -> dict:
    seg_path = folder.parent / "seg.dcm"
    seg.save_as(seg_path, enforce_file_format=True)
    image = LoadDicomSeriesd("image", volume=selector)({"image": str(folder)})
    return LoadDicomSegd("label", ref_key="image")({**image, "label": str(seg_path)})


def test_single_frame_phases_seg_of_the_other_phase_is_refused(tmp_path):
    folder = tmp_path / "case" / "series"
    first, second = write_two_phase_series(folder, SHAPE)
    phase2 = load_source_series(second)
    mask = (make_ellipsoid_labels(SHAPE, 3, 1) == 1).astype(np.uint8)
    seg = _seg(phase2.datasets, mask)
    out = _pair(folder, seg, {PHASE: 2})
    np.testing.assert_array_equal(from_monai_array(np.asarray(out["label"][0])), mask)
    assert isinstance(out["image"].meta["source_frames"], str) and len(out["image"].meta["source_frames"]) < 60
    with pytest.raises(GeometryError, match=r"the SEG references 6 source image\(s\)/frame\(s\) the reference "
                       r"image was not loaded from .*the image is volume \{\"TemporalPositionIndex\": 1\} of its "
                       r"series, the SEG is on volume \{\"TemporalPositionIndex\": 2\}.*volume="):
        _pair(folder, seg, {PHASE: 1})


def test_single_volume_series_needs_no_key(tmp_path):
    folder = tmp_path / "case" / "series"
    first, _ = write_two_phase_series(folder, SHAPE)
    image = LoadDicomSeriesd("image")({"image": [str(folder / f"{ds.SOPInstanceUID}.dcm") for ds in first]})
    assert image["image"].meta["source_frames"] == "" and image["image"].meta["source_volumes"] == 1


@pytest.mark.parametrize("frames", ["all", "some"])
def test_multiframe_phases_frames_of_its_own_phase_load(tmp_path, frames):
    instance = _two_phase_instance()
    folder = tmp_path / "case" / "series"
    folder.mkdir(parents=True)
    instance.save_as(folder / "enhanced.dcm", enforce_file_format=True)
    phase2 = load_source_series([instance], volume={PHASE: 2})
    mask = (make_ellipsoid_labels(SHAPE, 3, 1) == 1).astype(np.uint8)
    if frames == "some":  # content in two frames only: per-frame references to 2 of phase 2's frames
        mask[[0, 1, 2, 5]] = 0
        mask[3:5, 8:12, 8:12] = 1
    else:  # content in every frame
        mask[:, 2:4, 2:4] = 1
    seg = _seg_ours(phase2.segmentation_sources(), mask)
    per_frame = [[int(source.ReferencedFrameNumber) for source in item.DerivationImageSequence[0].SourceImageSequence]
                 for item in seg.PerFrameFunctionalGroupsSequence]
    assert all(len(refs) == 1 for refs in per_frame)  # its own phase's frame only, not both at that position
    referenced = {refs[0] for refs in per_frame}
    assert referenced <= set(range(7, 13)) and len(referenced) == (2 if frames == "some" else 6)
    out = _pair(folder, seg, {PHASE: 2})
    np.testing.assert_array_equal(from_monai_array(np.asarray(out["label"][0])), mask)
    assert out["image"].meta["source_frames"].endswith(":7-12")
    with pytest.raises(GeometryError, match=r"frame\(s\) the reference image was not loaded from \(e\.g\. "
                       r"SOPInstanceUID .* frame \d+\): the image is volume \{\"TemporalPositionIndex\": 1\} of its "
                       r"series, the SEG is on volume \{\"TemporalPositionIndex\": 2\}"):
        _pair(folder, seg, {PHASE: 1})


def test_source_frames_collate(tmp_path):
    from monai.data import list_data_collate

    folder = tmp_path / "case" / "series"
    write_two_phase_series(folder, SHAPE)
    items = [LoadDicomSeriesd("image", volume={PHASE: p})({"image": str(folder)}) for p in (1, 2)]
    batch = list_data_collate(items)
    keys = batch["image"].meta["source_frames"]
    assert len(keys) == 2 and keys[0] != keys[1] and all(isinstance(k, str) for k in keys)
    assert [json.loads(v) for v in batch["image"].meta["source_volume"]] == [{PHASE: 1}, {PHASE: 2}]


def test_writer_on_one_phase_of_a_multiframe_instance_references_its_own_frames(tmp_path):
    from oracles import dciodvfy_errors

    from monai_dicomseg.io.source_series import to_monai_array
    from monai_dicomseg.io.writer import DicomSegWriter
    from monai_dicomseg.transforms.load_series import LoadDicomSeries

    instance = _two_phase_instance()
    path = tmp_path / "enhanced.dcm"
    instance.save_as(path, enforce_file_format=True)
    image = LoadDicomSeries(volume={PHASE: 2})(str(path))
    truth = make_ellipsoid_labels(SHAPE, 2, 4)
    writer = DicomSegWriter(labels=["liver", "spleen"], segmentation_type="BINARY")
    writer.set_data_array(to_monai_array(truth)[None].astype(np.uint8), channel_dim=0)
    writer.set_metadata(dict(image.meta, affine=image.affine))
    out = writer.write(tmp_path / "out" / "seg.dcm")
    read = hd.seg.segread(out)
    for item in read.PerFrameFunctionalGroupsSequence:
        (source,) = item.DerivationImageSequence[0].SourceImageSequence
        assert 7 <= int(source.ReferencedFrameNumber) <= 12
    frames = [frame for _, frame in load_source_series([instance], volume={PHASE: 2}).frame_references]
    pixels = read.get_pixels_by_source_frame(
        source_sop_instance_uid=str(instance.SOPInstanceUID), source_frame_numbers=frames,
        combine_segments=True, assert_missing_frames_are_empty=True)
    np.testing.assert_array_equal(pixels, truth)
    assert dciodvfy_errors(out) == []
    label = LoadDicomSegd("label", ref_key="image")({"image": image, "label": str(out)})["label"]
    np.testing.assert_array_equal(from_monai_array(np.asarray(label[0])), truth)
