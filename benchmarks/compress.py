"""Benchmark: compressed SEGs — file size, write and read time per codec, ours vs highdicom.

Case: the 512 x 512 x 200, 100-segment synthetic series of ``_common.big_case``
(cached under ``benchmarks/.cache``). For each (segmentation type, transfer
syntax) — LABELMAP with Explicit VR Little Endian (reference), RLE Lossless,
JPEG 2000 Lossless and JPEG-LS Lossless; BINARY with Explicit VR Little Endian
(reference) and JPEG 2000 Lossless — it measures, for ``monai_dicomseg`` and
for highdicom with the same codec, in the same run and on the same inputs:

* **write**: build the Segmentation from the label map and ``save_as`` to disk
  (``workers=0``, i.e. in process, for both);
* **size** of the written file;
* **read**: ``segread(path)`` followed by
  ``get_pixels_by_source_instance(all source UIDs, combine_segments=True,
  skip_overlap_checks=True)`` (a ``(200, 512, 512)`` label volume), each
  library reading the file it wrote itself.

Then JPEG 2000 writes with ``workers=0`` vs ``workers=2`` (ours; highdicom's
for reference) for LABELMAP (empty planes omitted, and with
``omit_empty_frames=False`` for all 200 frames) and BINARY. Medians of ``--repeats`` runs.

Usage::

    python benchmarks/compress.py [--repeats 1] [--small] [--only LABELMAP:JPEG2000]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import highdicom  # noqa: E402
import numpy as np  # noqa: E402
from pydicom.sr.codedict import codes  # noqa: E402
from pydicom.uid import (  # noqa: E402
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

import monai_dicomseg as hd  # noqa: E402
import write  # noqa: E402
from _common import big_case, median_time  # noqa: E402

CODECS = {
    "native": ExplicitVRLittleEndian,
    "RLE": RLELossless,
    "JPEG2000": JPEG2000Lossless,
    "JPEG-LS": JPEGLSLossless,
}
CASES = [
    ("LABELMAP", "native"),
    ("LABELMAP", "RLE"),
    ("LABELMAP", "JPEG2000"),
    ("LABELMAP", "JPEG-LS"),
    ("BINARY", "native"),
    ("BINARY", "JPEG2000"),
]


def descriptions(module: Any, count: int) -> list[Any]:
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


def write_with(module: Any, series: list, labels: np.ndarray, segmentation_type: str,
               transfer_syntax_uid: str, path: str, segment_descriptions: list,
               workers: int = 0, **extra: Any) -> int:
    return write.write_with(module, series, labels, segmentation_type, path, segment_descriptions,
                            transfer_syntax_uid=transfer_syntax_uid, workers=workers, **extra)


def read_with(module: Any, path: str, uids: list[str]) -> np.ndarray:
    seg = module.seg.segread(path)
    return seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids,
        combine_segments=True,
        skip_overlap_checks=True,
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:9.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--small", action="store_true", help="64x128x128, 20 segments")
    parser.add_argument("--only", action="append", default=None,
                        help="TYPE:CODEC to run (repeatable), e.g. LABELMAP:JPEG2000")
    parser.add_argument("--skip-workers", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    np.seterr(all="ignore")

    shape, segments = ((64, 128, 128), 20) if args.small else ((200, 512, 512), 100)
    series, labels = big_case(shape, segments)
    uids = [str(ds.SOPInstanceUID) for ds in series]
    print(f"load average: {open('/proc/loadavg').read().split()[:3]}")
    print(f"case: {shape[0]} slices of {shape[1]}x{shape[2]}, {segments} segments, "
          f"repeats={args.repeats}, cpus={os.cpu_count()}")
    ours_descriptions = descriptions(hd, segments)
    their_descriptions = descriptions(highdicom, segments)
    cases = CASES if not args.only else [tuple(o.split(":")) for o in args.only]

    header = (f"{'case':<20} {'frames':>6} | {'size MB ours':>12} {'hd':>8} | "
              f"{'write ms ours':>13} {'hd':>9} {'x':>5} | {'read ms ours':>12} {'hd':>9} {'x':>5}")
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        for seg_type, codec in cases:
            syntax = CODECS[codec]
            ours_path = os.path.join(folder, f"ours_{seg_type}_{codec}.dcm")
            theirs_path = os.path.join(folder, f"hd_{seg_type}_{codec}.dcm")
            write_ours, frames = median_time(
                lambda: write_with(hd, series, labels, seg_type, syntax, ours_path,
                                   ours_descriptions), args.repeats)
            write_theirs, their_frames = median_time(
                lambda: write_with(highdicom, series, labels, seg_type, syntax, theirs_path,
                                   their_descriptions), args.repeats)
            read_ours, ours_volume = median_time(
                lambda: read_with(hd, ours_path, uids), args.repeats)
            read_theirs, their_volume = median_time(
                lambda: read_with(highdicom, theirs_path, uids), args.repeats)
            same = (np.array_equal(np.asarray(ours_volume), labels)
                    and np.array_equal(np.asarray(their_volume), labels))
            size_ours = os.path.getsize(ours_path) / 1e6
            size_theirs = os.path.getsize(theirs_path) / 1e6
            row = (f"{seg_type + ' ' + codec:<20} {frames:>6} | {size_ours:>12.2f} {size_theirs:>8.2f} | "
                   f"{_ms(write_ours):>13} {_ms(write_theirs):>9} {write_theirs / write_ours:>5.2f} | "
                   f"{_ms(read_ours):>12} {_ms(read_theirs):>9} {read_theirs / read_ours:>5.2f}")
            if frames != their_frames:
                row += f"  (highdicom frames {their_frames})"
            if not same:
                row += "  ** read-back differs from the input **"
            rows.append(row)
            print(row, flush=True)
            os.remove(theirs_path)
            os.remove(ours_path)

        print()
        print("x = highdicom time / our time (> 1: we are faster)")
        print(header)
        for row in rows:
            print(row)

        if not args.skip_workers:
            print()
            print("JPEG 2000 write, workers=0 vs workers=2 (ms; x = workers=0 time / workers=2 time)")
            path = os.path.join(folder, "workers.dcm")
            worker_cases = [
                ("LABELMAP", {}),
                ("LABELMAP", {"omit_empty_frames": False}),
                ("BINARY", {}),
            ]
            for seg_type, extra in worker_cases:
                for name, module, descs in (("ours", hd, ours_descriptions),
                                            ("highdicom", highdicom, their_descriptions)):
                    times = {}
                    for workers in (0, 2):
                        times[workers], frames = median_time(
                            lambda: write_with(module, series, labels, seg_type, JPEG2000Lossless,
                                               path, descs, workers=workers, **extra),
                            args.repeats)
                    label = seg_type + (" all frames" if extra else "")
                    print(f"{label:<20} {name:<10} {frames:>5} frames: workers=0 {_ms(times[0])}   "
                          f"workers=2 {_ms(times[2])}   x{times[0] / times[2]:.2f}", flush=True)
        print(f"load average at the end: {open('/proc/loadavg').read().split()[:3]}")

if __name__ == "__main__":
    main()
