"""Bulk per-frame header parser (issue 25): the same FrameIndex as the general scanner on every input.

:mod:`monai_dicomseg.codec.bulk_frame_header` reads the per-frame functional
groups of all frames at once when their items share one layout and declines
otherwise (counted in ``STATS``); these tests build each index both ways and
compare every field, on highdicom's files (generated at test time), on our
writer's outputs of every type, and on per-frame groups drawn by hypothesis
(frame and segment counts, omitted frames, derivation references on and off,
defined and undefined lengths, explicit and implicit VR).
"""
from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

import monai_dicomseg as hd
from corpus import SEG_NAMES
from monai_dicomseg.codec import bulk_frame_header as bulk
from monai_dicomseg.codec import functional_groups as fg
from monai_dicomseg.codec.frame_index import FrameIndex, build_frame_index
from monai_dicomseg.errors import DecodeError
from monai_dicomseg.seg.modules import set_raw
from monai_dicomseg.seg.reader import read_segmentation_dataset
from oracles import build_segmentation, one_hot

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


@contextmanager
def general_only() -> Iterator[None]:
    """Run the general scanner only (the path every file took before the bulk parser)."""
    bulk.ENABLED = False
    try:
        yield
    finally:
        bulk.ENABLED = True


def assert_same_index(a: FrameIndex, b: FrameIndex) -> None:
    """Every field equal, with the same dtypes and Python types."""
    for item in dataclasses.fields(FrameIndex):
        x, y = getattr(a, item.name), getattr(b, item.name)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            assert isinstance(x, np.ndarray) and isinstance(y, np.ndarray), item.name
            assert (x.dtype, x.shape) == (y.dtype, y.shape), item.name
            assert x.tolist() == y.tolist(), item.name
            assert [type(v) for v in x.reshape(-1).tolist()] == [type(v) for v in y.reshape(-1).tolist()], item.name
        else:
            assert (type(x), x) == (type(y), y), item.name


def both_ways(data: bytes) -> tuple[FrameIndex, FrameIndex, bool]:
    """``(index with the bulk parser enabled, general index, whether the bulk parser built the first)``."""
    before = bulk.STATS["bulk"]
    fast = build_frame_index(read_segmentation_dataset(io.BytesIO(data)))
    took = bulk.STATS["bulk"] == before + 1
    with general_only():
        slow = build_frame_index(read_segmentation_dataset(io.BytesIO(data)))
    return fast, slow, took


def seg_bytes(seg: Dataset) -> bytes:
    buffer = io.BytesIO()
    seg.save_as(buffer)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------- corpus


# highdicom writes every item with an undefined length: the boundary search must find them all
BULK_CORPUS = {"seg_image_ct_binary.dcm", "seg_image_ct_binary_overlap.dcm", "seg_image_ct_true_fractional.dcm",
               "seg_image_sm_numbers.dcm", "seg_image_sm_dots.dcm", "seg_image_sm_control_labelmap.dcm"}


@pytest.mark.parametrize("name", SEG_NAMES, ids=SEG_NAMES)
def test_corpus_equals_general_parser(name: str, highdicom_data_dir) -> None:
    fast, slow, took = both_ways((highdicom_data_dir / name).read_bytes())
    assert_same_index(fast, slow)
    if name in BULK_CORPUS:
        assert took, bulk.LAST_FALLBACK[0]


# ---------------------------------------------------------------------------------------------- our writer


@pytest.mark.parametrize("seg_type", ["BINARY", "FRACTIONAL", "LABELMAP"])
@pytest.mark.parametrize("omit", [True, False])
def test_writer_series_equals_general_parser(seg_type, omit, synthetic_ct, synthetic_labels) -> None:
    pixels = synthetic_labels if seg_type != "FRACTIONAL" else one_hot(synthetic_labels, 3).astype(np.float32) * 0.5
    seg = build_segmentation(hd, synthetic_ct, pixels, seg_type, 3, omit_empty_frames=omit)
    fast, slow, took = both_ways(seg_bytes(seg))
    assert took, bulk.LAST_FALLBACK[0]
    assert_same_index(fast, slow)
    assert fast.has_frame_references and fast.image_positions is not None


@pytest.mark.parametrize("seg_type", ["BINARY", "LABELMAP"])
def test_writer_multiframe_source_equals_general_parser(seg_type, synthetic_enhanced_ct, synthetic_labels) -> None:
    seg = build_segmentation(hd, [synthetic_enhanced_ct], synthetic_labels, seg_type, 3)
    fast, slow, took = both_ways(seg_bytes(seg))
    assert took, bulk.LAST_FALLBACK[0]
    assert_same_index(fast, slow)
    assert np.all(fast.ref_frame_number > 0)  # ReferencedFrameNumber read for every frame


@pytest.mark.parametrize("seg_type", ["BINARY", "LABELMAP"])
def test_writer_tiled_sparse_equals_general_parser(seg_type, generated_corpus) -> None:
    mask = np.zeros((50, 50), np.uint8)
    mask[38:43, 5:41] = 1
    mask[3:8, 3:9] = 2
    source = hd.imread(str(generated_corpus / "sm_image.dcm"))
    seg = build_segmentation(hd, [source], mask, seg_type, 2, tile_pixel_array=True,
                             dimension_organization_type="TILED_SPARSE")
    fast, slow, took = both_ways(seg_bytes(seg))
    assert took, bulk.LAST_FALLBACK[0]
    assert_same_index(fast, slow)
    assert fast.tile_positions is not None


# ---------------------------------------------------------------------------------------------- fallback


def _mixed_derivation_file() -> bytes:
    """Three frames, the second without a source reference: items of two layouts."""
    planes = np.arange(3)
    derivation = [fg.derivation_group([(CT_STORAGE, f"1.2.3.{n}", None)]) for n in planes]
    derivation[1] = fg.derivation_group([])
    return _file(planes, np.ones(3, np.int64), derivation, positions=[[0, 0, n] for n in planes])


def test_items_of_different_layouts_fall_back_and_are_counted() -> None:
    before = dict(bulk.STATS)
    fast, slow, took = both_ways(_mixed_derivation_file())
    assert not took
    assert bulk.STATS["fallback"] == before["fallback"] + 1
    assert "different" in bulk.LAST_FALLBACK[0]
    assert_same_index(fast, slow)
    assert fast.ref_frame.tolist() == [0, 2]


def test_disabled_bulk_parser_is_not_counted() -> None:
    data = _file(np.arange(2), np.ones(2, np.int64), None, positions=[[0, 0, 0], [0, 0, 1]])
    before = dict(bulk.STATS)
    with general_only():
        build_frame_index(read_segmentation_dataset(io.BytesIO(data)))
    assert bulk.STATS == before


@pytest.mark.parametrize("bad, message", [
    (b"1.5\\x ", "invalid value"),  # a DS that does not decode: the general scanner's error
    (b"1\\2 ", "ImagePositionPatient"),  # not three values: no positions (general rule), no error
])
def test_bad_values_give_the_general_result(bad: bytes, message: str) -> None:
    planes = np.arange(3)
    positions = [[0, 0, n] for n in planes]
    data = _file(planes, np.ones(3, np.int64), None, positions=positions, replace_last_position=bad)
    if message == "invalid value":
        with pytest.raises(DecodeError, match=message):
            build_frame_index(read_segmentation_dataset(io.BytesIO(data)))
        with general_only(), pytest.raises(DecodeError, match=message):
            build_frame_index(read_segmentation_dataset(io.BytesIO(data)))
    else:
        fast, slow, _ = both_ways(data)
        assert_same_index(fast, slow)
        assert fast.image_positions is None


def test_item_count_differing_from_number_of_frames_gives_the_general_error() -> None:
    data = _file(np.arange(2), np.ones(2, np.int64), None, positions=[[0, 0, 0], [0, 0, 1]], number_of_frames=3)
    with pytest.raises(DecodeError, match="one item per frame"):
        build_frame_index(read_segmentation_dataset(io.BytesIO(data)))


@given(data=st.binary(min_size=0, max_size=300), implicit=st.booleans())
@settings(max_examples=200, deadline=None)
def test_arbitrary_bytes_never_raise(data: bytes, implicit: bool) -> None:
    from monai_dicomseg.codec.frame_index import FUNCTIONAL_GROUPS_SPEC

    result = bulk.scan_uniform_items(data, FUNCTIONAL_GROUPS_SPEC, implicit=implicit)
    assert result is None or result.count >= 0


def test_template_size_is_bounded() -> None:
    """An item of more elements than MAX_LAYOUT_ELEMENTS is left to the general scanner (no long lock step)."""
    from monai_dicomseg.codec import raw
    from monai_dicomseg.codec.frame_index import FUNCTIONAL_GROUPS_SPEC

    elements = [raw.lo("FrameLabel", "ab")] * (bulk.MAX_LAYOUT_ELEMENTS + 1)  # not kept: only walked
    value = raw.item(raw.sequence("FrameContentSequence", [raw.item(*elements)])) * 2
    assert bulk.scan_uniform_items(value, FUNCTIONAL_GROUPS_SPEC, implicit=False) is None
    assert "elements per item" in bulk.LAST_FALLBACK[0]


# ---------------------------------------------------------------------------------------------- hypothesis


def _file(planes: np.ndarray, segments: np.ndarray | None, derivation: list[bytes] | None, *,
          positions: list | None, segment_count: int = 1, number_of_frames: int | None = None,
          encoding: str = "defined", replace_last_position: bytes | None = None) -> bytes:
    """A minimal SEG header (no Pixel Data) around per-frame groups made by our writer's encoder.

    ``encoding``: ``"defined"`` (our writer's bytes), ``"explicit"`` / ``"implicit"``
    (re-encoded by pydicom with undefined-length sequences and items, like highdicom's files).
    """
    labelmap = segments is None
    position_groups = None if positions is None else [fg.plane_position_group([repr(float(v)) for v in p])
                                                      for p in positions]
    if replace_last_position is not None:
        position_groups[-1] = fg.raw.sequence("PlanePositionSequence", [fg.raw.item(
            fg.raw.element("ImagePositionPatient", replace_last_position))])
    dimension = np.stack([segments if not labelmap else planes + 1, planes + 1], axis=1)
    value = fg.per_frame_functional_groups(planes, segments, dimension, derivation, position_groups)
    ds = _header(len(planes) if number_of_frames is None else number_of_frames, segment_count, labelmap)
    set_raw(ds, "PerFrameFunctionalGroupsSequence", "SQ", value)
    if encoding != "defined":
        _undefined_lengths(ds)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if encoding == "implicit" else ExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _header(number_of_frames: int, segment_count: int, labelmap: bool) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SEG_STORAGE
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    ds.SOPClassUID = SEG_STORAGE
    ds.SOPInstanceUID = "1.2.3.4"
    ds.SegmentationType = "LABELMAP" if labelmap else "BINARY"
    ds.NumberOfFrames = number_of_frames
    ds.FrameOfReferenceUID = "1.2.3.9"
    ds.SegmentSequence = DicomSequence([Dataset() for _ in range(segment_count)])
    for number, item in enumerate(ds.SegmentSequence, 1):
        item.SegmentNumber = number
    dimensions = DicomSequence([Dataset(), Dataset()])
    dimensions[0].DimensionIndexPointer = 0x0062000B if not labelmap else 0x00200032
    dimensions[1].DimensionIndexPointer = 0x00200032
    ds.DimensionIndexSequence = dimensions
    shared = Dataset()
    shared.PlaneOrientationSequence = DicomSequence([Dataset()])
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PixelMeasuresSequence = DicomSequence([Dataset()])
    shared.PixelMeasuresSequence[0].PixelSpacing = [0.5, 0.5]
    shared.PixelMeasuresSequence[0].SpacingBetweenSlices = "1.25"
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    return ds


def _undefined_lengths(ds: Dataset) -> None:
    """Parse the per-frame groups and mark every sequence and item of undefined length (pydicom then writes so)."""
    def mark(dataset: Dataset) -> None:
        for element in dataset:
            if element.VR == "SQ":
                element.is_undefined_length = True
                for item in element.value:
                    item.is_undefined_length_sequence_item = True
                    mark(item)

    mark(ds)


_UID = st.from_regex(r"1\.2\.[1-9][0-9]{0,20}(\.[1-9][0-9]{0,8}){0,3}", fullmatch=True)
_COORDINATE = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False).map(lambda v: round(v, 3))


@st.composite
def per_frame_case(draw) -> bytes:
    planes_count = draw(st.integers(1, 6))
    segment_count = draw(st.integers(1, 4))
    labelmap = draw(st.booleans())
    frames = [(p, s) for s in range(1, segment_count + 1) for p in range(planes_count)] if not labelmap \
        else [(p, 0) for p in range(planes_count)]
    kept = draw(st.lists(st.booleans(), min_size=len(frames), max_size=len(frames)))  # omitted frames
    frames = [f for f, k in zip(frames, kept) if k] or frames[:1]
    planes = np.asarray([p for p, _ in frames], np.int64)
    segments = None if labelmap else np.asarray([s for _, s in frames], np.int64)
    references = draw(st.sampled_from(["none", "one", "frame numbers", "two sources"]))
    derivation = None
    if references != "none":
        preserved = draw(st.sampled_from(["YES", "NO", None]))  # one choice per file: one item layout
        derivation = []
        for _ in range(planes_count):
            uids = draw(st.lists(_UID, min_size=1 + (references == "two sources"),
                                 max_size=1 + (references == "two sources")))
            number = draw(st.integers(1, 10**6)) if references == "frame numbers" else None
            derivation.append(fg.derivation_group([(CT_STORAGE, uid, number) for uid in uids],
                                                  preserved))
    positions = draw(st.one_of(st.none(), st.lists(st.lists(_COORDINATE, min_size=3, max_size=3),
                                                     min_size=planes_count, max_size=planes_count)))
    return _file(planes, segments, derivation, positions=positions, segment_count=segment_count,
                 encoding=draw(st.sampled_from(["defined", "explicit", "implicit"])))


@given(data=per_frame_case())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_drawn_per_frame_groups_equal_general_parser(data: bytes) -> None:
    fast, slow, took = both_ways(data)
    assert took, bulk.LAST_FALLBACK[0]
    assert_same_index(fast, slow)


# ---------------------------------------------------------------------------------------------- hostile input


def _outcome(data: bytes, enabled: bool) -> tuple:
    """What building the index gives: its fields, or the error's type and message."""
    bulk.ENABLED = enabled
    try:
        try:
            dataset = read_segmentation_dataset(io.BytesIO(data))
        except DecodeError as exc:
            return ("unreadable", str(exc))
        try:
            index = build_frame_index(dataset)
        except Exception as exc:  # noqa: BLE001 - compared, not swallowed
            return (type(exc).__name__, str(exc))
        return ("index", *[repr(getattr(index, f.name)) for f in dataclasses.fields(FrameIndex)])
    finally:
        bulk.ENABLED = True


@pytest.fixture(scope="module")
def mutation_bases(highdicom_data_dir, synthetic_ct, synthetic_labels) -> list[tuple[bytes, int, int]]:
    """(file, start, end of its per-frame groups' value): our writer's (defined lengths), highdicom's (undefined)."""
    from monai_dicomseg.codec.element_scan import locate_top_level_element, read_file_meta
    from monai_dicomseg.codec.transfer_syntax import lookup

    files = [seg_bytes(build_segmentation(hd, synthetic_ct, synthetic_labels, "BINARY", 3)),
             (highdicom_data_dir / "seg_image_ct_binary_overlap.dcm").read_bytes(),
             (highdicom_data_dir / "seg_image_sm_numbers.dcm").read_bytes()]
    bases = []
    for data in files:
        start, syntax = read_file_meta(data)
        found = locate_top_level_element(data, start, "PerFrameFunctionalGroupsSequence",
                                         implicit=lookup(syntax).implicit_vr)
        bases.append((data, found[1], found[2]))
    return bases


@given(which=st.integers(0, 2), edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                                                min_size=1, max_size=4))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_mutated_per_frame_groups_give_the_general_outcome(mutation_bases, which, edits) -> None:
    """Bytes of the per-frame groups overwritten: the same index or the same error as the general scanner."""
    data, start, end = mutation_bases[which]
    mutated = bytearray(data)
    for where, value in edits:
        mutated[start + int(where * (end - start))] = value
    assert _outcome(bytes(mutated), True) == _outcome(bytes(mutated), False)


def test_one_long_text_value_among_many_short_ones_is_not_gathered() -> None:
    """Text is gathered as (frames x longest value): one 1000-byte UID among 4000 short ones is left to the scanner."""
    planes = np.arange(4000)
    uids = ["1.2"] * len(planes)
    uids[-1] = "1." + "2" * 998
    derivation = [fg.derivation_group([(CT_STORAGE, uid, None)]) for uid in uids]
    data = _file(planes, np.ones(len(planes), np.int64), derivation, positions=None)
    fast, slow, took = both_ways(data)
    assert not took and "unequal in length" in bulk.LAST_FALLBACK[0]
    assert_same_index(fast, slow)
