"""Fixtures of the slide tests: a synthetic 3-level DICOM WSI (768 x 1024 at level 0, 256-pixel tiles,
labels encoded in its red channel) and tiled SEGs of it written by highdicom and by monai_dicomseg."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

import monai_dicomseg as ours
from corpus_sources import srgb_icc_profile
from monai_dicomseg.slides import synthetic as wsi
from oracles import COMMON_SEG_ARGUMENTS, one_hot, segment_descriptions

N_SEGMENTS = 3


@pytest.fixture(scope="session")
def slide_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder holding the slide's three levels (``level-0.dcm`` ...)."""
    folder = tmp_path_factory.mktemp("wsi")
    wsi.write_slide(wsi.make_slide_pyramid(icc_profile=srgb_icc_profile()), folder)
    return folder


@pytest.fixture(scope="session")
def slide_levels(slide_dir: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(slide_dir / f"level-{k}.dcm") for k in range(3)]


@pytest.fixture(scope="session")
def truth() -> np.ndarray:
    """The level-0 label map the slide encodes."""
    return wsi.slide_label_map()


def seg_pixels(labels: np.ndarray, segmentation_type: str) -> np.ndarray:
    """The writer's pixel array for ``labels`` (label map for LABELMAP, stacked otherwise; FRACTIONAL 1.0)."""
    if segmentation_type == "LABELMAP":
        return labels
    stacked = one_hot(labels, N_SEGMENTS)[None]  # (1, R, C, S): one total pixel matrix
    return stacked.astype(np.float32) if segmentation_type == "FRACTIONAL" else stacked.astype(np.uint8)


def write_seg(source: pydicom.Dataset, labels: np.ndarray, segmentation_type: str, organization: str,
              folder: Path, name: str, producer: Any = ours, **kwargs: Any) -> Path:
    """One tiled SEG level of ``source`` from ``labels`` (its total pixel matrix), saved as ``folder/name``."""
    seg = producer.seg.Segmentation(
        **{**COMMON_SEG_ARGUMENTS, "source_images": [source], "pixel_array": seg_pixels(labels, segmentation_type),
           "segmentation_type": segmentation_type,
           "segment_descriptions": segment_descriptions(producer, N_SEGMENTS),
           "series_instance_uid": producer.UID(), "sop_instance_uid": producer.UID(),
           "tile_pixel_array": True, "dimension_organization_type": organization,
           "omit_empty_frames": organization == "TILED_SPARSE", **kwargs})
    path = folder / name
    seg.save_as(path)
    return path


@pytest.fixture(scope="session")
def seg_factory(tmp_path_factory: pytest.TempPathFactory, slide_levels, truth):
    """``make(type, organization, levels=(0,), producer=ours)`` -> paths of SEG levels (cached)."""
    folder = tmp_path_factory.mktemp("slide_segs")
    cache: dict[tuple, list[Path]] = {}

    def make(segmentation_type: str, organization: str, levels: tuple[int, ...] = (0,),
             producer: Any = ours) -> list[Path]:
        key = (segmentation_type, organization, levels, producer.__name__)
        if key not in cache:
            cache[key] = [
                write_seg(slide_levels[level], wsi.downsample_labels(truth, 2 ** level), segmentation_type,
                          organization, folder, f"{'-'.join(map(str, key))}-{level}.dcm".replace("/", "_"),
                          producer)
                for level in levels]
        return cache[key]

    return make
