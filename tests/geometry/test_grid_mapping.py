"""The grid-mapping primitive: permutation, flips, integer steps and offsets, decided once."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monai_dicomseg.errors import GeometryError, InputError
from monai_dicomseg.geometry.grid_mapping import (
    GridMapping,
    GridMismatch,
    aligned_axes,
    find_grid_mapping,
    index_mapping,
)
from monai_dicomseg.geometry.grid_placement import plan_placement
from monai_dicomseg.geometry.grid_plan import GridPlan, plan_grid_mapping
from monai_dicomseg.geometry.matching import plan_geometry_match
from monai_dicomseg.geometry.tolerances import GRID_INDEX_TOLERANCE

PERMUTATIONS = list(itertools.permutations(range(3)))


def _rotation(q: list[float]) -> np.ndarray:
    w, x, y, z = np.asarray(q) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def _grids(rotation, spacing, origin, permutation, steps, starts):
    """A target affine and a source affine that is the target re-indexed exactly."""
    target = np.eye(4)
    target[:3, :3] = rotation * np.asarray(spacing)
    target[:3, 3] = origin
    source = np.eye(4)
    for axis, (chosen, step) in enumerate(zip(permutation, steps)):
        source[:3, axis] = step * target[:3, chosen]
    source[:3, 3] = target[:3, :3] @ np.asarray(starts, dtype=float)[np.argsort(permutation)] + origin
    return source, target


grid_cases = st.fixed_dictionaries(dict(
    q=st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(lambda q: np.linalg.norm(q) > 0.2),
    spacing=st.lists(st.floats(0.2, 5.0), min_size=3, max_size=3),
    origin=st.lists(st.floats(-300, 300), min_size=3, max_size=3),
    permutation=st.sampled_from(PERMUTATIONS),
    steps=st.lists(st.sampled_from([-3, -2, -1, 1, 2, 3]), min_size=3, max_size=3),
    starts=st.lists(st.integers(-20, 20), min_size=3, max_size=3),
    shape=st.lists(st.integers(1, 40), min_size=3, max_size=3),
))


@settings(max_examples=150, deadline=None)
@given(case=grid_cases, fraction=st.floats(-0.9, 0.9), axis=st.integers(0, 2))
def test_recovers_the_reindexing_within_tolerance(case, fraction, axis):
    source, target = _grids(_rotation(case["q"]), case["spacing"], case["origin"], case["permutation"],
                            case["steps"], case["starts"])
    source[:3, 3] += fraction * GRID_INDEX_TOLERANCE * target[:3, axis]  # sub-tolerance shift
    found = find_grid_mapping(index_mapping(source, target), case["shape"], (50, 50, 50), target_affine=target)
    assert isinstance(found, GridMapping), found
    assert found.axes == tuple(case["permutation"])
    assert found.steps == tuple(case["steps"])
    mapping = index_mapping(source, target)
    for corner in itertools.product(*[(0, n - 1) for n in case["shape"]]):
        mapped = mapping[:3, :3] @ corner + mapping[:3, 3]
        index = np.zeros(3)
        for a, (chosen, step, start) in enumerate(zip(found.axes, found.steps, found.starts)):
            index[chosen] = start + step * corner[a]
        assert np.max(np.abs(mapped - index)) <= GRID_INDEX_TOLERANCE


@settings(max_examples=100, deadline=None)
@given(case=grid_cases, fraction=st.floats(1.5, 40.0), sign=st.sampled_from([-1, 1]), axis=st.integers(0, 2))
def test_refuses_an_offset_beyond_tolerance(case, fraction, sign, axis):
    source, target = _grids(_rotation(case["q"]), case["spacing"], case["origin"], case["permutation"],
                            case["steps"], case["starts"])
    shift = sign * min(fraction * GRID_INDEX_TOLERANCE, 0.45)  # below half a voxel: still "a fraction"
    source[:3, 3] += shift * target[:3, axis]
    found = find_grid_mapping(index_mapping(source, target), case["shape"], (50, 50, 50), target_affine=target)
    assert isinstance(found, GridMismatch) and found.reason == "offset"


def test_drift_accumulates_along_an_axis():
    """A step off by 1e-3 voxel is fine over 5 voxels, not over 50 (it is the voxel centres that count)."""
    mapping = np.eye(4)
    mapping[0, 0] = 1.0 + 1e-3
    assert isinstance(find_grid_mapping(mapping, (5, 4, 4), (60, 4, 4)), GridMapping)
    found = find_grid_mapping(mapping, (50, 4, 4), (60, 4, 4))
    assert isinstance(found, GridMismatch) and found.reason == "spacing" and found.axis == 0


def test_tilted_axis_is_an_orientation_mismatch():
    mapping = np.eye(4)
    mapping[1, 2] = 0.01  # the column axis drifts along rows: 0.39 voxel over 40 columns
    found = find_grid_mapping(mapping, (4, 4, 40), (4, 4, 40))
    assert isinstance(found, GridMismatch) and found.reason == "orientation" and found.axis == 2
    assert aligned_axes(mapping, (4, 4, 40)) is None
    assert aligned_axes(mapping, (4, 4, 1)) == (0, 1, 2)


def test_single_voxel_axis_needs_only_its_direction():
    target = np.diag([2.0, 1.0, 1.0, 1.0])
    source = target.copy()
    source[:3, 0] = [5.0, 0.0, 0.0]  # any step along the right direction
    found = find_grid_mapping(index_mapping(source, target), (1, 3, 3), (9, 3, 3), target_affine=target)
    assert isinstance(found, GridMapping) and found.axes == (0, 1, 2)
    source[:3, 0] = [5.0, 0.01, 0.0]  # tilted by 2e-3 rad: beyond DIRECTION_COSINE_TOLERANCE
    found = find_grid_mapping(index_mapping(source, target), (1, 3, 3), (9, 3, 3), target_affine=target)
    assert isinstance(found, GridMismatch) and found.reason == "orientation"


def test_mapping_helpers():
    found = find_grid_mapping(np.diag([-1.0, 2.0, 1.0, 1.0]) + np.c_[np.zeros((4, 3)), [4, 1, 0, 0]],
                              (3, 2, 2), (5, 5, 5))
    assert isinstance(found, GridMapping)
    assert found.flips == (True, False, False) and not found.unit_steps
    assert found.target_ranges() == ((2, 4), (1, 3), (0, 1)) and found.fits()
    assert not GridMapping((0, 1, 2), (1, 1, 1), (4, 0, 0), (3, 2, 2), (5, 5, 5)).fits()


def test_singular_target_affine():
    with pytest.raises(GeometryError, match="target affine is singular"):
        index_mapping(np.eye(4), np.zeros((4, 4)))


def test_planners_agree_on_the_same_grids():
    """Loader, writer and Volume.match_geometry decide alike on one pair of grids."""
    target = np.diag([2.5, 0.8, 0.7, 1.0])
    for shift, exact in ((0.4 * GRID_INDEX_TOLERANCE, True), (3 * GRID_INDEX_TOLERANCE, False)):
        source = target.copy()
        source[:3, 3] += shift * target[:3, 1]
        if exact:
            plan_placement(source, (3, 4, 5), target, (3, 4, 5))
            plan_geometry_match(target, (3, 4, 5), source, (3, 4, 5), tol=GRID_INDEX_TOLERANCE)
        else:
            with pytest.raises(GeometryError, match="fraction of a voxel"):
                plan_placement(source, (3, 4, 5), target, (3, 4, 5))
            with pytest.raises(GeometryError, match="fractional voxel index"):
                plan_geometry_match(target, (3, 4, 5), source, (3, 4, 5), tol=GRID_INDEX_TOLERANCE)
        kind = plan_grid_mapping(target, (3, 4, 5), source, (3, 4, 5), space="LPS").kind
        assert kind == ("exact" if exact else "separable")


def test_axis_aligned_operations_refuse_a_general_plan():
    """Formerly ``assert`` (gone under ``python -O``): a hand-made plan without axes is an InputError."""
    from monai_dicomseg.io.grid import map_nearest

    plan = GridPlan("separable", np.eye(4), (2, 2, 2), (2, 2, 2), None)
    with pytest.raises(InputError, match="axis-aligned"):
        map_nearest(np.zeros((2, 2, 2), np.uint8), plan)
