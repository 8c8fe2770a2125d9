"""Slides: a DICOM whole-slide image and its tiled SEG -> patches -> training -> sliding window -> stitched SEG.

Steps (CPU, well under a minute; needs the ``[slides]`` and ``[monai]`` extras):

1. A synthetic 3-level DICOM WSI (768 x 1024 at level 0, 256-pixel tiles)
   whose red channel encodes its ground-truth labels (0..3), written as one
   series folder; OpenSlide 4 reads it through MONAI's ``WSIReader``.
2. Its labels as a tiled LABELMAP SEG pyramid (one SEG instance per slide
   level, TILED_SPARSE: empty tiles are not stored).
3. Patches at level 1 where the SEG has labels (from the SEG's stored tile
   positions, no label pixel decoded) -> ``SlidePatchSegDataset``: image
   patches through ``WSIReader(backend="openslide")``, label patches from the
   SEG for exactly the same pixels.
4. A tiny model (a 1x1 convolution) trained for a few seconds.
5. Sliding-window inference over level 1 (MONAI's ``PatchWSIDataset``, 96-pixel
   windows, stride 64) -> softmax -> ``SlideSegStitcher`` (mean of the
   overlapping probabilities, argmax) -> a tiled LABELMAP SEG of the slide with a
   two-level pyramid, streamed tile by tile.
6. The SEG read back (whole level and one patch) and compared with the truth.

Run: ``python tutorials/slides.py [--workdir DIR]``.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from monai.data import DataLoader, PatchWSIDataset

import monai_dicomseg as mds

PATCH, LEVEL, CLASSES = 64, 1, 4  # background + 3 labelled regions


def make_slide_and_seg(workdir: Path) -> tuple[Path, list[Path], np.ndarray]:
    """Steps 1-2: the slide folder, its SEG pyramid files and the level-0 truth."""
    wsi = mds.slides.synthetic
    truth = wsi.slide_label_map()  # (768, 1024) uint8, labels 0..3
    levels = wsi.make_slide_pyramid(truth, levels=3)  # one VL Whole Slide Microscopy instance per level
    wsi.write_slide(levels, workdir / "slide")
    names = ["region 1", "region 2", "region 3"]
    segs = mds.seg.create_segmentation_pyramid(
        source_images=levels, pixel_arrays=[truth], segmentation_type="LABELMAP",
        segment_descriptions=mds.segment_descriptions_from_names(names), series_instance_uid=None,
        series_number=10, manufacturer="tutorial", manufacturer_model_name="annotations",
        software_versions="0", device_serial_number="0",
        dimension_organization_type="TILED_SPARSE", omit_empty_frames=True)
    paths = []
    for level, seg in enumerate(segs):
        paths.append(workdir / f"labels-{level}.dcm")
        seg.save_as(paths[-1])
    print(f"slide: {len(levels)} levels, level 0 {truth.shape}; SEG pyramid: "
          f"{[int(seg.NumberOfFrames) for seg in segs]} stored tiles per level")
    return workdir / "slide" / "level-0.dcm", paths, truth


def train(image: Path, segs: list[Path]) -> torch.nn.Module:
    """Steps 3-4: foreground patches with their SEG labels, and a few epochs of a tiny model."""
    items = mds.slide_patch_datalist(str(image), [str(s) for s in segs], PATCH, level=LEVEL)
    loader = DataLoader(mds.SlidePatchSegDataset(items), batch_size=8, shuffle=True, num_workers=0)
    print(f"training patches: {len(items)} of {PATCH}x{PATCH} at level {LEVEL} (only where the SEG has labels)")
    # batch["image"]: (B, 3, H, W) MetaTensor; batch["label"]: (B, 1, H, W); both carry location/level/slide_id/seg_id
    batches = [(normalise(batch["image"]), batch["label"].as_tensor()[:, 0].long()) for batch in loader]
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, CLASSES, kernel_size=1)  # the colour of a pixel tells its label
    optimiser = torch.optim.Adam(model.parameters(), lr=0.2)
    for epoch in range(40):  # the patches are read once above; a real pipeline iterates the loader
        total = 0.0
        for image_batch, label_batch in batches:
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(image_batch), label_batch)
            loss.backward()
            optimiser.step()
            total += loss.item() * len(image_batch)
        if epoch in (0, 39):
            print(f"epoch {epoch}: loss {total / len(items):.3f}")
    return model


def normalise(image: torch.Tensor) -> torch.Tensor:
    """uint8 RGB patches -> float, roughly zero-mean."""
    return (image.as_tensor().float() - 128.0) / 64.0


def infer_and_stitch(model: torch.nn.Module, image: Path, output: Path) -> list[Path]:
    """Step 5: sliding windows over level 1, softmax stitched into a tiled LABELMAP SEG (2-level pyramid)."""
    slide = mds.slides.SlideImage.from_path(image)
    locations = mds.slides.grid_locations(slide, 96, level=LEVEL, stride=64)  # level-0 (top, left) corners
    windows = PatchWSIDataset([{"image": str(image), "location": loc.tolist()} for loc in locations],
                              patch_size=96, patch_level=LEVEL, include_label=False, center_location=False,
                              reader="openslide")
    stitcher = mds.slides.SlideSegStitcher(slide, channels=CLASSES, level=LEVEL, background_channel=True)
    with torch.no_grad():
        for batch in DataLoader(windows, batch_size=8, num_workers=0):
            probabilities = torch.softmax(model(normalise(batch["image"])), dim=1)
            for location, patch in zip(batch["image"].meta["location"], probabilities):
                stitcher.add(location.tolist(), patch)  # (C, H, W) at its level-0 corner
    names = ["region 1", "region 2", "region 3"]
    paths = stitcher.write(output, "LABELMAP", mds.segment_descriptions_from_names(names), pyramid_levels=2)
    stitcher.close()
    print(f"inference: {len(locations)} windows stitched into {[p.name for p in paths]}")
    return paths


def check(paths: list[Path], image: Path, truth: np.ndarray) -> float:
    """Step 6: read the stitched SEG back and compare it with the truth at level 1."""
    wsi = mds.slides.synthetic
    seg = mds.seg.segread(paths[0])
    predicted = seg.get_total_pixel_matrix(combine_segments=True)  # (384, 512) segment numbers
    expected = wsi.downsample_labels(truth, 2 ** LEVEL)
    accuracy = float((predicted == expected).mean())
    print(f"stitched SEG level {LEVEL} {predicted.shape}: pixel accuracy {accuracy:.4f}")
    labels = mds.slides.SlideLabels(mds.slides.SlideImage.from_path(image), [str(p) for p in paths])
    patch = labels.get_patch((384, 512), (64, 64), level=2)  # from the SEG's second pyramid level
    print(f"a level-2 patch of the stitched SEG holds labels {sorted(np.unique(patch).tolist())}")
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="where the files go (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slides-tutorial-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        image, segs, truth = make_slide_and_seg(workdir)
        model = train(image, segs)
        paths = infer_and_stitch(model, image, workdir / "inference.dcm")
        accuracy = check(paths, image, truth)
        if accuracy < 0.95:
            raise SystemExit(f"pixel accuracy {accuracy:.3f} < 0.95: the tiny model did not learn")


if __name__ == "__main__":
    main()
