"""End to end: CT series -> SEG labels -> train a tiny MONAI network -> infer -> SaveDicomSegd -> reload -> Dice.

Everything is synthetic and local (no downloads)::

    python tutorials/end_to_end.py            # ~30 s on a laptop CPU
    python tutorials/end_to_end.py --fast     # a few seconds (used by the tests)

Steps
-----
1. ``monai_dicomseg.synthetic`` writes a CT series with two ellipsoid "organs"
   and we store the truth as a DICOM SEG with ``monai_dicomseg.seg.Segmentation``.
2. ``LoadDicomSeriesd`` + ``LoadDicomSegd(ref_key="image")`` load image and label
   voxel for voxel; ``Orientationd`` + ``Spacingd`` put them on a model grid.
3. A tiny ``monai.networks.nets.UNet`` trains for a few seconds.
4. Inference; softmax; ``SaveDicomSegd`` writes a LABELMAP SEG on the *source*
   grid (the model grid is mapped back exactly or resampled, see
   ``monai_dicomseg.io.grid``).
5. ``LoadDicomSegd`` reloads it; Dice against the truth on the source grid.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from monai.networks.nets import UNet
from monai.transforms import Compose, Orientationd, ScaleIntensityRanged, Spacingd

import monai_dicomseg as hd
from monai_dicomseg import synthetic
from monai_dicomseg.geometry.sorting import get_dataset_sort_index
from monai_dicomseg.transforms.load import LoadDicomSegd
from monai_dicomseg.transforms.save import SaveDicomSegd
from monai_dicomseg.transforms.series import LoadDicomSeriesd

LABELS = ["liver", "spleen"]


def make_data(folder: Path, shape: tuple[int, int, int], seed: int) -> tuple[Path, Path, np.ndarray]:
    """Write a CT series and its truth SEG; return (series folder, SEG path, truth (F, R, C) sorted)."""
    labels = synthetic.make_ellipsoid_labels(shape, n_labels=len(LABELS), seed=seed)
    datasets = synthetic.make_ct_series(shape, spacing=(2.5, 0.9, 0.9), orientation="oblique", labels=labels,
                                        reverse_order=True, seed=seed)
    synthetic.write_series(datasets, folder / "ct")
    order = get_dataset_sort_index(datasets)
    datasets, truth = [datasets[i] for i in order], labels[order]
    algorithm = hd.AlgorithmIdentificationSequence("synthetic truth", hd.sr.CodedConcept("123110", "DCM", "Artificial Intelligence"), "1")
    from monai_dicomseg.anatomy import segment_descriptions_from_names

    seg = hd.seg.Segmentation(
        source_images=datasets, pixel_array=truth, segmentation_type="BINARY",
        segment_descriptions=segment_descriptions_from_names(LABELS, algorithm), series_instance_uid=hd.UID(),
        series_number=50, sop_instance_uid=hd.UID(), instance_number=1, manufacturer="tutorial",
        manufacturer_model_name="synthetic", software_versions="1", device_serial_number="1")
    seg.save_as(folder / "truth_seg.dcm", overwrite=True)
    return folder / "ct", folder / "truth_seg.dcm", truth


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * np.sum(a & b) / max(1, np.sum(a) + np.sum(b)))


def main(fast: bool = False, workdir: "str | None" = None, seed: int = 0) -> dict[str, float]:
    torch.manual_seed(seed)
    folder = Path(workdir or tempfile.mkdtemp(prefix="monai_dicomseg_tutorial_"))
    shape = (12, 48, 48) if fast else (24, 96, 96)
    series, truth_seg, truth = make_data(folder, shape, seed)

    load = Compose([LoadDicomSeriesd(keys="image"), LoadDicomSegd(keys="label", ref_key="image", mode="labelmap")])
    model_grid = Compose([
        Orientationd(keys=["image", "label"], axcodes="RAS"),
        Spacingd(keys=["image", "label"], pixdim=(1.8, 1.8, 2.5), mode=("bilinear", "nearest")),
        ScaleIntensityRanged(keys="image", a_min=-1000, a_max=1000, b_min=0.0, b_max=1.0, clip=True),
    ])
    data = model_grid(load({"image": str(series), "label": str(truth_seg)}))
    image, label = data["image"][None].float(), data["label"][None].long()

    net = UNet(spatial_dims=3, in_channels=1, out_channels=len(LABELS) + 1, channels=(8, 16, 32),
               strides=(2, 2), num_res_units=1)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    loss_function = torch.nn.CrossEntropyLoss()
    pad = [(-s) % 4 for s in image.shape[2:]]
    padding = [p for size in reversed(pad) for p in (0, size)]
    x = torch.nn.functional.pad(image.as_tensor(), padding)
    y = torch.nn.functional.pad(label.as_tensor()[:, 0], padding)
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
        logits = net(x)[0, :, :image.shape[2], :image.shape[3], :image.shape[4]]
    data["pred"] = torch.softmax(logits, dim=0)
    data["pred"] = data["image"].clone().set_array(data["pred"]) if hasattr(data["image"], "set_array") else data["pred"]
    out = SaveDicomSegd(keys="pred", ref_key="image", output_dir=folder / "out", segmentation_type="LABELMAP",
                        labels=LABELS, algorithm_name="TinyUNet", algorithm_version="tutorial",
                        overwrite=True)(data)
    path = out["pred"].meta["saved_to"]
    print(f"wrote {path}")

    reloaded = LoadDicomSegd(keys="label", ref_key="image", mode="labelmap")(
        LoadDicomSeriesd(keys="image")({"image": str(series), "label": path}))
    from monai_dicomseg.io.series import from_monai_array

    predicted = from_monai_array(np.asarray(reloaded["label"][0]))
    scores = {name: dice(predicted == i + 1, truth == i + 1) for i, name in enumerate(LABELS)}
    print("Dice on the source grid:", {k: round(v, 3) for k, v in scores.items()})
    return scores


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="tiny images and a few seconds of training")
    parser.add_argument("--workdir", default=None, help="folder for the series and SEG files (default: temp)")
    args = parser.parse_args()
    main(fast=args.fast, workdir=args.workdir)
