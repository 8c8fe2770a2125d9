"""Benchmark: write BINARY and LABELMAP SEGs of a 512x512x200, 100-segment series.

Run: ``python benchmarks/write.py`` (``--small`` for a quick run). Prints our
time, highdicom's time on the same inputs in the same run, and the ratio.
Times include building the dataset and writing the file to disk.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import highdicom  # noqa: E402
import numpy as np  # noqa: E402
from pydicom.sr.codedict import codes  # noqa: E402

import monai_dicomseg as hd  # noqa: E402
from _common import big_case, median_time, report  # noqa: E402


def descriptions(module, count: int):
    return [
        module.seg.SegmentDescription(
            segment_number=number,
            segment_label=f"organ {number}",
            segmented_property_category=codes.SCT.Organ,
            segmented_property_type=codes.SCT.Liver,
            algorithm_type="MANUAL",
        )
        for number in range(1, count + 1)
    ]


def write_with(module, series, labels, segmentation_type: str, path: str, segment_descriptions,
               **extra) -> int:
    """Build a SEG with ``module`` (ours or highdicom), save it to ``path``; return its frame count."""
    seg = module.seg.Segmentation(
        source_images=series,
        pixel_array=labels,
        segmentation_type=segmentation_type,
        segment_descriptions=segment_descriptions,
        series_instance_uid=module.UID(),
        series_number=1,
        sop_instance_uid=module.UID(),
        instance_number=1,
        manufacturer="bench",
        manufacturer_model_name="bench",
        software_versions="0",
        device_serial_number="0",
        **extra,
    )
    seg.save_as(path)
    return int(seg.NumberOfFrames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="64x128x128, 20 segments")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    shape, segments = ((64, 128, 128), 20) if args.small else ((200, 512, 512), 100)
    series, labels = big_case(shape, segments)
    print(f"case: {shape[0]} slices of {shape[1]}x{shape[2]}, {segments} segments")
    with tempfile.TemporaryDirectory() as folder:
        for seg_type in ("BINARY", "LABELMAP"):
            ours_path = os.path.join(folder, f"ours_{seg_type}.dcm")
            theirs_path = os.path.join(folder, f"hd_{seg_type}.dcm")
            ours_descriptions = descriptions(hd, segments)
            their_descriptions = descriptions(highdicom, segments)
            ours, frames = median_time(
                lambda: write_with(hd, series, labels, seg_type, ours_path, ours_descriptions),
                args.repeats)
            theirs, their_frames = median_time(
                lambda: write_with(highdicom, series, labels, seg_type, theirs_path,
                                   their_descriptions),
                args.repeats)
            report(f"write {seg_type} ({frames} frames)", ours, theirs)
            if frames != their_frames:
                print(f"  note: frame counts differ: ours {frames}, highdicom {their_frames}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
