"""Benchmark: reading a SEG into a label-map volume, ours vs highdicom vs nibabel.

Builds a 512 x 512 x 200 synthetic CT series and a 100-segment label map
(ellipsoid blobs), writes BINARY and LABELMAP SEGs (with highdicom, so both
readers see identical files) plus ``.nii`` / ``.nii.gz`` of the labels, then
times ``segread(path).get_volume(combine_segments=True)`` for each reader and
``nibabel.load(path).get_fdata``-free ``np.asarray(img.dataobj)`` for NIfTI.
Median of ``--repeats`` runs, all in the same process.

Usage: python benchmarks/read.py [--slices 200] [--size 512] [--segments 100] [--repeats 3]
"""
from __future__ import annotations

import argparse
import sys
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def _median_time(fn, repeats: int) -> tuple[float, object]:
    fn()  # warm-up: first-touch page faults and caches are not what we compare
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--segments", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    import highdicom
    import nibabel
    from pydicom.sr.codedict import codes

    import monai_dicomseg as mds

    shape = (args.slices, args.size, args.size)
    t0 = time.perf_counter()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import big_case  # cached synthetic case (benchmarks/.cache)

    sources, labels = big_case(shape, args.segments)
    print(f"sources/labels {shape} ready in {time.perf_counter() - t0:.1f} s")
    descriptions = [
        highdicom.seg.SegmentDescription(
            segment_number=i, segment_label=f"organ {i}",
            segmented_property_category=codes.SCT.Organ, segmented_property_type=codes.SCT.Liver,
            algorithm_type=highdicom.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=highdicom.AlgorithmIdentificationSequence(
                name="bench", version="1", family=codes.DCM.ArtificialIntelligence),
        ) for i in range(1, args.segments + 1)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = {}
        for seg_type in ("BINARY", "LABELMAP"):
            t0 = time.perf_counter()
            seg = highdicom.seg.Segmentation(
                source_images=sources, pixel_array=labels, segmentation_type=seg_type,
                segment_descriptions=descriptions, series_instance_uid=highdicom.UID(),
                sop_instance_uid=highdicom.UID(), series_number=1, instance_number=1,
                manufacturer="bench", manufacturer_model_name="bench", software_versions="1",
                device_serial_number="1",
            )
            paths[seg_type] = folder / f"{seg_type.lower()}.dcm"
            seg.save_as(paths[seg_type])
            print(f"wrote {seg_type} SEG ({int(seg.NumberOfFrames)} frames, "
                  f"{paths[seg_type].stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s")
            del seg
        affine = np.diag([-0.7, -0.8, 2.5, 1.0])
        nifti = nibabel.Nifti1Image(np.ascontiguousarray(labels.transpose(2, 1, 0)), affine)
        for ext in ("nii", "nii.gz"):
            nibabel.save(nifti, folder / f"labels.{ext}")

        results = {}
        for seg_type, path in paths.items():
            ours_t, ours = _median_time(
                lambda: mds.seg.segread(path).get_volume(combine_segments=True), args.repeats)
            hd_t, theirs = _median_time(
                lambda: highdicom.seg.segread(path).get_volume(combine_segments=True), args.repeats)
            assert np.array_equal(ours.array, theirs.array), f"{seg_type}: arrays differ"
            assert np.allclose(ours.affine, theirs.affine, atol=1e-4), f"{seg_type}: affines differ"
            results[seg_type] = (ours_t, hd_t)
        nib_t = {}
        for ext in ("nii", "nii.gz"):
            nib_t[ext], _ = _median_time(
                lambda: np.asarray(nibabel.load(folder / f"labels.{ext}").dataobj), args.repeats)

    print(f"\nsegread + get_volume(combine_segments=True), median of {args.repeats} "
          f"({shape[0]} x {shape[1]} x {shape[2]}, {args.segments} segments)")
    print(f"{'file':<10}{'ours (s)':>10}{'highdicom':>11}{'speed-up':>10}{'vs .nii':>9}{'vs .nii.gz':>11}")
    for seg_type, (ours_t, hd_t) in results.items():
        print(f"{seg_type:<10}{ours_t:>10.3f}{hd_t:>11.3f}{hd_t / ours_t:>9.1f}x"
              f"{ours_t / nib_t['nii']:>8.1f}x{ours_t / nib_t['nii.gz']:>10.2f}x")
    print(f"nibabel .nii {nib_t['nii']:.3f} s, .nii.gz {nib_t['nii.gz']:.3f} s "
          "(ratios above: our time / nibabel time)")


if __name__ == "__main__":
    main()
