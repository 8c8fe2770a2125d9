"""Benchmark: DataLoader throughput of SEG labels vs NIfTI and MONAI's PydicomReader.

Run: ``python benchmarks/load.py`` (``--small`` for a quick run).

Main case: 512x512x200, 100 segments (``_common.big_case``), written as
LABELMAP and BINARY SEGs by our writer, and as ``.nii.gz`` / ``.nii`` label
maps. Each is loaded by a MONAI ``DataLoader`` (``num_workers=2``, batch 1,
the same file ``ITEMS`` times per epoch) through

* ``LoadDicomSeg(mode="labelmap")`` (ours) -> ``(1, 512, 512, 200)`` uint8;
* ``LoadImage(reader=NibabelReader)`` on the NIfTI files.

MONAI's ``PydicomReader`` needs ``(R, C, F, S)`` float32 memory for a SEG
(5 GB here), so it is compared on a reduced case (512x512x40, 10 segments,
BINARY, every frame stored) against ours in the same run. For that SEG MONAI
returns ``(X, Y, Z, S)`` float32 (channel last, frames in stored order);
``LoadDicomSeg(mode="stacked")`` returns the same voxels as ``(S, X, Y, Z)``
uint8 (checked below, up to the axis order and the Z direction that each
affine records). MONAI is also timed with ``dtype=np.uint8`` so that the
output dtypes match.

Peak memory of one load is measured the same way for every loader: in a
fresh process, after a warm-up load, as the rise of the resident set size
(``VmHWM`` reset through ``/proc/self/clear_refs``) with glibc returning
freed blocks above 64 KiB to the system, so that numpy, torch and pydicom
allocations all count (``tracemalloc`` sees only Python/numpy ones).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nibabel  # noqa: E402
import numpy as np  # noqa: E402
from monai.data import DataLoader, Dataset  # noqa: E402
from monai.transforms import LoadImage  # noqa: E402
from pydicom.sr.codedict import codes  # noqa: E402

import monai_dicomseg as hd  # noqa: E402
from _common import big_case, reset_peak_rss, status_mb  # noqa: E402
from monai_dicomseg.io.source_series import load_source_geometry, monai_affine_from_lps, to_monai_array  # noqa: E402
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


def make_loader(name: str):
    """The loaders compared, by name (so that a fresh process can build them)."""
    if name == "nibabel":
        return LoadImage(reader="NibabelReader", image_only=True)
    if name == "pydicom":
        return LoadImage(reader="PydicomReader", image_only=True)
    if name == "pydicom-uint8":
        return LoadImage(reader="PydicomReader", image_only=True, dtype=np.uint8)
    if name in ("stacked", "labelmap"):
        return hd.LoadDicomSeg(mode=name)
    raise ValueError(name)


def _peak_child(name: str, path: str) -> None:
    """In a fresh process: print the peak RSS rise (KiB) of one warmed-up load."""
    warnings.simplefilter("ignore")
    loader = make_loader(name)
    result = loader(path)  # warm-up: lazy imports, codec plugins
    del result
    gc.collect()
    reset = reset_peak_rss()
    base = (status_mb("VmRSS") or 0.0) * 1024
    result = loader(path)
    peak = status_mb("VmHWM") * 1024 if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del result
    print(json.dumps(peak - base))


def peak_memory(name: str, path: Path) -> float:
    """Peak memory (MiB) of one load by loader ``name``, measured in a fresh process."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536")
    done = subprocess.run([sys.executable, __file__, "--peak-child", name, str(path)], env=env,
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1]) / 1024


def line(name: str, rate: float, memory: float, base_rate: float, base_memory: float, base: str) -> None:
    print(f"{name:<40} {rate:7.2f} items/s  peak {memory:8.1f} MiB   "
          f"x{rate / base_rate:6.2f} throughput, x{memory / base_memory:5.2f} memory vs {base}")


def check_same_voxels(path: Path) -> None:
    """Show what MONAI and we return for the reduced SEG, and that the voxels agree."""
    import torch

    theirs = make_loader("pydicom")(str(path))
    ours = make_loader("stacked")(str(path))
    print(f"MONAI PydicomReader -> {tuple(theirs.shape)} {theirs.dtype}; "
          f"LoadDicomSeg(stacked) -> {tuple(ours.shape)} {ours.dtype}")
    channel_first = theirs.permute(3, 0, 1, 2)
    flip_z = bool(theirs.affine[2, 2] * ours.affine[2, 2] < 0)
    if flip_z:
        channel_first = channel_first.flip(3)
    same = torch.equal(channel_first.to(torch.uint8), ours)
    print(f"same voxels (channel last -> first{', Z reversed as the affines say' if flip_z else ''}): {same}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="64x128x128 / 20 segments")
    parser.add_argument("--reduced-only", action="store_true", help="only the case against MONAI's PydicomReader")
    parser.add_argument("--peak-child", nargs=2, metavar=("LOADER", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_child:
        _peak_child(*args.peak_child)
        return
    warnings.simplefilter("ignore")
    ours = make_loader("labelmap")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not args.reduced_only:
            shape, segments = ((64, 128, 128), 20) if args.small else ((200, 512, 512), 100)
            series, labels = big_case(shape=shape, segments=segments)
            gz, raw = write_nifti(series, labels, folder)
            print(f"main case {shape[::-1]} (C, R, F), {segments} segments, {ITEMS} items x {REPEATS} epochs, "
                  "DataLoader(num_workers=2)")
            results = {}
            nib = make_loader("nibabel")
            for name, path in [("nifti .nii.gz (NibabelReader)", gz), ("nifti .nii (NibabelReader)", raw)]:
                results[name] = (throughput(nib, path), peak_memory("nibabel", path))
            for seg_type in ("LABELMAP", "BINARY"):
                path = folder / f"{seg_type}.dcm"
                write_seg(series, labels, seg_type, path, segments)
                results[f"SEG {seg_type} LoadDicomSeg(labelmap)"] = (throughput(ours, path),
                                                                    peak_memory("labelmap", path))
            base_rate, base_memory = results["nifti .nii.gz (NibabelReader)"]
            for name, (rate, memory) in results.items():
                line(name, rate, memory, base_rate, base_memory, ".nii.gz")
            print()

        # reduced case where MONAI's PydicomReader fits in memory
        small_shape, small_segments = ((40, 512, 512), 10) if not args.small else ((16, 128, 128), 5)
        small_labels = make_ellipsoid_labels(small_shape, n_labels=small_segments, seed=1)
        small_series = make_ct_series(shape=small_shape, labels=small_labels, seed=1)
        path = folder / "small_binary.dcm"
        # MONAI's reader cannot place omitted frames: give it every frame of every segment
        write_seg(small_series, small_labels, "BINARY", path, small_segments, omit_empty_frames=False)
        print(f"reduced case {small_shape[::-1]} (C, R, F), {small_segments} segments, BINARY, "
              f"{ITEMS} items x {REPEATS} epochs, DataLoader(num_workers=2)")
        check_same_voxels(path)
        monai_rate, monai_memory = throughput(make_loader("pydicom"), path), peak_memory("pydicom", path)
        line("MONAI PydicomReader", monai_rate, monai_memory, monai_rate, monai_memory, "PydicomReader")
        for name, key in [("MONAI PydicomReader (dtype=uint8)", "pydicom-uint8"),
                          ("LoadDicomSeg(stacked)", "stacked"), ("LoadDicomSeg(labelmap)", "labelmap")]:
            line(name, throughput(make_loader(key), path), peak_memory(key, path), monai_rate, monai_memory,
                 "PydicomReader")


if __name__ == "__main__":
    main()
