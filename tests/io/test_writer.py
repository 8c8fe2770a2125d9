"""DicomSegWriter (MONAI ImageWriter seam) and the grid mapping under it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_dicomseg.errors import GeometryError, InputError
from monai_dicomseg.geometry.affine import flip_affine, lps_to_ras_affine, permute_affine, translate_affine
from monai_dicomseg.io.grid import argmax_on_grid, iter_linear_slabs, map_exact, map_nearest, plan_grid_mapping
from monai_dicomseg.io.writer import DicomSegWriter

SOURCE = np.array([[0, 0, 0.7, -10], [0, 0.8, 0, -5], [2.5, 0, 0, 3], [0, 0, 0, 1.0]])
SOURCE_SHAPE = (6, 10, 12)


def _brute_nearest(array, output_lps):
    """World-coordinate nearest lookup of every source voxel (the oracle)."""
    index = np.indices(SOURCE_SHAPE).reshape(3, -1)
    mapped = (np.linalg.inv(output_lps) @ SOURCE @ np.vstack([index, np.ones(index.shape[1])]))[:3]
    inside = np.all((mapped >= -0.5) & (mapped <= np.array(array.shape)[:, None] - 0.5), axis=0)
    nearest = np.clip(np.rint(mapped).astype(int), 0, np.array(array.shape)[:, None] - 1)
    result = np.where(inside, array[tuple(nearest)], 0)
    return result.reshape(SOURCE_SHAPE)


@pytest.mark.parametrize("seed", range(6), ids=lambda s: f"seed{s}")
def test_exact_plan_for_flips_permutations_crops_pads(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(3, 15, 3))
    affine = translate_affine(SOURCE, rng.integers(-3, 4, 3))
    affine = flip_affine(affine, shape, [a for a in range(3) if rng.random() < 0.5])
    order = rng.permutation(3)
    shape = tuple(shape[a] for a in order)
    affine = permute_affine(affine, order)
    array = rng.integers(0, 5, shape).astype(np.uint8)
    plan = plan_grid_mapping(lps_to_ras_affine(affine), shape, SOURCE, SOURCE_SHAPE, space="RAS")
    assert plan.kind == "exact"
    np.testing.assert_array_equal(map_exact(array, plan), _brute_nearest(array, affine))


def test_rotated_grid_uses_general_resampling():
    angle = 0.3
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = SOURCE.copy()
    affine[:3, :3] = rotation @ affine[:3, :3]
    array = np.random.default_rng(0).integers(0, 5, SOURCE_SHAPE).astype(np.uint8)
    plan = plan_grid_mapping(affine, SOURCE_SHAPE, SOURCE, SOURCE_SHAPE, space="LPS")
    assert plan.kind == "general"
    np.testing.assert_array_equal(map_nearest(array, plan), _brute_nearest(array, affine))


def test_argmax_shortcut_equals_full_linear_argmax():
    rng = np.random.default_rng(1)
    probabilities = rng.random((4, 5, 7, 6)).astype(np.float32)
    probabilities /= probabilities.sum(axis=0)
    affine = permute_affine(flip_affine(SOURCE, SOURCE_SHAPE, [1]), [2, 0, 1])
    affine[:3, :3] *= 1.6
    plan = plan_grid_mapping(affine, (5, 7, 6), SOURCE, SOURCE_SHAPE, space="LPS")
    assert plan.kind == "separable"
    lookup = np.arange(4, dtype=np.uint8)
    full = np.concatenate([values for _, _, values in iter_linear_slabs(probabilities, plan)], axis=1)
    expected = np.where(full.sum(axis=0) > 0.5, np.argmax(full, axis=0), 0)
    np.testing.assert_array_equal(argmax_on_grid(probabilities, plan, lookup), expected)


@pytest.mark.parametrize("normalised", [True, False], ids=["softmax", "sigmoid"])
@pytest.mark.parametrize("seed", range(4), ids=lambda s: f"seed{s}")
def test_argmax_candidate_shortcut_equals_full_linear_argmax(seed, normalised):
    # boundary voxels are decided from their cell's corner argmax channels plus a bound on the others;
    # un-normalised scores (sigmoid) make the bound, not the sum to one, carry the proof
    rng = np.random.default_rng(seed)
    channels = int(rng.integers(3, 9))
    shape = tuple(int(v) for v in rng.integers(5, 9, 3))
    probabilities = rng.random((channels, *shape)).astype(np.float32)
    if normalised:
        probabilities /= probabilities.sum(axis=0)
    affine = permute_affine(flip_affine(SOURCE, SOURCE_SHAPE, [seed % 3]), list(rng.permutation(3)))
    affine[:3, :3] *= rng.uniform(1.2, 2.5, 3)
    plan = plan_grid_mapping(affine, shape, SOURCE, SOURCE_SHAPE, space="LPS")
    assert plan.kind == "separable"
    lookup = rng.permutation(channels).astype(np.uint8)
    full = np.concatenate([values for _, _, values in iter_linear_slabs(probabilities, plan)], axis=1)
    ones = np.ones_like(probabilities[:1])
    inside = np.concatenate([values[0] > 0.5 for _, _, values in iter_linear_slabs(ones, plan)])
    expected = np.where(inside, lookup[np.argmax(full, axis=0)], 0)
    np.testing.assert_array_equal(argmax_on_grid(probabilities, plan, lookup, chunk=97), expected)


def test_no_overlap_is_a_geometry_error():
    far = translate_affine(SOURCE, (100, 0, 0))
    with pytest.raises(GeometryError, match="does not overlap"):
        plan_grid_mapping(far, SOURCE_SHAPE, SOURCE, SOURCE_SHAPE, space="LPS")


# --------------------------------------------------------------------------- writer seam


@pytest.fixture
def series(tmp_path):
    from monai_dicomseg import synthetic
    from monai_dicomseg.io.source_series import load_source_series

    labels = synthetic.make_ellipsoid_labels((6, 24, 24), n_labels=2, seed=2)
    datasets = synthetic.make_ct_series((6, 24, 24), labels=labels, seed=2)
    synthetic.write_series(datasets, tmp_path / "ct")
    source = load_source_series(tmp_path / "ct")
    return tmp_path / "ct", source, labels


def _prediction(source, folder, labels):
    from monai_dicomseg.io.source_series import to_monai_array

    array = np.ascontiguousarray(to_monai_array(labels))[None]
    return MetaTensor(torch.from_numpy(array), affine=torch.as_tensor(source.monai_affine()),
                      meta={"filename_or_obj": str(folder)})


def test_writer_protocol_and_saveimage(tmp_path, series):
    from monai.transforms import SaveImage

    folder, source, labels = series
    prediction = _prediction(source, folder, labels)
    writer = DicomSegWriter(segmentation_type="LABELMAP", labels=["liver", "spleen"])
    writer.set_data_array(prediction, channel_dim=0)
    writer.set_metadata(prediction.meta)
    path = writer.write(tmp_path / "direct.dcm")
    hd = pytest.importorskip("highdicom")
    seg = hd.seg.segread(path)
    pixels = seg.get_pixels_by_source_instance([str(ds.SOPInstanceUID) for ds in source.datasets],
                                               combine_segments=True)
    np.testing.assert_array_equal(pixels, labels)
    saver = SaveImage(output_dir=tmp_path / "via_saveimage", output_ext=".dcm", writer=DicomSegWriter,
                      separate_folder=False, savepath_in_metadict=True)
    saver.set_options(init_kwargs={"labels": ["liver", "spleen"]})
    saver(prediction)
    assert prediction.meta["saved_to"].endswith(".dcm")
    assert hd.seg.segread(prediction.meta["saved_to"]).number_of_segments == 2


@pytest.mark.dcmqi
def test_dcmqi_reads_back_on_source_grid(tmp_path, series):
    import oracles

    folder, source, labels = series
    prediction = _prediction(source, folder, labels)
    writer = DicomSegWriter(labels=["liver", "spleen"])
    writer.set_data_array(prediction)
    writer.set_metadata(prediction.meta)
    path = writer.write(tmp_path / "seg.dcm")
    images = oracles.dcmqi_segimage2itkimage(path, tmp_path / "dcmqi")
    stacked = oracles.dcmqi_labels_on_source_grid(images, oracles.source_grid(source.datasets))
    for number in (1, 2):
        np.testing.assert_array_equal(stacked[..., number - 1] > 0, labels == number)


def test_writer_requires_data_and_metadata():
    with pytest.raises(InputError, match="set_data_array"):
        DicomSegWriter().build()
    with pytest.raises(InputError, match=r"\(C, X, Y, Z\)"):
        DicomSegWriter().set_data_array(np.zeros((2, 2)))
    with pytest.raises(GeometryError, match="no affine"):
        DicomSegWriter().set_metadata({})


# --------------------------------------------------------------------------- strict options


@pytest.mark.parametrize("typo, meant", [("segmentaton_type", "segmentation_type"), ("lables", "labels"),
                                         ("omit_empty_frame", "omit_empty_frames")])
def test_writer_typo_is_a_type_error(typo, meant):
    with pytest.raises(TypeError, match=f"DicomSegWriter.*'{typo}'.*did you mean '{meant}'"):
        DicomSegWriter(**{typo: "LABELMAP"})


def test_writer_accepts_what_saveimage_passes(tmp_path):
    """SaveImage's own init/data/meta/write keywords are accepted by name, anything else is refused."""
    writer = DicomSegWriter(output_dtype=np.float32, scale=None)
    writer.set_data_array(np.zeros((1, 2, 2, 2)), channel_dim=0, squeeze_end_dims=True)
    with pytest.raises(TypeError, match="'chanel_dim'.*did you mean 'channel_dim'"):
        writer.set_data_array(np.zeros((1, 2, 2, 2)), chanel_dim=0)
    with pytest.raises(TypeError, match="'sorce'.*did you mean 'source'"):
        writer.set_metadata({"affine": np.eye(4)}, sorce="x")
    with pytest.raises(TypeError, match="'overwite'.*did you mean 'overwrite'"):
        writer.write(tmp_path / "x.dcm", overwite=True)
    assert not list(tmp_path.iterdir())


def test_writer_errors_name_source_and_output(tmp_path, series):
    folder, source, labels = series
    prediction = _prediction(source, folder, labels)
    writer = DicomSegWriter(labels=["liver"])
    writer.set_data_array(prediction)
    writer.set_metadata(prediction.meta)
    with pytest.raises(InputError) as raised:
        writer.write(tmp_path / "seg.dcm")
    message = str(raised.value)
    assert f"source series folder {str(folder)!r}" in message and str(tmp_path / "seg.dcm") in message
    assert message.count("DicomSegWriter") == 1
    with pytest.raises(GeometryError, match="DicomSegWriter source series 'somewhere'"):
        DicomSegWriter().set_metadata({}, source="somewhere")
