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
VARIANTS = ["nii-gz", "nii-gz-control", "nii", "seg-binary", "seg-labelmap", "seg-fractional"]
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


def test_tables_have_the_ratios_to_nii_gz_and_the_training_step_runs(cache: Path) -> None:
    """One SEG variant against the reference, with the UNet step (four child processes: ~30 s on 2 cores)."""
    output = run_script(cache, "--variants", "seg-labelmap", "nii-gz")
    assert "UNet step" in output and "1 rounds" in output
    loop = table_rows(output, "items/s")
    items = table_rows(output, "label share")
    assert list(loop) == list(items) == ["nii-gz", "seg-labelmap"]  # the reference first, whatever the order asked
    assert re.search(r"x\d+\.\d\d items/s, paired x\d+\.\d\d \(\d+\.\d\d-\d+\.\d\d\)$", loop["seg-labelmap"]), loop["seg-labelmap"]
    assert re.search(r"label x\d+\.\d\d, chain x\d+\.\d\d$", items["seg-labelmap"]), items["seg-labelmap"]
    assert re.search(r"\d+\.\d%", items["seg-labelmap"]), items["seg-labelmap"]
    assert "x" not in loop["nii-gz"].split()[-1]  # the reference has no ratio to itself
