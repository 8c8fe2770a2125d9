"""Benchmark: a MONAI training loop with labels from SEG vs NIfTI (issue 25; MONAI #8468's question).

The 3D spleen tutorial's transforms (``EnsureChannelFirstd``, ``ScaleIntensityRanged``,
``CropForegroundd``, ``Orientationd``, ``Spacingd``, ``RandCropByPosNegLabeld``; see
tests/transforms/test_tutorial_chain.py), a ``DataLoader`` with 2 workers and no cache, and a small
3D UNet step (DiceCE loss, Adam) on synthetic CT cases (``monai_dicomseg.synthetic``). Every variant
loads the image the same way (``LoadDicomSeriesd``); only the label loader differs:

* ``seg-binary``, ``seg-labelmap``: ``LoadDicomSegd(ref_key="image")`` of a BINARY / LABELMAP SEG;
* ``seg-fractional``: ``LoadDicomSegd(..., mode="labelmap", threshold=0.5)`` of a FRACTIONAL SEG;
* ``nii-gz`` / ``nii``: ``LoadImaged`` of the same label map as compressed / uncompressed NIfTI.

Each variant runs in its own child process (``--epochs`` epochs after one warm-up epoch): items/s
(image-label pairs through the loader and the training step) and peak RSS of the main process and of its
loader workers (``ru_maxrss`` of the children), printed as ratios to ``nii-gz``; ``--no-train``
measures the loader alone.

Run: ``python benchmarks/training.py`` (a few minutes on 2 cores); ``--shape F R C``, ``--cases N``.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache" / "training"
VARIANTS = ["nii-gz", "nii", "seg-binary", "seg-labelmap", "seg-fractional"]
SEGMENTS = 6


def case_folder(shape, index: int) -> Path:
    return CACHE / f"{shape[0]}x{shape[1]}x{shape[2]}" / f"case{index}"


def build_case(shape, index: int) -> Path:
    """Series, three SEGs (BINARY, LABELMAP, FRACTIONAL) and the label map as .nii.gz / .nii (once)."""
    import nibabel

    import monai_dicomseg as mds
    from monai_dicomseg import synthetic
    from monai_dicomseg.sr.coding import CodedConcept

    folder = case_folder(shape, index)
    if (folder / "label.nii").exists():
        return folder
    labels = synthetic.make_ellipsoid_labels(shape, n_labels=SEGMENTS, seed=index)
    series = synthetic.make_ct_series(shape=shape, spacing=(2.0, 0.9, 0.9), labels=labels, seed=index)
    synthetic.write_series(series, folder / "series")
    descriptions = [mds.seg.SegmentDescription(
        segment_number=i, segment_label=f"organ {i}", segmented_property_category=CodedConcept(
            "123037004", "SCT", "Anatomical Structure"),
        segmented_property_type=CodedConcept("10200004", "SCT", "Liver"), algorithm_type="MANUAL")
        for i in range(1, SEGMENTS + 1)]
    for kind in ("BINARY", "LABELMAP", "FRACTIONAL"):
        pixels = labels
        if kind == "FRACTIONAL":  # 0.9 inside each organ, 0.3 one voxel around it: the threshold matters
            pixels = np.zeros((*shape, SEGMENTS), dtype=np.float32)
            for number in range(1, SEGMENTS + 1):
                inside = labels == number
                grown = inside.copy()
                for axis in range(3):
                    grown |= np.roll(inside, 1, axis) | np.roll(inside, -1, axis)
                pixels[..., number - 1] = np.where(inside, 0.9, np.where(grown, 0.3, 0.0))
        mds.seg.Segmentation(source_images=series, pixel_array=pixels, segmentation_type=kind,
                             segment_descriptions=descriptions, series_instance_uid=mds.UID(), series_number=300,
                             sop_instance_uid=mds.UID(), instance_number=1, manufacturer="x",
                             manufacturer_model_name="x", software_versions="1",
                             device_serial_number="1").save_as(folder / f"seg_{kind.lower()}.dcm")
    loaded = mds.LoadDicomSegd("label", ref_key="image")(
        mds.LoadDicomSeriesd("image")({"image": str(folder / "series"), "label": str(folder / "seg_labelmap.dcm")}))
    label = loaded["label"]
    array = np.asarray(label.numpy(), dtype=np.uint8)
    array = array.reshape(array.shape[-3:])  # (X, Y, Z): LoadImaged + EnsureChannelFirstd add the channel
    image = nibabel.Nifti1Image(array, np.asarray(label.affine, dtype=float))
    nibabel.save(image, folder / "label.nii.gz")
    nibabel.save(image, folder / "label.nii")
    return folder


def transforms(variant: str):
    from monai.transforms import (
        Compose, CropForegroundd, EnsureChannelFirstd, LoadImaged, Orientationd, RandCropByPosNegLabeld,
        ScaleIntensityRanged, Spacingd,
    )

    import monai_dicomseg as mds

    if variant.startswith("nii"):
        label = LoadImaged("label", image_only=True)
    elif variant == "seg-fractional":
        label = mds.LoadDicomSegd("label", ref_key="image", mode="labelmap", threshold=0.5)
    else:
        label = mds.LoadDicomSegd("label", ref_key="image")
    return Compose([
        mds.LoadDicomSeriesd("image"), label,
        EnsureChannelFirstd(keys=["image", "label"]),
        ScaleIntensityRanged(keys=["image"], a_min=-57, a_max=164, b_min=0.0, b_max=1.0, clip=True),
        CropForegroundd(keys=["image", "label"], source_key="image"),
        Orientationd(keys=["image", "label"], axcodes="RAS"),
        Spacingd(keys=["image", "label"], pixdim=(1.5, 1.5, 2.0), mode=("bilinear", "nearest")),
        RandCropByPosNegLabeld(keys=["image", "label"], label_key="label", spatial_size=(64, 64, 32), pos=1,
                               neg=1, num_samples=4, image_key="image", image_threshold=0),
    ])


def data(variant: str, folders: "list[Path]") -> "list[dict[str, str]]":
    name = {"nii-gz": "label.nii.gz", "nii": "label.nii", "seg-binary": "seg_binary.dcm",
            "seg-labelmap": "seg_labelmap.dcm", "seg-fractional": "seg_fractional.dcm"}[variant]
    return [{"image": str(folder / "series"), "label": str(folder / name)} for folder in folders]


def run_variant(variant: str, folders: "list[Path]", epochs: int, train: bool) -> dict:
    import torch
    from monai.data import DataLoader, Dataset, list_data_collate
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    loader = DataLoader(Dataset(data(variant, folders), transforms(variant)), batch_size=2, shuffle=True,
                        num_workers=2, collate_fn=list_data_collate)  # workers joined each epoch: RSS counted
    model = UNet(3, 1, SEGMENTS + 1, channels=(8, 16, 32), strides=(2, 2), num_res_units=1)
    loss_function = DiceCELoss(to_onehot_y=True, softmax=True)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)

    def epoch() -> int:
        items = 0
        for batch in loader:
            items += int(batch["image"].shape[0])
            if train:
                optimizer.zero_grad()
                loss = loss_function(model(batch["image"].as_tensor()), batch["label"].as_tensor().long())
                loss.backward()
                optimizer.step()
        return items

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        epoch()  # warm-up: workers started, imports done
        start = time.perf_counter()
        items = sum(epoch() for _ in range(epochs))
        seconds = time.perf_counter() - start
    return {"items_per_s": items / seconds, "seconds": seconds, "items": items,
            "main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "workers_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(64, 192, 192), metavar=("F", "R", "C"))
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--no-train", action="store_true", help="the loader alone (no UNet step)")
    parser.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = tuple(args.shape)
    folders = [case_folder(shape, index) for index in range(args.cases)]
    if args.child:
        print(json.dumps(run_variant(args.child, folders, args.epochs, not args.no_train)))
        return
    for index in range(args.cases):
        build_case(shape, index)
    print(f"{args.cases} cases {shape[1]}x{shape[2]}x{shape[0]}, {SEGMENTS} segments, {args.epochs} epochs, "
          f"{'loader only' if args.no_train else 'UNet step'}; DataLoader(num_workers=2), 4 crops per item")
    print(f"{'variant':<16}{'items/s':>9}{'main MB':>9}{'worker MB':>11}{'  vs nii-gz'}")
    results: dict[str, dict] = {}
    for variant in args.variants:
        command = [sys.executable, __file__, "--child", variant, "--shape", *map(str, shape), "--cases",
                   str(args.cases), "--epochs", str(args.epochs)] + (["--no-train"] if args.no_train else [])
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{variant:<16} failed: {done.stderr.strip().splitlines()[-3:]}")
            continue
        results[variant] = result = json.loads(done.stdout.strip().splitlines()[-1])
        base = results.get("nii-gz")
        versus = "" if base is None or variant == "nii-gz" else (
            f"  x{result['items_per_s'] / base['items_per_s']:.2f} items/s, "
            f"x{result['main_mb'] / base['main_mb']:.2f} main RSS, "
            f"x{result['workers_mb'] / max(base['workers_mb'], 1.0):.2f} worker RSS")
        print(f"{variant:<16}{result['items_per_s']:9.2f}{result['main_mb']:9.0f}{result['workers_mb']:11.0f}{versus}",
              flush=True)


if __name__ == "__main__":
    main()
