"""One label vocabulary per dataset: a structure has the same value in every item.

Cases are written at test time (our writer and highdicom) on synthetic CT
series; each SEG numbers the organs in its own order. Labels are checked voxel
by voxel against the generation truth (tests/monai_cases.truth_on_grid).
"""
from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from monai.data import DataLoader, decollate_batch
from pydicom.sr.codedict import codes

import monai_dicomseg as mds
from monai_dicomseg import synthetic
from monai_dicomseg.data.vocabulary import build_vocabulary, check_label_map, describe_labels
from monai_dicomseg.errors import InputError
from monai_dicomseg.io.segments import LabelMapKeyWarning, segments_from_meta
from monai_dicomseg.sr.coding import CodedConcept
from monai_cases import COMMON, truth_on_grid

SHAPE = (6, 12, 10)
CODES = {"liver": codes.SCT.Liver, "spleen": codes.SCT.Spleen, "kidney": codes.SCT.Kidney}
LEFT, RIGHT = CodedConcept("7771000", "SCT", "Left"), CodedConcept("24028007", "SCT", "Right")
GENERIC = CodedConcept("91723000", "SCT", "Anatomical structure")


def _description(module: Any, number: int, spec: Any) -> Any:
    """``spec``: an organ name, or ``(label, type code, modifier or None)``."""
    label, code, modifier = (spec, CODES[spec], None) if isinstance(spec, str) else spec
    description = module.seg.SegmentDescription(
        segment_number=number, segment_label=label, segmented_property_category=codes.SCT.Organ,
        segmented_property_type=code, algorithm_type=module.seg.SegmentAlgorithmTypeValues.MANUAL)
    if modifier is not None:
        item = description.SegmentedPropertyTypeCodeSequence[0]
        item.SegmentedPropertyTypeModifierCodeSequence = [mds.sr.coding.CodedConcept(
            modifier.value, modifier.scheme_designator, modifier.meaning)]
    return description


def _write(folder: Path, specs: list[Any], seed: int, producer: str = "ours") -> dict[str, Any]:
    """A series and a BINARY SEG whose segment n is generation label n, described by ``specs[n - 1]``."""
    labels = synthetic.make_ellipsoid_labels(SHAPE, n_labels=len(specs), seed=seed)
    datasets = synthetic.make_ct_series(shape=SHAPE, labels=labels, seed=seed)
    synthetic.write_series(datasets, folder / "series")
    module = mds
    if producer == "highdicom":
        import highdicom as module
    seg = module.seg.Segmentation(
        source_images=datasets, pixel_array=labels[..., None] == np.arange(1, len(specs) + 1, dtype=labels.dtype),
        segmentation_type="BINARY", segment_descriptions=[_description(module, n, s) for n, s in
                                                          enumerate(specs, start=1)],
        series_instance_uid=module.UID(), sop_instance_uid=module.UID(), **COMMON)
    seg.save_as(folder / "seg.dcm")
    names = [spec if isinstance(spec, str) else spec[0] for spec in specs]
    return {"image": str(folder / "series"), "label": str(folder / "seg.dcm"), "labels": labels,
            "datasets": datasets, "names": names}


ORDERS = [["liver", "spleen", "kidney"], ["spleen", "liver"], ["kidney", "liver", "spleen"], ["liver"]]


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("vocabulary")
    return [_write(root / f"case{i}", order, seed=i, producer="highdicom" if i == 1 else "ours")
            for i, order in enumerate(ORDERS)]


def _datalist(cases: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"image": c["image"], "label": c["label"]} for c in cases]


def _expected(case: dict[str, Any], image: Any, value_of: Any) -> np.ndarray:
    truth = truth_on_grid(case["labels"], case["datasets"], np.asarray(image.affine), tuple(image.shape[1:]))
    expected = np.zeros_like(truth)
    for number, name in enumerate(case["names"], start=1):
        expected[truth == number] = value_of(number, name)
    return expected


def test_renumbered_dataset_gives_one_value_per_structure_across_a_batch(cases):
    dataset = mds.DicomSegDataset(_datalist(cases))
    # every organ is most often segment 1 -> tie broken by name: kidney, liver, spleen
    assert dict(dataset.label_map) == {"kidney": 1, "liver": 2, "spleen": 3}
    assert dataset.channel_def == {"0": "background", "1": "kidney", "2": "liver", "3": "spleen"}
    assert dataset.vocabulary.renumbered
    items = []
    for batch in DataLoader(dataset, batch_size=2, num_workers=2, shuffle=False):
        assert batch["label"].shape[:2] == (2, 1)
        items.extend(decollate_batch(batch))
    assert len(items) == len(cases)
    for item, case in zip(items, cases):
        assert item["label"].meta["filename_or_obj"] == case["label"]
        expected = _expected(case, item["image"], lambda number, name: dataset.label_map[name])
        np.testing.assert_array_equal(np.asarray(item["label"][0]), expected)
        assert segments_from_meta(item["label"].meta)["labels"] == {"kidney": 1, "liver": 2, "spleen": 3}


def test_numbering_does_not_depend_on_datalist_order(cases):
    forward = build_vocabulary(_datalist(cases))
    backward = build_vocabulary(_datalist(cases)[::-1])
    assert list(forward.label_map.items()) == list(backward.label_map.items())
    assert [row["segment_numbers"] for row in forward.structures] == [[1, 3], [1, 2], [1, 2, 3]]


def test_per_file_numbering_reproduces_the_old_behaviour(cases):
    dataset = mds.DicomSegDataset(_datalist(cases), numbering="per_file")
    assert dataset.label_map is None and dataset.vocabulary is None
    for index, case in enumerate(cases):
        item = dataset[index]
        np.testing.assert_array_equal(np.asarray(item["label"][0]),
                                      _expected(case, item["image"], lambda number, name: number))
        assert item["label"].meta["labels"] == ""
    with pytest.raises(InputError, match="numbering='per_file' gives each SEG's own numbers"):
        dataset.channel_def


def test_consistent_dataset_keeps_its_numbers(tmp_path):
    cases = [_write(tmp_path / "a", ["liver", "spleen", "kidney"], seed=1),
             _write(tmp_path / "b", ["liver", "spleen"], seed=2)]
    vocabulary = build_vocabulary(_datalist(cases))
    assert not vocabulary.renumbered
    assert dict(vocabulary.label_map) == {"liver": 1, "spleen": 2, "kidney": 3}
    dataset = mds.DicomSegDataset(_datalist(cases))
    with warnings.catch_warnings():
        warnings.simplefilter("error", LabelMapKeyWarning)  # "kidney" absent from b: no per-file warning
        item = dataset[1]
    np.testing.assert_array_equal(np.asarray(item["label"][0]),
                                  _expected(cases[1], item["image"], lambda number, name: number))


def test_laterality_and_uncoded_labels_join_the_coded_structure(tmp_path):
    cases = [
        _write(tmp_path / "a", [("Kidney L", codes.SCT.Kidney, LEFT), ("Kidney R", codes.SCT.Kidney, RIGHT)], seed=3),
        _write(tmp_path / "b", [("liver", GENERIC, None), ("left kidney", codes.SCT.Kidney, LEFT)], seed=4),
        _write(tmp_path / "c", [("Liver", codes.SCT.Liver, None)], seed=5),
    ]
    dataset = mds.DicomSegDataset(_datalist(cases))
    rows = {row["name"]: row for row in dataset.vocabulary.structures}
    assert sorted(rows) == ["Kidney L", "Kidney R", "Liver"]  # 'left kidney' + 'Kidney L': one structure
    assert rows["Kidney L"]["modifier"]["meaning"] == "Left" and rows["Kidney R"]["modifier"]["meaning"] == "Right"
    assert rows["Liver"]["labels"] == ["Liver", "liver"]  # the uncoded 'liver' joined the coded Liver
    value = {"Kidney L": rows["Kidney L"]["value"], "left kidney": rows["Kidney L"]["value"],
             "Kidney R": rows["Kidney R"]["value"], "liver": rows["Liver"]["value"], "Liver": rows["Liver"]["value"]}
    assert len({value["Kidney L"], value["Kidney R"], value["liver"]}) == 3
    for index, case in enumerate(cases):
        item = dataset[index]
        np.testing.assert_array_equal(np.asarray(item["label"][0]),
                                      _expected(case, item["image"], lambda number, name: value[name]))


def test_unreconcilable_dataset_is_reported(tmp_path):
    cases = [_write(tmp_path / "a", [("kidney", codes.SCT.Kidney, LEFT)], seed=6),
             _write(tmp_path / "b", [("kidney", codes.SCT.Kidney, RIGHT)], seed=7)]
    with pytest.raises(InputError, match=r"label 'kidney' names 2 different coded structures.*b[/\\]seg\.dcm"
                                         r".*label_map=.*numbering='per_file'"):
        mds.DicomSegDataset(_datalist(cases))
    twice = [_write(tmp_path / "c", [("liver", codes.SCT.Liver, None), ("Liver", codes.SCT.Liver, None)], seed=8)]
    with pytest.raises(InputError, match=r"segments 1 'liver' and 2 'Liver' of .*c[/\\]seg\.dcm.* are the same"):
        build_vocabulary(_datalist(twice))
    mds.DicomSegDataset(_datalist(cases), numbering="per_file")  # the explicit way out
    mds.DicomSegDataset(_datalist(cases), label_map={"left kidney": 1, "right kidney": 2})


def test_shared_code_is_identified_with_its_label(tmp_path):
    lesion = codes.SCT.Neoplasm
    cases = [_write(tmp_path / "a", [("lesion 1", lesion, None), ("lesion 2", lesion, None)], seed=9),
             _write(tmp_path / "b", [("lesion 2", lesion, None)], seed=10)]
    vocabulary = build_vocabulary(_datalist(cases))
    assert dict(vocabulary.label_map) == {"lesion 1": 1, "lesion 2": 2} and vocabulary.renumbered
    assert all(key.label_bound for key in vocabulary.label_map)


def test_dataset_typo_is_an_error_with_a_suggestion(cases):
    with pytest.raises(InputError, match=r"'lvier' \(did you mean \['liver'"):
        mds.DicomSegDataset(_datalist(cases), label_map={"lvier": 1, "spleen": 2})
    with pytest.raises(InputError, match=r"'lvier' \(did you mean \['liver'"):
        check_label_map(mds.create_datalist(Path(cases[0]["label"]).parents[1], warn_unpaired=False),
                        {"lvier": 1, "spleen": 2})


def test_dataset_key_absent_from_some_segs_warns_once_and_items_do_not(cases):
    with pytest.warns(LabelMapKeyWarning, match=r"'kidney' in 2 of 4 .*case1.*case3"):
        dataset = mds.DicomSegDataset(_datalist(cases), label_map={"liver": 1, "kidney": 3})
    with warnings.catch_warnings():
        warnings.simplefilter("error", LabelMapKeyWarning)
        item = dataset[1]
    np.testing.assert_array_equal(np.asarray(item["label"][0]), _expected(
        cases[1], item["image"], lambda number, name: {"liver": 1}.get(name, 0)))
    assert dataset.channel_def == {"0": "background", "1": "liver", "3": "kidney"}


def test_dataset_seg_named_by_no_key_is_an_error(cases):
    with pytest.raises(InputError, match=r"no key names a segment of 1 SEG.*case3.*\['liver'\]"):
        mds.DicomSegDataset(_datalist(cases), label_map={"spleen": 1, "kidney": 2})


def test_selectors_keep_numbers_only_when_consistent(cases):
    with pytest.raises(InputError, match=r"numbered differently.*'liver': segment numbers \[1, 2\]"):
        mds.DicomSegDataset(_datalist(cases), segment_labels=["liver"])
    consistent = mds.DicomSegDataset(_datalist([cases[0], cases[3]]), segment_labels=["liver"])
    assert consistent.label_map is None and dict(consistent.vocabulary.label_map) == {"liver": 1}
    mds.DicomSegDataset(_datalist(cases), segment_labels=["liver"], numbering="per_file")


def test_bad_numbering_options(cases):
    with pytest.raises(InputError, match="numbering must be one of"):
        mds.DicomSegDataset(_datalist(cases), numbering="global")
    with pytest.raises(InputError, match="numbering='per_file' cannot be combined with label_map"):
        mds.DicomSegDataset(_datalist(cases), label_map={"liver": 1}, numbering="per_file")
    with pytest.raises(TypeError, match="'numbering'"):
        mds.DicomSegDataset(_datalist(cases), numberin="dataset")


def test_unreadable_seg_header(cases, tmp_path):
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"not dicom" * 20)
    data = [*_datalist(cases), {"image": cases[0]["image"], "label": str(broken)}]
    with pytest.raises(Exception, match=r"data\[4\]\[key 'label'\] '.*broken\.dcm'"):
        build_vocabulary(data)
    with pytest.warns(UserWarning, match=r"1 SEG header\(s\) could not be read.*data\[4\].*broken\.dcm"):
        dataset = mds.DicomSegDataset(data)
    assert dict(dataset.label_map) == {"kidney": 1, "liver": 2, "spleen": 3}
    with pytest.raises(Exception) as info:
        dataset[4]  # reported by the loader, as before (MONAI's Compose wraps the error)
    assert "broken.dcm" in str(info.value.__cause__)


def test_describe_labels(cases, capsys):
    dataset = mds.DicomSegDataset(_datalist(cases))
    rows = describe_labels(dataset)
    printed = capsys.readouterr().out
    assert [(row["value"], row["name"], row["segs"]) for row in rows] == [(1, "kidney", 2), (2, "liver", 4),
                                                                          (3, "spleen", 3)]
    assert "64033007 Kidney" in printed and "4/4" in printed
    assert describe_labels(_datalist(cases), show=False) == rows
    given = describe_labels(_datalist(cases), {"liver": 5}, show=False)
    assert given == [{"value": 5, "name": "liver", "type": rows[1]["type"], "modifier": None,
                      "labels": ["liver"], "segment_numbers": [1, 2], "segs": 4}]


def test_vocabulary_pickles_and_headers_are_cached(cases, tmp_path):
    from monai_dicomseg.data import vocabulary as module

    label_map = build_vocabulary(_datalist(cases)).label_map
    again = pickle.loads(pickle.dumps(label_map))
    assert type(again) is type(label_map) and [k.code for k in again] == [k.code for k in label_map]
    copy = _write(tmp_path / "x", ["spleen"], seed=11)
    first = module._table(copy["label"])
    assert module._table(copy["label"]) is first  # cached
    _write(tmp_path / "x", ["liver", "kidney"], seed=12)  # same path, new content
    assert [row["label"] for row in module._table(copy["label"])] == ["liver", "kidney"]
