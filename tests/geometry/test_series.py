"""get_volume_from_series against highdicom.get_volume_from_series."""
from __future__ import annotations

import highdicom
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

import monai_dicomseg as hd
from monai_dicomseg.errors import GeometryError, InputError, UnsupportedError
from monai_dicomseg.geometry.affine import slice_normal
from monai_dicomseg.geometry.series import get_volume_from_series

CT2_NAMES = ["17136", "17196", "17166"]  # a regular 3-slice subset (17106 lies far away)


def ct2(names=CT2_NAMES):
    return [get_testdata_file(f"dicomdirtests/77654033/CT2/{n}", read=True) for n in names]


def make_slice(position, pixels, orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), spacing=(0.5, 0.75),
               series="1.2.3.4", frame_of_reference="1.2.3.5", **extra) -> Dataset:
    pixels = np.asarray(pixels, dtype=np.int16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SeriesInstanceUID = series
    ds.FrameOfReferenceUID = frame_of_reference
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [float(v) for v in spacing]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = pixels.tobytes()
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return ds


def make_series(n=4, spacing=2.0, orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0), order=None, **extra):
    normal = slice_normal(orientation)
    order = range(n) if order is None else order
    return [make_slice(np.array([1.0, 2.0, 3.0]) + k * spacing * normal,
                       np.full((3, 4), k, np.int16) + np.arange(4), orientation, **extra) for k in order]


def test_ct_series_matches_highdicom():
    ours, theirs = get_volume_from_series(ct2()), highdicom.get_volume_from_series(ct2())
    np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-9)
    np.testing.assert_array_equal(ours.array, theirs.array)
    assert ours.dtype == np.float64
    assert ours.frame_of_reference_uid == theirs.frame_of_reference_uid
    assert hd.get_volume_from_series is get_volume_from_series


def test_ct_series_rescale_is_applied():
    datasets = ct2()
    volume = get_volume_from_series(datasets, apply_modality_transform=False, dtype=np.int32)
    rescaled = get_volume_from_series(datasets)
    np.testing.assert_array_equal(rescaled.array, volume.array * 1.0 - 1024.0)
    assert volume.dtype == np.int32


def test_ct_series_with_gap_is_rejected():
    datasets = [pydicom.dcmread(f) for f in get_testdata_files("dicomdirtests/77654033/CT2/*")]
    with pytest.raises(GeometryError, match="missing|not regularly spaced"):
        get_volume_from_series(datasets)


def test_synthetic_shuffled_oblique_series_matches_highdicom():
    orientation = (0.6, 0.8, 0.0, 0.0, 0.0, -1.0)
    datasets = make_series(5, 1.5, orientation, order=[3, 0, 4, 1, 2], RescaleSlope=2, RescaleIntercept=-3)
    ours, theirs = get_volume_from_series(datasets), highdicom.get_volume_from_series(datasets)
    np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-9)
    np.testing.assert_array_equal(ours.array, theirs.array)
    np.testing.assert_array_equal(ours.array[:, 0, 0], 2 * np.arange(5) - 3)
    assert ours.spacing_between_slices == pytest.approx(1.5)


def test_real_world_value_map_takes_precedence():
    item = Dataset()
    item.RealWorldValueSlope, item.RealWorldValueIntercept = 0.5, 10.0
    datasets = make_series(2, RescaleSlope=2, RescaleIntercept=0, RealWorldValueMappingSequence=[item])
    volume = get_volume_from_series(datasets)
    np.testing.assert_array_equal(volume.array[0, 0], 0.5 * np.arange(4) + 10.0)
    modality = get_volume_from_series(datasets, apply_real_world_transform=False)
    np.testing.assert_array_equal(modality.array[0, 0], 2.0 * np.arange(4))


def test_single_dataset_uses_spacing_between_slices():
    volume = get_volume_from_series(make_series(1, SpacingBetweenSlices=3.0))
    assert volume.spatial_shape == (1, 3, 4)
    assert volume.spacing_between_slices == pytest.approx(3.0)


def _with(datasets, index, **changes):
    for keyword, value in changes.items():
        if value is None:
            delattr(datasets[index], keyword)
        else:
            setattr(datasets[index], keyword, value)
    return datasets


@pytest.mark.parametrize("datasets, match", [
    (lambda: _with(make_series(3), 1, PixelSpacing=[0.5, 0.5]), "PixelSpacing of dataset 0"),
    (lambda: _with(make_series(3), 2, SeriesInstanceUID="9.9"), "SeriesInstanceUID"),
    (lambda: _with(make_series(3), 2, FrameOfReferenceUID="9.9"), "FrameOfReferenceUID"),
    (lambda: _with(make_series(3), 1, ImageOrientationPatient=[1, 0, 0, 0, 1, 0]), "mixed ImageOrientationPatient"),
    (lambda: _with(make_series(3), 1, ImagePositionPatient=None), "dataset 1 has no ImagePositionPatient"),
    (lambda: _with(make_series(3), 0, NumberOfFrames=2), "multi-frame"),
    (lambda: make_series(3) + make_series(1), "same distance along the slice normal"),
    (lambda: [d for i, d in enumerate(make_series(5)) if i != 2], "missing"),
    (lambda: make_series(2) + make_series(3, spacing=2.5)[2:], "not regularly spaced"),
], ids=["pixel-spacing", "series", "frame-of-reference", "orientation", "position", "multi-frame",
        "duplicate", "gap", "irregular"])
def test_series_rejects_non_volumes(datasets, match):
    with pytest.raises(GeometryError, match=match):
        get_volume_from_series(datasets())


def test_series_rejects_bad_arguments():
    with pytest.raises(InputError, match="at least one dataset"):
        get_volume_from_series([])
    with pytest.raises(InputError, match="cannot both be True"):
        get_volume_from_series(make_series(2), apply_modality_transform=True, apply_real_world_transform=True)
    with pytest.raises(InputError, match="no RealWorldValueMappingSequence"):
        get_volume_from_series(make_series(2), apply_real_world_transform=True)
    with pytest.raises(InputError, match="no RescaleSlope"):
        get_volume_from_series(make_series(2), apply_modality_transform=True)
    lut = Dataset()
    with pytest.raises(UnsupportedError, match="ModalityLUTSequence"):
        get_volume_from_series(make_series(2, ModalityLUTSequence=[lut]))
