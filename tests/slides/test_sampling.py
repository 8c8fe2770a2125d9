"""Foreground sampling from a SEG's stored tiles / low-resolution level, with decoded tiles counted."""
from __future__ import annotations

import pytest

from monai_dicomseg.codec import tiled_region
from monai_dicomseg.errors import InputError
from monai_dicomseg.slides import SlideImage, SlideLabels, foreground_locations


@pytest.fixture
def decoded(monkeypatch):
    """Counts the SEG frames decoded by region reads (codec.tiled_region.decode_frames)."""
    count = {"frames": 0}
    original = tiled_region.decode_frames

    def counting(dataset, frames, layout):
        count["frames"] += len(frames)
        return original(dataset, frames, layout)

    monkeypatch.setattr(tiled_region, "decode_frames", counting)
    return count


def _has_label(truth, location, size, factor=1):
    r, c = location
    return bool(truth[r:r + size[0] * factor:factor, c:c + size[1] * factor:factor].any())


def test_tiles_of_a_sparse_seg_decode_nothing(slide_dir, seg_factory, truth, decoded):
    labels = SlideLabels(SlideImage.from_path(slide_dir), seg_factory("LABELMAP", "TILED_SPARSE"))
    locations = foreground_locations(labels, 256)
    assert decoded["frames"] == 0
    expected = [(r, c) for r in range(0, 768, 256) for c in range(0, 1024, 256) if _has_label(truth, (r, c), (256, 256))]
    assert [tuple(x) for x in locations] == expected
    assert len(expected) == 9  # 3 of the 12 level-0 tiles are empty


def test_verify_decodes_only_the_candidates_tiles(slide_dir, seg_factory, truth, decoded):
    labels = SlideLabels(SlideImage.from_path(slide_dir), seg_factory("BINARY", "TILED_SPARSE"))
    candidates = foreground_locations(labels, 128)
    assert decoded["frames"] == 0
    locations = foreground_locations(labels, 128, verify=True)
    assert all(_has_label(truth, loc, (128, 128)) for loc in locations)
    every = [(r, c) for r in range(0, 768, 128) for c in range(0, 1024, 128) if _has_label(truth, (r, c), (128, 128))]
    assert sorted(map(tuple, locations)) == every  # no labelled patch is lost
    assert len(every) < len(candidates)  # candidates touching a stored tile but holding no label were dropped
    stored_frames = len(labels.segmentations[0].get_frame_index().tile_positions)
    # one decode per (candidate patch, segment frame under it): never the empty tiles, each candidate once
    assert 0 < decoded["frames"] <= len(candidates) * 3 and stored_frames < 3 * 12


def test_level_method_decodes_the_coarse_level_only(slide_dir, seg_factory, truth, decoded):
    paths = seg_factory("LABELMAP", "TILED_FULL", (0, 1, 2))
    labels = SlideLabels(SlideImage.from_path(slide_dir), paths)
    locations = foreground_locations(labels, (64, 64), level=1)
    assert decoded["frames"] == 1  # the level-2 SEG is one 256 x 256 tile
    assert all(_has_label(truth, loc, (64, 64), factor=2) for loc in locations)
    expected = [(r * 2, c * 2) for r in range(0, 384, 64) for c in range(0, 512, 64)
                if _has_label(truth, (r * 2, c * 2), (64, 64), factor=2)]
    assert [tuple(x) for x in locations] == expected


def test_auto_chooses_by_organization(slide_dir, seg_factory, decoded):
    sparse = SlideLabels(SlideImage.from_path(slide_dir), seg_factory("LABELMAP", "TILED_SPARSE"))
    full = SlideLabels(SlideImage.from_path(slide_dir), seg_factory("LABELMAP", "TILED_FULL"))
    foreground_locations(sparse, 256)
    assert decoded["frames"] == 0
    foreground_locations(full, 256)
    assert decoded["frames"] == 12  # TILED_FULL, one level: the whole level is read
    with pytest.raises(InputError, match="method='tiles' needs a TILED_SPARSE SEG level"):
        foreground_locations(full, 256, method="tiles")


def test_segment_filter_and_bad_arguments(slide_dir, seg_factory, truth):
    labels = SlideLabels(SlideImage.from_path(slide_dir), seg_factory("BINARY", "TILED_SPARSE"))
    only3 = foreground_locations(labels, 256, segment_numbers=[3])
    assert [tuple(x) for x in only3] == [(512, 0)]
    with pytest.raises(InputError, match="method must be one of"):
        foreground_locations(labels, 256, method="otsu")
    with pytest.raises(InputError, match="patch_size and stride must be positive"):
        foreground_locations(labels, 0)
    with pytest.raises(InputError, match=r"seg_level must be in \[0, 0\]"):
        foreground_locations(labels, 256, seg_level=1)
