"""``on_error="skip"``: a broken case contributes zero samples and crashes nothing after it.

``LoadDicomSegd`` returns ``[]`` for a skipped case: MONAI's ``Compose`` maps the
following transforms over the list (zero times), ``list_data_collate`` flattens
lists of samples (``RandCropByPosNegLabeld``) and ``collate_skip_none`` drops the
empty ones when nothing produces lists.
"""
from __future__ import annotations

import re
import warnings

import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.transforms import Compose, LoadImaged, Orientationd, RandCropByPosNegLabeld

from monai_dicomseg import DicomSegDataset, LoadDicomSegd, LoadDicomSeriesd, collate_skip_none
from monai_cases import make_case

SHAPE = (8, 16, 16)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("skip")
    cases = [make_case(root / f"case{i}", shape=SHAPE, seed=i) for i in range(4)]
    garbage = root / "garbage.dcm"
    garbage.write_bytes(b"not a dicom file" * 20)
    items = [{"image": str(c.series_folder), "label": str(c.seg_path)} for c in cases]
    broken = [
        {**items[1], "label": str(garbage)},  # not DICOM
        {**items[1], "label": str(root / "missing.dcm")},  # missing file
        {**items[1], "label": items[2]["label"]},  # a SEG of another series (and frame of reference)
    ]
    return items, broken


def _image_loader(reader: str):
    if reader == "PydicomReader":
        return LoadImaged("image", reader="PydicomReader", ensure_channel_first=True, image_only=True)
    return LoadDicomSeriesd("image")


def _run(loader) -> list:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(loader)


@pytest.mark.parametrize("broken_index", [0, 1, 2], ids=["not_dicom", "missing", "other_series"])
@pytest.mark.parametrize("reader", ["dicomseg", "PydicomReader"])
def test_skip_with_random_crop_in_workers(data, reader, broken_index):
    items, broken = data
    datalist = [items[0], broken[broken_index], items[2], items[3]]
    transform = Compose([
        _image_loader(reader),
        LoadDicomSegd("label", ref_key="image", on_error="skip"),
        Orientationd(keys=["image", "label"], axcodes="RAS"),
        RandCropByPosNegLabeld(keys=["image", "label"], label_key="label", spatial_size=(8, 8, 4),
                               pos=1, neg=1, num_samples=2),
    ])
    loader = DataLoader(Dataset(datalist, transform), batch_size=2, num_workers=2)
    batches = _run(loader)
    # 3 good cases x 2 crops each; the broken case contributes nothing
    assert sum(b["label"].shape[0] for b in batches) == 6
    assert all(b["image"].shape[1:] == (1, 8, 8, 4) for b in batches)
    names = {name for b in batches for name in b["label"].meta["filename_or_obj"]}
    assert names == {items[0]["label"], items[2]["label"], items[3]["label"]}


def test_skip_without_crop_uses_collate_skip_none(data):
    items, broken = data
    datalist = [broken[0], items[0], items[2], broken[1], items[3]]
    transform = Compose([LoadDicomSeriesd("image"), LoadDicomSegd("label", ref_key="image", on_error="skip"),
                         Orientationd(keys=["image", "label"], axcodes="RAS")])
    loader = DataLoader(Dataset(datalist, transform), batch_size=2, num_workers=2, collate_fn=collate_skip_none)
    batches = [b for b in _run(loader) if b is not None]
    assert sum(b["label"].shape[0] for b in batches) == 3
    assert all(b["label"].shape[1:] == (1, 16, 16, 8) for b in batches)


def test_dicom_seg_dataset_skip(data):
    items, broken = data
    dataset = DicomSegDataset([items[0], broken[2], items[3]], on_error="skip",
                              transform=[Orientationd(keys=["image", "label"], axcodes="LPS")])
    with pytest.warns(UserWarning, match=r"LoadDicomSegd\[key 'label'\] SEG .*seg\.dcm.*skipped"):
        assert dataset[1] == []
    loader = DataLoader(dataset, batch_size=3, num_workers=2, collate_fn=collate_skip_none)
    (batch,) = _run(loader)
    assert batch["label"].shape[0] == 2


def test_collate_skip_none():
    sample = {"x": torch.zeros(2)}
    assert collate_skip_none([None, [], None]) is None
    assert collate_skip_none([sample, [], None])["x"].shape == (1, 2)
    assert collate_skip_none([[sample, sample], [], sample])["x"].shape == (3, 2)


def test_skip_warns_and_raise_raises(data):
    items, broken = data
    with pytest.warns(UserWarning, match="garbage.dcm"):
        assert LoadDicomSegd("label", on_error="skip")(broken[0]) == []
    with pytest.raises(ValueError, match="garbage.dcm"):
        LoadDicomSegd("label")(broken[0])


def test_broken_series_is_skipped_too(data, tmp_path):
    items, _ = data
    empty = tmp_path / "empty_series"
    empty.mkdir()
    datalist = [items[0], {**items[1], "image": str(tmp_path / "no_series")}, {**items[2], "image": str(empty)},
                items[3]]
    with pytest.warns(UserWarning, match=r"LoadDicomSeriesd\[key 'image'\] series '.*no_series'.*skipped"):
        assert LoadDicomSeriesd("image", on_error="skip")(datalist[1]) == []
    transform = Compose([
        LoadDicomSeriesd("image", on_error="skip"), LoadDicomSegd("label", ref_key="image", on_error="skip"),
        RandCropByPosNegLabeld(keys=["image", "label"], label_key="label", spatial_size=(8, 8, 4), num_samples=2),
    ])
    batches = _run(DataLoader(Dataset(datalist, transform), batch_size=2, num_workers=2))
    assert sum(b["label"].shape[0] for b in batches) == 4
    loader = DataLoader(DicomSegDataset(datalist, on_error="skip"), batch_size=4, num_workers=2,
                        collate_fn=collate_skip_none)
    (batch,) = _run(loader)
    assert batch["label"].meta["filename_or_obj"] == [items[0]["label"], items[3]["label"]]
    with pytest.raises(RuntimeError, match="applying transform") as info:  # MONAI wraps transform errors
        DicomSegDataset(datalist)[2]
    assert re.search(r"LoadDicomSeriesd\[key 'image'\] series '.*empty_series'", str(info.value.__cause__))
