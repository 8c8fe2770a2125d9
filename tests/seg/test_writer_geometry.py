"""Geometry-matched SEG writing (issue 4), checked by independent oracles.

* A matrix of source geometries (axial, sagittal, coronal, oblique, flipped
  rows, reversed slice order) goes through a Volume pipeline —
  ``get_volume_from_series`` → ``to_patient_orientation('RAH')`` → crop →
  threshold → ``match_geometry`` back → ``Segmentation(pixel_array=volume)``
  — and highdicom (``get_pixels_by_source_instance`` and ``get_volume``) and
  dcmqi (``segimage2itkimage``, compared in world coordinates) must read every
  voxel back at the world position of the truth; ``dciodvfy`` must be clean.
  The truth is computed *without* the package's matching code: each voxel of
  the thresholded (reoriented, cropped) volume is sent through its affine to
  LPS and then onto the source grid by :func:`oracles.source_grid`.
* The same reoriented volume written *without* matching back must still put
  every voxel at the right world position, with the derivation references
  highdicom writes for it.
* The three derivation cases of the guide ("Per-Frame Derivation Image
  Sequences"): our file and highdicom's file for the same inputs must have the
  same frames, plane positions (1e-4 mm), referenced SOP instances / frame
  numbers and Spatial Locations Preserved values.
* A hypothesis property over random orientations, flips and permutations.
* Bad input raises the package's errors with a clear message.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import highdicom
import numpy as np
import pydicom
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monai_dicomseg import synthetic
from oracles import (
    BACKEND_NAME,
    backend_errors,
    build_segmentation,
    dciodvfy_errors,
    dcmqi_labels_on_source_grid,
    dcmqi_segimage2itkimage,
    highdicom_pixels,
    match_message,
    one_hot,
    source_grid,
)

pytestmark = [pytest.mark.highdicom, pytest.mark.filterwarnings("ignore::UserWarning")]

SHAPE = (5, 16, 20)
SPACING = (2.5, 0.8, 0.7)
N_SEGMENTS = 2

# make_ct_series draws organ 1 at 60 HU and organ 2 at 300 HU (± 3 HU of
# texture) on a 20 HU body, so two thresholds recover the label map exactly.
LOW_THRESHOLD, HIGH_THRESHOLD = 45.0, 200.0

GEOMETRIES: dict[str, dict[str, Any]] = {
    "axial": {"orientation": "axial"},
    "sagittal": {"orientation": "sagittal"},
    "coronal": {"orientation": "coronal"},
    "oblique": {"orientation": "oblique"},
    "flipped_rows": {"orientation": "axial", "flip_rows": True},
    "reversed_order": {"orientation": "axial", "reverse_order": True},
    "oblique_flipped_reversed": {"orientation": "oblique", "flip_rows": True,
                                 "reverse_order": True},
}


# --------------------------------------------------------------------------- helpers


def make_source(seed: int = 1, **kwargs: Any) -> tuple[list[pydicom.Dataset], np.ndarray]:
    """A small synthetic CT series and its ``(F, R, C)`` label map (generation = list order)."""
    labels = synthetic.make_ellipsoid_labels(SHAPE, n_labels=N_SEGMENTS, seed=seed)
    series = synthetic.make_ct_series(SHAPE, SPACING, labels=labels, seed=seed, **kwargs)
    return series, labels


def threshold(volume: Any) -> Any:
    """The "model": a label map of the CT volume by two HU thresholds."""
    array = np.asarray(volume.array)
    labels = (array > LOW_THRESHOLD).astype(np.uint8) + (array > HIGH_THRESHOLD).astype(np.uint8)
    return volume.with_array(labels)


def world_of_voxels(affine: np.ndarray, spatial_shape: tuple[int, ...]) -> np.ndarray:
    """``(N, 3)`` LPS positions of every voxel of a volume, in C order."""
    ijk = np.indices(spatial_shape).reshape(3, -1)
    homogeneous = np.vstack([ijk, np.ones((1, ijk.shape[1]))])
    return (np.asarray(affine, dtype=np.float64) @ homogeneous)[:3].T


def scatter_to_source(array: np.ndarray, affine: np.ndarray,
                      series: list[pydicom.Dataset]) -> tuple[np.ndarray, np.ndarray]:
    """Put a 3D label volume onto the source grid through world coordinates.

    Returns ``(labels, covered)``: ``(F, R, C)`` labels in ``series`` order and
    the mask of source voxels some volume voxel landed on. A labelled voxel
    that falls off the source grid fails the test.
    """
    grid = source_grid(series)
    index = grid.indices_of(world_of_voxels(affine, array.shape[:3]))
    values = np.asarray(array).reshape(-1)
    off_grid = index[:, 0] < 0
    assert not np.any(off_grid & (values > 0)), (
        f"{int(np.sum(off_grid & (values > 0)))} labelled voxels fall off the source grid")
    labels = np.zeros(grid.shape, dtype=np.uint8)
    covered = np.zeros(grid.shape, dtype=bool)
    f, r, c = index[~off_grid].T
    labels[f, r, c] = values[~off_grid]
    covered[f, r, c] = True
    return labels, covered


def to_highdicom_volume(volume: Any) -> highdicom.Volume:
    """The same volume as a ``highdicom.Volume`` (array, affine, FoR, SegmentNumber channel)."""
    channels = None
    if np.asarray(volume.array).ndim == 4:
        channels = {"SegmentNumber": [int(v) for v in volume.get_channel_values("SegmentNumber")]}
    return highdicom.Volume(np.asarray(volume.array), np.asarray(volume.affine), "PATIENT",
                            volume.frame_of_reference_uid, channels=channels)


def frame_summary(seg: pydicom.Dataset) -> list[dict[str, Any]]:
    """Per frame: segment number, LPS position and derivation references."""
    summary = []
    shared = seg.SharedFunctionalGroupsSequence[0]
    for frame in seg.PerFrameFunctionalGroupsSequence:
        references = []
        for derivation in frame.get("DerivationImageSequence", []):
            for source in derivation.get("SourceImageSequence", []):
                number = source.get("ReferencedFrameNumber")
                references.append((str(source.ReferencedSOPInstanceUID),
                                   None if number is None else int(number),
                                   str(source.get("SpatialLocationsPreserved"))))
        # highdicom moves it to the shared groups when there is one segment
        identification = frame.get("SegmentIdentificationSequence",
                                   shared.get("SegmentIdentificationSequence"))
        summary.append({
            "segment": None if identification is None else int(identification[0].ReferencedSegmentNumber),
            "position": np.array([float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]),
            "references": sorted(references, key=str),
        })
    return summary


def assert_same_frames(ours: pydicom.Dataset, theirs: pydicom.Dataset) -> list[dict[str, Any]]:
    """Our SEG and highdicom's agree frame by frame on position and derivation."""
    mine, reference = frame_summary(ours), frame_summary(theirs)
    assert len(mine) == len(reference), (len(mine), len(reference))
    for index, (a, b) in enumerate(zip(mine, reference)):
        assert a["segment"] == b["segment"], (index, a["segment"], b["segment"])
        np.testing.assert_allclose(a["position"], b["position"], atol=1e-4, rtol=0,
                                   err_msg=f"frame {index + 1} ImagePositionPatient")
        assert a["references"] == b["references"], (index, a["references"], b["references"])
    for keyword in ("PlaneOrientationSequence", "PixelMeasuresSequence"):
        a_item = ours.SharedFunctionalGroupsSequence[0][keyword][0]
        b_item = theirs.SharedFunctionalGroupsSequence[0][keyword][0]
        for attribute in ("ImageOrientationPatient", "PixelSpacing"):
            if attribute in b_item:
                np.testing.assert_allclose([float(v) for v in a_item[attribute].value],
                                           [float(v) for v in b_item[attribute].value],
                                           atol=1e-5, err_msg=attribute)
    return mine


def preserved_values(summary: list[dict[str, Any]]) -> set[str]:
    """The set of SpatialLocationsPreserved values; ``{"empty"}`` when no frame has references."""
    values = {ref[2] for frame in summary for ref in frame["references"]}
    if not values:
        return {"empty"}
    assert all(frame["references"] for frame in summary), "some frames lack references"
    return values


def write_both(hd: Any, series: Any, ours_input: Any, theirs_input: Any,
               n_segments: int = N_SEGMENTS, **geometry: Any) -> tuple[pydicom.Dataset, pydicom.Dataset]:
    """Build the SEG with the package under test and with highdicom, from the same inputs."""
    ours_geometry = {k: v[0] for k, v in geometry.items()}
    theirs_geometry = {k: v[1] for k, v in geometry.items()}
    ours = build_segmentation(hd, series, ours_input, "BINARY", n_segments=n_segments,
                              **ours_geometry)
    theirs = build_segmentation(highdicom, series, theirs_input, "BINARY",
                                n_segments=n_segments, **theirs_geometry)
    return _reread(ours), _reread(theirs)


def _reread(seg: pydicom.Dataset) -> pydicom.Dataset:
    buffer = io.BytesIO()
    seg.save_as(buffer)
    buffer.seek(0)
    return pydicom.dcmread(buffer)


def highdicom_volume_on_source(path: Any, series: list[pydicom.Dataset]) -> tuple[np.ndarray, np.ndarray]:
    """highdicom's ``get_volume`` of a SEG (label map), scattered onto the source grid."""
    seg = highdicom.seg.segread(path)
    volume = seg.get_volume(combine_segments=True, skip_overlap_checks=True)
    return scatter_to_source(np.asarray(volume.array), volume.affine, series)


# --------------------------------------------------------------------------- pipeline matrix


def _pipeline(hd: Any, series: list[pydicom.Dataset]) -> tuple[Any, Any]:
    """Reorient to RAH, crop, threshold; returns (thresholded volume, original source geometry)."""
    source_volume = hd.get_volume_from_series(series)
    original_geometry = source_volume.get_geometry()
    reoriented = source_volume.to_patient_orientation("RAH")
    cropped = reoriented.crop_to_spatial_shape(
        tuple(max(size - 3, -(-3 * size // 4)) for size in reoriented.spatial_shape))
    return threshold(cropped), original_geometry


def _truth(seg_volume: Any, series: list[pydicom.Dataset], labels: np.ndarray) -> np.ndarray:
    """The thresholded volume on the source grid, sanity-checked against the phantom's labels."""
    truth, covered = scatter_to_source(np.asarray(seg_volume.array), seg_volume.affine, series)
    assert covered.sum() == np.prod(seg_volume.spatial_shape), "crop does not map 1:1 to source voxels"
    np.testing.assert_array_equal(truth[covered], labels[covered])
    assert set(np.unique(truth)) == {0, 1, 2}, "the crop lost an organ; choose another seed"
    return truth


@pytest.mark.dcmqi
@pytest.mark.dciodvfy
@pytest.mark.parametrize("segmentation_type", ["BINARY", "LABELMAP"])
@pytest.mark.parametrize("geometry", list(GEOMETRIES.values()), ids=list(GEOMETRIES))
def test_volume_pipeline_matched_back(hd: Any, geometry: dict[str, Any], segmentation_type: str,
                                      tmp_path: Path) -> None:
    series, labels = make_source(**geometry)
    seg_volume, original_geometry = _pipeline(hd, series)
    truth = _truth(seg_volume, series, labels)
    matched = seg_volume.match_geometry(original_geometry)
    assert matched.spatial_shape == SHAPE

    seg = build_segmentation(hd, series, matched, segmentation_type, n_segments=N_SEGMENTS)
    path = tmp_path / "seg.dcm"
    seg.save_as(path)
    assert dciodvfy_errors(path) == []

    # Derivations: matched back to the source grid → one YES reference per frame.
    summary = frame_summary(pydicom.dcmread(path))
    assert preserved_values(summary) == {"YES"}
    assert all(len(frame["references"]) == 1 for frame in summary)

    expected = one_hot(truth, N_SEGMENTS)
    np.testing.assert_array_equal(highdicom_pixels(path, series), expected)

    by_volume, covered = highdicom_volume_on_source(path, series)
    np.testing.assert_array_equal(by_volume, np.where(covered, truth, 0))
    assert not np.any(truth[~covered]), "highdicom's volume misses labelled voxels"

    images = dcmqi_segimage2itkimage(path, tmp_path / "dcmqi")
    np.testing.assert_array_equal(dcmqi_labels_on_source_grid(images, source_grid(series)), expected)


@pytest.mark.dcmqi
@pytest.mark.dciodvfy
@pytest.mark.parametrize("geometry", list(GEOMETRIES.values()), ids=list(GEOMETRIES))
def test_volume_pipeline_reoriented_not_matched(hd: Any, geometry: dict[str, Any],
                                                tmp_path: Path) -> None:
    """The reoriented, cropped volume written as it is: right world positions, highdicom's derivations."""
    series, labels = make_source(**geometry)
    seg_volume, _ = _pipeline(hd, series)
    truth = _truth(seg_volume, series, labels)

    ours, theirs = write_both(hd, series, seg_volume, to_highdicom_volume(seg_volume))
    summary = assert_same_frames(ours, theirs)
    # A cropped volume never keeps the source frame size: references, if any, are NO.
    assert preserved_values(summary) in ({"NO"}, {"empty"})

    path = tmp_path / "seg.dcm"
    ours.save_as(path)
    assert dciodvfy_errors(path) == []
    by_volume, covered = highdicom_volume_on_source(path, series)
    np.testing.assert_array_equal(by_volume[covered], truth[covered])
    assert not np.any(truth[~covered]), "highdicom's volume misses labelled voxels"

    # dcmqi places the (reoriented) frames through world coordinates too.
    images = dcmqi_segimage2itkimage(path, tmp_path / "dcmqi")
    np.testing.assert_array_equal(dcmqi_labels_on_source_grid(images, source_grid(series)),
                                  one_hot(truth, N_SEGMENTS))


# --------------------------------------------------------------------------- derivation cases


def _source_volume(hd: Any, series: list[pydicom.Dataset]) -> Any:
    """The labelled source volume (labels by threshold, so in the volume's own order)."""
    return threshold(hd.get_volume_from_series(series))


def _spacing_changed(volume: Any, hd: Any, factors: tuple[float, float, float]) -> Any:
    """The same array with the affine's axis ``k`` scaled by ``factors[k]`` about the first voxel."""
    affine = np.array(volume.affine, dtype=np.float64)
    affine[:3, :3] = affine[:3, :3] * np.asarray(factors)[np.newaxis, :]
    return hd.Volume(np.asarray(volume.array), affine, "PATIENT", volume.frame_of_reference_uid)


def _shifted(volume: Any, hd: Any, offset_mm: np.ndarray) -> Any:
    affine = np.array(volume.affine, dtype=np.float64)
    affine[:3, 3] += offset_mm
    return hd.Volume(np.asarray(volume.array), affine, "PATIENT", volume.frame_of_reference_uid)


def _rotated(volume: Any, hd: Any, degrees: float, axis: int) -> Any:
    """Rotate the volume's axes by ``degrees`` about LPS ``axis`` through its first voxel."""
    angle = np.deg2rad(degrees)
    a, b = [k for k in range(3) if k != axis]
    rotation = np.eye(3)
    rotation[a, a], rotation[a, b] = np.cos(angle), -np.sin(angle)
    rotation[b, a], rotation[b, b] = np.sin(angle), np.cos(angle)
    affine = np.array(volume.affine, dtype=np.float64)
    affine[:3, :3] = rotation @ affine[:3, :3]
    return hd.Volume(np.asarray(volume.array), affine, "PATIENT", volume.frame_of_reference_uid)


#: name → (transformation of the labelled source volume, expected Spatial Locations Preserved)
VOLUME_CASES: dict[str, tuple[Any, set[str]]] = {
    "identity": (lambda v, hd: v, {"YES"}),
    "slice_subset_reversed": (lambda v, hd: v[3:0:-1], {"YES"}),
    "subvoxel_shift_0.5um": (lambda v, hd: _shifted(v, hd, np.array([3e-4, -3e-4, 2e-4])), {"YES"}),
    "flip_rows": (lambda v, hd: v.flip_spatial(1), {"NO"}),
    "flip_columns": (lambda v, hd: v.flip_spatial(2), {"NO"}),
    "transpose_in_plane": (lambda v, hd: v.permute_spatial_axes([0, 2, 1]), {"NO"}),
    "in_plane_crop": (lambda v, hd: v[:, 2:12, 3:17], {"NO"}),
    "in_plane_shift_2um": (lambda v, hd: _shifted(v, hd, np.array([2e-3, 0.0, 0.0])), {"NO"}),
    "in_plane_spacing": (lambda v, hd: _spacing_changed(v, hd, (1.0, 1.5, 0.5)), {"NO"}),
    "in_plane_rotation_30deg": (lambda v, hd: _rotated(v, hd, 30.0, axis=2), {"NO"}),
    "slice_spacing": (lambda v, hd: _spacing_changed(v, hd, (2.0, 1.0, 1.0)), {"empty"}),
    "half_slice_shift": (lambda v, hd: _shifted(v, hd, np.array([0.0, 0.0, 1.25])), {"empty"}),
    "out_of_plane_rotation_10deg": (lambda v, hd: _rotated(v, hd, 10.0, axis=0), {"empty"}),
    "reoriented_sagittal_planes": (lambda v, hd: v.to_patient_orientation("RAH"), {"empty"}),
}


@pytest.mark.parametrize("case", list(VOLUME_CASES.values()), ids=list(VOLUME_CASES))
def test_derivation_volume_cases_match_highdicom(hd: Any, case: tuple[Any, set[str]]) -> None:
    transform, expected = case
    series, _ = make_source(orientation="axial")
    volume = transform(_source_volume(hd, series), hd)
    ours, theirs = write_both(hd, series, volume, to_highdicom_volume(volume))
    summary = assert_same_frames(ours, theirs)
    assert preserved_values(summary) == expected
    if expected == {"YES"}:
        # Positions are the source's own values (copied, not recomputed).
        by_uid = {ds.SOPInstanceUID: ds for ds in series}
        for frame in summary:
            (uid, _, _), = frame["references"]
            np.testing.assert_array_equal(
                frame["position"], [float(v) for v in by_uid[uid].ImagePositionPatient])


def test_derivation_stacked_segment_number_channel(hd: Any) -> None:
    """A 4D Volume with a 'SegmentNumber' channel: one frame per (plane, segment), YES."""
    series, _ = make_source(orientation="sagittal")
    labels = _source_volume(hd, series)
    stacked = labels.with_array(one_hot(np.asarray(labels.array), N_SEGMENTS),
                                channels={"SegmentNumber": [1, 2]})
    ours, theirs = write_both(hd, series, stacked, to_highdicom_volume(stacked))
    summary = assert_same_frames(ours, theirs)
    assert preserved_values(summary) == {"YES"}
    assert {frame["segment"] for frame in summary} == {1, 2}
    np.testing.assert_array_equal(
        highdicom_pixels(_reread(ours), series), highdicom_pixels(_reread(theirs), series))


def test_derivation_stacked_flipped_in_plane(hd: Any) -> None:
    series, _ = make_source(orientation="coronal")
    labels = _source_volume(hd, series)
    stacked = labels.with_array(one_hot(np.asarray(labels.array), N_SEGMENTS),
                                channels={"SegmentNumber": [1, 2]}).flip_spatial(2)
    ours, theirs = write_both(hd, series, stacked, to_highdicom_volume(stacked))
    assert preserved_values(assert_same_frames(ours, theirs)) == {"NO"}


def _enhanced_volume(hd: Any, enhanced: pydicom.Dataset, labels: np.ndarray) -> Any:
    """A Volume of ``labels`` on the grid of a multi-frame source (frame k + 1 = slice k)."""
    grid = source_grid([enhanced])
    affine = np.eye(4)
    affine[:3, 0] = grid.positions[1] - grid.positions[0]
    affine[:3, 1] = grid.column_cosine * grid.row_spacing
    affine[:3, 2] = grid.row_cosine * grid.column_spacing
    affine[:3, 3] = grid.positions[0]
    return hd.Volume(labels, affine, "PATIENT", enhanced.FrameOfReferenceUID)


@pytest.mark.parametrize(
    "transform, expected",
    [
        (lambda v: v, {"YES"}),
        (lambda v: v[::-1], {"YES"}),
        (lambda v: v.flip_spatial(1), {"NO"}),
        (lambda v: v.permute_spatial_axes([1, 0, 2]), {"empty"}),
    ],
    ids=["identity", "reversed", "flip_rows", "out_of_plane"],
)
def test_derivation_multiframe_source_frame_numbers(hd: Any, transform: Any,
                                                    expected: set[str]) -> None:
    labels = synthetic.make_ellipsoid_labels(SHAPE, n_labels=N_SEGMENTS, seed=1)
    enhanced = synthetic.make_enhanced_ct(SHAPE, SPACING, labels=labels, seed=1)
    volume = transform(_enhanced_volume(hd, enhanced, labels))
    ours, theirs = write_both(hd, [enhanced], volume, to_highdicom_volume(volume))
    summary = assert_same_frames(ours, theirs)
    assert preserved_values(summary) == expected
    if expected != {"empty"}:
        assert all(ref[1] is not None for frame in summary for ref in frame["references"])
    if expected == {"YES"}:
        np.testing.assert_array_equal(highdicom_pixels(_reread(ours), [enhanced]),
                                      one_hot(labels, N_SEGMENTS))


@pytest.mark.parametrize("rows", [[0, 1, 2, 3, 4], [4, 1]], ids=["all_frames", "subset_reversed"])
def test_derivation_multiframe_explicit_positions(hd: Any, rows: list[int]) -> None:
    """plane_positions of some frames of a multi-frame source: YES with their frame numbers."""
    labels = synthetic.make_ellipsoid_labels(SHAPE, n_labels=N_SEGMENTS, seed=1)
    enhanced = synthetic.make_enhanced_ct(SHAPE, SPACING, labels=labels, seed=1)
    geometry = _explicit(hd, source_grid([enhanced]).positions[rows], None, None)
    ours, theirs = write_both(hd, [enhanced], labels[rows], labels[rows], **geometry)
    summary = assert_same_frames(ours, theirs)
    assert preserved_values(summary) == {"YES"}
    assert {ref[1] for frame in summary for ref in frame["references"]} <= {r + 1 for r in rows}


# --------------------------------------------------------------------------- explicit plane geometry


def _explicit(hd: Any, positions: np.ndarray | None, orientation: Any | None,
              spacing: Any | None, thickness: float = 2.5) -> dict[str, Any]:
    """``plane_positions`` / ``plane_orientation`` / ``pixel_measures`` for both libraries."""
    arguments: dict[str, Any] = {}
    if positions is not None:
        arguments["plane_positions"] = tuple(
            [module.PlanePositionSequence(module.CoordinateSystemNames.PATIENT, list(map(float, p)))
             for p in positions]
            for module in (hd, highdicom))
    if orientation is not None:
        arguments["plane_orientation"] = tuple(
            module.PlaneOrientationSequence(module.CoordinateSystemNames.PATIENT,
                                            list(map(float, orientation)))
            for module in (hd, highdicom))
    if spacing is not None:
        arguments["pixel_measures"] = tuple(
            module.PixelMeasuresSequence(slice_thickness=thickness,
                                         pixel_spacing=list(map(float, spacing)))
            for module in (hd, highdicom))
    return arguments


def test_derivation_guide_explicit_geometry_ct2(hd: Any, ct2_series: list[pydicom.Dataset]) -> None:
    """The guide's "Arbitrary Geometries" example, for both libraries."""
    source_images = highdicom.spatial.sort_datasets(list(ct2_series))
    mask = np.zeros((2, 100, 100), np.uint8)
    mask[0, 50:60, 50:60] = 1
    mask[1, 10:20, 10:20] = 1
    geometry = _explicit(hd, np.array([[100.0, 50.0, -50.0], [100.0, 50.0, -48.0]]),
                         [0.0, 1.0, 0.0, -1.0, 0.0, 0.0], [2.0, 2.0], thickness=2.0)
    ours, theirs = write_both(hd, source_images, mask, mask, n_segments=1, **geometry)
    assert preserved_values(assert_same_frames(ours, theirs)) == {"empty"}


def _axial_positions(series: list[pydicom.Dataset]) -> np.ndarray:
    return np.array([[float(v) for v in ds.ImagePositionPatient] for ds in series])


#: name → (build (positions, orientation, spacing, mask) from the series and labels, expected)
EXPLICIT_CASES: dict[str, tuple[Any, set[str]]] = {
    "source_positions_only": (
        lambda s, lab: (_axial_positions(s), None, None, lab), {"YES"}),
    "source_geometry_explicit": (
        lambda s, lab: (_axial_positions(s), [1, 0, 0, 0, 1, 0], [0.8, 0.7], lab), {"YES"}),
    "positions_subset_reversed": (
        lambda s, lab: (_axial_positions(s)[[4, 2, 0]], None, None, lab[[4, 2, 0]]), {"YES"}),
    "in_plane_rotation_90deg": (
        lambda s, lab: (_axial_positions(s), [0, 1, 0, -1, 0, 0], [0.7, 0.8],
                      np.ascontiguousarray(np.rot90(lab, axes=(1, 2)))), {"NO"}),
    "in_plane_spacing": (
        lambda s, lab: (_axial_positions(s) + [1.0, 2.0, 0.0], None, [1.6, 1.4], lab[:, :8, :10]),
        {"NO"}),
    "flipped_orientation": (
        lambda s, lab: (_axial_positions(s), [-1, 0, 0, 0, 1, 0], None, lab[:, :, ::-1]), {"NO"}),
    "positions_between_slices": (
        lambda s, lab: (_axial_positions(s) + [0.0, 0.0, 1.0], None, None, lab), {"empty"}),
    "one_position_off": (
        lambda s, lab: (np.vstack([_axial_positions(s)[:4], _axial_positions(s)[3] + [0, 0, 0.5]]),
                      None, None, lab), {"empty"}),
    "out_of_plane": (
        lambda s, lab: (_axial_positions(s)[:, [0, 2, 1]], [1, 0, 0, 0, 0, -1], None, lab), {"empty"}),
}


_COPIED_POSITIONS_REASON = (
    "highdicom 0.28.2 leaves the Derivation Image Sequence empty when the plane positions are "
    "copied from the sources (plane_positions=None) but plane_orientation / pixel_measures "
    "differ in-plane (Image._prepare_spatial_metadata only calls _match_planes for given "
    "positions); monai_dicomseg writes references with SpatialLocationsPreserved NO, as the "
    "guide's text describes")

#: Cases where the guide's wording and highdicom differ; we follow highdicom (no references
#: when only the orientation or pixel measures change and positions are copied).
EXPLICIT_DISCREPANCIES: dict[str, tuple[Any, set[str]]] = {
    "orientation_only_flipped": (
        lambda s, lab: (None, [-1, 0, 0, 0, 1, 0], None, lab[:, :, ::-1]), {"empty"}),
    "pixel_measures_only_scaled": (
        lambda s, lab: (None, None, [1.6, 1.4], lab), {"empty"}),
}


@pytest.mark.parametrize(
    "case",
    [pytest.param(value, id=name) for name, value in EXPLICIT_CASES.items()]
    + [pytest.param(value, id=name) for name, value in EXPLICIT_DISCREPANCIES.items()],
)
def test_derivation_explicit_geometry_matches_highdicom(hd: Any, case: tuple[Any, set[str]]) -> None:
    build, expected = case
    series, labels = make_source(orientation="axial")
    positions, orientation, spacing, mask = build(series, labels)
    mask = np.ascontiguousarray(mask)
    ours, theirs = write_both(hd, series, mask, mask,
                              **_explicit(hd, positions, orientation, spacing))
    assert preserved_values(assert_same_frames(ours, theirs)) == expected


_SPACING_REASON = (
    "highdicom 0.28.2 always adds Pixel Measures SpacingBetweenSlices computed from the plane "
    "positions when they are regularly spaced (Image.__init__, get_volume_positions); "
    "monai_dicomseg omits it for aligned arrays and explicit plane_positions")


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("volume", id="volume"),
        pytest.param("aligned", id="aligned"),
        pytest.param("explicit_positions", id="explicit_positions"),
        pytest.param("explicit_every_other", id="explicit_every_other"),
    ],
)
def test_spacing_between_slices_matches_highdicom(hd: Any, kind: str) -> None:
    series, labels = make_source(orientation="oblique")
    if kind == "volume":
        volume = _source_volume(hd, series)
        ours, theirs = write_both(hd, series, volume, to_highdicom_volume(volume))
    elif kind == "aligned":
        ours, theirs = write_both(hd, series, labels, labels)
    else:
        rows = [0, 1, 2, 3, 4] if kind == "explicit_positions" else [4, 2, 0]
        geometry = _explicit(hd, _axial_positions(series)[rows], None, None)
        ours, theirs = write_both(hd, series, labels[rows], labels[rows], **geometry)
    mine = ours.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    reference = theirs.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert "SpacingBetweenSlices" in reference
    assert "SpacingBetweenSlices" in mine, "SpacingBetweenSlices missing"
    assert float(mine.SpacingBetweenSlices) == pytest.approx(float(reference.SpacingBetweenSlices))


# --------------------------------------------------------------------------- property


_ORIENTATIONS = ["axial", "sagittal", "coronal", "oblique"]


def _random_cosines(seed: int) -> np.ndarray:
    """Direction cosines of a random rotation (QR of a seeded Gaussian matrix)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return np.concatenate([q[:, 0], q[:, 1]])


@given(
    orientation=st.one_of(st.sampled_from(_ORIENTATIONS), st.integers(0, 10)),
    flips=st.lists(st.integers(0, 2), unique=True, max_size=3),
    permutation=st.permutations([0, 1, 2]),
    reorient=st.booleans(),
    seed=st.integers(0, 3),
)
def test_property_transform_and_match_back(hd: Any, orientation: Any, flips: list[int],
                                           permutation: list[int], reorient: bool,
                                           seed: int) -> None:
    if isinstance(orientation, int):
        orientation = _random_cosines(orientation)
    series, labels = make_source(seed=seed, orientation=orientation)
    source_volume = hd.get_volume_from_series(series)
    geometry = source_volume.get_geometry()
    volume = source_volume.to_patient_orientation("RAH") if reorient else source_volume
    volume = volume.permute_spatial_axes(permutation)
    if flips:
        volume = volume.flip_spatial(flips)
    matched = threshold(volume).match_geometry(geometry)
    assert matched.geometry_equal(geometry)

    seg = build_segmentation(hd, series, matched, "BINARY", n_segments=N_SEGMENTS)
    np.testing.assert_array_equal(highdicom_pixels(_reread(seg), series),
                                  one_hot(labels, N_SEGMENTS))


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def labelled(hd: Any) -> tuple[list[pydicom.Dataset], Any]:
    series, _ = make_source(orientation="axial")
    return series, _source_volume(hd, series)


def test_volume_with_other_frame_of_reference(hd: Any, labelled: Any) -> None:
    series, volume = labelled
    other = hd.Volume(np.asarray(volume.array), volume.affine, "PATIENT", hd.UID())
    with pytest.raises(backend_errors().GeometryError, match=match_message("FrameOfReferenceUID")):
        build_segmentation(hd, series, other, "BINARY", n_segments=N_SEGMENTS)


def test_volume_in_slide_coordinates(hd: Any, labelled: Any) -> None:
    series, volume = labelled
    slide = hd.Volume(np.asarray(volume.array), volume.affine, "SLIDE",
                      volume.frame_of_reference_uid)
    errors = backend_errors()
    expected = (errors.UnsupportedError, errors.GeometryError) if BACKEND_NAME == "highdicom" \
        else errors.UnsupportedError
    with pytest.raises(expected, match=match_message("SLIDE")):
        build_segmentation(hd, series, slide, "BINARY", n_segments=N_SEGMENTS)


def test_plane_positions_count_differs_from_frames(hd: Any, labelled: Any) -> None:
    series, _ = labelled
    _, labels = make_source(orientation="axial")
    positions = _explicit(hd, _axial_positions(series)[:4], None, None)["plane_positions"][0]
    with pytest.raises(backend_errors().InputError, match=match_message(r"plane_positions has 4 items.*5 frames")):
        build_segmentation(hd, series, labels, "BINARY", n_segments=N_SEGMENTS,
                           plane_positions=positions)


@pytest.mark.parametrize("argument", ["plane_positions", "plane_orientation", "pixel_measures"])
def test_plane_geometry_with_volume(hd: Any, labelled: Any, argument: str) -> None:
    series, volume = labelled
    geometry = _explicit(hd, _axial_positions(series), [1, 0, 0, 0, 1, 0], [0.8, 0.7])
    # highdicom raises TypeError here; ours an InputError (ValueError).
    errors = backend_errors()
    expected = errors.InputTypeError if BACKEND_NAME == "highdicom" else errors.InputError
    with pytest.raises(expected, match=match_message(f"{argument}.*Volume")):
        build_segmentation(hd, series, volume, "BINARY", n_segments=N_SEGMENTS,
                           **{argument: geometry[argument][0]})


@pytest.mark.parametrize(
    "channels",
    [None, {"OpticalPathIdentifier": ["1", "2"]}],
    ids=["no_channel", "other_channel"],
)
def test_4d_volume_without_segment_number_channel(hd: Any, labelled: Any, channels: Any) -> None:
    series, volume = labelled
    stacked = one_hot(np.asarray(volume.array), N_SEGMENTS)
    if channels is None:
        with pytest.raises(backend_errors().InputError, match=match_message("channel")):
            four_d = hd.Volume(stacked, volume.affine, "PATIENT", volume.frame_of_reference_uid)
            build_segmentation(hd, series, four_d, "BINARY", n_segments=N_SEGMENTS)
        return
    four_d = volume.with_array(stacked, channels=channels)
    with pytest.raises(backend_errors().InputError, match=match_message("SegmentNumber")):
        build_segmentation(hd, series, four_d, "BINARY", n_segments=N_SEGMENTS)


def test_segment_number_channel_not_1_to_s(hd: Any, labelled: Any) -> None:
    series, volume = labelled
    four_d = volume.with_array(one_hot(np.asarray(volume.array), N_SEGMENTS),
                               channels={"SegmentNumber": [1, 3]})
    with pytest.raises(backend_errors().InputError, match=match_message("SegmentNumber")):
        build_segmentation(hd, series, four_d, "BINARY", n_segments=N_SEGMENTS)


def test_duplicate_plane_positions(hd: Any, labelled: Any) -> None:
    series, _ = labelled
    _, labels = make_source(orientation="axial")
    positions = _axial_positions(series)
    positions[3] = positions[2]
    geometry = _explicit(hd, positions, None, None)
    with pytest.raises(backend_errors().GeometryError, match=match_message("duplicate|same")):
        build_segmentation(hd, series, labels, "BINARY", n_segments=N_SEGMENTS,
                           plane_positions=geometry["plane_positions"][0])
