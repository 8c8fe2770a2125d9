"""Gantry-tilted (sheared) series: loaded exactly with a sheared affine, SEGs on it, written back on it.

The tilted series is built from :func:`monai_dicomseg.synthetic.make_ct_series`
by shifting ImagePositionPatient in-plane by ``k * spacing * tan(15°)`` per
slice (a CT gantry tilted about the patient's left-right axis). Truth comes from
the raw DICOM attributes (:func:`monai_cases.truth_on_grid`); SEGs are written
by highdicom, an independent producer.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from monai_dicomseg import synthetic
from monai_dicomseg.errors import GeometryError, InputError
from monai_dicomseg.geometry.affine import check_affine, shear_angle
from monai_dicomseg.geometry.series import get_volume_from_series
from monai_dicomseg.geometry.sheared import ShearedVolume, ShearedVolumeGeometry
from monai_dicomseg.geometry.slice_grid import plan_slice_grid
from monai_dicomseg.geometry.tolerances import SHEAR_DRIFT_TOLERANCE_MM
from monai_dicomseg.geometry.volume import Volume
from monai_dicomseg.io.source_series import load_source_geometry, load_source_series
from monai_cases import highdicom_binary_seg, truth_on_grid
from oracles import dciodvfy_errors

SHAPE = (8, 24, 28)
SPACING = (2.5, 0.8, 0.7)
TILT = 15.0
AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def tilted_series(folder: Path, tilt: float = TILT, shape=SHAPE, seed: int = 0):
    """Write a tilted CT series; return ``(datasets, labels)`` in generation order."""
    labels = synthetic.make_ellipsoid_labels(shape, n_labels=3, seed=seed)
    for k in range(shape[0]):  # a marker of length k + 1 in row 0: every slice's pixels differ
        labels[k, 0, : k + 1] = 1
    datasets = synthetic.make_ct_series(shape=shape, spacing=SPACING, labels=labels, seed=seed)
    shift = SPACING[0] * np.tan(np.radians(tilt))
    column = np.asarray(datasets[0].ImageOrientationPatient[3:], dtype=float)
    for k, ds in enumerate(datasets):
        position = np.asarray(ds.ImagePositionPatient, dtype=float) + k * shift * column
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
    synthetic.write_series(datasets, folder)
    return datasets, labels




@pytest.fixture()
def tilted(tmp_path):
    datasets, labels = tilted_series(tmp_path / "series")
    return tmp_path, datasets, labels


# ----------------------------------------------------------------------------- geometry


def test_plan_slice_grid_measures_the_tilt():
    z = np.arange(6) * 2.5
    positions = np.stack([np.zeros(6), z * np.tan(np.radians(TILT)), z], axis=1)
    grid = plan_slice_grid(positions[::-1], AXIAL)
    assert grid.kind == "source" and grid.sheared
    assert grid.tilt_degrees == pytest.approx(TILT, abs=1e-9)
    assert grid.spacing == pytest.approx(2.5)
    affine = grid.affine(AXIAL, (0.8, 0.7))
    assert shear_angle(affine) == pytest.approx(TILT)
    # each slice k of the grid is at origin + k * step: the input positions, sorted along the normal
    np.testing.assert_allclose(affine[:3, 3] + np.arange(6)[:, None] * affine[:3, 0],
                               positions[::-1][grid.source_slices], atol=1e-9)


@pytest.mark.parametrize("drift, sheared", [(0.5 * SHEAR_DRIFT_TOLERANCE_MM, False),
                                            (3.0 * SHEAR_DRIFT_TOLERANCE_MM, True)])
def test_shear_drift_tolerance_both_sides(drift, sheared):
    positions = np.stack([np.linspace(0, drift, 5), np.zeros(5), np.arange(5) * 2.0], axis=1)
    grid = plan_slice_grid(positions, AXIAL)
    assert grid.sheared is sheared
    if not sheared:  # the step is the normal times the spacing, exactly: no in-plane part
        np.testing.assert_array_equal(grid.step[:2], [0.0, 0.0])
        assert abs(grid.step[2]) == pytest.approx(2.0)
    else:
        assert np.linalg.norm(grid.step[:2]) * 4 == pytest.approx(drift)


def test_slice_off_the_line_is_refused():
    z = np.arange(6) * 2.5
    positions = np.stack([np.zeros(6), z * np.tan(np.radians(TILT)), z], axis=1)
    positions[3, 0] += 1.0  # one slice moved sideways: no tilt explains it
    with pytest.raises(GeometryError, match=r"slice 2 \(InstanceNumber 4\) .* offset in-plane by 0\.8\d+ mm from the line"):
        plan_slice_grid(positions, AXIAL, slice_names=[f"InstanceNumber {k + 1}" for k in range(6)])
    positions[3, 0] -= 1.0 - 0.01  # 0.01 mm off the line: within the tolerance, loaded as the tilted stack
    assert plan_slice_grid(positions, AXIAL).tilt_degrees == pytest.approx(TILT, abs=0.01)


def test_sheared_affines_need_the_sheared_classes():
    z = np.arange(4) * 2.5
    grid = plan_slice_grid(np.stack([np.zeros(4), z * 0.3, z], axis=1), AXIAL)
    affine = grid.affine(AXIAL, (1.0, 1.0))
    with pytest.raises(InputError, match="mutually orthogonal"):
        Volume(np.zeros((4, 3, 3)), affine, "PATIENT")
    volume = ShearedVolume(np.zeros((4, 3, 3)), affine, "PATIENT")
    assert volume.tilt_degrees == pytest.approx(np.degrees(np.arctan(0.3)))
    assert volume.spacing_between_slices == pytest.approx(2.5)
    assert isinstance(volume.get_geometry(), ShearedVolumeGeometry)
    assert isinstance(volume[1:3], ShearedVolume) and volume.flip_spatial(0).tilt_degrees == volume.tilt_degrees
    flat = affine.copy()
    flat[:3, 0] = [0.0, 3.0, 0.01]  # the slice step (almost) in the image plane
    with pytest.raises(InputError, match="lies \\(almost\\) in the image plane"):
        check_affine(flat, allow_shear=True)
    skew = affine.copy()
    skew[:3, 2] = [1.0, 0.5, 0.0]  # in-plane axes not orthogonal: never accepted
    with pytest.raises(InputError, match="columns 1 and 2 must be non-zero and orthogonal"):
        check_affine(skew, allow_shear=True)


def test_get_volume_from_series_refuses_tilt_like_highdicom(tilted):
    """``get_volume_from_series`` keeps highdicom's contract (orthogonal volumes) and names the tilt."""
    import highdicom as hd

    _, datasets, _ = tilted
    with pytest.raises(GeometryError, match="a tilt of 15.0\u00b0 .*LoadDicomSeries"):
        get_volume_from_series(datasets)
    with pytest.raises(ValueError):
        hd.get_volume_from_series(datasets)


# ----------------------------------------------------------------------------- loading


def _find_slice(image: np.ndarray, ds) -> int:
    """Slice ``s`` of a ``(C, R, S)`` image holding ``ds``'s pixels (CT numbers)."""
    hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    matches = [s for s in range(image.shape[2]) if np.array_equal(image[:, :, s].T, hu)]
    assert len(matches) == 1
    return matches[0]


@pytest.mark.parametrize("space", ["RAS", "LPS"])
def test_affine_maps_each_voxel_to_its_dicom_position(tilted, space):
    from monai_dicomseg.transforms.load_series import LoadDicomSeries

    folder, _, _ = tilted
    image = LoadDicomSeries(space=space)(str(folder / "series"))
    assert image.meta["sheared"] == pytest.approx(TILT, abs=1e-3)
    assert image.meta["slice_grid"] == "source" and json.loads(image.meta["filled_slices"]) == []
    affine = np.asarray(image.affine, dtype=float)
    if space == "RAS":
        affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    array = np.asarray(image[0])
    for path in sorted((folder / "series").glob("*.dcm")):
        ds = pydicom.dcmread(path)
        s = _find_slice(array, ds)
        ipp = np.asarray(ds.ImagePositionPatient, dtype=float)
        row, column = (np.asarray(ds.ImageOrientationPatient[:3], float), np.asarray(ds.ImageOrientationPatient[3:], float))
        dr, dc = (float(v) for v in ds.PixelSpacing)
        for r, c in [(0, 0), (ds.Rows - 1, 0), (0, ds.Columns - 1), (5, 7)]:
            expected = ipp + c * dc * row + r * dr * column
            np.testing.assert_allclose((affine @ [c, r, s, 1.0])[:3], expected, atol=1e-4)


def test_header_only_geometry_equals_the_loaded_volume(tilted):
    folder, _, _ = tilted
    loaded = load_source_series(str(folder / "series"))
    headers = load_source_geometry(str(folder / "series"))
    assert isinstance(loaded.volume, ShearedVolume) and isinstance(headers.geometry, ShearedVolumeGeometry)
    np.testing.assert_allclose(headers.geometry.affine, loaded.volume.affine)
    assert loaded.tilt_degrees == pytest.approx(TILT, abs=1e-3)


def test_untilted_series_is_unchanged(tmp_path):
    datasets = synthetic.make_ct_series(shape=(4, 8, 9))
    loaded = load_source_series(datasets)
    assert type(loaded.volume) is Volume and loaded.tilt_degrees == 0.0
    np.testing.assert_allclose(loaded.volume.affine, get_volume_from_series(datasets).affine)


@pytest.mark.parametrize("mode", ["stacked", "labelmap"])
def test_highdicom_seg_lands_on_the_tilted_grid(tilted, mode):
    from monai.transforms import Compose

    from monai_dicomseg import LoadDicomSegd
    from monai_dicomseg.transforms.load_series import LoadDicomSeriesd

    folder, datasets, labels = tilted
    seg_path = highdicom_binary_seg(folder / "seg.dcm", datasets, labels)
    out = Compose([LoadDicomSeriesd("image"), LoadDicomSegd("label", ref_key="image", mode=mode)])(
        {"image": str(folder / "series"), "label": str(seg_path)})
    image, label = out["image"], out["label"]
    np.testing.assert_allclose(np.asarray(label.affine), np.asarray(image.affine), atol=1e-6)
    truth = truth_on_grid(labels, datasets, np.asarray(image.affine), tuple(image.shape[1:]))
    assert truth.any()
    if mode == "labelmap":
        np.testing.assert_array_equal(np.asarray(label[0]), truth)
    else:
        for channel in range(3):
            np.testing.assert_array_equal(np.asarray(label[channel]) > 0, truth == channel + 1)


def test_seg_on_its_own_tilted_grid(tilted):
    """Without a reference the SEG's own grid is sheared too (same affine as the series)."""
    from monai_dicomseg import LoadDicomSeg
    from monai_dicomseg.transforms.load_series import LoadDicomSeries

    folder, datasets, labels = tilted
    seg_path = highdicom_binary_seg(folder / "seg.dcm", datasets, labels)
    image = LoadDicomSeries()(str(folder / "series"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        label = LoadDicomSeg()(str(seg_path))
    truth = truth_on_grid(labels, datasets, np.asarray(label.affine), tuple(label.shape[1:]))
    np.testing.assert_array_equal(np.asarray(label[0]), truth)
    # MONAI order (C, R, S): the slice step is column 2; shear_angle wants it first
    assert shear_angle(np.asarray(label.affine)[:, [2, 0, 1, 3]]) == pytest.approx(TILT, abs=1e-3)
    assert label.shape[1:3] == image.shape[1:3] and label.shape[3] <= image.shape[3]


def test_dicom_seg_reader_finds_the_tilted_series(tilted):
    from monai_dicomseg.io.reader import DicomSegReader

    folder, datasets, labels = tilted
    seg_path = highdicom_binary_seg(folder / "seg.dcm", datasets, labels)
    reader = DicomSegReader(source_root=folder)
    data, meta = reader.get_data(reader.read(str(seg_path)))
    assert meta["grid"] == "source_series"
    image = load_source_series(str(folder / "series"))
    np.testing.assert_allclose(np.asarray(meta["affine"]), image.monai_affine("RAS"), atol=1e-6)
    truth = truth_on_grid(labels, datasets, np.asarray(meta["affine"]), tuple(np.asarray(data).shape[-3:]))
    np.testing.assert_array_equal(np.asarray(data).reshape(truth.shape), truth)


# ----------------------------------------------------------------------------- writing


def _save_and_read_back(folder: Path, out: dict, datasets, name: str):
    import highdicom as hd

    from monai_dicomseg import SaveDicomSegd

    saver = SaveDicomSegd("label", ref_key="image", output_dir=folder / name, labels=["a", "b", "c"],
                          segmentation_type="BINARY")
    saved = Path(saver(out)["label"].meta["saved_to"])
    assert dciodvfy_errors(saved) == []
    seg = hd.seg.segread(saved)
    positions = {ds.SOPInstanceUID: [float(v) for v in ds.ImagePositionPatient] for ds in datasets}
    for frame in seg.PerFrameFunctionalGroupsSequence:  # every frame on its source slice
        uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        np.testing.assert_allclose([float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient],
                                   positions[uid], atol=1e-4)
    return seg.get_pixels_by_source_instance([ds.SOPInstanceUID for ds in datasets], combine_segments=True,
                                             skip_overlap_checks=True)


def _load(folder: Path, seg_path: Path, *more):
    from monai.transforms import Compose

    from monai_dicomseg import LoadDicomSegd
    from monai_dicomseg.transforms.load_series import LoadDicomSeriesd

    return Compose([LoadDicomSeriesd("image"), LoadDicomSegd("label", ref_key="image"), *more])(
        {"image": str(folder / "series"), "label": str(seg_path)})


def test_save_on_the_tilted_source_reads_back_in_highdicom(tilted):
    folder, datasets, labels = tilted
    out = _load(folder, highdicom_binary_seg(folder / "seg.dcm", datasets, labels))
    np.testing.assert_array_equal(_save_and_read_back(folder, out, datasets, "same"), labels)


def test_save_from_a_reoriented_model_grid(tilted):
    """A model grid flipped/permuted from the sheared source maps back exactly (the exact plan)."""
    from monai.transforms import Orientationd

    folder, datasets, labels = tilted
    out = _load(folder, highdicom_binary_seg(folder / "seg.dcm", datasets, labels), Orientationd("label", axcodes="SPL"))
    assert out["label"].shape[1:] != out["image"].shape[1:]
    np.testing.assert_array_equal(_save_and_read_back(folder, out, datasets, "reoriented"), labels)


def test_save_from_a_resampled_orthogonal_grid(tilted):
    """A model grid with orthogonal axes (resampled off the sheared grid) maps back through the general plan."""
    import torch
    from monai.data import MetaTensor

    folder, datasets, labels = tilted
    out = _load(folder, highdicom_binary_seg(folder / "seg.dcm", datasets, labels))
    image = out["image"]
    sheared = np.asarray(image.affine, dtype=float)
    orthogonal = sheared.copy()
    orthogonal[:3, 2] = np.cross(sheared[:3, 0], sheared[:3, 1])
    orthogonal[:3, 2] *= 2.5 / np.linalg.norm(orthogonal[:3, 2])
    # a larger box, so that every sheared slice lies inside: the tilt moves slices along the rows
    orthogonal[:3, 3] -= orthogonal[:3, 2] + orthogonal[:3, 1] * 7
    shape = (image.shape[1], image.shape[2] + 14, image.shape[3] + 2)
    truth = truth_on_grid(labels, datasets, sheared, tuple(image.shape[1:]))
    # the truth on the orthogonal grid: nearest sheared voxel of each orthogonal voxel
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=0).reshape(3, -1)
    world = orthogonal[:3, :3] @ grid + orthogonal[:3, 3:4]
    index = np.rint(np.linalg.solve(sheared, np.vstack([world, np.ones(world.shape[1])]))[:3]).astype(int)
    inside = np.all((index >= 0) & (index < np.asarray(truth.shape)[:, None]), axis=0)
    model = np.zeros(grid.shape[1], dtype=np.uint8)
    model[inside] = truth[tuple(index[:, inside])]
    out["label"] = MetaTensor(torch.as_tensor(model.reshape(1, *shape)), affine=torch.as_tensor(orthogonal),
                              meta={"space": "RAS"})
    pixels = _save_and_read_back(folder, out, datasets, "orthogonal")
    agree = float(np.mean(pixels == labels))
    assert agree > 0.97, agree  # nearest-neighbour there and back: boundary voxels may move by one
