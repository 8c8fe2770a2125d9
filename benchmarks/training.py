"""Benchmark: a MONAI training loop with labels from SEG vs NIfTI (issue 25; MONAI #8468's question).

The 3D spleen tutorial's transforms (``EnsureChannelFirstd``, ``ScaleIntensityRanged``,
``CropForegroundd``, ``Orientationd``, ``Spacingd``, ``RandCropByPosNegLabeld``; see
tests/transforms/test_tutorial_chain.py), a ``DataLoader`` with 2 workers and no cache, and a small
3D UNet step (DiceCE loss, Adam) on synthetic CT cases (``monai_dicomseg.synthetic``). Every variant
loads the image the same way (``LoadDicomSeriesd``); only the label loader differs:

* ``seg-binary``, ``seg-labelmap``: ``LoadDicomSegd(ref_key="image")`` of a BINARY / LABELMAP SEG;
* ``seg-fractional``: ``LoadDicomSegd(..., mode="labelmap", threshold=0.5)`` of a FRACTIONAL SEG;
* ``nii-gz`` / ``nii``: ``LoadImaged`` of the same label map as compressed / uncompressed NIfTI;
* ``nii-gz-control``: ``nii-gz`` again, an A/A control: its ratio to ``nii-gz`` is the noise floor of the
  run (any ratio inside its range says nothing about the formats).

Each variant runs in its own child process (``--epochs`` epochs after one warm-up epoch): items/s
(crops through the loader and the training step) and peak RSS of the main process and of its largest
loader worker (``ru_maxrss`` of the reaped children: the workers are joined after every epoch).
``--rounds`` (3) runs every variant that many times, each round in its own rotated order (round r starts
at variant r, so drift and warm caches hit all variants alike), and prints per variant the median items/s
and peak RSS, the ratio of the medians to ``nii-gz``, the median of the per-round ratios (each variant against
``nii-gz`` of the same round: drift cancels) and their range (the noise: one
run per variant in a fixed order disagreed by up to 7x on a shared machine). Then the per-item medians
over ``--repeats`` passes over the cases, without a DataLoader: the image load (``LoadDicomSeriesd``), the
label load alone (the loop's own label transform, applied to a dict whose image was loaded once beforehand)
and the whole chain (image + label + the rest), so the label's share of an item is visible. All variants run
in one child, interleaved item by item in alternating order: one child per variant let drift between children
move the image load of identical code by 25 %. ``--no-train`` measures the loader alone. A child that fails
is reported and the run exits with 1.

Run: ``python benchmarks/training.py`` (about 10 minutes on 2 cores); ``--shape F R C``, ``--cases N``,
``--rounds N``; the cases are written once under ``benchmarks/.cache/training`` (``--cache DIR``).

Measured (2-core VM, 4 cases 192x192x64, 2 epochs, 6 rounds; paired ratios to nii-gz, range in brackets): with
the UNet step nii-gz-control x1.02 (0.90-1.14), nii x1.12, seg-binary x0.87 (0.80-1.32), seg-labelmap x0.97
(0.80-1.29), seg-fractional x0.91 (0.78-0.96); loader only: control x1.00 (0.91-1.39), seg-binary x0.87,
seg-labelmap x0.85, seg-fractional x0.89 (x0.76, x0.76, x0.82 before loaders imported the read path in the
main process). Per item, interleaved in one process: chain seg-binary x0.92, seg-labelmap x0.91,
seg-fractional x0.95 (control x1.05); label load alone (nii-gz 14.9 ms) x0.97, x0.73, x1.13; the label is
4-6 % of an item.
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
VARIANTS = ["nii-gz", "nii-gz-control", "nii", "seg-binary", "seg-labelmap", "seg-fractional"]
SEGMENTS = 6


def case_folder(shape, index: int, cache: Path = CACHE) -> Path:
    return cache / f"{shape[0]}x{shape[1]}x{shape[2]}" / f"case{index}"


def build_case(shape, index: int, cache: Path = CACHE) -> Path:
    """Series, three SEGs (BINARY, LABELMAP, FRACTIONAL) and the label map as .nii.gz / .nii (once)."""
    import nibabel

    import monai_dicomseg as mds
    from monai_dicomseg import synthetic
    from monai_dicomseg.sr.coding import CodedConcept

    folder = case_folder(shape, index, cache)
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


CROP = [(64, 64, 32)]
"""``RandCropByPosNegLabeld``'s spatial size (``--crop``; the spleen tutorial's is 96 x 96 x 96)."""


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
        RandCropByPosNegLabeld(keys=["image", "label"], label_key="label", spatial_size=CROP[0], pos=1,
                               neg=1, num_samples=4, image_key="image", image_threshold=0),
    ])


def data(variant: str, folders: "list[Path]") -> "list[dict[str, str]]":
    name = {"nii-gz": "label.nii.gz", "nii-gz-control": "label.nii.gz", "nii": "label.nii",
            "seg-binary": "seg_binary.dcm",
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


def time_items(variants: "list[str]", folders: "list[Path]", repeats: int) -> "dict[str, dict]":
    """Per-item medians of every variant in this one process (no DataLoader), interleaved: each pass times
    every step of every variant on one item before the next item, the variants in alternating order, so
    drift on a shared machine hits all of them alike. Steps: the image load, the label load alone given the
    image already loaded (the same label transform object the loop uses) and the whole chain (image + label +
    the rest); ``repeats`` passes over the cases after one warm-up pass."""
    setups = {}
    for variant in variants:
        chain = transforms(variant)
        image_load, label = chain.transforms[0], chain.transforms[1]
        items = data(variant, folders)
        images = [image_load({"image": item["image"]})["image"] for item in items]
        setups[variant] = {
            "image_ms": lambda item, image, load=image_load: load({"image": item["image"]}),
            "label_ms": lambda item, image, label=label: label({"image": image, "label": item["label"]}),
            "chain_ms": lambda item, image, chain=chain: chain(dict(item)),
        }, items, images
    times = {variant: {name: [] for name in ("image_ms", "label_ms", "chain_ms")} for variant in variants}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for repeat in range(repeats + 1):  # pass 0: warm-up (imports, first-use caches), not counted
            for index in range(len(folders)):
                order = variants if (repeat + index) % 2 == 0 else variants[::-1]
                for variant in order:
                    steps, items, images = setups[variant]
                    for name, step in steps.items():
                        start = time.perf_counter()
                        step(items[index], images[index])
                        if repeat:
                            times[variant][name].append(time.perf_counter() - start)
    return {variant: {name: 1000 * float(np.median(values)) for name, values in steps.items()}
            for variant, steps in times.items()}


FAILED: "list[str]" = []
"""The children that failed (``variant mode``): the run exits with 1 if any did."""


def _run_child(args, variant: str, mode: str) -> "dict | None":
    command = [sys.executable, __file__, "--child", variant, "--mode", mode, "--shape", *map(str, args.shape),
               "--cases", str(args.cases), "--epochs", str(args.epochs), "--repeats", str(args.repeats),
               "--crop", *map(str, args.crop), "--cache", str(args.cache)]
    done = subprocess.run(command + (["--no-train"] if args.no_train else []), capture_output=True, text=True)
    if done.returncode != 0:
        FAILED.append(f"{variant} {mode}")
        print(f"{variant:<16} failed: {done.stderr.strip().splitlines()[-3:]}", flush=True)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def _loop_rounds(args) -> "dict[str, list[dict]]":
    """Every round runs every variant once, each in its own child, starting one variant later than the last
    round (drift and warm caches hit all variants alike)."""
    runs: "dict[str, list[dict]]" = {variant: [] for variant in args.variants}
    for round_index in range(args.rounds):
        order = args.variants[round_index % len(args.variants):] + args.variants[:round_index % len(args.variants)]
        for variant in order:
            result = _run_child(args, variant, "loop")
            if result is not None:
                result["round"] = round_index
                runs[variant].append(result)
    return runs


def _print_loop(runs: "dict[str, list[dict]]", base_name: str = "nii-gz") -> None:
    print(f"{'variant':<16}{'items/s':>9}{'main MB':>9}{'worker MB':>11}  vs {base_name} (ratio of the medians; "
          "paired: median of the per-round ratios; their range)")
    base = runs.get(base_name) or []
    base_rate = float(np.median([r["items_per_s"] for r in base])) if base else None
    by_round = {r["round"]: r["items_per_s"] for r in base}
    for variant, results in runs.items():
        if not results:
            continue
        rate = float(np.median([r["items_per_s"] for r in results]))
        main_mb = float(np.median([r["main_mb"] for r in results]))
        workers_mb = float(np.median([r["workers_mb"] for r in results]))
        versus = ""
        if base_rate and variant != base_name:
            ratios = [r["items_per_s"] / by_round[r["round"]] for r in results if r["round"] in by_round]
            paired = f", paired x{float(np.median(ratios)):.2f}" if ratios else ""
            spread = f" ({min(ratios):.2f}-{max(ratios):.2f})" if ratios else ""
            versus = f"  x{rate / base_rate:.2f} items/s{paired}{spread}"
        print(f"{variant:<16}{rate:9.2f}{main_mb:9.0f}{workers_mb:11.0f}{versus}", flush=True)


def _print_items(args) -> None:
    print(f"per item, all variants in one process, interleaved (medians of {args.repeats} x {args.cases} items): "
          "the image load, the label load alone (image already loaded) and the whole chain")
    print(f"{'variant':<16}{'image ms':>10}{'label ms':>10}{'chain ms':>10}{'label share':>13}  vs nii-gz")
    results = _run_child(args, ",".join(args.variants), "items")
    if results is None:
        return
    base = None
    for variant in args.variants:
        result = results[variant]
        if variant == "nii-gz":
            base = result
        versus = "" if base is None or variant == "nii-gz" else (
            f"  label x{result['label_ms'] / base['label_ms']:.2f}, chain x{result['chain_ms'] / base['chain_ms']:.2f}")
        print(f"{variant:<16}{result['image_ms']:10.1f}{result['label_ms']:10.1f}{result['chain_ms']:10.1f}"
              f"{result['label_ms'] / result['chain_ms']:13.1%}{versus}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(64, 192, 192), metavar=("F", "R", "C"))
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="runs of every variant's loop, in rotated order")
    parser.add_argument("--repeats", type=int, default=5, help="per-item timings: passes over the cases")
    parser.add_argument("--no-train", action="store_true", help="the loader alone (no UNet step)")
    parser.add_argument("--crop", type=int, nargs=3, default=CROP[0], metavar=("X", "Y", "Z"),
                        help="RandCropByPosNegLabeld spatial size (smaller for tiny --shape)")
    parser.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the cases are written (once)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["loop", "items"], default="loop", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if min(args.rounds, args.repeats, args.cases, args.epochs) < 1:
        parser.error("--rounds, --repeats, --cases and --epochs must be at least 1")
    CROP[0] = tuple(args.crop)
    shape = tuple(args.shape)
    folders = [case_folder(shape, index, args.cache) for index in range(args.cases)]
    if args.child:
        if args.mode == "items":  # --child names every variant, comma-separated
            print(json.dumps(time_items(args.child.split(","), folders, args.repeats)))
        else:
            print(json.dumps(run_variant(args.child, folders, args.epochs, not args.no_train)))
        return
    for index in range(args.cases):
        build_case(shape, index, args.cache)
    if "nii-gz" in args.variants:  # the reference first: ratios need it
        args.variants = ["nii-gz"] + [v for v in args.variants if v != "nii-gz"]
    print(f"{args.cases} cases {shape[1]}x{shape[2]}x{shape[0]}, {SEGMENTS} segments, {args.epochs} epochs, "
          f"{'loader only' if args.no_train else 'UNet step'}; DataLoader(num_workers=2), 4 crops per item; "
          f"{args.rounds} rounds")
    _print_loop(_loop_rounds(args))
    _print_items(args)
    if FAILED:
        sys.exit(f"failed children: {', '.join(FAILED)}")


if __name__ == "__main__":
    main()
