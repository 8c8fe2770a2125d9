"""MONAI side: image patches from WSIReader(backend="openslide") on the DICOM WSI with SEG label patches,
a DataLoader with workers, a tiny training loop, and a sliding-window inference stitched into a SEG."""
from __future__ import annotations

import highdicom
import numpy as np
import pytest
import torch
from monai.data import DataLoader

import monai_dicomseg as ours
from monai_dicomseg.data.slides import SlidePatchSegDataset, slide_patch_datalist
from monai_dicomseg.errors import InputError
from monai_dicomseg.slides import SlideImage, SlideSegStitcher
from monai_dicomseg.slides import synthetic as wsi
from monai_dicomseg.slides.sampling import grid_locations
from oracles import dciodvfy_errors, segment_descriptions

pytest.importorskip("openslide")
pytestmark = pytest.mark.monai


@pytest.mark.parametrize("level", [0, 1])
def test_image_and_label_patches_align_through_a_dataloader(slide_dir, seg_factory, level):
    segs = seg_factory("BINARY", "TILED_SPARSE", (0, 1))
    items = slide_patch_datalist(str(slide_dir / "level-0.dcm"), segs, 64, level=level, stride=96)
    assert items and all(len(item["location"]) == 2 for item in items)
    dataset = SlidePatchSegDataset(items, label_mode="stacked")
    loader = DataLoader(dataset, batch_size=4, num_workers=2)
    seen = 0
    for batch in loader:
        image, label = batch["image"], batch["label"]
        assert image.shape[1:] == (3, 64, 64) and label.shape[1:] == (3, 64, 64)
        encoded = wsi.decode_labels(image.numpy(), channel_axis=1)
        expected = encoded[:, None] == np.arange(1, 4)[None, :, None, None]
        np.testing.assert_array_equal(label.numpy(), expected)
        assert batch["label"].meta["level"].tolist() == [level] * len(image)
        assert batch["image"].meta["slide_id"][0] == SlideImage.from_path(slide_dir).identity["series_instance_uid"]
        seen += len(image)
    assert seen == len(items)
    assert any(it["location"] for it in items)


def test_bad_label_mode(slide_dir):
    with pytest.raises(InputError, match="label_mode must be one of"):
        SlidePatchSegDataset([], label_mode="onehot")


def test_tiny_training_loop_and_sliding_window_inference(tmp_path, slide_dir, seg_factory):
    torch.manual_seed(0)
    segs = seg_factory("LABELMAP", "TILED_FULL", (0, 1, 2))
    items = slide_patch_datalist(str(slide_dir / "level-0.dcm"), segs, 64, level=1)
    loader = DataLoader(SlidePatchSegDataset(items), batch_size=8, shuffle=True, num_workers=0)
    model = torch.nn.Conv2d(3, 4, kernel_size=1)  # the red channel separates the labels: learnable per pixel
    optimiser = torch.optim.Adam(model.parameters(), lr=0.1)
    losses = []
    for _ in range(8):
        for batch in loader:
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(batch["image"].as_tensor() / 255.0),
                                                     batch["label"].as_tensor()[:, 0].long())
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
    assert losses[-1] < losses[0]
    # sliding window at level 1 with overlap, stitched (mean of softmax) into a LABELMAP SEG
    slide = SlideImage.from_path(slide_dir)
    locations = grid_locations(slide, 96, level=1, stride=64)
    inference = SlidePatchSegDataset([{"image": str(slide_dir / "level-0.dcm"), "seg": segs,
                                       "location": loc.tolist()} for loc in locations], 96, 1)
    stitcher = SlideSegStitcher(slide, channels=4, level=1, background_channel=True)
    with torch.no_grad():
        for batch in DataLoader(inference, batch_size=4, num_workers=2):
            probabilities = torch.softmax(model(batch["image"].as_tensor() / 255.0), dim=1)
            for location, patch in zip(batch["image"].meta["location"], probabilities):
                stitcher.add(location.tolist(), patch)
    stitched = stitcher.stitched("LABELMAP")[0:384, 0:512]
    path = stitcher.write(tmp_path / "inference.dcm", "LABELMAP", segment_descriptions(ours, 3))
    stitcher.close()
    read = highdicom.seg.segread(path).get_total_pixel_matrix(combine_segments=True)
    np.testing.assert_array_equal(read, stitched)
    assert dciodvfy_errors(path) == []
