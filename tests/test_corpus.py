"""The generated test corpus (:mod:`corpus`) and the slide builder behind it.

The file-parametrised reader tests trust that each generated file is the case
its name says (frame counts, segment counts, types, tiling); these tests check
that directly, and that the sources are valid for dciodvfy.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

import corpus
import highdicom
from monai_dicomseg import synthetic
from monai_dicomseg.errors import InputError
from oracles import dciodvfy_errors

# name: (NumberOfFrames, number of segments, SegmentationType, DimensionOrganizationType, photometric)
EXPECTED = {
    "seg_image_cr_binary.dcm": (1, 1, "BINARY", None, "MONOCHROME2"),
    "seg_image_ct_binary.dcm": (3, 1, "BINARY", "3D", "MONOCHROME2"),
    "seg_image_ct_binary_fractional.dcm": (3, 1, "FRACTIONAL", "3D", "MONOCHROME2"),
    "seg_image_ct_binary_overlap.dcm": (8, 2, "BINARY", None, "MONOCHROME2"),
    "seg_image_ct_binary_single_frame.dcm": (1, 1, "BINARY", None, "MONOCHROME2"),
    "seg_image_ct_true_fractional.dcm": (3, 1, "FRACTIONAL", "3D", "MONOCHROME2"),
    "seg_image_sm_control.dcm": (20, 20, "BINARY", "TILED_SPARSE", "MONOCHROME2"),
    "seg_image_sm_control_labelmap.dcm": (20, 21, "LABELMAP", "TILED_SPARSE", "MONOCHROME2"),
    "seg_image_sm_control_labelmap_palette_color.dcm": (20, 21, "LABELMAP", "TILED_SPARSE", "PALETTE COLOR"),
    "seg_image_sm_dots.dcm": (59, 50, "BINARY", "TILED_SPARSE", "MONOCHROME2"),
    "seg_image_sm_dots_tiled_full.dcm": (1250, 50, "BINARY", "TILED_FULL", "MONOCHROME2"),
    "seg_image_sm_numbers.dcm": (20, 20, "BINARY", "TILED_SPARSE", "MONOCHROME2"),
}


def test_every_seg_name_has_an_expectation() -> None:
    assert sorted(EXPECTED) == sorted(corpus.SEG_NAMES)
    assert set(corpus.NAMES) == set(corpus.SEG_NAMES) | set(corpus.SOURCE_NAMES)


@pytest.mark.parametrize("name", corpus.SEG_NAMES)
def test_generated_seg_is_the_named_case(name: str, generated_corpus: corpus.Corpus) -> None:
    ds = pydicom.dcmread(generated_corpus / name)
    frames, segments, seg_type, organization, photometric = EXPECTED[name]
    assert int(ds.NumberOfFrames) == frames
    assert len(ds.SegmentSequence) == segments
    assert ds.SegmentationType == seg_type
    assert ds.get("DimensionOrganizationType") == organization
    assert ds.PhotometricInterpretation == photometric
    if name.startswith("seg_image_sm_"):
        assert (ds.TotalPixelMatrixRows, ds.TotalPixelMatrixColumns, ds.Rows, ds.Columns) == (50, 50, 10, 10)
        assert "ImageOrientationSlide" in ds
    if "labelmap" in name:
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.7"


def test_ct_binary_is_the_guide_case(generated_corpus: corpus.Corpus) -> None:
    """First (isolated) slice empty and omitted: 3 regular frames of the 4-slice source."""
    seg = highdicom.seg.segread(generated_corpus / "seg_image_ct_binary.dcm")
    assert len(seg.get_source_image_uids()) == 4
    assert seg.get_volume().spatial_shape == (3, 16, 16)
    description = seg.get_segment_description(1)
    assert (description.segment_label, description.tracking_id) == (
        "first segment", "test segmentation of computed tomography image")
    assert seg.PatientName == "Doe^Archibald"


def test_true_fractional_values(generated_corpus: corpus.Corpus) -> None:
    ds = pydicom.dcmread(generated_corpus / "seg_image_ct_true_fractional.dcm")
    assert np.unique(ds.pixel_array).tolist() == [0, 64, 128]
    assert int(ds.MaximumFractionalValue) == 255


def test_sm_numbers_layout(generated_corpus: corpus.Corpus) -> None:
    """One tile per segment, segment 2 empty and 19 in two tiles; frames reference source frames."""
    ds = pydicom.dcmread(generated_corpus / "seg_image_sm_numbers.dcm")
    items = ds.PerFrameFunctionalGroupsSequence
    segments = [int(i.SegmentIdentificationSequence[0].ReferencedSegmentNumber) for i in items]
    assert sorted(segments) == sorted([s for s in range(1, 21) if s != 2] + [19])
    referenced = [int(i.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber) for i in items]
    assert len(set(referenced)) == 20


def test_dots_cross_tile_borders(generated_corpus: corpus.Corpus) -> None:
    dots = corpus._dots()
    assert dots.sum(axis=(0, 1)).tolist() == [4] * 50  # 50 dots of 2 x 2
    assert dots.sum(axis=-1).max() == 1  # no overlap
    tiles = corpus._to_tiles(dots)
    assert np.count_nonzero(tiles.any(axis=(1, 2))) > 50  # some dots lie in two or four tiles


def test_files_are_written_once(tmp_path: Path) -> None:
    generated = corpus.Corpus(tmp_path)
    path = generated / "seg_image_ct_binary.dcm"
    stamp = path.stat().st_mtime_ns
    assert generated.path("seg_image_ct_binary.dcm") == path
    assert path.stat().st_mtime_ns == stamp
    with pytest.raises(KeyError, match="no generated corpus file named 'nope.dcm'"):
        generated.path("nope.dcm")


def test_shared_data_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MDS_SHARED_DATA", "off")
    assert corpus.shared_data_dir() is None
    assert corpus.shared_spec_file("seg-user-guide.rst") is None


# --------------------------------------------------------------------------- synthetic.make_slide_image


@pytest.mark.parametrize(("total", "tile"), [((50, 50), (10, 10)), ((23, 37), (10, 8)), ((5, 5), (10, 10))])
@pytest.mark.parametrize("photometric", ["RGB", "MONOCHROME2"])
def test_slide_tiles_form_the_total_pixel_matrix(total, tile, photometric, tmp_path: Path) -> None:
    ds = synthetic.make_slide_image(total, tile, photometric=photometric, seed=3)
    n_tiles = -(-total[0] // tile[0]) * -(-total[1] // tile[1])
    assert int(ds.NumberOfFrames) == n_tiles
    path = tmp_path / "sm.dcm"
    ds.save_as(path, enforce_file_format=True)
    image = highdicom.imread(path)
    matrix = image.get_total_pixel_matrix()
    frames = ds.pixel_array.reshape(n_tiles, *tile, -1)
    columns = -(-total[1] // tile[1])
    for k, frame in enumerate(frames):
        r, c = divmod(k, columns)
        expected = matrix.reshape(*total, -1)[r * tile[0]:(r + 1) * tile[0], c * tile[1]:(c + 1) * tile[1]]
        np.testing.assert_array_equal(frame[: expected.shape[0], : expected.shape[1]], expected)


@pytest.mark.dciodvfy
@pytest.mark.parametrize("name", ["sm_image.dcm", "sm_image_grayscale.dcm", "sm_image_jpegls.dcm", "ct_image.dcm"])
def test_sources_are_valid(name: str, generated_corpus: corpus.Corpus) -> None:
    assert dciodvfy_errors(generated_corpus / name) == []


def test_slide_photometric_refused() -> None:
    with pytest.raises(InputError, match=r"photometric must be 'RGB' or 'MONOCHROME2', got 'YBR_FULL'"):
        synthetic.make_slide_image(photometric="YBR_FULL")
