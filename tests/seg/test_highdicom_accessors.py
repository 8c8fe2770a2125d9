"""highdicom's remaining Segmentation accessors (issue 22), checked against highdicom's own answers.

``iter_segments``, ``get_tracking_ids``, ``segmented_property_categories`` /
``_types``, ``are_dimension_indices_unique`` and ``get_volume_geometry`` are
called on the same files by highdicom and by us: the generated corpus
(highdicom-written, incl. tiled TILED_SPARSE / TILED_FULL slide SEGs and a
LABELMAP) and SEGs with several tracking identifiers, categories and types
written at test time by highdicom *and* by our writer (BINARY, FRACTIONAL,
LABELMAP). Where highdicom has no answer (its ``iter_segments`` fails on a
single-segment SEG, a LABELMAP, a TILED_FULL image) our documented rule is
tested instead.
"""
from __future__ import annotations

import itertools
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

import monai_dicomseg
from corpus import SEG_NAMES
from monai_dicomseg.errors import InputError, InputTypeError, UnsupportedError
from oracles import COMMON_SEG_ARGUMENTS

highdicom = pytest.importorskip("highdicom")

# (label, category, type, algorithm type, tracking id or None); two segments share a tracking id
SEGMENTS = [
    ("liver", codes.SCT.Organ, codes.SCT.Liver, "AUTOMATIC", "liver-track"),
    ("left kidney", codes.SCT.Organ, codes.SCT.Kidney, "MANUAL", "kidney-track"),
    ("right kidney", codes.SCT.Organ, codes.SCT.Kidney, "MANUAL", "kidney-track"),
    ("mass", codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Neoplasm, "SEMIAUTOMATIC", None),
]
TRACKING_UIDS = {"liver-track": "1.2.826.0.1.3680043.8.498.101", "kidney-track": "1.2.826.0.1.3680043.8.498.102"}


def _descriptions(module: Any) -> list[Any]:
    algorithm = module.AlgorithmIdentificationSequence(
        name="test", family=codes.DCM.ArtificialIntelligence, version="1")
    out = []
    for number, (label, category, kind, algorithm_type, tracking) in enumerate(SEGMENTS, start=1):
        extra = {} if tracking is None else {"tracking_id": tracking, "tracking_uid": TRACKING_UIDS[tracking]}
        out.append(module.seg.SegmentDescription(
            segment_number=number, segment_label=label, segmented_property_category=category,
            segmented_property_type=kind, algorithm_type=algorithm_type,
            algorithm_identification=None if algorithm_type == "MANUAL" else algorithm, **extra))
    return out


def _pixels(segmentation_type: str, labels: np.ndarray) -> np.ndarray:
    """Four segments from the three synthetic organs (segment 4 = a corner of organ 1); LABELMAP: a label map."""
    stacked = np.stack([labels == 1, labels == 2, labels == 3, np.zeros_like(labels, bool)], axis=-1)
    stacked[:, :8, :8, 3] = stacked[:, :8, :8, 0]
    stacked[:, :8, :8, 0] = False  # disjoint, so that one label map holds them all
    if segmentation_type == "LABELMAP":
        return (stacked * np.arange(1, 5, dtype=np.uint8)).max(axis=-1).astype(np.uint8)
    if segmentation_type == "FRACTIONAL":
        return stacked.astype(np.float32) * np.float32(0.75)
    return stacked.astype(np.uint8)


@pytest.fixture(scope="module", params=["BINARY", "FRACTIONAL", "LABELMAP"])
def written(request: pytest.FixtureRequest, synthetic_ct: list[pydicom.Dataset], synthetic_labels: np.ndarray,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same 4-segment SEG written by highdicom and by us: ``{"highdicom": path, "ours": path}``."""
    folder = tmp_path_factory.mktemp(f"accessors_{request.param.lower()}")
    paths = {}
    for name, module in (("highdicom", highdicom), ("ours", monai_dicomseg)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seg = module.seg.Segmentation(
                source_images=synthetic_ct, pixel_array=_pixels(request.param, synthetic_labels),
                segmentation_type=request.param, segment_descriptions=_descriptions(module),
                series_instance_uid=module.UID(), sop_instance_uid=module.UID(), **COMMON_SEG_ARGUMENTS)
        paths[name] = folder / f"{name}.dcm"
        seg.save_as(paths[name])
    return paths


def _both(path: Path) -> tuple[Any, Any]:
    """``path`` read by highdicom and by us."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return highdicom.seg.segread(path), monai_dicomseg.seg.segread(path)


def _tracking(pairs: list[tuple[str, Any]]) -> set[tuple[str, str]]:
    return {(str(tracking_id), str(uid)) for tracking_id, uid in pairs}


def _codes(concepts: list[Any]) -> list[tuple[str, str]]:
    return [(c.value, c.scheme_designator) for c in concepts]


# --------------------------------------------------------------------------- segment metadata


FILTERS = [
    {},
    {"segmented_property_category": codes.SCT.Organ},
    {"segmented_property_type": codes.SCT.Kidney},
    {"segmented_property_type": codes.SCT.Neoplasm},
    {"algorithm_type": "MANUAL"},
    {"algorithm_type": highdicom.seg.SegmentAlgorithmTypeValues.AUTOMATIC},
    {"segmented_property_category": codes.SCT.Organ, "algorithm_type": "AUTOMATIC"},
]


@pytest.mark.parametrize("producer", ["highdicom", "ours"])
@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: ",".join(f) or "none")
def test_get_tracking_ids_equals_highdicom(written: dict[str, Path], producer: str, filters: dict) -> None:
    theirs, ours = _both(written[producer])
    result = ours.get_tracking_ids(**filters)
    assert _tracking(result) == _tracking(theirs.get_tracking_ids(**filters))
    assert len(result) == len(set(result)), "pairs are unique"
    assert all(isinstance(uid, pydicom.uid.UID) for _, uid in result)


def test_get_tracking_ids_values_and_order(written: dict[str, Path]) -> None:
    """Segments 2 and 3 share one pair (reported once); segment 4 has none; order is segment order."""
    _, ours = _both(written["ours"])
    assert [(t, str(u)) for t, u in ours.get_tracking_ids()] == [
        ("liver-track", TRACKING_UIDS["liver-track"]), ("kidney-track", TRACKING_UIDS["kidney-track"])]
    assert ours.get_tracking_ids(segmented_property_type=codes.SCT.Neoplasm) == []


def test_get_tracking_ids_refuses_an_unknown_algorithm_type(written: dict[str, Path]) -> None:
    _, ours = _both(written["ours"])
    with pytest.raises(InputError, match="algorithm_type"):
        ours.get_tracking_ids(algorithm_type="GUESSED")
    with pytest.raises(InputTypeError, match="segmented_property_type must be a CodedConcept"):
        ours.get_tracking_ids(segmented_property_type="Kidney")  # a string would silently match nothing


@pytest.mark.parametrize("producer", ["highdicom", "ours"])
def test_segmented_property_categories_and_types_equal_highdicom(written: dict[str, Path], producer: str) -> None:
    theirs, ours = _both(written[producer])
    assert _codes(ours.segmented_property_categories) == _codes(theirs.segmented_property_categories)
    assert _codes(ours.segmented_property_types) == _codes(theirs.segmented_property_types)
    assert _codes(ours.segmented_property_categories) == [(c.value, "SCT") for c in (codes.SCT.Organ, codes.SCT.MorphologicallyAbnormalStructure)]
    assert [c.meaning for c in ours.segmented_property_types] == ["Liver", "Kidney", "Neoplasm"]


def test_background_segment_is_not_a_category(synthetic_ct: list[pydicom.Dataset],
                                              synthetic_labels: np.ndarray) -> None:
    """A LABELMAP's segment 0 (dcmqi's "Background", PixelPaddingValue 0) is not reported; segment 1 is."""
    seg = monai_dicomseg.seg.Segmentation(
        source_images=synthetic_ct, pixel_array=(synthetic_labels == 1).astype(np.uint8),
        segmentation_type="LABELMAP", segment_descriptions=_descriptions(monai_dicomseg)[:1],
        series_instance_uid=monai_dicomseg.UID(), sop_instance_uid=monai_dicomseg.UID(), **COMMON_SEG_ARGUMENTS)
    background = pydicom.Dataset()
    background.update(seg.SegmentSequence[0])
    background.SegmentNumber = 0
    background.SegmentLabel = "Background"
    background.SegmentedPropertyTypeCodeSequence[0].CodeValue = "0000000"
    seg.SegmentSequence = [background, *seg.SegmentSequence]
    seg.PixelPaddingValue = 0
    read = monai_dicomseg.seg.Segmentation.from_dataset(seg)
    assert [c.meaning for c in read.segmented_property_types] == ["Liver"]
    assert read.get_tracking_ids() == [("liver-track", TRACKING_UIDS["liver-track"])]


# --------------------------------------------------------------------------- corpus: highdicom's own files


@pytest.mark.parametrize("name", SEG_NAMES)
def test_corpus_metadata_equals_highdicom(generated_corpus: Any, name: str) -> None:
    theirs, ours = _both(generated_corpus / name)
    assert _tracking(ours.get_tracking_ids()) == _tracking(theirs.get_tracking_ids())
    assert _codes(ours.segmented_property_categories) == _codes(theirs.segmented_property_categories)
    assert _codes(ours.segmented_property_types) == _codes(theirs.segmented_property_types)


@pytest.mark.parametrize("name", SEG_NAMES)
def test_corpus_dimension_index_uniqueness_equals_highdicom(generated_corpus: Any, name: str) -> None:
    """Every non-empty combination of the image's pointers, given as tags and as keywords."""
    theirs, ours = _both(generated_corpus / name)
    pointers = list(theirs.dimension_index_pointers)
    answers = []
    for size in range(1, len(pointers) + 1):
        for combination in itertools.combinations(pointers, size):
            expected = theirs.are_dimension_indices_unique(list(combination))
            assert ours.are_dimension_indices_unique(list(combination)) is expected, combination
            keywords = [pydicom.datadict.keyword_for_tag(t) for t in combination]
            assert ours.are_dimension_indices_unique(keywords) is expected, keywords
            answers.append(expected)
    if pointers:
        assert any(answers), "the full set of pointers identifies frames"
    else:  # a TILED_FULL image without DimensionIndexSequence: no pointer is valid (highdicom: KeyError)
        position = pydicom.datadict.tag_for_keyword("ColumnPositionInTotalImagePixelMatrix")
        with pytest.raises(InputError, match="expected one of \\[\\]"):
            ours.are_dimension_indices_unique([position])
        with pytest.raises(KeyError):
            theirs.are_dimension_indices_unique([position])


def test_dimension_index_uniqueness_on_both_sides(written: dict[str, Path]) -> None:
    """Per segment, ImagePositionPatient identifies a frame; ReferencedSegmentNumber alone does not."""
    theirs, ours = _both(written["ours"])
    position = pydicom.datadict.tag_for_keyword("ImagePositionPatient")
    assert ours.are_dimension_indices_unique([position]) is True
    assert theirs.are_dimension_indices_unique([position]) is True
    if ours.segmentation_type.value != "LABELMAP":
        segment = pydicom.datadict.tag_for_keyword("ReferencedSegmentNumber")
        assert ours.are_dimension_indices_unique([segment]) is False
        assert theirs.are_dimension_indices_unique([segment]) is False


@pytest.mark.parametrize("pointers, error, message", [
    ([], InputError, "may not be empty"),
    (["SegmentLabel"], InputError, "SegmentLabel is not used as a dimension index"),
    ([0x00100010], InputError, "PatientName is not used as a dimension index"),
    ([0x7FFF0010], InputError, r"\(7FFF,0010\) is not used as a dimension index"),
    ("ImagePositionPatient", InputTypeError, "sequence of tags or keywords"),
    ([1.5], InputTypeError, "tag \\(int\\) or a keyword"),
    ([True], InputTypeError, "tag \\(int\\) or a keyword"),
])
def test_are_dimension_indices_unique_refuses_bad_pointers(written: dict[str, Path], pointers: Any,
                                                           error: type, message: str) -> None:
    _, ours = _both(written["ours"])
    with pytest.raises(error, match=message):
        ours.are_dimension_indices_unique(pointers)


# --------------------------------------------------------------------------- volume geometry

GEOMETRY_OPTIONS = [
    {},
    {"allow_missing_positions": False},
    {"allow_duplicate_positions": False},
    {"atol": 0.01},
]


def _same_geometry(ours: Any, theirs: Any) -> None:
    assert (ours is None) == (theirs is None)
    if ours is not None:
        assert ours.spatial_shape == theirs.spatial_shape
        assert ours.coordinate_system.value == theirs.coordinate_system.value
        np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-6)


@pytest.mark.parametrize("options", GEOMETRY_OPTIONS, ids=lambda o: ",".join(o) or "default")
@pytest.mark.parametrize("name", SEG_NAMES)
def test_corpus_volume_geometry_equals_highdicom(generated_corpus: Any, name: str, options: dict) -> None:
    """PATIENT stacks (with a gap, overlapping segments, one frame), a CR without frame of reference
    (None), tiled slide SEGs (TILED_SPARSE, TILED_FULL, LABELMAP): the total pixel matrix."""
    theirs, ours = _both(generated_corpus / name)
    _same_geometry(ours.get_volume_geometry(**options), theirs.get_volume_geometry(**options))


@pytest.mark.parametrize("producer", ["highdicom", "ours"])
@pytest.mark.parametrize("options", GEOMETRY_OPTIONS, ids=lambda o: ",".join(o) or "default")
def test_volume_geometry_equals_highdicom(written: dict[str, Path], producer: str, options: dict) -> None:
    theirs, ours = _both(written[producer])
    _same_geometry(ours.get_volume_geometry(**options), theirs.get_volume_geometry(**options))


def test_volume_geometry_rules_on_both_sides(generated_corpus: Any, synthetic_ct: list[pydicom.Dataset],
                                             tmp_path: Path) -> None:
    """Missing positions (an empty, omitted middle slice) and duplicate positions (2 segments per plane)."""
    mask = np.ones((6, 32, 40), np.uint8)
    mask[2] = 0
    seg = monai_dicomseg.seg.Segmentation(
        source_images=synthetic_ct, pixel_array=mask, segmentation_type="BINARY",
        segment_descriptions=_descriptions(monai_dicomseg)[:1], series_instance_uid=monai_dicomseg.UID(),
        sop_instance_uid=monai_dicomseg.UID(), **COMMON_SEG_ARGUMENTS)
    seg.save_as(tmp_path / "gap.dcm")
    theirs, gap = _both(tmp_path / "gap.dcm")
    assert int(gap.NumberOfFrames) == 5
    assert gap.get_volume_geometry().spatial_shape == (6, 32, 40)
    assert gap.get_volume_geometry(allow_missing_positions=False) is None
    assert theirs.get_volume_geometry(allow_missing_positions=False) is None
    assert gap.get_volume_geometry(allow_duplicate_positions=False) is not None
    _, overlap = _both(generated_corpus / "seg_image_ct_binary_overlap.dcm")
    assert overlap.get_volume_geometry() is not None
    assert overlap.get_volume_geometry(allow_duplicate_positions=False) is None
    _, radiograph = _both(generated_corpus / "seg_image_cr_binary.dcm")
    assert radiograph.get_volume_geometry() is None


def test_volume_geometry_is_get_volume_geometry(written: dict[str, Path]) -> None:
    """The geometry of what get_volume returns, with the frame of reference, without decoding."""
    _, ours = _both(written["ours"])
    geometry = ours.get_volume_geometry()
    volume = ours.get_volume()
    assert geometry.geometry_equal(volume)
    assert geometry.frame_of_reference_uid == ours.FrameOfReferenceUID


def test_tiled_volume_geometry_is_get_volume_geometry(generated_corpus: Any) -> None:
    _, ours = _both(generated_corpus / "seg_image_sm_dots_tiled_full.dcm")
    assert ours.get_volume_geometry().geometry_equal(ours.get_volume(combine_segments=True))


def test_volume_geometry_refuses_rtol_with_atol(written: dict[str, Path]) -> None:
    """A TypeError, as highdicom's."""
    theirs, ours = _both(written["ours"])
    with pytest.raises(InputTypeError, match="rtol and atol may not be given together"):
        ours.get_volume_geometry(rtol=0.01, atol=0.01)
    with pytest.raises(TypeError):
        theirs.get_volume_geometry(rtol=0.01, atol=0.01)
    assert ours.get_volume_geometry(rtol=0.01) is not None and ours.get_volume_geometry(atol=0.01) is not None


# --------------------------------------------------------------------------- iter_segments


def _compare_segments(ours: list, theirs: list) -> None:
    assert [d.segment_number for _, _, d in ours] == [int(d.SegmentNumber) for _, _, d in theirs]
    for (frames, items, description), (their_frames, their_items, their_description) in zip(ours, theirs):
        np.testing.assert_array_equal(frames, their_frames)
        assert frames.dtype == their_frames.dtype
        assert [list(i.FrameContentSequence[0].DimensionIndexValues) for i in items] == \
               [list(i.FrameContentSequence[0].DimensionIndexValues) for i in their_items]
        assert description.segment_label == their_description.SegmentLabel


@pytest.mark.parametrize("producer", ["highdicom", "ours"])
def test_iter_segments_equals_highdicom_or_the_labelmap_rule(written: dict[str, Path], producer: str) -> None:
    """BINARY/FRACTIONAL: equal to highdicom's iter_segments. LABELMAP (highdicom's needs per-frame segment
    numbers, which a LABELMAP has none of): per non-background segment, ``frame == number`` over every stored
    frame."""
    theirs, ours = _both(written[producer])
    if ours.segmentation_type.value != "LABELMAP":
        _compare_segments(list(ours.iter_segments()), list(theirs.iter_segments()))
        return
    stored = pydicom.dcmread(written[producer]).pixel_array
    stored = stored[None] if stored.ndim == 2 else stored
    segments = list(ours.iter_segments())
    assert [d.segment_number for _, _, d in segments] == [1, 2, 3, 4]
    for frames, items, description in segments:
        assert frames.dtype == np.uint8 and len(items) == stored.shape[0]
        np.testing.assert_array_equal(frames, (stored == description.segment_number).astype(np.uint8))


@pytest.mark.parametrize("name", ["seg_image_ct_binary_overlap.dcm", "seg_image_sm_dots.dcm",
                                  "seg_image_sm_numbers.dcm"])
def test_corpus_iter_segments_equals_highdicom(generated_corpus: Any, name: str) -> None:
    theirs, ours = _both(generated_corpus / name)
    _compare_segments(list(ours.iter_segments()), list(theirs.iter_segments()))


@pytest.mark.parametrize("name", ["seg_image_ct_binary.dcm", "seg_image_ct_true_fractional.dcm"])
def test_iter_segments_of_a_single_segment(generated_corpus: Any, name: str) -> None:
    """One segment (highdicom keeps its SegmentIdentificationSequence shared and its own iter_segments
    fails): every frame, as pydicom decodes them."""
    path = generated_corpus / name
    _, ours = _both(path)
    [(frames, items, description)] = list(ours.iter_segments())
    np.testing.assert_array_equal(frames, pydicom.dcmread(path).pixel_array.reshape(frames.shape))
    assert len(items) == frames.shape[0] == int(ours.NumberOfFrames)
    assert description.segment_number == 1


def test_iter_segments_refuses_tiled_full(generated_corpus: Any) -> None:
    _, ours = _both(generated_corpus / "seg_image_sm_dots_tiled_full.dcm")
    with pytest.raises(UnsupportedError, match="TILED_FULL"):
        ours.iter_segments()


def test_iter_segments_decodes_lazily(generated_corpus: Any) -> None:
    """A generator: the frames of segment k are decoded when segment k is reached."""
    _, ours = _both(generated_corpus / "seg_image_sm_dots.dcm")
    iterator = ours.iter_segments()
    first = next(iterator)
    assert first[2].segment_number == 1 and first[0].shape[1:] == (10, 10)
