"""Plane Position / Plane Orientation / Pixel Measures sequences against highdicom's."""
from __future__ import annotations

import highdicom
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

import monai_dicomseg as hd
from monai_dicomseg.codec.spatial_content import (
    PixelMeasuresSequence,
    PlaneOrientationSequence,
    PlanePositionSequence,
    decimal_string,
)
from monai_dicomseg.errors import InputError, InputTypeError


def item_values(sequence) -> dict:
    """Keyword -> value (DS as float) of the single item."""
    values = {}
    for element in sequence[0]:
        value = element.value
        if element.VR == "DS":
            value = [float(v) for v in value] if element.VM > 1 else float(value)
        values[element.keyword] = value
    return values


def test_guide_names_resolve():
    assert hd.PlanePositionSequence is PlanePositionSequence
    assert hd.PlaneOrientationSequence is PlaneOrientationSequence
    assert hd.PixelMeasuresSequence is PixelMeasuresSequence


@pytest.mark.parametrize("args", [
    ("PATIENT", [100.0, 50.0, -50.0]),
    ("PATIENT", [1 / 3, -2 / 7, 123456.789012345]),
    ("SLIDE", [10.5, 3.25, 0.0], (5, 7)),
], ids=["patient", "long-decimals", "slide"])
def test_plane_position_matches_highdicom(args):
    ours, theirs = PlanePositionSequence(*args), highdicom.PlanePositionSequence(*args)
    assert isinstance(ours, Sequence) and len(ours) == 1
    assert item_values(ours).keys() == item_values(theirs).keys()
    for key, value in item_values(theirs).items():
        np.testing.assert_allclose(item_values(ours)[key], value, rtol=1e-12)


@pytest.mark.parametrize("system, keyword", [("PATIENT", "ImageOrientationPatient"),
                                             ("SLIDE", "ImageOrientationSlide")])
def test_plane_orientation_matches_highdicom(system, keyword):
    cosines = [0.0, 1.0, 0.0, -1.0, 0.0, 0.0]
    ours = PlaneOrientationSequence(hd.CoordinateSystemNames(system), cosines)
    theirs = highdicom.PlaneOrientationSequence(system, cosines)
    assert list(item_values(ours)) == [keyword]
    assert item_values(ours) == item_values(theirs)
    assert ours.cosines == theirs.cosines
    assert ours.coordinate_system.value == system


@pytest.mark.parametrize("kwargs", [
    dict(pixel_spacing=[2.0, 2.0], slice_thickness=2.0),
    dict(pixel_spacing=[0.488281, 0.5], slice_thickness=None, spacing_between_slices=1.25),
    dict(pixel_spacing=[1 / 3, 1 / 7], slice_thickness=1 / 9, spacing_between_slices=1 / 11),
], ids=["guide", "no-thickness", "long-decimals"])
def test_pixel_measures_matches_highdicom(kwargs):
    ours, theirs = PixelMeasuresSequence(**kwargs), highdicom.PixelMeasuresSequence(**kwargs)
    assert item_values(ours).keys() == item_values(theirs).keys()
    for key, value in item_values(theirs).items():
        np.testing.assert_allclose(item_values(ours)[key], value, rtol=1e-12)


@settings(max_examples=100, deadline=None)
@given(value=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15))
def test_decimal_strings_are_valid_ds(value):
    text = str(decimal_string(value, "value"))
    assert len(text) <= 16
    assert float(text) == pytest.approx(value, rel=1e-9, abs=1e-9)
    assert text != "-0.0"
    position = PlanePositionSequence("PATIENT", [value, value, value])
    assert all(len(str(v)) <= 16 for v in position[0].ImagePositionPatient)


def test_from_sequence_round_trip_and_copy():
    position = PlanePositionSequence("PATIENT", [1.0, 2.0, 3.0])
    plain = Sequence([position[0]])
    converted = PlanePositionSequence.from_sequence(plain)
    assert isinstance(converted, PlanePositionSequence) and converted == position
    assert converted[0] is not plain[0]
    assert PlanePositionSequence.from_sequence(plain, copy=False) is plain
    slide = PlanePositionSequence("SLIDE", [1.0, 2.0, 3.0], (1, 1))
    assert PlanePositionSequence.from_sequence(Sequence([slide[0]])) == slide
    orientation = PlaneOrientationSequence("SLIDE", [1, 0, 0, 0, 1, 0])
    assert PlaneOrientationSequence.from_sequence(Sequence([orientation[0]])) == orientation
    measures = PixelMeasuresSequence([1.0, 1.0], 2.0)
    assert PixelMeasuresSequence.from_sequence(Sequence([measures[0]])) == measures
    # highdicom's objects are accepted too
    theirs = highdicom.PlanePositionSequence("PATIENT", [1.0, 2.0, 3.0])
    assert PlanePositionSequence.from_sequence(theirs) == position


@pytest.mark.parametrize("cls, sequence, error, match", [
    (PlanePositionSequence, [Dataset()], InputTypeError, "pydicom Sequence"),
    (PlanePositionSequence, Sequence([]), InputError, "exactly 1 item"),
    (PlanePositionSequence, Sequence([Dataset(), Dataset()]), InputError, "exactly 1 item"),
    (PlanePositionSequence, Sequence([Dataset()]), InputError, "XOffsetInSlideCoordinateSystem"),
    (PlaneOrientationSequence, Sequence([Dataset()]), InputError, "ImageOrientationPatient"),
    (PixelMeasuresSequence, Sequence([Dataset()]), InputError, "PixelSpacing"),
], ids=["not-sequence", "empty", "two-items", "position-attrs", "orientation-attrs", "measures-attrs"])
def test_from_sequence_rejects(cls, sequence, error, match):
    with pytest.raises(error, match=match):
        cls.from_sequence(sequence)


def test_plane_position_equality_per_field():
    base = PlanePositionSequence("PATIENT", [1.0, 2.0, 3.0])
    assert base == PlanePositionSequence("PATIENT", [1.0, 2.0, 3.0])
    for index in range(3):
        moved = [1.0, 2.0, 3.0]
        moved[index] += 0.5
        assert base != PlanePositionSequence("PATIENT", moved)
    slide = PlanePositionSequence("SLIDE", [1.0, 2.0, 3.0], (4, 5))
    assert base != slide
    assert slide == PlanePositionSequence("SLIDE", [1.0, 2.0, 3.0], (4, 5))
    assert slide != PlanePositionSequence("SLIDE", [1.0, 2.0, 3.0], (4, 6))  # row
    assert slide != PlanePositionSequence("SLIDE", [1.0, 2.0, 3.0], (3, 5))  # column
    assert slide != PlanePositionSequence("SLIDE", [1.0, 2.5, 3.0], (4, 5))  # offset


def test_plane_orientation_equality_per_field():
    base = PlaneOrientationSequence("PATIENT", [1, 0, 0, 0, 1, 0])
    assert base == PlaneOrientationSequence("PATIENT", [1, 0, 0, 0, 1, 0])
    assert base != PlaneOrientationSequence("PATIENT", [1, 0, 0, 0, 0, 1])
    assert base != PlaneOrientationSequence("SLIDE", [1, 0, 0, 0, 1, 0])


def test_pixel_measures_equality_per_field():
    base = PixelMeasuresSequence([1.0, 2.0], 3.0, 4.0)
    assert base == PixelMeasuresSequence([1.0, 2.0], 3.0, 4.0)
    assert base != PixelMeasuresSequence([1.0, 2.5], 3.0, 4.0)
    assert base != PixelMeasuresSequence([1.0, 2.0], 3.5, 4.0)
    assert base != PixelMeasuresSequence([1.0, 2.0], None, 4.0)
    assert base != PixelMeasuresSequence([1.0, 2.0], 3.0, 4.5)
    assert base != PixelMeasuresSequence([1.0, 2.0], 3.0)


@pytest.mark.parametrize("build, error, match", [
    (lambda: PlanePositionSequence("WORLD", [0, 0, 0]), InputError, "coordinate_system must be one of"),
    (lambda: PlanePositionSequence("PATIENT", [0, 0]), InputError, "image_position must have 3"),
    (lambda: PlanePositionSequence("PATIENT", "abc"), InputTypeError, "image_position must be a sequence"),
    (lambda: PlanePositionSequence("PATIENT", [0, 0, float("nan")]), InputError, r"image_position\[2\] must be finite"),
    (lambda: PlanePositionSequence("PATIENT", [0, "x", 0]), InputTypeError, r"image_position\[1\] must be a number"),
    (lambda: PlanePositionSequence("SLIDE", [0, 0, 0]), InputError, "pixel_matrix_position is required"),
    (lambda: PlanePositionSequence("SLIDE", [0, 0, 0], (-1, 1)), InputError, "non-negative"),
    (lambda: PlaneOrientationSequence("PATIENT", [1, 0, 0]), InputError, "image_orientation must have 6"),
    (lambda: PixelMeasuresSequence([1.0], 1.0), InputError, "pixel_spacing must have 2"),
    (lambda: PixelMeasuresSequence([1.0, 0.0], 1.0), InputError, "pixel_spacing must be positive"),
    (lambda: PixelMeasuresSequence([1.0, 1.0], float("inf")), InputError, "slice_thickness must be finite"),
], ids=["system", "position-length", "position-string", "position-nan", "position-text", "slide-matrix",
        "slide-negative", "orientation-length", "spacing-length", "spacing-zero", "thickness-inf"])
def test_constructors_reject_bad_input(build, error, match):
    with pytest.raises(error, match=match):
        build()
