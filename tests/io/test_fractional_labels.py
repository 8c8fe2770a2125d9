"""FRACTIONAL read as labels/masks frame by frame (io/fractional_labels.py) equals the float-stack rule.

Oracle: the stacked float32 read (``load_seg_array(mode="stacked")``, no
threshold) thresholded with :func:`~monai_dicomseg.io.segload.threshold_masks`
— the documented rule. The new path never builds that float stack; a
tracemalloc test fails if it comes back.
"""
from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.sr.codedict import codes
from pydicom.uid import RLELossless

import monai_dicomseg as mds
from monai_dicomseg import synthetic
from monai_dicomseg.errors import DecodeError, InputError, OverlapError
from monai_dicomseg.io.fractional_labels import CHUNK_VALUES, passing_table
from monai_dicomseg.io.segload import load_seg_array
from monai_cases import COMMON

SHAPE = (4, 6, 5)
CODES = [codes.SCT.Liver, codes.SCT.Spleen, codes.SCT.Kidney, codes.SCT.Lung, codes.SCT.Heart, codes.SCT.Bone]


@pytest.fixture(scope="module")
def series():
    return synthetic.make_ct_series(shape=SHAPE, seed=7)


def _descriptions(n: int) -> list:
    return [
        mds.seg.SegmentDescription(
            segment_number=i + 1, segment_label=f"s{i + 1}", segmented_property_category=codes.SCT.Organ,
            segmented_property_type=CODES[i % len(CODES)], algorithm_type=mds.seg.SegmentAlgorithmTypeValues.MANUAL)
        for i in range(n)
    ]


def _fractional(datasets: list, fractions: np.ndarray, **options) -> mds.seg.Segmentation:
    return mds.seg.Segmentation(
        source_images=datasets, pixel_array=fractions, segmentation_type="FRACTIONAL",
        segment_descriptions=_descriptions(fractions.shape[-1]), series_instance_uid=mds.UID(),
        sop_instance_uid=mds.UID(), **COMMON, **options)


def threshold_masks(fractions: np.ndarray, threshold: float, values: list, *, combine: bool,
                    skip_overlap_checks: bool = False) -> np.ndarray:
    """The documented rule on float32 fractions ``(channels, ...)``: ``>= threshold``; highest value wins."""
    masks = fractions >= np.float32(threshold)
    if not combine:
        return masks
    out = np.zeros(masks.shape[1:], dtype=np.uint8 if max(values, default=0) <= 255 else np.uint16)
    overlapping = int(np.count_nonzero(masks.sum(axis=0) > 1))
    if overlapping and not skip_overlap_checks:
        raise OverlapError(f"{overlapping} voxel(s) are >= threshold in more than one segment")
    for channel in np.argsort(values, kind="stable"):
        out[masks[channel]] = values[channel]
    return out


def _oracle(seg, mode: str, threshold: float, skip: bool, **selection) -> np.ndarray:
    """Float stack, then the documented threshold rule."""
    stacked = load_seg_array(seg, mode="stacked", **selection)
    values = json.loads(stacked.meta["channel_values"])
    if mode == "stacked":
        return threshold_masks(stacked.array, threshold, values, combine=False).astype(np.uint8)
    return threshold_masks(stacked.array, threshold, values, combine=True, skip_overlap_checks=skip)[None]


def _selections(n: int):
    numbers = st.lists(st.integers(1, n), min_size=1, max_size=n, unique=True)
    merged = st.lists(st.integers(1, 3), min_size=n, max_size=n).map(
        lambda v: {f"s{i + 1}": int(x) for i, x in enumerate(v)})
    return st.one_of(st.just({}), numbers.map(lambda s: {"segment_numbers": s}), merged.map(lambda m: {"label_map": m}))


@st.composite
def cases(draw):
    n = draw(st.integers(1, 4))
    levels = draw(st.sampled_from([[0, 64, 128, 191, 255], list(range(256))]))
    stored = draw(st.lists(st.sampled_from(levels), min_size=int(np.prod(SHAPE)) * n,
                           max_size=int(np.prod(SHAPE)) * n))
    fractions = (np.array(stored, dtype=np.float32) / 255).reshape(*SHAPE, n)
    threshold = draw(st.sampled_from([0.25, 0.5, 0.749, 0.75, 1.0]) | st.floats(0.001, 1.0))
    return (fractions, threshold, draw(st.sampled_from(["labelmap", "stacked"])), draw(st.booleans()),
            draw(_selections(n)), draw(st.sampled_from(["none", "rle"])))


@settings(max_examples=30)
@given(case=cases())
def test_equals_float_stack_rule(series, case):
    fractions, threshold, mode, skip, selection, compression = case
    options = {"transfer_syntax_uid": RLELossless} if compression == "rle" else {}
    seg = _fractional(series, fractions, **options)
    try:
        expected = _oracle(seg, mode, threshold, skip, **selection)
    except OverlapError:
        with pytest.raises(OverlapError, match="more than one segment"):
            load_seg_array(seg, mode=mode, threshold=threshold, skip_overlap_checks=skip, **selection)
        return
    got = load_seg_array(seg, mode=mode, threshold=threshold, skip_overlap_checks=skip, **selection).array
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_overlap_count_matches_float_rule(series):
    fractions = np.zeros((*SHAPE, 3), dtype=np.float32)
    fractions[0, :2, :, :] = 0.8  # 2 x 5 voxels in all three segments: counted once each
    fractions[1, 0, 0, :2] = 0.8  # one voxel in two segments
    seg = _fractional(series, fractions)
    with pytest.raises(OverlapError, match=r": 11 voxel\(s\) are >= threshold in more than one segment"):
        load_seg_array(seg, mode="labelmap", threshold=0.5)
    with pytest.raises(OverlapError, match=r"11 voxel\(s\)"):
        threshold_masks(load_seg_array(seg, mode="stacked").array, 0.5, [1, 2, 3], combine=True)


def test_passing_table_boundaries():
    table = passing_table(0.5, 255)
    assert not table[127] and table[128]  # 127/255 < 0.5 <= 128/255
    assert passing_table(1.0, 255)[255] and not passing_table(1.0, 255)[254]
    assert passing_table(0.5, 2)[1] and not passing_table(0.5, 2)[0]
    with pytest.raises(InputError, match="MaximumFractionalValue must be positive"):
        passing_table(0.5, 0)


def test_stored_value_above_maximum_refused(series):
    fractions = np.zeros((*SHAPE, 1), dtype=np.float32)
    fractions[0, 0, 0, 0] = 1.0
    seg = _fractional(series, fractions, max_fractional_value=100)
    seg.MaximumFractionalValue = 50  # stored 100 > 50: a damaged file
    with pytest.raises(DecodeError, match="above MaximumFractionalValue = 50"):
        load_seg_array(seg, mode="labelmap", threshold=0.5)
    seg.MaximumFractionalValue = 100
    assert load_seg_array(seg, mode="labelmap", threshold=0.5).array.sum() == 1


def test_peak_is_output_plus_one_chunk(tmp_path):
    """40 segments x 24 x 128 x 128: the float stack is 63 MB; the new path stays near the uint8 output."""
    shape, n = (24, 128, 128), 40
    datasets = synthetic.make_ct_series(shape=shape, seed=3)
    rng = np.random.default_rng(0)
    fractions = np.zeros((*shape, n), dtype=np.float32)
    for segment in range(n):
        fractions[segment % shape[0], :, :, segment] = rng.integers(0, 256, shape[1:]) / 255
    path = tmp_path / "frac.dcm"
    _fractional(datasets, fractions).save_as(path)
    del fractions
    seg = mds.seg.segread(path)
    seg.get_frame_index()  # header parsed before tracing: only the pixel path is measured
    float_stack = n * int(np.prod(shape)) * 4
    output = int(np.prod(shape))
    tracemalloc.start()
    try:
        label = load_seg_array(seg, mode="labelmap", threshold=0.5, skip_overlap_checks=True).array
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert label.shape == (1, 128, 128, 24)
    assert peak < output + 4 * CHUNK_VALUES, (peak, float_stack)
    assert peak < float_stack / 3


@pytest.mark.parametrize("combine", [True, False])
def test_threshold_volume_equals_get_volume_rule(series, combine):
    from monai_dicomseg.io.fractional_labels import threshold_volume

    rng = np.random.default_rng(5)
    fractions = (rng.integers(0, 256, (*SHAPE, 3)) / 255).astype(np.float32)
    fractions[rng.random(fractions.shape) < 0.5] = 0
    seg = _fractional(series, fractions)
    volume = seg.get_volume(rescale_fractional=True, dtype="float32")
    got = threshold_volume(seg, 0.6, combine=combine, skip_overlap_checks=True)
    expected = threshold_masks(np.moveaxis(volume.array, -1, 0), 0.6, [1, 2, 3], combine=combine,
                               skip_overlap_checks=True)
    np.testing.assert_array_equal(got.array, expected if combine else np.moveaxis(expected, 0, -1))
    np.testing.assert_allclose(got.affine, volume.affine)
    assert got.frame_of_reference_uid == volume.frame_of_reference_uid
    if combine:
        with pytest.raises(OverlapError, match="more than one segment"):
            threshold_volume(seg, 0.01, combine=True)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), values=st.lists(st.integers(1, 3), min_size=3, max_size=3),
       threshold=st.sampled_from([0.3, 0.5, 0.8]), skip=st.booleans())
def test_painting_from_zeros_equals_painting_over_a_zero_output(series, seed, values, threshold, skip):
    """``zero_filled=True`` (threshold_to_grid's fresh output: a faster overlap test once a plane's value
    rises) paints and counts overlaps as the general painter on the same zero output, with segments sharing
    a value (OR-ed, not overlaps) and segments of different values overlapping."""
    from monai_dicomseg.io.fractional_labels import paint_thresholded

    rng = np.random.default_rng(seed)
    fractions = (rng.integers(0, 4, (*SHAPE, 3)) * 85 / 255).astype(np.float32)
    seg = _fractional(series, fractions)
    _, placement = seg.volume_layout()
    results = []
    for zero_filled in (False, True):
        out = np.zeros(SHAPE, dtype=np.uint8)
        try:
            paint_thresholded(seg, placement, out, [1, 2, 3], values, threshold=threshold, combine=True,
                              skip_overlap_checks=skip, zero_filled=zero_filled)
            results.append(out)
        except OverlapError as error:
            results.append(str(error))
    if isinstance(results[0], str):
        assert results[0] == results[1]
    else:
        np.testing.assert_array_equal(results[0], results[1])
