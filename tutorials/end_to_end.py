"""End to end: CT series + SEG -> train a tiny MONAI network -> infer -> SaveDicomSegd -> reload -> Dice.

Everything is local (no downloads) and uses only public names (``import monai_dicomseg as mds``)::

    python tutorials/end_to_end.py                 # data/ct1 of this repository, ~1 min on a laptop CPU
    python tutorials/end_to_end.py --fast          # a few seconds (used by the tests)
    python tutorials/end_to_end.py --data DIR      # any folder holding a CT series and a SEG of it
    python tutorials/end_to_end.py --synthetic     # make a synthetic series + SEG instead

Steps
-----
1. ``mds.create_datalist`` pairs the SEG with its source series (headers only).
   Without ``data/`` (or with ``--synthetic``) ``mds.synthetic`` writes a CT
   series with two ellipsoid "organs" and the truth is stored as a DICOM SEG.
2. ``LoadDicomSeriesd`` + ``LoadDicomSegd(ref_key="image")`` load image and label
   voxel for voxel; ``Orientationd`` + ``Spacingd`` put them on a model grid.
3. A tiny ``monai.networks.nets.UNet`` trains for a few seconds.
4. Inference (the output ``MetaTensor`` keeps the image's metadata); softmax; ``SaveDicomSegd`` writes a LABELMAP SEG on the *source*
   grid, naming the channels with a bundle-style ``channel_def``.
5. ``LoadDicomSegd`` reloads prediction and truth on the source grid; Dice per segment.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from monai.inferers import SimpleInferer
from monai.networks.nets import UNet
from monai.transforms import Compose, DivisiblePadd, Orientationd, ScaleIntensityRanged, Spacingd

import monai_dicomseg as mds

DATA = Path(__file__).resolve().parents[1] / "data" / "ct1"
SYNTHETIC_LABELS = ["liver", "spleen"]


def make_synthetic_case(folder: Path, shape: tuple[int, int, int], seed: int) -> Path:
    """Write a CT series (``folder/ct``) and its truth SEG (``folder/truth_seg.dcm``); return ``folder``."""
    labels = mds.synthetic.make_ellipsoid_labels(shape, n_labels=len(SYNTHETIC_LABELS), seed=seed)
    datasets = mds.synthetic.make_ct_series(shape, spacing=(2.5, 0.9, 0.9), orientation="oblique", labels=labels,
                                            reverse_order=True, seed=seed)
    mds.synthetic.write_series(datasets, folder / "ct")
    # pixel_array frames follow source_images, so generation order is fine (no sorting needed)
    seg = mds.Segmentation(
        source_images=datasets, pixel_array=labels, segmentation_type="BINARY",
        segment_descriptions=mds.segment_descriptions_from_names(SYNTHETIC_LABELS, algorithm_type="MANUAL"),
        series_instance_uid=mds.UID(), series_number=50, sop_instance_uid=mds.UID(), instance_number=1,
        manufacturer="tutorial", manufacturer_model_name="synthetic", software_versions="1", device_serial_number="1")
    seg.save_as(folder / "truth_seg.dcm", overwrite=True)
    return folder


def find_case(folder: Path) -> tuple[str, str, list[str]]:
    """(series, SEG path, segment names) of the first BINARY or LABELMAP SEG under ``folder`` and its series."""
    for item in mds.create_datalist(folder):
        seg = mds.seg.segread(item["label"])
        if seg.SegmentationType != "FRACTIONAL":  # a FRACTIONAL truth would need threshold=
            names = [str(segment.SegmentLabel) for segment in seg.SegmentSequence]
            return item["image"], item["label"], names
    raise SystemExit(f"no series with a BINARY or LABELMAP SEG found under {folder}")


def by_name(label: torch.Tensor, seg_path: str) -> dict[str, np.ndarray]:
    """``{segment label: boolean mask}`` from a labelmap-mode tensor whose values are segment numbers."""
    values = np.asarray(label[0])
    return {str(item.SegmentLabel): values == int(item.SegmentNumber)
            for item in mds.seg.segread(seg_path).SegmentSequence}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * np.sum(a & b) / max(1, np.sum(a) + np.sum(b)))


def main(fast: bool = False, workdir: "str | None" = None, data: "str | None" = None, synthetic: bool = False,
         seed: int = 0) -> dict[str, float]:
    torch.manual_seed(seed)
    folder = Path(workdir or tempfile.mkdtemp(prefix="monai_dicomseg_tutorial_"))
    if synthetic or (data is None and not DATA.is_dir()):
        source = make_synthetic_case(folder, (12, 48, 48) if fast else (24, 96, 96), seed)
    else:
        source = Path(data) if data is not None else DATA
    series, truth_seg, names = find_case(source)
    print(f"series {series}\ntruth  {truth_seg}: {names}")

    load = Compose([mds.LoadDicomSeriesd(keys="image"),
                    mds.LoadDicomSegd(keys="label", ref_key="image", mode="labelmap")])
    model_grid = Compose([
        Orientationd(keys=["image", "label"], axcodes="RAS"),
        Spacingd(keys=["image", "label"], pixdim=(1.8, 1.8, 2.5), mode=("bilinear", "nearest")),
        ScaleIntensityRanged(keys="image", a_min=-1000, a_max=1000, b_min=0.0, b_max=1.0, clip=True),
        DivisiblePadd(keys=["image", "label"], k=4),  # the UNet halves twice; the SEG writer maps padding back
    ])
    data_ = model_grid(load({"image": series, "label": truth_seg}))
    image, label = data_["image"][None].float(), data_["label"][None].long()
    # labelmap values are segment numbers; the network's classes are 0 (background) .. len(names)
    numbers = [int(item.SegmentNumber) for item in mds.seg.segread(truth_seg).SegmentSequence]
    classes = torch.zeros_like(label)
    for index, number in enumerate(numbers, start=1):
        classes[label == number] = index

    net = UNet(spatial_dims=3, in_channels=1, out_channels=len(names) + 1, channels=(8, 16, 32),
               strides=(2, 2), num_res_units=1)
    inferer = SimpleInferer()  # whole image, as in training (see tutorials/bundle for a sliding window)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    loss_function = torch.nn.CrossEntropyLoss()
    x, y = image.as_tensor(), classes.as_tensor()[:, 0]
    start, steps = time.time(), 0
    while steps < (25 if fast else 300) and time.time() - start < (8 if fast else 60):
        optimiser.zero_grad()
        loss = loss_function(net(x), y)
        loss.backward()
        optimiser.step()
        steps += 1
    print(f"trained {steps} steps in {time.time() - start:.1f} s, loss {loss.item():.3f}")

    net.eval()
    with torch.no_grad():
        # the output is a MetaTensor carrying the image's affine and source: no hand-built metadata
        data_["pred"] = torch.softmax(inferer(image, net)[0], dim=0)
    channel_def = {"0": "background", **{str(i): name for i, name in enumerate(names, start=1)}}
    out = mds.SaveDicomSegd(keys="pred", ref_key="image", output_dir=folder / "out", segmentation_type="LABELMAP",
                            labels=channel_def, algorithm_name="TinyUNet", algorithm_version="tutorial",
                            overwrite=True)(data_)
    path = out["pred"].meta["saved_to"]
    print(f"wrote {path}")

    reload = Compose([mds.LoadDicomSeriesd(keys="image"),
                      mds.LoadDicomSegd(keys=["pred", "truth"], ref_key="image", mode="labelmap")])
    reloaded = reload({"image": series, "pred": path, "truth": truth_seg})
    predicted, truth = by_name(reloaded["pred"], path), by_name(reloaded["truth"], truth_seg)
    empty = np.zeros(reloaded["truth"].shape[1:], dtype=bool)
    scores = {name: dice(predicted.get(name, empty), truth[name]) for name in names}
    print("Dice on the source grid:", {k: round(v, 3) for k, v in scores.items()})
    return scores


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="a few seconds of training")
    parser.add_argument("--workdir", default=None, help="folder for the written SEG (and synthetic data; default: temp)")
    parser.add_argument("--data", default=None, help=f"folder with a CT series and its SEG (default: {DATA})")
    parser.add_argument("--synthetic", action="store_true", help="make a synthetic series + SEG in --workdir")
    args = parser.parse_args()
    main(fast=args.fast, workdir=args.workdir, data=args.data, synthetic=args.synthetic)
