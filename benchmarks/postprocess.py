"""Benchmark: 100-class softmax on a model grid -> SEG on a 512x512x200 source series.

Run: ``python benchmarks/postprocess.py`` (``--small`` for a quick run, ``--repeats N``).

The model output is what a real network gives after ``Orientationd`` +
``Spacingd``: 101 channels (background + 100 organs) of softmax probabilities
on a 128x128x100 grid (3.2 x 3.2 x 3.0 mm) of a 512x512x200 CT series
(0.8 x 0.8 x 1.5 mm), float32 (~660 MB).

* ours: ``SaveDicomSeg`` (BINARY and LABELMAP), default policy: linear
  resampling of the probabilities + argmax on the source grid (exact,
  computed only on class boundaries), encoded by ``monai_dicomseg``, atomic
  write; and ``interpolation="nearest"`` (argmax on the model grid, then
  nearest mapping: the same result as today's path).
* today's path: ``argmax`` on the model grid, MONAI's inverse
  (``SpatialResample`` nearest back to the source affine/shape), axis
  conversion to DICOM (frame, row, column), highdicom BINARY
  ``Segmentation`` + ``save_as``.

Both include reading the source headers. Each variant runs in its own
subprocess so peak RSS (``ru_maxrss``) is measured per variant; where Linux
allows resetting the high-water mark (``/proc/self/clear_refs``), the peak
RSS during the timed call alone is reported too (the model output, ~660 MB,
is resident in both).
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import big_case, reset_peak_rss, series_folder, status_mb  # noqa: E402

VARIANTS = {
    "today": "argmax+MONAI inverse+highdicom BINARY",
    "BINARY": "SaveDicomSeg BINARY (linear+argmax)",
    "LABELMAP": "SaveDicomSeg LABELMAP (linear+argmax)",
    "BINARY-nearest": "SaveDicomSeg BINARY (argmax+nearest)",
    "LABELMAP-nearest": "SaveDicomSeg LABELMAP (argmax+nearest)",
}
FACTORS = (4, 4, 2)  # source voxels per model voxel along MONAI (C, R, S)



def model_output(shape, segments):
    """(probabilities (S+1, X, Y, Z) float32 MetaTensor on the model grid, source folder)."""
    import torch
    from monai.data import MetaTensor

    from monai_dicomseg.io.source_series import load_source_geometry, to_monai_array

    folder = series_folder(shape, segments)
    _, labels = big_case(shape, segments)
    source = load_source_geometry(folder)
    # labels are in generation order == sorted order for the benchmark series (axial, increasing)
    monai_labels = to_monai_array(labels)
    coarse = np.ascontiguousarray(monai_labels[1::FACTORS[0], 1::FACTORS[1], ::FACTORS[2]])
    probs = torch.nn.functional.one_hot(torch.from_numpy(coarse).long(), segments + 1)
    probs = torch.softmax(probs.permute(3, 0, 1, 2).float() * 6.0, dim=0)
    affine = source.monai_affine().copy()
    centre_shift = np.array([(f - 1) / 2.0 if f > 1 else 0.0 for f in FACTORS])
    affine[:3, 3] = affine[:3, 3] + affine[:3, :3] @ centre_shift
    affine[:3, :3] = affine[:3, :3] * np.array(FACTORS, dtype=float)
    return MetaTensor(probs, affine=torch.as_tensor(affine), meta={"filename_or_obj": str(folder)}), folder


_SETUP_PEAK_MB: "list[float]" = []


def reset_peak() -> None:
    """Reset the process's peak RSS (VmHWM) so the timed call's own peak can be read; no-op if not allowed.

    The peak so far (building the model output) is kept, as resetting also resets ``ru_maxrss``.
    """
    _SETUP_PEAK_MB.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    # The setup (torch/MONAI imports, building the model output) leaves millions of objects: collect
    # them now and freeze the survivors, so a full garbage collection they trigger is not timed
    # as part of whichever single call comes next (it swung one-call timings by ~0.2 s).
    gc.collect()
    gc.freeze()
    reset_peak_rss()


def peak_since_reset_mb() -> "float | None":
    """VmHWM in MB (the peak since :func:`reset_peak`), or None where /proc is unavailable."""
    return status_mb("VmHWM")


def names(count: int) -> list[str]:
    from monai_dicomseg.anatomy import _table

    known = sorted(_table()["entries"])
    return [known[i % len(known)] + ("" if i < len(known) else f" {i}") for i in range(count)]


def run_ours(shape, segments, variant, out) -> float:
    from monai_dicomseg.transforms.save import SaveDicomSeg

    segmentation_type, _, interpolation = variant.partition("-")
    probs, _ = model_output(shape, segments)
    reset_peak()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        SaveDicomSeg(output_dir=out, segmentation_type=segmentation_type, labels=names(segments),
                     interpolation=interpolation or "auto", overwrite=True)(probs)
    return time.perf_counter() - start


def run_today(shape, segments, out) -> float:
    import highdicom
    import pydicom
    import torch
    from monai.transforms import SpatialResample
    from pydicom.sr.codedict import codes

    from monai_dicomseg.io.source_series import from_monai_array, load_source_geometry

    probs, folder = model_output(shape, segments)
    reset_peak()
    start = time.perf_counter()
    files = sorted(folder.glob("*.dcm"))
    datasets = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    normal = np.cross(np.asarray(datasets[0].ImageOrientationPatient[:3], float),
                      np.asarray(datasets[0].ImageOrientationPatient[3:], float))
    datasets.sort(key=lambda ds: float(np.asarray(ds.ImagePositionPatient, float) @ normal))
    target = load_source_geometry(folder)  # the source grid as MONAI loads it (affine + shape)
    labels = torch.argmax(probs, dim=0, keepdim=True).to(torch.float32)
    labels.meta["affine"] = probs.affine
    back = SpatialResample(mode="nearest", padding_mode="zeros")(
        labels, dst_affine=torch.as_tensor(target.monai_affine()), spatial_size=target.monai_array().shape
        if target.volume is not None else tuple(int(s) for s in target.geometry.spatial_shape[::-1]))
    label_map = np.ascontiguousarray(from_monai_array(back[0].numpy()).astype(np.uint8))
    algorithm = highdicom.AlgorithmIdentificationSequence(name="net", family=codes.cid7162.ArtificialIntelligence,
                                                          version="1")
    descriptions = [highdicom.seg.SegmentDescription(
        segment_number=i, segment_label=f"organ {i}", segmented_property_category=codes.SCT.Organ,
        segmented_property_type=codes.SCT.Liver, algorithm_type="AUTOMATIC", algorithm_identification=algorithm)
        for i in range(1, segments + 1)]
    seg = highdicom.seg.Segmentation(
        source_images=datasets, pixel_array=label_map, segmentation_type="BINARY",
        segment_descriptions=descriptions, series_instance_uid=highdicom.UID(), series_number=300,
        sop_instance_uid=highdicom.UID(), instance_number=1, manufacturer="x", manufacturer_model_name="x",
        software_versions="1", device_serial_number="1")
    seg.save_as(os.path.join(out, "today.dcm"))
    return time.perf_counter() - start


def child(variant: str, shape, segments, out: str) -> None:
    elapsed = run_today(shape, segments, out) if variant == "today" else run_ours(shape, segments, variant, out)
    call_peak_mb = peak_since_reset_mb()
    peak_mb = max([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, *_SETUP_PEAK_MB])
    print(json.dumps({"seconds": elapsed, "peak_mb": peak_mb, "call_peak_mb": call_peak_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="64x128x128 series with 20 segments")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape, segments = ((64, 128, 128), 20) if args.small else ((200, 512, 512), 100)
    if args.child:
        child(args.child[0], shape, segments, args.child[1])
        return
    series_folder(shape, segments)  # build the cache outside the timings
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as out:
        for variant in VARIANTS:
            for _ in range(args.repeats):
                command = [sys.executable, __file__, "--child", variant, out] + (["--small"] if args.small else [])
                done = subprocess.run(command, capture_output=True, text=True, check=True)
                results.setdefault(variant, []).append(json.loads(done.stdout.strip().splitlines()[-1]))
    base = statistics.median(r["seconds"] for r in results["today"])
    print(f"case: {segments}-class softmax on a {shape[2] // FACTORS[0]}x{shape[1] // FACTORS[1]}x"
          f"{shape[0] // FACTORS[2]} model grid -> {shape[2]}x{shape[1]}x{shape[0]} source series, "
          f"{args.repeats} runs, medians; peak RSS of the whole process (includes building the model output) "
          "and during the timed call alone")
    for variant, label in VARIANTS.items():
        seconds = statistics.median(r["seconds"] for r in results[variant])
        peak = max(r["peak_mb"] for r in results[variant])
        calls = [r["call_peak_mb"] for r in results[variant] if r.get("call_peak_mb") is not None]
        call = f"   call peak {max(calls):7.0f} MB" if calls else ""
        print(f"{label:<40} {seconds:8.2f} s   speed-up x{base / seconds:5.2f}   peak RSS {peak:7.0f} MB{call}")


if __name__ == "__main__":
    main()
