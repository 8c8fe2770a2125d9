"""Irregular source series (issue 4): what the writer and the volume builder do with them.

Documented behaviour, case by case (``S`` = single-frame source series):

=======================  ===========================================  ===================================
source series            ``Segmentation`` (aligned array,             ``get_volume_from_series`` /
                         ``pixel_array[i]`` ↔ ``source_images[i]``)   Volume input
=======================  ===========================================  ===================================
gaps (missing slice)     fine: each frame references its own image    ``GeometryError`` ("missing"); a
                         (YES), as highdicom                          Volume on the full regular grid
                                                                      gets an empty Derivation Image
                                                                      Sequence (not every plane has a
                                                                      source), one on existing slices YES
irregular spacing        fine, as highdicom                           ``GeometryError`` ("regularly")
shuffled order           fine: list order defines the frames          the volume is sorted spatially
duplicate positions      ``GeometryError`` ("same plane")             ``GeometryError`` ("duplicate"); a
                                                                      Volume input is matched as highdicom
                                                                      does (a plane there references both)
mixed orientations       ``GeometryError`` (ImageOrientationPatient)  ``GeometryError``
other Frame of Ref.      ``GeometryError`` (FrameOfReferenceUID)      ``GeometryError``
mixed PixelSpacing       ``GeometryError`` (highdicom accepts it)     ``GeometryError``
non-orthogonal cosines   ``GeometryError`` ("orthogonal"; highdicom   ``GeometryError``
                         writes them as given)
no ImagePositionPatient  ``GeometryError`` (as highdicom)             ``GeometryError``
=======================  ===========================================  ===================================
"""
from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import highdicom
import numpy as np
import pydicom
import pytest

from monai_dicomseg import synthetic
from oracles import (
    BACKEND_NAME,
    backend_errors,
    build_segmentation,
    dciodvfy_errors,
    highdicom_pixels,
    match_message,
    one_hot,
)

pytestmark = [pytest.mark.highdicom, pytest.mark.filterwarnings("ignore::UserWarning")]

SHAPE = (5, 16, 20)
N_SEGMENTS = 2


def make_source(**kwargs: Any) -> tuple[list[pydicom.Dataset], np.ndarray]:
    labels = synthetic.make_ellipsoid_labels(SHAPE, n_labels=N_SEGMENTS, seed=1)
    return synthetic.make_ct_series(SHAPE, labels=labels, seed=1, **kwargs), labels


def edited(series: list[pydicom.Dataset]) -> list[pydicom.Dataset]:
    return [copy.deepcopy(ds) for ds in series]


def reread(seg: pydicom.Dataset) -> pydicom.Dataset:
    buffer = io.BytesIO()
    seg.save_as(buffer)
    buffer.seek(0)
    return pydicom.dcmread(buffer)


def references(seg: pydicom.Dataset) -> list[list[tuple[str, str]]]:
    """Per frame, ``(ReferencedSOPInstanceUID, SpatialLocationsPreserved)`` of each source item."""
    return [
        [(str(source.ReferencedSOPInstanceUID), str(source.get("SpatialLocationsPreserved")))
         for derivation in frame.get("DerivationImageSequence", [])
         for source in derivation.get("SourceImageSequence", [])]
        for frame in seg.PerFrameFunctionalGroupsSequence
    ]


def to_highdicom_volume(volume: Any) -> highdicom.Volume:
    return highdicom.Volume(np.asarray(volume.array), np.asarray(volume.affine), "PATIENT",
                            volume.frame_of_reference_uid)


# --------------------------------------------------------------------------- gaps, irregular spacing, order


@pytest.mark.dciodvfy
def test_gap_aligned_writing_is_fine(hd: Any, tmp_path: Path) -> None:
    series, labels = make_source()
    keep = [0, 1, 3, 4]
    gapped = [series[i] for i in keep]
    seg = build_segmentation(hd, gapped, labels[keep], "BINARY", n_segments=N_SEGMENTS)
    path = tmp_path / "seg.dcm"
    seg.save_as(path)
    assert dciodvfy_errors(path) == []
    np.testing.assert_array_equal(highdicom_pixels(path, gapped),
                                  one_hot(labels[keep], N_SEGMENTS))
    written = pydicom.dcmread(path)
    by_uid = {ds.SOPInstanceUID: ds for ds in gapped}
    for frame, items in zip(written.PerFrameFunctionalGroupsSequence, references(written)):
        (uid, preserved), = items
        assert preserved == "YES"
        assert [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient] == \
            [float(v) for v in by_uid[uid].ImagePositionPatient]


def test_gap_volume_from_series_raises(hd: Any) -> None:
    series, _ = make_source()
    with pytest.raises(backend_errors().GeometryError, match=match_message("missing")):
        hd.get_volume_from_series([series[i] for i in (0, 1, 3, 4)])


@pytest.mark.parametrize(
    "planes, expected",
    [(slice(None), "empty"), (slice(0, 2), "YES"), (slice(3, 5), "YES")],
    ids=["full_grid_empty", "existing_slices_before_gap", "existing_slices_after_gap"],
)
def test_gap_volume_input_matches_highdicom(hd: Any, planes: slice, expected: str) -> None:
    """All-or-nothing matching: one plane without a source empties every frame's derivations."""
    series, labels = make_source()
    volume = hd.get_volume_from_series(series).with_array(labels)[planes]
    gapped = [series[i] for i in (0, 1, 3, 4)]
    ours = reread(build_segmentation(hd, gapped, volume, "BINARY", n_segments=N_SEGMENTS))
    theirs = reread(build_segmentation(highdicom, gapped, to_highdicom_volume(volume), "BINARY",
                                       n_segments=N_SEGMENTS))
    assert references(ours) == references(theirs)
    values = {item[1] for items in references(ours) for item in items} or {"empty"}
    assert values == {expected}
    assert ours.NumberOfFrames == theirs.NumberOfFrames


def test_irregular_spacing_aligned_writing_is_fine(hd: Any) -> None:
    series, labels = make_source()
    series = edited(series)
    for ds, z in zip(series, [0.0, 2.5, 5.5, 7.5, 10.0]):
        ds.ImagePositionPatient = [0.0, 0.0, z]
    seg = reread(build_segmentation(hd, series, labels, "BINARY", n_segments=N_SEGMENTS))
    np.testing.assert_array_equal(highdicom_pixels(seg, series), one_hot(labels, N_SEGMENTS))
    with pytest.raises(backend_errors().GeometryError, match=match_message("regularly spaced")):
        hd.get_volume_from_series(series)


def test_shuffled_series_list_order_defines_frames(hd: Any) -> None:
    series, labels = make_source()
    order = [3, 0, 4, 1, 2]
    shuffled = [series[i] for i in order]
    seg = reread(build_segmentation(hd, shuffled, labels[order], "BINARY", n_segments=N_SEGMENTS))
    np.testing.assert_array_equal(highdicom_pixels(seg, series), one_hot(labels, N_SEGMENTS))
    # The volume is sorted along the slice normal whatever the list order.
    volume = hd.get_volume_from_series(shuffled)
    assert volume.geometry_equal(hd.get_volume_from_series(series))


# --------------------------------------------------------------------------- inconsistent series


def _duplicate_position(series: list[pydicom.Dataset]) -> None:
    series[3].ImagePositionPatient = series[2].ImagePositionPatient


def _mixed_orientation(series: list[pydicom.Dataset]) -> None:
    series[3].ImageOrientationPatient = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]


def _slightly_mixed_orientation(series: list[pydicom.Dataset]) -> None:
    series[3].ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 0.9999, 0.014141782]


def _other_frame_of_reference(series: list[pydicom.Dataset]) -> None:
    series[3].FrameOfReferenceUID = pydicom.uid.generate_uid()


def _mixed_pixel_spacing(series: list[pydicom.Dataset]) -> None:
    series[3].PixelSpacing = [0.9, 0.7]


#: name → (edit, message of the writer's GeometryError, message of the volume builder's GeometryError)
INCONSISTENT: dict[str, tuple[Any, str, str]] = {
    "duplicate_positions": (_duplicate_position, "same plane", "duplicate"),  # not for Volume input
    "mixed_orientations": (_mixed_orientation, "ImageOrientationPatient", "ImageOrientationPatient"),
    "slightly_mixed_orientations": (_slightly_mixed_orientation, "ImageOrientationPatient",
                                    "ImageOrientationPatient"),
    "other_frame_of_reference": (_other_frame_of_reference, "FrameOfReferenceUID",
                                 "FrameOfReferenceUID"),
    "mixed_pixel_spacing": (_mixed_pixel_spacing, "PixelSpacing", "PixelSpacing"),
}


@pytest.mark.parametrize("case", list(INCONSISTENT.values()), ids=list(INCONSISTENT))
def test_inconsistent_series_aligned_writing_raises(hd: Any, case: tuple[Any, str, str]) -> None:
    edit, message, _ = case
    series, labels = make_source()
    series = edited(series)
    edit(series)
    if BACKEND_NAME == "highdicom" and edit is _mixed_pixel_spacing:
        pytest.skip("highdicom accepts mixed PixelSpacing (uses the first image's)")
    with pytest.raises(backend_errors().GeometryError, match=match_message(message)):
        build_segmentation(hd, series, labels, "BINARY", n_segments=N_SEGMENTS)


@pytest.mark.parametrize("case", list(INCONSISTENT.values()), ids=list(INCONSISTENT))
def test_inconsistent_series_volume_raises(hd: Any, case: tuple[Any, str, str]) -> None:
    edit, _, message = case
    series, _ = make_source()
    series = edited(series)
    edit(series)
    with pytest.raises(backend_errors().GeometryError, match=match_message(message)):
        hd.get_volume_from_series(series)


@pytest.mark.parametrize(
    "case",
    [value for name, value in INCONSISTENT.items() if name != "duplicate_positions"],
    ids=[name for name in INCONSISTENT if name != "duplicate_positions"],
)
def test_inconsistent_series_volume_input_raises(hd: Any, case: tuple[Any, str, str]) -> None:
    """A Volume built from the clean series, written against the edited one."""
    edit, message, _ = case
    series, labels = make_source()
    volume = hd.get_volume_from_series(series).with_array(labels)
    series = edited(series)
    edit(series)
    if BACKEND_NAME == "highdicom" and edit is _mixed_pixel_spacing:
        pytest.skip("highdicom accepts mixed PixelSpacing for a Volume input")
    with pytest.raises(backend_errors().GeometryError, match=match_message(message)):
        build_segmentation(hd, series, volume, "BINARY", n_segments=N_SEGMENTS)


@pytest.mark.parametrize("at_duplicate", [False, True],
                         ids=["full_volume_empty", "plane_at_duplicate_references_both"])
def test_duplicate_positions_volume_input_matches_highdicom(hd: Any, at_duplicate: bool) -> None:
    """Sources with two images in one plane are accepted for a Volume input (as highdicom).

    Planes are matched to sources by position: the source position left
    vacant by the duplicate makes the full volume's derivations empty, and a
    plane at the duplicated position references both images (YES).
    """
    series, labels = make_source()
    volume = hd.get_volume_from_series(series).with_array(labels)
    duplicated = edited(series)
    _duplicate_position(duplicated)
    if at_duplicate:
        target = np.asarray([float(v) for v in series[2].ImagePositionPatient])
        origins = volume.map_indices_to_reference(
            np.array([[k, 0, 0] for k in range(SHAPE[0])]))
        k = int(np.argmin(np.linalg.norm(origins - target, axis=1)))
        volume = volume[k:k + 1]
    ours = reread(build_segmentation(hd, duplicated, volume, "BINARY", n_segments=N_SEGMENTS))
    theirs = reread(build_segmentation(highdicom, duplicated, to_highdicom_volume(volume),
                                       "BINARY", n_segments=N_SEGMENTS))
    mine = references(ours)
    assert sorted(map(sorted, mine)) == sorted(map(sorted, references(theirs)))
    if not at_duplicate:
        assert mine == [[]] * ours.NumberOfFrames
        return
    assert all(len(items) == 2 for items in mine)
    assert {uid for items in mine for uid, _ in items} == \
        {series[2].SOPInstanceUID, series[3].SOPInstanceUID}
    assert {preserved for items in mine for _, preserved in items} == {"YES"}


# --------------------------------------------------------------------------- broken plane geometry


def _non_orthogonal(series: list[pydicom.Dataset]) -> list[pydicom.Dataset]:
    series = edited(series)
    for ds in series:
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.1, 0.99498744, 0.0]  # 84.3 degrees apart
    return series


def test_non_orthogonal_cosines_volume_raises(hd: Any) -> None:
    series, _ = make_source()
    try:
        hd.get_volume_from_series(_non_orthogonal(series))
    except backend_errors().GeometryError:
        return
    except Exception as error:  # noqa: BLE001 - reported below
        raise AssertionError(f"expected GeometryError, got {type(error).__name__}: {error}") from error
    raise AssertionError("no error raised")


@pytest.mark.dciodvfy
def test_non_orthogonal_cosines_aligned_writing_raises(hd: Any, tmp_path: Path) -> None:
    series, labels = make_source()
    if BACKEND_NAME == "highdicom":
        pytest.xfail("highdicom writes the invalid orientation as given")
    with pytest.raises(backend_errors().GeometryError, match=match_message("orthogonal")):
        build_segmentation(hd, _non_orthogonal(series), labels, "BINARY", n_segments=N_SEGMENTS)


def test_non_orthogonal_cosines_check_is_an_oracle_fact(tmp_path: Path) -> None:
    """dciodvfy itself rejects the edited source, so the cosines are invalid DICOM."""
    series, _ = make_source()
    paths = synthetic.write_series(_non_orthogonal(series)[:1], tmp_path / "ct")
    assert any("not orthogonal" in line for line in dciodvfy_errors(paths[0]))


@pytest.mark.dciodvfy
def test_sources_without_image_position(hd: Any, tmp_path: Path) -> None:
    series, labels = make_source()
    series = edited(series)
    for ds in series:
        del ds.ImagePositionPatient
    try:
        seg = build_segmentation(hd, series, labels, "BINARY", n_segments=N_SEGMENTS)
    except backend_errors().GeometryError:
        return
    path = tmp_path / "seg.dcm"
    seg.save_as(path)
    assert dciodvfy_errors(path) == []


def test_sources_without_image_position_volume_raises(hd: Any) -> None:
    series, _ = make_source()
    series = edited(series)
    del series[0].ImagePositionPatient
    with pytest.raises(backend_errors().GeometryError, match=match_message("ImagePositionPatient")):
        hd.get_volume_from_series(series)
