"""Label patches of a DICOM WSI from its tiled SEGs, checked against the labels encoded in the image pixels
that OpenSlide 4 reads from the same slide (MONAI WSIReader conventions: location (top, left) at level 0,
size (height, width) at the level)."""
from __future__ import annotations

import copy

import highdicom
import numpy as np
import pytest

import monai_dicomseg as ours
from monai_dicomseg.errors import GeometryError, InputError, InputTypeError
from monai_dicomseg.slides import SlideImage, SlideLabels
from monai_dicomseg.slides import synthetic as wsi
from monai_dicomseg.slides.geometry import level_region
from oracles import COMMON_SEG_ARGUMENTS, segment_descriptions

openslide = pytest.importorskip("openslide")

# (location at level 0, size at the level, level): inside, across tile borders, over the right/bottom edge
PATCHES = [((0, 0), (256, 256), 0), ((200, 300), (128, 192), 0), ((700, 960), (100, 100), 0),
           ((128, 256), (128, 128), 1), ((300, 900), (64, 96), 1), ((0, 0), (192, 256), 2)]


def image_labels(slide_dir, location, size, level):
    """The labels encoded in the image patch OpenSlide reads (MONAI's openslide backend call)."""
    with openslide.OpenSlide(str(slide_dir / "level-0.dcm")) as slide:
        patch = slide.read_region(location[::-1], level, size[::-1])
    rgba = np.asarray(patch)
    labels = wsi.decode_labels(rgba[..., :3])
    labels[rgba[..., 3] == 0] = 0  # outside the slide: transparent
    return labels


def test_openslide_opens_the_synthetic_wsi(slide_dir, slide_levels):
    with openslide.OpenSlide(str(slide_dir / "level-0.dcm")) as slide:
        assert slide.properties["openslide.vendor"] == "dicom"
        assert slide.level_dimensions == ((1024, 768), (512, 384), (256, 192))
        assert slide.level_downsamples == (1.0, 2.0, 4.0)
        assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(0.25)
    info = SlideImage.from_path(slide_dir)
    assert info.level_count == 3 and info.downsample(2) == (4.0, 4.0)


# every type and organisation written by us; highdicom (the independent producer) for every type as
# TILED_SPARSE and for one TILED_FULL case (LABELMAP), which keeps the suite fast
PATCH_CASES = [(producer, organization, kind)
               for producer in ("ours", "highdicom") for organization in ("TILED_SPARSE", "TILED_FULL")
               for kind in ("BINARY", "FRACTIONAL", "LABELMAP")
               if not (producer == "highdicom" and organization == "TILED_FULL" and kind != "LABELMAP")]


@pytest.mark.parametrize("producer_name, organization, segmentation_type", PATCH_CASES,
                         ids=["-".join(case) for case in PATCH_CASES])
def test_label_patches_match_the_image(slide_dir, seg_factory, producer_name, organization, segmentation_type):
    producer = {"ours": ours, "highdicom": highdicom}[producer_name]
    paths = seg_factory(segmentation_type, organization, (0, 1), producer)
    labels = SlideLabels(SlideImage.from_path(slide_dir), paths)
    for location, size, level in PATCHES:
        expected = image_labels(slide_dir, location, size, level)
        got = labels.get_patch(location, size, level)
        np.testing.assert_array_equal(got, expected, err_msg=f"{location} {size} level {level}")
        stacked = labels.get_patch(location, size, level, mode="stacked")
        assert stacked.shape == (*size, 3)
        np.testing.assert_array_equal(stacked, expected[..., None] == np.arange(1, 4))


@pytest.mark.parametrize("segmentation_type", ["LABELMAP", "FRACTIONAL"])
def test_resampled_from_a_finer_level(slide_dir, seg_factory, segmentation_type):
    """Only a level-0 SEG: level 1 and 2 patches are resampled (nearest / linear) and still match."""
    labels = SlideLabels(SlideImage.from_path(slide_dir), seg_factory(segmentation_type, "TILED_SPARSE"))
    assert labels.source_level(1) == (0, (2.0, 2.0))
    for location, size, level in PATCHES[3:]:
        expected = image_labels(slide_dir, location, size, level)
        np.testing.assert_array_equal(labels.get_patch(location, size, level), expected)
        stacked = labels.get_patch(location, size, level, mode="stacked")
        np.testing.assert_allclose(stacked, expected[..., None] == np.arange(1, 4))


def test_linear_fractions_between_levels(tmp_path, slide_dir, slide_levels):
    """A FRACTIONAL ramp read one level coarser is the mean of the two SEG pixel centres it falls between."""
    ramp = np.tile(np.linspace(0, 1, 1024, dtype=np.float32), (768, 1))
    seg = ours.seg.Segmentation(
        **{**COMMON_SEG_ARGUMENTS, "source_images": [slide_levels[0]], "pixel_array": ramp,
           "segmentation_type": "FRACTIONAL", "segment_descriptions": segment_descriptions(ours, 1),
           "series_instance_uid": ours.UID(), "sop_instance_uid": ours.UID(), "tile_pixel_array": True})
    seg.save_as(tmp_path / "ramp.dcm")
    labels = SlideLabels(SlideImage.from_path(slide_dir), [tmp_path / "ramp.dcm"])
    stored = ours.seg.segread(tmp_path / "ramp.dcm").get_total_pixel_matrix(1, 2, 1, 1025)[0, :, 0]
    got = labels.get_patch((0, 0), (1, 512), level=1, mode="stacked")[0, :, 0]
    np.testing.assert_allclose(got, (stored[0::2] + stored[1::2]) / 2, atol=1e-6)
    assert len(np.unique(got)) > 200  # really interpolated, not a copy of every other pixel


def test_upsampling_warns(slide_dir, seg_factory, truth):
    labels = SlideLabels(SlideImage.from_path(slide_dir), seg_factory("LABELMAP", "TILED_SPARSE", (1,)))
    with pytest.warns(UserWarning, match="no SEG level is as fine as image level 0"):
        got = labels.get_patch((0, 0), (256, 256), 0)
    np.testing.assert_array_equal(got, truth[:256, :256])  # 8-pixel blocks: exact even upsampled


def test_level_region_rules():
    assert level_region((128, 256), (10, 20), (2.0, 2.0)) == (64, 128, 10, 20)
    with pytest.raises(InputError, match=r"location\[1\] = 257 is not on the level's pixel grid"):
        level_region((128, 257), (10, 20), (2.0, 2.0))
    with pytest.raises(InputError, match="size must be positive"):
        level_region((0, 0), (0, 20), (1.0, 1.0))


def test_bad_requests(slide_dir, seg_factory):
    labels = SlideLabels(SlideImage.from_path(slide_dir), seg_factory("LABELMAP", "TILED_SPARSE"))
    with pytest.raises(InputError, match="mode must be one of"):
        labels.get_patch((0, 0), (8, 8), mode="onehot")
    with pytest.raises(InputError, match=r"level must be an int in \[0, 2\]"):
        labels.get_patch((0, 0), (8, 8), level=3)
    with pytest.raises(InputTypeError, match="slide must be a SlideImage"):
        SlideLabels("slide", [])
    with pytest.raises(InputError, match="at least one tiled SEG"):
        SlideLabels(SlideImage.from_path(slide_dir), [])


def _other_slide(tmp_path, **kwargs):
    levels = wsi.make_slide_pyramid(levels=2, **kwargs)
    wsi.write_slide(levels, tmp_path)
    return SlideImage.from_path(tmp_path)


@pytest.mark.parametrize("kwargs, attribute", [
    ({}, "FrameOfReferenceUID"),
    ({"container_identifier": "OTHER"}, "ContainerIdentifier"),
    ({"origin": (20.0, 26.0)}, "TotalPixelMatrixOriginSequence"),
    ({"pixel_spacing": 0.0005}, "TotalPixelMatrixRows x PixelSpacing"),
])
def test_a_seg_of_another_slide_is_refused(tmp_path, slide_levels, seg_factory, kwargs, attribute):
    if kwargs:  # same Frame of Reference, one other attribute differs
        kwargs["frame_of_reference_uid"] = slide_levels[0].FrameOfReferenceUID
    other = _other_slide(tmp_path, **kwargs)
    with pytest.raises(GeometryError, match=f"is not on this slide: {attribute}"):
        SlideLabels(other, seg_factory("LABELMAP", "TILED_SPARSE"))


def test_origin_within_half_a_pixel_is_the_same_slide(tmp_path, slide_levels, seg_factory):
    other = _other_slide(tmp_path, frame_of_reference_uid=slide_levels[0].FrameOfReferenceUID,
                         origin=(20.0, 25.0 + 0.4 * 0.00025))
    SlideLabels(other, seg_factory("LABELMAP", "TILED_SPARSE"))  # 0.4 pixel: accepted


def test_slide_image_refuses_non_wsi(slide_levels):
    ct = ours.synthetic.make_ct_series(shape=(1, 8, 8))
    with pytest.raises(InputError, match="no VL Whole Slide Microscopy VOLUME instance"):
        SlideImage(ct)
    mixed = [slide_levels[0], copy.deepcopy(slide_levels[1])]  # Dataset(ds) shares the elements: no mutation
    mixed[1].SeriesInstanceUID = ours.UID()
    with pytest.raises(InputError, match="must be one series; got 2"):
        SlideImage(mixed)
