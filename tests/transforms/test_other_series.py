"""A SEG on another series of its Frame of Reference (second kernel, another phase): ``allow_other_series``.

Refused by default with a message that names the option; accepted with it
(labels identical to those on the referenced series); another Frame of
Reference is refused whatever the option; a same-FoR series on another grid is
still placed exactly (checked against the generation truth of
:mod:`monai_cases`) or refused with a GeometryError.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from monai.transforms import LoadImage

import monai_dicomseg as mds
from monai_dicomseg import synthetic
from monai_dicomseg.errors import GeometryError
from monai_dicomseg.io.segload import GRID_REFERENCE, GRID_SOURCE_SERIES, MetaKey, ReferenceGrid
from monai_cases import SHAPE, Case, make_case, truth_on_grid

OPTION = "allow_other_series"


@pytest.fixture
def case(tmp_path: Path) -> Case:
    return make_case(tmp_path / "case")


def _frame_of_reference(case: Case) -> str:
    return str(case.datasets[0].FrameOfReferenceUID)


def _write(folder: Path, datasets: list) -> Path:
    synthetic.write_series(datasets, folder)
    return folder


def _second_series(case: Case, folder: Path, *, same_frame: bool = True, **geometry) -> Path:
    """Another series (new SeriesInstanceUID) over the case's geometry, or another given by ``geometry``."""
    options = {"shape": SHAPE, "labels": case.labels, **geometry}
    datasets = synthetic.make_ct_series(
        **options, series_number=2, frame_of_reference_uid=_frame_of_reference(case) if same_frame else None)
    assert datasets[0].SeriesInstanceUID != case.datasets[0].SeriesInstanceUID
    return _write(folder, datasets)


def _load(series: Path, seg: Path, **options):
    """LoadDicomSeriesd then LoadDicomSegd(ref_key) (called in turn: Compose would wrap errors in RuntimeError)."""
    data = mds.LoadDicomSeriesd("image")({"image": str(series), "label": str(seg)})
    return mds.LoadDicomSegd("label", ref_key="image", **options)(data)


def test_other_series_is_refused_by_default_naming_the_option(case: Case, tmp_path: Path):
    other = _second_series(case, tmp_path / "kernel2")
    with pytest.raises(GeometryError, match=rf"ReferencedSeriesSequence.*pass {OPTION}=True"):
        _load(other, case.seg_path)


def test_other_series_with_the_option_gives_identical_labels(case: Case, tmp_path: Path):
    other = _second_series(case, tmp_path / "kernel2")
    on_source = _load(case.series_folder, case.seg_path)["label"]
    for mode in ("labelmap", "stacked"):
        on_other = _load(other, case.seg_path, mode=mode, allow_other_series=True)["label"]
        expected = _load(case.series_folder, case.seg_path, mode=mode)["label"]
        np.testing.assert_array_equal(on_other.numpy(), expected.numpy())
        np.testing.assert_array_equal(on_other.affine.numpy(), expected.affine.numpy())
        assert on_other.meta[MetaKey.GRID] == GRID_REFERENCE
    assert on_source.numpy().any()


def test_another_frame_of_reference_is_refused_with_the_option(case: Case, tmp_path: Path):
    other = _second_series(case, tmp_path / "other_for", same_frame=False)
    for options in ({}, {OPTION: True}):
        with pytest.raises(GeometryError, match="FrameOfReferenceUID of the SEG is .* but the reference image's"):
            _load(other, case.seg_path, **options)


def test_same_frame_other_grid_is_placed_exactly(case: Case, tmp_path: Path):
    """Two more slices below and one above, same spacing: every voxel from the generation truth."""
    first = np.asarray(case.datasets[0].ImagePositionPatient, dtype=float)
    normal = np.array([0.0, 0.0, 1.0])  # axial: cross(row cosines, column cosines)
    padded = np.zeros((SHAPE[0] + 3, *SHAPE[1:]), dtype=case.labels.dtype)
    padded[2:2 + SHAPE[0]] = case.labels
    other = _second_series(case, tmp_path / "longer", shape=padded.shape, labels=padded,
                           origin=first - 2 * 2.5 * normal)
    out = _load(other, case.seg_path, allow_other_series=True)
    image, label = out["image"], out["label"]
    assert tuple(label.shape[1:]) == tuple(image.shape[1:]) == (SHAPE[2], SHAPE[1], SHAPE[0] + 3)
    truth = truth_on_grid(case.labels, case.datasets, np.asarray(image.affine), tuple(image.shape[1:]))
    np.testing.assert_array_equal(label.numpy()[0], truth)


@pytest.mark.parametrize("geometry", [
    {"origin_shift": (0.35, 0.0, 0.0)},  # half a column: no voxel of the SEG sits on a voxel of the image
    {"spacing": (2.5, 0.8, 1.4)},  # another column spacing
], ids=["half_voxel", "spacing"])
def test_same_frame_other_grid_that_does_not_fit_is_refused(case: Case, tmp_path: Path, geometry: dict):
    options = {}
    if "origin_shift" in geometry:
        options["origin"] = np.asarray(case.datasets[0].ImagePositionPatient, dtype=float) + geometry["origin_shift"]
    if "spacing" in geometry:
        options["spacing"] = geometry["spacing"]
    other = _second_series(case, tmp_path / "misfit", **options)
    with pytest.raises(GeometryError):
        _load(other, case.seg_path, allow_other_series=True)


def test_option_needs_both_frames_of_reference(case: Case, tmp_path: Path):
    image = mds.LoadDicomSeries()(str(_second_series(case, tmp_path / "kernel2")))
    grid = ReferenceGrid(np.asarray(image.affine), tuple(image.shape[1:]), "RAS", frame_of_reference_uid=None,
                         series_instance_uid=image.meta[MetaKey.SERIES_INSTANCE_UID])
    with pytest.raises(GeometryError, match=rf"{OPTION}=True needs the FrameOfReferenceUID"):
        mds.LoadDicomSeg(allow_other_series=True)(str(case.seg_path), grid)
    known = ReferenceGrid(grid.affine, grid.spatial_shape, "RAS", _frame_of_reference(case), grid.series_instance_uid)
    assert mds.LoadDicomSeg(allow_other_series=True)(str(case.seg_path), known).numpy().any()


def test_dataset_and_load_transforms_take_the_option(case: Case, tmp_path: Path):
    other = _second_series(case, tmp_path / "kernel2")
    data = [{"image": str(other), "label": str(case.seg_path)}]
    with pytest.raises(RuntimeError, match="applying transform") as info:  # MONAI's Compose wraps the error
        mds.DicomSegDataset(data)[0]
    assert isinstance(info.value.__cause__, GeometryError) and f"{OPTION}=True" in str(info.value.__cause__)
    item = mds.DicomSegDataset(data, allow_other_series=True)[0]
    expected = _load(case.series_folder, case.seg_path)["label"]
    np.testing.assert_array_equal(item["label"].numpy(), expected.numpy())
    with pytest.raises(TypeError, match=OPTION):
        mds.LoadDicomSegd("label", ref_key="image", allow_other_serie=True)


def test_reader_resolver_onto_another_series(case: Case, tmp_path: Path):
    other = _second_series(case, tmp_path / "kernel2")
    with pytest.raises(GeometryError, match=rf"seg\.dcm.*{OPTION}=True"):
        LoadImage(reader=mds.DicomSegReader(series_resolver=lambda header: str(other)))(str(case.seg_path))
    reader = mds.DicomSegReader(series_resolver=lambda header: str(other), allow_other_series=True)
    label = LoadImage(reader=reader, image_only=True, dtype=None)(str(case.seg_path))
    expected = _load(case.series_folder, case.seg_path)["label"]
    np.testing.assert_array_equal(label.numpy(), expected.numpy())
    np.testing.assert_array_equal(label.affine.numpy(), expected.affine.numpy())
    assert label.meta[MetaKey.GRID] == GRID_SOURCE_SERIES
