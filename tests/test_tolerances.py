"""One tolerance table, pinned at every entry point that places labels.

A grid offset by a fraction of :data:`GRID_INDEX_TOLERANCE` voxel maps
exactly (labels copied, never resampled); a grid offset by a few times the
tolerance does not. What "does not" means depends on the entry point:

* loaders (``LoadDicomSegd`` with ``ref_key``, ``to-nifti --source``) never
  resample: a ``GeometryError``;
* writers (``SaveDicomSegd``, ``from-nifti``) take model outputs from any grid:
  they resample (nearest / linear) instead of copying;
* ``Segmentation`` with a ``Volume`` input writes the planes where the volume
  puts them and references source frames with Spatial Locations Preserved YES
  only within :data:`POSITION_TOLERANCE_MM` (PS3.3 C.7.6.1.1.3, highdicom's rule).

Inputs come from :mod:`monai_dicomseg.synthetic`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

import monai_dicomseg as hd
from monai_dicomseg import synthetic
from monai_dicomseg.errors import GeometryError
from monai_dicomseg.geometry.tolerances import GRID_INDEX_TOLERANCE, POSITION_TOLERANCE_MM

SHAPE = (5, 16, 20)
INSIDE = 0.4 * GRID_INDEX_TOLERANCE
OUTSIDE = 3.0 * GRID_INDEX_TOLERANCE
NAMES = ["liver", "spleen"]


def _descriptions(count: int) -> list[Any]:
    from pydicom.sr.codedict import codes

    return [hd.seg.SegmentDescription(
        segment_number=number, segment_label=f"s{number}", segmented_property_category=codes.SCT.Organ,
        segmented_property_type=codes.SCT.Liver, algorithm_type="MANUAL") for number in range(1, count + 1)]


def _segmentation(series: list[pydicom.Dataset], pixel_array: Any) -> Any:
    return hd.seg.Segmentation(
        source_images=series, pixel_array=pixel_array, segmentation_type="LABELMAP",
        segment_descriptions=_descriptions(2), series_instance_uid=hd.UID(), series_number=7,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="x", manufacturer_model_name="x",
        software_versions="0", device_serial_number="0")


class Case:
    """A synthetic CT series on disk, its sorted datasets, label truth (F, R, C) and LPS affine."""

    def __init__(self, folder: Path) -> None:
        from monai_dicomseg.io.source_series import load_source_geometry

        labels = synthetic.make_ellipsoid_labels(SHAPE, n_labels=2, seed=4)
        series = synthetic.make_ct_series(SHAPE, spacing=(2.5, 0.8, 0.7), labels=labels, seed=4)
        synthetic.write_series(series, folder)
        self.folder = folder
        self.source = load_source_geometry(folder)
        self.datasets = [pydicom.dcmread(path) for path in self.source.filenames]
        generation = {str(ds.SOPInstanceUID): k for k, ds in enumerate(series)}
        self.truth = labels[[generation[str(ds.SOPInstanceUID)] for ds in self.source.datasets]]
        self.affine = np.array(self.source.geometry.affine, dtype=np.float64)

    def shifted_affine(self, voxels: float, axis: int = 2) -> np.ndarray:
        """The LPS affine moved by ``voxels`` voxels along spatial ``axis`` (F, R, C)."""
        affine = self.affine.copy()
        affine[:3, 3] += voxels * affine[:3, axis]
        return affine

    def volume(self, affine: np.ndarray) -> Any:
        return hd.Volume(self.truth.astype(np.uint8), affine, "PATIENT",
                         frame_of_reference_uid=str(self.datasets[0].FrameOfReferenceUID))

    def seg_file(self, path: Path, affine: "np.ndarray | None" = None) -> Path:
        pixel_array = self.truth.astype(np.uint8) if affine is None else self.volume(affine)
        _segmentation(self.datasets, pixel_array).save_as(path)
        return path


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Case:
    return Case(tmp_path_factory.mktemp("tolerance") / "ct")


# --------------------------------------------------------------------------- entry points
# Each returns True when the labels were placed exactly, False when the grid was
# resampled instead; it raises GeometryError where the entry point refuses.


def _load_with_ref_key(case: Case, tmp_path: Path, voxels: float) -> bool:
    from monai_dicomseg.transforms.load import LoadDicomSegd
    from monai_dicomseg.transforms.load_series import LoadDicomSeries

    image = LoadDicomSeries()(str(case.folder))
    image.affine = image.affine.clone()
    image.affine[:3, 3] += voxels * image.affine[:3, 0]  # along the first MONAI spatial axis
    seg = case.seg_file(tmp_path / "seg.dcm")
    loaded = LoadDicomSegd("label", ref_key="image")({"image": image, "label": str(seg)})["label"]
    reference = LoadDicomSegd("label", ref_key="image")(
        {"image": LoadDicomSeries()(str(case.folder)), "label": str(seg)})["label"]
    np.testing.assert_array_equal(np.asarray(loaded), np.asarray(reference))
    return True


def _to_nifti_source(case: Case, tmp_path: Path, voxels: float, cli_run: Any) -> bool:
    import nibabel

    seg = case.seg_file(tmp_path / "seg.dcm", case.shifted_affine(voxels))
    status, _, stderr = cli_run("to-nifti", seg, tmp_path / "out.nii.gz", "--source", case.folder)
    if status != 0:
        assert "do not lie on the source series' grid" in stderr, stderr
        raise GeometryError(stderr)
    from monai_dicomseg.io.source_series import from_monai_array

    written = np.asarray(nibabel.load(str(tmp_path / "out.nii.gz")).dataobj)
    np.testing.assert_array_equal(from_monai_array(written), case.truth)
    return True


def _save_dicom_segd(case: Case, tmp_path: Path, voxels: float, monkeypatch: pytest.MonkeyPatch) -> bool:
    import torch
    from monai.data import MetaTensor

    import monai_dicomseg.io.segwrite as writer_module  # the planner DicomSegWriter and from-nifti share
    from monai_dicomseg.geometry.affine import lps_to_ras_affine
    from monai_dicomseg.io.source_series import monai_affine_from_lps, to_monai_array
    from monai_dicomseg.transforms.save import SaveDicomSegd

    plans: list[Any] = []
    original = writer_module.plan_grid_mapping

    def spy(*args: Any, **kwargs: Any) -> Any:
        plans.append(original(*args, **kwargs))
        return plans[-1]

    monkeypatch.setattr(writer_module, "plan_grid_mapping", spy)
    lps = monai_affine_from_lps(case.affine, SHAPE[0], space="LPS")
    lps[:3, 3] += voxels * lps[:3, 0]
    array = np.ascontiguousarray(to_monai_array(case.truth))[None].astype(np.float32)
    label = MetaTensor(torch.from_numpy(array), affine=torch.as_tensor(lps_to_ras_affine(lps)),
                       meta={"filename_or_obj": str(case.folder), "space": "RAS"})
    SaveDicomSegd("pred", output_dir=tmp_path / "out", labels=NAMES)({"pred": label})
    path = label.meta["saved_to"]
    volume = hd.seg.segread(path).get_volume(combine_segments=True)
    on_source = volume.match_geometry(case.source.geometry)
    np.testing.assert_array_equal(np.asarray(on_source.array), case.truth)
    assert len(plans) == 1
    return plans[0].kind == "exact"


def _from_nifti(case: Case, tmp_path: Path, voxels: float, cli_run: Any) -> bool:
    import nibabel

    from monai_dicomseg.io.source_series import monai_affine_from_lps, to_monai_array

    lps = monai_affine_from_lps(case.affine, SHAPE[0], space="LPS")
    lps[:3, 3] += voxels * lps[:3, 0]
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    nifti = tmp_path / "labels.nii.gz"
    nibabel.save(nibabel.Nifti1Image(np.asfortranarray(to_monai_array(case.truth)), ras), str(nifti))
    out = tmp_path / "seg.dcm"
    status, stdout, stderr = cli_run("from-nifti", nifti, case.folder, out, "--labels", ",".join(NAMES))
    assert status == 0, stderr
    volume = hd.seg.segread(out).get_volume(combine_segments=True).match_geometry(case.source.geometry)
    np.testing.assert_array_equal(np.asarray(volume.array), case.truth)
    return "(resampled)" not in stdout + stderr


@pytest.fixture
def cli_run(capsys: pytest.CaptureFixture[str]) -> Any:
    from monai_dicomseg.cli.main import main

    def run(*argv: object) -> tuple[int, str, str]:
        status = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


@pytest.mark.parametrize("voxels", [0.0, INSIDE, -INSIDE], ids=["aligned", "inside", "inside_negative"])
@pytest.mark.parametrize("entry", ["LoadDicomSegd", "to-nifti", "SaveDicomSegd", "from-nifti"])
def test_grid_within_tolerance_maps_exactly(case, tmp_path, monkeypatch, cli_run, entry, voxels):
    assert _run(entry, case, tmp_path, voxels, monkeypatch, cli_run) is True


@pytest.mark.parametrize("entry", ["LoadDicomSegd", "to-nifti"])
def test_loaders_refuse_a_grid_just_outside_tolerance(case, tmp_path, monkeypatch, cli_run, entry):
    match = "fraction of a voxel"  # to-nifti places the SEG with the loaders' code: the same message
    with pytest.raises(GeometryError, match=match):
        _run(entry, case, tmp_path, OUTSIDE, monkeypatch, cli_run)


@pytest.mark.parametrize("entry", ["SaveDicomSegd", "from-nifti"])
def test_writers_resample_a_grid_just_outside_tolerance(case, tmp_path, monkeypatch, cli_run, entry):
    assert _run(entry, case, tmp_path, OUTSIDE, monkeypatch, cli_run) is False


def _run(entry: str, case: Case, tmp_path: Path, voxels: float, monkeypatch: Any, cli_run: Any) -> bool:
    if entry == "LoadDicomSegd":
        return _load_with_ref_key(case, tmp_path, voxels)
    if entry == "to-nifti":
        return _to_nifti_source(case, tmp_path, voxels, cli_run)
    if entry == "SaveDicomSegd":
        return _save_dicom_segd(case, tmp_path, voxels, monkeypatch)
    return _from_nifti(case, tmp_path, voxels, cli_run)


# --------------------------------------------------------------------------- Segmentation(Volume)


def _preserved(seg: Any) -> set[str]:
    return {str(item.DerivationImageSequence[0].SourceImageSequence[0].get("SpatialLocationsPreserved", ""))
            for item in seg.PerFrameFunctionalGroupsSequence}


@pytest.mark.parametrize("offset_mm, expected", [
    (0.0, {"YES"}), (0.4 * POSITION_TOLERANCE_MM, {"YES"}), (3.0 * POSITION_TOLERANCE_MM, {"NO"}),
], ids=["aligned", "inside", "outside"])
def test_segmentation_with_volume_input(case, offset_mm, expected):
    affine = case.affine.copy()
    column = affine[:3, 2] / np.linalg.norm(affine[:3, 2])
    affine[:3, 3] += offset_mm * column
    seg = _segmentation(case.datasets, case.volume(affine))
    assert _preserved(seg) == expected
    if expected == {"YES"}:  # snapped onto the source positions, verbatim
        source = {tuple(map(str, ds.ImagePositionPatient)) for ds in case.datasets}
        written = {tuple(map(str, item.PlanePositionSequence[0].ImagePositionPatient))
                   for item in seg.PerFrameFunctionalGroupsSequence}
        assert written <= source


# --------------------------------------------------------------------------- the primitive itself


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_find_grid_mapping_edges(axis):
    from monai_dicomseg.geometry.grid_mapping import GridMapping, GridMismatch, find_grid_mapping

    mapping = np.eye(4)
    mapping[axis, 3] = 3 + INSIDE
    assert isinstance(find_grid_mapping(mapping, (4, 5, 6), (10, 10, 10)), GridMapping)
    mapping[axis, 3] = 3 + OUTSIDE
    found = find_grid_mapping(mapping, (4, 5, 6), (10, 10, 10))
    assert isinstance(found, GridMismatch) and found.reason == "offset"
