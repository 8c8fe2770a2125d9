"""MONAI's 3D spleen-segmentation tutorial chain with only the loaders swapped for ours (issue 21).

The tutorial (``Project-MONAI/tutorials``, ``3d_segmentation/spleen_segmentation_3d``)
loads with ``LoadImaged`` and then runs ``EnsureChannelFirstd``. Here the
loaders are ``LoadDicomSeriesd("image")`` + ``LoadDicomSegd("label",
ref_key="image")`` and everything after them is the tutorial's, unchanged,
except where the small ``data/ct1`` volume (64 x 64 x 16 voxels of
0.8 x 0.8 x 2.5 mm; 34 x 34 x 20 voxels after ``Spacingd``) needs it: the
random crops are ``(24, 24, 16)`` instead of ``(96, 96, 96)``, which would
not fit. ``pixdim=(1.5, 1.5, 2.0)`` and the intensity window are the tutorial's.

The image of ``data/ct1`` encodes its organs (``monai_dicomseg.synthetic.labels_to_hounsfield``):
label value ``v`` is drawn at ``ORGAN_HU[v - 1]`` HU plus a texture of at most
3 HU, so after ``ScaleIntensityRanged`` every label voxel inside an organ must
carry that organ's scaled value: a label on the wrong grid (the issue's
22-56 %) fails this.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from monai.data import DataLoader, Dataset, list_data_collate
from monai.transforms import (
    Compose,
    CropForegroundd,
    EnsureChannelFirstd,
    Orientationd,
    RandCropByPosNegLabeld,
    ScaleIntensityRanged,
    Spacingd,
)

import monai_dicomseg as mds
from monai_dicomseg.synthetic import ORGAN_HU

DATA = Path(__file__).resolve().parents[2] / "data" / "ct1"
A_MIN, A_MAX = -57.0, 164.0  # the tutorial's ScaleIntensityRanged window
TEXTURE_HU = 3  # labels_to_hounsfield adds at most +-3 HU
CROP = (24, 24, 16)  # tutorial: (96, 96, 96); data/ct1 is 34 x 34 x 20 voxels after Spacingd


def _loaders() -> list:
    return [mds.LoadDicomSeriesd("image"), mds.LoadDicomSegd("label", ref_key="image")]


def _tutorial_tail(train: bool) -> list:
    """The tutorial's transforms after LoadImaged, unchanged but for CROP."""
    tail = [
        EnsureChannelFirstd(keys=["image", "label"]),
        ScaleIntensityRanged(keys=["image"], a_min=A_MIN, a_max=A_MAX, b_min=0.0, b_max=1.0, clip=True),
        CropForegroundd(keys=["image", "label"], source_key="image"),
        Orientationd(keys=["image", "label"], axcodes="RAS"),
        Spacingd(keys=["image", "label"], pixdim=(1.5, 1.5, 2.0), mode=("bilinear", "nearest")),
    ]
    if train:
        tail.append(RandCropByPosNegLabeld(keys=["image", "label"], label_key="label", spatial_size=CROP, pos=1,
                                           neg=1, num_samples=4, image_key="image", image_threshold=0))
    return tail


def _data() -> list[dict[str, str]]:
    return [{"image": str(DATA / "series"), "label": str(DATA / "seg_labelmap.dcm")},
            {"image": str(DATA / "series"), "label": str(DATA / "seg_binary.dcm")}]


def _organ_value(label: int) -> float:
    """The scaled image value of organ ``label`` (label values are the generation labels 1, 2, 3)."""
    return float(np.clip((ORGAN_HU[label - 1] - A_MIN) / (A_MAX - A_MIN), 0.0, 1.0))


def _interior(label: np.ndarray) -> np.ndarray:
    """Voxels whose 3 x 3 x 5 neighbourhood, inside the crop, holds one label value.

    Spacingd interpolates the image bilinearly from the 0.8 x 0.8 x 2.5 mm grid
    onto 1.5 x 1.5 x 2.0 mm: away from an organ's border (one output voxel in
    x, y; two in z, where the input spacing is larger) no other tissue mixes in.
    """
    reach = (1, 1, 2)
    padded = np.pad(label, [(r, r) for r in reach], mode="constant", constant_values=-1)
    same = np.ones(label.shape, dtype=bool)
    x, y, z = label.shape
    for dx in range(2 * reach[0] + 1):
        for dy in range(2 * reach[1] + 1):
            for dz in range(2 * reach[2] + 1):
                same &= padded[dx:dx + x, dy:dy + y, dz:dz + z] == label
    return same


def _assert_labels_on_organs(image: torch.Tensor, label: torch.Tensor) -> int:
    """Every interior label voxel carries its organ's scaled value; returns how many were checked."""
    image_np, label_np = image[0].numpy(), label[0].numpy().astype(np.int64)
    interior = _interior(label_np)
    checked = 0
    for value in (1, 2, 3):
        where = interior & (label_np == value)
        tolerance = TEXTURE_HU / (A_MAX - A_MIN) + 1e-4
        np.testing.assert_allclose(image_np[where], _organ_value(value), atol=tolerance,
                                   err_msg=f"label {value} is not on its organ")
        checked += int(where.sum())
    return checked


def _native_organs() -> tuple[np.ndarray, np.ndarray]:
    """Organ value of every voxel of data/ct1 read from its CT numbers, and the (X, Y, Z) index -> RAS affine."""
    image = mds.LoadDicomSeriesd("image")({"image": str(DATA / "series")})["image"]
    hu = image[0].numpy()
    organs = np.zeros(hu.shape, dtype=np.int64)
    for value, organ_hu in enumerate(ORGAN_HU[:3], start=1):
        organs[np.abs(hu - organ_hu) <= TEXTURE_HU] = value
    return organs, image.affine.numpy()


def _assert_label_matches_native_organs(label: torch.Tensor, organs: np.ndarray, affine: np.ndarray) -> int:
    """Each voxel of a transformed label equals the organ under its centre on the native grid.

    Spacingd's nearest-neighbour label takes the native voxel nearest to the
    centre; a centre exactly half-way between two native voxels may go either
    way, so those few voxels are left out. Returns the number of voxels compared.
    """
    values = label[0].numpy().astype(np.int64)
    index = np.indices(values.shape).reshape(3, -1)
    homogeneous = np.vstack([index, np.ones((1, index.shape[1]))])
    native = (np.linalg.inv(affine) @ label.affine.numpy() @ homogeneous)[:3]
    tie = (np.abs(np.abs(native - np.floor(native)) - 0.5) < 1e-3).any(axis=0)
    nearest = np.rint(native).astype(np.int64)
    inside = np.all((nearest >= 0) & (nearest < np.asarray(organs.shape)[:, None]), axis=0) & ~tie
    expected = organs[tuple(nearest[:, inside])]
    np.testing.assert_array_equal(values.reshape(-1)[inside], expected, err_msg="label is off its organs")
    return int(inside.sum())


def test_ensure_channel_first_after_our_loaders_is_a_no_op():
    loaded = Compose(_loaders())(_data()[0])
    after = EnsureChannelFirstd(keys=["image", "label"])(dict(loaded))
    for key in ("image", "label"):
        assert loaded[key].shape == after[key].shape and loaded[key].ndim == 4
        assert torch.equal(loaded[key], after[key])
        assert after[key].meta["original_channel_dim"] == 0
    assert loaded["image"].shape[1:] == loaded["label"].shape[1:] == (64, 64, 16)


def test_without_ensure_channel_first_the_tutorial_adds_the_channel():
    """The other side: ensure_channel_first=False loads (X, Y, Z) with 'no_channel'; EnsureChannelFirstd adds it."""
    data = _data()[0]
    default = mds.LoadDicomSeriesd("image")(dict(data))["image"]
    bare = mds.LoadDicomSeriesd("image", ensure_channel_first=False)(dict(data))["image"]
    assert bare.shape == (64, 64, 16) and bare.meta["original_channel_dim"] == "no_channel"
    added = EnsureChannelFirstd(keys="image")({"image": bare})["image"]
    assert added.shape == default.shape == (1, 64, 64, 16)
    assert torch.equal(added, default)
    assert torch.equal(added.affine, default.affine)


def test_spleen_tutorial_train_chain_through_a_dataloader():
    transform = Compose(_loaders() + _tutorial_tail(train=True))
    loader = DataLoader(Dataset(_data(), transform=transform), batch_size=2, num_workers=2,
                        collate_fn=list_data_collate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # MONAI's own warnings about torch/workers
        batches = list(loader)
    assert len(batches) == 1
    batch = batches[0]
    assert batch["image"].shape == batch["label"].shape[:1] + batch["image"].shape[1:]
    assert tuple(batch["image"].shape) == (8, 1, *CROP)  # 2 items x num_samples=4
    assert tuple(batch["label"].shape) == (8, 1, *CROP)
    organs, native_affine = _native_organs()
    interior = compared = 0
    for image, label in zip(batch["image"], batch["label"]):
        assert image.ndim == label.ndim == 4
        interior += _assert_labels_on_organs(image, label)
        compared += _assert_label_matches_native_organs(label, organs, native_affine)
    assert int((batch["label"] > 0).sum()) > 0 and interior > 0
    assert compared > 0.5 * batch["label"].numel()


def test_spleen_tutorial_val_chain():
    transform = Compose(_loaders() + _tutorial_tail(train=False))
    for data in _data():
        out = transform(data)
        image, label = out["image"], out["label"]
        assert image.ndim == label.ndim == 4 and image.shape == label.shape
        assert image.shape[0] == 1
        assert torch.allclose(image.affine, label.affine)
        np.testing.assert_allclose(image.pixdim.numpy(), (1.5, 1.5, 2.0), atol=1e-6)
        assert set(np.unique(label.numpy()).tolist()) == {0, 1, 2, 3}
        assert _assert_labels_on_organs(image, label) > 0
        assert _assert_label_matches_native_organs(label, *_native_organs()) > 0.5 * label.numel()

