"""Benchmark: slide label patches from a tiled SEG vs a tiled TIFF mask, and the peak memory of a stitched write.

Run: ``python benchmarks/slides.py`` (``--small`` for a quick run; ``--slide`` /
``--size`` set the two cases). Needs the ``[slides]`` extra (tifffile).

1. **Label-patch throughput.** A synthetic slide of ``--slide``² pixels at
   level 0 (two levels, 256-pixel tiles; three labelled regions) is written
   as tiled SEG pyramids (levels 0 and 1) by our writer — TILED_SPARSE and
   TILED_FULL, BINARY (3 segments, 1 bit) and LABELMAP (8 bit), uncompressed
   — and as a pyramidal tiled TIFF mask of the same label map (uint8, 256²
   tiles, uncompressed, written with tifffile). ``--patches`` random
   locations whose centre pixel is labelled are read at levels 0 and 1
   (``--patch``² pixels) by :meth:`SlideLabels.get_patch` (``"labelmap"``)
   and, in the same run, by MONAI's ``WSIReader(backend="tifffile")``; the
   patches are checked equal. MONAI's tifffile backend decodes the whole
   level for every patch (``TiffFile.asarray(level=...)``), so a third
   column reads only the TIFF tiles under the patch with tifffile itself
   (what a tile-aware TIFF reader can do). Medians of warmed-up runs;
   ratios are ``their time / our time`` measured in the same run.
2. **Peak memory of a stitched write.** In a child process, a
   :class:`SlideSegStitcher` on a ``--size``² level (default 32768² ≈ 1.07
   × 10⁹ pixels) receives overlapping 1024² windows of 2-channel
   probabilities (background + one segment; stride 768) and writes a
   LABELMAP SEG (TILED_SPARSE, 256² tiles); the child reports its peak RSS
   (``VmHWM`` reset after the set-up), the SEG size and the seconds.
   Target (issue 26): 10⁹ pixels in <= 1 GB peak.

Figures on the shared 2-core development machine (8 jobs at once: wall times
are noisy, ratios come from one run; Python 3.11, numpy 2, MONAI 1.6.1,
tifffile 2026.3.3, uncompressed SEG and TIFF), ``--slide 8192 --patches 30``,
ms per 256² label patch (median of 3)::

    level SEG      organization  ours  MONAI tifffile      x  tifffile tiles     x
        0 BINARY   TILED_SPARSE  2.05          622.46  303.4            0.21  0.10
        0 BINARY   TILED_FULL    6.68          622.46   93.2            0.21  0.03
        0 LABELMAP TILED_SPARSE  2.67          622.46  233.2            0.21  0.08
        0 LABELMAP TILED_FULL    3.42          622.46  182.2            0.21  0.06
        1 BINARY   TILED_SPARSE  4.36           74.41   17.1            0.39  0.09
        1 BINARY   TILED_FULL    7.06           74.41   10.5            0.39  0.06
        1 LABELMAP TILED_SPARSE  1.77           74.41   42.0            0.39  0.22
        1 LABELMAP TILED_FULL    4.13           74.41   18.0            0.39  0.09

Against MONAI's tifffile backend ours is 10-300x faster (it decodes the whole
level per patch, so its time grows with the slide); a tile-aware TIFF read is
still 5-30x faster than ours: our ~2-7 ms per patch is per-call overhead in
the SEG layer's region read (pydicom attribute access, segment numbers and
the frame-uniqueness check recomputed per call), not decoding.

Stitched LABELMAP write (2 channels, 1024² windows, stride 768), peak RSS of
the child after set-up:

* 8192² (0.07 × 10⁹ px, 121 windows): 204 MB (baseline 67 MB), add 30 s,
  write 14 s, SEG 36 MB (760 MB before ``add`` released its rows);
* 16384² (0.27 × 10⁹ px, 441 windows): 345 MB, add 179 s, write 122 s, SEG 146 MB;
* 32768² (1.07 × 10⁹ px, 1849 windows; run at idle I/O priority): **876 MB**
  (baseline 66 MB; target <= 1 GB met), add 991 s, write 217 s, SEG 589 MB.
  Disk-bound here (the accumulators are 10.7 GB on disk). The peak grows
  with the encoded SEG: the writer holds the encoded Pixel Data until
  ``save_as``; the stitcher itself stays at about one window band.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from _common import median_time, reset_peak_rss, status_mb  # noqa: E402

SEGMENTS = 3
TILE = 256


def _descriptions(count: int):
    from monai_dicomseg.anatomy import segment_descriptions_from_names

    return segment_descriptions_from_names([f"region {n}" for n in range(1, count + 1)])


def write_seg_levels(headers, labels_by_level, segmentation_type: str, organization: str, folder: Path) -> list[Path]:
    """SEG levels (ours, tile_pixel_array) of the label maps, one instance per slide level."""
    from monai_dicomseg import UID
    from monai_dicomseg.seg import Segmentation

    paths = []
    series, pyramid = UID(), UID()
    for level, (header, labels) in enumerate(zip(headers, labels_by_level)):
        if segmentation_type == "LABELMAP":
            pixels = labels
        else:
            pixels = (labels[None, :, :, None] == np.arange(1, SEGMENTS + 1)).astype(np.uint8)
        seg = Segmentation(
            source_images=[header], pixel_array=pixels, segmentation_type=segmentation_type,
            segment_descriptions=_descriptions(SEGMENTS), series_instance_uid=series, series_number=2,
            sop_instance_uid=UID(), instance_number=level + 1, manufacturer="bench",
            manufacturer_model_name="bench", software_versions="0", device_serial_number="0",
            tile_pixel_array=True, dimension_organization_type=organization,
            omit_empty_frames=organization == "TILED_SPARSE", pyramid_uid=pyramid)
        path = folder / f"{segmentation_type}-{organization}-{level}.dcm"
        seg.save_as(path)
        paths.append(path)
    return paths


def write_tiff(labels_by_level, path: Path) -> None:
    """A pyramidal tiled TIFF mask: one page per level (reduced-resolution pages after the first)."""
    import tifffile

    with tifffile.TiffWriter(path) as tiff:
        for level, labels in enumerate(labels_by_level):
            tiff.write(labels, tile=(TILE, TILE), photometric="minisblack", compression=None, metadata=None,
                       subfiletype=1 if level else 0)


def tiff_tiles_region(page, handle, row: int, column: int, height: int, width: int) -> np.ndarray:
    """The ``(height, width)`` region of a tiled uint8 page, decoding only the tiles under it."""
    out = np.zeros((height, width), np.uint8)
    across = -(-page.imagewidth // page.tilewidth)
    for tile_row in range(row // page.tilelength, (row + height - 1) // page.tilelength + 1):
        for tile_column in range(column // page.tilewidth, (column + width - 1) // page.tilewidth + 1):
            index = tile_row * across + tile_column
            handle.seek(page.dataoffsets[index])
            tile = page.decode(handle.read(page.databytecounts[index]), index)[0]
            tile = np.asarray(tile).reshape(page.tilelength, page.tilewidth)
            r0, c0 = tile_row * page.tilelength, tile_column * page.tilewidth
            rr0, rr1 = max(row, r0), min(row + height, r0 + page.tilelength)
            cc0, cc1 = max(column, c0), min(column + width, c0 + page.tilewidth)
            out[rr0 - row:rr1 - row, cc0 - column:cc1 - column] = tile[rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0]
    return out


def random_locations(labels: np.ndarray, count: int, patch: int, factor: int, seed: int = 0) -> list[tuple[int, int]]:
    """Level-0 ``(top, left)`` of ``count`` patches (``patch`` level pixels) centred on labelled level pixels."""
    rng = np.random.default_rng(seed)
    rows, columns = np.nonzero(labels)
    picks = rng.choice(len(rows), size=count, replace=False)
    top = np.clip(rows[picks] - patch // 2, 0, labels.shape[0] - patch)
    left = np.clip(columns[picks] - patch // 2, 0, labels.shape[1] - patch)
    return [(int(r) * factor, int(c) * factor) for r, c in zip(top, left)]


def throughput(side: int, patches: int, patch: int, repeats: int) -> list[dict]:
    """Time the label patches of every SEG variant and of the TIFF mask (MONAI tifffile, tile reads)."""
    import tifffile
    from monai.data import WSIReader

    from monai_dicomseg.slides import SlideImage, SlideLabels
    from monai_dicomseg.slides import synthetic as wsi

    headers = wsi.slide_headers((side, side), levels=2, tile_shape=(TILE, TILE))
    level0 = wsi.slide_label_map((side, side), block=8)
    labels_by_level = [level0, wsi.downsample_labels(level0, 2)]
    slide = SlideImage(headers)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-slides-") as folder:
        folder = Path(folder)
        tiff_path = folder / "mask.tif"
        write_tiff(labels_by_level, tiff_path)
        reader = WSIReader(backend="tifffile", mode="L")
        wsi_object = reader.read(str(tiff_path))
        tiff = tifffile.TiffFile(tiff_path)
        for level in (0, 1):
            locations = random_locations(labels_by_level[level], patches, patch, 2 ** level)
            size = (patch, patch)

            def monai_read(locations=locations, size=size, level=level):
                return [np.asarray(reader.get_data(wsi_object, location=loc, size=size, level=level)[0])[0]
                        for loc in locations]

            def tile_read(locations=locations, level=level):
                page, factor = tiff.pages[level], 2 ** level
                return [tiff_tiles_region(page, tiff.filehandle, r // factor, c // factor, patch, patch)
                        for r, c in locations]

            monai_time, truth = median_time(monai_read, repeats)
            tiles_time, tiled = median_time(tile_read, repeats)
            assert all(np.array_equal(a, b) for a, b in zip(truth, tiled)), "tifffile tile reads differ"
            for segmentation_type in ("BINARY", "LABELMAP"):
                for organization in ("TILED_SPARSE", "TILED_FULL"):
                    key = (segmentation_type, organization)
                    paths = write_seg_levels(headers, labels_by_level, *key, folder) if level == 0 else \
                        sorted(folder.glob(f"{segmentation_type}-{organization}-*.dcm"))
                    labels = SlideLabels(slide, paths)

                    def ours_read(labels=labels, locations=locations, size=size, level=level):
                        return [labels.get_patch(loc, size, level) for loc in locations]

                    ours_time, got = median_time(ours_read, repeats)
                    assert all(np.array_equal(a, b) for a, b in zip(truth, got)), f"{key} level {level} differs"
                    rows.append(dict(level=level, type=segmentation_type, organization=organization,
                                     ours=ours_time / patches, monai=monai_time / patches,
                                     tiles=tiles_time / patches))
        tiff.close()
        wsi_object.close()
    return rows


def memory_child(size: int, window: int, stride: int) -> dict:
    """Stitch overlapping windows on a ``size``² level and write a LABELMAP SEG; peak RSS from after set-up."""
    from monai_dicomseg.slides import SlideImage, SlideSegStitcher
    from monai_dicomseg.slides import synthetic as wsi

    headers = wsi.slide_headers((size, size), levels=1, tile_shape=(TILE, TILE))
    with tempfile.TemporaryDirectory(prefix="bench-stitch-") as folder:
        stitcher = SlideSegStitcher(SlideImage(headers), channels=2, background_channel=True, directory=folder)
        grid = np.arange(0, max(size - window, 0) + stride, stride)
        y, x = np.mgrid[0:window, 0:window].astype(np.float32)
        baseline = status_mb("VmRSS")
        reset_peak_rss()
        start = time.perf_counter()
        for top in grid:
            for left in grid:
                foreground = 0.5 + 0.5 * np.sin((y + top) / 900.0) * np.cos((x + left) / 1300.0)
                stitcher.add((int(top), int(left)), np.stack([1.0 - foreground, foreground]))
        added = time.perf_counter()
        path = stitcher.write(Path(folder) / "stitched.dcm", "LABELMAP", _descriptions(1), source_image=headers[0])
        written = time.perf_counter()
        result = dict(size=size, windows=len(grid) ** 2, baseline_mb=baseline, peak_mb=status_mb("VmHWM"),
                      add_s=added - start, write_s=written - added, seg_mb=os.path.getsize(path) / 2 ** 20)
        stitcher.close()
    return result


def memory(size: int, window: int, stride: int) -> dict:
    """Run :func:`memory_child` in a fresh interpreter (its peak is its own)."""
    command = [sys.executable, __file__, "--child-memory", str(size), "--window", str(window), "--stride", str(stride)]
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="--slide 4096 --size 8192 --patches 20")
    parser.add_argument("--slide", type=int, default=8192, help="level-0 side of the throughput slide (pixels)")
    parser.add_argument("--patches", type=int, default=50, help="random labelled locations per level")
    parser.add_argument("--patch", type=int, default=256, help="patch side (pixels of the level)")
    parser.add_argument("--size", type=int, default=32768, help="side of the stitched level (pixels)")
    parser.add_argument("--window", type=int, default=1024)
    parser.add_argument("--stride", type=int, default=768)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--child-memory", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_memory:
        print(json.dumps(memory_child(args.child_memory, args.window, args.stride)))
        return
    if args.small:
        args.slide, args.size, args.patches = 4096, 8192, 20
    if not args.skip_throughput:
        print(f"label patches: slide {args.slide}^2 (2 levels, {TILE}^2 tiles), {args.patches} random labelled "
              f"{args.patch}^2 patches per level; ms per patch (median of {args.repeats})")
        print(f"{'level':>5} {'SEG':<8} {'organization':<13} {'ours':>8} {'MONAI tifffile':>15} {'x':>7} "
              f"{'tifffile tiles':>15} {'x':>6}")
        for row in throughput(args.slide, args.patches, args.patch, args.repeats):
            print(f"{row['level']:>5} {row['type']:<8} {row['organization']:<13} {row['ours'] * 1e3:8.2f} "
                  f"{row['monai'] * 1e3:15.2f} {row['monai'] / row['ours']:7.1f} {row['tiles'] * 1e3:15.2f} "
                  f"{row['tiles'] / row['ours']:6.2f}")
    if not args.skip_memory:
        result = memory(args.size, args.window, args.stride)
        pixels = result["size"] ** 2
        print(f"stitched write: {result['size']}^2 = {pixels / 1e9:.2f} x 10^9 pixels, {result['windows']} windows "
              f"{args.window}^2 (stride {args.stride}), LABELMAP TILED_SPARSE: peak RSS {result['peak_mb']:.0f} MB "
              f"(baseline {result['baseline_mb']:.0f} MB), add {result['add_s']:.0f} s, write "
              f"{result['write_s']:.0f} s, SEG {result['seg_mb']:.0f} MB")


if __name__ == "__main__":
    main()
