"""The writer streams (issue 15): same files as the materialised path, bounded memory, compression by name."""
from __future__ import annotations

import functools
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from monai.data import MetaTensor  # noqa: E402
from oracles import deterministic_bytes

from monai_dicomseg import synthetic  # noqa: E402
from monai_dicomseg.errors import DicomSegError, InputError  # noqa: E402
from monai_dicomseg.io import prediction as prediction_module  # noqa: E402
from monai_dicomseg.io import segwrite as segwrite_module  # noqa: E402
from monai_dicomseg.io.writer import DicomSegWriter  # noqa: E402

SOURCE_SHAPE = (10, 24, 28)




def file_bytes(seg) -> bytes:
    return deterministic_bytes(seg, fix_uids=True)

@pytest.fixture(scope="module")
def series(tmp_path_factory):
    from monai_dicomseg.io.source_series import load_source_geometry

    folder = tmp_path_factory.mktemp("ct")
    synthetic.write_series(synthetic.make_ct_series(SOURCE_SHAPE, seed=4), folder)
    return folder, load_source_geometry(folder)


def model_output(source, channels: int, kind: str, zoom: float = 2.0, seed: int = 0) -> MetaTensor:
    """A ``(C, X, Y, Z)`` output on a grid ``zoom`` times coarser than the source (linear resampling)."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(np.ceil(n / zoom)) + 1 for n in source.monai_affine_shape) if hasattr(
        source, "monai_affine_shape") else None
    spatial = source.geometry.spatial_shape
    monai_shape = (spatial[2], spatial[1], spatial[0])  # (C, R, S) order of to_monai_array
    shape = tuple(int(np.ceil(n / zoom)) + 1 for n in monai_shape)
    affine = source.monai_affine() @ np.diag([zoom, zoom, zoom, 1.0])
    logits = rng.normal(size=(channels, *shape)).astype(np.float32) * 3
    if kind == "softmax":
        values = np.exp(logits) / np.exp(logits).sum(0, keepdims=True)
    elif kind == "sigmoid":
        values = 1 / (1 + np.exp(-logits))
    elif kind == "onehot":
        values = (logits == logits.max(0, keepdims=True)).astype(np.float32)
    else:  # labels
        values = logits.argmax(0)[None].astype(np.int64)
    return MetaTensor(torch.from_numpy(np.ascontiguousarray(values, dtype=values.dtype)),
                      affine=torch.as_tensor(affine))


def build(folder, output, lazy: bool, monkeypatch, **options):
    # the one writer core (io/segwrite.py, shared with from-nifti) looks the planner up there
    monkeypatch.setattr(segwrite_module, "to_source_grid",
                        functools.partial(prediction_module.to_source_grid, lazy=lazy))
    writer = DicomSegWriter(**options)
    writer.set_data_array(output, channel_dim=0)
    writer.set_metadata(output.meta, source=str(folder))
    return writer.build()


CASES = [
    ("fractional-softmax", "softmax", {"segmentation_type": "FRACTIONAL"}),
    ("fractional-softmax-jpegls", "softmax", {"segmentation_type": "FRACTIONAL", "compression": "jpegls"}),
    ("fractional-onehot-nearest", "onehot", {"segmentation_type": "FRACTIONAL"}),
    ("fractional-labels", "labels", {"segmentation_type": "FRACTIONAL"}),
    ("binary-sigmoid-threshold", "sigmoid", {"segmentation_type": "BINARY", "background": False}),
    ("binary-sigmoid-nearest", "sigmoid", {"segmentation_type": "BINARY", "background": False,
                                           "interpolation": "nearest"}),
    ("binary-softmax-argmax", "softmax", {"segmentation_type": "BINARY"}),
    ("labelmap-sigmoid-overlap-refused", "sigmoid", {"segmentation_type": "LABELMAP", "background": False,
                                               "threshold": 0.97}),
    ("labelmap-onehot-threshold", "onehot", {"segmentation_type": "LABELMAP", "background": False,
                                             "discretize": "threshold", "interpolation": "linear",
                                             "threshold": 0.6}),
    ("labelmap-labels", "labels", {"segmentation_type": "LABELMAP"}),
]


@pytest.mark.parametrize("name,kind,options", CASES, ids=[c[0] for c in CASES])
def test_streamed_writer_equals_materialised(series, monkeypatch, name, kind, options):
    folder, source = series
    if options.get("compression") == "jpegls":
        pytest.importorskip("jpeg_ls")
    output = model_output(source, 4, kind)
    try:
        eager = file_bytes(build(folder, output, False, monkeypatch, **options))
    except DicomSegError as error:  # e.g. overlapping thresholded sigmoids for LABELMAP
        with pytest.raises(type(error)) as streamed:
            build(folder, output, True, monkeypatch, **options)
        assert str(streamed.value).split("(plane")[0] == str(error).split("(plane")[0]
        return
    assert file_bytes(build(folder, output, True, monkeypatch, **options)) == eager


def test_to_source_grid_lazy_is_a_source_for_stacked_types(series):
    from monai_dicomseg.io.grid import plan_grid_mapping
    from monai_dicomseg.io.prediction import plan_output_segments
    from monai_dicomseg.seg.inputs import StackedSegmentSource

    folder, source = series
    output = model_output(source, 3, "softmax").numpy()
    plan = plan_output_segments("probabilities", 3, None, algorithm_type="MANUAL")
    grid = plan_grid_mapping(model_output(source, 3, "softmax").affine.numpy(), output.shape[1:],
                             source.geometry.affine, source.geometry.spatial_shape)
    lazy = prediction_module.to_source_grid(output, plan, grid, "FRACTIONAL")
    eager = prediction_module.to_source_grid(output, plan, grid, "FRACTIONAL", lazy=False)
    assert isinstance(lazy, StackedSegmentSource) and lazy.shape == eager.shape
    rebuilt = np.zeros(eager.shape, dtype=np.float32)
    for f0, f1, s0, s1, values in lazy.blocks():
        rebuilt[f0:f1, ..., s0:s1] = np.moveaxis(values, 0, -1)
    np.testing.assert_array_equal(rebuilt, eager)


@pytest.mark.parametrize("compression,syntax", [
    (None, "1.2.840.10008.1.2.1"), ("none", "1.2.840.10008.1.2.1"), ("rle", "1.2.840.10008.1.2.5"),
    ("JPEG-LS", "1.2.840.10008.1.2.4.80"), ("jpeg2000", "1.2.840.10008.1.2.4.90"),
], ids=["None", "none", "rle", "JPEG-LS", "jpeg2000"])
def test_compression_names_map_to_transfer_syntaxes(compression, syntax):
    from monai_dicomseg.codec.compression import compression_transfer_syntax

    assert compression_transfer_syntax(compression) == syntax


def test_compression_option_sets_transfer_syntax(series, monkeypatch):
    folder, source = series
    seg = build(folder, model_output(source, 3, "softmax"), True, monkeypatch, segmentation_type="FRACTIONAL",
                compression="rle")
    assert seg.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"


@pytest.mark.parametrize("options,match", [
    ({"compression": "zip"}, "compression must be one of"),
    ({"compression": "rle", "transfer_syntax_uid": "1.2.840.10008.1.2.4.80"}, "pass one of them"),
    ({"segmentation_type": "BINARY", "compression": "rle"}, "RLE Lossless"),
], ids=["unknown", "conflict", "binary-rle"])
def test_compression_option_errors(options, match):
    with pytest.raises(InputError, match=match):
        DicomSegWriter(**{"segmentation_type": "FRACTIONAL", **options})


def test_savedicomseg_accepts_compression(tmp_path, series):
    import pydicom

    from monai_dicomseg.transforms.save import SaveDicomSeg

    folder, source = series
    output = model_output(source, 3, "softmax")
    output.meta["filename_or_obj"] = str(folder)
    SaveDicomSeg(output_dir=tmp_path / "out", segmentation_type="FRACTIONAL", compression="rle")(output)
    path = Path(output.meta["saved_to"])
    assert pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"


# --------------------------------------------------------------------------- memory

_MEMORY_SCRIPT = textwrap.dedent("""
    import json, sys, tracemalloc
    import numpy as np, torch
    from monai.data import MetaTensor
    from monai_dicomseg import synthetic
    from monai_dicomseg.io.source_series import load_source_geometry
    from monai_dicomseg.io.writer import DicomSegWriter

    folder, segmentation_type = sys.argv[1], sys.argv[2]
    frames, rows, columns, classes = 120, 256, 256, 20
    synthetic.write_series(synthetic.make_ct_series((frames, rows, columns), seed=0), folder)
    source = load_source_geometry(folder)
    zoom = 4.0
    shape = (64, 64, 40)  # model grid (MONAI order), 4x coarser in-plane, 3x through-plane
    affine = source.monai_affine() @ np.diag([zoom, zoom, frames / shape[2], 1.0])
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(classes + 1, *shape)).astype(np.float32)
    logits[0] += 16.0  # background dominates: organ frames away from the organ quantise to 0 (a small output)
    for organ in range(1, classes + 1):  # each organ a few model planes of its own
        logits[organ, 20:40, 20:40, organ + 8:organ + 10] += 24.0
    if len(sys.argv) > 3:  # the materialised path, to check that this test would catch it
        import functools
        from monai_dicomseg.io import prediction, segwrite as segwrite_module
        segwrite_module.to_source_grid = functools.partial(prediction.to_source_grid, lazy=False)
    probabilities = np.exp(logits) / np.exp(logits).sum(0, keepdims=True)
    output = MetaTensor(torch.from_numpy(probabilities), affine=torch.as_tensor(affine))
    writer = DicomSegWriter(segmentation_type=segmentation_type,
                            discretize="threshold" if segmentation_type != "FRACTIONAL" else "auto")
    writer.set_data_array(output, channel_dim=0)
    writer.set_metadata(output.meta, source=folder)
    tracemalloc.start()
    seg = writer.build()
    peak = tracemalloc.get_traced_memory()[1]
    print(json.dumps({"peak": peak, "frames": int(seg.NumberOfFrames),
                      "full": frames * rows * columns * classes * 4}))
""")


@pytest.mark.parametrize("segmentation_type", ["FRACTIONAL"])
def test_writer_peak_memory_has_no_full_size_temporary(tmp_path, segmentation_type):
    """20-class softmax 64x64x40 -> 256x256x120 source: a (F, R, C, S) float32 temporary is 629 MB."""
    script = tmp_path / "measure.py"
    script.write_text(_MEMORY_SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "ct"), segmentation_type],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["frames"] > 0
    # streamed: ~0.45 of the temporary (two 64 MB resampling slabs, the output); materialised: ~2.1x
    assert figures["peak"] < 0.6 * figures["full"], figures
