"""The tutorials run: end_to_end.py --fast, and the example bundle through MONAI's bundle runner."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monai_dicomseg import synthetic
from oracles import dciodvfy_errors

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"


def test_end_to_end_fast(tmp_path):
    result = subprocess.run([sys.executable, str(TUTORIALS / "end_to_end.py"), "--fast", "--workdir", str(tmp_path)],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Dice on the source grid" in result.stdout
    written = list((tmp_path / "out").glob("*_seg.dcm"))
    assert len(written) == 1
    assert dciodvfy_errors(written[0]) == []


def _bundle_command(args: list[str]) -> list[str]:
    """``python -m monai.bundle run ...`` (MONAI's CLI; ``fire`` is a test dependency)."""
    return [sys.executable, "-m", "monai.bundle", "run", *args]


def test_bundle_runs_and_writes_valid_seg(tmp_path):
    synthetic.write_series(synthetic.make_ct_series((10, 40, 40), orientation="oblique"), tmp_path / "series")
    configs = TUTORIALS / "bundle" / "configs"
    args = ["--config_file", str(configs / "inference.json"), "--meta_file", str(configs / "metadata.json"),
            "--dataset_dir", str(tmp_path / "series"), "--output_dir", str(tmp_path / "out")]
    result = subprocess.run(_bundle_command(args), capture_output=True, text=True, timeout=300,
                            cwd=TUTORIALS / "bundle")
    assert result.returncode == 0, result.stderr[-3000:]
    written = list((tmp_path / "out").glob("*_seg.dcm"))
    assert len(written) == 1
    assert dciodvfy_errors(written[0]) == []
    hd = pytest.importorskip("highdicom")
    assert list(hd.seg.segread(written[0]).segment_numbers) == [1, 2]
