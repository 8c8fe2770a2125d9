"""Several volumes in one series or instance: detected, listed, selected (volume=), chosen by a SEG's references."""
from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

import highdicom as hd
from archive_cases import liver_seg as _seg
from archive_cases import two_phase_datasets
from monai_dicomseg.data.datalist import create_datalist
from monai_dicomseg.errors import GeometryError, InputError, InputTypeError
from monai_dicomseg.io.source_series import from_monai_array, load_source_geometry, load_source_series
from monai_dicomseg.io.source_volumes import seg_frame_references, selector_for_seg
from monai_dicomseg.synthetic import make_ellipsoid_labels, make_enhanced_ct
from monai_dicomseg.transforms.load import LoadDicomSegd
from monai_dicomseg.transforms.load_series import LoadDicomSeries, LoadDicomSeriesd

SHAPE = (6, 20, 24)


def _two_phases() -> tuple[list, list, list]:
    """One series, two temporal positions at the same slice positions, different pixels."""
    first, second = two_phase_datasets(SHAPE)
    return first, second, first + second


def _two_stacks() -> pydicom.Dataset:
    """One Enhanced CT instance: 6 frames of stack '1', then 4 frames of stack '2' 100 mm further."""
    one = make_enhanced_ct(SHAPE, labels=make_ellipsoid_labels(SHAPE, 3, 0))
    shape2 = (4, *SHAPE[1:])
    two = make_enhanced_ct(shape2, labels=make_ellipsoid_labels(shape2, 3, 1), origin=(0.0, 0.0, 100.0))
    items = list(one.PerFrameFunctionalGroupsSequence) + list(two.PerFrameFunctionalGroupsSequence)
    for k, item in enumerate(items[SHAPE[0]:]):
        item.FrameContentSequence[0].StackID = "2"
        item.FrameContentSequence[0].InStackPositionNumber = k + 1
    one.PerFrameFunctionalGroupsSequence = pydicom.Sequence(items)
    one.NumberOfFrames = len(items)
    one.PixelData = one.PixelData + two.PixelData
    return one


def test_two_phases_without_selector_list_the_volumes():
    _, _, both = _two_phases()
    with pytest.raises(GeometryError, match=r"series of 12 instances in 2 volumes \(told apart by "
                       r"TemporalPositionIndex: TemporalPositionIndex 1: 6 frames; TemporalPositionIndex 2: 6 "
                       r"frames\): pass volume=\{'TemporalPositionIndex': 1\}"):
        load_source_series(both)


@pytest.mark.parametrize("selector", [{"TemporalPositionIndex": 2}, {"TemporalPositionIndex": "2"}, 1, '{"TemporalPositionIndex": 2}'])
def test_two_phases_selected(selector):
    _, second, both = _two_phases()
    expected = load_source_series(second)
    if isinstance(selector, str):
        image = LoadDicomSeries(volume=selector)(both)
        np.testing.assert_array_equal(from_monai_array(np.asarray(image[0])), expected.volume.array)
        assert json.loads(image.meta["source_volume"]) == {"TemporalPositionIndex": 2}
        assert image.meta["source_volumes"] == 2
        return
    loaded = load_source_series(both, volume=selector)
    np.testing.assert_array_equal(loaded.volume.array, expected.volume.array)
    assert [uid for uid, _ in loaded.frame_references] == [str(ds.SOPInstanceUID) for ds in expected.datasets]
    assert load_source_geometry(both, volume=selector).datasets == expected.datasets


def test_phase_of_one_volume_series_is_not_split():
    """TemporalPositionIndex differing where no positions coincide does not split a volume (boundary)."""
    first, _, _ = _two_phases()
    for k, ds in enumerate(first):
        ds.TemporalPositionIndex = k + 1
    loaded = load_source_series(first)
    assert len(loaded.volumes) == 1 and loaded.volume_selector == ""


@pytest.mark.parametrize("selector, error, match", [
    ({"TemporalPositionIndex": 3}, InputError, r"matches none of the series of 12 instances in 2 volumes"),
    (2, InputError, r"volume=2 is out of range: .* valid indices are 0\.\.1"),
    ({"Phase": 1}, InputError, r"volume keys must be among \['ImageOrientationPatient', 'StackID'"),
    (True, InputTypeError, r"volume must be None, an int index or a mapping"),
    ({"AcquisitionNumber": 1}, GeometryError, r"matches 2 volumes"),
])
def test_bad_selectors(selector, error, match):
    _, _, both = _two_phases()
    with pytest.raises(error, match=match):
        load_source_series(both, volume=selector)


def test_two_stacks_in_one_instance():
    ds = _two_stacks()
    with pytest.raises(GeometryError, match=r"multi-frame instance with 10 frames in 2 stacks \(told apart by StackID: "
                       r"StackID 1: 6 frames; StackID 2: 4 frames\): pass volume=\{'StackID': '1'\}"):
        load_source_series([ds])
    stack = load_source_series([ds], volume={"StackID": "2"})
    assert stack.volume.array.shape == (4, *SHAPE[1:])
    assert sorted(frame for _, frame in stack.frame_references) == [7, 8, 9, 10]
    alone = make_enhanced_ct((4, *SHAPE[1:]), labels=make_ellipsoid_labels((4, *SHAPE[1:]), 3, 1),
                             origin=(0.0, 0.0, 100.0))
    np.testing.assert_array_equal(stack.volume.array, load_source_series([alone]).volume.array)
    assert load_source_series([ds], volume=0).volume.array.shape == SHAPE





def test_seg_on_one_phase_selects_its_volume(tmp_path):
    _, second, both = _two_phases()
    folder = tmp_path / "case" / "series"
    folder.mkdir(parents=True)
    for ds in both:
        ds.save_as(folder / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
    phase = load_source_series(second)
    mask = (make_ellipsoid_labels(SHAPE, 3, 1) == 1).astype(np.uint8)
    seg = _seg(phase.datasets, mask)
    seg_path = tmp_path / "case" / "seg.dcm"
    seg.save_as(seg_path, enforce_file_format=True)
    assert load_source_series(both, volume=seg_frame_references(seg)).datasets == phase.datasets
    assert selector_for_seg(str(seg_path), [str(p) for p in sorted(folder.iterdir())]) == \
        '{"TemporalPositionIndex": 2}'
    datalist = create_datalist(tmp_path)
    assert len(datalist) == 1 and datalist[0]["volume"] == '{"TemporalPositionIndex": 2}'
    out = LoadDicomSegd("label", ref_key="image")(LoadDicomSeriesd("image")(datalist[0]))
    np.testing.assert_array_equal(from_monai_array(np.asarray(out["image"][0])), phase.volume.array)
    np.testing.assert_array_equal(from_monai_array(np.asarray(out["label"][0])), mask)
    from monai_dicomseg.io.reader import DicomSegReader

    reader = DicomSegReader()
    label, meta = reader.get_data(reader.read(str(seg_path)))
    assert np.asarray(label).sum() == mask.sum()


def test_seg_on_one_stack_selects_its_volume():
    ds = _two_stacks()
    stack = load_source_series([ds], volume={"StackID": "2"})
    from monai_dicomseg.seg.segmentation import Segmentation
    from monai_dicomseg.seg.content import SegmentDescription  # noqa: F401

    kwargs = stack.segmentation_sources()
    assert set(kwargs) >= {"source_images", "plane_positions"}
    mask = np.zeros(stack.volume.array.shape, dtype=np.uint8)
    mask[1:3, 5:9, 6:10] = 1
    seg = _seg_ours(Segmentation, kwargs, mask)
    references = seg_frame_references(seg)
    assert {frame for _, frame in references if frame is not None} <= {7, 8, 9, 10}
    assert load_source_series([ds], volume=references).volume_selector == '{"StackID": "2"}'


def _seg_ours(segmentation, kwargs, mask):
    from monai_dicomseg import segment_descriptions_from_names

    return segmentation(**kwargs, pixel_array=mask, segmentation_type="BINARY",
                        segment_descriptions=segment_descriptions_from_names(["liver"]),
                        series_instance_uid=hd.UID(), series_number=2, sop_instance_uid=hd.UID(),
                        instance_number=1, manufacturer="t", manufacturer_model_name="t",
                        software_versions="1", device_serial_number="1")


def test_seg_referencing_both_phases_is_ambiguous():
    first, second, both = _two_phases()
    from monai_dicomseg.io.source_volumes import FrameReferences

    references = FrameReferences({(str(first[0].SOPInstanceUID), None), (str(second[0].SOPInstanceUID), None)})
    with pytest.raises(GeometryError, match=r"the SEG references frames of 2 volumes of the source series"):
        load_source_series(both, volume=references)
