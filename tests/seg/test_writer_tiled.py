"""Tiled segmentations (issue 8, writer side): tiles cut from a total pixel matrix,
TILED_SPARSE / TILED_FULL, slide sources aligned frame by frame, and pyramids.

Oracles: highdicom (same inputs → same frame counts and pixels; it reads our
total pixel matrix back) and dciodvfy (no ``Error -`` line).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless

import monai_dicomseg as hd
from monai_dicomseg.errors import DicomSegError, GeometryError, InputError, UnsupportedError
from monai_dicomseg.seg.pyramid import resize_linear, resize_nearest
from monai_dicomseg.seg.tiling import cut_tiles
from oracles import dciodvfy_errors

highdicom = pytest.importorskip("highdicom")

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "highdicom"
SM_IMAGE = SHARED / "sm_image.dcm"
pytestmark = pytest.mark.skipif(not SM_IMAGE.exists(), reason="shared highdicom test data absent")


def _descriptions(module, count: int):
    category = module.sr.CodedConcept("91723000", "SCT", "Anatomical Structure")
    kind = module.sr.CodedConcept("84640000", "SCT", "Nucleus")
    return [
        module.seg.SegmentDescription(
            segment_number=number, segment_label=f"Segment #{number}",
            segmented_property_category=category, segmented_property_type=kind,
            algorithm_type=module.seg.SegmentAlgorithmTypeValues.MANUAL)
        for number in range(1, count + 1)
    ]


def _mask() -> np.ndarray:
    mask = np.zeros((50, 50), np.uint8)
    mask[38:43, 5:41] = 1
    mask[3:8, 3:9] = 2
    mask[45:50, 45:50] = 2  # touches the bottom-right edge tile
    return mask


def _write(module, mask, **kwargs):
    return module.seg.Segmentation(
        source_images=[module.imread(str(SM_IMAGE))], pixel_array=mask,
        segment_descriptions=_descriptions(module, int(mask.max())),
        series_instance_uid=module.UID(), series_number=1, sop_instance_uid=module.UID(),
        instance_number=1, manufacturer="Foo Corp.", manufacturer_model_name="x",
        software_versions="0.0.1", device_serial_number="1", **kwargs)


CASES = [
    (seg_type, organization, tile_size)
    for seg_type in ("BINARY", "LABELMAP")
    for organization in ("TILED_SPARSE", "TILED_FULL")
    for tile_size in (None, (7, 9))
]


@pytest.mark.parametrize(("seg_type", "organization", "tile_size"), CASES,
                         ids=[f"{t}-{o}-{s or 'default'}" for t, o, s in CASES])
def test_tiled_like_highdicom(tmp_path, seg_type, organization, tile_size):
    mask = _mask()
    kwargs = dict(segmentation_type=seg_type, tile_pixel_array=True, tile_size=tile_size,
                  dimension_organization_type=organization,
                  omit_empty_frames=organization == "TILED_SPARSE")
    ours = _write(hd, mask, **kwargs)
    theirs = _write(highdicom, mask, **kwargs)
    assert int(ours.NumberOfFrames) == int(theirs.NumberOfFrames)
    assert ours.DimensionOrganizationType == organization
    assert (ours.Rows, ours.Columns) == (theirs.Rows, theirs.Columns)
    path = tmp_path / "ours.dcm"
    ours.save_as(path)
    their_path = tmp_path / "theirs.dcm"
    theirs.save_as(their_path)
    assert len(dciodvfy_errors(path)) <= len(dciodvfy_errors(their_path))
    region = dict(row_start=4, row_end=-3, column_start=-40, column_end=47)
    expected = mask[3:-3, 10:46]
    # both libraries, both files: whole matrix and a region not aligned to tiles
    for reader in (highdicom.seg.segread, hd.seg.segread):
        for file in (path, their_path):
            segmentation = reader(str(file))
            np.testing.assert_array_equal(segmentation.get_total_pixel_matrix(combine_segments=True), mask)
            np.testing.assert_array_equal(
                segmentation.get_total_pixel_matrix(combine_segments=True, **region), expected)
            stacked = segmentation.get_total_pixel_matrix(segment_numbers=[2], **region)
            np.testing.assert_array_equal(stacked[..., 0], (expected == 2).astype(stacked.dtype))


def test_tiled_full_has_no_per_frame_items():
    seg = _write(hd, _mask(), segmentation_type="BINARY", tile_pixel_array=True,
                 omit_empty_frames=False, dimension_organization_type="TILED_FULL")
    assert "PerFrameFunctionalGroupsSequence" not in seg
    assert "DimensionIndexSequence" not in seg
    assert int(seg.NumberOfFrames) == 2 * 25  # every tile of both segments


def test_tiles_matching_the_source_reference_it(tmp_path):
    seg = _write(hd, _mask(), segmentation_type="BINARY", tile_pixel_array=True)
    source = hd.imread(str(SM_IMAGE))
    for item in seg.PerFrameFunctionalGroupsSequence:
        position = item.PlanePositionSlideSequence[0]
        reference = item.DerivationImageSequence[0].SourceImageSequence[0]
        assert reference.ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert reference.SpatialLocationsPreserved == "YES"
        tile = ((position.RowPositionInTotalImagePixelMatrix - 1) // 10,
                (position.ColumnPositionInTotalImagePixelMatrix - 1) // 10)
        assert int(reference.ReferencedFrameNumber) == tile[0] * 5 + tile[1] + 1


@pytest.mark.parametrize("seg_type", ["BINARY", "LABELMAP", "FRACTIONAL"])
def test_slide_source_frames_aligned(tmp_path, seg_type):
    tiles, _ = cut_tiles(_mask(), 10, 10)
    seg = _write(hd, tiles, segmentation_type=seg_type)
    path = tmp_path / "aligned.dcm"
    seg.save_as(path)
    assert dciodvfy_errors(path) == []
    read_back = highdicom.seg.segread(str(path))
    source = hd.imread(str(SM_IMAGE))
    pixels = read_back.get_pixels_by_source_frame(
        source.SOPInstanceUID, range(1, 26), combine_segments=True,
        assert_missing_frames_are_empty=True)
    np.testing.assert_array_equal(pixels, tiles)


def test_compressed_tiles(tmp_path):
    for seg_type, syntax in (("BINARY", JPEG2000Lossless), ("LABELMAP", JPEGLSLossless)):
        mask = np.kron(_mask(), np.ones((1, 1), np.uint8))
        seg = _write(hd, mask, segmentation_type=seg_type, tile_pixel_array=True,
                     tile_size=(32, 32), transfer_syntax_uid=syntax, workers=2)
        path = tmp_path / f"{seg_type}.dcm"
        seg.save_as(path)
        assert dciodvfy_errors(path) == []
        np.testing.assert_array_equal(
            highdicom.seg.segread(str(path)).get_total_pixel_matrix(combine_segments=True), mask)
        np.testing.assert_array_equal(
            hd.seg.segread(str(path)).get_total_pixel_matrix(combine_segments=True), mask)


def test_guide_frame_counts():
    sm_image = hd.imread(str(SM_IMAGE))
    mask = np.zeros((sm_image.TotalPixelMatrixRows, sm_image.TotalPixelMatrixColumns), dtype=np.uint8)
    mask[38:43, 5:41] = 1
    seg = _write(hd, mask, segmentation_type=hd.seg.SegmentationTypeValues.BINARY, tile_pixel_array=True)
    assert seg.NumberOfFrames == 10
    assert seg.pixel_array.shape == (10, 10, 10)
    seg = _write(hd, mask, segmentation_type=hd.seg.SegmentationTypeValues.BINARY, tile_pixel_array=True,
                 omit_empty_frames=False,
                 dimension_organization_type=hd.DimensionOrganizationTypeValues.TILED_FULL)
    assert seg.NumberOfFrames == 25
    assert seg.pixel_array.shape == (25, 10, 10)


@pytest.mark.parametrize("factors", [[2.0, 4.0], [1.5, 3.3]], ids=["2-4", "1.5-3.3"])
@pytest.mark.parametrize("seg_type", ["BINARY", "LABELMAP"])
def test_pyramid_like_highdicom(tmp_path, factors, seg_type):
    mask = _mask()

    def pyramid(module):
        return module.seg.create_segmentation_pyramid(
            source_images=[module.imread(str(SM_IMAGE))], pixel_arrays=[mask],
            segmentation_type=seg_type, segment_descriptions=_descriptions(module, 2),
            series_instance_uid=module.UID(), series_number=1, manufacturer="Foo Corp.",
            manufacturer_model_name="x", software_versions="0.0.1", device_serial_number="1",
            downsample_factors=factors)

    ours, theirs = pyramid(hd), pyramid(highdicom)
    assert len(ours) == len(theirs) == len(factors) + 1
    assert len({str(s.PyramidUID) for s in ours}) == 1
    assert len({str(s.SeriesInstanceUID) for s in ours}) == 1
    for level, (mine, reference) in enumerate(zip(ours, theirs)):
        assert int(mine.InstanceNumber) == level + 1
        assert (mine.TotalPixelMatrixRows, mine.TotalPixelMatrixColumns) == (
            reference.TotalPixelMatrixRows, reference.TotalPixelMatrixColumns)
        assert int(mine.NumberOfFrames) == int(reference.NumberOfFrames)
        path = tmp_path / f"level{level}.dcm"
        mine.save_as(path)
        assert dciodvfy_errors(path) == []
        np.testing.assert_allclose(
            [float(v) for v in mine.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing],
            [float(v) for v in reference.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing])
        reference_path = tmp_path / f"reference{level}.dcm"
        reference.save_as(reference_path)
        np.testing.assert_array_equal(
            highdicom.seg.segread(str(path)).get_total_pixel_matrix(combine_segments=True),
            highdicom.seg.segread(str(reference_path)).get_total_pixel_matrix(combine_segments=True))


def test_resizing_matches_pillow():
    image_module = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(3)
    for _ in range(40):
        rows, columns = (int(v) for v in rng.integers(5, 80, 2))
        factor = float(rng.uniform(1.1, 6.0))
        out_rows, out_columns = max(1, int(rows / factor)), max(1, int(columns / factor))
        labels = rng.integers(0, 4, (rows, columns)).astype(np.uint8)
        expected = np.array(image_module.fromarray(labels).resize(
            (out_columns, out_rows), image_module.Resampling.NEAREST))
        np.testing.assert_array_equal(resize_nearest(labels, out_rows, out_columns), expected)
        fractions = rng.random((rows, columns)).astype(np.float32)
        expected = np.array(image_module.fromarray(fractions).resize(
            (out_columns, out_rows), image_module.Resampling.BILINEAR))
        np.testing.assert_allclose(resize_linear(fractions, out_rows, out_columns), expected, atol=1e-6)


# -- bad input -----------------------------------------------------------------------------

def test_tile_pixel_array_needs_tiled_source(ct_small):
    with pytest.raises(InputError, match="tile_pixel_array=True needs a tiled source"):
        hd.seg.Segmentation(
            source_images=[ct_small], pixel_array=np.zeros((128, 128), np.uint8),
            segmentation_type="BINARY", segment_descriptions=_descriptions(hd, 1),
            series_instance_uid=hd.UID(), series_number=1, sop_instance_uid=hd.UID(),
            instance_number=1, manufacturer="x", manufacturer_model_name="x",
            software_versions="0", device_serial_number="0", tile_pixel_array=True)


@pytest.mark.parametrize("tile_size", [(0, 10), (10, -1), (70000, 10), ("a", 3), (5,)],
                         ids=["zero", "negative", "too-large", "not-int", "one-value"])
def test_bad_tile_size(tile_size):
    with pytest.raises(InputError, match="tile_size"):
        _write(hd, _mask(), segmentation_type="BINARY", tile_pixel_array=True, tile_size=tile_size)


def test_tile_size_without_tiling():
    with pytest.raises(InputError, match="tile_size is only used with tile_pixel_array"):
        tiles, _ = cut_tiles(_mask(), 10, 10)
        _write(hd, tiles, segmentation_type="BINARY", tile_size=(10, 10))


def test_several_frames_with_tile_pixel_array():
    with pytest.raises(InputError, match="one total pixel matrix"):
        _write(hd, np.ones((2, 50, 50), np.uint8), segmentation_type="BINARY", tile_pixel_array=True)


def test_tiled_full_needs_all_frames():
    with pytest.raises(InputError, match="omit_empty_frames=False"):
        _write(hd, _mask(), segmentation_type="BINARY", tile_pixel_array=True,
               dimension_organization_type="TILED_FULL")


def test_tiled_organization_needs_tiles(ct_small):
    with pytest.raises(InputError, match="needs a tiled segmentation"):
        hd.seg.Segmentation(
            source_images=[ct_small], pixel_array=np.zeros((128, 128), np.uint8),
            segmentation_type="BINARY", segment_descriptions=_descriptions(hd, 1),
            series_instance_uid=hd.UID(), series_number=1, sop_instance_uid=hd.UID(),
            instance_number=1, manufacturer="x", manufacturer_model_name="x",
            software_versions="0", device_serial_number="0", omit_empty_frames=False,
            dimension_organization_type="TILED_FULL")


def test_three_d_requested_for_irregular_planes(ct2_series):
    with pytest.raises(GeometryError, match="3D requested"):
        hd.seg.Segmentation(
            source_images=ct2_series, pixel_array=np.ones((len(ct2_series), 16, 16), np.uint8),
            segmentation_type="BINARY", segment_descriptions=_descriptions(hd, 1),
            series_instance_uid=hd.UID(), series_number=1, sop_instance_uid=hd.UID(),
            instance_number=1, manufacturer="x", manufacturer_model_name="x",
            software_versions="0", device_serial_number="0", dimension_organization_type="3D")


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        (dict(downsample_factors=None), "downsample_factors must list"),
        (dict(downsample_factors=[4.0, 2.0]), "strictly increasing"),
        (dict(downsample_factors=[0.5]), "greater than 1"),
        (dict(downsample_factors=[2.0], pixel_array=np.zeros((2, 50, 50), np.uint8)), "one total pixel matrix"),
        (dict(downsample_factors=[2.0], pixel_array=np.zeros((40, 50), np.uint8)), "total pixel matrix is"),
        (dict(downsample_factors=[2.0], tile_pixel_array=True), "does not accept"),
    ],
    ids=["no-factors", "decreasing", "below-one", "several-frames", "wrong-size", "forbidden-kwarg"],
)
def test_pyramid_bad_input(arguments, match):
    arguments = dict(arguments)
    mask = arguments.pop("pixel_array", _mask())
    with pytest.raises(DicomSegError, match=match):
        hd.seg.create_segmentation_pyramid(
            source_images=[hd.imread(str(SM_IMAGE))], pixel_arrays=[mask],
            segmentation_type="BINARY", segment_descriptions=_descriptions(hd, 2),
            series_instance_uid=hd.UID(), series_number=1, manufacturer="x",
            manufacturer_model_name="x", software_versions="0", device_serial_number="0",
            **arguments)


def test_pyramid_needs_slide_source(ct_small):
    with pytest.raises(InputError, match="VL Whole Slide Microscopy"):
        hd.seg.create_segmentation_pyramid(
            source_images=[ct_small], pixel_arrays=[np.zeros((128, 128), np.uint8)],
            segmentation_type="BINARY", segment_descriptions=_descriptions(hd, 1),
            series_instance_uid=hd.UID(), series_number=1, manufacturer="x",
            manufacturer_model_name="x", software_versions="0", device_serial_number="0",
            downsample_factors=[2.0])


def test_explicit_geometry_for_slides_unsupported():
    tiles, _ = cut_tiles(_mask(), 10, 10)
    with pytest.raises(UnsupportedError, match="slide microscopy"):
        _write(hd, tiles, segmentation_type="BINARY",
               pixel_measures=hd.PixelMeasuresSequence(pixel_spacing=[0.1, 0.1], slice_thickness=1.0))
