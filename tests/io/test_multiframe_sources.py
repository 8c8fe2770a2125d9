"""Multi-frame source series (Enhanced / Legacy Converted Enhanced): loaded where highdicom puts each pixel.

Independent producers: highdicom's ``LegacyConvertedEnhancedCTImage`` / ``...MRImage`` built from our
synthetic single-frame series (labels encoded in the CT numbers), highdicom's ``Volume`` for pydicom-data's
Enhanced CT, highdicom's SEG writer for SEGs referencing source frames, highdicom's reader for ours.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

import highdicom as hd
from monai_dicomseg.errors import GeometryError
from monai_dicomseg.io.source_series import from_monai_array, load_source_geometry, load_source_series
from monai_dicomseg.io.writer import DicomSegWriter
from monai_dicomseg.synthetic import make_ct_series, make_ellipsoid_labels, make_enhanced_ct
from monai_dicomseg.transforms.load import LoadDicomSegd
from monai_dicomseg.transforms.load_series import LoadDicomSeries, LoadDicomSeriesd
from oracles import dciodvfy_errors

SHAPE = (6, 24, 28)


def _labels(seed: int = 0) -> np.ndarray:
    return make_ellipsoid_labels(SHAPE, 3, seed)


def _legacy(series: list, kind: str = "CT") -> pydicom.Dataset:
    if kind == "MR":  # same pixels and geometry, MR header
        for ds in series:
            ds.SOPClassUID = pydicom.uid.MRImageStorage
            ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.MRImageStorage
            ds.Modality = "MR"
            ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "SE", "NONE", "", "3D"
            ds.EchoTime, ds.RepetitionTime, ds.EchoTrainLength = 10, 500, 1
            ds.MagneticFieldStrength, ds.ImagedNucleus = 3, "1H"
    builder = hd.legacy.LegacyConvertedEnhancedMRImage if kind == "MR" else hd.legacy.LegacyConvertedEnhancedCTImage
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return builder(series, series_instance_uid=hd.UID(), series_number=9, sop_instance_uid=hd.UID(),
                       instance_number=1)


def _save(ds: pydicom.Dataset, path: Path) -> str:
    ds.save_as(path, enforce_file_format=True)
    return str(path)


@pytest.mark.parametrize("kind", ["CT", "MR"])
def test_legacy_converted_loads_like_the_single_frame_series(tmp_path, kind):
    labels = _labels()
    series = make_ct_series(SHAPE, labels=labels, orientation="oblique", shuffle=True)
    single = load_source_series(series)
    path = _save(_legacy(series, kind), tmp_path / "lce.dcm")
    multi = load_source_series(path)
    np.testing.assert_array_equal(multi.volume.array, single.volume.array)
    np.testing.assert_allclose(multi.geometry.affine, single.geometry.affine, atol=1e-6)
    assert multi.is_multiframe and len(multi.datasets) == 1 and multi.filenames == [path]
    assert [frame for _, frame in multi.frame_references] == list(range(1, SHAPE[0] + 1))
    np.testing.assert_allclose(load_source_geometry(path).geometry.affine, single.geometry.affine, atol=1e-6)
    # the MONAI loader: same tensor as from the single-frame series
    image = LoadDicomSeries()(path)
    folder = tmp_path / "single"
    folder.mkdir()
    for ds in series:
        ds.save_as(folder / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
    reference = LoadDicomSeries()(str(folder))
    np.testing.assert_array_equal(np.asarray(image), np.asarray(reference))
    np.testing.assert_allclose(np.asarray(image.affine), np.asarray(reference.affine), atol=1e-6)
    assert image.meta["multiframe"] and not reference.meta["multiframe"]
    assert image.meta["source_volume"] == "" and image.meta["source_volumes"] == 1


def test_pydicom_enhanced_ct_where_highdicom_volume_puts_each_pixel():
    path = get_testdata_file("eCT_Supplemental.dcm")
    expected = hd.imread(path).get_volume()
    loaded = load_source_series(path, dtype=np.float64)
    np.testing.assert_array_equal(loaded.volume.array, expected.array)
    np.testing.assert_allclose(loaded.geometry.affine, expected.affine, atol=1e-9)
    image = LoadDicomSeries(space="LPS", dtype=np.float64)(path)
    np.testing.assert_array_equal(from_monai_array(np.asarray(image[0])), expected.array)


def test_enhanced_mr_without_plane_geometry_is_refused_in_words():
    """pydicom-data's emri_small.dcm has no functional groups: highdicom cannot place it either."""
    path = get_testdata_file("emri_small.dcm")
    with pytest.raises(RuntimeError):
        hd.imread(path).get_volume()
    with pytest.raises(GeometryError, match=r"multi-frame source instance 0 \(Enhanced MR Image Storage, 10 frames\)"
                       r" has frame\(s\) \[1, 2, 3, 4, 5\] without Plane Position"):
        load_source_series(path)


SCRAMBLE = [3, 0, 5, 1, 4, 2]


def _scrambled_enhanced_ct(labels: np.ndarray) -> pydicom.Dataset:
    """make_enhanced_ct with its frames stored out of slice order: stored frame j is slice SCRAMBLE[j]."""
    ds = make_enhanced_ct(SHAPE, labels=labels)
    pixels = ds.pixel_array
    items = list(ds.PerFrameFunctionalGroupsSequence)
    ds.PerFrameFunctionalGroupsSequence = pydicom.Sequence([items[k] for k in SCRAMBLE])
    ds.PixelData = np.ascontiguousarray(pixels[SCRAMBLE]).tobytes()
    return ds


def test_enhanced_ct_stored_out_of_slice_order():
    labels = _labels(1)
    ds = _scrambled_enhanced_ct(labels)
    loaded = load_source_series([ds])
    single = load_source_series(make_ct_series(SHAPE, labels=labels,
                                               frame_of_reference_uid=str(ds.FrameOfReferenceUID)))
    np.testing.assert_array_equal(loaded.volume.array, single.volume.array)
    np.testing.assert_allclose(loaded.geometry.affine, single.geometry.affine, atol=1e-6)
    # make_enhanced_ct stacks labels[k] against the volume's frame axis: volume slice k is labels[F - 1 - k]
    assert [frame for _, frame in loaded.frame_references] == [SCRAMBLE.index(k) + 1 for k in range(SHAPE[0])][::-1]
    assert set(loaded.segmentation_sources()) == {"source_images", "plane_positions", "plane_orientation",
                                                  "pixel_measures"}


def test_highdicom_seg_referencing_frames_loads_voxel_for_voxel(tmp_path):
    labels = _labels(2)
    lce = _legacy(make_ct_series(SHAPE, labels=labels, orientation="sagittal"))
    image_path = _save(lce, tmp_path / "lce.dcm")
    series = load_source_series(image_path)
    expected = labels
    order = [frame - 1 for _, frame in series.frame_references]  # volume slice k is frame order[k] + 1
    seg = hd.seg.Segmentation(
        source_images=[lce], pixel_array=expected[np.argsort(order)],
        segmentation_type="BINARY", segment_descriptions=_descriptions(3), series_instance_uid=hd.UID(),
        series_number=5, sop_instance_uid=hd.UID(), instance_number=1, manufacturer="test",
        manufacturer_model_name="test", software_versions="1", device_serial_number="1")
    assert seg.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0] \
        .ReferencedFrameNumber
    seg_path = _save(seg, tmp_path / "seg.dcm")
    out = _load_pair(image_path, seg_path)
    np.testing.assert_array_equal(from_monai_array(np.asarray(out["label"][0])), expected)


def _descriptions(n: int) -> list:
    algorithm = hd.AlgorithmIdentificationSequence(
        name="test", family=hd.sr.CodedConcept("123110", "DCM", "Artificial Intelligence"), version="1")
    return [hd.seg.SegmentDescription(
        segment_number=k, segment_label=f"s{k}",
        segmented_property_category=hd.sr.CodedConcept("91723000", "SCT", "Anatomical Structure"),
        segmented_property_type=hd.sr.CodedConcept("10200004", "SCT", "Liver"),
        algorithm_type="AUTOMATIC", algorithm_identification=algorithm) for k in range(1, n + 1)]


def _load_pair(image: str, label: str) -> dict:
    return LoadDicomSegd("label", ref_key="image")(LoadDicomSeriesd("image")({"image": image, "label": label}))


@pytest.mark.parametrize("scramble", [False, True], ids=["frame_order", "scrambled_frames"])
def test_writer_on_multiframe_source_reads_back_by_source_frame(tmp_path, scramble):
    labels = _labels(3)
    if scramble:
        source = _scrambled_enhanced_ct(labels)
    else:
        source = _legacy(make_ct_series(SHAPE, labels=labels))
    image_path = _save(source, tmp_path / "mf.dcm")
    image = LoadDicomSeries()(image_path)
    series = load_source_series(image_path)
    truth = make_ellipsoid_labels(SHAPE, 3, 3)  # in volume (slice) order
    writer = DicomSegWriter(labels=["liver", "spleen", "kidney"], segmentation_type="BINARY")
    from monai_dicomseg.io.source_series import to_monai_array

    writer.set_data_array(to_monai_array(truth)[None].astype(np.uint8), channel_dim=0)
    writer.set_metadata(dict(image.meta, affine=image.affine))
    out = writer.write(tmp_path / "out" / "seg.dcm")
    read = hd.seg.segread(out)
    frames = [frame for _, frame in series.frame_references]
    pixels = read.get_pixels_by_source_frame(  # pixels[k]: source frame frames[k], i.e. volume slice k
        source_sop_instance_uid=str(source.SOPInstanceUID), source_frame_numbers=frames,
        combine_segments=True, assert_missing_frames_are_empty=True)
    np.testing.assert_array_equal(pixels, truth)
    assert dciodvfy_errors(out) == []
    loaded = _load_pair(image_path, str(out))
    np.testing.assert_array_equal(from_monai_array(np.asarray(loaded["label"][0])), truth)
