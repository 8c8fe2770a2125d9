"""Bad input to the SEG writer raises the package's errors (issue 2).

Each case builds an otherwise valid ``hd.seg.Segmentation`` call and breaks one
thing. Errors must be the package's classes (which subclass the builtin a
caller would catch) and the message must name the offending argument. With
``MDS_TEST_BACKEND=highdicom`` the same inputs are checked against highdicom's
builtin exceptions, without the message match.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any
from collections.abc import Callable

import numpy as np
import pydicom
import pytest

from oracles import (
    BACKEND_NAME,
    backend_errors,
    build_segmentation,
    dciodvfy_errors,
    highdicom_pixels,
    match_message,
    segment_descriptions,
)

errors = backend_errors()

SHAPE = (6, 32, 40)  # matches the synthetic_ct fixture


def _labels(n_segments: int = 2) -> np.ndarray:
    labels = np.zeros(SHAPE, dtype=np.uint8)
    for segment in range(1, n_segments + 1):
        labels[1:4, 4 * segment:4 * segment + 3, 5:15] = segment
    return labels


def _stacked(n_segments: int = 2) -> np.ndarray:
    labels = _labels(n_segments)
    return labels[..., None] == np.arange(1, n_segments + 1)


#: Inconsistent sources may be reported as bad input or as a geometry problem.
SOURCE_ERRORS = (errors.InputError, errors.GeometryError)


def _raises(exception: Any, pattern: str) -> Any:
    """``pytest.raises`` with our message match (no match for highdicom)."""
    return pytest.raises(exception, match=match_message(pattern))


def _highdicom_differs(reason: str) -> None:
    """Mark a case where highdicom (the reference) itself misbehaves."""
    if BACKEND_NAME == "highdicom":
        pytest.xfail(f"highdicom 0.28.2: {reason}")


def _check_is_package_error(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    if BACKEND_NAME != "highdicom":
        assert isinstance(excinfo.value, errors.DicomSegError), type(excinfo.value)


# --------------------------------------------------------------------------- pixel_array


@pytest.mark.parametrize(
    "pixel_array",
    [
        _labels().astype(np.complex64),
        _labels().astype(object),
        _labels().astype(str),
    ],
    ids=["complex", "object", "str"],
)
def test_pixel_array_wrong_dtype(hd: Any, synthetic_ct, pixel_array: np.ndarray) -> None:
    with _raises(errors.InputTypeError, "pixel_array") as excinfo:
        build_segmentation(hd, synthetic_ct, pixel_array, "BINARY", n_segments=2)
    _check_is_package_error(excinfo)


@pytest.mark.parametrize(
    "pixel_array",
    [np.zeros(40, np.uint8), np.zeros((*SHAPE, 2, 1), np.uint8), np.array(1, np.uint8)],
    ids=["1d", "5d", "0d"],
)
def test_pixel_array_wrong_rank(hd: Any, synthetic_ct, pixel_array: np.ndarray) -> None:
    if pixel_array.ndim == 0:
        _highdicom_differs("a 0-d pixel_array crashes with IndexError")
    with _raises(errors.InputError, "pixel_array") as excinfo:
        build_segmentation(hd, synthetic_ct, pixel_array, "BINARY", n_segments=1)
    _check_is_package_error(excinfo)


@pytest.mark.parametrize(
    "make_pixel_array",
    [
        lambda: _stacked().astype(np.uint8) * 2,
        lambda: _stacked().astype(np.float32) * 0.5,
    ],
    ids=["stacked-value-2", "float-0.5"],
)
def test_binary_values_other_than_0_1(hd: Any, synthetic_ct,
                                      make_pixel_array: Callable[[], np.ndarray]) -> None:
    with _raises(errors.InputError, "pixel_array") as excinfo:
        build_segmentation(hd, synthetic_ct, make_pixel_array(), "BINARY", n_segments=2)
    _check_is_package_error(excinfo)


@pytest.mark.parametrize("bad_value", [1.5, -0.25, np.nan, np.inf], ids=str)
def test_fractional_values_outside_unit_interval(hd: Any, synthetic_ct, bad_value: float) -> None:
    if np.isnan(bad_value):
        _highdicom_differs("NaN in a FRACTIONAL pixel_array is accepted")
    pixel_array = _stacked().astype(np.float32) * 0.5
    pixel_array[2, 5, 6, 0] = bad_value
    with _raises(errors.InputError, "pixel_array") as excinfo:
        build_segmentation(hd, synthetic_ct, pixel_array, "FRACTIONAL", n_segments=2)
    _check_is_package_error(excinfo)


@pytest.mark.parametrize("segmentation_type", ["BINARY", "LABELMAP"])
def test_label_without_description(hd: Any, synthetic_ct, segmentation_type: str) -> None:
    labels = _labels(3)  # labels 1..3, only two descriptions
    with _raises(errors.InputError, "segment_descriptions") as excinfo:
        build_segmentation(hd, synthetic_ct, labels, segmentation_type, n_segments=2)
    _check_is_package_error(excinfo)


def test_more_stacked_segments_than_descriptions(hd: Any, synthetic_ct) -> None:
    with _raises(errors.InputError, "segment_descriptions") as excinfo:
        build_segmentation(hd, synthetic_ct, _stacked(3), "BINARY", n_segments=2)
    _check_is_package_error(excinfo)


# --------------------------------------------------------------------------- descriptions


@pytest.mark.parametrize(
    "numbers",
    [(2, 3), (1, 3), (2, 1)],
    ids=["not-starting-at-1", "gap", "not-ascending"],
)
def test_segment_numbers_not_consecutive_from_1(hd: Any, synthetic_ct,
                                                numbers: tuple[int, int]) -> None:
    descriptions = [segment_descriptions(hd, 1, first=n)[0] for n in numbers]
    with _raises(errors.InputError, "segment_descriptions") as excinfo:
        build_segmentation(hd, synthetic_ct, _stacked(2), "BINARY",
                           segment_descriptions=descriptions)
    _check_is_package_error(excinfo)


# --------------------------------------------------------------------------- sources


def test_frame_count_differs_from_source_images(hd: Any, synthetic_ct) -> None:
    with _raises(SOURCE_ERRORS, "source_images") as excinfo:
        build_segmentation(hd, synthetic_ct[:-1], _labels(), "BINARY")
    _check_is_package_error(excinfo)


def test_frame_count_differs_from_source_frames(hd: Any, ect_supplemental) -> None:
    frames = int(ect_supplemental.NumberOfFrames)
    pixel_array = np.zeros((frames + 1, ect_supplemental.Rows, ect_supplemental.Columns),
                           np.uint8)
    pixel_array[0, :4, :4] = 1
    with _raises(SOURCE_ERRORS, "source_images") as excinfo:
        build_segmentation(hd, [ect_supplemental], pixel_array, "BINARY")
    _check_is_package_error(excinfo)


def test_frame_size_differs_from_source(hd: Any, synthetic_ct) -> None:
    with _raises(errors.InputError, "pixel_array") as excinfo:
        build_segmentation(hd, synthetic_ct, _labels()[:, :-1, :], "BINARY")
    _check_is_package_error(excinfo)


def _with_changed_attribute(datasets: list[pydicom.Dataset], keyword: str,
                            value: Any) -> list[pydicom.Dataset]:
    changed = [copy.deepcopy(ds) for ds in datasets]
    setattr(changed[-1], keyword, value)
    return changed


@pytest.mark.parametrize(
    "keyword, value",
    [("FrameOfReferenceUID", "1.2.3.4.5.6"), ("Rows", 31), ("Columns", 41),
     ("StudyInstanceUID", "1.2.3.4.5.7")],
    ids=["frame-of-reference", "rows", "columns", "study"],
)
def test_inconsistent_source_images(hd: Any, synthetic_ct, keyword: str, value: Any) -> None:
    sources = _with_changed_attribute(synthetic_ct, keyword, value)
    with _raises(SOURCE_ERRORS, "source_images") as excinfo:
        build_segmentation(hd, sources, _labels(), "BINARY")
    _check_is_package_error(excinfo)


def test_no_source_images(hd: Any) -> None:
    with _raises(SOURCE_ERRORS, "source_images") as excinfo:
        build_segmentation(hd, [], _labels(), "BINARY")
    _check_is_package_error(excinfo)


# --------------------------------------------------------------------------- type


def test_overlap_with_labelmap(hd: Any, synthetic_ct) -> None:
    stacked = _stacked(2)
    stacked[2, 10:12, 5:8, 0] = True  # segment 1 also covers part of segment 2
    assert (stacked.sum(axis=-1) > 1).any()
    with _raises(errors.OverlapError, "overlap") as excinfo:
        build_segmentation(hd, synthetic_ct, stacked, "LABELMAP")
    _check_is_package_error(excinfo)


@pytest.mark.parametrize("segmentation_type", ["MULTICLASS", "binary ", ""],
                         ids=["unknown", "trailing-space", "empty"])
def test_unknown_segmentation_type(hd: Any, synthetic_ct, segmentation_type: str) -> None:
    with _raises(errors.InputError, "segmentation_type") as excinfo:
        build_segmentation(hd, synthetic_ct, _labels(), segmentation_type)
    _check_is_package_error(excinfo)


# --------------------------------------------------------------------------- valid edge cases


@pytest.mark.dciodvfy
@pytest.mark.parametrize("segmentation_type", ["BINARY", "FRACTIONAL", "LABELMAP"])
def test_all_zero_segmentation_is_valid(hd: Any, synthetic_ct, segmentation_type: str,
                                        tmp_path: Path) -> None:
    pixel_array = np.zeros((*SHAPE, 2), dtype=bool)
    seg = build_segmentation(hd, synthetic_ct, pixel_array, segmentation_type)
    assert isinstance(seg, pydicom.Dataset)
    path = tmp_path / "empty.dcm"
    seg.save_as(path)
    assert dciodvfy_errors(path) == []
    back = pydicom.dcmread(path)
    assert back.SOPInstanceUID == seg.SOPInstanceUID
    assert back.SegmentationType == segmentation_type
    # a LABELMAP may also describe the background as segment 0 (highdicom does)
    numbers = {int(item.SegmentNumber) for item in back.SegmentSequence}
    assert numbers - {0} == {1, 2}
    assert not highdicom_pixels(path, synthetic_ct).any()


def test_enum_and_string_segmentation_type_agree(hd: Any, synthetic_ct) -> None:
    from_enum = build_segmentation(hd, synthetic_ct, _labels(), hd.seg.SegmentationTypeValues.BINARY)
    from_string = build_segmentation(hd, synthetic_ct, _labels(), "BINARY")
    assert from_enum.SegmentationType == from_string.SegmentationType == "BINARY"
    assert from_enum.PixelData == from_string.PixelData


def test_unknown_keyword_argument(hd, synthetic_ct, synthetic_labels):
    from monai_dicomseg.errors import InputTypeError, UnsupportedError

    from oracles import build_segmentation

    if hd.__name__ != "monai_dicomseg":
        pytest.skip("checks monai_dicomseg's own handling of highdicom-only options")

    with pytest.raises(InputTypeError, match="unexpected keyword argument 'colour'"):
        build_segmentation(hd, synthetic_ct, synthetic_labels, "BINARY", colour="red")
    with pytest.raises(UnsupportedError, match="'icc_profile' is not supported"):
        build_segmentation(hd, synthetic_ct, synthetic_labels, "BINARY", icc_profile=b"x")
    # highdicom's defaults for the same options are accepted
    build_segmentation(hd, synthetic_ct, synthetic_labels, "BINARY", further_source_images=[],
                       content_creator_identification=None)
