"""Benchmark: scale (issue 15) — many classes, long series, 16-bit label maps, gigapixel slides.

Run: ``python benchmarks/scale.py --small`` (scaled-down cases, a few minutes) or
``python benchmarks/scale.py --case 1`` (one full-size case; needs the RAM it says).

Cases (full size / ``--small``):

1. softmax of K classes on a coarse model grid (2 x 2 x 1 source voxels per model
   voxel, ~1.6 mm) -> source series: ``SaveDicomSeg`` FRACTIONAL (native, RLE,
   JPEG-LS, JPEG 2000 lossless, 2 workers), BINARY, LABELMAP; vs argmax + MONAI
   inverse (``SpatialResample`` nearest) + highdicom BINARY.
   Full: 117 classes, 512x512x400 (the model output alone is ~12 GB);
   small: 20 classes, 128x128x64.
2. a long series with many segments, write and read (``get_pixels_by_source_instance``,
   combined) BINARY and LABELMAP, ours vs highdicom. Full: 512x512x1000, 117
   segments; small: 256x256x100, 117 segments. ``header-BINARY``: the read's frame index alone
   (per-frame functional groups, bulk parser; median of 5), printed as a share of ``read-BINARY``
   and against ``header-BINARY-general`` (the per-item scanner it replaced, issue 25).
3. 300 segments, 16-bit LABELMAP, write and read. Full: 512x512x200; small: 128x128x40.
6. dense FRACTIONAL (issue 25): a 40-class softmax (+ background) on a 4x4x2-coarser grid written onto the
   series: uncertain (logits 6 x one-hot: every frame stored), confident (12 x one-hot), the uncertain case
   through the per-class path it replaced, and BINARY of the same output; printed as ratios to BINARY and
   as peak above the model output. Full: 512x512x200; small: 256x256x100. ``--repeat 3`` for medians.
5. FRACTIONAL read as labels (issue 25): a 117-segment FRACTIONAL SEG (0.8 inside each organ, 0.25 in its
   neighbour organs', so thresholds matter) read with ``load_seg_array(mode="labelmap", threshold=0.5)`` (what
   ``LoadDicomSegd(mode="labelmap", threshold=0.5)`` and ``to-nifti --threshold`` run: stored frames ->
   label map a chunk at a time) against the stacked float read (``mode="stacked"``, float32 ``(117, ...)``)
   and the float-stack threshold it replaced (``labels-via-float``); printed as ratios to the float read.
   Full: 256x256x100, 117 segments; small: 128x128x40, 117 segments.
4. tiled LABELMAP from a memory-mapped total pixel matrix (read tile by tile), native, RLE and JPEG-LS,
   then three 2048x2048 region reads. Full: 32768x32768 (1.07x10^9 pixels), 512 tiles; small: 4096x4096,
   256 tiles, 1024x1024 regions. highdicom is given the matrix as an in-memory array (it needs it whole).

Measured (2-core, 24 GB, shared machine, highdicom 0.28.2; one run each, so read the ratios):

* case 1, full (117 classes, 12.4 GB model output -> 512x512x400, ``--logit-scale 12``): FRACTIONAL native
  15.2 s (1,976 MB above the model output, 1,062 MB file), FRACTIONAL JPEG-LS (2 workers) 18.9 s (124 MB above,
  3.6 MB file), BINARY 17.8 s (946 MB above), LABELMAP 13.1 s; argmax + MONAI inverse + highdicom BINARY
  57.2 s (5,825 MB above): x3.2 (BINARY) and x4.4 (LABELMAP) at 0.16 of what it adds (0.73 of its peak,
  which both share the 12.4 GB input). Mid size (``--shape 200 512 512 --classes 20``): FRACTIONAL 2.2 s,
  JPEG-LS 5.4 s, BINARY 2.1-2.9 s, highdicom path 15.5 s; with the default logit scale 6 every off-class
  value is stored as 1 (1.05 GB, every frame non-empty): 39 s.
* case 6 (40 classes + background, 4x4x2-coarser grid; full size 512x512x200, 2-core VM): BINARY 1.2-1.3 s;
  FRACTIONAL uncertain (a 2.1 GB file, every frame stored) x4.5 (one run), x5.2, x6.3 (medians of 3) and x6.3
  (median of 5: 7.6 s vs 1.21 s) of BINARY in four runs, 355 MB above its inputs; confident x1.1-1.6. Before
  frames were released as written (a write of 2 GB through the frame store then left 4.2 GB of dirty pages and
  the kernel throttled it): 13.5 s, x7.4; before the frame store: 18.1 s and +4.0 GB; the per-class path
  50.3 s (x27.6). Since every variant writes a new file after ``os.sync``, ``file-write`` (the uncertain
  file's bytes alone) measures the page cache, 0.5-0.6 s, not the disk (3.5-7 s when earlier runs' pages were
  still being written back). Small (256x256x100): BINARY 0.55 s; uncertain x2.56, confident x1.20 (before).
* case 5, full (256x256x100, 117 segments): ``read-labels`` 0.98 s vs ``read-float`` 6.36 s (x0.15 time, x0.04
  peak: 25 MB vs 2,356 MB added); the float-stack threshold it replaced 12.9 s (x2.03, 2,912 MB).
* case 2, full (512x512x1000, 117 segments): write BINARY 1.6 s vs 20.6 s (x12.7; 0.46 of its peak RSS, 0.32
  of what it adds above its inputs), LABELMAP 0.57 s vs 4.0 s (x7.1; 0.51, 0.33); read BINARY 1.9 s vs 10.3 s
  (x5.4; 0.35, 0.32), LABELMAP 0.25 s vs 1.6 s (x6.5; 0.46, 0.45). Header only (``--shape 1000 256 256``,
  10,098 frames, BINARY; the full size did not fit beside other jobs): frame index 44 ms with the bulk parser vs
  935 ms with the per-item scanner (x21, medians of 5), 3.6% of the 1.23 s read (it was ~44%).
* case 3, full (512x512x200, 300 segments, 16-bit): write 0.31 s vs 1.39 s (x4.5; with the 16-bit input made
  before the clock, as now: 0.60 s vs 2.54 s, x4.2; 0.51, 0.25), read 0.11 s vs 1.18 s (x10.7; 0.53, 0.38).
* case 4, full (32768x32768 = 1.07e9 pixels, memory-mapped): JPEG-LS write 4.7 s at 131 MB peak RSS vs
  highdicom 13.3 s at 3.3 GB (x2.8, 0.04), region reads 0.70 s / 110 MB vs 3.4 s / 194 MB; RLE 40 s / 163 MB
  vs 56 s / 3.3 GB; native 13 s / 2.1 GB vs 13 s / 5.3 GB (a native file of the matrix is itself 1 GB), native
  region reads 0.46 s / 111 MB (5 MB above the inputs; the file's Pixel Data stays on disk) vs 6.2 s / 1.2 GB.

Every figure comes from its own child process: wall time of the call, peak RSS (VmHWM of the child,
reset to the current RSS just before the call, so the inputs it holds are included but the set-up's
transient peaks are not; ``ru_maxrss`` where /proc is missing), what the call added above the RSS it
started with, and the file size. Both sides get the same inputs (source headers without their pixels,
the label array) and import everything before the clock starts. Figures are printed as a
table, with each of ours against highdicom's measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import CACHE, big_case, reset_peak_rss, series_folder, status_mb  # noqa: E402

FACTORS = (2, 2, 1)  # source voxels per model voxel along MONAI (C, R, S)
LOGIT_SCALE = [6.0]
"""Case 1's softmax is ``softmax(scale * onehot)``: with 6, every off-class probability is
``1 / (e**6 + K)`` (> 0.5/255 for K < 108: stored as 1, so every FRACTIONAL frame is non-empty); a trained
network is far more confident away from an organ (``--logit-scale 12``: ~6e-6, stored as 0)."""
FULL = {1: ((400, 512, 512), 117), 2: ((1000, 512, 512), 117), 3: ((200, 512, 512), 300),
        4: ((32768, 32768), 512, 2048), 5: ((100, 256, 256), 117), 6: ((200, 512, 512), 40)}
SMALL = {1: ((64, 128, 128), 20), 2: ((100, 256, 256), 117), 3: ((40, 128, 128), 300),
         4: ((4096, 4096), 256, 1024), 5: ((40, 128, 128), 117), 6: ((100, 256, 256), 40)}
DENSE_FACTORS = (4, 4, 2)
"""Case 6's model grid: 4 x 4 x 2 source voxels per model voxel along MONAI (C, R, S)."""
COMPRESSION = {"native": None, "rle": "rle", "jpegls": "jpegls", "jpeg2000": "jpeg2000"}
VARIANTS = {
    1: ["FRACTIONAL-native", "FRACTIONAL-rle", "FRACTIONAL-jpegls", "FRACTIONAL-jpeg2000", "BINARY", "LABELMAP",
        "hd-BINARY"],
    2: ["write-BINARY", "write-LABELMAP", "hd-write-BINARY", "hd-write-LABELMAP",
        "read-BINARY", "read-LABELMAP", "hd-read-BINARY", "hd-read-LABELMAP",
        "header-BINARY", "header-BINARY-general"],
    3: ["write-LABELMAP", "hd-write-LABELMAP", "read-LABELMAP", "hd-read-LABELMAP"],
    4: ["write-LABELMAP", "hd-write-LABELMAP", "read-regions", "hd-read-regions",
        "write-LABELMAP-rle", "hd-write-LABELMAP-rle", "read-regions-rle", "hd-read-regions-rle",
        "write-LABELMAP-jpegls", "hd-write-LABELMAP-jpegls", "read-regions-jpegls", "hd-read-regions-jpegls"],
    5: ["read-float", "read-labels", "labels-via-float"],
    6: ["BINARY", "FRACTIONAL-uncertain", "FRACTIONAL-confident", "FRACTIONAL-uncertain-per-class", "file-write"],
}


BASE_MB = [0.0]


def start_clock() -> float:
    """Reset the peak-RSS mark to the current RSS, note that base, start the clock.

    The set-up (reading inputs, building the file a read variant reads) is then
    outside both the time and the peak, and ``peak - base`` is what the call itself
    added on top of the inputs it was given. Dirty pages left by the variants before (a
    2 GB file each) are flushed first (``os.sync``), so no variant pays for another's
    writeback."""
    if hasattr(os, "sync"):
        os.sync()
    reset_peak_rss()
    BASE_MB[0] = status_mb("VmRSS") or 0.0
    return time.perf_counter()


def peak_mb() -> float:
    """Peak RSS of this process in MB since :func:`start_clock`: VmHWM (reset by exec, unlike ``ru_maxrss``,
    which Linux carries over from the forking parent), else ``ru_maxrss``."""
    peak = status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def model_output(shape, segments, factors=FACTORS):
    """(softmax (K+1, X, Y, Z) float32 MetaTensor on the model grid, source folder)."""
    import torch
    from monai.data import MetaTensor

    from monai_dicomseg.io.source_series import load_source_geometry, to_monai_array

    folder = series_folder(shape, segments)
    _, labels = big_case(shape, segments)
    source = load_source_geometry(folder)
    coarse = np.ascontiguousarray(to_monai_array(labels)[::factors[0], ::factors[1], ::factors[2]])
    del labels
    probs = torch.empty((segments + 1, *coarse.shape), dtype=torch.float32)
    for start in range(0, coarse.shape[2], 8):  # slab-wise softmax of a scaled one-hot: bounded set-up memory
        block = torch.nn.functional.one_hot(torch.from_numpy(coarse[..., start:start + 8]).long(), segments + 1)
        probs[..., start:start + 8] = torch.softmax(block.permute(3, 0, 1, 2).float() * LOGIT_SCALE[0], dim=0)
    affine = source.monai_affine().copy()
    affine[:3, :3] = affine[:3, :3] * np.array(factors, dtype=float)
    return MetaTensor(probs, affine=torch.as_tensor(affine), meta={"filename_or_obj": str(folder)}), folder


def names(count: int) -> list[str]:
    return [f"organ {i}" for i in range(1, count + 1)]


def hd_descriptions(highdicom, count: int):
    from pydicom.sr.codedict import codes

    algorithm = highdicom.AlgorithmIdentificationSequence(name="net", family=codes.cid7162.ArtificialIntelligence,
                                                          version="1")
    return [highdicom.seg.SegmentDescription(
        segment_number=i, segment_label=f"organ {i}", segmented_property_category=codes.SCT.Organ,
        segmented_property_type=codes.SCT.Liver, algorithm_type="AUTOMATIC", algorithm_identification=algorithm)
        for i in range(1, count + 1)]


def segmentation(module, sources, pixels, segmentation_type, count, **options):
    return module.seg.Segmentation(
        source_images=sources, pixel_array=pixels, segmentation_type=segmentation_type,
        segment_descriptions=hd_descriptions(module, count) if module.__name__ == "highdicom"
        else ours_descriptions(count), series_instance_uid=module.UID(), series_number=300,
        sop_instance_uid=module.UID(), instance_number=1, manufacturer="x", manufacturer_model_name="x",
        software_versions="1", device_serial_number="1", **options)


def ours_descriptions(count: int):
    import monai_dicomseg

    return hd_descriptions(monai_dicomseg, count)


# --------------------------------------------------------------------------- case bodies (in a child)


def case1(variant: str, shape, segments, out: Path) -> dict:
    probs, folder = model_output(shape, segments)
    path = out / "case1.dcm"
    import highdicom  # noqa: F401  (imports are not what is measured)
    from monai.transforms import SpatialResample  # noqa: F401

    from monai_dicomseg.io.writer import DicomSegWriter

    start = start_clock()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if variant == "hd-BINARY":
            run_today(probs, folder, segments, path)
        else:
            kind, _, compression = variant.partition("-")
            options = {} if compression in ("", "native") else {"compression": compression, "workers": 2}
            writer = DicomSegWriter(segmentation_type=kind, labels=["background", *names(segments)],
                                    overwrite=True, **options)
            writer.set_data_array(probs, channel_dim=0)
            writer.set_metadata(probs.meta)
            writer.write(path)
    return {"seconds": time.perf_counter() - start, "size": path.stat().st_size}


def run_today(probs, folder, segments, path) -> None:
    """argmax on the model grid, MONAI's inverse (nearest), DICOM axes, highdicom BINARY."""
    import highdicom
    import pydicom
    import torch
    from monai.transforms import SpatialResample

    from monai_dicomseg.io.source_series import from_monai_array, load_source_geometry

    files = sorted(folder.glob("*.dcm"))
    datasets = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    normal = np.cross(np.asarray(datasets[0].ImageOrientationPatient[:3], float),
                      np.asarray(datasets[0].ImageOrientationPatient[3:], float))
    datasets.sort(key=lambda ds: float(np.asarray(ds.ImagePositionPatient, float) @ normal))
    target = load_source_geometry(folder)
    labels = torch.argmax(probs, dim=0, keepdim=True).to(torch.float32)
    labels.meta["affine"] = probs.affine
    back = SpatialResample(mode="nearest", padding_mode="zeros")(
        labels, dst_affine=torch.as_tensor(target.monai_affine()),
        spatial_size=tuple(int(s) for s in target.geometry.spatial_shape[::-1]))
    label_map = np.ascontiguousarray(from_monai_array(back[0].numpy()).astype(np.uint8))
    segmentation(highdicom, datasets, label_map, "BINARY", segments).save_as(path)


def _module(variant: str):
    """The package a variant runs, fully imported before any timing (imports are not what is measured)."""
    from pydicom.sr.codedict import codes  # noqa: F401  (both sides build their descriptions from it)

    if variant.startswith("hd-"):
        import highdicom

        hd_descriptions(highdicom, 1)
        return highdicom, variant[3:]
    import importlib
    import pkgutil

    import monai_dicomseg

    for package in ("seg", "codec", "geometry", "sr"):  # monai_dicomseg imports its modules lazily, on first use
        module = importlib.import_module(f"monai_dicomseg.{package}")
        for info in pkgutil.iter_modules(module.__path__, f"monai_dicomseg.{package}."):
            importlib.import_module(info.name)
    hd_descriptions(monai_dicomseg, 1)
    return monai_dicomseg, variant


def series_headers(shape, segments, labels: bool = True):
    """``(source headers without Pixel Data, label map)`` of :func:`big_case`: what both writers need.

    Neither writer reads the source pixels, so leaving them out keeps ~0.5 GB
    of CT pixels (at 512x512x1000) out of both peaks and the memory ratios
    about the writers themselves."""
    import pydicom

    folder = series_folder(shape, segments)
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in sorted(folder.glob("*.dcm"))]
    headers.sort(key=lambda ds: int(ds.InstanceNumber))
    return headers, np.load(folder.parent / "labels.npy") if labels else None


def case_series(variant: str, shape, segments, out: Path) -> dict:
    """Cases 2 and 3: write or read a label map of ``segments`` segments on a long series."""
    module, action = _module(variant)
    operation, _, kind = action.partition("-")
    path = out / f"case-{kind}-{'hd' if variant.startswith('hd-') else 'ours'}.dcm"
    sources, labels = series_headers(shape, segments, labels=operation == "write" or not path.exists())
    if operation == "write":
        pixels = labels if segments < 256 else labels.astype(np.uint16)  # the input both writers get
        del labels
        start = start_clock()
        segmentation(module, sources, pixels, kind, segments).save_as(path)
        return {"seconds": time.perf_counter() - start, "size": path.stat().st_size}
    if not path.exists():  # the file this side wrote (written outside the timing)
        import monai_dicomseg

        pixels = labels if segments < 256 else labels.astype(np.uint16)
        segmentation(monai_dicomseg, sources, pixels, kind, segments).save_as(path)
    uids = [str(ds.SOPInstanceUID) for ds in sources]
    del labels, sources  # a reader needs neither
    start = start_clock()
    seg = module.seg.segread(str(path))
    array = seg.get_pixels_by_source_instance(uids, combine_segments=True, skip_overlap_checks=True)
    return {"seconds": time.perf_counter() - start, "size": path.stat().st_size, "voxels": int(array.size)}


def case_header(variant: str, shape, segments, out: Path) -> dict:
    """Case 2, header only: the frame index (per-frame functional groups) of the file ``read-BINARY`` reads.

    ``header-BINARY`` is what a read runs now (the bulk parser, all frames at once);
    ``header-BINARY-general`` switches it off (the per-item scanner every read used before).
    Median of 5 indexes, each of a fresh ``segread`` (not timed)."""
    import statistics

    module, _ = _module(variant)
    from monai_dicomseg.codec import bulk_frame_header
    from monai_dicomseg.codec.frame_index import build_frame_index

    kind = variant.split("-")[1]
    path = out / f"case-{kind}-ours.dcm"
    if not path.exists():
        sources, labels = series_headers(shape, segments)
        segmentation(module, sources, labels if segments < 256 else labels.astype(np.uint16), kind,
                     segments).save_as(path)
        del sources, labels
    bulk_frame_header.ENABLED = not variant.endswith("-general")
    times = []
    start_clock()
    for _ in range(5):
        seg = module.seg.segread(str(path))
        begin = time.perf_counter()
        frames = build_frame_index(seg).number_of_frames
        times.append(time.perf_counter() - begin)
    return {"seconds": statistics.median(times), "size": path.stat().st_size, "frames": frames}


def slide_source(total, tile, out: Path):
    """A small slide made to describe a big total pixel matrix (headers only are used)."""
    from monai_dicomseg import synthetic

    image = synthetic.make_slide_image((tile, tile), (tile, tile))
    image.TotalPixelMatrixRows, image.TotalPixelMatrixColumns = total
    image.NumberOfFrames = -(-total[0] // tile) * -(-total[1] // tile)
    return image


SLIDE_SYNTAXES = {"": None, "rle": "1.2.840.10008.1.2.5", "jpegls": "1.2.840.10008.1.2.4.80"}
"""Case 4's transfer syntaxes by variant suffix: native, RLE Lossless, JPEG-LS Lossless."""


def _slide_options(compression: str) -> dict:
    syntax = SLIDE_SYNTAXES[compression]
    return {} if syntax is None else {"transfer_syntax_uid": syntax}


def case4(variant: str, total, tile, region, out: Path) -> dict:
    """Tiled LABELMAP ``write-LABELMAP[-rle|-jpegls]`` or 2048^2 ``read-regions[-rle|-jpegls]``."""
    module, action = _module(variant)
    compression = action.split("-")[2] if action.startswith("write") and action.count("-") == 2 else (
        action.split("-")[2] if action.startswith("read") and action.count("-") == 2 else "")
    matrix_path = CACHE / f"matrix_{total[0]}x{total[1]}.u8"
    path = out / f"case4{'-' + compression if compression else ''}-{'hd' if variant.startswith('hd-') else 'ours'}.dcm"
    source = slide_source(total, tile, out)
    matrix = np.memmap(matrix_path, dtype=np.uint8, mode="r", shape=total)
    options = _slide_options(compression)
    if compression == "jpegls" and not variant.startswith("hd-"):
        options["workers"] = 2
    if action.startswith("write"):
        pixels = np.array(matrix) if variant.startswith("hd-") else matrix  # highdicom: whole array in memory
        start = start_clock()
        segmentation(module, [source], pixels[None], "LABELMAP", 3, tile_pixel_array=True,
                     omit_empty_frames=True, **options).save_as(path)
        return {"seconds": time.perf_counter() - start, "size": path.stat().st_size}
    if not path.exists():
        import monai_dicomseg

        options.pop("workers", None)
        segmentation(monai_dicomseg, [source], matrix[None], "LABELMAP", 3, tile_pixel_array=True,
                     **options).save_as(path)
    del matrix
    start = start_clock()
    seg = module.seg.segread(str(path))
    corners = [(1, 1), (total[0] // 2, total[1] // 3), (total[0] - region, total[1] - region)]
    for row, column in corners:
        seg.get_total_pixel_matrix(row_start=row, row_end=row + region, column_start=column,
                                   column_end=column + region, combine_segments=True)
    return {"seconds": time.perf_counter() - start, "size": path.stat().st_size}


def make_matrix(total) -> None:
    """A memory-mapped label matrix with three kinds of blobs, written band by band."""
    matrix_path = CACHE / f"matrix_{total[0]}x{total[1]}.u8"
    if matrix_path.exists():
        return
    CACHE.mkdir(parents=True, exist_ok=True)
    matrix = np.memmap(matrix_path, dtype=np.uint8, mode="w+", shape=total)
    rng = np.random.default_rng(0)
    columns = np.arange(total[1])
    for start in range(0, total[0], 1024):
        rows = np.arange(start, min(start + 1024, total[0]))[:, None]
        band = ((np.sin(rows / 97.0) + np.cos(columns / 131.0)[None]) * 1.5).astype(np.int8).clip(0, 3)
        band[rng.random(band.shape) < 0.001] = 0
        matrix[start:start + len(rows)] = band.astype(np.uint8)
    matrix.flush()


def fractional_seg(shape, segments, out: Path) -> Path:
    """Case 5's FRACTIONAL SEG (written once, outside any timing), streamed in 4-plane blocks of all segments."""
    import monai_dicomseg
    from monai_dicomseg.seg.inputs import StackedSegmentSource

    path = out / "case5-fractional.dcm"
    if path.exists():
        return path
    sources, labels = series_headers(shape, segments)
    numbers = np.arange(1, segments + 1, dtype=labels.dtype)[:, None, None, None]

    def blocks():
        for start in range(0, shape[0], 4):
            block = labels[start:start + 4][None]
            inside = block == numbers
            near = (np.abs(block.astype(np.int16) - numbers) == 1) & (block > 0)
            values = np.where(inside, np.float32(0.8), np.where(near, np.float32(0.25), np.float32(0)))
            yield start, min(start + 4, shape[0]), 0, segments, values

    source = StackedSegmentSource((*shape, segments), np.float32, blocks)
    segmentation(monai_dicomseg, sources, source, "FRACTIONAL", segments).save_as(path)
    return path


def case5(variant: str, shape, segments, out: Path) -> dict:
    """Case 5: FRACTIONAL -> label map at threshold 0.5 vs the stacked float read."""
    _module(variant)
    from monai_dicomseg.io import segload

    path = fractional_seg(shape, segments, out)
    start = start_clock()
    if variant == "read-float":
        array = segload.load_seg_array(str(path), mode="stacked").array
    elif variant == "read-labels":
        array = segload.load_seg_array(str(path), mode="labelmap", threshold=0.5).array
    else:  # the float-stack threshold of before: decode (S, F, R, C) float32, then compare and paint
        from monai_dicomseg.io.segments import SegmentSelection, segment_table

        seg = segload.read_segmentation(str(path))
        plan = SegmentSelection.from_options({}, None).plan(segment_table(seg), where=str(path))
        values, _ = segload._decode(seg, plan, "stacked", True, False)
        array = segload._apply_threshold(values, plan, "labelmap", 0.5, False)
    return {"seconds": time.perf_counter() - start, "size": path.stat().st_size, "voxels": int(array.size)}


def case6(variant: str, shape, segments, out: Path) -> dict:
    """Case 6: a softmax of ``segments`` + 1 channels on a 4x4x2-coarser grid written as FRACTIONAL / BINARY.

    ``uncertain``: logits 6 x one-hot (every off-class probability ~1/(e^6 + K) is stored as 1: every frame
    non-empty, the dense path); ``confident``: logits 12 x one-hot (off-class values stored as 0: each class's
    support only); ``per-class``: the uncertain case through the per-class numpy path this replaced
    (``device_grid.available`` patched False); ``BINARY``: argmax of the uncertain output."""
    from monai_dicomseg.io import device_grid
    from monai_dicomseg.io.writer import DicomSegWriter

    if variant == "file-write":  # the machine's floor: writing the uncertain file's Pixel Data bytes, nothing else
        size = int(np.prod(shape)) * (segments + 1)
        chunk = bytes(1 << 20)
        path = out / "case6-floor.bin"
        path.unlink(missing_ok=True)  # a new file, as the variants write (truncating one makes ext4 flush it)
        start = start_clock()
        with open(path, "wb") as stream:
            for offset in range(0, size, len(chunk)):
                stream.write(chunk[:min(len(chunk), size - offset)])
        return {"seconds": time.perf_counter() - start, "size": path.stat().st_size, "model_mb": 0.0}
    LOGIT_SCALE[0] = 12.0 if variant.endswith("confident") else 6.0
    probs, folder = model_output(shape, segments, DENSE_FACTORS)
    if variant.endswith("per-class"):
        device_grid.available = lambda: False
    path = out / "case6.dcm"
    path.unlink(missing_ok=True)  # a new file for every variant: renaming over a 2 GB file makes ext4 flush it
    kind = variant.partition("-")[0]
    start = start_clock()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        writer = DicomSegWriter(segmentation_type=kind, labels=["background", *names(segments)], overwrite=True)
        writer.set_data_array(probs, channel_dim=0)
        writer.set_metadata(probs.meta)
        writer.write(path)
    return {"seconds": time.perf_counter() - start, "size": path.stat().st_size,
            "model_mb": probs.numel() * 4 / 1e6}


def child(case: int, variant: str, small: bool, out: str) -> None:
    spec = (SMALL if small else FULL)[case]
    out_path = Path(out)
    if variant == "prepare":
        make_matrix(spec[0]) if case == 4 else series_folder(spec[0], spec[1])
        if case == 5:
            fractional_seg(spec[0], spec[1], out_path)
        return
    if case == 1:
        result = case1(variant, spec[0], spec[1], out_path)
    elif case == 2 and variant.startswith("header-"):
        result = case_header(variant, spec[0], spec[1], out_path)
    elif case in (2, 3):
        result = case_series(variant, spec[0], spec[1], out_path)
    elif case == 5:
        result = case5(variant, spec[0], spec[1], out_path)
    elif case == 6:
        result = case6(variant, spec[0], spec[1], out_path)
    else:
        result = case4(variant, spec[0], spec[1], spec[2], out_path)
    result["peak_mb"] = peak_mb()
    result["base_mb"] = BASE_MB[0]
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="scaled-down cases (quick)")
    parser.add_argument("--case", type=int, action="append", choices=sorted(FULL),
                        help="run only these cases (repeatable; default: all)")
    parser.add_argument("--skip-highdicom", action="store_true", help="leave out the highdicom variants")
    parser.add_argument("--shape", type=int, nargs=3, metavar=("F", "R", "C"),
                        help="case 1 (and 2, 3): another source series shape")
    parser.add_argument("--classes", type=int, help="case 1 (and 2, 3): another number of classes/segments")
    parser.add_argument("--variants", nargs="+", help="run only these variants")
    parser.add_argument("--logit-scale", type=float, default=6.0,
                        help="case 1: softmax(scale * one-hot) (default 6; 12 is closer to a trained network)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each variant (each in its own child); the median time and peak are printed")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    specs = SMALL if args.small else FULL
    if args.shape or args.classes:
        for case in (1, 2, 3, 5, 6):
            specs[case] = (tuple(args.shape or specs[case][0]), args.classes or specs[case][1])
    LOGIT_SCALE[0] = args.logit_scale
    if args.child:
        child(int(args.child[0]), args.child[1], args.small, args.child[2])
        return
    cases = args.case or sorted(FULL)
    forwarded = (["--small"] if args.small else []) + (["--shape", *map(str, args.shape)] if args.shape else []) \
        + (["--classes", str(args.classes)] if args.classes else []) + ["--logit-scale", str(args.logit_scale)]
    print(f"{'case':<6}{'variant':<24}{'seconds':>10}{'peak RSS MB':>13}{'above inputs':>14}{'size MB':>10}"
          f"{'  vs highdicom'}")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as out:  # git-ignored, on the disk the inputs are on
        for case in cases:
            # build the cached inputs outside the timings, in a child (this process stays small)
            subprocess.run([sys.executable, __file__, "--child", str(case), "prepare", out] + forwarded,
                           check=True)
            results: dict[str, dict] = {}
            for variant in VARIANTS[case]:
                if (args.skip_highdicom and variant.startswith("hd")) or (args.variants
                                                                          and variant not in args.variants):
                    continue
                command = [sys.executable, __file__, "--child", str(case), variant, out] + forwarded
                runs = [subprocess.run(command, capture_output=True, text=True) for _ in range(max(1, args.repeat))]
                failed = [done for done in runs if done.returncode != 0]
                if failed:
                    print(f"{case:<6}{variant:<24} failed: {failed[0].stderr.strip().splitlines()[-1:]}")
                    continue
                results[variant] = result = _median([json.loads(done.stdout.strip().splitlines()[-1]) for done in runs])
                versus = ""
                theirs = results.get(_highdicom_twin(case, variant))
                if theirs:
                    versus = (f"  x{theirs['seconds'] / result['seconds']:.2f} speed, "
                              f"{result['peak_mb'] / theirs['peak_mb']:.2f} of its peak")
                print(f"{case:<6}{variant:<24}{result['seconds']:10.2f}{result['peak_mb']:13.0f}"
                      f"{_extra(result):14.0f}{result['size'] / 1e6:10.1f}{versus}", flush=True)
            if case == 5 and "read-float" in results:  # FRACTIONAL as labels: ratios to the float read
                base = results["read-float"]
                for variant in ("read-labels", "labels-via-float"):
                    if variant in results:
                        result = results[variant]
                        print(f"{'':<6}{variant:<24} vs read-float: x{result['seconds'] / base['seconds']:.2f} time, "
                              f"x{result['peak_mb'] / base['peak_mb']:.2f} peak RSS, "
                              f"{_extra(result):.0f} MB vs {_extra(base):.0f} MB added")
            if case == 2 and "header-BINARY" in results:  # the per-frame header's share of a BINARY read
                _print_header_share(results)
            if case == 6 and "BINARY" in results:  # the dense FRACTIONAL targets, as ratios of this run
                base = results["BINARY"]
                for variant in VARIANTS[6][1:-1]:
                    if variant in results:
                        result = results[variant]
                        print(f"{'':<6}{variant:<24} vs BINARY: x{result['seconds'] / base['seconds']:.2f} time; "
                              f"peak {result['peak_mb']:.0f} MB = model output {result['model_mb']:.0f} MB + "
                              f"{result['peak_mb'] - result['model_mb']:.0f} MB")
                floor = results.get("file-write")
                if floor and "FRACTIONAL-uncertain" in results:
                    print(f"{'':<6}{'file-write':<24} vs BINARY: x{floor['seconds'] / base['seconds']:.2f} time (writing "
                          f"the uncertain file's bytes alone); FRACTIONAL-uncertain is "
                          f"x{results['FRACTIONAL-uncertain']['seconds'] / floor['seconds']:.2f} of it")
            if case in (2, 3, 4):  # print ours-vs-highdicom once both are known
                for variant, result in results.items():
                    theirs = results.get(_highdicom_twin(case, variant))
                    if theirs and not variant.startswith("hd-"):
                        print(f"{'':<6}{variant:<24} vs highdicom: x{theirs['seconds'] / result['seconds']:.2f} "
                              f"speed, {result['peak_mb'] / theirs['peak_mb']:.2f} of its peak RSS, "
                              f"{_extra(result) / max(_extra(theirs), 1.0):.2f} of what it adds to its inputs")
            for stale in Path(out).glob("*.dcm"):
                stale.unlink()


def _print_header_share(results: dict) -> None:
    header = results["header-BINARY"]
    line = f"{'':<6}{'header-BINARY':<24} {header['frames']} frames: {header['seconds'] * 1e3:.0f} ms"
    if "read-BINARY" in results:
        line += f", {header['seconds'] / results['read-BINARY']['seconds']:.1%} of read-BINARY"
    if "header-BINARY-general" in results:
        general = results["header-BINARY-general"]["seconds"]
        line += f"; per-item scanner {general * 1e3:.0f} ms (x{general / header['seconds']:.1f})"
    print(line)


def _median(runs: "list[dict]") -> dict:
    """One result of several runs: the median seconds and peak (other fields from the first run)."""
    import statistics

    result = dict(runs[0])
    for key in ("seconds", "peak_mb", "base_mb"):
        result[key] = statistics.median(run[key] for run in runs)
    result["runs"] = len(runs)
    return result


def _extra(result: dict) -> float:
    """MB the call added on top of the RSS it started with (its inputs and the imports)."""
    return max(0.0, result["peak_mb"] - result.get("base_mb", 0.0))


def _highdicom_twin(case: int, variant: str) -> str:
    if variant.startswith("hd-"):
        return ""
    if case == 1:
        return "hd-BINARY" if variant in ("BINARY", "LABELMAP") else ""
    return f"hd-{variant}"


if __name__ == "__main__":
    main()
