"""Per-call overhead of a small SEG label load (issue 25), without changing any result.

* The segment-table cache (:func:`~monai_dicomseg.io.segments.cached_segment_table`) is keyed by the exact
  stored bytes of SegmentSequence: same bytes hit, one byte different misses; bounded; fresh objects per
  call; a Dataset/Segmentation passed in (maybe changed in memory) is never keyed; threads and a forked
  worker see correct tables.
* FRACTIONAL thresholding compares instead of looking up (:func:`~monai_dicomseg.io.fractional_labels.passing_rule`):
  equal to the lookup table for every stored value, maximum and threshold.
* Planes are copied/painted a block at a time (:func:`~monai_dicomseg.codec.assemble.copy_planes`, the
  FRACTIONAL label slabs): equal to plain assignment and to the float-stack rule across block boundaries.

No test times anything.
"""
from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.sr.codedict import codes

import monai_dicomseg as mds
from monai_dicomseg import synthetic
from monai_dicomseg.codec.assemble import PLANE_BLOCK, copy_planes
from monai_dicomseg.errors import OverlapError
from monai_dicomseg.io import segments as segments_module
from monai_dicomseg.io.fractional_labels import passing_rule, passing_table
from monai_dicomseg.io.segload import load_seg_array
from monai_dicomseg.io.segments import (
    cached_segment_table,
    clear_segment_table_cache,
    segment_sequence_key,
    segment_table,
    segment_table_cache_info,
)
from monai_dicomseg.seg.reader import read_segmentation_dataset
from monai_cases import COMMON, make_case

# ----------------------------------------------------------------------------- segment-table cache


@pytest.fixture(autouse=True)
def _empty_cache():
    clear_segment_table_cache()
    yield
    clear_segment_table_cache()


@pytest.fixture(scope="module")
def case_paths(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("small_seg")
    return {kind: make_case(folder / kind, segmentation_type=kind.upper()).seg_path
            for kind in ("binary", "labelmap")}


def _fresh_table(path: Path) -> list:
    """The table as computed without any cache."""
    return segment_table(mds.seg.segread(path))


@pytest.mark.parametrize("kind", ["binary", "labelmap"])
def test_second_load_hits_and_equals_uncached(case_paths, kind):
    path = case_paths[kind]
    first = load_seg_array(str(path))
    assert segment_table_cache_info()["misses"] == 1 and segment_table_cache_info()["hits"] == 0
    second = load_seg_array(str(path))
    info = segment_table_cache_info()
    assert (info["hits"], info["misses"], info["size"]) == (1, 1, 1)
    assert json.loads(second.meta["segments"]) == _fresh_table(path) == json.loads(first.meta["segments"])
    assert first.meta == {**second.meta, "affine": first.meta["affine"], "original_affine":
                          first.meta["original_affine"], "spatial_shape": first.meta["spatial_shape"]}
    np.testing.assert_array_equal(first.array, second.array)


def _relabelled_copy(path: Path, old: bytes, new: bytes, target: Path) -> Path:
    data = path.read_bytes()
    assert len(old) == len(new) and data.count(old) == 1
    target.write_bytes(data.replace(old, new))
    return target


def test_one_byte_different_misses(case_paths, tmp_path):
    path = case_paths["binary"]
    load_seg_array(str(path))
    changed = _relabelled_copy(path, b"spleen", b"spleeN", tmp_path / "changed.dcm")
    loaded = load_seg_array(str(changed))
    info = segment_table_cache_info()
    assert (info["hits"], info["misses"], info["size"]) == (0, 2, 2)
    labels = [entry["label"] for entry in json.loads(loaded.meta["segments"])]
    assert labels == ["liver", "spleeN", "kidney"]
    assert json.loads(loaded.meta["segments"]) == _fresh_table(changed)
    same = _relabelled_copy(path, b"spleen", b"spleen", tmp_path / "same.dcm")  # another file, same bytes
    assert json.loads(load_seg_array(str(same)).meta["segments"]) == _fresh_table(path)
    assert segment_table_cache_info()["hits"] == 1


def test_key_is_exact_bytes_and_context(case_paths):
    path = case_paths["binary"]
    key = segment_sequence_key(read_segmentation_dataset(path))
    assert key is not None and key == segment_sequence_key(read_segmentation_dataset(path))
    dataset = read_segmentation_dataset(path)
    dataset.PixelPaddingValue = 1  # decides which segment is background: another key
    assert segment_sequence_key(dataset) not in (None, key)
    dataset = read_segmentation_dataset(path)
    dataset.SpecificCharacterSet = "ISO_IR 192"  # decides how the text reads: another key
    assert segment_sequence_key(dataset) not in (None, key)


def test_no_key_once_the_sequence_was_touched(case_paths):
    dataset = read_segmentation_dataset(case_paths["binary"])
    dataset.SegmentSequence[0].SegmentLabel = "changed in memory"
    assert segment_sequence_key(dataset) is None
    assert segment_sequence_key(pydicom.Dataset()) is None
    seg = mds.seg.segread(case_paths["binary"])  # Segmentation.from_dataset converted the items
    assert segment_sequence_key(seg) is None


def test_a_changed_segmentation_passed_in_is_never_cached(case_paths):
    path = case_paths["binary"]
    load_seg_array(str(path))
    seg = mds.seg.segread(path)
    seg.get_segment_description(2).SegmentLabel = "in memory"
    labels = [entry["label"] for entry in json.loads(load_seg_array(seg).meta["segments"])]
    assert labels == ["liver", "in memory", "kidney"]
    assert segment_table_cache_info()["hits"] == 0


def test_callers_get_new_objects(case_paths):
    path = case_paths["binary"]
    dataset = read_segmentation_dataset(path)
    key = segment_sequence_key(dataset)
    seg = mds.seg.Segmentation.from_dataset(dataset, copy=False)
    first = cached_segment_table(seg, key)
    first[0]["label"] = "mutated"
    first[0]["type"]["meaning"] = "mutated"
    again = cached_segment_table(seg, key)
    assert again == _fresh_table(path) and again[0]["label"] == "liver"
    assert segment_table_cache_info()["hits"] == 1


def test_cache_is_bounded_lru(case_paths, tmp_path, monkeypatch):
    monkeypatch.setattr(segments_module, "SEGMENT_TABLE_CACHE_SIZE", 2)
    path = case_paths["binary"]
    files = [_relabelled_copy(path, b"kidney", name, tmp_path / f"{i}.dcm")
             for i, name in enumerate((b"kidnea", b"kidneb", b"kidnec"))]
    for file in files:
        load_seg_array(str(file))
    assert segment_table_cache_info()["size"] == 2
    load_seg_array(str(files[2]))  # most recent: kept
    assert segment_table_cache_info()["hits"] == 1
    load_seg_array(str(files[0]))  # least recent: evicted first
    assert segment_table_cache_info()["hits"] == 1 and segment_table_cache_info()["size"] == 2


def test_uncacheable_key_computes(case_paths):
    seg = mds.seg.segread(case_paths["labelmap"])
    assert cached_segment_table(seg, None) == _fresh_table(case_paths["labelmap"])
    assert segment_table_cache_info() == {"hits": 0, "misses": 0, "size": 0,
                                          "maxsize": segments_module.SEGMENT_TABLE_CACHE_SIZE}


def test_errors_are_not_cached(case_paths, tmp_path):
    """A file whose Segmented Property Type item is broken raises every time (nothing cached)."""
    path = case_paths["binary"]
    dataset = pydicom.dcmread(path)
    dataset.SegmentSequence[1].SegmentedPropertyTypeCodeSequence.append(
        dataset.SegmentSequence[1].SegmentedPropertyTypeCodeSequence[0])
    broken = tmp_path / "broken.dcm"
    dataset.save_as(broken)
    for _ in range(2):
        with pytest.raises(mds.errors.DecodeError, match="must hold exactly 1 item"):
            load_seg_array(str(broken))
    assert segment_table_cache_info()["size"] == 0


def test_threads_share_the_cache(case_paths):
    expected = {kind: _fresh_table(path) for kind, path in case_paths.items()}
    results: list = []
    errors: list = []

    def work(kind: str) -> None:
        try:
            for _ in range(5):
                results.append((kind, json.loads(load_seg_array(str(case_paths[kind])).meta["segments"])))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(kind,)) for kind in ("binary", "labelmap") * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 30 and all(table == expected[kind] for kind, table in results)
    info = segment_table_cache_info()
    assert info["hits"] + info["misses"] == 30 and info["size"] == 2


def _child_table(path: str, queue) -> None:
    loaded = load_seg_array(path)
    queue.put((json.loads(loaded.meta["segments"]), segment_table_cache_info()["hits"]))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_forked_worker_inherits_the_filled_cache(case_paths):
    path = str(case_paths["binary"])
    load_seg_array(path)  # filled before the fork, as a DataLoader's main process would
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_table, args=(path, queue))
    child.start()
    table, hits = queue.get(timeout=120)
    child.join(timeout=120)
    assert child.exitcode == 0
    assert table == _fresh_table(case_paths["binary"]) and hits == 1


# ----------------------------------------------------------------------------- threshold by comparison


@settings(max_examples=60, deadline=None)
@given(maximum=st.integers(1, 255),
       threshold=st.sampled_from([1e-6, 0.25, 0.5, 0.75, 1.0]) | st.floats(1e-6, 1.0))
def test_passing_rule_equals_the_lookup_table(maximum, threshold):
    table = passing_table(threshold, maximum)
    stored = np.arange(256, dtype=np.uint8).reshape(4, 8, 8)
    np.testing.assert_array_equal(passing_rule(table)(stored), table[stored])


@pytest.mark.parametrize("maximum, threshold", [(255, 0.5), (65535, 0.5), (1000, 1.0), (3, 0.34)])
def test_passing_rule_sixteen_bit(maximum, threshold):
    table = passing_table(threshold, maximum, 1 << 16)
    stored = np.arange(1 << 16, dtype=np.uint16)
    np.testing.assert_array_equal(passing_rule(table)(stored), table[stored])


def test_passing_rule_boundary_values():
    table = passing_table(0.5, 255)  # 127/255 < 0.5 <= 128/255
    passes = passing_rule(table)
    assert not passes(np.array([127], np.uint8))[0] and passes(np.array([128], np.uint8))[0]
    nothing = np.zeros(256, dtype=bool)  # a table where nothing passes
    assert not passing_rule(nothing)(np.arange(256, dtype=np.uint8)).any()
    odd = np.zeros(256, dtype=bool)
    odd[[3, 7]] = True  # not False-then-True: the lookup is kept
    stored = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(passing_rule(odd)(stored), odd[stored])


# ----------------------------------------------------------------------------- block-wise plane copies


@settings(max_examples=40, deadline=None)
@given(planes=st.integers(1, 3 * PLANE_BLOCK + 1), transpose=st.booleans(), flip=st.booleans(),
       seed=st.integers(0, 2**16))
def test_copy_planes_equals_assignment(planes, transpose, flip, seed):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 255, size=(planes, 5, 7), dtype=np.uint8)
    base = np.zeros((7, 5, planes), np.uint8) if transpose else np.zeros((planes, 5, 7), np.uint8)
    out = base.transpose(2, 1, 0) if transpose else base
    out = out[::-1] if flip else out
    expected = np.zeros_like(out)
    expected[...] = values
    copy_planes(out, values)
    np.testing.assert_array_equal(out, expected)


def test_copy_planes_broadcasts_like_assignment():
    out = np.zeros((3, 4), np.uint8)
    copy_planes(out, np.uint8(5))
    assert (out == 5).all()
    copy_planes(out, np.arange(4, dtype=np.uint8))  # another shape: plain assignment
    np.testing.assert_array_equal(out, np.tile(np.arange(4, dtype=np.uint8), (3, 1)))


# ----------------------------------------------------------------------------- FRACTIONAL label slabs

FRAMES = 2 * PLANE_BLOCK + 3  # slabs start at different offsets and one is cut by the end


@pytest.fixture(scope="module")
def long_series():
    return synthetic.make_ct_series(shape=(FRAMES, 4, 3), seed=3)


def _fractional(datasets: list, fractions: np.ndarray) -> mds.seg.Segmentation:
    described = [
        mds.seg.SegmentDescription(
            segment_number=i + 1, segment_label=f"s{i + 1}", segmented_property_category=codes.SCT.Organ,
            segmented_property_type=codes.SCT.Liver, algorithm_type=mds.seg.SegmentAlgorithmTypeValues.MANUAL)
        for i in range(fractions.shape[-1])
    ]
    return mds.seg.Segmentation(
        source_images=datasets, pixel_array=fractions, segmentation_type="FRACTIONAL",
        segment_descriptions=described, series_instance_uid=mds.UID(), sop_instance_uid=mds.UID(),
        omit_empty_frames=True, **COMMON)


@st.composite
def slab_cases(draw):
    n = draw(st.integers(1, 3))
    present = draw(st.lists(st.booleans(), min_size=FRAMES, max_size=FRAMES))  # empty frames are omitted
    stored = np.array(draw(st.lists(st.sampled_from([0, 100, 128, 200, 255]), min_size=FRAMES * 12 * n,
                                    max_size=FRAMES * 12 * n)), dtype=np.float32)
    fractions = (stored / 255).reshape(FRAMES, 4, 3, n)
    fractions[~np.asarray(present)] = 0
    return fractions, draw(st.sampled_from([0.3, 0.5, 0.502, 1.0])), draw(st.booleans())


@settings(max_examples=25, deadline=None)
@given(case=slab_cases())
def test_fractional_labels_across_slabs_equal_float_rule(long_series, case):
    fractions, threshold, skip = case
    seg = _fractional(long_series, fractions)
    stacked = load_seg_array(seg, mode="stacked")
    masks = stacked.array >= np.float32(threshold)
    overlapping = int(np.count_nonzero(masks.sum(axis=0) > 1))
    if overlapping and not skip:
        with pytest.raises(OverlapError, match=rf": {overlapping} voxel\(s\) are >= threshold"):
            load_seg_array(seg, mode="labelmap", threshold=threshold)
        return
    expected = np.zeros(masks.shape[1:], dtype=np.uint8)
    for channel, value in enumerate(json.loads(stacked.meta["channel_values"])):
        expected[masks[channel]] = value  # ascending values: the highest wins
    got = load_seg_array(seg, mode="labelmap", threshold=threshold, skip_overlap_checks=skip).array
    assert got.dtype == np.uint8 and got.shape == (1, *expected.shape)
    np.testing.assert_array_equal(got[0], expected)


def test_painting_keeps_what_out_held_on_planes_no_frame_paints():
    """The slab copy starts from ``out``: a plane inside a painted slab that no frame touches keeps its values
    (a zero-filled copy would write it back as 0), and painted planes keep their unpainted voxels."""
    from monai_dicomseg.io.fractional_labels import PLANE_BLOCK, _Slab

    out = np.arange(3 * 4 * 10, dtype=np.uint8).reshape(4, 3, 10).transpose(2, 1, 0)  # (10, 3, 4), transposed
    expected = out.copy()
    slab = _Slab(out)
    slab.plane(2)[0, 0] = 99  # plane 2 painted at one voxel; planes 3..9 of the slab untouched
    slab.flush()
    expected[2, 0, 0] = 99
    assert PLANE_BLOCK > 1
    np.testing.assert_array_equal(out, expected)


def test_a_zero_filled_slab_paints_what_a_copied_one_paints():
    """``zero_filled`` (the caller's fresh np.zeros) starts the slab from zeros instead of reading ``out``:
    the same array as the copying slab on a zero ``out``; on an ``out`` that is not zero it would differ,
    which is why only callers that just made ``out`` with np.zeros pass it."""
    from monai_dicomseg.io.fractional_labels import _Slab

    def painted(out, zero_filled):
        slab = _Slab(out, zero_filled)
        for position in (0, 3, 9, 12):
            slab.plane(position)[position % 3, 1] = position + 1
        slab.flush()
        return out

    zero = lambda: np.zeros((4, 3, 13), dtype=np.uint8).transpose(2, 1, 0)  # noqa: E731  # (13, 3, 4), transposed
    np.testing.assert_array_equal(painted(zero(), True), painted(zero(), False))
    held = np.ones((4, 3, 13), dtype=np.uint8).transpose(2, 1, 0)
    assert painted(held.copy(), False)[1].min() == 1  # the copying slab keeps what out held
