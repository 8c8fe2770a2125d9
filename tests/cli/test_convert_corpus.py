"""``convert`` over every SEG of the test corpus and every source geometry: valid, lossless files.

Issue 17: ``convert`` of valid oblique SEGs used to write ImageOrientationPatient
values longer than DS allows, and refused every SEG without a patient volume
(the CR SEG, every slide SEG). Every SEG that ``convert`` writes here must pass
``dciodvfy -allpffgitems`` with no ``Error -`` line and read back (with our
reader and with highdicom) with the input's segments and pixels: per
referenced source instance, or for a tiled SEG its total pixel matrix, every
source frame (tile) and its tiling (tile size, TILED_SPARSE/TILED_FULL, slide
origin and orientation). The only refusal, one line and no file left, is
overlapping segments -> LABELMAP: a label map holds one segment per pixel
(PS3.3 C.8.20.2, Segments Overlap must be NO for LABELMAP). (The CR SEG ->
LABELMAP used to be refused by the writer: a LABELMAP of images without plane
positions now indexes its frames by a Frame Label dimension.)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from corpus import SEG_NAMES
from monai_dicomseg import synthetic
from oracles import dciodvfy_errors

pytestmark = pytest.mark.dciodvfy


def _convert(cli, seg, out, target, extra=()):
    status, stdout, stderr = cli("convert", seg, out, "--type", target, *extra)
    return status, stdout + stderr


# (name, target) -> the refusal it must give; every other corpus case must convert.
REFUSED = {
    ("seg_image_ct_binary_overlap.dcm", "LABELMAP"): "segments overlap",
}


def _assert_refused(status, output, out, tmp_path, match):
    assert status != 0
    lines = [line for line in output.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("monai-dicomseg convert: error:"), output
    assert match in lines[0], output
    assert not out.exists()
    assert not list(tmp_path.glob(".*.part"))


@pytest.mark.parametrize("target", ["BINARY", "LABELMAP"])
@pytest.mark.parametrize("name", SEG_NAMES)
def test_convert_corpus_file(generated_corpus, cli, tmp_path, name, target):
    threshold = 0.5 if "fractional" in name else None
    extra = ("--threshold", str(threshold)) if threshold is not None else ()
    out = tmp_path / "converted.dcm"
    original = generated_corpus.path(name)
    status, output = _convert(cli, original, out, target, extra)
    if (name, target) in REFUSED:
        _assert_refused(status, output, out, tmp_path, REFUSED[name, target])
        return
    assert status == 0, output
    assert dciodvfy_errors(out) == []
    assert_same_content(original, out, threshold)


@pytest.mark.parametrize("orientation", ["axial", "coronal", "sagittal", "oblique"])
@pytest.mark.parametrize("target", ["BINARY", "LABELMAP"])
def test_convert_every_geometry(cli, tmp_path, orientation, target):
    labels = synthetic.make_ellipsoid_labels((5, 24, 28), n_labels=3, seed=1)
    series = synthetic.make_ct_series((5, 24, 28), orientation=orientation, labels=labels, seed=1)
    folder = tmp_path / "ct"
    synthetic.write_series(series, folder)
    seg = tmp_path / "seg.dcm"
    source = "LABELMAP" if target == "BINARY" else "BINARY"
    status, _, stderr = cli("from-nifti", _nifti(series, labels, tmp_path), folder, seg,
                            "--labels", "liver,spleen,kidney", "--type", source)
    assert status == 0, stderr
    out = tmp_path / "converted.dcm"
    status, output = _convert(cli, seg, out, target)
    assert status == 0, output
    assert dciodvfy_errors(out) == []


def _nifti(series, labels, folder):
    import nibabel
    import numpy as np

    from monai_dicomseg.io.source_series import load_source_geometry, monai_affine_from_lps, to_monai_array

    ct = folder / "ct"
    source = load_source_geometry(ct)
    generation = {str(ds.SOPInstanceUID): k for k, ds in enumerate(series)}
    order = [generation[str(ds.SOPInstanceUID)] for ds in source.datasets]
    truth = labels[order]
    image = nibabel.Nifti1Image(np.asfortranarray(to_monai_array(truth)),
                                monai_affine_from_lps(source.geometry.affine, truth.shape[0]))
    path = folder / "labels.nii.gz"
    nibabel.save(image, str(path))
    return path


# ------------------------------------------------------------------ what a conversion keeps
# Content is compared per source reference, which is what stays stable across a
# conversion (frame count and order change with the type).

def referenced_instances(seg) -> list[str]:
    return [str(item.ReferencedSOPInstanceUID)
            for series in seg.ReferencedSeriesSequence for item in series.ReferencedInstanceSequence]


def segments(seg) -> list[tuple[int, str, str, str]]:
    """(number, label, category code, type code) of every segment."""
    result = []
    for number in seg.segment_numbers:
        description = seg.get_segment_description(int(number))
        result.append((int(number), str(description.segment_label),
                       str(description.segmented_property_category.value),
                       str(description.segmented_property_type.value)))
    return result


def content(seg, threshold: float | None = None) -> dict[str, np.ndarray]:
    """Boolean stacked masks keyed by what they cover; ``seg`` read by either reader.

    ``threshold``: a FRACTIONAL input's rescaled values at or above it count.
    """
    def mask(array: np.ndarray) -> np.ndarray:
        return array >= threshold if threshold is not None else array != 0

    uids = referenced_instances(seg)
    result: dict[str, np.ndarray] = {}
    if "TotalPixelMatrixRows" in seg:
        result["total pixel matrix"] = mask(np.asarray(seg.get_total_pixel_matrix()))
        tiles = -(-int(seg.TotalPixelMatrixRows) // int(seg.Rows)) * \
            -(-int(seg.TotalPixelMatrixColumns) // int(seg.Columns))
        if str(seg.get("DimensionOrganizationType", "")) == "TILED_FULL":
            return result  # frames carry no derivation references (PS3.3 C.7.6.17.3)
        if not seg.PerFrameFunctionalGroupsSequence[0].get("DerivationImageSequence"):
            return result  # highdicom's tile_pixel_array output references no source frame
        result["source frames"] = mask(np.asarray(seg.get_pixels_by_source_frame(
            uids[0], source_frame_numbers=list(range(1, tiles + 1)), assert_missing_frames_are_empty=True)))
    else:
        result["source instances"] = mask(np.asarray(seg.get_pixels_by_source_instance(
            uids, assert_missing_frames_are_empty=True)))
    return result


def layout(seg) -> dict[str, object]:
    """The frame structure a conversion keeps: tile size, tiling, slide geometry, pixel spacing."""
    keys = ("Rows", "Columns", "DimensionOrganizationType", "TotalPixelMatrixRows", "TotalPixelMatrixColumns",
            "ImageOrientationSlide", "FrameOfReferenceUID")
    result: dict[str, object] = {key: str(seg.get(key)) for key in keys}
    origin = seg.get("TotalPixelMatrixOriginSequence")
    if origin:
        result["origin"] = (float(origin[0].XOffsetInSlideCoordinateSystem),
                            float(origin[0].YOffsetInSlideCoordinateSystem))
    shared = seg.SharedFunctionalGroupsSequence[0]
    if "PixelMeasuresSequence" in shared:
        result["spacing"] = [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing]
    return result


def assert_same_content(original: Path, converted: Path, threshold: float | None = None) -> None:
    """``converted`` holds the segments and pixels of ``original``, as both readers see them."""
    import highdicom

    from monai_dicomseg.seg.segmentation import segread

    for read in (segread, highdicom.seg.segread):
        before, after = read(str(original)), read(str(converted))
        assert segments(after) == segments(before)
        if "TotalPixelMatrixRows" in before:
            assert layout(after) == layout(before)
        assert referenced_instances(after) == referenced_instances(before)
        expected, actual = content(before, threshold), content(after)
        assert set(expected) <= set(actual)
        for key in expected:
            assert actual[key].shape == expected[key].shape, key
            assert np.array_equal(actual[key], expected[key]), f"{read.__module__}: {key} differ"


# ------------------------------------------------------------------ SEGs without a patient volume
# Slides and CR: with --source (the referenced instance found in a folder by SOP
# Instance UID), with compression, and a PALETTE COLOR label map that keeps its palette.

FRAMEWISE = [name for name in SEG_NAMES if name.startswith(("seg_image_sm_", "seg_image_cr_"))]
SLIDE_SOURCES = ["sm_image_numbers.dcm", "sm_image_control.dcm", "sm_image_dots.dcm"]


def _source_folder(generated_corpus, folder):
    """A folder holding the slide sources and the CR image the corpus SEGs reference (plus a non-DICOM file)."""
    folder.mkdir()
    for name in SLIDE_SOURCES:
        (folder / name).write_bytes(generated_corpus.path(name).read_bytes())
    generated_corpus.path("seg_image_cr_binary.dcm")  # makes the CR source it references
    generated_corpus._source("cr_image").save_as(folder / "cr.dcm", enforce_file_format=True)
    (folder / "notes.txt").write_text("not DICOM")
    return folder


@pytest.mark.parametrize("target", ["BINARY", "LABELMAP"])
@pytest.mark.parametrize("name", FRAMEWISE)
def test_convert_with_source(generated_corpus, cli, tmp_path, name, target):
    folder = _source_folder(generated_corpus, tmp_path / "sources")
    out = tmp_path / "converted.dcm"
    original = generated_corpus.path(name)
    status, output = _convert(cli, original, out, target, ("--source", folder))
    if (name, target) in REFUSED:
        _assert_refused(status, output, out, tmp_path, REFUSED[name, target])
        return
    assert status == 0, output
    assert dciodvfy_errors(out) == []
    assert_same_content(original, out)


@pytest.mark.parametrize(("name", "target", "compress"), [
    ("seg_image_sm_dots.dcm", "LABELMAP", "rle"),
    ("seg_image_sm_dots_tiled_full.dcm", "LABELMAP", "jpegls"),
    ("seg_image_sm_control_labelmap.dcm", "LABELMAP", "rle"),
    ("seg_image_sm_control_labelmap_palette_color.dcm", "LABELMAP", "jpegls"),
])
def test_convert_recompress(generated_corpus, cli, tmp_path, name, target, compress):
    import pydicom

    from monai_dicomseg.cli._common import COMPRESSION

    out = tmp_path / "converted.dcm"
    original = generated_corpus.path(name)
    status, output = _convert(cli, original, out, target, ("--compress", compress))
    assert status == 0, output
    assert str(pydicom.dcmread(out, stop_before_pixels=True).file_meta.TransferSyntaxUID) == COMPRESSION[compress]
    assert dciodvfy_errors(out) == []
    assert_same_content(original, out)


@pytest.mark.parametrize("name", ["seg_image_sm_dots.dcm", "seg_image_cr_binary.dcm"])
def test_convert_binary_jpeg2000_of_small_frames_refused(generated_corpus, cli, tmp_path, name):
    """BINARY compresses only with JPEG 2000, which openjpeg cannot do below 32 x 32 frames (10 x 10 tiles,
    a 16 x 16 CR): a one-line refusal naming the limit, no file."""
    out = tmp_path / "converted.dcm"
    status, output = _convert(cli, generated_corpus.path(name), out, "BINARY", ("--compress", "jpeg2000"))
    _assert_refused(status, output, out, tmp_path, "needs at least 32 rows and columns")


def test_convert_cr_sets_patient_orientation(generated_corpus, cli, tmp_path):
    """A SEG without plane geometry needs Patient Orientation (PS3.3 C.7.6.1, Type 2C): the source's."""
    import pydicom

    folder = _source_folder(generated_corpus, tmp_path / "sources")
    for extra, expected in [((), ""), (("--source", folder), ["L", "F"])]:
        out = tmp_path / "converted.dcm"
        status, output = _convert(cli, generated_corpus.path("seg_image_cr_binary.dcm"), out, "BINARY",
                                  (*extra, "--overwrite"))
        assert status == 0, output
        value = pydicom.dcmread(out, stop_before_pixels=True).PatientOrientation
        assert (list(value) if expected else value) == expected


def test_labelmap_of_images_without_plane_positions(tmp_path):
    """Several CR images as one LABELMAP: frames indexed by a Frame Label dimension (C.7.6.16.2.2), valid,
    and read back per source instance by both readers (the writer refused this before)."""
    import highdicom

    import corpus_sources
    import monai_dicomseg
    from monai_dicomseg.seg.segmentation import segread

    first = corpus_sources.cr_image(seed=0)
    second = corpus_sources.cr_image(seed=1)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID"):
        second[keyword].value = first[keyword].value
    labels = np.zeros((2, 16, 16), np.uint8)
    labels[0, 2:6, 3:9], labels[1, 8:12, 1:4], labels[1, 0:2, 0:2] = 1, 2, 1
    category = monai_dicomseg.sr.CodedConcept("91723000", "SCT", "Anatomical Structure")
    kind = monai_dicomseg.sr.CodedConcept("39607008", "SCT", "Lung")
    descriptions = [monai_dicomseg.seg.SegmentDescription(
        segment_number=n, segment_label=f"Segment {n}", segmented_property_category=category,
        segmented_property_type=kind, algorithm_type="MANUAL") for n in (1, 2)]
    seg = monai_dicomseg.seg.Segmentation(
        source_images=[first, second], pixel_array=labels, segmentation_type="LABELMAP",
        segment_descriptions=descriptions, series_instance_uid=monai_dicomseg.UID(), series_number=1,
        sop_instance_uid=monai_dicomseg.UID(), instance_number=1, manufacturer="x",
        manufacturer_model_name="x", software_versions="1", device_serial_number="0")
    out = tmp_path / "labelmap.dcm"
    seg.save_as(out)
    assert [item.DimensionDescriptionLabel for item in seg.DimensionIndexSequence] == ["Frame Label"]
    frame_labels = [item.FrameContentSequence[0].FrameLabel for item in seg.PerFrameFunctionalGroupsSequence]
    assert frame_labels == ["Plane 1", "Plane 2"]
    assert dciodvfy_errors(out) == []
    uids = [first.SOPInstanceUID, second.SOPInstanceUID]
    for read in (segread, highdicom.seg.segread):
        assert np.array_equal(read(str(out)).get_pixels_by_source_instance(uids, combine_segments=True), labels)


def test_convert_palette_color_kept_with_icc_profile(generated_corpus, cli, tmp_path):
    """LABELMAP -> LABELMAP keeps a PALETTE COLOR LUT when the input has the ICC Profile it needs (C.11.15)."""
    import pydicom

    image_cms = pytest.importorskip("PIL.ImageCms")
    dataset = pydicom.dcmread(generated_corpus.path("seg_image_sm_control_labelmap_palette_color.dcm"))
    dataset.ICCProfile = image_cms.ImageCmsProfile(image_cms.createProfile("sRGB")).tobytes()
    original = tmp_path / "palette_icc.dcm"
    dataset.save_as(original)
    out = tmp_path / "converted.dcm"
    status, output = _convert(cli, original, out, "LABELMAP")
    assert status == 0, output
    written = pydicom.dcmread(out)
    assert written.PhotometricInterpretation == "PALETTE COLOR"
    for keyword in ("RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableDescriptor", "ICCProfile"):
        assert written[keyword].value == dataset[keyword].value
    assert dciodvfy_errors(out) == []
    assert_same_content(original, out)
    # Without an ICC profile (the corpus file) the palette cannot be written validly: MONOCHROME2.
    status, output = _convert(cli, generated_corpus.path("seg_image_sm_control_labelmap_palette_color.dcm"),
                              out, "LABELMAP", ("--overwrite",))
    assert status == 0, output
    assert pydicom.dcmread(out, stop_before_pixels=True).PhotometricInterpretation == "MONOCHROME2"


def test_convert_source_lacking_the_referenced_instance(generated_corpus, tmp_path):
    from monai_dicomseg.cli.convert import convert_seg
    from monai_dicomseg.errors import InputError

    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "sm_image_numbers.dcm").write_bytes(generated_corpus.path("sm_image_numbers.dcm").read_bytes())
    out = tmp_path / "converted.dcm"
    with pytest.raises(InputError, match=r"--source .* lacks 1 of the 1 instance\(s\) the SEG references"):
        convert_seg(str(generated_corpus.path("seg_image_sm_dots.dcm")), str(out), segmentation_type="BINARY",
                    source=str(folder))
    with pytest.raises(InputError, match="--source .* must be a folder of DICOM files"):
        convert_seg(str(generated_corpus.path("seg_image_sm_dots.dcm")), str(out), segmentation_type="BINARY",
                    source=str(folder / "sm_image_numbers.dcm"))
    assert not out.exists()


def test_convert_tiled_seg_referencing_no_instance(generated_corpus, tmp_path):
    import pydicom

    from monai_dicomseg.cli.convert import convert_seg
    from monai_dicomseg.errors import UnsupportedError

    dataset = pydicom.dcmread(generated_corpus.path("seg_image_sm_dots.dcm"))
    dataset.ReferencedSeriesSequence[0].ReferencedInstanceSequence = []
    broken = tmp_path / "broken.dcm"
    dataset.save_as(broken)
    with pytest.raises(UnsupportedError, match="ReferencedSeriesSequence names no source instance"):
        convert_seg(str(broken), str(tmp_path / "out.dcm"), segmentation_type="LABELMAP")


def _highdicom_fractional(source, fractions, tiled):
    """A FRACTIONAL SEG of ``source`` written by highdicom (an independent producer)."""
    import highdicom

    category = highdicom.sr.CodedConcept("91723000", "SCT", "Anatomical Structure")
    kind = highdicom.sr.CodedConcept("84640000", "SCT", "Nucleus")
    descriptions = [highdicom.seg.SegmentDescription(
        segment_number=n, segment_label=f"Segment {n}", segmented_property_category=category,
        segmented_property_type=kind, algorithm_type="MANUAL") for n in range(1, fractions.shape[-1] + 1)]
    return highdicom.seg.Segmentation(
        source_images=[source], pixel_array=fractions, segmentation_type="FRACTIONAL",
        segment_descriptions=descriptions, series_instance_uid=highdicom.UID(), series_number=1,
        sop_instance_uid=highdicom.UID(), instance_number=1, manufacturer="x", manufacturer_model_name="x",
        software_versions="1", device_serial_number="0", max_fractional_value=100,
        tile_pixel_array=tiled, omit_empty_frames=True)


@pytest.mark.parametrize("kind", ["slide", "cr"])
@pytest.mark.parametrize("target", ["BINARY", "LABELMAP"])
def test_convert_fractional_without_patient_volume(generated_corpus, cli, tmp_path, kind, target):
    """FRACTIONAL slide / CR SEGs convert with --threshold, frame-wise; overlap at the threshold -> LABELMAP refused."""
    import pydicom

    import corpus_sources

    rng = np.random.default_rng(7)
    if kind == "slide":
        source = pydicom.dcmread(generated_corpus.path("sm_image_dots.dcm"))
        shape = (1, int(source.TotalPixelMatrixRows), int(source.TotalPixelMatrixColumns), 2)
    else:
        source = corpus_sources.cr_image()
        shape = (1, int(source.Rows), int(source.Columns), 2)
    fractions = np.zeros(shape, np.float32)
    fractions[0, 3:15, 2:9, 0] = rng.uniform(0, 1, (12, 7)).round(2)
    fractions[0, 5:12, 10:16, 1] = rng.uniform(0, 1, (7, 6)).round(2)
    original = tmp_path / "fractional.dcm"
    _highdicom_fractional(source, fractions, kind == "slide").save_as(original)
    out = tmp_path / "converted.dcm"
    status, output = _convert(cli, original, out, target, ("--threshold", "0.5"))
    assert status == 0, output
    assert dciodvfy_errors(out) == []
    assert_same_content(original, out, threshold=0.5)
    # The same segments overlapping above the threshold: no label map.
    fractions[0, 3:15, 2:16, :] = 0.9
    _highdicom_fractional(source, fractions, kind == "slide").save_as(original)
    out.unlink()
    status, output = _convert(cli, original, out, target, ("--threshold", "0.5"))
    if target == "LABELMAP":
        _assert_refused(status, output, out, tmp_path, "in more than one segment")
    else:
        assert status == 0, output
        assert_same_content(original, out, threshold=0.5)


# ------------------------------------------------------------------ property: any tiling, any labels

def _slide_masks(draw_data):
    """``(slide, (H, W, S) bool masks, organization)`` of random shapes, tilings and sparse labels."""
    from hypothesis import strategies as st

    from monai_dicomseg import synthetic

    tile = (draw_data.draw(st.integers(4, 9)), draw_data.draw(st.integers(4, 9)))
    total = (draw_data.draw(st.integers(tile[0], 3 * tile[0] + 2)),
             draw_data.draw(st.integers(tile[1], 3 * tile[1] + 2)))
    segments = draw_data.draw(st.integers(1, 4))
    seed = draw_data.draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, segments + 1, total) * (rng.random(total) < 0.15)
    labels.flat[rng.integers(labels.size)] = 1  # never an empty SEG (no frames: refused, not converted)
    masks = np.stack([labels == n for n in range(1, segments + 1)], axis=-1)
    slide = synthetic.make_slide_image(total, tile, seed=seed % 7)
    organization = draw_data.draw(st.sampled_from(["TILED_SPARSE", "TILED_FULL"]))
    return slide, masks, organization


def test_convert_tiled_property(tmp_path_factory):
    """For random total/tile sizes, sparse labels and both tilings: BINARY -> LABELMAP -> BINARY keeps the
    total pixel matrix, the tile size and the dimension organisation type (our writer makes the input)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    import monai_dicomseg
    from monai_dicomseg.cli.convert import convert_seg
    from monai_dicomseg.seg.segmentation import segread

    category = monai_dicomseg.sr.CodedConcept("91723000", "SCT", "Anatomical Structure")
    kind = monai_dicomseg.sr.CodedConcept("84640000", "SCT", "Nucleus")

    @settings(max_examples=15, deadline=None)
    @given(st.data())
    def check(data):
        slide, masks, organization = _slide_masks(data)
        folder = tmp_path_factory.mktemp("tiled")
        descriptions = [monai_dicomseg.seg.SegmentDescription(
            segment_number=n, segment_label=f"Segment {n}", segmented_property_category=category,
            segmented_property_type=kind, algorithm_type="MANUAL") for n in range(1, masks.shape[-1] + 1)]
        original = folder / "binary.dcm"
        monai_dicomseg.seg.Segmentation(
            source_images=[slide], pixel_array=masks[None].astype(np.uint8), segmentation_type="BINARY",
            segment_descriptions=descriptions, series_instance_uid=monai_dicomseg.UID(), series_number=1,
            sop_instance_uid=monai_dicomseg.UID(), instance_number=1, manufacturer="x",
            manufacturer_model_name="x", software_versions="1", device_serial_number="0",
            tile_pixel_array=True, dimension_organization_type=organization,
            omit_empty_frames=organization != "TILED_FULL").save_as(original)
        labelmap, binary = folder / "labelmap.dcm", folder / "back.dcm"
        convert_seg(str(original), str(labelmap), segmentation_type="LABELMAP")
        convert_seg(str(labelmap), str(binary), segmentation_type="BINARY")
        for path in (labelmap, binary):
            converted = segread(str(path))
            assert np.array_equal(converted.get_total_pixel_matrix() != 0, masks)
            assert layout(converted) == layout(segread(str(original)))
            assert converted.number_of_segments == masks.shape[-1]

    check()
