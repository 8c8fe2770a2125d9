"""Batches of mixed SEGs: every metadata key collates, and decollation gives back single loading.

Eight cases with 1-5 segments, numbered in different orders (segment 1 is not
always the same organ), of all three types (BINARY, LABELMAP, FRACTIONAL with a
threshold), written by our writer and by highdicom on synthetic CT series.
``DicomSegDataset`` / ``CacheDataset`` / ``PersistentDataset`` +
``DataLoader(batch_size=4, num_workers=2)`` + ``decollate_batch`` run without a
``label_map``; each item's metadata after decollation equals what loading that
item alone gives.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch
from monai.data import CacheDataset, DataLoader, PersistentDataset, decollate_batch, list_data_collate
from monai.transforms import Compose, Invertd, Orientationd
from pydicom.sr.codedict import codes

import monai_dicomseg as mds
from monai_dicomseg import synthetic
from monai_dicomseg.io.segload import META_KEYS, SERIES_META_KEYS
from monai_cases import COMMON, truth_on_grid

SHAPE = (6, 12, 10)
ORGANS = ["liver", "spleen", "kidney", "pancreas", "stomach"]
CODES = [codes.SCT.Liver, codes.SCT.Spleen, codes.SCT.Kidney, codes.SCT.Pancreas, codes.SCT.Stomach]

# (organ order: segment number n is ORGANS[order[n - 1]], SegmentationType, producer)
CASES = [
    ([0], "BINARY", "ours"),
    ([1, 0], "BINARY", "highdicom"),
    ([2, 0, 1], "LABELMAP", "ours"),
    ([3, 1, 0, 2], "FRACTIONAL", "ours"),
    ([4, 3, 2, 1, 0], "BINARY", "ours"),
    ([0, 4], "LABELMAP", "highdicom"),
    ([1, 2, 3], "FRACTIONAL", "highdicom"),
    ([4, 0, 2, 1, 3], "LABELMAP", "ours"),
]
THRESHOLD = 0.5


def _write_case(folder: Path, order: list[int], seg_type: str, producer: str, seed: int) -> dict[str, Any]:
    labels = synthetic.make_ellipsoid_labels(SHAPE, n_labels=len(order), seed=seed)
    datasets = synthetic.make_ct_series(shape=SHAPE, labels=labels, seed=seed)
    synthetic.write_series(datasets, folder / "series")
    if producer == "highdicom":
        import highdicom as module
    else:
        module = mds
    numbers = np.arange(1, len(order) + 1, dtype=labels.dtype)
    if seg_type == "LABELMAP":
        pixels: np.ndarray = labels
    elif seg_type == "FRACTIONAL":
        # 0.75 inside the segment; 0.25 over the other organs (dropped by the threshold)
        inside = labels[..., None] == numbers
        pixels = np.where(inside, 0.75, np.where(labels[..., None] > 0, 0.25, 0.0)).astype(np.float32)
    else:
        pixels = labels[..., None] == numbers
    descriptions = [
        module.seg.SegmentDescription(
            segment_number=n, segment_label=ORGANS[i], segmented_property_category=codes.SCT.Organ,
            segmented_property_type=CODES[i], algorithm_type=module.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for n, i in enumerate(order, start=1)
    ]
    seg = module.seg.Segmentation(
        source_images=datasets, pixel_array=pixels, segmentation_type=seg_type,
        segment_descriptions=descriptions, series_instance_uid=module.UID(), sop_instance_uid=module.UID(),
        **({"max_fractional_value": 255} if seg_type == "FRACTIONAL" else {}), **COMMON,
    )
    seg_path = folder / "seg.dcm"
    seg.save_as(seg_path)
    return {"image": str(folder / "series"), "label": str(seg_path), "labels": labels, "datasets": datasets,
            "order": order, "type": seg_type}


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    return [_write_case(root / f"case{i}", *spec, seed=i) for i, spec in enumerate(CASES)]


def _datalist(cases: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"image": c["image"], "label": c["label"]} for c in cases]


def _plain(value: Any) -> Any:
    """Metadata value as plain Python (tensors/arrays -> lists, 0-d -> scalars)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _meta(tensor: Any, keys: Any) -> dict[str, Any]:
    return {key: _plain(tensor.meta[key]) for key in keys}


def _assert_same_meta(got: Any, expected: Any, keys: Any) -> None:
    got_meta, expected_meta = _meta(got, keys), _meta(expected, keys)
    for key in keys:
        if isinstance(expected_meta[key], float) or key.endswith("affine"):
            np.testing.assert_allclose(got_meta[key], expected_meta[key], err_msg=key)
        else:
            assert got_meta[key] == expected_meta[key], key


def test_meta_keys_are_documented_and_present(cases):
    label = mds.LoadDicomSeg(threshold=THRESHOLD)(cases[3]["label"])
    image = mds.LoadDicomSeries()(cases[3]["image"])
    assert set(META_KEYS) - {"affine"} <= set(label.meta)
    assert set(SERIES_META_KEYS) - {"affine"} <= set(image.meta)
    assert all(isinstance(text, str) and text for text in {**META_KEYS, **SERIES_META_KEYS}.values())
    for key in META_KEYS:  # each value is a str, a number or a fixed-shape array: nothing of variable length
        value = label.meta[key]
        assert isinstance(value, (str, int, float, np.ndarray, torch.Tensor)), (key, type(value))


def test_single_loading_matches_truth(cases):
    # each SEG's own numbers (the dataset vocabulary is tested in tests/data/test_vocabulary.py)
    dataset = mds.DicomSegDataset(_datalist(cases), threshold=THRESHOLD, numbering="per_file")
    for index, case in enumerate(cases):
        item = dataset[index]
        image, label = item["image"], item["label"]
        assert label.shape == (1, *image.shape[1:])
        truth = truth_on_grid(case["labels"], case["datasets"], np.asarray(image.affine), tuple(image.shape[1:]))
        np.testing.assert_array_equal(np.asarray(label[0]), truth)
        parsed = mds.segments_from_meta(label.meta)
        assert [row["label"] for row in parsed["segments"]] == [ORGANS[i] for i in case["order"]]
        assert parsed["channel_values"] == [0, *range(1, len(case["order"]) + 1)]
        assert label.meta["segmentation_type"] == case["type"]
        assert label.meta["threshold"] == (THRESHOLD if case["type"] == "FRACTIONAL" else 0.0)


@pytest.mark.parametrize("kind", ["dataset", "cache", "persistent"])
def test_batches_decollate_to_single_loading(cases, tmp_path, kind):
    dataset = mds.DicomSegDataset(_datalist(cases), threshold=THRESHOLD)
    single = [dataset[i] for i in range(len(cases))]
    if kind == "cache":
        source: Any = CacheDataset(dataset.data, dataset.transform, progress=False)
    elif kind == "persistent":
        source = PersistentDataset(dataset.data, dataset.transform, cache_dir=tmp_path / "cache")
    else:
        source = dataset
    loader = DataLoader(source, batch_size=4, num_workers=2, shuffle=False)
    items = []
    for batch in loader:
        assert batch["label"].shape == (4, 1, *SHAPE[::-1][:2], SHAPE[0])
        assert len(batch["label"].meta["segments"]) == 4  # one JSON string per item
        items.extend(decollate_batch(batch))
    assert len(items) == len(cases)
    for item, expected in zip(items, single):
        assert torch.equal(item["label"].as_tensor(), expected["label"].as_tensor())
        np.testing.assert_allclose(np.asarray(item["label"].affine), np.asarray(expected["label"].affine))
        _assert_same_meta(item["label"], expected["label"], [k for k in META_KEYS if k != "affine"])
        _assert_same_meta(item["image"], expected["image"], [k for k in SERIES_META_KEYS if k != "affine"])
        assert mds.segments_from_meta(item["label"].meta) == mds.segments_from_meta(expected["label"].meta)


def test_collated_meta_reads_per_item(cases):
    labels = [mds.LoadDicomSeg(threshold=THRESHOLD)(c["label"], mds.LoadDicomSeries()(c["image"]))
              for c in cases[:4]]
    batch = list_data_collate([{"label": t} for t in labels])
    parsed = mds.segments_from_meta(batch["label"].meta)
    assert [len(rows) for rows in parsed["segments"]] == [1, 2, 3, 4]
    assert parsed["channel_values"] == [[0, 1], [0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3, 4]]


def test_stacked_metadata_collates(cases):
    """Stacked labels of different channel counts: the metadata collates (tensors cannot batch)."""
    loader = mds.LoadDicomSeg(mode="stacked", threshold=THRESHOLD)
    labels = [loader(c["label"]) for c in cases]
    assert sorted({t.shape[0] for t in labels}) == [1, 2, 3, 4, 5]
    metas = [dict(t.meta) for t in labels]
    batch = list_data_collate(metas)
    for item, expected in zip(decollate_batch(batch), metas):
        assert {k: _plain(item[k]) for k in META_KEYS if k != "affine"} == {
            k: _plain(expected[k]) for k in META_KEYS if k != "affine"}
    parsed = [mds.segments_from_meta(m) for m in metas]
    assert [p["channel_values"] for p in parsed] == [list(range(1, len(c["order"]) + 1)) for c in cases]
    assert all(t.dtype == torch.uint8 for t in labels)  # FRACTIONAL thresholded too


def test_stacked_with_label_map_batches(cases):
    label_map = {name: value for value, name in enumerate(ORGANS, start=1)}
    dataset = mds.DicomSegDataset(_datalist(cases), mode="stacked", label_map=label_map, threshold=THRESHOLD)
    batches = list(DataLoader(dataset, batch_size=4, num_workers=0))
    assert batches[0]["label"].shape[:2] == (4, 5)
    for index, item in enumerate(decollate_batch(batches[0])):
        case = cases[index]
        assert json.loads(item["label"].meta["channel_values"]) == [1, 2, 3, 4, 5]
        truth = truth_on_grid(case["labels"], case["datasets"], np.asarray(item["image"].affine),
                              tuple(item["image"].shape[1:]))
        for number, organ in enumerate(case["order"], start=1):
            np.testing.assert_array_equal(np.asarray(item["label"][organ]), truth == number)


def test_invertd_after_decollation(cases):
    pre = Compose([mds.LoadDicomSeriesd("image"), mds.LoadDicomSegd("label", ref_key="image", threshold=THRESHOLD),
                   Orientationd(keys=["image", "label"], axcodes="LPS")])
    loaded = Compose([mds.LoadDicomSeriesd("image"),
                      mds.LoadDicomSegd("label", ref_key="image", threshold=THRESHOLD)])
    data = _datalist(cases)[:4]
    batch = list_data_collate([pre(d) for d in data])
    invert = Invertd(keys="label", transform=pre, orig_keys="label", nearest_interp=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for item, original in zip(decollate_batch(batch), data):
            inverted = invert(item)["label"]
            expected = loaded(original)["label"]
            np.testing.assert_array_equal(np.asarray(inverted), np.asarray(expected))
            np.testing.assert_allclose(np.asarray(inverted.affine), np.asarray(expected.affine), atol=1e-5)
            assert mds.segments_from_meta(inverted.meta) == mds.segments_from_meta(expected.meta)


def test_reader_metadata_collates(cases):
    """``LoadImage(reader=DicomSegReader())`` metadata of every case collates and decollates unchanged."""
    from monai.transforms import LoadImage

    load = LoadImage(reader=mds.DicomSegReader(threshold=THRESHOLD), image_only=True)
    labels = [load(c["label"]) for c in cases]
    metas = [dict(t.meta) for t in labels]
    assert all(set(META_KEYS) - {"affine"} <= set(m) for m in metas)
    for item, expected in zip(decollate_batch(list_data_collate(metas)), metas):
        for key in expected:
            if key.endswith("affine") or isinstance(expected[key], float):
                np.testing.assert_allclose(_plain(item[key]), _plain(expected[key]), err_msg=key)
            else:
                assert _plain(item[key]) == _plain(expected[key]), key


@pytest.fixture(scope="module")
def loaded(cases):
    dataset = mds.DicomSegDataset(_datalist(cases), threshold=THRESHOLD)
    return [dataset[i] for i in range(len(cases))]


@given(st.lists(st.integers(0, len(CASES) - 1), min_size=1, max_size=6))
@settings(max_examples=20, deadline=None)
def test_any_mix_collates_and_decollates(loaded, indices):
    """Property: any batch of the cases (any order, repeats) collates; items come back unchanged."""
    batch = list_data_collate([loaded[i] for i in indices])
    assert batch["label"].shape[0] == len(indices)
    for item, index in zip(decollate_batch(batch), indices):
        assert torch.equal(item["label"].as_tensor(), loaded[index]["label"].as_tensor())
        _assert_same_meta(item["label"], loaded[index]["label"], [k for k in META_KEYS if k != "affine"])
