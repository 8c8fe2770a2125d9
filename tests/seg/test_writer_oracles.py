"""SEG writer checked by independent oracles (issue 2).

The matrix {BINARY, FRACTIONAL, LABELMAP} x {single-frame series, multi-frame
source} x {1, 12 segments} x {dense, with empty frames} is written with the
implementation under test and then

* validated by ``dciodvfy -allpffgitems`` (no ``Error - `` line),
* read back by highdicom (``get_pixels_by_source_instance`` /
  ``get_pixels_by_source_frame``), which must return exactly the input
  (FRACTIONAL: within ``1 / max_fractional_value``),
* for BINARY and LABELMAP, converted by dcmqi's ``segimage2itkimage`` whose
  voxels, mapped through world coordinates onto the source grid, must equal
  the input.

Hypothesis properties then round-trip random small inputs through ``BytesIO``.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from monai_dicomseg import synthetic
from oracles import (
    BACKEND_NAME,
    build_segmentation,
    dciodvfy_errors,
    dcmqi_labels_on_source_grid,
    dcmqi_segimage2itkimage,
    highdicom_pixels,
    one_hot,
    source_grid,
)

SEGMENTATION_TYPES = ["BINARY", "FRACTIONAL", "LABELMAP"]
SOURCE_KINDS = ["series", "multiframe"]
SEGMENT_COUNTS = [1, 12]
EMPTY_FRAMES = [False, True]
MAX_FRACTIONAL_VALUE = 255


# --------------------------------------------------------------------------- inputs


def dense_labels(shape: tuple[int, int, int], n_segments: int, seed: int) -> np.ndarray:
    """``(F, R, C)`` label map in which every segment is present on every frame.

    Each segment owns a band of columns (shifted per frame) with random holes,
    so frames differ and no frame of any segment is empty.
    """
    frames, rows, columns = shape
    rng = np.random.default_rng(seed)
    band = np.arange(columns) * n_segments // columns  # 0..S-1 per column
    labels = np.empty(shape, dtype=np.uint8)
    for frame in range(frames):
        row_band = np.roll(band, frame * max(1, columns // (4 * n_segments)))
        labels[frame] = (row_band + 1)[None, :]
    holes = rng.random(shape) < 0.3
    keep = np.zeros(shape, dtype=bool)
    # keep one pixel per (frame, segment) so none of them becomes empty
    for frame in range(frames):
        for segment in range(1, n_segments + 1):
            where = np.argwhere(labels[frame] == segment)
            keep[frame, where[0][0], where[0][1]] = True
    labels[holes & ~keep] = 0
    return labels


def with_empty_frames(labels: np.ndarray, n_segments: int) -> np.ndarray:
    """Empty the first frame entirely and, with several segments, one segment on the last."""
    labels = labels.copy()
    labels[0] = 0
    if n_segments > 1 and labels.shape[0] > 1:
        labels[-1][labels[-1] == 2] = 0
    return labels


def fractional_from_labels(labels: np.ndarray, n_segments: int, seed: int) -> np.ndarray:
    """``(F, R, C, S) float32`` probabilities on the labelled pixels, 0 elsewhere."""
    rng = np.random.default_rng(seed)
    stacked = one_hot(labels, n_segments)
    levels = rng.integers(1, MAX_FRACTIONAL_VALUE + 1, size=stacked.shape)
    return np.where(stacked, levels / MAX_FRACTIONAL_VALUE, 0.0).astype(np.float32)


def pixel_array_for(segmentation_type: str, labels: np.ndarray, n_segments: int) -> np.ndarray:
    """The input form used for each type: stacked bool, float, or label map."""
    if segmentation_type == "BINARY":
        return one_hot(labels, n_segments)
    if segmentation_type == "FRACTIONAL":
        return fractional_from_labels(labels, n_segments, seed=n_segments)
    return labels


def expected_stacked(segmentation_type: str, pixel_array: np.ndarray,
                     n_segments: int) -> np.ndarray:
    if pixel_array.ndim == 4:
        return pixel_array
    return one_hot(pixel_array, n_segments)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", params=SOURCE_KINDS)
def sources(request: pytest.FixtureRequest, synthetic_ct, ect_supplemental) -> list[pydicom.Dataset]:
    if request.param == "series":
        return synthetic_ct
    return [ect_supplemental]


def source_shape(sources: list[pydicom.Dataset]) -> tuple[int, int, int]:
    first = sources[0]
    n_frames = int(getattr(first, "NumberOfFrames", 1)) if len(sources) == 1 else len(sources)
    return n_frames, int(first.Rows), int(first.Columns)


# --------------------------------------------------------------------------- matrix


@pytest.mark.dciodvfy
@pytest.mark.highdicom
@pytest.mark.dcmqi
@pytest.mark.parametrize("has_empty_frames", EMPTY_FRAMES, ids=["dense", "empty-frames"])
@pytest.mark.parametrize("n_segments", SEGMENT_COUNTS, ids=lambda n: f"{n}seg")
@pytest.mark.parametrize("segmentation_type", SEGMENTATION_TYPES, ids=str.lower)
def test_writer_matrix(
    hd: Any,
    sources: list[pydicom.Dataset],
    segmentation_type: str,
    n_segments: int,
    has_empty_frames: bool,
    tmp_path: Path,
) -> None:
    labels = dense_labels(source_shape(sources), n_segments, seed=n_segments)
    if has_empty_frames:
        labels = with_empty_frames(labels, n_segments)
    pixel_array = pixel_array_for(segmentation_type, labels, n_segments)
    seg = build_segmentation(hd, sources, pixel_array, segmentation_type, n_segments,
                             max_fractional_value=MAX_FRACTIONAL_VALUE)
    assert isinstance(seg, pydicom.Dataset)
    path = tmp_path / "seg.dcm"
    seg.save_as(path)

    assert dciodvfy_errors(path) == []

    expected = expected_stacked(segmentation_type, pixel_array, n_segments)
    read_back = highdicom_pixels(path, sources)
    assert read_back.shape == expected.shape
    if segmentation_type == "FRACTIONAL":
        np.testing.assert_allclose(read_back, expected, atol=1 / MAX_FRACTIONAL_VALUE)
    else:
        np.testing.assert_array_equal(read_back.astype(bool), expected)

    if segmentation_type != "FRACTIONAL":
        images = dcmqi_segimage2itkimage(path, tmp_path / "dcmqi")
        converted = dcmqi_labels_on_source_grid(images, source_grid(sources))
        np.testing.assert_array_equal(converted[..., :n_segments], expected)
        labels_seen = {a["labelID"]: a["SegmentLabel"] for _, attrs in images for a in attrs}
        assert labels_seen == {n: f"organ {n}" for n in range(1, n_segments + 1)}


@pytest.mark.highdicom
@pytest.mark.parametrize("segmentation_type", SEGMENTATION_TYPES, ids=str.lower)
def test_omitted_frames_are_counted(hd: Any, synthetic_ct, segmentation_type: str) -> None:
    """Empty frames are omitted by default and kept with ``omit_empty_frames=False``."""
    n_segments = 3
    labels = with_empty_frames(dense_labels(source_shape(synthetic_ct), n_segments, 0), 3)
    pixel_array = pixel_array_for(segmentation_type, labels, n_segments)
    stacked = expected_stacked(segmentation_type, pixel_array, n_segments)
    per_segment_frames = int(np.any(stacked, axis=(1, 2)).sum())
    per_plane_frames = int(np.any(stacked, axis=(1, 2, 3)).sum())
    omitted = build_segmentation(hd, synthetic_ct, pixel_array, segmentation_type, n_segments)
    kept = build_segmentation(hd, synthetic_ct, pixel_array, segmentation_type, n_segments,
                              omit_empty_frames=False)
    if segmentation_type == "LABELMAP":
        assert int(omitted.NumberOfFrames) == per_plane_frames
        assert int(kept.NumberOfFrames) == len(synthetic_ct)
    else:
        assert int(omitted.NumberOfFrames) == per_segment_frames
        assert int(kept.NumberOfFrames) == len(synthetic_ct) * n_segments
    for seg in (omitted, kept):
        np.testing.assert_allclose(highdicom_pixels(seg, synthetic_ct), stacked, atol=1 / 255)


# --------------------------------------------------------------------------- properties


@st.composite
def seg_cases(draw: st.DrawFn) -> dict[str, Any]:
    """Random small sources/masks: shapes (rows*cols often not a multiple of 8),
    segment counts, omitted frames, orientation and slice order."""
    frames = draw(st.integers(1, 4))
    rows = draw(st.integers(1, 11))
    columns = draw(st.integers(1, 11))
    n_segments = draw(st.integers(1, 5))
    segmentation_type = draw(st.sampled_from(SEGMENTATION_TYPES))
    orientation = draw(st.sampled_from(["axial", "coronal", "sagittal", "oblique"]))
    reverse_order = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_segments + 1, size=(frames, rows, columns)).astype(np.uint8)
    empty = draw(st.lists(st.booleans(), min_size=frames, max_size=frames))
    labels[np.asarray(empty)] = 0
    return {
        "shape": (frames, rows, columns), "labels": labels, "n_segments": n_segments,
        "segmentation_type": segmentation_type, "orientation": orientation,
        "reverse_order": reverse_order, "seed": seed,
        "stacked_input": draw(st.booleans()),
    }


@pytest.mark.highdicom
@given(case=seg_cases())
def test_round_trip_through_bytes(hd: Any, case: dict[str, Any]) -> None:
    if BACKEND_NAME == "highdicom":
        # highdicom 0.28.2's writer pads each BINARY frame of fewer than 8
        # pixels to a whole byte, against PS3.5 8.1.1 (its reader is right).
        assume(case["shape"][1] * case["shape"][2] >= 8)
    sources = synthetic.make_ct_series(
        case["shape"], orientation=case["orientation"], reverse_order=case["reverse_order"],
        labels=np.zeros(case["shape"], np.uint8), seed=case["seed"])
    n_segments = case["n_segments"]
    segmentation_type = case["segmentation_type"]
    stacked = one_hot(case["labels"], n_segments)
    if segmentation_type == "FRACTIONAL":
        pixel_array = fractional_from_labels(case["labels"], n_segments, case["seed"])
        expected = pixel_array
    else:
        pixel_array = stacked if case["stacked_input"] else case["labels"]
        expected = stacked
    seg = build_segmentation(hd, sources, pixel_array, segmentation_type, n_segments)
    buffer = io.BytesIO()
    seg.save_as(buffer)
    read_back = highdicom_pixels(buffer, sources)
    assert read_back.shape == expected.shape
    np.testing.assert_allclose(read_back, expected, atol=1 / MAX_FRACTIONAL_VALUE)
