"""sort_datasets against highdicom.spatial.sort_datasets, plus its error cases."""
from __future__ import annotations

import highdicom
import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_files
from pydicom.dataset import Dataset

import monai_dicomseg as hd
from monai_dicomseg.errors import GeometryError, InputError
from monai_dicomseg.geometry.affine import slice_normal
from monai_dicomseg.geometry.sorting import get_plane_sort_index, sort_datasets

CT2 = sorted(get_testdata_files("dicomdirtests/77654033/CT2/*"))


def plane(position, orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), for_uid="1.2.3", **extra) -> Dataset:
    ds = Dataset()
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.FrameOfReferenceUID = for_uid
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage (single frame)
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return ds


def test_guide_namespace_exposes_sort_datasets():
    assert hd.spatial.sort_datasets is sort_datasets


def test_sort_ct_series_matches_highdicom():
    datasets = [pydicom.dcmread(f) for f in CT2]
    ours = [ds.SOPInstanceUID for ds in sort_datasets(datasets)]
    theirs = [ds.SOPInstanceUID for ds in highdicom.spatial.sort_datasets(datasets)]
    assert ours == theirs
    # frames run along cross(column, row) = -z for axial images: head to foot
    z = [float(ds.ImagePositionPatient[2]) for ds in sort_datasets(datasets)]
    assert z == sorted(z, reverse=True)


@settings(max_examples=25, deadline=None)
@given(cosines=st.sampled_from([
    (1, 0, 0, 0, 1, 0), (0, 1, 0, 0, 0, -1), (1, 0, 0, 0, 0, -1),
    (0.6, 0.8, 0, -0.8, 0.6, 0), (0, 0.6, 0.8, 1, 0, 0),
]), n=st.integers(2, 8), seed=st.integers(0, 10_000),
       convention=st.sampled_from(["DR", "RD", "UL", "LD"]),
       handedness=st.sampled_from(["RIGHT_HANDED", "LEFT_HANDED"]))
def test_sort_synthetic_series_matches_highdicom(cosines, n, seed, convention, handedness):
    normal = slice_normal(cosines)
    rng = np.random.default_rng(seed)
    datasets = [plane(np.array([4.0, -7.0, 2.0]) + k * 1.5 * normal, cosines) for k in rng.permutation(n)]
    ours = sort_datasets(datasets, convention, handedness)
    theirs = highdicom.spatial.sort_datasets(datasets, convention, handedness)
    assert [id(d) for d in ours] == [id(d) for d in theirs]


def test_sort_keeps_single_dataset():
    ds = plane([0, 0, 0])
    assert sort_datasets([ds]) == [ds]


@pytest.mark.parametrize("datasets, match", [
    ([plane([0, 0, 0]), plane([0, 0, 1], orientation=(0, 1, 0, 0, 0, -1))], "mixed ImageOrientationPatient"),
    ([plane([0, 0, 0]), plane([0, 0, 1], for_uid="9.9")], "do not share a FrameOfReferenceUID"),
    ([plane([0, 0, 0]), Dataset()], "dataset 1 has no ImageOrientationPatient"),
    ([plane([0, 0, 0]), plane([0, 0, 1], NumberOfFrames=3)], "NumberOfFrames=3"),
    ([plane([0, 0])], "ImagePositionPatient of dataset 0 must have 3 values"),
], ids=["mixed-orientation", "frame-of-reference", "missing-orientation", "multi-frame", "short-position"])
def test_sort_rejects_inconsistent_series(datasets, match):
    with pytest.raises(GeometryError, match=match):
        sort_datasets(datasets)


def test_sort_rejects_missing_position():
    ds = plane([0, 0, 0])
    del ds.ImagePositionPatient
    with pytest.raises(GeometryError, match="dataset 1 has no ImagePositionPatient"):
        sort_datasets([plane([0, 0, 1]), ds])


def test_sort_rejects_partial_frame_of_reference():
    ds = plane([0, 0, 1])
    del ds.FrameOfReferenceUID
    with pytest.raises(GeometryError, match="FrameOfReferenceUID"):
        sort_datasets([plane([0, 0, 0]), ds])


def test_sort_rejects_empty():
    with pytest.raises(InputError, match="at least one dataset"):
        sort_datasets([])


@pytest.mark.parametrize("convention", ["RR", "DRX", "D"], ids=["two-horizontal", "three", "one"])
def test_sort_rejects_bad_index_convention(convention):
    with pytest.raises(InputError, match="index_convention"):
        get_plane_sort_index([[0, 0, 0]], [1, 0, 0, 0, 1, 0], convention)


def test_sort_rejects_bad_handedness():
    with pytest.raises(ValueError, match="SIDEWAYS"):
        get_plane_sort_index([[0, 0, 0]], [1, 0, 0, 0, 1, 0], "DR", "SIDEWAYS")
