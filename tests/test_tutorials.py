"""The tutorials run (demo.py, end_to_end.py --fast, slides.py, the example bundle on one series folder) and use public
names only.

The bundle over a folder of many studies, single- and multi-process, is tested in ``tests/test_bundle.py``.
"""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import monai_dicomseg
from monai_dicomseg import synthetic
from oracles import dciodvfy_errors

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
SCRIPTS = sorted(TUTORIALS.glob("*.py"))
BUNDLE_CONFIGS = sorted((TUTORIALS / "bundle" / "configs").glob("*.json"))


def _environment() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")


def _public_names() -> set[str]:
    """``monai_dicomseg.__all__`` (not ``dir()``: importing a submodule anywhere adds it to the namespace)."""
    return set(monai_dicomseg.__all__) | {"__version__"}


# --------------------------------------------------------------------------- public names only


def _private_uses(source: str) -> list[str]:
    """Imports of ``monai_dicomseg`` submodules and non-exported ``<alias>.name`` uses in ``source``."""
    tree = ast.parse(source)
    aliases, problems = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "monai_dicomseg":
                    aliases.add(alias.asname or alias.name)
                elif alias.name.startswith("monai_dicomseg."):
                    problems.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "monai_dicomseg":
            names = ", ".join(alias.name for alias in node.names)
            problems.append(f"line {node.lineno}: from {node.module} import {names} (use 'import monai_dicomseg')")
    public = _public_names()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr not in public):
            problems.append(f"line {node.lineno}: {node.value.id}.{node.attr} is not exported by monai_dicomseg")
    return problems


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_tutorial_scripts_use_only_public_names(script):
    assert _private_uses(script.read_text()) == []


def test_private_use_check_catches_submodule_imports():
    """The check above is not vacuous."""
    source = ("import monai_dicomseg as mds\nfrom monai_dicomseg.io.source_series import from_monai_array\n"
              "import monai_dicomseg.transforms.save\nfrom monai_dicomseg import synthetic\n"
              "mds.io.series\nmds.LoadDicomSeriesd\n")
    problems = _private_uses(source)
    assert len(problems) == 4, problems
    assert any("mds.io" in p for p in problems)
    assert not any("LoadDicomSeriesd" in p for p in problems)


def _dotted_names(text: str) -> set[str]:
    return set(re.findall(r"\bmonai_dicomseg\.([A-Za-z_]\w*)", text))


def test_bundle_configs_and_readme_use_only_public_names():
    public = _public_names()
    for path in [*BUNDLE_CONFIGS, TUTORIALS / "README.md", TUTORIALS / "bundle" / "docs" / "README.md"]:
        used = _dotted_names(path.read_text())
        assert used <= public, f"{path.name} uses non-exported monai_dicomseg names: {sorted(used - public)}"
    targets = [item["_target_"] for path in BUNDLE_CONFIGS for item in _walk_json(json.loads(path.read_text()))
               if isinstance(item, dict) and str(item.get("_target_", "")).startswith("monai_dicomseg")]
    assert "monai_dicomseg.LoadDicomSeriesd" in targets and "monai_dicomseg.SaveDicomSegd" in targets


def _walk_json(value):
    yield value
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for child in children:
        yield from _walk_json(child)


# --------------------------------------------------------------------------- the tutorials run


def test_demo_runs():
    result = subprocess.run([sys.executable, str(TUTORIALS / "demo.py")], capture_output=True, text=True,
                            timeout=300, cwd=ROOT, env=_environment())
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    assert result.stdout.count(" OK") == 3


@pytest.mark.parametrize("source", ["default", "synthetic"])
def test_end_to_end_fast(tmp_path, source):
    if source == "default" and not (ROOT / "data" / "ct1").is_dir():
        pytest.skip("data/ct1 not present: the default run is the synthetic one")
    extra = ["--synthetic"] if source == "synthetic" else []
    result = subprocess.run([sys.executable, str(TUTORIALS / "end_to_end.py"), "--fast", "--workdir", str(tmp_path),
                             *extra], capture_output=True, text=True, timeout=300, cwd=ROOT, env=_environment())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Dice on the source grid" in result.stdout
    written = list((tmp_path / "out").glob("*_seg.dcm"))
    assert len(written) == 1
    assert dciodvfy_errors(written[0]) == []


def test_slides_tutorial_runs(tmp_path):
    """tutorials/slides.py: synthetic DICOM WSI -> SEG -> patches -> training -> sliding window -> stitched SEG."""
    pytest.importorskip("openslide")
    result = subprocess.run([sys.executable, str(TUTORIALS / "slides.py"), "--workdir", str(tmp_path)],
                            capture_output=True, text=True, timeout=300, cwd=ROOT, env=_environment())
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    assert "pixel accuracy 1.0000" in result.stdout
    assert dciodvfy_errors(tmp_path / "inference-level-1.dcm") == []


def _bundle_command(args: list[str]) -> list[str]:
    """``python -m monai.bundle run ...`` (MONAI's CLI; ``fire`` is a test dependency)."""
    return [sys.executable, "-m", "monai.bundle", "run", *args]


def test_bundle_runs_on_one_series_folder(tmp_path):
    """``dataset_dir`` may also be a single series folder (one study)."""
    synthetic.write_series(synthetic.make_ct_series((10, 40, 40), orientation="oblique"), tmp_path / "series")
    configs = TUTORIALS / "bundle" / "configs"
    args = ["--config_file", str(configs / "inference.json"), "--meta_file", str(configs / "metadata.json"),
            "--dataset_dir", str(tmp_path / "series"), "--output_dir", str(tmp_path / "out")]
    result = subprocess.run(_bundle_command(args), capture_output=True, text=True, timeout=300,
                            cwd=TUTORIALS / "bundle", env=_environment())
    assert result.returncode == 0, result.stderr[-3000:]
    written = list((tmp_path / "out").glob("*_seg.dcm"))
    assert len(written) == 1
    assert dciodvfy_errors(written[0]) == []
    hd = pytest.importorskip("highdicom")
    seg = hd.seg.segread(written[0])
    assert list(seg.segment_numbers) == [1, 2]
    assert [seg.get_segment_description(n).segment_label for n in (1, 2)] == ["liver", "spleen"]
