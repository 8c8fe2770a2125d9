"""``from-nifti``: NIfTI + series (+ dcmqi JSON) -> SEG, read back by highdicom and checked by dciodvfy."""
from __future__ import annotations

import json

import nibabel
import numpy as np
import pytest

from oracles import dciodvfy_errors, highdicom_pixels, one_hot

#: dcmqi metadata with non-consecutive labelIDs (voxel values 2, 5, 7)
DCMQI_META = {
    "ContentCreatorName": "Reader1",
    "SeriesDescription": "Organs from a model",
    "SeriesNumber": "300",
    "InstanceNumber": "1",
    "ContentLabel": "organs",
    "ContentDescription": "Image segmentation",
    "segmentAttributes": [[
        {"labelID": 2, "SegmentLabel": "Liver", "SegmentAlgorithmType": "AUTOMATIC",
         "SegmentAlgorithmName": "nnU-Net",
         "SegmentedPropertyCategoryCodeSequence": {"CodeValue": "123037004", "CodingSchemeDesignator": "SCT",
                                                   "CodeMeaning": "Anatomical Structure"},
         "SegmentedPropertyTypeCodeSequence": {"CodeValue": "10200004", "CodingSchemeDesignator": "SCT",
                                               "CodeMeaning": "Liver"},
         "recommendedDisplayRGBValue": [221, 130, 101]},
        {"labelID": 5, "SegmentLabel": "Left kidney", "SegmentAlgorithmType": "MANUAL",
         "SegmentedPropertyCategoryCodeSequence": {"CodeValue": "123037004", "CodingSchemeDesignator": "SCT",
                                                   "CodeMeaning": "Anatomical Structure"},
         "SegmentedPropertyTypeCodeSequence": {"CodeValue": "64033007", "CodingSchemeDesignator": "SCT",
                                               "CodeMeaning": "Kidney"},
         "SegmentedPropertyTypeModifierCodeSequence": {"CodeValue": "7771000", "CodingSchemeDesignator": "SCT",
                                                       "CodeMeaning": "Left"},
         "recommendedDisplayRGBValue": [185, 102, 83]},
        {"labelID": 7, "SegmentLabel": "Tumor", "SegmentAlgorithmType": "SEMIAUTOMATIC",
         "SegmentAlgorithmName": "Slicer",
         "SegmentedPropertyCategoryCodeSequence": {"CodeValue": "49755003", "CodingSchemeDesignator": "SCT",
                                                   "CodeMeaning": "Morphologically Altered Structure"},
         "SegmentedPropertyTypeCodeSequence": {"CodeValue": "4147007", "CodingSchemeDesignator": "SCT",
                                               "CodeMeaning": "Mass"},
         "recommendedDisplayRGBValue": [255, 0, 0]},
    ]],
}


@pytest.mark.dciodvfy
@pytest.mark.highdicom
@pytest.mark.parametrize("segmentation_type", ["BINARY", "LABELMAP"], ids=["binary", "labelmap"])
def test_dcmqi_json_read_back_exactly(axial_case, cli, tmp_path, segmentation_type):
    import highdicom

    values = np.array([0, 2, 5, 7], dtype=np.uint8)
    case = axial_case
    labels_path = tmp_path / "labels.nii.gz"
    original = case.truth
    case.truth = values[original]  # voxel values are the labelIDs
    case.nifti(labels_path)
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps(DCMQI_META))
    out = tmp_path / "seg.dcm"
    status, stdout, stderr = cli("from-nifti", labels_path, case.folder, out, "--metadata", meta,
                                 "--type", segmentation_type)
    assert status == 0, stderr
    pixels = highdicom_pixels(str(out), case.datasets)
    np.testing.assert_array_equal(pixels.astype(bool), one_hot(original, 3))
    seg = highdicom.seg.segread(str(out))
    assert seg.SeriesDescription == "Organs from a model"
    assert seg.ContentLabel == "ORGANS"
    for number, attributes in enumerate(DCMQI_META["segmentAttributes"][0], start=1):
        description = seg.get_segment_description(number)
        assert description.segment_label == attributes["SegmentLabel"]
        assert description.segmented_property_type.value == attributes["SegmentedPropertyTypeCodeSequence"]["CodeValue"]
        assert (description.segmented_property_category.value
                == attributes["SegmentedPropertyCategoryCodeSequence"]["CodeValue"])
        assert description.algorithm_type.value == attributes["SegmentAlgorithmType"]
        stored = highdicom.color.CIELabColor.from_dicom_value(description.RecommendedDisplayCIELabValue)
        np.testing.assert_allclose(stored.to_rgb(), attributes["recommendedDisplayRGBValue"], atol=1)
    modifier = seg.get_segment_description(2).SegmentedPropertyTypeCodeSequence[0]
    assert modifier.SegmentedPropertyTypeModifierCodeSequence[0].CodeValue == "7771000"
    assert dciodvfy_errors(out) == []


@pytest.mark.highdicom
@pytest.mark.parametrize("layout", ["itk", "frc"], ids=["itk-order", "frame-row-column-order"])
def test_names_table_and_nifti_layouts(axial_case, cli, tmp_path, layout):
    import highdicom

    labels_path = axial_case.nifti(tmp_path / "labels.nii.gz", layout=layout)
    out = tmp_path / "seg.dcm"
    status, _, stderr = cli("from-nifti", labels_path, axial_case.folder, out,
                            "--labels", "liver,spleen,kidney_left")
    assert status == 0, stderr
    np.testing.assert_array_equal(highdicom_pixels(str(out), axial_case.datasets).astype(bool),
                                  one_hot(axial_case.truth, 3))
    seg = highdicom.seg.segread(str(out))
    assert [seg.get_segment_description(n).segmented_property_type.meaning for n in (1, 2, 3)] == \
        ["Liver", "Spleen", "Kidney"]


@pytest.mark.highdicom
def test_resampled_from_finer_grid(axial_case, cli, tmp_path):
    """A NIfTI on a 3x finer grid (each voxel a 3x3x3 block) maps back exactly by nearest neighbour."""
    truth = axial_case.truth
    fine = truth.repeat(3, 0).repeat(3, 1).repeat(3, 2)
    scale = np.diag([1 / 3, 1 / 3, 1 / 3, 1.0])
    shift = np.eye(4)
    shift[:3, 3] = -1.0  # fine voxel 1 (centre of each block) sits on the coarse voxel centre
    affine = axial_case.affine @ scale @ shift
    labels_path = tmp_path / "fine.nii.gz"
    nibabel.save(nibabel.Nifti1Image(fine, np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine), str(labels_path))
    out = tmp_path / "seg.dcm"
    status, stdout, stderr = cli("from-nifti", labels_path, axial_case.folder, out)
    assert status == 0, stderr
    assert "resampled" in stdout
    np.testing.assert_array_equal(highdicom_pixels(str(out), axial_case.datasets).astype(bool),
                                  one_hot(truth, 3))


def test_fractional_round_trip(axial_case, cli, tmp_path):
    rng = np.random.default_rng(0)
    probabilities = rng.random(axial_case.truth.shape).astype(np.float32) * (axial_case.truth > 0)
    case = axial_case
    labels_path = tmp_path / "prob.nii.gz"
    from monai_dicomseg.io.source_series import monai_affine_from_lps, to_monai_array

    nibabel.save(nibabel.Nifti1Image(np.asfortranarray(to_monai_array(probabilities)),
                                     monai_affine_from_lps(case.affine, probabilities.shape[0])), str(labels_path))
    out = tmp_path / "seg.dcm"
    status, _, stderr = cli("from-nifti", labels_path, case.folder, out, "--type", "FRACTIONAL",
                            "--labels", "liver")
    assert status == 0, stderr
    back = tmp_path / "back.nii.gz"
    status, _, stderr = cli("to-nifti", out, back, "--source", case.folder)
    assert status == 0, stderr
    image = nibabel.load(str(back))
    assert image.get_data_dtype() == np.float32
    from monai_dicomseg.io.source_series import from_monai_array

    np.testing.assert_allclose(from_monai_array(np.asarray(image.dataobj)), probabilities, atol=0.5 / 255 + 1e-6)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--metadata", "missing.json"], "metadata JSON 'missing.json' does not exist"),
        (["--labels", "a"], "holds label values 1..3 but --labels names 1"),
        (["--type", "FRACTIONAL", "--labels", "a,b"], "but --labels names 2"),
    ],
    ids=["missing-metadata", "too-few-names", "fractional-labelmap"],
)
def test_bad_input_one_line(axial_case, cli, tmp_path, argv, message):
    labels_path = axial_case.nifti(tmp_path / "labels.nii.gz")
    status, _, stderr = cli("from-nifti", labels_path, axial_case.folder, tmp_path / "seg.dcm", *argv)
    assert status == 1
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert message in stderr
    assert not (tmp_path / "seg.dcm").exists()


def test_from_nifti_and_convert_write_once_releasing_their_frames(axial_case, cli, tmp_path, monkeypatch):
    """Both commands save the SEG they built once, with ``release_frames=True`` (frames the encoder kept are
    let go as written: the store's pages are never twice in the page cache); the files read back the same."""
    from monai_dicomseg.codec import pixel_data
    from monai_dicomseg.seg.segmentation import Segmentation, segread

    calls = []
    original = Segmentation.save_as

    def recording(self, filename, *args, **kwargs):
        calls.append(kwargs.get("release_frames"))
        return original(self, filename, *args, **kwargs)

    monkeypatch.setattr(Segmentation, "save_as", recording)
    monkeypatch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", 64)  # the frames go through the frame store
    rng = np.random.default_rng(0)
    probabilities = rng.random(axial_case.truth.shape).astype(np.float32) * (axial_case.truth > 0)
    from monai_dicomseg.io.source_series import monai_affine_from_lps, to_monai_array

    labels_path = tmp_path / "prob.nii.gz"
    nibabel.save(nibabel.Nifti1Image(np.asfortranarray(to_monai_array(probabilities)),
                                     monai_affine_from_lps(axial_case.affine, probabilities.shape[0])),
                 str(labels_path))
    out = tmp_path / "seg.dcm"
    status, _, stderr = cli("from-nifti", labels_path, axial_case.folder, out, "--type", "FRACTIONAL",
                            "--labels", "liver")
    assert status == 0, stderr
    converted = tmp_path / "binary.dcm"
    status, _, stderr = cli("convert", out, converted, "--type", "BINARY", "--threshold", "0.5")
    assert status == 0, stderr
    assert calls == [True, True]
    fractions = segread(out).pixel_array.astype(np.float32) / 255
    assert np.array_equal(segread(converted).pixel_array.astype(bool), fractions >= 0.5)
