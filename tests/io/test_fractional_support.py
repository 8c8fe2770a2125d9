"""FRACTIONAL / threshold sources computed only on each segment's support (issue 15): same bytes as materialised.

A linearly interpolated value is a convex combination of its model-grid
neighbours, so where no neighbour reaches ``0.5 / 255`` (FRACTIONAL) or the
threshold, the stored value is 0 / the mask is empty; the lazy source skips
those voxels (and whole planes). These tests compare it with ``lazy=False``
(every voxel interpolated) on random sparse and dense softmaxes, zooms,
flips, permutations, exact and oblique grids.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monai_dicomseg import synthetic
from monai_dicomseg.enums import SegmentationTypeValues
from monai_dicomseg.errors import InputError
from monai_dicomseg.io import prediction as prediction_module
from monai_dicomseg.io.grid import iter_linear_slabs, iter_support_slabs, plan_grid_mapping
from monai_dicomseg.io.prediction import plan_output_segments, to_source_grid
from monai_dicomseg.seg.inputs import StackedSegmentSource, scan_stream
from oracles import deterministic_bytes

SOURCE_SHAPE = (9, 22, 26)
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


# --------------------------------------------------------------------------- helpers


def file_bytes(seg) -> bytes:
    return deterministic_bytes(seg, fix_uids=True)


def model_transform(source_shape, zoom=2.0, perm=(0, 1, 2), flips=(False, False, False), angle=0.0,
                    shift=(0.0, 0.0, 0.0)):
    """``T`` (model index -> source (F, R, C) index) and the model shape covering the source."""
    linear = np.zeros((3, 3))
    for model_axis, source_axis in enumerate(perm):
        linear[source_axis, model_axis] = zoom * (-1.0 if flips[model_axis] else 1.0)
    if angle:
        c, s = np.cos(angle), np.sin(angle)
        linear = np.array([[1, 0, 0], [0, c, -s], [0, s, c]]) @ linear
    shape = tuple(int(np.ceil(source_shape[perm[j]] / zoom)) + 2 for j in range(3))
    centre_model = (np.asarray(shape) - 1) / 2
    centre_source = (np.asarray(source_shape) - 1) / 2
    transform = np.eye(4)
    transform[:3, :3] = linear
    transform[:3, 3] = centre_source - linear @ centre_model + np.asarray(shift)
    return transform, shape


def organ_softmax(shape, classes, seed, sparse=True, sigma=1.2):
    """Softmax ``(classes + 1, *shape)`` (channel 0 background): small organ blobs, or dense noise."""
    rng = np.random.default_rng(seed)
    if not sparse:
        logits = rng.normal(size=(classes + 1, *shape)) * 3
    else:
        grid = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"))
        logits = rng.normal(size=(classes + 1, *shape)) * 0.3
        logits[0] += 9.0
        for k in range(1, classes + 1):
            centre = rng.uniform(0, np.asarray(shape) - 1)
            d2 = ((grid - centre[:, None, None, None]) ** 2).sum(0)
            logits[k] += 14.0 * np.exp(-d2 / (2 * (sigma * rng.uniform(0.6, 1.5)) ** 2))
    values = np.exp(logits - logits.max(0, keepdims=True))
    return (values / values.sum(0, keepdims=True)).astype(np.float32)


def plan_for(transform, model_shape, source_shape=SOURCE_SHAPE):
    source_affine = np.diag([2.0, 0.9, 0.8, 1.0])
    return plan_grid_mapping(source_affine @ transform, model_shape, source_affine, source_shape, space="LPS")


def rebuilt(source: StackedSegmentSource) -> np.ndarray:
    out = np.zeros(source.shape, dtype=source.dtype)
    for f0, f1, s0, s1, values in source.blocks():
        out[f0:f1, ..., s0:s1] = np.moveaxis(values, 0, -1)
    return out


def served_pairs(source: StackedSegmentSource) -> int:
    return sum((f1 - f0) * (s1 - s0) for f0, f1, s0, s1, _ in source.blocks())


def quantised(values: np.ndarray) -> np.ndarray:
    return np.rint(values * 255).astype(np.uint8)


def sources(array, grid, segmentation_type="FRACTIONAL", **options):
    plan = plan_output_segments("probabilities", array.shape[0], None, algorithm_type="MANUAL",
                                background=options.pop("background", None))
    lazy = to_source_grid(array, plan, grid, segmentation_type, **options)
    eager = to_source_grid(array, plan, grid, segmentation_type, lazy=False, **options)
    return lazy, eager


def assert_same_scan(lazy, eager, kind=SegmentationTypeValues.FRACTIONAL):
    eager_source = StackedSegmentSource.from_array(eager)
    a, b = scan_stream(lazy, kind), scan_stream(eager_source, kind)
    np.testing.assert_array_equal(a.presence, b.presence)
    assert a.fractional == b.fractional
    assert a.overlaps == b.overlaps


GRIDS = {
    "zoom2": dict(zoom=2.0),
    "zoom1.7-shift": dict(zoom=1.7, shift=(0.3, -0.45, 0.2)),
    "flips-perm": dict(zoom=2.0, perm=(2, 0, 1), flips=(True, False, True)),
    "upsampled-perm": dict(zoom=0.6, perm=(1, 2, 0), flips=(False, True, False)),
    "exact-flip": dict(zoom=1.0, perm=(0, 2, 1), flips=(True, True, False)),
    "exact-shift": dict(zoom=1.0, shift=(2.0, -3.0, 1.0)),
    "oblique": dict(zoom=1.8, angle=0.3),
}


# --------------------------------------------------------------------------- block level


@pytest.mark.parametrize("sparse", [True, False], ids=["organs", "dense"])
@pytest.mark.parametrize("name", list(GRIDS))
def test_support_source_quantises_like_materialised(name, sparse):
    transform, shape = model_transform(SOURCE_SHAPE, **GRIDS[name])
    grid = plan_for(transform, shape)
    assert (grid.kind == "general") == (name == "oblique")
    if name.startswith("exact"):
        assert grid.kind == "exact"
    array = organ_softmax(shape, 5, seed=len(name), sparse=sparse)
    lazy, eager = sources(array, grid)
    np.testing.assert_array_equal(quantised(rebuilt(lazy)), quantised(eager))
    assert_same_scan(lazy, eager)
    if sparse and grid.kind != "general":  # whole planes of small organs are never computed
        assert served_pairs(lazy) < SOURCE_SHAPE[0] * array.shape[0]


@pytest.mark.parametrize("sparse", [True, False], ids=["organs", "dense"])
@pytest.mark.parametrize("name", list(GRIDS))
def test_nearest_support_source_quantises_like_materialised(name, sparse):
    """interpolation="nearest" (a one-hot's default): each class copied only on its support."""
    transform, shape = model_transform(SOURCE_SHAPE, **GRIDS[name])
    grid = plan_for(transform, shape)
    array = organ_softmax(shape, 5, seed=len(name) + 7, sparse=sparse)
    lazy, eager = sources(array, grid, interpolation="nearest")
    np.testing.assert_array_equal(quantised(rebuilt(lazy)), quantised(eager))
    assert_same_scan(lazy, eager)
    if sparse and grid.kind != "general":
        assert served_pairs(lazy) < SOURCE_SHAPE[0] * array.shape[0]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(zoom=st.floats(0.5, 3.0), perm=st.permutations([0, 1, 2]), flips=st.tuples(*[st.booleans()] * 3),
       shift=st.tuples(*[st.floats(-1.5, 1.5)] * 3), seed=st.integers(0, 2**16), one_hot=st.booleans())
def test_property_nearest_support_source_is_exact(zoom, perm, flips, shift, seed, one_hot):
    source_shape = (5, 11, 13)
    transform, shape = model_transform(source_shape, zoom, tuple(perm), flips, shift=shift)
    grid = plan_for(transform, shape, source_shape)
    array = organ_softmax(shape, 3, seed)
    if one_hot:
        array = (array == array.max(axis=0, keepdims=True)).astype(np.float32)
    lazy, eager = sources(array, grid, interpolation="nearest")
    np.testing.assert_array_equal(np.rint(rebuilt(lazy) * 255), np.rint(eager * 255))
    a = scan_stream(lazy, SegmentationTypeValues.FRACTIONAL)
    b = scan_stream(StackedSegmentSource.from_array(eager), SegmentationTypeValues.FRACTIONAL)
    np.testing.assert_array_equal(a.presence, b.presence)
    assert a.fractional == b.fractional


@pytest.mark.parametrize("interpolation", ["linear", "nearest"])
@pytest.mark.parametrize("name", ["zoom1.7-shift", "flips-perm", "exact-flip", "oblique"])
def test_threshold_source_equals_materialised(name, interpolation):
    transform, shape = model_transform(SOURCE_SHAPE, **GRIDS[name])
    grid = plan_for(transform, shape)
    array = organ_softmax(shape, 4, seed=3)[1:]  # independent "sigmoid" channels, no background
    lazy, eager = sources(array, grid, "BINARY", background=False, discretize="threshold", threshold=0.4,
                          interpolation=interpolation)
    np.testing.assert_array_equal(rebuilt(lazy).astype(np.uint8), eager)
    assert_same_scan(lazy, eager, SegmentationTypeValues.BINARY)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(zoom=st.floats(0.5, 3.0), perm=st.permutations([0, 1, 2]), flips=st.tuples(*[st.booleans()] * 3),
       shift=st.tuples(*[st.floats(-1.5, 1.5)] * 3), sigma=st.floats(0.4, 3.0), seed=st.integers(0, 2**16),
       maximum=st.integers(1, 255))
def test_property_support_source_is_exact(zoom, perm, flips, shift, sigma, seed, maximum):
    """Random axis-aligned grids and organ sizes: identical quantisation for any MaximumFractionalValue."""
    source_shape = (5, 11, 13)
    transform, shape = model_transform(source_shape, zoom, tuple(perm), flips, shift=shift)
    grid = plan_for(transform, shape, source_shape)
    array = organ_softmax(shape, 3, seed, sigma=sigma)
    lazy, eager = sources(array, grid)
    np.testing.assert_array_equal(np.rint(rebuilt(lazy) * maximum), np.rint(eager * maximum))
    a = scan_stream(lazy, SegmentationTypeValues.FRACTIONAL, maximum)
    b = scan_stream(StackedSegmentSource.from_array(eager), SegmentationTypeValues.FRACTIONAL, maximum)
    np.testing.assert_array_equal(a.presence, b.presence)
    assert a.fractional == b.fractional


def test_values_in_support_box_are_the_full_computation():
    transform, shape = model_transform(SOURCE_SHAPE, zoom=1.6, perm=(1, 0, 2), flips=(False, True, False))
    grid = plan_for(transform, shape)
    array = organ_softmax(shape, 3, seed=11)
    full = np.concatenate([values for _, _, values in iter_linear_slabs(array, grid)], axis=1)
    cut = 0.5 / 255
    covered = np.zeros(full.shape, dtype=bool)
    for channel, start, stop, rows, columns, values in iter_support_slabs(array, grid, cut, 1000)():
        np.testing.assert_array_equal(values, full[channel, start:stop, rows, columns])  # bit for bit
        covered[channel, start:stop, rows, columns] = True
    assert covered.any() and not covered.all()
    assert (full[~covered] < cut).all()


# --------------------------------------------------------------------------- the fractional flag, fallbacks


def test_fraction_only_below_the_cut_still_marks_the_input_fractional():
    """Segments Overlap UNDEFINED depends on *any* fraction: one sub-cut value outside every support."""
    transform, shape = model_transform(SOURCE_SHAPE, zoom=1.0)
    grid = plan_for(transform, shape)
    assert grid.kind == "exact"
    array = np.zeros((2, *shape), dtype=np.float32)
    array[0, 2:4, 3:8, 3:9] = 1.0
    array[1, 6, 15, 20] = 1e-4  # in the field, stored as 0 but a fraction
    lazy, eager = sources(array, grid)
    assert scan_stream(lazy, SegmentationTypeValues.FRACTIONAL).fractional
    assert_same_scan(lazy, eager)
    array[1, 6, 15, 20] = 0.0
    array[1, -1, -1, -1] = 1e-4  # out of the field (the model grid has a margin): no fraction on the source grid
    lazy, eager = sources(array, grid)
    assert not scan_stream(lazy, SegmentationTypeValues.FRACTIONAL).fractional
    assert_same_scan(lazy, eager)


def test_nan_keeps_the_full_computation_and_its_error():
    transform, shape = model_transform(SOURCE_SHAPE, zoom=2.0)
    grid = plan_for(transform, shape)
    array = organ_softmax(shape, 2, seed=5)
    array[1, 1, 1, 1] = np.nan
    assert iter_support_slabs(array, grid, 0.5 / 255) is None
    lazy, eager = sources(array, grid)
    with pytest.raises(InputError, match="NaN"):
        scan_stream(lazy, SegmentationTypeValues.FRACTIONAL)


def test_oblique_plan_is_not_support_limited():
    transform, shape = model_transform(SOURCE_SHAPE, **GRIDS["oblique"])
    grid = plan_for(transform, shape)
    assert iter_support_slabs(organ_softmax(shape, 2, seed=1), grid, 0.5 / 255) is None


def test_support_slabs_bad_shape():
    transform, shape = model_transform(SOURCE_SHAPE)
    with pytest.raises(InputError, match=r"array must be \(S, X, Y, Z\); got shape \(2, 3, 4\)"):
        iter_support_slabs(np.zeros((2, 3, 4), dtype=np.float32), plan_for(transform, shape), 0.1)


# --------------------------------------------------------------------------- whole files


torch = pytest.importorskip("torch")
from monai.data import MetaTensor  # noqa: E402

from monai_dicomseg.io import segwrite as segwrite_module  # noqa: E402
from monai_dicomseg.io.writer import DicomSegWriter  # noqa: E402


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    from monai_dicomseg.io.source_series import load_source_geometry

    folder = tmp_path_factory.mktemp("ct")
    synthetic.write_series(synthetic.make_ct_series(SOURCE_SHAPE, seed=7), folder)
    return folder, load_source_geometry(folder)



def write(folder, output, lazy, monkeypatch, **options) -> bytes:
    monkeypatch.setattr(segwrite_module, "to_source_grid",  # the one writer core (io/segwrite.py) looks it up there
                        functools.partial(prediction_module.to_source_grid, lazy=lazy))
    writer = DicomSegWriter(**options)
    writer.set_data_array(output, channel_dim=0)
    writer.set_metadata(output.meta, source=str(folder))
    return file_bytes(writer.build())


FILE_CASES = [
    ("fractional-native", "flips-perm", True, {"segmentation_type": "FRACTIONAL"}),
    ("fractional-native-dense", "zoom1.7-shift", False, {"segmentation_type": "FRACTIONAL"}),
    ("fractional-max-100", "upsampled-perm", True, {"segmentation_type": "FRACTIONAL",
                                                    "max_fractional_value": 100}),
    ("fractional-jpegls", "zoom1.7-shift", True, {"segmentation_type": "FRACTIONAL", "compression": "jpegls"}),
    ("fractional-rle-exact", "exact-flip", True, {"segmentation_type": "FRACTIONAL", "compression": "rle"}),
    ("fractional-oblique", "oblique", True, {"segmentation_type": "FRACTIONAL"}),
    ("binary-threshold", "flips-perm", True, {"segmentation_type": "BINARY", "discretize": "threshold",
                                              "threshold": 0.3}),
    ("fractional-nearest", "zoom1.7-shift", True, {"segmentation_type": "FRACTIONAL",
                                                   "interpolation": "nearest"}),
    ("binary-threshold-nearest", "upsampled-perm", True, {"segmentation_type": "BINARY",
                                                          "discretize": "threshold", "threshold": 0.3,
                                                          "interpolation": "nearest"}),
]


@pytest.mark.parametrize("name,grid_name,sparse,options", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_streamed_file_equals_materialised(series, monkeypatch, name, grid_name, sparse, options):
    if options.get("compression") == "jpegls":
        pytest.importorskip("jpeg_ls")
    folder, source = series
    transform, shape = model_transform(SOURCE_SHAPE, **GRIDS[grid_name])
    affine = LPS_TO_RAS @ source.geometry.affine @ transform
    output = MetaTensor(torch.from_numpy(organ_softmax(shape, 4, seed=len(name), sparse=sparse)),
                        affine=torch.as_tensor(affine))
    eager = write(folder, output, False, monkeypatch, **options)
    assert write(folder, output, True, monkeypatch, **options) == eager


def test_nearest_on_an_oblique_grid_keeps_fractions():
    """map_nearest on a general (oblique) plan copies a model voxel's value: probabilities stay fractions
    (it used to round them to 0/1, as for labels)."""
    from monai_dicomseg.io.grid import map_nearest

    transform, shape = model_transform(SOURCE_SHAPE, **GRIDS["oblique"])
    grid = plan_for(transform, shape)
    array = np.full((1, *shape), 0.3, dtype=np.float32)
    mapped = map_nearest(array, grid)
    inside = mapped[mapped != 0]
    assert inside.size and np.allclose(inside, 0.3)
    labels = np.full(shape, 2, dtype=np.uint8)
    assert set(np.unique(map_nearest(labels, grid)).tolist()) <= {0, 2}
