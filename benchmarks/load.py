"""Benchmark: DataLoader throughput of SEG labels vs NIfTI and MONAI's PydicomReader.

Run: ``python benchmarks/load.py`` (``--small`` for a quick run).

Main case: 512x512x200, 100 segments (``_common.big_case``), written as
LABELMAP and BINARY SEGs by our writer, and as ``.nii.gz`` / ``.nii`` label
maps. Each is loaded by a MONAI ``DataLoader`` (``num_workers=2``, batch 1,
the same file ``ITEMS`` times per epoch) through

* ``LoadDicomSeg(mode="labelmap")`` (ours) -> ``(1, 512, 512, 200)`` uint8;
* ``LoadImage(reader=NibabelReader)`` on the NIfTI files.

MONAI's ``PydicomReader`` needs ``(R, C, F, S)`` memory for a SEG
(5 GB here), so it is compared on a reduced case (512x512x40, 10 segments,
BINARY) against ours in ``"stacked"`` mode (the same output) in the same run.
Peak memory of one load is measured in-process with ``tracemalloc``
(numpy allocations are traced).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nibabel  # noqa: E402
import numpy as np  # noqa: E402
from monai.data import DataLoader, Dataset  # noqa: E402
from monai.transforms import LoadImage  # noqa: E402
from pydicom.sr.codedict import codes  # noqa: E402

import monai_dicomseg as hd  # noqa: E402
from _common import big_case  # noqa: E402
from monai_dicomseg.io.series import load_source_geometry, monai_affine_from_lps, to_monai_array  # noqa: E402
from monai_dicomseg.synthetic import make_ct_series, make_ellipsoid_labels  # noqa: E402

ITEMS = 6
REPEATS = 3


def write_seg(series, labels, segmentation_type: str, path: Path, n_segments: int,
              omit_empty_frames: bool = True) -> None:
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n, segment_label=f"organ {n}", segmented_property_category=codes.SCT.Organ,
            segmented_property_type=codes.SCT.Liver, algorithm_type="MANUAL")
        for n in range(1, n_segments + 1)
    ]
    hd.seg.Segmentation(
        source_images=series, pixel_array=labels, segmentation_type=segmentation_type,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=300,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="bench",
        manufacturer_model_name="bench", software_versions="0", device_serial_number="0",
        omit_empty_frames=omit_empty_frames,
    ).save_as(path)


def write_nifti(series, labels, folder: Path) -> tuple[Path, Path]:
    geometry = load_source_geometry(series).geometry
    order = [ds.SOPInstanceUID for ds in load_source_geometry(series).datasets]
    # labels are in series order (InstanceNumber); sort as the geometry does
    position = {ds.SOPInstanceUID: i for i, ds in enumerate(series)}
    sorted_labels = labels[[position[uid] for uid in order]]
    image = nibabel.Nifti1Image(np.ascontiguousarray(to_monai_array(sorted_labels)),
                                monai_affine_from_lps(geometry.affine, geometry.spatial_shape[0]))
    gz, raw = folder / "labels.nii.gz", folder / "labels.nii"
    nibabel.save(image, gz)
    nibabel.save(image, raw)
    return gz, raw


class _Load:
    """Picklable ``transform`` for the Dataset: a loader applied to a path."""

    def __init__(self, loader) -> None:
        self.loader = loader

    def __call__(self, path):
        return self.loader(path)


def throughput(loader, path: Path, workers: int = 2) -> float:
    """Median items/s over REPEATS epochs of ITEMS loads of ``path``."""
    dataset = Dataset([str(path)] * ITEMS, transform=_Load(loader))
    rates = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for batch in DataLoader(dataset, batch_size=1, num_workers=workers):
            del batch
        rates.append(ITEMS / (time.perf_counter() - start))
    return statistics.median(rates)


def peak_memory(loader, path: Path) -> float:
    """Peak traced memory (MiB) of one load."""
    tracemalloc.start()
    result = loader(str(path))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    return peak / 2**20


def line(name: str, rate: float, memory: float, base_rate: float, base_memory: float, base: str) -> None:
    print(f"{name:<40} {rate:7.2f} items/s  peak {memory:8.1f} MiB   "
          f"x{rate / base_rate:6.2f} throughput, x{memory / base_memory:5.2f} memory vs {base}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="64x128x128 / 20 segments")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    shape, segments = ((64, 128, 128), 20) if args.small else ((200, 512, 512), 100)
    series, labels = big_case(shape=shape, segments=segments)
    ours = hd.LoadDicomSeg(mode="labelmap")
    nib = LoadImage(reader="NibabelReader", image_only=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        gz, raw = write_nifti(series, labels, folder)
        print(f"main case {shape[::-1]} (C, R, F), {segments} segments, {ITEMS} items x {REPEATS} epochs, "
              "DataLoader(num_workers=2)")
        results = {}
        for name, path, loader in [("nifti .nii.gz (NibabelReader)", gz, nib),
                                   ("nifti .nii (NibabelReader)", raw, nib)]:
            results[name] = (throughput(loader, path), peak_memory(loader, path))
        for seg_type in ("LABELMAP", "BINARY"):
            path = folder / f"{seg_type}.dcm"
            write_seg(series, labels, seg_type, path, segments)
            results[f"SEG {seg_type} LoadDicomSeg(labelmap)"] = (throughput(ours, path), peak_memory(ours, path))
        base_rate, base_memory = results["nifti .nii.gz (NibabelReader)"]
        for name, (rate, memory) in results.items():
            line(name, rate, memory, base_rate, base_memory, ".nii.gz")

        # reduced case where MONAI's PydicomReader fits in memory
        small_shape, small_segments = ((40, 512, 512), 10) if not args.small else ((16, 128, 128), 5)
        small_labels = make_ellipsoid_labels(small_shape, n_labels=small_segments, seed=1)
        small_series = make_ct_series(shape=small_shape, labels=small_labels, seed=1)
        path = folder / "small_binary.dcm"
        # MONAI's reader cannot place omitted frames: give it every frame of every segment
        write_seg(small_series, small_labels, "BINARY", path, small_segments, omit_empty_frames=False)
        pydicom_reader = LoadImage(reader="PydicomReader", image_only=True)
        stacked = hd.LoadDicomSeg(mode="stacked")
        print(f"\nreduced case {small_shape[::-1]} (C, R, F), {small_segments} segments, BINARY")
        monai_rate, monai_memory = throughput(pydicom_reader, path), peak_memory(pydicom_reader, path)
        line("MONAI PydicomReader", monai_rate, monai_memory, monai_rate, monai_memory, "PydicomReader")
        for name, loader in [("LoadDicomSeg(stacked)", stacked), ("LoadDicomSeg(labelmap)", ours)]:
            line(name, throughput(loader, path), peak_memory(loader, path), monai_rate, monai_memory,
                 "PydicomReader")


if __name__ == "__main__":
    main()
