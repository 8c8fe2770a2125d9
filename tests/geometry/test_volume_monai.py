"""``Volume.to_monai()`` / ``Volume.from_monai()`` (issue 22; highdicom pull request #454's signatures).

Checked against: the volume's own array and affine (round trips, every
orientation), ``LoadDicomSeries`` on the same series (``axis_order="monai"``
exactly; the default order after reorienting, as the PR's own tests compare
with ITKReader), MONAI's ``LoadImage(reader="PydicomReader")`` read back into a
volume equal to highdicom's ``get_volume_from_series``,
and highdicom's ``Volume.to_monai`` when the installed highdicom has it (0.28.2 has not).
"""
from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor, PydicomReader
from monai.transforms import LoadImage, Orientation

import monai_dicomseg as mds
from monai_dicomseg import synthetic
from monai_dicomseg.errors import GeometryError, InputError, InputTypeError, MissingDependencyError
from monai_dicomseg.geometry.volume import MonaiAxisOrder, Volume, monai_metadata
from monai_dicomseg.io.source_series import monai_affine_from_lps, to_monai_array
from monai_dicomseg.transforms.load_series import LoadDicomSeries

highdicom = pytest.importorskip("highdicom")

ORIENTATIONS = ["LPH", "RAF", "HLP", "FPR", "PLF", "ARH"]


def _volume(shape=(5, 6, 7), orientation: str | None = None, channels: int = 0, dtype=np.int16) -> Volume:
    rng = np.random.default_rng(sum(shape) + channels)
    array = rng.integers(0, 1000, (*shape, channels) if channels else shape).astype(dtype)
    volume = Volume.from_attributes(
        array=array, image_position=(-12.5, 30.25, 101.0), image_orientation=(0.96, 0.28, 0.0, -0.28, 0.96, 0.0),
        pixel_spacing=(0.8, 0.7), spacing_between_slices=2.5, coordinate_system="PATIENT",
        frame_of_reference_uid="1.2.826.0.1.3680043.8.498.77",
        channels={"SegmentNumber": list(range(1, channels + 1))} if channels else None)
    return volume.to_patient_orientation(orientation) if orientation else volume


@pytest.fixture(scope="module")
def ct_series() -> list[pydicom.Dataset]:
    return synthetic.make_ct_series((5, 16, 20), seed=3)


@pytest.fixture(scope="module")
def ct_folder(ct_series: list[pydicom.Dataset], tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("monai_series")
    synthetic.write_series(ct_series, folder)
    return folder


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("orientation", [None, *ORIENTATIONS])
@pytest.mark.parametrize("axis_order", ["volume", "monai"])
@pytest.mark.parametrize("space", ["RAS", "LPS"])
def test_round_trip(orientation: str | None, axis_order: str, space: str) -> None:
    volume = _volume(orientation=orientation)
    tensor = volume.to_monai(space=space, axis_order=axis_order)
    back = Volume.from_monai(tensor, axis_order=axis_order)
    np.testing.assert_array_equal(back.array, volume.array)
    assert back.dtype == volume.dtype
    np.testing.assert_allclose(back.affine, volume.affine, atol=1e-9)
    assert back.frame_of_reference_uid == volume.frame_of_reference_uid


@pytest.mark.parametrize("orientation", [None, *ORIENTATIONS])
def test_default_keeps_the_volume_axes_as_highdicom(orientation: str | None) -> None:
    """PR #454: same array, affine = get_affine(space), metadata as the PR writes it."""
    volume = _volume(orientation=orientation)
    tensor = volume.to_monai()
    assert isinstance(tensor, MetaTensor)
    np.testing.assert_array_equal(tensor.numpy(), volume.array)
    np.testing.assert_allclose(tensor.affine.numpy(), volume.get_affine("RAS"), atol=1e-12)
    meta = tensor.meta
    assert meta["space"] == "RAS"
    assert meta["spatial_shape"] == volume.spatial_shape
    assert meta["spacing"] == volume.spacing
    assert math.isnan(meta["original_channel_dim"])
    np.testing.assert_allclose(meta["original_affine"], volume.get_affine("RAS"))
    lps = volume.to_monai(space="LPS")
    assert lps.meta["space"] == "LPS"
    np.testing.assert_allclose(lps.affine.numpy(), volume.affine, atol=1e-12)


def test_voxel_positions_agree_between_orders() -> None:
    """Both orders put every voxel at the same RAS position (they differ only in indexing)."""
    volume = _volume(orientation="PLF")
    for order in MonaiAxisOrder:
        tensor = volume.to_monai(axis_order=order)
        index = np.array([1, 2, 3, 1.0])
        position = tensor.affine.numpy() @ index
        value = tensor.numpy()[1, 2, 3]
        lps = position[:3] * np.array([-1, -1, 1])
        f, r, c = np.rint(volume.map_reference_to_indices(lps[None])[0]).astype(int)
        assert volume.array[f, r, c] == value


def test_channel_axis_and_ensure_channel_first() -> None:
    volume = _volume(channels=3, dtype=np.uint8)
    tensor = volume.to_monai()
    assert tuple(tensor.shape) == (5, 6, 7, 3) and tensor.meta["original_channel_dim"] == -1
    first = volume.to_monai(ensure_channel_first=True)
    assert tuple(first.shape) == (3, 5, 6, 7)
    np.testing.assert_array_equal(first.numpy(), np.moveaxis(volume.array, -1, 0))
    back = Volume.from_monai(first, channels={"SegmentNumber": [1, 2, 3]})
    np.testing.assert_array_equal(back.array, volume.array)
    assert back.get_channel_values("SegmentNumber") == [1, 2, 3]
    last = Volume.from_monai(tensor, channel_dim=-1, channels={"SegmentNumber": [1, 2, 3]})
    np.testing.assert_array_equal(last.array, volume.array)
    assert tuple(_volume().to_monai(ensure_channel_first=True).shape) == (1, 5, 6, 7)


def test_a_single_channel_is_dropped_without_channels() -> None:
    volume = _volume()
    back = Volume.from_monai(volume.to_monai(ensure_channel_first=True))
    assert back.shape == volume.shape
    np.testing.assert_array_equal(back.array, volume.array)


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int16, np.uint16, np.float32, np.float64])
def test_dtypes_survive(dtype: type) -> None:
    volume = _volume(dtype=np.uint8).astype(dtype)
    back = Volume.from_monai(volume.to_monai())
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back.array, volume.array)


def test_the_tensor_does_not_share_memory() -> None:
    volume = _volume()
    tensor = volume.to_monai()
    tensor[0, 0, 0] = -7
    assert volume.array[0, 0, 0] != -7
    back = Volume.from_monai(tensor)
    tensor[0, 0, 1] = -9
    assert back.array[0, 0, 1] != -9


def test_metadata_function_is_numpy_only() -> None:
    meta = monai_metadata(_volume(orientation="RAF"), "LPS")
    assert meta["space"] == "LPS" and meta["FrameOfReferenceUID"] == "1.2.826.0.1.3680043.8.498.77"
    assert all(isinstance(v, (np.ndarray, tuple, str, float, int)) for v in meta.values())


def test_convert_to_ras_alias() -> None:
    """The ``convert_to_ras`` spelling of the PR's review is an alias of ``space``."""
    volume = _volume()
    assert volume.to_monai(convert_to_ras=False).meta["space"] == "LPS"
    assert volume.to_monai(convert_to_ras=True).meta["space"] == "RAS"
    with pytest.raises(InputError, match="give space or convert_to_ras, not both"):
        volume.to_monai(space="LPS", convert_to_ras=True)
    with pytest.raises(InputError, match="did you mean convert_to_ras=False"):
        volume.to_monai(False)


def test_frame_of_reference_argument_wins_over_metadata() -> None:
    tensor = _volume().to_monai()
    assert Volume.from_monai(tensor, frame_of_reference_uid="1.2.3").frame_of_reference_uid == "1.2.3"
    del tensor.meta["FrameOfReferenceUID"]
    assert Volume.from_monai(tensor).frame_of_reference_uid is None


def test_metadata_space_is_honoured() -> None:
    """An LPS tensor (MONAI readers with affine_lps_to_ras=False) and one without 'space' (RAS)."""
    volume = _volume(orientation="FPR")
    tensor = volume.to_monai(space="LPS")
    np.testing.assert_allclose(Volume.from_monai(tensor).affine, volume.affine, atol=1e-9)
    plain = MetaTensor(torch.from_numpy(volume.array.copy()), affine=torch.as_tensor(volume.get_affine("RAS")))
    plain.meta.pop("space", None)
    np.testing.assert_allclose(Volume.from_monai(plain).affine, volume.affine, atol=1e-9)


def test_monai_orientation_transform_agrees() -> None:
    """MONAI's own Orientation('RAS') on either order gives the same tensor and affine."""
    volume = _volume(orientation="HLP")
    results = [Orientation(axcodes="RAS", labels=None)(volume.to_monai(ensure_channel_first=True, axis_order=order))
               for order in MonaiAxisOrder]
    np.testing.assert_array_equal(results[0].numpy(), results[1].numpy())
    np.testing.assert_allclose(results[0].affine.numpy(), results[1].affine.numpy(), atol=1e-9)


# --------------------------------------------------------------------------- against loaders and highdicom


def test_series_volume_equals_load_dicom_series(ct_series: list[pydicom.Dataset], ct_folder: Path) -> None:
    """``mds.get_volume_from_series(...).to_monai(axis_order="monai")`` is what LoadDicomSeries loads."""
    volume = mds.get_volume_from_series(ct_series)
    loaded = LoadDicomSeries(dtype=volume.dtype)(str(ct_folder))
    tensor = volume.to_monai(ensure_channel_first=True, axis_order="monai")
    assert tuple(tensor.shape) == tuple(loaded.shape)
    np.testing.assert_array_equal(tensor.numpy(), loaded.numpy())
    np.testing.assert_allclose(tensor.affine.numpy(), loaded.affine.numpy(), atol=1e-9)
    np.testing.assert_allclose(tensor.affine.numpy(), monai_affine_from_lps(volume.affine, volume.spatial_shape[0]))
    np.testing.assert_array_equal(tensor.numpy()[0], to_monai_array(volume.array))
    assert tensor.meta["FrameOfReferenceUID"] == loaded.meta["FrameOfReferenceUID"]


def test_default_order_equals_load_dicom_series_after_reorienting(ct_series: list[pydicom.Dataset],
                                                                   ct_folder: Path) -> None:
    """How PR #454's tests compare with ITKReader: reorient the volume to the loader's orientation."""
    loaded = LoadDicomSeries(dtype=np.float64, ensure_channel_first=False)(str(ct_folder))
    volume = mds.get_volume_from_series(ct_series)
    loaded_lps = Volume.from_monai(loaded).get_closest_patient_orientation()
    tensor = volume.to_patient_orientation(loaded_lps).to_monai()
    np.testing.assert_array_equal(tensor.numpy(), loaded.numpy())
    np.testing.assert_allclose(tensor.affine.numpy(), loaded.affine.numpy(), atol=1e-9)


def test_from_load_dicom_series_is_highdicoms_series_volume(ct_series: list[pydicom.Dataset],
                                                            ct_folder: Path) -> None:
    loaded = LoadDicomSeries(dtype=np.float64)(str(ct_folder))
    theirs = highdicom.get_volume_from_series(ct_series)
    ours = Volume.from_monai(loaded, axis_order="monai")
    np.testing.assert_array_equal(ours.array, theirs.array)
    np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-9)
    assert ours.frame_of_reference_uid == ct_series[0].FrameOfReferenceUID


def test_from_pydicom_reader_positions_equal_highdicom(ct_series: list[pydicom.Dataset], ct_folder: Path) -> None:
    """MONAI's own LoadImage(PydicomReader): every voxel lands where highdicom's volume has it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tensor = LoadImage(reader=PydicomReader(), image_only=True)(str(ct_folder))
    theirs = highdicom.get_volume_from_series(ct_series)
    reference = Volume(theirs.array, theirs.affine, "PATIENT")
    exact = Volume.from_monai(tensor, axis_order="monai")
    np.testing.assert_allclose(exact.affine, theirs.affine, atol=1e-6)
    np.testing.assert_allclose(exact.array, theirs.array, rtol=1e-6)
    as_is = Volume.from_monai(tensor).match_orientation(reference)
    np.testing.assert_allclose(as_is.affine, theirs.affine, atol=1e-6)
    np.testing.assert_allclose(as_is.array, theirs.array, rtol=1e-6)


def test_seg_volume_round_trip(generated_corpus) -> None:
    """A SEG volume with a SegmentNumber channel axis (two overlapping segments)."""
    volume = mds.seg.segread(generated_corpus / "seg_image_ct_binary_overlap.dcm").get_volume()
    tensor = volume.to_monai(ensure_channel_first=True)
    assert tuple(tensor.shape) == (2, *volume.spatial_shape)
    back = Volume.from_monai(tensor, channels={"SegmentNumber": [1, 2]})
    np.testing.assert_array_equal(back.array, volume.array)
    np.testing.assert_allclose(back.affine, volume.affine, atol=1e-9)


# --------------------------------------------------------------------------- refusals


def test_to_monai_refusals() -> None:
    with pytest.raises(InputError, match="at most one channel axis; this volume has 2"):
        Volume(np.zeros((2, 3, 4, 1, 1)), np.eye(4), "PATIENT",
               channels={"SegmentNumber": [1], "OpticalPathIdentifier": ["a"]}).to_monai()
    with pytest.raises(GeometryError, match="to_monai needs the PATIENT coordinate system"):
        Volume(np.zeros((1, 3, 4)), np.eye(4), "SLIDE").to_monai()
    with pytest.raises(InputError, match="space must be 'RAS' or 'LPS'"):
        _volume().to_monai(space="RAI")
    with pytest.raises(InputError, match="axis_order"):
        _volume().to_monai(axis_order="itk")


def test_from_monai_refusals() -> None:
    tensor = _volume().to_monai()
    with pytest.raises(InputTypeError, match="must be a monai.data.MetaTensor; got ndarray"):
        Volume.from_monai(np.zeros((2, 3, 4)))
    with pytest.raises(InputError, match="needs the PATIENT coordinate system"):
        Volume.from_monai(tensor, coordinate_system="SLIDE")
    with pytest.raises(InputError, match="3 spatial axes and at most one channel axis"):
        Volume.from_monai(MetaTensor(torch.zeros((1, 1, 2, 3, 4))))
    with pytest.raises(InputError, match="3 spatial axes and at most one channel axis"):
        Volume.from_monai(MetaTensor(torch.zeros((3, 4))))
    with pytest.raises(InputError, match="has 2 channels"):
        Volume.from_monai(MetaTensor(torch.zeros((2, 3, 4, 5))))
    with pytest.raises(InputError, match="channel_dim must be an int"):
        Volume.from_monai(MetaTensor(torch.zeros((1, 3, 4, 5))), channel_dim=4)
    with pytest.raises(InputError, match=r'meta\["space"\] must be'):
        bad = _volume().to_monai()
        bad.meta["space"] = "XYZ"
        Volume.from_monai(bad)
    batch = MetaTensor(torch.zeros((1, 2, 3, 4)))
    batch.is_batch = True
    with pytest.raises(InputError, match="is a batch"):
        Volume.from_monai(batch)


def test_boundary_of_the_channel_rule() -> None:
    """A 4D tensor: 1 channel without `channels` is dropped, 2 channels need them."""
    assert Volume.from_monai(MetaTensor(torch.zeros((1, 3, 4, 5)))).shape == (3, 4, 5)
    two = Volume.from_monai(MetaTensor(torch.zeros((2, 3, 4, 5))), channels={"SegmentNumber": [1, 2]})
    assert two.shape == (3, 4, 5, 2)


def test_missing_monai_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    volume = _volume()
    tensor = volume.to_monai()
    monkeypatch.setitem(sys.modules, "monai.data", None)
    with pytest.raises(MissingDependencyError, match="'monai' package"):
        volume.to_monai()
    with pytest.raises(MissingDependencyError, match="'monai' package"):
        Volume.from_monai(tensor)
