"""Anatomy table: names -> SNOMED CT codes and colours; dcmqi segmentAttributes."""
from __future__ import annotations

import json
import warnings

import pytest

from monai_dicomseg.anatomy import (
    UnknownSegmentNameWarning, lookup_term, segment_descriptions_from_dcmqi, segment_descriptions_from_names,
)
from monai_dicomseg.errors import InputError

TOTALSEGMENTATOR_V2 = (
    "spleen kidney_right kidney_left gallbladder liver stomach pancreas adrenal_gland_right adrenal_gland_left "
    "lung_upper_lobe_left lung_lower_lobe_left lung_upper_lobe_right lung_middle_lobe_right lung_lower_lobe_right "
    "esophagus trachea thyroid_gland small_bowel duodenum colon urinary_bladder prostate kidney_cyst_left "
    "kidney_cyst_right sacrum vertebrae_S1 vertebrae_L5 vertebrae_L4 vertebrae_L3 vertebrae_L2 vertebrae_L1 "
    "vertebrae_T12 vertebrae_T11 vertebrae_T10 vertebrae_T9 vertebrae_T8 vertebrae_T7 vertebrae_T6 vertebrae_T5 "
    "vertebrae_T4 vertebrae_T3 vertebrae_T2 vertebrae_T1 vertebrae_C7 vertebrae_C6 vertebrae_C5 vertebrae_C4 "
    "vertebrae_C3 vertebrae_C2 vertebrae_C1 heart aorta pulmonary_vein brachiocephalic_trunk "
    "subclavian_artery_right subclavian_artery_left common_carotid_artery_right common_carotid_artery_left "
    "brachiocephalic_vein_left brachiocephalic_vein_right atrial_appendage_left superior_vena_cava "
    "inferior_vena_cava portal_vein_and_splenic_vein iliac_artery_left iliac_artery_right iliac_vena_left "
    "iliac_vena_right humerus_left humerus_right scapula_left scapula_right clavicula_left clavicula_right "
    "femur_left femur_right hip_left hip_right spinal_cord gluteus_maximus_left gluteus_maximus_right "
    "gluteus_medius_left gluteus_medius_right gluteus_minimus_left gluteus_minimus_right autochthon_left "
    "autochthon_right iliopsoas_left iliopsoas_right brain skull "
    + " ".join(f"rib_{side}_{i}" for side in ("left", "right") for i in range(1, 13))
    + " sternum costal_cartilages"
).split()
MONAI_ZOO = ["spleen", "pancreas", "pancreatic tumor", "liver", "liver tumor", "tumor core", "whole tumor",
             "enhancing tumor", "peripheral zone", "transition zone", "right kidney", "left kidney",
             "IVC", "portal and splenic veins", "left ventricle", "myocardium", "right ventricle",
             "left atrium", "hepatic vessel", "lung nodule", "lung", "kidney tumor", "prostate"]


def test_totalsegmentator_classes_all_known():
    assert len(TOTALSEGMENTATOR_V2) == 117
    unknown = [name for name in TOTALSEGMENTATOR_V2 if lookup_term(name) is None]
    assert unknown == []


def test_monai_zoo_labels_all_known():
    assert [name for name in MONAI_ZOO if lookup_term(name) is None] == []


@pytest.mark.parametrize("name", ["kidney_left", "Left Kidney", "KIDNEY-LEFT", "left_kidney"])
def test_normalisation_and_laterality(name):
    term = lookup_term(name)
    assert term.property_type.CodeValue == "64033007"
    assert term.type_modifier.CodeValue == "7771000"


@pytest.mark.parametrize("name,code", [("liver", "10200004"), ("rib_right_3", "25888004"),
                                       ("vertebrae_L1", "66794005"), ("heart_atrium_left", "82471001"),
                                       ("tumor core", "108369006")], ids=str)
def test_known_codes(name, code):
    assert lookup_term(name).property_type.CodeValue == code


def test_unknown_names_one_warning_generic_code():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        descriptions = segment_descriptions_from_names(["liver", "blob", "thing"], algorithm_type="MANUAL")
    relevant = [w for w in caught if issubclass(w.category, UnknownSegmentNameWarning)]
    assert len(relevant) == 1 and "blob" in str(relevant[0].message) and "thing" in str(relevant[0].message)
    assert descriptions[1].SegmentedPropertyTypeCodeSequence[0].CodeValue == "91723000"
    assert [int(d.SegmentNumber) for d in descriptions] == [1, 2, 3]


def test_dcmqi_segment_attributes(tmp_path):
    meta = {"segmentAttributes": [[
        {"labelID": 2, "SegmentLabel": "Tumour", "SegmentAlgorithmType": "MANUAL",
         "SegmentedPropertyCategoryCodeSequence": {"CodeValue": "49755003", "CodingSchemeDesignator": "SCT",
                                                   "CodeMeaning": "Morphologically Altered Structure"},
         "SegmentedPropertyTypeCodeSequence": {"CodeValue": "108369006", "CodingSchemeDesignator": "SCT",
                                               "CodeMeaning": "Neoplasm"},
         "recommendedDisplayRGBValue": [255, 0, 0]},
        {"labelID": 1, "SegmentLabel": "Liver", "SegmentAlgorithmType": "AUTOMATIC", "SegmentAlgorithmName": "net",
         "SegmentedPropertyCategoryCodeSequence": {"CodeValue": "123037004", "CodingSchemeDesignator": "SCT",
                                                   "CodeMeaning": "Anatomical Structure"},
         "SegmentedPropertyTypeCodeSequence": {"CodeValue": "10200004", "CodingSchemeDesignator": "SCT",
                                               "CodeMeaning": "Liver"},
         "recommendedDisplayRGBValue": [221, 130, 101]}]]}
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(meta))
    pairs = segment_descriptions_from_dcmqi(path)
    assert [label for label, _ in pairs] == [1, 2]
    liver, tumour = (d for _, d in pairs)
    assert liver.SegmentNumber == 1 and liver.SegmentAlgorithmName == "net"
    assert tumour.SegmentLabel == "Tumour" and tumour.SegmentAlgorithmType == "MANUAL"


def test_dcmqi_bad_input(tmp_path):
    with pytest.raises(InputError, match="segmentAttributes"):
        segment_descriptions_from_dcmqi({"foo": 1})
    with pytest.raises(InputError, match="does not exist"):
        segment_descriptions_from_dcmqi(str(tmp_path / "nope.json"))


# --------------------------------------------------------------------------- defaults (issue 21)


def test_segment_descriptions_from_names_with_its_own_defaults():
    """Regression: the defaults (AUTOMATIC, no algorithm identification) raised InputTypeError."""
    (spleen,) = segment_descriptions_from_names(["spleen"])
    assert spleen.SegmentAlgorithmType == "AUTOMATIC"
    assert spleen.SegmentedPropertyTypeCodeSequence[0].CodeValue == "78961009"
    item = spleen.SegmentationAlgorithmIdentificationSequence[0]
    assert (item.AlgorithmName, item.AlgorithmVersion) == ("MONAI", "unknown")
    family = item.AlgorithmFamilyCodeSequence[0]
    assert (family.CodeValue, family.CodingSchemeDesignator) == ("123110", "DCM")
    assert spleen.SegmentAlgorithmName == "MONAI"


def test_semiautomatic_gets_the_default_identification():
    (liver,) = segment_descriptions_from_names(["liver"], algorithm_type="SEMIAUTOMATIC")
    assert liver.SegmentAlgorithmType == "SEMIAUTOMATIC"
    assert liver.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "MONAI"


def test_unknown_algorithm_type_is_refused():
    with pytest.raises(InputError, match="algorithm_type must be one of .*got 'automatc'"):
        segment_descriptions_from_names(["liver"], algorithm_type="automatc")


def test_manual_segments_get_no_identification():
    (liver,) = segment_descriptions_from_names(["liver"], algorithm_type="MANUAL")
    assert liver.SegmentAlgorithmType == "MANUAL"
    assert "SegmentationAlgorithmIdentificationSequence" not in liver


def test_a_given_identification_is_kept():
    from monai_dicomseg.seg.content import AlgorithmIdentificationSequence
    from monai_dicomseg.sr.coding import CodedConcept

    algorithm = AlgorithmIdentificationSequence(name="spleen-net", version="2.1",
                                                family=CodedConcept("123110", "DCM", "Artificial Intelligence"))
    descriptions = segment_descriptions_from_names(["spleen", "liver"], algorithm, first_segment_number=3)
    assert [int(d.SegmentNumber) for d in descriptions] == [3, 4]
    assert {d.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName for d in descriptions} == {"spleen-net"}


@pytest.mark.highdicom
def test_default_descriptions_write_a_seg_highdicom_reads(tmp_path):
    """The default-built description is a valid Segment Sequence item: a SEG written with it reads back."""
    import highdicom

    from monai_dicomseg import synthetic
    from monai_dicomseg.seg import Segmentation

    labels = synthetic.make_ellipsoid_labels((4, 16, 16), n_labels=1, seed=0)
    series = synthetic.make_ct_series((4, 16, 16), labels=labels, seed=0)
    seg = Segmentation(series, labels, "BINARY", segment_descriptions_from_names(["spleen"]),
                       series_instance_uid=highdicom.UID(), series_number=5, sop_instance_uid=highdicom.UID(),
                       instance_number=1, manufacturer="test", manufacturer_model_name="test",
                       software_versions="0", device_serial_number="0")
    seg.save_as(tmp_path / "seg.dcm")
    read = highdicom.seg.segread(str(tmp_path / "seg.dcm"))
    description = read.get_segment_description(1)
    assert description.algorithm_type.value == "AUTOMATIC"
    assert description.algorithm_identification[0].AlgorithmName == "MONAI"
    assert int(read.get_volume(combine_segments=True).array.astype(bool).sum()) == int((labels > 0).sum()) > 0
