"""Overlapping patch outputs stitched into a tiled SEG on the slide's geometry, read back by highdicom."""
from __future__ import annotations

import highdicom
import numpy as np
import pytest

import monai_dicomseg as ours
from monai_dicomseg.errors import InputError, InputTypeError
from monai_dicomseg.slides import SlideSegStitcher
from oracles import dciodvfy_errors, segment_descriptions

WINDOWS = [(r, c) for r in range(0, 384, 96) for c in range(0, 512, 96)]  # 128-pixel windows at level 1, overlap 32


def _probabilities(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.dirichlet(np.ones(4), size=(128, 128)).transpose(2, 0, 1).astype(np.float32) for _ in WINDOWS]


def _truth_mean(patches: list[np.ndarray]) -> np.ndarray:
    """Mean of the covering patches per pixel, on the whole level-1 matrix (384 x 512) in memory."""
    sums, counts = np.zeros((4, 384, 512)), np.zeros((384, 512))
    for (r, c), patch in zip(WINDOWS, patches):
        h, w = min(128, 384 - r), min(128, 512 - c)
        sums[:, r:r + h, c:c + w] += patch[:, :h, :w]
        counts[r:r + h, c:c + w] += 1
    return (sums / np.maximum(counts, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def stitched(slide_dir):
    patches = _probabilities(0)
    stitcher = SlideSegStitcher(slide_dir, channels=4, level=1, background_channel=True)
    for (r, c), patch in zip(WINDOWS, patches):
        stitcher.add((2 * r, 2 * c), patch)  # level-0 locations of level-1 windows
    yield stitcher, _truth_mean(patches)
    stitcher.close()


@pytest.mark.dciodvfy
@pytest.mark.parametrize("segmentation_type", ["LABELMAP", "BINARY", "FRACTIONAL"])
def test_stitched_seg_reads_back_in_highdicom(tmp_path, stitched, slide_levels, segmentation_type):
    stitcher, mean = stitched
    path = stitcher.write(tmp_path / "out.dcm", segmentation_type, segment_descriptions(ours, 3))
    seg = highdicom.seg.segread(path)
    assert seg.TotalPixelMatrixRows == 384 and seg.TotalPixelMatrixColumns == 512
    assert seg.FrameOfReferenceUID == slide_levels[1].FrameOfReferenceUID
    assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID \
        == slide_levels[1].SOPInstanceUID
    if segmentation_type == "LABELMAP":
        got = seg.get_total_pixel_matrix(combine_segments=True)
        np.testing.assert_array_equal(got, mean.argmax(axis=0))
    elif segmentation_type == "BINARY":
        got = seg.get_total_pixel_matrix()
        np.testing.assert_array_equal(got, (mean[1:] >= 0.5).transpose(1, 2, 0))
    else:
        got = seg.get_total_pixel_matrix()
        np.testing.assert_allclose(got, mean[1:].transpose(1, 2, 0), atol=0.5 / 255 + 1e-6)
    assert dciodvfy_errors(path) == []


def test_label_patches_vote(tmp_path, slide_dir, truth):
    """Integer label patches overlap by half: the majority (here: the same label) wins; uncovered pixels are 0."""
    stitcher = SlideSegStitcher(slide_dir, channels=3, level=0)
    for r in range(0, 768, 128):
        for c in range(0, 1024, 128):
            stitcher.add_labels((r, c), truth[r:r + 256, c:c + 256])
    path = stitcher.write(tmp_path / "labels.dcm", "LABELMAP", segment_descriptions(ours, 3),
                          dimension_organization_type="TILED_FULL", omit_empty_frames=False)
    stitcher.close()
    got = highdicom.seg.segread(path).get_total_pixel_matrix(combine_segments=True)
    np.testing.assert_array_equal(got, truth)


def test_ties_go_to_the_lower_channel_and_threshold(tmp_path, slide_dir):
    stitcher = SlideSegStitcher(slide_dir, channels=2, level=2)
    stitcher.add((0, 0), np.stack([np.full((4, 4), 0.6), np.full((4, 4), 0.6)]))
    stitcher.add((0, 16), np.stack([np.full((4, 4), 0.2), np.full((4, 4), 0.4)]))
    labels = stitcher.stitched("LABELMAP")[0:4, 0:8]
    np.testing.assert_array_equal(labels[:, :4], 1)  # tie between segments 1 and 2: the lower
    np.testing.assert_array_equal(labels[:, 4:], 0)  # best mean 0.4 < threshold 0.5
    stitcher.close()


def test_bad_inputs(slide_dir):
    stitcher = SlideSegStitcher(slide_dir, channels=2)
    with pytest.raises(InputError, match=r"patch must be \(C, H, W\) with C = 2"):
        stitcher.add((0, 0), np.zeros((3, 8, 8)))
    with pytest.raises(InputTypeError, match="labels must be an integer"):
        stitcher.add_labels((0, 0), np.zeros((8, 8), np.float32))
    with pytest.raises(InputError, match=r"labels must be in \[0, 2\]"):
        stitcher.add_labels((0, 0), np.full((8, 8), 3))
    with pytest.raises(InputError, match="segmentation_type must be one of"):
        stitcher.stitched("PROBABILITY")
    with pytest.raises(InputError, match="channels must be an int >= 2"):
        SlideSegStitcher(slide_dir, channels=1, background_channel=True)
    stitcher.close()


@pytest.mark.dciodvfy
@pytest.mark.parametrize("segmentation_type", ["LABELMAP", "BINARY", "FRACTIONAL"])
def test_pyramid_levels_equal_highdicoms_pyramid_of_the_stitched_matrix(tmp_path, stitched, slide_levels,
                                                                         segmentation_type):
    """pyramid_levels=2 from level 1: SEG level k on slide level 1 + k, each as highdicom resizes the stitched level."""
    stitcher, _ = stitched
    paths = stitcher.write(tmp_path / "pyramid.dcm", segmentation_type, segment_descriptions(ours, 3),
                           pyramid_levels=2, pyramid_label="inference")
    assert [p.name for p in paths] == ["pyramid.dcm", "pyramid-level-1.dcm"]
    full = stitcher.stitched(segmentation_type)
    matrix = full[0:384, 0:512] if segmentation_type == "LABELMAP" else full[0, 0:384, 0:512][None]
    expected = highdicom.seg.create_segmentation_pyramid(
        source_images=slide_levels[1:3], pixel_arrays=[matrix], segmentation_type=segmentation_type,
        segment_descriptions=segment_descriptions(highdicom, 3), series_instance_uid=highdicom.UID(),
        series_number=1, manufacturer="x", manufacturer_model_name="x", software_versions="0",
        device_serial_number="0")
    segs = [highdicom.seg.segread(path) for path in paths]
    assert len({seg.SeriesInstanceUID for seg in segs}) == 1 and len({seg.PyramidUID for seg in segs}) == 1
    assert [seg.InstanceNumber for seg in segs] == [1, 2] and segs[1].PyramidLabel == "inference"
    for level, (seg, truth) in enumerate(zip(segs, expected)):
        source = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
        assert source == slide_levels[1 + level].SOPInstanceUID
        assert (seg.TotalPixelMatrixRows, seg.TotalPixelMatrixColumns) == (384 // 2 ** level, 512 // 2 ** level)
        combine = segmentation_type == "LABELMAP"
        got = seg.get_total_pixel_matrix(combine_segments=combine)
        want = truth.get_total_pixel_matrix(combine_segments=combine)
        if segmentation_type == "FRACTIONAL":  # both quantise to 1/255; Pillow resizes in float32
            np.testing.assert_allclose(got, want, atol=1 / 255 + 1e-6)
        else:
            np.testing.assert_array_equal(got, want)
    assert dciodvfy_errors(paths[1]) == []


def test_pyramid_level_block_equals_whole_level(stitched):
    """A pyramid level computed tile by tile equals the same level computed in one block (the writer's access)."""
    stitcher, _ = stitched
    for segmentation_type in ("LABELMAP", "FRACTIONAL"):
        level = stitcher.stitched(segmentation_type, level=2)
        whole = level[0:192, 0:256] if segmentation_type == "LABELMAP" else level[0, 0:192, 0:256]
        tiles = np.zeros_like(whole)
        for r in range(0, 192, 64):
            for c in range(0, 256, 96):
                key = (slice(r, r + 64), slice(c, c + 96))
                tiles[key] = level[key] if segmentation_type == "LABELMAP" else level[(0, *key)]
        np.testing.assert_array_equal(tiles, whole)


def test_bad_pyramid_requests(tmp_path, stitched, slide_levels):
    stitcher, _ = stitched
    descriptions = segment_descriptions(ours, 3)
    with pytest.raises(InputError, match=r"pyramid_levels=3 from level 1 needs slide levels up to 3; the slide has 3"):
        stitcher.write(tmp_path / "x.dcm", "LABELMAP", descriptions, pyramid_levels=3)
    with pytest.raises(InputError, match="pyramid_levels must be an int >= 1"):
        stitcher.write(tmp_path / "x.dcm", "LABELMAP", descriptions, pyramid_levels=0)
    with pytest.raises(InputError, match=r"source_image must give 2 instance\(s\)"):
        stitcher.write(tmp_path / "x.dcm", "LABELMAP", descriptions, pyramid_levels=2, source_image=slide_levels[1])
    with pytest.raises(InputError, match="source_image for slide level 1 must be instance"):
        stitcher.write(tmp_path / "x.dcm", "LABELMAP", descriptions, source_image=slide_levels[0])
    with pytest.raises(InputError, match="sop_instance_uid names one instance"):
        stitcher.write(tmp_path / "x.dcm", "LABELMAP", descriptions, pyramid_levels=2, sop_instance_uid="1.2.3")
    with pytest.raises(InputError, match="level must be an int >= the stitcher's level 1"):
        stitcher.stitched("LABELMAP", level=0)
