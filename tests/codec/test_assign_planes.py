"""``assign_planes`` (issue 25: label-map reads into transposed views): the same array as ``out[positions] = values``."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monai_dicomseg.codec.assemble import assign_planes


@settings(max_examples=200, deadline=None)
@given(frames=st.integers(1, 9), data=st.data(), transposed=st.booleans(), seed=st.integers(0, 2**16))
def test_property_equals_fancy_assignment(frames, data, transposed, seed):
    """Ascending runs, descending runs (flipped volumes, down to plane 0), any other order, one plane."""
    rng = np.random.default_rng(seed)
    kind = data.draw(st.sampled_from(["ascending", "descending", "other"]))
    count = data.draw(st.integers(1, frames))
    if kind == "ascending":
        start = data.draw(st.integers(0, frames - count))
        positions = np.arange(start, start + count)
    elif kind == "descending":
        start = data.draw(st.integers(count - 1, frames - 1))
        positions = np.arange(start, start - count, -1)
    else:
        positions = rng.permutation(frames)[:count]
    base = np.zeros((4, 3, frames), dtype=np.uint8).transpose(2, 1, 0) if transposed else np.zeros(
        (frames, 3, 4), dtype=np.uint8)
    expected, actual = base.copy(order="K"), base.copy(order="K")  # keep the transposed layout
    assert actual.flags.c_contiguous != transposed or frames == 1
    values = rng.integers(1, 255, (count, 3, 4), dtype=np.uint8)
    expected[positions] = values
    assign_planes(actual, positions, values)
    np.testing.assert_array_equal(actual, expected)


@settings(max_examples=150, deadline=None)
@given(planes=st.integers(1, 20), rows=st.integers(1, 5), columns=st.integers(1, 100),
       layout=st.sampled_from(["c", "transposed", "flipped", "transposed-flipped"]),
       dtype=st.sampled_from([np.uint8, np.uint16, np.bool_]), seed=st.integers(0, 2**16))
def test_property_copy_planes_equals_assignment(planes, rows, columns, layout, dtype, seed):
    """``copy_planes`` (blocks of planes; into a view whose last axis is not its fastest, tiles of
    COLUMN_TILE columns too) writes what ``out[...] = values`` writes, for any width (below, at and past the
    tile), into C-ordered, transposed and flipped views."""
    from monai_dicomseg.codec.assemble import COLUMN_TILE, copy_planes

    rng = np.random.default_rng(seed)
    values = rng.integers(0, 2 if dtype is np.bool_ else 200, (planes, rows, columns)).astype(dtype)
    backing = np.zeros((columns, rows, planes) if "transposed" in layout else (planes, rows, columns), dtype)
    out = backing.transpose(2, 1, 0) if "transposed" in layout else backing
    if "flipped" in layout:
        out = out[::-1, :, ::-1]
    expected = np.zeros_like(backing)
    expected_view = expected.transpose(2, 1, 0) if "transposed" in layout else expected
    if "flipped" in layout:
        expected_view = expected_view[::-1, :, ::-1]
    expected_view[...] = values
    copy_planes(out, values)
    np.testing.assert_array_equal(backing, expected)
    assert COLUMN_TILE < 100  # the widths drawn reach past one tile
