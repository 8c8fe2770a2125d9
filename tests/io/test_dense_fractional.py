"""Dense FRACTIONAL fast path and the torch device path (issue 25): the same bytes as the numpy path.

``io/device_grid.py`` resamples and quantises all classes of a slab at once
(``StackedSegmentSource.quantized``: uint8 stored values straight to the
encoder); the per-class support path (``device_grid.available()`` patched
False) is the reference. Torch tensors run the same kernels on their device
(``FORCE_TORCH`` runs them on CPU tensors); only results cross to the host.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monai_dicomseg import synthetic
from monai_dicomseg.io import device_grid
from monai_dicomseg.io import prediction as prediction_module
from monai_dicomseg.io.prediction import plan_output_segments, to_source_grid
from monai_dicomseg.seg.segmentation import Segmentation
from oracles import deterministic_bytes

torch = pytest.importorskip("torch")



def model_transform(source_shape, zoom=2.0, perm=(0, 1, 2), flips=(False, False, False), shift=(0.0, 0.0, 0.0)):
    """``T`` (model index -> source (F, R, C) index) and a model shape covering the source."""
    linear = np.zeros((3, 3))
    for model_axis, source_axis in enumerate(perm):
        linear[source_axis, model_axis] = zoom * (-1.0 if flips[model_axis] else 1.0)
    shape = tuple(int(np.ceil(source_shape[perm[j]] / zoom)) + 2 for j in range(3))
    transform = np.eye(4)
    transform[:3, :3] = linear
    transform[:3, 3] = (np.asarray(source_shape) - 1) / 2 - linear @ ((np.asarray(shape) - 1) / 2) + np.asarray(shift)
    return transform, shape


def plan_for(transform, model_shape, source_shape):
    from monai_dicomseg.io.grid import plan_grid_mapping

    source_affine = np.diag([2.0, 0.9, 0.8, 1.0])
    return plan_grid_mapping(source_affine @ transform, model_shape, source_affine, source_shape, space="LPS")


def softmax(shape, classes, seed, scale):
    """``softmax(scale * onehot(random organs))`` with a background channel: scale 6 uncertain, 12 confident."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes + 1, size=shape)
    labels[rng.random(shape) < 0.5] = 0
    logits = np.eye(classes + 1, dtype=np.float32)[labels].transpose(3, 0, 1, 2) * np.float32(scale)
    logits += rng.normal(scale=0.3, size=logits.shape).astype(np.float32)
    values = np.exp(logits - logits.max(0, keepdims=True))
    return (values / values.sum(0, keepdims=True)).astype(np.float32)


_SERIES: dict = {}
"""One synthetic source series per shape (its UIDs are random: both paths must see the same one)."""


def encoded(array, grid, source_shape, segmentation_type="FRACTIONAL", maximum=255, **options):
    plan = plan_output_segments("probabilities", array.shape[0], None, algorithm_type="MANUAL",
                                background=options.pop("background", 0))
    pixels = to_source_grid(array, plan, grid, segmentation_type, **options)
    series = _SERIES.setdefault(source_shape, synthetic.make_ct_series(shape=source_shape))
    extra = {"max_fractional_value": maximum} if segmentation_type == "FRACTIONAL" else {}
    seg = Segmentation(source_images=series, pixel_array=pixels, segmentation_type=segmentation_type,
                       segment_descriptions=plan.descriptions, series_instance_uid="1.2.3.4",
                       sop_instance_uid="1.2.3.5", instance_number=1, series_number=1, manufacturer="x",
                       manufacturer_model_name="x", software_versions="1", device_serial_number="1", **extra)
    return deterministic_bytes(seg, fix_uids=True), pixels


def reference(monkeypatch, *args, **kwargs):
    with monkeypatch.context() as patch:
        patch.setattr(device_grid, "available", lambda: False)
        return encoded(*args, **kwargs)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(zoom=st.sampled_from([1.0, 2.0, 4.0, 1.7, 0.6, 2.4]) | st.floats(0.5, 3.0), perm=st.permutations([0, 1, 2]),
       flips=st.tuples(*[st.booleans()] * 3), shift=st.tuples(*[st.floats(-1.5, 1.5)] * 3),
       classes=st.integers(1, 6), scale=st.sampled_from([6.0, 12.0, 2.0]), seed=st.integers(0, 2**16),
       interpolation=st.sampled_from(["linear", "nearest"]), maximum=st.sampled_from([255, 100, 1]))
def test_property_dense_path_bytes_equal_numpy_path(monkeypatch, zoom, perm, flips, shift, classes, scale, seed,
                                                    interpolation, maximum):
    source_shape = (4, 10, 12)
    transform, shape = model_transform(source_shape, zoom, tuple(perm), flips, shift=shift if zoom != 1.0 else
                                       tuple(float(round(s)) for s in shift))
    grid = plan_for(transform, shape, source_shape)
    array = softmax(shape, classes, seed, scale)
    new, pixels = encoded(array, grid, source_shape, maximum=maximum, interpolation=interpolation)
    assert pixels.quantized is not None  # the fast path ran
    old, old_pixels = reference(monkeypatch, array, grid, source_shape, maximum=maximum,
                                interpolation=interpolation)
    assert old_pixels.quantized is None
    assert new == old
    tensor, _ = encoded(torch.from_numpy(array), grid, source_shape, maximum=maximum, interpolation=interpolation)
    assert tensor == old
    with monkeypatch.context() as patch:
        patch.setattr(device_grid, "FORCE_TORCH", True)
        forced, _ = encoded(torch.from_numpy(array), grid, source_shape, maximum=maximum,
                            interpolation=interpolation)
    assert forced == old


@pytest.mark.parametrize("scale", [6.0, 12.0], ids=["uncertain", "confident"])
def test_uncertain_softmax_stores_every_frame_and_equals_numpy(monkeypatch, scale):
    """logits 6 x one-hot: every off-class probability survives 8-bit quantisation (every frame stored)."""
    source_shape = (6, 16, 16)
    transform, shape = model_transform(source_shape, 4.0)
    grid = plan_for(transform, shape, source_shape)
    array = softmax(shape, 5, 3, scale)
    new, _ = encoded(array, grid, source_shape)
    old, _ = reference(monkeypatch, array, grid, source_shape)
    assert new == old


def test_one_hot_input_without_fractions_keeps_overlap_decision(monkeypatch):
    """0/1 values only: Segments Overlap from the masks (NO/YES), as the float scan decides it."""
    source_shape = (4, 8, 8)
    transform, shape = model_transform(source_shape, 1.0)
    grid = plan_for(transform, shape, source_shape)
    array = np.zeros((3, *shape), dtype=np.float32)
    array[1, :2] = 1
    array[2, 1:3] = 1  # overlaps channel 1 where both are 1
    new, _ = encoded(array, grid, source_shape, background=False)
    old, _ = reference(monkeypatch, array, grid, source_shape, background=False)
    assert new == old


def test_nan_falls_back_to_numpy_errors():
    from monai_dicomseg.errors import InputError

    source_shape = (4, 8, 8)
    transform, shape = model_transform(source_shape, 2.0)
    grid = plan_for(transform, shape, source_shape)
    array = softmax(shape, 2, 0, 6.0)
    array[1, 0, 0, 0] = np.nan
    assert device_grid.fractional_source(array, [1, 2], grid) is None
    with pytest.raises(InputError, match="NaN"):
        encoded(array, grid, source_shape)


@pytest.mark.parametrize("discretize", ["argmax", "threshold"])
@pytest.mark.parametrize("interpolation", ["linear", "nearest"])
def test_tensor_binary_on_torch_equals_numpy(monkeypatch, discretize, interpolation):
    """argmax / threshold of a tensor in torch (forced on CPU: the code a GPU tensor runs) = the numpy path."""
    source_shape = (5, 12, 14)
    transform, shape = model_transform(source_shape, 1.7, (2, 0, 1), (True, False, False), shift=(0.2, 0.1, -0.3))
    grid = plan_for(transform, shape, source_shape)
    array = softmax(shape, 4, 11, 3.0)
    old, _ = encoded(array, grid, source_shape, "BINARY", discretize=discretize, interpolation=interpolation)
    monkeypatch.setattr(device_grid, "FORCE_TORCH", True)
    monkeypatch.setattr(prediction_module, "_DEVICE_ARGMAX_ON_CPU", True)
    new, _ = encoded(torch.from_numpy(array), grid, source_shape, "BINARY", discretize=discretize,
                     interpolation=interpolation)
    assert new == old


def test_tensor_labels_on_torch_equal_numpy(monkeypatch):
    source_shape = (5, 12, 14)
    transform, shape = model_transform(source_shape, 2.0, (1, 0, 2))
    grid = plan_for(transform, shape, source_shape)
    labels = np.random.default_rng(2).integers(0, 4, size=(1, *shape)).astype(np.int64)
    plan = plan_output_segments("labels", 1, None, present=[0, 1, 2, 3], algorithm_type="MANUAL")
    old = to_source_grid(labels, plan, grid, "BINARY")
    new = to_source_grid(torch.from_numpy(labels), plan, grid, "BINARY")
    np.testing.assert_array_equal(new, old)


def test_tensor_is_never_converted_whole(monkeypatch):
    """Only slabs cross to the host: no ``numpy()``/``cpu()`` of a tensor as large as the output."""
    source_shape = (6, 16, 16)
    transform, shape = model_transform(source_shape, 2.0)
    grid = plan_for(transform, shape, source_shape)
    array = torch.from_numpy(softmax(shape, 6, 5, 6.0))
    sizes = []
    original_numpy, original_cpu = torch.Tensor.numpy, torch.Tensor.cpu

    def numpy(self, *args, **kwargs):
        sizes.append(self.numel())
        return original_numpy(self, *args, **kwargs)

    def cpu(self, *args, **kwargs):
        sizes.append(self.numel())
        return original_cpu(self, *args, **kwargs)

    monkeypatch.setattr(device_grid, "FORCE_TORCH", True)
    monkeypatch.setattr(torch.Tensor, "numpy", numpy)
    monkeypatch.setattr(torch.Tensor, "cpu", cpu)
    plane = source_shape[1] * source_shape[2]
    source = device_grid.fractional_source(array, range(1, 7), grid, slab_values=plane)  # one plane per slab
    total = sum(int(values.size) for *_, values in source.quantized(255))
    assert total == 6 * int(np.prod(source_shape))  # uncertain: every class stored everywhere
    assert sizes and max(sizes) <= 6 * plane < total  # one plane of every class at most


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_tensor_bytes_equal_numpy_path(monkeypatch):
    source_shape = (8, 32, 32)
    transform, shape = model_transform(source_shape, 2.0, (2, 1, 0), (False, True, False), shift=(0.3, 0, 0))
    grid = plan_for(transform, shape, source_shape)
    array = softmax(shape, 5, 7, 6.0)
    old, _ = reference(monkeypatch, array, grid, source_shape)
    cuda = torch.from_numpy(array).cuda()
    new, _ = encoded(cuda, grid, source_shape)
    assert new == old
    for discretize in ("argmax", "threshold"):
        a, _ = encoded(array, grid, source_shape, "BINARY", discretize=discretize)
        b, _ = encoded(cuda, grid, source_shape, "BINARY", discretize=discretize)
        assert a == b


@pytest.mark.parametrize("make,kind", [
    (lambda rng: rng.integers(0, 4, size=(1, 4, 5, 6)), "auto"),
    (lambda rng: np.eye(3, dtype=np.uint8)[rng.integers(0, 3, size=(4, 5, 6))].transpose(3, 0, 1, 2), "auto"),
    (lambda rng: softmax((4, 5, 6), 3, 1, 6.0), "auto"),
    (lambda rng: softmax((4, 5, 6), 3, 1, 6.0)[1:], "auto"),
    (lambda rng: rng.integers(0, 4, size=(1, 4, 5, 6)).astype(np.float32), "labels"),
])
def test_describe_tensor_classifies_like_numpy(make, kind):
    from monai_dicomseg.io.prediction import classify_input, is_channel_partition

    array = make(np.random.default_rng(0))
    found, present, partition = prediction_module.describe_tensor(torch.from_numpy(np.ascontiguousarray(array)),
                                                                  kind)
    assert found == classify_input(array, kind)
    assert present == (np.unique(array).tolist() if found == "labels" else None)
    assert partition() == is_channel_partition(array)


@pytest.mark.parametrize("array,kind,message", [
    (np.full((2, 2, 2, 2), np.nan, dtype=np.float32), "auto", "NaN"),
    (np.full((2, 2, 2, 2), 1.5, dtype=np.float32), "probabilities", r"must lie in \[0, 1\]"),
    (np.full((2, 2, 2, 2), 3, dtype=np.int64), "auto", "must be one-hot"),
    (np.full((2, 2, 2, 2), 0.5, dtype=np.float32), "onehot", "values 0 and 1 only"),
    (np.full((1, 2, 2, 2), 0.5, dtype=np.float32), "labels", "integer label values"),
])
def test_describe_tensor_refuses_like_numpy(array, kind, message):
    from monai_dicomseg.errors import InputError

    with pytest.raises(InputError, match=message):
        prediction_module.describe_tensor(torch.from_numpy(array), kind)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_tensor_through_build_segmentation(monkeypatch):
    """A CUDA prediction through the writer's core: classified, resampled and quantised on the GPU."""
    from monai_dicomseg.io.segwrite import plan_segments

    array = softmax((6, 7, 8), 4, 3, 6.0)
    plan = plan_segments(torch.from_numpy(array).cuda(), labels=["background", "a", "b", "c", "d"])
    assert plan.kind == "probabilities" and plan.background == 0 and len(plan.sources) == 4


@settings(max_examples=60, deadline=None)
@given(zoom=st.floats(0.3, 5.0), shift=st.floats(-2.0, 2.0), size=st.integers(1, 9), out_size=st.integers(1, 40),
       seed=st.integers(0, 2**16))
def test_property_host_axis_equals_gathered_interpolation(zoom, shift, size, out_size, seed):
    """Strided slices and index-array groups give exactly ``a + (b - a) * w`` of the two gathers (regression:
    an index-array group was written into a copy, leaving uninitialised output)."""
    coords = np.arange(out_size) / zoom + shift
    low = np.clip(np.floor(coords), 0, size - 1).astype(np.intp)
    high = np.minimum(low + 1, size - 1)
    weight = np.clip(coords - low, 0.0, 1.0).astype(np.float32)
    values = np.random.default_rng(seed).random((2, 3, size)).astype(np.float32)
    a, b = values[..., low], values[..., high]
    expected = a + (b - a) * weight
    np.testing.assert_array_equal(device_grid._host_axis(values, 2, low, weight), expected)


@pytest.mark.parametrize("low,high", [(0.0, 1.0), (-0.3, 1.4), (0.0, 1.0000001)],
                         ids=["unit-range", "outside", "one-ulp-above"])
@pytest.mark.parametrize("maximum", [255, 7])
def test_quantized_blocks_equal_the_clipped_float_blocks_inside_and_outside_the_unit_range(low, high, maximum):
    """The quantised slabs (clipping skipped once a fraction is seen, when every model value lies in [0, 1])
    hold ``rint(clip(v, 0, 1) * max)`` of the float slabs, voxel for voxel, and find fractions as they do; a
    model reaching outside [0, 1], even by one ulp, keeps the clip on every slab."""
    source_shape = (5, 12, 10)
    transform, shape = model_transform(source_shape, 2.4, shift=(0.3, -0.2, 0.1))
    grid = plan_for(transform, shape, source_shape)
    rng = np.random.default_rng(5)
    array = rng.uniform(low, high, size=(3, *shape)).astype(np.float32)
    array[0, 0, 0, 0], array[1, 0, 0, 0] = np.float32(low), np.float32(high)  # the range's ends are present
    source = device_grid.fractional_source(array, [0, 1, 2], grid)
    expected = {(f0, f1): np.rint(np.clip(values, 0, 1) * np.float32(maximum)).astype(np.uint8)
                for f0, f1, _, _, values in source.blocks()}
    quantized = source.quantized(maximum)
    got = {(f0, f1): values for f0, f1, _, _, values in quantized}
    assert got.keys() == expected.keys()
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])
    assert quantized.fractional
    assert quantized._unit_range is (high <= 1.0 and low >= 0.0)
