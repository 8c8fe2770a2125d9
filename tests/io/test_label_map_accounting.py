"""label_map accounting per SEG: typo'd keys warn, no matching key is an error; how keys match.

Tables come from SEGs written at test time (our writer and highdicom);
the matching rules (label, code, laterality modifier, anatomy synonyms) are
tested on both sides: "left kidney" names a kidney typed Kidney + Left and
never a right kidney.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from pydicom.sr.codedict import codes

import monai_dicomseg as mds
from monai_dicomseg.errors import InputError, InputTypeError
from monai_dicomseg.io.segload import load_seg_array, segment_resolver
from monai_dicomseg.io.segments import (
    CheckedLabelMap,
    LabelMapKeyWarning,
    SegmentSelection,
    StructureKey,
    header_segment_table,
    plan_segment_selection,
    segment_matches,
    segment_table,
)
from monai_dicomseg.sr.coding import CodedConcept
from monai_cases import COMMON, make_case, truth_on_grid

LEFT = {"value": "7771000", "scheme_designator": "SCT", "meaning": "Left"}
RIGHT = {"value": "24028007", "scheme_designator": "SCT", "meaning": "Right"}


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return make_case(tmp_path_factory.mktemp("accounting"))  # 1 liver, 2 spleen, 3 kidney


def _seg(names: list[str], labels: "list[str] | None" = None, producer: str = "ours") -> object:
    """An in-memory SEG of ``names`` (anatomy-table codes + laterality), labels optionally replaced."""
    module = mds
    if producer == "highdicom":
        import highdicom as module
    descriptions = mds.segment_descriptions_from_names(names, algorithm_type="MANUAL")
    for description, label in zip(descriptions, labels or names):
        description.SegmentLabel = label
    series = mds.synthetic.make_ct_series(shape=(2, 8, 8))
    pixels = np.zeros((2, 8, 8, len(names)), dtype=bool)
    for index in range(len(names)):
        pixels[:, index % 8, :, index] = True
    return module.seg.Segmentation(
        source_images=series, pixel_array=pixels, segmentation_type="BINARY",
        segment_descriptions=descriptions, series_instance_uid=mds.UID(), sop_instance_uid=mds.UID(), **COMMON)


@pytest.fixture(scope="module")
def kidneys():
    """Kidney + Left labelled 'Kidney L', Kidney + Right labelled 'Kidney R', liver."""
    return segment_table(_seg(["kidney_left", "kidney_right", "liver"], ["Kidney L", "Kidney R", "liver"]))


def _numbers(table, label_map, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabelMapKeyWarning)
        plan = plan_segment_selection(table, label_map=label_map, **kwargs)
    return dict(zip(plan.segment_numbers, plan.values))


def test_typo_key_warns_naming_key_file_and_closest_label(case):
    with pytest.warns(LabelMapKeyWarning, match=r"seg\.dcm'.*'lvier' \(closest: \['liver'"):
        loaded = load_seg_array(str(case.seg_path), label_map={"lvier": 1, "spleen": 2})
    assert loaded.meta["channel_values"] == "[0, 1, 2]"
    assert set(np.unique(loaded.array)) == {0, 2}  # liver is background in this label, as the warning says


def test_typo_key_warns_in_the_transforms_too(case):
    image = mds.LoadDicomSeries()(str(case.series_folder))
    with pytest.warns(LabelMapKeyWarning, match=r"'kidny'.*closest: \['kidney'"):
        label = mds.LoadDicomSeg(label_map={"liver": 1, "kidny": 2})(str(case.seg_path), image)
    truth = truth_on_grid(case.labels, case.datasets, np.asarray(image.affine), tuple(image.shape[1:]))
    np.testing.assert_array_equal(np.asarray(label[0]), np.where(truth == 1, 1, 0))


def test_no_key_matching_is_an_error_naming_file_keys_and_labels(case):
    with pytest.raises(InputError, match=r"none of its keys \['heart', 'lung'\].*seg\.dcm.*'liver'.*'spleen'"):
        load_seg_array(str(case.seg_path), label_map={"heart": 1, "lung": 2})
    with pytest.raises(InputError, match="none of its keys"):
        mds.LoadDicomSegd("label", label_map={"heart": 1})({"label": str(case.seg_path)})


def test_every_key_matching_is_silent(case):
    with warnings.catch_warnings():
        warnings.simplefilter("error", LabelMapKeyWarning)
        loaded = load_seg_array(str(case.seg_path), label_map={"kidney": 1, "Spleen": 2, 1: 3})
    assert loaded.meta["channel_values"] == "[0, 1, 2, 3]"


def test_checked_label_map_is_not_warned_per_file_but_still_refuses_no_match(case):
    with warnings.catch_warnings():
        warnings.simplefilter("error", LabelMapKeyWarning)
        load_seg_array(str(case.seg_path), label_map=CheckedLabelMap({"liver": 1, "pancreas": 2}))
    with pytest.raises(InputError, match="none of its keys"):
        load_seg_array(str(case.seg_path), label_map=CheckedLabelMap({"pancreas": 2}))


def test_dicomweb_header_pass_does_not_warn(case):
    """The DICOMweb segment resolver plans the same selection once more: it must not warn twice."""
    import pydicom

    header = pydicom.dcmread(case.seg_path, stop_before_pixels=True)
    resolve = segment_resolver(SegmentSelection(label_map={"lvier": 1, "spleen": 2}))
    with warnings.catch_warnings():
        warnings.simplefilter("error", LabelMapKeyWarning)
        assert resolve(header) == [2]


def test_segment_table_carries_the_modifier(kidneys):
    assert [row["modifier"] for row in kidneys] == [LEFT, RIGHT, None]
    assert [row["type"]["meaning"] for row in kidneys] == ["Kidney", "Kidney", "Liver"]


@pytest.mark.parametrize("producer", ["ours", "highdicom"])
def test_header_table_equals_loaded_table(tmp_path, producer):
    import pydicom

    seg = _seg(["kidney_left", "liver"], producer=producer)
    seg.save_as(tmp_path / "seg.dcm")
    header = pydicom.dcmread(tmp_path / "seg.dcm", stop_before_pixels=True)
    assert header_segment_table(header) == segment_table(mds.seg.segread(tmp_path / "seg.dcm"))
    assert header_segment_table(header)[0]["modifier"] == LEFT


@pytest.mark.parametrize("key, expected", [
    ("left kidney", [1]), ("Kidney_Left", [1]), ("kidney left", [1]), ("Kidney L", [1]),
    ("right kidney", [2]), ("kidney_right", [2]), ("Kidney R", [2]),
    ("kidney", [1, 2]), ("KIDNEY", [1, 2]), ("kidneys", [1, 2]), ("64033007", [1, 2]),
    (codes.SCT.Kidney, [1, 2]), (("64033007", "SCT"), [1, 2]), (2, [2]),
    ("liver", [3]), ("Leber", []), ("left lung", []), (5, []),
])
def test_laterality_and_names(kidneys, key, expected):
    assert [row["number"] for row in kidneys if segment_matches(row, key)] == expected


def test_left_kidney_never_names_a_right_or_unsided_kidney():
    right_only = segment_table(_seg(["kidney_right"], ["Kidney"]))
    unsided = segment_table(_seg(["kidney"]))
    for table in (right_only, unsided):
        assert not segment_matches(table[0], "left kidney")
        with pytest.raises(InputError, match=r"none of its keys \['left kidney'\]"):
            plan_segment_selection(table, label_map={"left kidney": 1})
    assert segment_matches(unsided[0], "kidney") and segment_matches(right_only[0], "kidney")


def test_anatomy_synonyms_match_codes_and_labels():
    table = segment_table(_seg(["gallbladder", "inferior vena cava"], ["GB", "vessel 3"]))
    assert _numbers(table, {"gall bladder": 1, "ivc": 2}) == {1: 1, 2: 2}
    assert _numbers(table, {"Gallbladder": 1}) == {1: 1}  # type meaning
    generic = segment_table(_seg(["IVC", "unknown thing"]))  # labels kept, IVC coded by the table
    generic[0]["type"] = {"value": "91723000", "scheme_designator": "SCT", "meaning": "Anatomical structure"}
    assert segment_matches(generic[0], "inferior vena cava")  # label-side synonym of an uncoded segment
    assert not segment_matches(generic[1], "inferior vena cava")
    assert not segment_matches(generic[0], "superior vena cava")


def test_ambiguity_stays_an_error(kidneys):
    with pytest.raises(InputError, match=r"segment 1 \('Kidney L'\).*values 1 and 2"):
        plan_segment_selection(kidneys, label_map={"kidney": 1, "left kidney": 2})
    assert _numbers(kidneys, {"kidney": 1, "left kidney": 1}) == {1: 1, 2: 1}


def test_bad_keys_and_values(kidneys):
    with pytest.raises(InputTypeError, match="coded property type must be"):
        plan_segment_selection(kidneys, label_map={1.5: 1})
    with pytest.raises(InputTypeError, match="got bool"):
        plan_segment_selection(kidneys, label_map={True: 1})
    with pytest.raises(InputError, match=r"label_map\['liver'\] must be an int >= 1"):
        plan_segment_selection(kidneys, label_map={"liver": 0})
    with pytest.raises(InputError, match="non-empty mapping"):
        plan_segment_selection(kidneys, label_map={})


def test_int_and_code_keys_suggest_numbers_and_codes(kidneys):
    with pytest.warns(LabelMapKeyWarning, match=r"7 \(closest: \[\"segment 1 'Kidney L'\""):
        plan_segment_selection(kidneys, label_map={7: 1, "liver": 2}, where="'x.dcm'")
    spleen = CodedConcept("78961009", "SCT", "Spleen")
    with pytest.warns(LabelMapKeyWarning, match=r"\(78961009, SCT\) 'Spleen' \(closest: \[\"64033007 \(SCT\)"):
        plan_segment_selection(kidneys, label_map={spleen: 1, "liver": 2})


def test_structure_key_is_its_name_and_pickles():
    import json
    import pickle

    key = StructureKey("Kidney L", code=("64033007", "SCT"), modifier=("7771000", "SCT"), labels=["Kidney L"])
    again = pickle.loads(pickle.dumps(key))
    assert again == "Kidney L" and {again: 1}["Kidney L"] == 1
    assert (again.code, again.modifier, again.labels, again.label_bound) == (
        ("64033007", "SCT"), ("7771000", "SCT"), ("kidney l",), False)
    assert json.dumps({key: 1}) == '{"Kidney L": 1}'
