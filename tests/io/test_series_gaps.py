"""Series with a missing slice or irregular spacing: the default error, ``irregular_slices="fill"`` / ``"resample"``.

The series comes from :func:`monai_dicomseg.synthetic.make_ct_series` with one
slice removed (labels encoded in the CT numbers, a per-slice marker so every
slice's pixels differ); SEGs are written by highdicom from the remaining
slices; truth comes from the raw DICOM attributes of the full generation
(:func:`monai_cases.truth_on_grid`).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from monai_dicomseg import synthetic
from monai_dicomseg.errors import GeometryError, InputError, InputTypeError
from monai_dicomseg.geometry.slice_grid import plan_slice_grid
from monai_dicomseg.io.source_series import load_source_geometry, load_source_series
from monai_cases import highdicom_binary_seg, truth_on_grid
from oracles import dciodvfy_errors

SHAPE = (10, 20, 24)
SPACING = (2.5, 0.8, 0.7)
MISSING = 4  # generation index of the removed slice
AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def gap_series(folder: Path, *, move: "float | None" = None, padding: "int | None" = None):
    """Write the series without slice MISSING (or with it moved by ``move`` mm); return (all, kept, labels)."""
    labels = synthetic.make_ellipsoid_labels(SHAPE, n_labels=3, seed=1)
    for k in range(SHAPE[0]):
        labels[k, 0, : k + 1] = 1
    datasets = synthetic.make_ct_series(shape=SHAPE, spacing=SPACING, labels=labels, seed=1)
    if move is not None:
        ds = datasets[MISSING]
        normal = np.cross(np.asarray(ds.ImageOrientationPatient[:3], float), np.asarray(ds.ImageOrientationPatient[3:], float))
        ds.ImagePositionPatient = [f"{v:.6f}" for v in np.asarray(ds.ImagePositionPatient, float) + move * normal]
        kept = list(datasets)
    else:
        kept = [ds for k, ds in enumerate(datasets) if k != MISSING]
    if padding is not None:
        for ds in kept:
            ds.PixelPaddingValue = padding
    synthetic.write_series(kept, folder)
    return datasets, kept, labels




def _hu(ds) -> np.ndarray:
    return ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def _slice_of(image: np.ndarray, ds) -> int:
    matches = [s for s in range(image.shape[2]) if np.array_equal(image[:, :, s].T, _hu(ds))]
    assert len(matches) == 1
    return matches[0]


@pytest.fixture()
def gap(tmp_path):
    full, kept, labels = gap_series(tmp_path / "series")
    return tmp_path, full, kept, labels


# ----------------------------------------------------------------------------- the default: a clear error


def test_default_error_names_the_gap_and_the_option(gap):
    from monai_dicomseg.transforms.load_series import LoadDicomSeries

    folder, _, _, _ = gap
    pattern = (r"a gap at z = [-0-9.]+ mm between slices 4 and 5 \(sorted along the slice normal; z = .*"
               r"InstanceNumber 6 and InstanceNumber 4\): 5\.00 mm where the spacing is 2\.50 mm elsewhere "
               r"\(1 slice\(s\) missing\); pass irregular_slices='fill'.* or irregular_slices='resample'")
    with pytest.raises(GeometryError, match=pattern):
        LoadDicomSeries()(str(folder / "series"))
    with pytest.raises(GeometryError, match=pattern):
        load_source_geometry(str(folder / "series"))


def test_regular_spacing_within_tolerance_is_not_a_gap():
    z = np.arange(5) * 2.5
    z[2] += 0.02  # 0.8 % of the spacing: regular (SPACING_RELATIVE_TOLERANCE is 1 %)
    grid = plan_slice_grid(np.stack([np.zeros(5), np.zeros(5), z], axis=1), AXIAL)
    assert grid.kind == "source" and grid.filled_slices == []
    z[2] += 0.04  # 2.4 %: irregular
    with pytest.raises(GeometryError, match="irregularly spaced"):
        plan_slice_grid(np.stack([np.zeros(5), np.zeros(5), z], axis=1), AXIAL)


def test_bad_policy_values():
    from monai_dicomseg.transforms.load_series import LoadDicomSeries, LoadDicomSeriesd

    with pytest.raises(InputError, match=r"irregular_slices must be one of \('error', 'fill', 'resample'\); got 'pad'"):
        LoadDicomSeries(irregular_slices="pad")
    with pytest.raises(InputTypeError, match="did you mean 'irregular_slices'"):
        LoadDicomSeriesd("image", irregular_slice="fill")
    with pytest.raises(InputError, match="irregular_slices must be one of"):
        plan_slice_grid(np.zeros((1, 3)), AXIAL, irregular_slices=None)


def test_duplicates_are_still_refused():
    positions = np.stack([np.zeros(4), np.zeros(4), [0.0, 2.5, 2.5, 5.0]], axis=1)
    with pytest.raises(GeometryError, match="same distance along the slice normal"):
        plan_slice_grid(positions, AXIAL, irregular_slices="fill")


# ----------------------------------------------------------------------------- fill


@pytest.mark.parametrize("padding", [None, -2000])
def test_fill_builds_the_regular_grid(tmp_path, padding):
    from monai_dicomseg.transforms.load_series import LoadDicomSeries

    full, kept, _ = gap_series(tmp_path / "series", padding=padding)
    image = LoadDicomSeries(irregular_slices="fill")(str(tmp_path / "series"))
    array = np.asarray(image[0])
    assert array.shape[2] == SHAPE[0]
    filled = json.loads(image.meta["filled_slices"])
    assert image.meta["slice_grid"] == "filled" and image.meta["sheared"] == 0.0
    slices = {_slice_of(array, ds) for ds in kept}
    assert filled == sorted(set(range(SHAPE[0])) - slices) and len(filled) == 1
    expected = (padding + float(kept[0].RescaleIntercept)) if padding is not None else min(_hu(ds).min() for ds in kept)
    assert np.all(array[:, :, filled[0]] == expected)
    # the affine puts every source slice at its ImagePositionPatient, and the filled one where the missing was
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(image.affine, dtype=float)
    for ds in full:
        s = filled[0] if ds not in kept else _slice_of(array, ds)
        np.testing.assert_allclose((affine @ [0, 0, s, 1.0])[:3], np.asarray(ds.ImagePositionPatient, float), atol=1e-4)


def test_fill_needs_whole_slices(tmp_path):
    gap_series(tmp_path / "series", move=0.9)  # one slice 0.9 mm off its place: not a missing slice
    with pytest.raises(GeometryError, match="irregularly spaced.*'fill' needs every gap to be a whole number.*"
                                            "irregular_slices='resample'"):
        load_source_series(str(tmp_path / "series"), irregular_slices="fill")
    with pytest.raises(GeometryError, match="irregularly spaced.*irregular_slices='fill'"):
        load_source_series(str(tmp_path / "series"))


@pytest.mark.parametrize("policy", ["fill", "resample"])
def test_seg_lands_on_the_filled_grid(gap, policy):
    from monai.transforms import Compose

    from monai_dicomseg import LoadDicomSegd
    from monai_dicomseg.transforms.load_series import LoadDicomSeriesd

    folder, full, kept, labels = gap
    kept_labels = np.delete(labels, MISSING, axis=0)
    seg_path = highdicom_binary_seg(folder / "seg.dcm", kept, kept_labels)
    out = Compose([LoadDicomSeriesd("image", irregular_slices=policy), LoadDicomSegd("label", ref_key="image")])(
        {"image": str(folder / "series"), "label": str(seg_path)})
    image, label = out["image"], out["label"]
    np.testing.assert_allclose(np.asarray(label.affine), np.asarray(image.affine), atol=1e-6)
    truth = truth_on_grid(labels, full, np.asarray(image.affine), tuple(image.shape[1:]))
    filled = json.loads(image.meta["filled_slices"])
    assert len(filled) == 1 and truth[:, :, filled[0]].any()
    truth[:, :, filled[0]] = 0  # no SEG frame there: background
    np.testing.assert_array_equal(np.asarray(label[0]), truth)


# ----------------------------------------------------------------------------- resample


def test_resample_interpolates_the_missing_slice(gap):
    from monai_dicomseg.transforms.load_series import LoadDicomSeries

    folder, _, kept, _ = gap
    image = LoadDicomSeries(irregular_slices="resample")(str(folder / "series"))
    array = np.asarray(image[0])
    assert image.meta["slice_grid"] == "resampled" and array.shape[2] == SHAPE[0]
    (filled,) = json.loads(image.meta["filled_slices"])
    before, after = array[:, :, filled - 1], array[:, :, filled + 1]
    np.testing.assert_allclose(array[:, :, filled], (before + after) / 2, atol=1e-4)
    assert {_slice_of(array, ds) for ds in kept} == set(range(SHAPE[0])) - {filled}


def test_resample_irregular_spacing(tmp_path):
    full, _, _ = gap_series(tmp_path / "series", move=0.9)
    series = load_source_series(str(tmp_path / "series"), irregular_slices="resample")
    grid = series.slice_grid
    assert grid.kind == "resampled" and grid.number_of_slices == SHAPE[0]
    assert grid.spacing == pytest.approx(2.5)
    # the moved slice (generation 4) is off the grid: its grid slice is interpolated between generation 3 and 4
    distances = np.array([np.asarray(ds.ImagePositionPatient, float)[2] for ds in full])
    volume = series.volume.array  # our order: along cross(column, row) = -z for this axial series
    order = np.argsort(-distances)
    frame = int(np.flatnonzero(order == MISSING)[0])
    assert grid.filled_slices == [frame]
    target = -distances[order[0]] + frame * 2.5
    lower, upper = (MISSING, MISSING - 1) if -distances[MISSING] < target else (MISSING + 1, MISSING)
    weight = (target + distances[lower]) / (-distances[upper] + distances[lower])
    expected = (1 - weight) * _hu(full[lower]) + weight * _hu(full[upper])
    np.testing.assert_allclose(volume[frame], expected, atol=1e-3)


# ----------------------------------------------------------------------------- writing


@pytest.mark.parametrize("segmentation_type", ["BINARY", "FRACTIONAL"])
def test_writer_on_a_filled_grid_references_source_slices_only(gap, segmentation_type):
    import highdicom as hd
    import torch
    from monai.data import MetaTensor
    from monai.transforms import Compose

    from monai_dicomseg import LoadDicomSegd, SaveDicomSegd
    from monai_dicomseg.transforms.load_series import LoadDicomSeriesd

    folder, full, kept, labels = gap
    kept_labels = np.delete(labels, MISSING, axis=0)
    seg_path = highdicom_binary_seg(folder / "seg.dcm", kept, kept_labels)
    out = Compose([LoadDicomSeriesd("image", irregular_slices="fill"), LoadDicomSegd("label", ref_key="image")])(
        {"image": str(folder / "series"), "label": str(seg_path)})
    (filled,) = json.loads(out["image"].meta["filled_slices"])
    out["label"][0, :, :, filled] = 1  # a (model) label on the filled slice: it has no source image to go on
    if segmentation_type == "FRACTIONAL":  # softmax-like probabilities (streamed to the encoder)
        label = out["label"]
        out["label"] = MetaTensor((label == torch.arange(4)[:, None, None, None]).float(), affine=label.affine,
                                  meta=dict(label.meta))
    saved = Path(SaveDicomSegd("label", ref_key="image", output_dir=folder / "out", labels=["a", "b", "c"],
                               segmentation_type=segmentation_type)(out)["label"].meta["saved_to"])
    assert dciodvfy_errors(saved) == []
    seg = hd.seg.segread(saved)
    kept_uids = {ds.SOPInstanceUID for ds in kept}
    referenced = {frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
                  for frame in seg.PerFrameFunctionalGroupsSequence}
    assert referenced <= kept_uids
    missing_z = float(full[MISSING].ImagePositionPatient[2])
    assert all(abs(float(f.PlanePositionSequence[0].ImagePositionPatient[2]) - missing_z) > 1.0
               for f in seg.PerFrameFunctionalGroupsSequence)
    uids = [ds.SOPInstanceUID for ds in kept]
    if segmentation_type == "FRACTIONAL":
        fractions = seg.get_pixels_by_source_instance(uids, combine_segments=False)
        pixels = np.where(fractions.max(axis=-1) > 0.5, fractions.argmax(axis=-1) + 1, 0)
    else:
        pixels = seg.get_pixels_by_source_instance(uids, combine_segments=True, skip_overlap_checks=True)
    np.testing.assert_array_equal(pixels, kept_labels)
    assert len(pydicom.dcmread(saved, stop_before_pixels=True).ReferencedSeriesSequence[0]
               .ReferencedInstanceSequence) <= len(kept)
