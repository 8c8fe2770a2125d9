"""``Segmentation.get_total_pixel_matrix``: our regions equal highdicom's.

Files: highdicom's tiled test files (``seg_image_sm_*.dcm`` in
``../shared/data/highdicom``) and SEGs written here by highdicom from
``sm_image.dcm`` with ``tile_pixel_array=True`` (BINARY / LABELMAP /
FRACTIONAL, TILED_SPARSE / TILED_FULL, default and odd tile sizes).
"""
from __future__ import annotations

import io
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import highdicom
from monai_dicomseg.errors import DicomSegError, FrameMismatchError, InputError, OverlapError, UnsupportedError
from monai_dicomseg.seg.reader import segread

pytestmark = pytest.mark.highdicom
warnings.filterwarnings("ignore", module="highdicom")

DATA = Path(__file__).resolve().parents[2].parent / "shared/data/highdicom"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="highdicom test files not available")
TILED_FILES = sorted(p.name for p in DATA.glob("seg_image_sm_*.dcm")) if DATA.is_dir() else []

# --------------------------------------------------------------------------- helpers


def _call(reader: Any, kwargs: dict[str, Any]) -> np.ndarray | Exception:
    try:
        return reader.get_total_pixel_matrix(**kwargs)
    except (ValueError, RuntimeError, NotImplementedError) as exc:
        return exc


def _assert_same(ours: Any, theirs: Any, kwargs: dict[str, Any]) -> None:
    a, b = _call(ours, kwargs), _call(theirs, kwargs)
    if isinstance(b, Exception):
        assert isinstance(a, DicomSegError), f"highdicom raised {b!r}; we returned {type(a).__name__}"
        family = ValueError if isinstance(b, ValueError) else RuntimeError
        assert isinstance(a, family), f"highdicom raised {b!r}; we raised {a!r}"
        return
    assert not isinstance(a, Exception), f"we raised {a!r}; highdicom returned {b.shape}"
    assert a.shape == b.shape, kwargs
    assert a.dtype == b.dtype, kwargs
    np.testing.assert_array_equal(a, b, err_msg=str(kwargs))


@lru_cache(maxsize=None)
def _ours(name: str) -> Any:
    return segread(DATA / name)


def _shared_file(name: str) -> tuple[Any, Any]:
    """Our reader (cached) and a fresh highdicom reader (its SQLite state breaks after an error)."""
    return _ours(name), highdicom.seg.segread(DATA / name)


def _descriptions(n: int) -> list[Any]:
    category = highdicom.sr.CodedConcept("91723000", "SCT", "Anatomical Structure")
    kind = highdicom.sr.CodedConcept("84640000", "SCT", "Nucleus")
    return [
        highdicom.seg.SegmentDescription(
            segment_number=i, segment_label=f"Segment #{i}", segmented_property_category=category,
            segmented_property_type=kind, algorithm_type=highdicom.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for i in range(1, n + 1)
    ]


def _label_mask(rows: int, columns: int) -> np.ndarray:
    """Three non-overlapping segments, touching the right/bottom edges, some tiles empty."""
    mask = np.zeros((rows, columns), np.uint8)
    mask[3:17, 4:23] = 1
    mask[30:rows, 38:columns] = 2  # bottom-right corner: edge tiles
    mask[20:26, 0:9] = 3
    mask[44:rows, 2:5] = 3
    return mask


@lru_cache(maxsize=None)
def _highdicom_file(seg_type: str, organization: str, tile_size: tuple[int, int] | None) -> bytes:
    source = highdicom.imread(DATA / "sm_image.dcm")
    labels = _label_mask(int(source.TotalPixelMatrixRows), int(source.TotalPixelMatrixColumns))
    kwargs: dict[str, Any] = {}
    if seg_type == "FRACTIONAL":
        stacked = np.stack([(labels == s) for s in (1, 2, 3)], axis=-1).astype(np.float32)
        stacked[..., 0] *= 0.5  # not combinable
        pixel_array: np.ndarray = stacked[None]
        kwargs["max_fractional_value"] = 200
    else:
        pixel_array = labels
    seg = highdicom.seg.Segmentation(
        source_images=[source], pixel_array=pixel_array, segmentation_type=seg_type,
        segment_descriptions=_descriptions(3), series_instance_uid=highdicom.UID(), series_number=1,
        sop_instance_uid=highdicom.UID(), instance_number=1, manufacturer="Foo Corp.",
        manufacturer_model_name="Slide Segmentation Algorithm", software_versions="0.0.1",
        device_serial_number="1234567890", tile_pixel_array=True, tile_size=tile_size,
        omit_empty_frames=organization == "TILED_SPARSE",
        dimension_organization_type=organization, **kwargs,
    )
    buffer = io.BytesIO()
    seg.save_as(buffer)
    return buffer.getvalue()


@lru_cache(maxsize=None)
def _ours_written(seg_type: str, organization: str, tile_size: tuple[int, int] | None) -> Any:
    return segread(io.BytesIO(_highdicom_file(seg_type, organization, tile_size)))


def _written(seg_type: str, organization: str, tile_size: tuple[int, int] | None) -> tuple[Any, Any]:
    data = _highdicom_file(seg_type, organization, tile_size)
    return _ours_written(seg_type, organization, tile_size), highdicom.seg.segread(io.BytesIO(data))


WRITTEN_CASES = [
    (t, o, s)
    for t in ("BINARY", "LABELMAP")
    for o in ("TILED_SPARSE", "TILED_FULL")
    for s in (None, (7, 9))
] + [("FRACTIONAL", "TILED_SPARSE", (7, 9)), ("FRACTIONAL", "TILED_FULL", None)]
WRITTEN_IDS = [f"{t}-{o}-{'default' if s is None else 'x'.join(map(str, s))}" for t, o, s in WRITTEN_CASES]

OPTIONS = [
    {},
    {"combine_segments": True, "skip_overlap_checks": True},
    {"segment_numbers": [3, 1]},
    {"segment_numbers": [3, 1], "combine_segments": True, "relabel": True, "skip_overlap_checks": True},
    {"segment_numbers": [2], "combine_segments": True},
    {"row_start": 3, "row_end": 17, "column_start": 5, "column_end": -4},
    {"row_start": -7, "combine_segments": True, "skip_overlap_checks": True},
    {"column_end": -1, "row_end": 2},
    {"row_start": 45, "column_start": 42, "segment_numbers": [2, 3]},  # bottom-right edge tiles
    {"row_start": 12, "row_end": 13, "column_start": 18, "column_end": 19},  # one pixel
    {"row_start": 0, "row_end": 11, "column_start": 9, "as_indices": True},
    {"dtype": np.int32, "combine_segments": True, "skip_overlap_checks": True},
    {"rescale_fractional": False},
]
OPTION_IDS = [
    "all", "combined", "subset", "subset-relabel", "one-combined", "region", "neg-rows", "neg-cols",
    "edge", "pixel", "as-indices", "dtype", "raw",
]

# --------------------------------------------------------------------------- highdicom's files


@needs_data
@pytest.mark.parametrize("name", TILED_FILES)
@pytest.mark.parametrize("kwargs", OPTIONS, ids=OPTION_IDS)
def test_shared_files_match_highdicom(name: str, kwargs: dict[str, Any]) -> None:
    ours, theirs = _shared_file(name)
    _assert_same(ours, theirs, kwargs)


@needs_data
@pytest.mark.parametrize("name", TILED_FILES)
def test_shared_files_overlap_check_matches(name: str) -> None:
    ours, theirs = _shared_file(name)
    _assert_same(ours, theirs, {"combine_segments": True})
    _assert_same(ours, theirs, {"segment_numbers": [5, 2, 7], "combine_segments": True, "relabel": True})


# --------------------------------------------------------------------------- files written by highdicom


@needs_data
@pytest.mark.parametrize("case", WRITTEN_CASES, ids=WRITTEN_IDS)
@pytest.mark.parametrize("kwargs", OPTIONS, ids=OPTION_IDS)
def test_highdicom_written_files_match(case: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    ours, theirs = _written(*case)
    _assert_same(ours, theirs, kwargs)


@needs_data
@pytest.mark.parametrize("case", WRITTEN_CASES, ids=WRITTEN_IDS)
def test_written_frame_counts_and_content(case: tuple[Any, ...]) -> None:
    seg_type, organization, tile_size = case
    ours, theirs = _written(*case)
    assert int(ours.NumberOfFrames) == int(theirs.NumberOfFrames)
    assert ("PerFrameFunctionalGroupsSequence" in ours) == (organization == "TILED_SPARSE")
    if seg_type != "FRACTIONAL":
        labels = _label_mask(int(ours.TotalPixelMatrixRows), int(ours.TotalPixelMatrixColumns))
        np.testing.assert_array_equal(ours.get_total_pixel_matrix(combine_segments=True), labels)


@needs_data
def test_overlapping_segments_raise_like_highdicom() -> None:
    source = highdicom.imread(DATA / "sm_image.dcm")
    mask = np.zeros((1, 50, 50, 2), bool)
    mask[0, 5:15, 5:15, 0] = True
    mask[0, 12:20, 12:20, 1] = True  # overlaps segment 1 in rows/columns 13..15
    seg = highdicom.seg.Segmentation(
        source_images=[source], pixel_array=mask, segmentation_type="BINARY",
        segment_descriptions=_descriptions(2), series_instance_uid=highdicom.UID(), series_number=1,
        sop_instance_uid=highdicom.UID(), instance_number=1, manufacturer="Foo Corp.",
        manufacturer_model_name="m", software_versions="0", device_serial_number="1", tile_pixel_array=True,
    )
    buffer = io.BytesIO()
    seg.save_as(buffer)
    ours = segread(io.BytesIO(buffer.getvalue()))
    theirs = highdicom.seg.segread(io.BytesIO(buffer.getvalue()))
    with pytest.raises(OverlapError, match="overlap"):
        ours.get_total_pixel_matrix(combine_segments=True)
    with pytest.raises(RuntimeError):
        theirs.get_total_pixel_matrix(combine_segments=True)
    theirs = highdicom.seg.segread(io.BytesIO(buffer.getvalue()))
    # the overlap lies outside this region: no error from either library
    _assert_same(ours, theirs, {"row_start": 1, "row_end": 12, "combine_segments": True})
    _assert_same(ours, theirs, {"combine_segments": True, "skip_overlap_checks": True})
    _assert_same(ours, theirs, {"combine_segments": True, "skip_overlap_checks": True, "relabel": True,
                                "segment_numbers": [2, 1]})


@needs_data
@given(data=st.data())
def test_random_regions_match_highdicom(data: st.DataObject) -> None:
    case = data.draw(st.sampled_from(WRITTEN_CASES[:8]), label="case")
    ours, theirs = _written(*case)
    rows, columns = int(ours.TotalPixelMatrixRows), int(ours.TotalPixelMatrixColumns)

    def bounds(size: int) -> tuple[int | None, int | None]:
        start = data.draw(st.integers(1, size))
        end = data.draw(st.integers(start + 1, size + 1))
        if data.draw(st.booleans()):
            start = start - size - 1  # same position, counted from the end
        if end <= size and data.draw(st.booleans()):
            end = end - size - 1
        return (None if start == 1 and data.draw(st.booleans()) else start,
                None if end == size + 1 and data.draw(st.booleans()) else end)

    row_start, row_end = bounds(rows)
    column_start, column_end = bounds(columns)
    segments = data.draw(st.permutations([1, 2, 3]).flatmap(
        lambda p: st.integers(1, 3).map(lambda n: list(p[:n]))))
    combine = data.draw(st.booleans())
    kwargs = dict(row_start=row_start, row_end=row_end, column_start=column_start, column_end=column_end,
                  segment_numbers=segments, combine_segments=combine,
                  relabel=combine and data.draw(st.booleans()))
    if case[0] == "LABELMAP" and combine and len(segments) == 2 and not kwargs["relabel"]:
        kwargs["relabel"] = True  # highdicom keeps an unrequested label when exactly one is left out
    _assert_same(ours, theirs, kwargs)


# --------------------------------------------------------------------------- other accessors on tiled SEGs


@needs_data
@pytest.mark.parametrize("case", [c for c in WRITTEN_CASES if c[1] == "TILED_SPARSE"],
                         ids=[i for c, i in zip(WRITTEN_CASES, WRITTEN_IDS) if c[1] == "TILED_SPARSE"])
def test_get_pixels_by_source_frame_on_tiled_from_total_pixel_matrix(case: tuple[Any, ...]) -> None:
    """Tiles cut from a total pixel matrix carry no per-frame source references (highdicom writes
    none): both libraries refuse, ours with a :class:`FrameMismatchError` (``RuntimeError``)."""
    ours, theirs = _written(*case)
    uid = ours.get_source_image_uids()[0][2]
    kwargs = dict(source_sop_instance_uid=uid, source_frame_numbers=range(1, 26),
                  assert_missing_frames_are_empty=True)
    with pytest.raises(FrameMismatchError, match="DerivationImageSequence"):
        ours.get_pixels_by_source_frame(**kwargs)
    with pytest.raises(RuntimeError):
        theirs.get_pixels_by_source_frame(**kwargs)


@needs_data
@pytest.mark.parametrize("name", [n for n in TILED_FILES if "tiled_full" not in n])
def test_get_pixels_by_source_frame_on_shared_tiled_files(name: str) -> None:
    ours, theirs = _shared_file(name)
    uid = ours.get_source_image_uids()[0][2]
    kwargs = dict(source_sop_instance_uid=uid, source_frame_numbers=range(1, 26),
                  assert_missing_frames_are_empty=True, segment_numbers=[10, 9, 8])
    a, b = ours.get_pixels_by_source_frame(**kwargs), theirs.get_pixels_by_source_frame(**kwargs)
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)


@needs_data
@pytest.mark.parametrize("case", WRITTEN_CASES[:4], ids=WRITTEN_IDS[:4])
@pytest.mark.parametrize("kwargs", [{}, {"combine_segments": True},
                                    {"row_start": 5, "row_end": -2, "column_start": -20}],
                         ids=["all", "combined", "region"])
def test_get_volume_on_tiled_matches(case: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    ours, theirs = _written(*case)
    a, b = ours.get_volume(**kwargs), theirs.get_volume(**kwargs)
    assert a.spatial_shape == b.spatial_shape
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_allclose(a.affine, b.affine)
    assert a.coordinate_system.value == b.coordinate_system.value


# --------------------------------------------------------------------------- bad input


@needs_data
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"row_start": 0}, "row_start may not be 0"),
        ({"column_start": 0}, "column_start may not be 0"),
        ({"row_start": 51}, "row_start = 51 is out of range"),
        ({"row_end": 52}, "row_end = 52 is out of range"),
        ({"column_end": 60}, "column_end = 60 is out of range"),
        ({"column_start": -51}, "column_start = -51 is out of range"),
        ({"row_start": 10, "row_end": 10}, "empty region"),
        ({"row_start": 20, "row_end": 10}, "empty region"),
        ({"column_start": -5, "column_end": -5}, "empty region"),
        ({"row_start": -1, "row_end": 50}, "empty region"),
        ({"segment_numbers": []}, "may not be empty"),
        ({"segment_numbers": [99]}, "not defined in SegmentSequence"),
    ],
    ids=["row0", "col0", "row-past", "row-end-past", "col-end-past", "col-neg-past", "equal", "reversed",
         "neg-equal", "neg-reversed", "no-segments", "bad-segment"],
)
def test_bad_region_raises(kwargs: dict[str, Any], message: str) -> None:
    ours, _ = _shared_file("seg_image_sm_numbers.dcm")
    with pytest.raises(InputError, match=message):
        ours.get_total_pixel_matrix(**kwargs)


@needs_data
def test_bad_index_type_raises() -> None:
    ours, _ = _shared_file("seg_image_sm_numbers.dcm")
    with pytest.raises(TypeError, match="row_start must be an int"):
        ours.get_total_pixel_matrix(row_start=1.5)


@needs_data
def test_non_tiled_segmentation_raises() -> None:
    seg = segread(DATA / "seg_image_ct_binary.dcm")
    assert not seg.is_tiled
    with pytest.raises(UnsupportedError, match="not a tiled image.*TotalPixelMatrixRows"):
        seg.get_total_pixel_matrix()


@needs_data
def test_palette_lut_is_unsupported() -> None:
    ours, _ = _shared_file("seg_image_sm_control_labelmap_palette_color.dcm")
    with pytest.raises(UnsupportedError, match="apply_palette_color_lut"):
        ours.get_total_pixel_matrix(combine_segments=True, apply_palette_color_lut=True)


@needs_data
def test_only_overlapping_tiles_are_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    from monai_dicomseg.codec import tiled_region

    ours, theirs = _written("BINARY", "TILED_FULL", (7, 9))
    seen: list[int] = []
    original = tiled_region.decode_frames

    def spy(dataset: Any, frames: Any, layout: Any = None) -> np.ndarray:
        seen.extend(int(f) for f in frames)
        return original(dataset, frames, layout)

    monkeypatch.setattr(tiled_region, "decode_frames", spy)
    # rows 8..14 lie in tile row 2 (rows 8-14); columns 10..18 in tile column 2 (10-18)
    out = ours.get_total_pixel_matrix(row_start=8, row_end=15, column_start=10, column_end=19,
                                      segment_numbers=[1])
    np.testing.assert_array_equal(
        out, theirs.get_total_pixel_matrix(row_start=8, row_end=15, column_start=10, column_end=19,
                                           segment_numbers=[1]))
    assert len(seen) == 1


@needs_data
@pytest.mark.parametrize("kwargs", [{"row_start": 3, "column_end": -2}, {"row_start": -5, "row_end": -1,
                                    "column_start": 0, "column_end": 4, "as_indices": True}],
                         ids=["1-based", "indices"])
def test_get_volume_region_on_patient_seg_matches(kwargs: dict[str, Any]) -> None:
    ours = segread(DATA / "seg_image_ct_binary.dcm")
    theirs = highdicom.seg.segread(DATA / "seg_image_ct_binary.dcm")
    a, b = ours.get_volume(**kwargs), theirs.get_volume(**kwargs)
    assert a.spatial_shape == b.spatial_shape
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_allclose(a.affine, b.affine)
