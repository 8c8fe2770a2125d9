"""The example bundle (``tutorials/bundle``) run as a bundle author runs it: ``python -m monai.bundle run``.

Four synthetic studies of different sizes and orientations (one of them with a
ground-truth SEG beside its series, so ``create_datalist`` sees both paired and
unpaired series) are segmented

* by one process: ``python -m monai.bundle run --config_file configs/inference.json ...``;
* by two processes on CPU (gloo): ``python -m torch.distributed.run --nproc_per_node=2 --standalone
  -m monai.bundle run --config_file "['configs/inference.json','configs/multi_gpu_inference.json']" ...``,
  each process writing its share of the studies into the same ``output_dir``.

Every output must be one SEG per source series under a distinct name, no temporary ``*.part`` file
may be left, and each SEG must read back (``LoadDicomSegd`` with ``ref_key`` on the series loaded by
``LoadDicomSeriesd``) on the source grid with segments named from the bundle's ``channel_def``.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

import monai_dicomseg as mds

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "tutorials" / "bundle"
CONFIGS = BUNDLE / "configs"

#: (shape (slices, rows, columns), orientation, spacing (slice, row, column) mm, reverse slice order)
STUDIES = (
    ((8, 32, 32), "axial", (2.0, 1.0, 1.0), False),
    ((6, 28, 36), "coronal", (2.5, 1.2, 1.1), True),
    ((8, 32, 30), "sagittal", (2.0, 1.0, 1.0), False),
    ((7, 30, 26), "oblique", (2.2, 1.1, 1.3), True),
)
CHANNEL_DEF = {"0": "background", "1": "liver", "2": "spleen"}


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def _run(command: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=BUNDLE, env=_environment())
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-6000:])
    return result


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> dict[str, Path]:
    """Four study folders ``study<i>/ct``; study 0 also holds a truth SEG. Returns {SeriesInstanceUID: folder}."""
    root = tmp_path_factory.mktemp("studies")
    series = {}
    for index, (shape, orientation, spacing, reverse) in enumerate(STUDIES):
        datasets = mds.synthetic.make_ct_series(shape, spacing, orientation, n_labels=2, seed=index,
                                                reverse_order=reverse, series_number=index + 1)
        folder = root / f"study{index}" / "ct"
        mds.synthetic.write_series(datasets, folder)
        series[str(datasets[0].SeriesInstanceUID)] = folder
        if index == 0:  # a labelled study: create_datalist pairs it, the bundle must still segment it once
            labels = mds.synthetic.make_ellipsoid_labels(shape, n_labels=2, seed=index)
            truth = mds.Segmentation(
                source_images=datasets, pixel_array=labels, segmentation_type="BINARY",
                segment_descriptions=mds.segment_descriptions_from_names(["liver", "spleen"], algorithm_type="MANUAL"),
                series_instance_uid=mds.UID(), series_number=90, sop_instance_uid=mds.UID(), instance_number=1,
                manufacturer="test", manufacturer_model_name="synthetic", software_versions="1",
                device_serial_number="1")
            truth.save_as(root / "study0" / "truth_seg.dcm")
    return {"root": root, "series": series}


def _bundle_args(dataset_dir: Path, output_dir: Path) -> list[str]:
    return ["--meta_file", str(CONFIGS / "metadata.json"), "--dataset_dir", str(dataset_dir),
            "--output_dir", str(output_dir)]


@pytest.fixture(scope="module")
def single_process(studies, tmp_path_factory) -> Path:
    output_dir = tmp_path_factory.mktemp("single") / "out"
    _run([sys.executable, "-m", "monai.bundle", "run", "--config_file", str(CONFIGS / "inference.json"),
          *_bundle_args(studies["root"], output_dir)])
    return output_dir


@pytest.fixture(scope="module")
def two_processes(studies, tmp_path_factory) -> tuple[Path, str]:
    output_dir = tmp_path_factory.mktemp("multi") / "out"
    configs = f"['{CONFIGS / 'inference.json'}','{CONFIGS / 'multi_gpu_inference.json'}']"
    result = _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                   "-m", "monai.bundle", "run", "--config_file", configs,
                   *_bundle_args(studies["root"], output_dir)])
    return output_dir, result.stdout


def _check_outputs(output_dir: Path, series: dict[str, Path]) -> dict[str, Path]:
    """One SEG per source series, distinct names, no partial files; returns {source SeriesInstanceUID: SEG}."""
    everything = sorted(p.name for p in output_dir.iterdir())
    assert not [name for name in everything if name.endswith(".part")], everything
    written = sorted(output_dir.glob("*_seg.dcm"))
    assert len(written) == len(everything) == len(series), everything
    assert len({p.name for p in written}) == len(written)
    by_source: dict[str, Path] = {}
    for path in written:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert ds.SegmentationType == "LABELMAP"
        source_uid = str(ds.ReferencedSeriesSequence[0].SeriesInstanceUID)
        assert source_uid not in by_source, f"two SEGs for series {source_uid}"
        by_source[source_uid] = path
        # segments come from channel_def; the background channel is never a segment
        names = {int(item.SegmentNumber): str(item.SegmentLabel) for item in ds.SegmentSequence}
        assert names == {1: "liver", 2: "spleen"}
    assert set(by_source) == set(series)
    return by_source


def _check_source_grid(seg_path: Path, series_folder: Path) -> None:
    """The SEG loads with ``ref_key`` on its source series: same spatial shape and affine."""
    loaded = mds.LoadDicomSegd(keys="label", ref_key="image", mode="labelmap")(
        mds.LoadDicomSeriesd(keys="image")({"image": str(series_folder), "label": str(seg_path)}))
    image, label = loaded["image"], loaded["label"]
    assert tuple(label.shape[1:]) == tuple(image.shape[1:])
    np.testing.assert_allclose(np.asarray(label.affine), np.asarray(image.affine), atol=1e-4)
    assert set(np.unique(np.asarray(label))) <= {0, 1, 2}


def test_bundle_configs_reference_channel_def():
    """``labels`` is a reference to the metadata's channel_def, not a copy of it."""
    import json

    inference = json.loads((CONFIGS / "inference.json").read_text())
    metadata = json.loads((CONFIGS / "metadata.json").read_text())
    assert metadata["network_data_format"]["outputs"]["pred"]["channel_def"] == CHANNEL_DEF
    save = inference["postprocessing"]["transforms"][-1]
    assert save["_target_"] == "monai_dicomseg.SaveDicomSegd"
    assert save["labels"] == "@_meta_#network_data_format#outputs#pred#channel_def"
    assert inference["inferer"]["_target_"] == "SlidingWindowInferer"
    assert "lambda" not in json.dumps(inference)


def test_network_matches_network_data_format():
    """MONAI's own check: the network's input/output shapes and channels agree with metadata.json."""
    _run([sys.executable, "-m", "monai.bundle", "verify_net_in_out", "network_def",
          "--meta_file", str(CONFIGS / "metadata.json"), "--config_file", str(CONFIGS / "inference.json"),
          "--n", "4"])


def test_single_process_writes_one_seg_per_study(studies, single_process):
    by_source = _check_outputs(single_process, studies["series"])
    for uid, path in by_source.items():
        _check_source_grid(path, studies["series"][uid])


def test_two_processes_share_the_studies(studies, two_processes, single_process):
    output_dir, stdout = two_processes
    by_source = _check_outputs(output_dir, studies["series"])
    # each of the two processes wrote its half of the four studies
    shares = dict(re.findall(r"rank (\d) of 2 wrote (\d+) SEG", stdout))
    assert shares == {"0": "2", "1": "2"}, stdout[-2000:]
    for uid, path in by_source.items():
        _check_source_grid(path, studies["series"][uid])
    # same seeded network in every process: the same voxels as the single-process run
    single = _check_outputs(single_process, studies["series"])
    for uid, path in by_source.items():
        assert pydicom.dcmread(path).PixelData == pydicom.dcmread(single[uid]).PixelData
