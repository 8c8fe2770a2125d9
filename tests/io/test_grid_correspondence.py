"""The writer's grid-correspondence rule (:mod:`monai_dicomseg.geometry.correspondence`).

Issue 21: ``from-nifti`` wrote a 256 x 256 x 100 label map (0.8 mm) made for another series
onto ``data/ct1/series`` (64 x 64 x 16) because the world boxes overlap. Now every writer
(``from-nifti``/``batch from-nifti``, ``SaveDicomSeg(d)``, ``DicomSegWriter``) refuses a model
grid with less than half of its world box inside the series' box, and metadata naming
another Frame of Reference / patient, unless ``allow_grid_mismatch=True``
(``--allow-grid-mismatch``; identity mismatches are never overridden). The legitimate
grids of a pipeline stay silent: ``Spacingd``, ``Orientationd``, crops, a grid a few voxels
larger, a 1.5 mm grid of the same extent.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Orientation, Spacing, SpatialCrop, SpatialPad

from monai_dicomseg import synthetic
from monai_dicomseg.errors import GeometryError
from monai_dicomseg.geometry.correspondence import (
    MIN_INSIDE_FRACTION, PADDED_MIN_COVERED_FRACTION, PADDED_MIN_INSIDE_FRACTION, check_grid_correspondence,
    check_same_subject, grid_correspondence, inside_fraction,
)
from monai_dicomseg.io.source_series import load_source_geometry, to_monai_array
from monai_dicomseg.io.writer import DicomSegWriter
from monai_dicomseg.transforms.save import SaveDicomSeg, SaveDicomSegd

REPO = Path(__file__).resolve().parents[2]
SHAPE = (6, 24, 20)  # (F, R, C): the MONAI grid is (20, 24, 6)
NAMES = ["liver", "spleen", "kidney"]
MISMATCH = r"only 4[0-9]\.[0-9]% of its world box lies inside.*allow_grid_mismatch=True.*--allow-grid-mismatch"


# --------------------------------------------------------------------------- the measure (numpy only)


def _grid(spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    return affine


def test_same_grid_crop_and_flip_are_inside():
    source = _grid((0.8, 0.8, 2.5))
    assert inside_fraction(source, (20, 24, 6), source, (20, 24, 6)) == 1.0
    crop = _grid((0.8, 0.8, 2.5), (4 * 0.8, 2 * 0.8, 2.5))
    assert inside_fraction(crop, (5, 5, 2), source, (20, 24, 6)) == 1.0
    flipped = source @ np.array([[-1, 0, 0, 19], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    assert inside_fraction(flipped, (20, 24, 6), source, (20, 24, 6)) == pytest.approx(1.0)
    permuted = source[:, [1, 0, 2, 3]]
    assert inside_fraction(permuted, (24, 20, 6), source, (20, 24, 6)) == pytest.approx(1.0)


def test_a_few_voxels_larger_and_another_spacing_are_inside():
    source = _grid((0.8, 0.8, 2.5))
    larger = _grid((0.8, 0.8, 2.5), (-2 * 0.8, -2 * 0.8, -2.5))
    assert inside_fraction(larger, (24, 28, 8), source, (20, 24, 6)) == pytest.approx(20 * 24 * 6 / (24 * 28 * 8))
    coarse = _grid((1.5, 1.5, 1.5), (-0.4 + 0.75, -0.4 + 0.75, -1.25 + 0.75))  # same extent at 1.5 mm
    assert inside_fraction(coarse, (11, 13, 10), source, (20, 24, 6)) > 0.9


@pytest.mark.parametrize("shift, expected", [(9.8, 0.51), (10.2, 0.49)])
def test_fraction_is_exact_for_axis_aligned_grids(shift, expected):
    source = _grid()
    model = _grid(origin=(shift, 0.0, 0.0))
    assert inside_fraction(model, (20, 24, 6), source, (20, 24, 6)) == pytest.approx(expected)


def test_rotated_grid_is_sampled():
    source = _grid()
    angle = np.deg2rad(45)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    model = np.eye(4)
    model[:3, :3] = rotation
    model[:3, 3] = np.array([9.5, 9.5, 0]) - rotation @ np.array([9.5, 9.5, 0])  # about the centre
    # a square rotated by 45 degrees about its centre: 1 - 4 corner triangles = 2 (sqrt(2) - 1) of its area
    assert inside_fraction(model, (20, 20, 4), source, (20, 20, 4)) == pytest.approx(2 * (np.sqrt(2) - 1), abs=0.03)


@pytest.mark.parametrize("shift, refused", [(9.8, False), (10.2, True)])
def test_check_on_both_sides_of_the_threshold(shift, refused):
    assert MIN_INSIDE_FRACTION == 0.5
    source = _grid()
    model = _grid(origin=(shift, 0.0, 0.0))
    if refused:
        with pytest.raises(GeometryError, match=MISMATCH):
            check_grid_correspondence(model, (20, 24, 6), source, (20, 24, 6), space="LPS")
        found = check_grid_correspondence(model, (20, 24, 6), source, (20, 24, 6), space="LPS",
                                          allow_grid_mismatch=True)
        assert found.inside_fraction == pytest.approx(0.49)
    else:
        assert check_grid_correspondence(model, (20, 24, 6), source, (20, 24, 6), space="LPS").inside_fraction \
            == pytest.approx(0.51)


def _centred(shape, source_shape=(20, 24, 6), shift=(0.0, 0.0, 0.0)) -> np.ndarray:
    """A 1 mm grid of ``shape`` centred on the 1 mm source grid (moved by ``shift`` mm)."""
    origin = (np.asarray(source_shape) - np.asarray(shape)) / 2 + np.asarray(shift)
    return _grid(origin=tuple(origin))


@pytest.mark.parametrize("shape, refused", [((40, 48, 11), False), ((40, 48, 12), False), ((40, 48, 13), True),
                                            ((22, 26, 16), False)])
def test_padded_grid_covering_the_series(shape, refused):
    """A grid covering the whole series may put more than half of its box outside, up to 8x the series' box."""
    assert PADDED_MIN_INSIDE_FRACTION == 1 / 8
    found = grid_correspondence(_centred(shape), shape, _grid(), (20, 24, 6), space="LPS")
    assert found.covered_fraction == 1.0 and found.inside_fraction < MIN_INSIDE_FRACTION
    if refused:
        with pytest.raises(GeometryError, match=r"only 11\.5% of its world box.*covers 100\.0% of the series"):
            check_grid_correspondence(_centred(shape), shape, _grid(), (20, 24, 6), space="LPS")
    else:
        check_grid_correspondence(_centred(shape), shape, _grid(), (20, 24, 6), space="LPS")


@pytest.mark.parametrize("shift, refused", [(5.5, False), (5.7, True)])
def test_padded_grid_must_cover_the_series(shift, refused):
    """Padded (6 -> 16 slices) but moved along the slices: beyond 5 mm it leaves (shift - 5) / 6 of the series."""
    assert PADDED_MIN_COVERED_FRACTION == 0.9
    shape = (20, 24, 16)
    model = _centred(shape, shift=(0.0, 0.0, shift))
    found = grid_correspondence(model, shape, _grid(), (20, 24, 6), space="LPS")
    assert (found.covered_fraction < PADDED_MIN_COVERED_FRACTION) == refused
    assert found.inside_fraction < MIN_INSIDE_FRACTION
    if refused:
        with pytest.raises(GeometryError, match="does not correspond"):
            check_grid_correspondence(model, shape, _grid(), (20, 24, 6), space="LPS")
    else:
        check_grid_correspondence(model, shape, _grid(), (20, 24, 6), space="LPS")


def test_no_overlap_is_refused_even_when_allowed():
    with pytest.raises(GeometryError, match="does not overlap"):
        check_grid_correspondence(_grid(origin=(500.0, 0, 0)), (20, 24, 6), _grid(), (20, 24, 6), space="LPS",
                                  allow_grid_mismatch=True)


def test_message_gives_boxes_shapes_and_spacings():
    found = grid_correspondence(_grid((0.8, 0.8, 0.8)), (256, 256, 100), _grid((0.8, 0.8, 2.5)), (16, 64, 64),
                                space="LPS")
    text = found.describe()
    assert "model grid [256, 256, 100] at 0.8 x 0.8 x 0.8 mm" in text
    assert "source series [16, 64, 64] (frames, rows, columns) at 0.8 x 0.8 x 2.5 mm" in text
    assert "-0.4..204.4" in text


@pytest.mark.parametrize("attribute", ["frame_of_reference", "patient_id"])
def test_same_subject(attribute):
    check_same_subject(**{f"model_{attribute}": "1.2.3", f"source_{attribute}": "1.2.3"})
    check_same_subject(**{f"model_{attribute}": None, f"source_{attribute}": "1.2.3"})
    check_same_subject(**{f"model_{attribute}": " ", f"source_{attribute}": "1.2.3"})
    with pytest.raises(GeometryError, match="another (Frame of Reference|patient).*'9.9' in its metadata.*'1.2.3'"):
        check_same_subject(**{f"model_{attribute}": "9.9", f"source_{attribute}": "1.2.3"})


# --------------------------------------------------------------------------- SaveDicomSeg(d) / DicomSegWriter


@pytest.fixture
def case(tmp_path: Path):
    """``(folder, SourceSeries, truth (F, R, C) sorted, labels MetaTensor (1, 20, 24, 6) on the series grid)``."""
    labels = synthetic.make_ellipsoid_labels(SHAPE, n_labels=3, seed=6)
    datasets = synthetic.make_ct_series(SHAPE, spacing=(2.5, 0.8, 0.7), labels=labels, seed=6)
    folder = tmp_path / "ct"
    synthetic.write_series(datasets, folder)
    source = load_source_geometry(folder)
    order = {str(ds.SOPInstanceUID): k for k, ds in enumerate(datasets)}
    truth = labels[[order[str(ds.SOPInstanceUID)] for ds in source.datasets]]
    array = np.ascontiguousarray(to_monai_array(truth))[None].astype(np.float32)
    tensor = MetaTensor(torch.from_numpy(array), affine=torch.as_tensor(source.monai_affine()),
                        meta={"filename_or_obj": str(folder), "space": "RAS"})
    return folder, source, truth, tensor


def _shifted(label: MetaTensor, voxels: float) -> MetaTensor:
    """The same array on a grid moved by ``voxels`` along its first axis (20 voxels long)."""
    affine = label.affine.clone()
    affine[:3, 3] += voxels * affine[:3, 0]
    return MetaTensor(label.as_tensor().clone(), affine=affine, meta={"filename_or_obj": label.meta["filename_or_obj"]})


def _segments(path) -> list[str]:
    return [str(item.SegmentLabel) for item in pydicom.dcmread(path).SegmentSequence]


@pytest.mark.parametrize("shift, refused", [(9.8, False), (10.2, True)])
def test_save_dicom_segd_boundary(tmp_path, case, shift, refused):
    *_, label = case
    data = {"pred": _shifted(label, shift)}
    save = SaveDicomSegd(keys="pred", output_dir=tmp_path / "out", labels=NAMES)
    if refused:
        with pytest.raises(GeometryError, match=MISMATCH):
            save(data)
        assert not list((tmp_path / "out").glob("*.dcm"))
        data = SaveDicomSegd(keys="pred", output_dir=tmp_path / "out", labels=NAMES, allow_grid_mismatch=True)(data)
    else:
        data = save(data)
    assert Path(data["pred"].meta["saved_to"]).is_file()


def test_dicom_seg_writer_option(tmp_path, case):
    *_, label = case
    pred = _shifted(label, 10.2)
    for allow in (False, True):
        writer = DicomSegWriter(labels=NAMES, allow_grid_mismatch=allow)
        writer.set_data_array(pred, channel_dim=0)
        writer.set_metadata(pred.meta)
        if not allow:
            with pytest.raises(GeometryError, match=MISMATCH):
                writer.write(tmp_path / "seg.dcm")
            assert not (tmp_path / "seg.dcm").exists()
        else:
            assert writer.write(tmp_path / "seg.dcm").is_file()
            assert writer.correspondence.inside_fraction == pytest.approx(0.49)


@pytest.mark.parametrize("transform", ["spacing_1.5mm", "orientation_LPS", "crop", "pad_2_voxels"])
def test_pipeline_grids_stay_silent(tmp_path, case, transform):
    folder, source, truth, label = case
    if transform == "spacing_1.5mm":
        pred = Spacing(pixdim=(1.5, 1.5, 1.5), mode="nearest")(label)
    elif transform == "orientation_LPS":
        pred = Orientation(axcodes="LPS", labels=None)(label)
    elif transform == "crop":
        pred = SpatialCrop(roi_start=(3, 4, 1), roi_end=(17, 20, 5))(label)
    else:
        pred = SpatialPad(spatial_size=(24, 28, 10))(label)  # 2 voxels / slices each side: 43% inside
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # silent: no warning either
        warnings.filterwarnings("ignore", message="Setting affine")
        SaveDicomSeg(output_dir=tmp_path / "out", segmentation_type="LABELMAP", labels=NAMES)(pred)
    assert Path(pred.meta["saved_to"]).is_file()


@pytest.mark.parametrize("key", ["PatientID", "0010|0020", "00100020"])
def test_other_patient_in_metadata_is_refused(tmp_path, case, key):
    *_, label = case
    label.meta[key] = {"vr": "LO", "Value": ["SOMEONE-ELSE"]} if key == "00100020" else "SOMEONE-ELSE"
    for allow in (False, True):  # an identity mismatch is not a grid question: the option does not override it
        with pytest.raises(GeometryError, match="another patient: PatientID 'SOMEONE-ELSE'.*'SYNTH-0001'"):
            SaveDicomSeg(output_dir=tmp_path / "out", labels=NAMES, allow_grid_mismatch=allow)(label)
    label.meta[key] = "SYNTH-0001"
    SaveDicomSeg(output_dir=tmp_path / "out", labels=NAMES)(label)


def test_reference_of_another_frame_of_reference(tmp_path, case):
    *_, label = case
    with pytest.raises(GeometryError, match="reference image.*another Frame of Reference"):
        SaveDicomSeg(output_dir=tmp_path / "out", labels=NAMES)(label, source=label.meta["filename_or_obj"],
                                                                reference={"FrameOfReferenceUID": "1.2.3"})


def test_option_from_bundle_json(tmp_path, case):
    from monai.bundle import ConfigParser

    *_, label = case
    config = {"save": {"_target_": "monai_dicomseg.SaveDicomSegd", "keys": "pred",
                       "output_dir": str(tmp_path / "out"), "labels": NAMES, "allow_grid_mismatch": True}}
    parser = ConfigParser(config)
    save = parser.get_parsed_content("save")
    written = save({"pred": _shifted(label, 10.2)})["pred"].meta["saved_to"]
    assert _segments(written)
    config["save"]["allow_grid_missmatch"] = config["save"].pop("allow_grid_mismatch")
    with pytest.raises(Exception) as raised:  # MONAI wraps the component's error in a RuntimeError
        ConfigParser(config).get_parsed_content("save")
    chain = [raised.value, raised.value.__cause__, raised.value.__context__]
    assert any("did you mean 'allow_grid_mismatch'" in str(error) for error in chain if error is not None)


# --------------------------------------------------------------------------- from-nifti


def _wrong_patient_nifti(path: Path) -> Path:
    """The issue's example: 256 x 256 x 100 at 0.8 mm around data/ct1/series, an organ in its middle."""
    labels = np.zeros((256, 256, 100), dtype=np.uint8)
    labels[100:156, 100:156, 30:70] = 1
    affine = np.diag([0.8, 0.8, 0.8, 1.0])
    affine[:3, 3] = (-102.0, -102.0, -40.0)
    nibabel.save(nibabel.Nifti1Image(labels, affine), str(path))
    return path


def test_from_nifti_wrong_patient_example(tmp_path, capsys):
    from monai_dicomseg.cli.main import main

    nifti = _wrong_patient_nifti(tmp_path / "other.nii.gz")
    series = REPO / "data" / "ct1" / "series"
    out = tmp_path / "seg.dcm"
    status = main(["from-nifti", str(nifti), str(series), str(out), "--labels", "liver"])
    stderr = capsys.readouterr().err
    assert status == 1 and not out.exists()
    assert "only 3.1% of its world box lies inside" in stderr, stderr
    assert "model grid [256, 256, 100] at 0.8 x 0.8 x 0.8 mm" in stderr
    assert "source series [16, 64, 64]" in stderr and "--allow-grid-mismatch" in stderr
    status = main(["from-nifti", str(nifti), str(series), str(out), "--labels", "liver", "--allow-grid-mismatch"])
    assert status == 0 and out.is_file()
    assert "(resampled)" in capsys.readouterr().out


@pytest.mark.parametrize("shift, refused", [(9.8, False), (10.2, True)])
def test_from_nifti_boundary(tmp_path, case, capsys, shift, refused):
    from monai_dicomseg.cli.main import main

    folder, source, truth, label = case
    nifti = tmp_path / "labels.nii.gz"
    nibabel.save(nibabel.Nifti1Image(truth_array := np.asfortranarray(to_monai_array(truth)).astype(np.uint8),
                                     _shifted(label, shift).affine.numpy()), str(nifti))
    assert truth_array.shape == (20, 24, 6)
    status = main(["from-nifti", str(nifti), str(folder), str(tmp_path / "seg.dcm")])
    stderr = capsys.readouterr().err
    assert status == (1 if refused else 0), stderr
    if refused:
        assert "only 49.0% of its world box" in stderr and "--allow-grid-mismatch" in stderr


def test_batch_from_nifti_flag(tmp_path, case, capsys):
    from monai_dicomseg.cli.main import main

    folder, source, truth, label = case
    inputs, series_root = tmp_path / "labels", tmp_path / "series"
    inputs.mkdir()
    synthetic.write_series([pydicom.dcmread(p) for p in source.filenames], series_root / "case1")
    nibabel.save(nibabel.Nifti1Image(np.asfortranarray(to_monai_array(truth)).astype(np.uint8),
                                     _shifted(label, 10.2).affine.numpy()), str(inputs / "case1.nii.gz"))
    status = main(["batch", "from-nifti", str(inputs), str(series_root), str(tmp_path / "out")])
    assert status == 1 and "does not correspond" in capsys.readouterr().err
    status = main(["batch", "from-nifti", str(inputs), str(series_root), str(tmp_path / "out"),
                   "--allow-grid-mismatch"])
    assert status == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "case1.dcm").is_file()
