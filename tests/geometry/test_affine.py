"""Affine helpers against highdicom's spatial functions on the same inputs."""
from __future__ import annotations

import highdicom
import numpy as np
import pytest
from highdicom.spatial import (
    VOLUME_INDEX_CONVENTION,
    convert_affine_to_convention as hd_convert,
    create_affine_matrix_from_attributes,
    create_affine_matrix_from_components,
    get_closest_patient_orientation as hd_closest,
    get_volume_positions,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from monai_dicomseg.errors import GeometryError, InputError
from monai_dicomseg.geometry import affine as A
from monai_dicomseg.geometry.orientation import (
    closest_patient_orientation,
    convert_affine_to_convention,
    normalize_patient_orientation,
)


def rotation_from_quaternion(q) -> np.ndarray:
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


quaternions = st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(
    lambda q: np.linalg.norm(q) > 0.2)
spacings = st.floats(0.1, 10.0)
coordinates = st.floats(-500.0, 500.0)


@settings(max_examples=40, deadline=None)
@given(q=quaternions, ps=st.tuples(spacings, spacings), ss=spacings,
       pos=st.tuples(coordinates, coordinates, coordinates))
def test_affine_from_image_plane_matches_highdicom(q, ps, ss, pos):
    rotation = rotation_from_quaternion(q)
    orientation = [*rotation[:, 0], *rotation[:, 1]]
    ours = A.affine_from_image_plane(pos, orientation, ps, ss)
    theirs = create_affine_matrix_from_attributes(
        image_position=pos, image_orientation=orientation, pixel_spacing=list(ps),
        spacing_between_slices=ss, index_convention=VOLUME_INDEX_CONVENTION, slices_first=True)
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
    # Inverse helpers recover the attributes.
    np.testing.assert_allclose(A.image_orientation_from_affine(ours), orientation, atol=1e-9)
    np.testing.assert_allclose(A.pixel_spacing_from_affine(ours), ps, rtol=1e-9)
    assert A.slice_spacing_from_affine(ours) == pytest.approx(ss)
    np.testing.assert_allclose(A.spacing_from_affine(ours), (ss, *ps), rtol=1e-9)
    np.testing.assert_allclose(ours[:3, 0] / ss, A.slice_normal(orientation), atol=1e-9)


def test_column_layout_is_slice_row_column():
    affine = A.affine_from_image_plane([1, 2, 3], [1, 0, 0, 0, 1, 0], [0.5, 0.25], 2.0)
    np.testing.assert_array_equal(affine[:3, 0], [0, 0, -2.0])   # cross(col, row) * 2
    np.testing.assert_array_equal(affine[:3, 1], [0, 0.5, 0])     # column cosines * PixelSpacing[0]
    np.testing.assert_array_equal(affine[:3, 2], [0.25, 0, 0])    # row cosines * PixelSpacing[1]
    np.testing.assert_array_equal(affine[:3, 3], [1, 2, 3])


@pytest.mark.parametrize("kwargs", [
    dict(spacing=[1.0, 2.0, 3.0], position=[1, 2, 3], direction=np.eye(3)),
    dict(spacing=[2.5, 2.5, 2.5], position=[1, 2, 3], patient_orientation="FPL"),
    dict(spacing=[1.0, 2.0, 3.0], center_position=[0, 0, 0], patient_orientation="RAS",
         spatial_shape=(4, 5, 6)),
    dict(spacing=[1.0, 2.0, 3.0], center_position=[5, 0, 0], direction=np.eye(3)[:, [2, 0, 1]].ravel(),
         spatial_shape=(3, 3, 3)),
], ids=["direction", "orientation", "centre", "flat-direction"])
def test_affine_from_components_matches_highdicom(kwargs):
    np.testing.assert_allclose(
        A.affine_from_components(**kwargs), create_affine_matrix_from_components(**kwargs), atol=1e-12)


def test_affine_from_components_accepts_scalar_spacing():
    # (highdicom 0.28 raises TypeError on a scalar spacing despite documenting it)
    scalar = A.affine_from_components(spacing=2.5, position=[1, 2, 3], patient_orientation="FPL")
    vector = A.affine_from_components(spacing=[2.5] * 3, position=[1, 2, 3], patient_orientation="FPL")
    np.testing.assert_array_equal(scalar, vector)


@pytest.mark.parametrize("kwargs, match", [
    (dict(spacing=1.0, position=[0, 0, 0]), "exactly one of direction"),
    (dict(spacing=1.0, direction=np.eye(3)), "exactly one of position"),
    (dict(spacing=[1.0, -1.0, 1.0], position=[0, 0, 0], direction=np.eye(3)), "spacing values must be positive"),
    (dict(spacing=[1.0, 1.0], position=[0, 0, 0], direction=np.eye(3)), "spacing must have 3 values"),
    (dict(spacing=1.0, position=[0, 0, 0], direction=np.ones((3, 3))), "orthogonal"),
    (dict(spacing=1.0, position=[0, 0, 0], direction=np.eye(4)), "direction must have shape"),
    (dict(spacing=1.0, center_position=[0, 0, 0], direction=np.eye(3)), "spatial_shape is required"),
    (dict(spacing=1.0, position=[0, 0], direction=np.eye(3)), "position must have 3"),
    (dict(spacing=1.0, position=[0, 0, 0], patient_orientation="LLH"), "exactly once"),
], ids=["no-direction", "no-position", "negative-spacing", "short-spacing", "non-orthogonal",
        "direction-shape", "centre-without-shape", "short-position", "bad-orientation"])
def test_affine_from_components_rejects_bad_input(kwargs, match):
    with pytest.raises(InputError, match=match):
        A.affine_from_components(**kwargs)


@pytest.mark.parametrize("args, match", [
    (([0, 0], [1, 0, 0, 0, 1, 0], [1, 1]), "image_position must have 3"),
    (([0, 0, 0], [1, 0, 0, 0, 1], [1, 1]), "image_orientation must have 6"),
    (([0, 0, 0], [1, 0, 0, 0, 1, 0], [1]), "pixel_spacing must have 2"),
    (([0, 0, 0], [1, 0, 0, 0, 1, 0], [1, 0]), "pixel_spacing values must be positive"),
    (([0, 0, 0], [1, 0, 0, 1, 0, 0], [1, 1]), "must not be parallel"),
    (([0, 0, np.nan], [1, 0, 0, 0, 1, 0], [1, 1]), "must be finite"),
    (([0, 0, 0], "abc", [1, 1]), "image_orientation must be a sequence"),
], ids=["position", "orientation", "spacing-length", "spacing-zero", "parallel", "nan", "string"])
def test_affine_from_image_plane_rejects_bad_input(args, match):
    with pytest.raises(InputError, match=match):
        A.affine_from_image_plane(*args)


def test_affine_from_image_plane_rejects_bad_slice_spacing():
    with pytest.raises(InputError, match="spacing_between_slices must be positive"):
        A.affine_from_image_plane([0, 0, 0], [1, 0, 0, 0, 1, 0], [1, 1], 0.0)


@pytest.mark.parametrize("matrix, match", [
    (np.eye(3), r"shape \(4, 4\)"),
    (np.diag([1.0, 1.0, 1.0, 2.0]), "last row"),
    (np.array([[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float), "orthogonal"),
    (np.diag([1.0, 0.0, 1.0, 1.0]), "orthogonal"),
    (np.full((4, 4), np.nan), "finite"),
    ("not an array", "numeric"),
], ids=["shape", "last-row", "skew", "zero-column", "nan", "string"])
def test_check_affine_rejects(matrix, match):
    with pytest.raises(InputError, match=match):
        A.check_affine(matrix)


@settings(max_examples=25, deadline=None)
@given(q=quaternions, n=st.integers(1, 6))
def test_plane_positions_match_highdicom_volume(q, n):
    affine = A.stack_affine(rotation_from_quaternion(q) * [1.5, 0.5, 0.7], [10.0, -3.0, 7.0])
    volume = highdicom.Volume(np.zeros((n, 2, 2)), affine, "PATIENT")
    theirs = np.array([p[0].ImagePositionPatient for p in volume.get_plane_positions()], float)
    np.testing.assert_allclose(A.plane_positions_from_affine(affine, n), theirs, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(q=quaternions, pos=st.tuples(coordinates, coordinates, coordinates))
def test_ras_lps_conversion_matches_highdicom_and_round_trips(q, pos):
    affine = A.stack_affine(rotation_from_quaternion(q) * 2.0, pos)
    ras = A.lps_to_ras_affine(affine)
    np.testing.assert_allclose(ras, hd_convert(affine, "LPS", "RAS"), atol=1e-12)
    np.testing.assert_allclose(ras[:2], -affine[:2])
    np.testing.assert_allclose(A.ras_to_lps_affine(ras), affine, atol=1e-12)
    np.testing.assert_allclose(convert_affine_to_convention(affine, "LPS", "FAR"),
                               hd_convert(affine, "LPS", "FAR"), atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(q=quaternions)
def test_closest_patient_orientation_matches_highdicom(q):
    rotation = rotation_from_quaternion(q)
    ours = closest_patient_orientation(rotation)
    assert [d.value for d in ours] == [d.value for d in hd_closest(rotation)]


@pytest.mark.parametrize("value, match", [
    ("LP", "must have 3 directions"), ("LPX", "contains 'X'"), ("LRH", "exactly once"),
    (5, "3-letter string"),
], ids=["short", "unknown-letter", "repeated-axis", "not-iterable"])
def test_normalize_patient_orientation_rejects(value, match):
    with pytest.raises(InputError, match=match):
        normalize_patient_orientation(value)


def test_normalize_patient_orientation_accepts_aliases():
    assert [d.value for d in normalize_patient_orientation("RAS")] == ["R", "A", "H"]
    assert [d.value for d in normalize_patient_orientation(("I", "P", "L"))] == ["F", "P", "L"]


# --------------------------------------------------------------- regular slice spacing
def _stack(n, spacing, orientation=(1, 0, 0, 0, 1, 0), origin=(3.0, -2.0, 10.0)):
    normal = A.slice_normal(orientation)
    return np.asarray(origin) + np.arange(n)[:, None] * spacing * normal


@settings(max_examples=30, deadline=None)
@given(q=quaternions, n=st.integers(2, 12), spacing=spacings, seed=st.integers(0, 1000))
def test_regular_slice_spacing_matches_highdicom(q, n, spacing, seed):
    rotation = rotation_from_quaternion(q)
    orientation = [*rotation[:, 0], *rotation[:, 1]]
    positions = _stack(n, spacing, orientation)
    positions = positions[np.random.default_rng(seed).permutation(n)]
    theirs, _ = get_volume_positions(positions, orientation)
    assert A.regular_slice_spacing(positions, orientation) == pytest.approx(theirs)
    assert theirs == pytest.approx(spacing)


def test_regular_slice_spacing_single_frame_is_one():
    assert A.regular_slice_spacing([[0, 0, 0]], [1, 0, 0, 0, 1, 0]) == 1.0


@pytest.mark.parametrize("positions, match", [
    (np.concatenate([_stack(4, 2.0), _stack(1, 2.0)]), "same distance along the slice normal"),
    (np.delete(_stack(6, 2.0), 3, axis=0), r"1 slice\(s\) missing"),
    (_stack(4, 2.0) * [1, 1, 1] + np.array([[0, 0, 0], [0, 0, 0], [0, 0, 0.5], [0, 0, 0]]), "not regularly spaced"),
    (_stack(4, 2.0) + np.array([[0, 0, 0], [5, 0, 0], [0, 0, 0], [0, 0, 0]]), "in-plane"),
], ids=["duplicate", "gap", "irregular", "off-normal"])
def test_regular_slice_spacing_rejects(positions, match):
    with pytest.raises(GeometryError, match=match):
        A.regular_slice_spacing(positions, [1, 0, 0, 0, 1, 0])
    # highdicom agrees that these are not volumes
    assert get_volume_positions(positions, [1, 0, 0, 0, 1, 0]) == (None, None)


def test_regular_slice_spacing_rejects_bad_shape():
    with pytest.raises(InputError, match=r"positions must have shape \(N, 3\)"):
        A.regular_slice_spacing(np.zeros((3, 2)), [1, 0, 0, 0, 1, 0])


def test_permute_and_flip_affine_reject_bad_axes():
    with pytest.raises(InputError, match="permutation of"):
        A.permute_affine(np.eye(4), [0, 0, 1])


def test_flip_affine_keeps_voxel_positions():
    affine = A.affine_from_image_plane([1, 2, 3], [0, 1, 0, 0, 0, -1], [0.5, 0.7], 2.0)
    flipped = A.flip_affine(affine, (4, 5, 6), [0, 2])
    index = np.array([1, 2, 3, 1.0])
    mirrored = np.array([4 - 1 - 1, 2, 6 - 1 - 3, 1.0])
    np.testing.assert_allclose(flipped @ mirrored, affine @ index)
