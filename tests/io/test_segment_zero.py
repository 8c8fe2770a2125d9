"""LABELMAP SEGs that declare a segment 0 "Background" (dcmqi): every accessor and mode agree.

Rule (Supplement 243 Label Map Segmentation; PS3.3 C.7.5.1.1.2): the background
of a LABELMAP SEG is the pixel value given by PixelPaddingValue, and always 0;
a segment declared with that number is the background, not a segment. It is
left out of ``Segmentation.segment_numbers`` and therefore of ``get_volume``,
``get_pixels_by_source_instance``, ``LoadDicomSeg`` in both modes,
``DicomSegReader`` and the metadata (segment table, channel map). dcmqi >= 1.5.5
writes segment 0 with PixelPaddingValue 0; older dcmqi wrote it without
PixelPaddingValue (simulated here by deleting the attribute).
"""
from __future__ import annotations

import json
import subprocess

import nibabel
import numpy as np
import pydicom
import pytest
from monai.transforms import LoadImage

import monai_dicomseg as mds
from monai_dicomseg.errors import InputError
from monai_cases import ORGAN_CODES, ORGANS, generation_affine, make_case, truth_on_grid
from oracles import find_tool

pytestmark = pytest.mark.dcmqi

SHAPE = (8, 16, 16)


def _attribute(label_id: int, name: str, code: tuple[str, str]) -> dict:
    return {"labelID": label_id, "SegmentDescription": name, "SegmentLabel": name, "SegmentAlgorithmType": "MANUAL",
            "SegmentedPropertyCategoryCodeSequence": {"CodeValue": "91772007", "CodingSchemeDesignator": "SCT",
                                                      "CodeMeaning": "Organ"},
            "SegmentedPropertyTypeCodeSequence": {"CodeValue": code[0], "CodingSchemeDesignator": "SCT",
                                                  "CodeMeaning": code[1]},
            "recommendedDisplayRGBValue": [200, 100, 50]}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    tool = find_tool("itkimage2segimage")
    if tool is None:
        pytest.skip("itkimage2segimage not found (pip install dcmqi)")
    folder = tmp_path_factory.mktemp("segment_zero")
    case = make_case(folder, shape=SHAPE)
    lps = generation_affine(case.datasets)[:, [2, 1, 0, 3]]
    nifti = folder / "labels.nii.gz"
    nibabel.save(nibabel.Nifti1Image(np.ascontiguousarray(case.labels.transpose(2, 1, 0)).astype(np.uint8),
                                     np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps), nifti)
    attributes = [_attribute(0, "Background", ("91772007", "Organ"))] + [
        _attribute(i + 1, ORGANS[i], (ORGAN_CODES[i].value, ORGAN_CODES[i].meaning)) for i in range(3)]
    meta = {"ContentCreatorName": "test", "ClinicalTrialSeriesID": "1", "ClinicalTrialTimePointID": "1",
            "SeriesDescription": "dcmqi labelmap", "SeriesNumber": "300", "InstanceNumber": "1",
            "segmentAttributes": [attributes], "ContentLabel": "SEG", "ContentDescription": "dcmqi",
            "ClinicalTrialCoordinatingCenterName": "test", "BodyPartExamined": ""}
    (folder / "meta.json").write_text(json.dumps(meta))
    paths = {}
    for name, extra in [("dcmqi", []), ("dcmqi_label_ids", ["--useLabelIDAsSegmentNumber"])]:
        out = folder / f"{name}.dcm"
        result = subprocess.run(
            [str(tool), "--inputImageList", str(nifti), "--inputDICOMDirectory", str(case.series_folder),
             "--outputDICOM", str(out), "--inputMetadata", str(folder / "meta.json"),
             "--segmentationType", "labelmap", *extra],
            capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and out.exists(), result.stdout[-2000:] + result.stderr[-2000:]
        paths[name] = out
    # older dcmqi: the Background segment 0 without PixelPaddingValue
    old = pydicom.dcmread(paths["dcmqi"])
    del old.PixelPaddingValue
    paths["no_padding"] = folder / "no_padding.dcm"
    old.save_as(paths["no_padding"])
    image = mds.LoadDicomSeries()(str(case.series_folder))
    truth = truth_on_grid(case.labels, case.datasets, np.asarray(image.affine), tuple(image.shape[1:]))
    return case, paths, image, truth


VARIANTS = ["dcmqi", "dcmqi_label_ids", "no_padding"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_declares_segment_zero(written, variant):
    _, paths, _, _ = written
    ds = pydicom.dcmread(paths[variant], stop_before_pixels=True)
    assert ds.SegmentationType == "LABELMAP"
    assert [int(item.SegmentNumber) for item in ds.SegmentSequence] == [0, 1, 2, 3]
    assert ds.SegmentSequence[0].SegmentLabel == "Background"
    assert ("PixelPaddingValue" in ds) == (variant != "no_padding")


@pytest.mark.parametrize("variant", VARIANTS)
def test_seg_accessors_agree(written, variant):
    case, paths, _, _ = written
    seg = mds.seg.segread(paths[variant])
    assert list(seg.segment_numbers) == [1, 2, 3] and seg.number_of_segments == 3
    volume = seg.get_volume()
    assert volume.array.shape[-1] == 3
    assert volume.get_channel_values("SegmentNumber") == [1, 2, 3]
    combined = seg.get_volume(combine_segments=True)
    for channel, number in enumerate([1, 2, 3]):
        np.testing.assert_array_equal(volume.array[..., channel], combined.array == number)
    assert int(volume.array.sum()) == int(np.count_nonzero(case.labels))
    uids = [(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID) for ds in case.datasets]
    by_instance = seg.get_pixels_by_source_instance([u[2] for u in uids], ignore_spatial_locations=True,
                                                  assert_missing_frames_are_empty=True)
    assert by_instance.shape[-1] == 3
    np.testing.assert_array_equal(by_instance.sum(axis=(0, 1, 2)), volume.array.sum(axis=(0, 1, 2)))
    with pytest.raises(InputError, match=r"segment_numbers contains \[0\]"):
        seg.get_volume(segment_numbers=[0, 1])


@pytest.mark.parametrize("variant", VARIANTS)
def test_loaders_agree(written, variant):
    _, paths, image, truth = written
    path = str(paths[variant])
    stacked = mds.LoadDicomSeg(mode="stacked")(path, image)
    parsed = mds.segments_from_meta(stacked.meta)
    assert stacked.shape[0] == 3
    assert parsed["channel_segments"] == [[1], [2], [3]] and parsed["channel_values"] == [1, 2, 3]
    assert [row["number"] for row in parsed["segments"]] == [1, 2, 3]
    assert [row["label"] for row in parsed["segments"]] == ORGANS
    for channel in range(3):  # no empty channel: each channel holds its segment's voxels
        np.testing.assert_array_equal(np.asarray(stacked[channel]), truth == channel + 1)
    labelmap = mds.LoadDicomSeg()(path, image)
    np.testing.assert_array_equal(np.asarray(labelmap[0]), truth)
    assert mds.segments_from_meta(labelmap.meta)["channel_values"] == [0, 1, 2, 3]
    assert mds.segments_from_meta(labelmap.meta)["channel_segments"] == [[1, 2, 3]]
    read = LoadImage(reader=mds.DicomSegReader(mode="stacked"), image_only=True)(path)
    assert read.shape[0] == 3 and mds.segments_from_meta(read.meta)["channel_segments"] == [[1], [2], [3]]
    with pytest.raises(InputError, match="segment_numbers: 0 is not a segment"):
        mds.LoadDicomSeg(segment_numbers=[0])(path)
    by_label = mds.LoadDicomSeg(mode="stacked", label_map={"Background": 1, "liver": 2})(path, image)
    assert not by_label[0].any()  # the background is not a segment, even when named in a label_map
    np.testing.assert_array_equal(np.asarray(by_label[1]), truth == 1)
