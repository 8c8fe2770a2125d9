"""Smoke test of benchmarks/training.py (issue 25): the script runs end to end on tiny cases and prints both
tables with every variant and the ratios to ``nii-gz``. No timing is asserted (the figures are noise at this
size); the cases are written to a temporary folder (``--cache``)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.monai]

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "training.py"
VARIANTS = ["nii-gz", "nii", "seg-binary", "seg-labelmap", "seg-fractional"]
TINY = ["--shape", "16", "48", "48", "--cases", "1", "--epochs", "1", "--rounds", "1", "--repeats", "1",
        "--crop", "16", "16", "8"]


def run_script(cache: Path, *extra: str) -> str:
    done = subprocess.run([sys.executable, str(SCRIPT), *TINY, "--cache", str(cache), *extra],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "failed" not in done.stdout, done.stdout
    return done.stdout


def table_rows(output: str, header: str) -> "dict[str, str]":
    """The rows (by variant) of the table whose header line contains ``header``."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if header in line)
    rows = {}
    for line in lines[start + 1:]:
        name = line.split(" ", 1)[0]
        if name not in VARIANTS:
            break
        rows[name] = line
    return rows


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("training_cases")


def test_loader_only_prints_every_variant_with_ratios(cache: Path) -> None:
    output = run_script(cache, "--no-train")
    assert "loader only" in output and "1 rounds" in output
    loop = table_rows(output, "items/s")
    items = table_rows(output, "label share")
    assert list(loop) == VARIANTS and list(items) == VARIANTS
    for variant in VARIANTS[1:]:
        assert re.search(r"x\d+\.\d\d items/s \(\d+\.\d\d-\d+\.\d\d\)$", loop[variant]), loop[variant]
        assert re.search(r"label x\d+\.\d\d, chain x\d+\.\d\d$", items[variant]), items[variant]
        assert re.search(r"\d+\.\d%", items[variant]), items[variant]
    assert "x" not in loop["nii-gz"].split()[-1]  # the reference has no ratio to itself


def test_training_step_runs(cache: Path) -> None:
    output = run_script(cache, "--variants", "seg-labelmap")
    assert "UNet step" in output
    assert list(table_rows(output, "items/s")) == ["seg-labelmap"]
    assert list(table_rows(output, "label share")) == ["seg-labelmap"]
