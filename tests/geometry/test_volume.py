"""Volume / VolumeGeometry against highdicom.Volume on the same inputs."""
from __future__ import annotations

import ast
import pathlib

import highdicom
import nibabel
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import monai_dicomseg as hd
from monai_dicomseg.errors import GeometryError, InputError, InputTypeError
from monai_dicomseg.geometry.affine import stack_affine
from monai_dicomseg.geometry.volume import ChannelDescriptor, Volume, VolumeGeometry

FOR_UID = "1.2.826.0.1.3680043.8.498.1"


def rotation(q) -> np.ndarray:
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


OBLIQUE = stack_affine(rotation([0.9, 0.2, -0.3, 0.1]) * [2.0, 0.5, 0.75], [10.0, -20.0, 35.0])


def pair(shape=(4, 5, 6), affine=OBLIQUE, dtype=np.int16):
    array = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
    return (Volume(array, affine, "PATIENT", FOR_UID),
            highdicom.Volume(array, affine, "PATIENT", FOR_UID))


def assert_same(ours, theirs, atol=1e-9):
    np.testing.assert_allclose(ours.affine, theirs.affine, atol=atol)
    assert ours.spatial_shape == theirs.spatial_shape
    if hasattr(theirs, "array"):
        np.testing.assert_array_equal(ours.array, theirs.array)


# ------------------------------------------------------------------ construction
def test_guide_volume_from_components_matches_highdicom():
    mask = np.zeros((2, 100, 100), np.uint8)
    mask[0, 50:60, 50:60] = 1
    kwargs = dict(array=mask, spacing=[1.25, 1.25, 5.0], direction=np.eye(3), position=[10.0, 20.0, 30.0],
                  frame_of_reference_uid=FOR_UID)
    ours = hd.Volume.from_components(coordinate_system=hd.CoordinateSystemNames.PATIENT, **kwargs)
    theirs = highdicom.Volume.from_components(coordinate_system="PATIENT", **kwargs)
    assert_same(ours, theirs)
    assert ours.frame_of_reference_uid == FOR_UID


@pytest.mark.parametrize("kwargs", [
    dict(spacing=[1.0, 2.0, 3.0], patient_orientation="FPL", center_position=[1.0, 2.0, 3.0]),
    dict(spacing=[0.5, 0.5, 0.5], direction=rotation([1, 2, 3, 4]), position=[0, 0, 0]),
], ids=["orientation-centre", "oblique"])
def test_from_components_matches_highdicom(kwargs):
    array = np.zeros((3, 4, 5))
    assert_same(Volume.from_components(array, coordinate_system="PATIENT", **kwargs),
                highdicom.Volume.from_components(array, coordinate_system="PATIENT", **kwargs))
    assert_same(VolumeGeometry.from_components((3, 4, 5), coordinate_system="PATIENT", **kwargs),
                highdicom.VolumeGeometry.from_components((3, 4, 5), coordinate_system="PATIENT", **kwargs))


def test_from_attributes_matches_highdicom():
    kwargs = dict(image_position=[1, 2, 3], image_orientation=[0, 1, 0, 0, 0, -1], pixel_spacing=[0.5, 0.8],
                  spacing_between_slices=2.0, coordinate_system="PATIENT")
    assert_same(VolumeGeometry.from_attributes(rows=4, columns=5, number_of_frames=3, **kwargs),
                highdicom.VolumeGeometry.from_attributes(rows=4, columns=5, number_of_frames=3, **kwargs))
    array = np.ones((3, 4, 5))
    assert_same(Volume.from_attributes(array=array, **kwargs),
                highdicom.Volume.from_attributes(array=array, **kwargs))


@pytest.mark.parametrize("args, error, match", [
    ((np.zeros((2, 2)), np.eye(4), "PATIENT"), InputError, "at least 3"),
    (([[[1]]], np.eye(4), "PATIENT"), InputTypeError, "numpy.ndarray"),
    ((np.zeros((2, 2, 2), dtype=object), np.eye(4), "PATIENT"), InputTypeError, "dtype"),
    ((np.zeros((2, 2, 2), dtype=complex), np.eye(4), "PATIENT"), InputTypeError, "dtype"),
    ((np.zeros((2, 2, 2)), np.eye(3), "PATIENT"), InputError, r"affine must have shape \(4, 4\)"),
    ((np.zeros((2, 2, 2)), np.ones((4, 4)), "PATIENT"), InputError, "last row"),
    ((np.zeros((2, 2, 2)), np.eye(4), "WORLD"), InputError, "coordinate_system must be one of"),
    ((np.zeros((2, 2, 2, 3)), np.eye(4), "PATIENT"), InputError, "channels must describe every channel axis"),
], ids=["2d", "list", "object-dtype", "complex", "affine-shape", "affine-row", "coordinate-system", "channels"])
def test_volume_rejects_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        Volume(*args)


@pytest.mark.parametrize("channels, error, match", [
    ({"SegmentNumber": [1, 2]}, InputError, "has 2 value"),
    ({"SegmentNumber": [1, 2, "3"]}, InputTypeError, "must be int"),
    ({"NotAKeyword": [1, 2, 3]}, InputError, "not a supported DICOM attribute"),
    ({3.5: [1, 2, 3]}, InputTypeError, "str keyword or int tag"),
], ids=["length", "type", "unknown", "bad-identifier"])
def test_volume_rejects_bad_channels(channels, error, match):
    with pytest.raises(error, match=match):
        Volume(np.zeros((2, 2, 2, 3)), np.eye(4), "PATIENT", channels=channels)


def test_custom_channel_descriptor_rules():
    with pytest.raises(InputTypeError, match="value_type is required"):
        ChannelDescriptor("Mine", is_custom=True)
    with pytest.raises(InputError, match="is a DICOM keyword"):
        ChannelDescriptor("SegmentNumber", is_custom=True, value_type=int)
    with pytest.raises(InputTypeError, match="only be given for a custom"):
        ChannelDescriptor("SegmentNumber", value_type=int)
    custom = ChannelDescriptor("Mine", is_custom=True, value_type=float)
    volume = Volume(np.zeros((1, 1, 1, 2)), np.eye(4), "PATIENT", channels={custom: [0.5, 1.5]})
    assert volume.get_channel_values("Mine") == [0.5, 1.5]


def test_segment_number_channel_stacked_form():
    array = np.zeros((2, 3, 4, 3), dtype=bool)
    array[..., 1] = True
    volume = Volume(array, OBLIQUE, "PATIENT", channels={"SegmentNumber": np.array([1, 2, 5])})
    assert volume.channel_shape == (3,)
    assert volume.number_of_channel_dimensions == 1
    assert volume.get_channel_values("SegmentNumber") == [1, 2, 5]
    assert volume.get_channel_values(0x0062_0004) == [1, 2, 5]
    assert volume.channel_descriptors[0].keyword == "SegmentNumber"
    segment = volume.get_channel(SegmentNumber=2)
    assert segment.shape == (2, 3, 4) and segment.array.all()
    # highdicom's descriptor is accepted as a key
    theirs = Volume(array, OBLIQUE, "PATIENT",
                    channels={highdicom.ChannelDescriptor("SegmentNumber"): [1, 2, 5]})
    assert theirs.get_channel_values("SegmentNumber") == [1, 2, 5]
    # channels survive spatial operations
    assert volume.flip_spatial(0)[:, 1:].get_channel_values("SegmentNumber") == [1, 2, 5]
    with pytest.raises(InputError, match="no channel 'OpticalPathIdentifier'"):
        volume.get_channel_values("OpticalPathIdentifier")
    with pytest.raises(InputError, match="value 7 not found"):
        volume.get_channel(SegmentNumber=7)


def test_array_setter_checks_shape():
    volume, _ = pair()
    volume.array = np.zeros((4, 5, 6), np.uint8)
    assert volume.dtype == np.uint8
    with pytest.raises(InputError, match=r"new array shape \(4, 5, 7\)"):
        volume.array = np.zeros((4, 5, 7))


def test_with_array_copy_and_geometry():
    volume, _ = pair()
    other = volume.with_array(np.ones((4, 5, 6), bool))
    assert other.geometry_equal(volume) and other.dtype == np.bool_
    with pytest.raises(InputError, match="does not match"):
        volume.with_array(np.ones((4, 5, 5)))
    copy = volume.copy()
    copy.array[0, 0, 0] = 99
    assert volume.array[0, 0, 0] == 0
    geometry = volume.get_geometry()
    assert isinstance(geometry, VolumeGeometry) and geometry.geometry_equal(volume)
    assert geometry.with_array(volume.array).geometry_equal(volume)
    with pytest.raises(InputError, match="does not match the geometry"):
        geometry.with_array(np.zeros((1, 1, 1)))


def test_properties_match_highdicom():
    ours, theirs = pair()
    for name in ["spacing", "pixel_spacing", "spacing_between_slices", "position", "direction_cosines",
                 "center_position", "center_indices", "nearest_center_indices", "voxel_volume",
                 "physical_extent", "shape", "spatial_shape", "channel_shape"]:
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), atol=1e-9, err_msg=name)
    np.testing.assert_allclose(ours.direction, theirs.direction, atol=1e-12)
    np.testing.assert_allclose(ours.inverse_affine, theirs.inverse_affine, atol=1e-9)
    np.testing.assert_allclose(ours.unit_vectors(), theirs.unit_vectors(), atol=1e-12)
    np.testing.assert_allclose(ours.spacing_vectors(), theirs.spacing_vectors(), atol=1e-12)
    np.testing.assert_allclose(ours.get_affine("RAS"), theirs.get_affine("RAS"), atol=1e-12)
    assert ours.handedness.value == theirs.handedness.value
    assert ours.coordinate_system == hd.CoordinateSystemNames.PATIENT


def test_index_mapping_matches_highdicom():
    ours, theirs = pair()
    indices = np.array([[0, 0, 0], [3, 4, 5], [1.5, 2.0, -1.0]])
    np.testing.assert_allclose(ours.map_indices_to_reference(indices),
                               theirs.map_indices_to_reference(indices), atol=1e-9)
    points = ours.map_indices_to_reference(indices)
    np.testing.assert_allclose(ours.map_reference_to_indices(points), indices, atol=1e-9)
    np.testing.assert_array_equal(ours.map_reference_to_indices(points[:2], round_output=True),
                                  theirs.map_reference_to_indices(points[:2], round_output=True))
    with pytest.raises(GeometryError, match="outside the volume"):
        ours.map_reference_to_indices(points, check_bounds=True)
    with pytest.raises(InputError, match=r"indices must have shape \(N, 3\)"):
        ours.map_indices_to_reference(np.zeros(3))
    with pytest.raises(InputError, match=r"coordinates must have shape \(N, 3\)"):
        ours.map_reference_to_indices(np.zeros((2, 2)))


def test_plane_attributes_match_highdicom():
    ours, theirs = pair()
    our_positions, their_positions = ours.get_plane_positions(), theirs.get_plane_positions()
    assert len(our_positions) == 4
    for a, b in zip(our_positions, their_positions):
        np.testing.assert_allclose([float(v) for v in a[0].ImagePositionPatient],
                                   [float(v) for v in b[0].ImagePositionPatient], atol=1e-9)
        assert all(len(str(v)) <= 16 for v in a[0].ImagePositionPatient)
    assert isinstance(our_positions[0], hd.PlanePositionSequence)
    np.testing.assert_allclose(ours.get_plane_orientation().cosines,
                               theirs.get_plane_orientation().cosines, atol=1e-12)
    measures, their_measures = ours.get_pixel_measures()[0], theirs.get_pixel_measures()[0]
    for keyword in ["PixelSpacing", "SliceThickness", "SpacingBetweenSlices"]:
        np.testing.assert_allclose(np.asarray(measures.get(keyword), float),
                                   np.asarray(their_measures.get(keyword), float), atol=1e-9)
    assert ours.get_plane_position(2) == ours.get_plane_positions()[2]
    with pytest.raises(InputError, match="plane_index"):
        ours.get_plane_position(4)


# ------------------------------------------------------------------ spatial operations
@pytest.mark.parametrize("index", [
    1, -1, slice(1, 3), (slice(None), 2), (slice(None, None, -1), slice(1, None, 2), slice(4, 0, -3)),
    (0, 0, 0), (slice(-3, None), slice(None, -1)),
], ids=["int", "negative-int", "slice", "tuple-int", "steps", "single-voxel", "negative-bounds"])
def test_getitem_matches_highdicom(index):
    ours, theirs = pair()
    assert_same(ours[index], theirs[index])
    assert_same(ours.get_geometry()[index], theirs.get_geometry()[index])


@pytest.mark.parametrize("index, error, match", [
    (7, InputError, "out of bounds"),
    (slice(3, 1), InputError, "selects no voxels"),
    ((0, 0, 0, 0), InputError, "at most 3"),
    ([0, 1], InputTypeError, "int or slice"),
], ids=["out-of-bounds", "empty", "too-many", "list"])
def test_getitem_rejects(index, error, match):
    volume, _ = pair()
    with pytest.raises(error, match=match):
        volume[index]


@pytest.mark.parametrize("operation", [
    lambda v: v.flip_spatial(1), lambda v: v.flip_spatial([0, 2]),
    lambda v: v.permute_spatial_axes([2, 0, 1]), lambda v: v.swap_spatial_axes(0, 2),
    lambda v: v.pad(2), lambda v: v.pad([1, 3]), lambda v: v.pad([[1, 0], [0, 2], [3, 1]]),
    lambda v: v.pad([[1], [2], [0]], mode="EDGE"), lambda v: v.pad(1, mode="MAXIMUM"),
    lambda v: v.pad(1, constant_value=-5), lambda v: v.crop_to_spatial_shape((3, 2, 5)),
    lambda v: v.pad_to_spatial_shape((7, 6, 9)), lambda v: v.pad_or_crop_to_spatial_shape((2, 8, 6)),
], ids=["flip", "flip-two", "permute", "swap", "pad-int", "pad-pair", "pad-nested", "pad-edge",
        "pad-max", "pad-constant", "crop", "pad-to", "pad-or-crop"])
def test_spatial_operations_match_highdicom(operation):
    ours, theirs = pair()
    assert_same(operation(ours), operation(theirs))
    assert_same(operation(ours.get_geometry()), operation(theirs.get_geometry()))


@pytest.mark.parametrize("operation, match", [
    (lambda v: v.flip_spatial(3), "distinct values among 0, 1, 2"),
    (lambda v: v.permute_spatial_axes([0, 1]), "permutation of"),
    (lambda v: v.swap_spatial_axes(1, 1), "must differ"),
    (lambda v: v.swap_spatial_axes(0, 4), "must be 0, 1 or 2"),
    (lambda v: v.pad(-1), "non-negative"),
    (lambda v: v.pad([1, 2, 3]), r"\[before, after\]"),
    (lambda v: v.pad(1, mode="REFLECT"), "mode must be one of"),
    (lambda v: v.crop_to_spatial_shape((9, 1, 1)), "larger than"),
    (lambda v: v.pad_to_spatial_shape((1, 9, 9)), "smaller than"),
    (lambda v: v.crop_to_spatial_shape((1, 1)), "3 positive ints"),
], ids=["flip-axis", "permute", "swap-same", "swap-range", "pad-negative", "pad-flat", "pad-mode",
        "crop-larger", "pad-smaller", "crop-shape"])
def test_spatial_operations_reject(operation, match):
    volume, _ = pair()
    with pytest.raises(InputError, match=match):
        operation(volume)


@pytest.mark.parametrize("code", ["RAH", "LPS", "FPL", "SAR", "PIL", "HLA"])
def test_to_patient_orientation_matches_highdicom(code):
    ours, theirs = pair()
    assert_same(ours.to_patient_orientation(code), theirs.to_patient_orientation(code))
    assert "".join(d.value for d in ours.to_patient_orientation(code).get_closest_patient_orientation()) == \
        "".join(d.value for d in theirs.to_patient_orientation(code).get_closest_patient_orientation())


def test_match_orientation_matches_highdicom():
    ours, theirs = pair()
    target = VolumeGeometry.from_components((2, 2, 2), spacing=1.0, position=[0, 0, 0],
                                            patient_orientation="AFR", coordinate_system="PATIENT")
    their_target = highdicom.VolumeGeometry(target.affine, (2, 2, 2), "PATIENT")
    assert_same(ours.match_orientation(target), theirs.match_orientation(their_target))
    with pytest.raises(InputTypeError, match="Volume or VolumeGeometry"):
        ours.match_orientation("AFR")


def test_patient_only_operations_reject_slide_volumes():
    volume = Volume(np.zeros((1, 2, 2)), np.eye(4), "SLIDE")
    with pytest.raises(GeometryError, match="needs the PATIENT coordinate system"):
        volume.to_patient_orientation("LPS")
    with pytest.raises(GeometryError, match="needs the PATIENT coordinate system"):
        volume.get_closest_patient_orientation()
    with pytest.raises(InputError, match="only valid for the PATIENT"):
        Volume(np.zeros((1, 2, 2)), np.eye(4), "SLIDE", from_reference_convention="RAS")
    with pytest.raises(InputError, match="patient_orientation may only be given"):
        Volume.from_components(np.zeros((1, 1, 1)), spacing=1.0, position=[0, 0, 0],
                               patient_orientation="LPS", coordinate_system="SLIDE")


# ------------------------------------------------------------------ geometry equality
def test_geometry_equal_positive_and_tolerance():
    volume, _ = pair()
    nudged = volume.affine
    nudged[0, 3] += 1e-7
    same = Volume(volume.array, nudged, "PATIENT", FOR_UID)
    assert volume.geometry_equal(same)
    assert not volume.geometry_equal(same, tol=None)
    assert volume.geometry_equal(volume.get_geometry(), tol=None)
    assert volume.geometry_equal(Volume(volume.array, nudged, "PATIENT"))  # unknown FoR is not compared


@pytest.mark.parametrize("field", ["affine-position", "affine-direction", "spatial_shape",
                                   "coordinate_system", "frame_of_reference_uid"])
def test_geometry_equal_detects_each_field(field):
    volume, _ = pair()
    geometry = volume.get_geometry()
    affine, shape, system, uid = geometry.affine, geometry.spatial_shape, "PATIENT", FOR_UID
    if field == "affine-position":
        affine[2, 3] += 1e-3
    elif field == "affine-direction":
        affine[:3, :3] = affine[:3, [0, 2, 1]]
    elif field == "spatial_shape":
        shape = (4, 5, 7)
    elif field == "coordinate_system":
        system = "SLIDE"
    else:
        uid = "1.2.3.4"
    other = VolumeGeometry(affine, shape, system, uid)
    assert not volume.geometry_equal(other)
    assert not other.geometry_equal(volume)


def test_geometry_equal_rejects_non_volume():
    volume, _ = pair()
    with pytest.raises(InputTypeError, match="Volume or VolumeGeometry"):
        volume.geometry_equal(np.eye(4))


# ------------------------------------------------------------------ match_geometry
@pytest.mark.parametrize("operation", [
    lambda v: v.flip_spatial([0, 1]),
    lambda v: v.permute_spatial_axes([1, 2, 0]).flip_spatial(2),
    lambda v: v.to_patient_orientation("RAH").crop_to_spatial_shape((2, 3, 3)),
    lambda v: v[1:, ::-1, 2:5].pad(2),
], ids=["flip", "permute-flip", "orient-crop", "crop-pad"])
def test_match_geometry_matches_highdicom(operation):
    ours, theirs = pair()
    moved, their_moved = operation(ours), operation(theirs)
    result = moved.match_geometry(ours.get_geometry())
    their_result = their_moved.match_geometry(theirs.get_geometry())
    assert result.geometry_equal(ours)
    assert_same(result, their_result)
    # and back: the original volume onto the manipulated geometry
    assert_same(ours.match_geometry(moved.get_geometry()), theirs.match_geometry(their_moved.get_geometry()))


def test_match_geometry_subsamples_onto_coarser_grid():
    ours, theirs = pair()
    coarse, their_coarse = ours[::2, :, ::-3], theirs[::2, :, ::-3]
    result = ours.match_geometry(coarse.get_geometry())
    assert_same(result, theirs.match_geometry(their_coarse.get_geometry()))
    assert_same(result, coarse)
    with pytest.raises(GeometryError, match="not an integer multiple"):
        coarse.match_geometry(ours)


@settings(max_examples=40, deadline=None)
@given(q=st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(lambda q: np.linalg.norm(q) > 0.2),
       flips=st.lists(st.booleans(), min_size=3, max_size=3),
       order=st.permutations([0, 1, 2]),
       crop=st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 3)),
       pad=st.integers(0, 2))
def test_match_geometry_round_trip_property(q, flips, order, crop, pad):
    affine = stack_affine(rotation(q) * [1.5, 0.6, 2.0], [5.0, -1.0, 3.0])
    volume = Volume(np.arange(60, dtype=np.int32).reshape(4, 5, 3) + 1, affine, "PATIENT", FOR_UID)
    moved = volume.flip_spatial([a for a in range(3) if flips[a]]) if any(flips) else volume
    moved = moved.permute_spatial_axes(order).crop_to_spatial_shape(
        [min(c, n) for c, n in zip([crop[i] for i in order], moved.permute_spatial_axes(order).spatial_shape)]
    ).pad(pad)
    restored = moved.match_geometry(volume.get_geometry())
    assert restored.geometry_equal(volume)
    kept = restored.array != 0
    np.testing.assert_array_equal(restored.array[kept], volume.array[kept])
    assert kept.sum() == int(np.prod(moved.spatial_shape)) - (moved.array == 0).sum()


@pytest.mark.parametrize("target, match", [
    (lambda v: VolumeGeometry(stack_affine(rotation([1, 0.3, 0, 0]) @ np.diag(v.spacing), v.position),
                              v.spatial_shape, "PATIENT", FOR_UID), "not parallel"),
    (lambda v: VolumeGeometry(stack_affine(v.affine[:3, :3] * [1.5, 1, 1], v.position),
                              v.spatial_shape, "PATIENT", FOR_UID), "not an integer multiple"),
    (lambda v: VolumeGeometry(stack_affine(v.affine[:3, :3], v.map_indices_to_reference(np.array([[0.5, 0, 0]]))[0]),
                              v.spatial_shape, "PATIENT", FOR_UID), "fractional voxel index"),
    (lambda v: VolumeGeometry(v.affine, v.spatial_shape, "PATIENT", "1.2.3"), "FrameOfReferenceUID differs"),
    (lambda v: VolumeGeometry(v.affine, v.spatial_shape, "SLIDE", FOR_UID), "coordinate systems differ"),
], ids=["rotation", "spacing", "half-voxel", "frame-of-reference", "coordinate-system"])
def test_match_geometry_rejects_resampling(target, match):
    volume, _ = pair()
    with pytest.raises(GeometryError, match=match):
        volume.match_geometry(target(volume))


def test_match_geometry_rejects_non_volume():
    volume, _ = pair()
    with pytest.raises(InputTypeError, match="Volume or VolumeGeometry"):
        volume.match_geometry(volume.affine)


def test_guide_match_geometry_example():
    """Section "Segmentations from Volumes", up to seg_volume.match_geometry(...)."""
    from pydicom.data import get_testdata_file

    ct_series = [
        get_testdata_file('dicomdirtests/77654033/CT2/17136', read=True),
        get_testdata_file('dicomdirtests/77654033/CT2/17196', read=True),
        get_testdata_file('dicomdirtests/77654033/CT2/17166', read=True),
    ]
    source_volume = hd.get_volume_from_series(ct_series)
    original_source_geometry = source_volume.get_geometry()
    source_volume = (
        source_volume
        .to_patient_orientation('RAH')
        .crop_to_spatial_shape((10, 10, 3))
    )
    seg_volume = source_volume.with_array(
        source_volume.array > source_volume.array.mean()
    )
    seg_volume = seg_volume.match_geometry(original_source_geometry)

    assert seg_volume.geometry_equal(original_source_geometry)
    assert seg_volume.spatial_shape == (3, 16, 16)
    assert seg_volume.dtype == np.bool_
    their_source = highdicom.get_volume_from_series(ct_series)
    their_seg = their_source.to_patient_orientation('RAH').crop_to_spatial_shape((10, 10, 3))
    their_seg = their_seg.with_array(their_seg.array > their_seg.array.mean())
    their_seg = their_seg.match_geometry(their_source.get_geometry())
    np.testing.assert_array_equal(seg_volume.array, their_seg.array)
    np.testing.assert_allclose(seg_volume.affine, their_seg.affine, atol=1e-9)


# ------------------------------------------------------------------ nibabel
def test_nibabel_round_trip_and_flip_is_explicit():
    ours, theirs = pair()
    image = ours.to_nibabel()
    assert isinstance(image, nibabel.Nifti1Image)
    np.testing.assert_allclose(image.affine, theirs.to_nibabel().affine, atol=1e-6)
    np.testing.assert_allclose(image.affine[:2], -ours.affine[:2], atol=1e-6)  # LPS -> RAS
    back = Volume.from_nibabel(image, "PATIENT", FOR_UID)
    assert back.geometry_equal(ours, tol=1e-5)
    np.testing.assert_array_equal(back.array, ours.array)
    assert_same(back, highdicom.Volume.from_nibabel(image, "PATIENT"), atol=1e-6)
    assert ours.with_array(ours.array > 3).to_nibabel().get_data_dtype() == np.uint8


def test_nibabel_rejects_channels_and_4d():
    volume = Volume(np.zeros((1, 2, 2, 2)), np.eye(4), "PATIENT", channels={"SegmentNumber": [1, 2]})
    with pytest.raises(InputError, match="without channel axes"):
        volume.to_nibabel()
    with pytest.raises(InputError, match="3D images"):
        Volume.from_nibabel(nibabel.Nifti1Image(np.zeros((2, 2, 2, 2), np.float32), np.eye(4)))


def test_from_reference_convention_ras():
    ours, _ = pair()
    ras = ours.get_affine("RAS")
    assert Volume(ours.array, ras, "PATIENT", from_reference_convention="RAS").geometry_equal(ours)


# ------------------------------------------------------------------ layering
def test_geometry_modules_do_not_import_pydicom_torch_or_monai():
    package = pathlib.Path(hd.__file__).parent / "geometry"
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only: lazy imports inside functions are allowed
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                root = name.split(".")[0]
                assert root not in {"pydicom", "torch", "monai", "nibabel", "highdicom"}, (path.name, name)
                assert not name.startswith("monai_dicomseg.codec"), (path.name, name)
