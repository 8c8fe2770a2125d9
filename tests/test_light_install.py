"""The light install (``pip install monai_dicomseg``, no torch/MONAI) and missing optional packages.

* every third-party module the SEG layer and the command line import is a
  declared base dependency in pyproject.toml (``tqdm`` for ``batch`` was not);
* torch / MONAI appear only in the ``monai`` extra, never pinned;
* importing the MONAI layer without torch/MONAI fails with one line naming the
  install command (checked for real in the light venv, by hiding torch/MONAI
  in a subprocess here);
* reading compressed SEG frames without the decoder plugin names the package.

This module imports nothing from torch or MONAI: ``make test-light`` runs it.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

import monai_dicomseg
from monai_dicomseg.errors import DicomSegError, MissingDependencyError

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "monai_dicomseg"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

#: import name -> distribution name, where they differ.
DISTRIBUTION = {"openjpeg": "pylibjpeg-openjpeg", "jpeg_ls": "pyjpegls", "rle": "pylibjpeg-rle",
                "libjpeg": "pylibjpeg-libjpeg", "yaml": "pyyaml"}
#: Folders / modules of the MONAI layer (they may import torch and MONAI).
MONAI_LAYER = ("transforms", "data", "io/reader.py", "io/writer.py")
#: Imports that are not run-time dependencies (standard library is filtered separately).
NOT_RUNTIME = {"monai_dicomseg", "typing_extensions"}  # typing_extensions: TYPE_CHECKING only

HIDE_TORCH = "import sys; sys.modules['torch'] = None; sys.modules['monai'] = None; "


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    """Top-level names of the modules ``path`` imports (outside ``if TYPE_CHECKING:``).

    With ``top_level_only``, imports inside functions (lazy, optional) are left out.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    excluded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            excluded.update(id(child) for child in ast.walk(node))
        if top_level_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            excluded.update(id(child) for child in ast.walk(node))
    names = set()
    for node in ast.walk(tree):
        if id(node) in excluded:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _light_layer_files() -> list[Path]:
    files = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if not any(relative == part or relative.startswith(part + "/") for part in MONAI_LAYER):
            files.append(path)
    return files


def _undeclared(declared: set[str], top_level_only: bool) -> dict[str, list[str]]:
    missing: dict[str, list[str]] = {}
    for path in _light_layer_files():
        for name in _imports(path, top_level_only) - NOT_RUNTIME - set(sys.stdlib_module_names):
            distribution = DISTRIBUTION.get(name, name).lower().replace("_", "-")
            if distribution not in declared:
                missing.setdefault(distribution, []).append(path.relative_to(ROOT).as_posix())
    return missing


def test_every_light_layer_import_is_a_declared_dependency():
    """Module-level imports of the SEG layer and CLI: base dependencies only."""
    declared = {_requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    missing = _undeclared(declared, top_level_only=True)
    assert missing == {}, f"imported by the light install but not in [project] dependencies: {missing}"


def test_every_lazy_import_is_declared_somewhere():
    """Imports inside functions (optional codecs, torch on the MONAI writer's paths): base or an extra."""
    declared = {_requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    for requirements in PYPROJECT["project"]["optional-dependencies"].values():
        declared |= {_requirement_name(r) for r in requirements}
    missing = _undeclared(declared, top_level_only=False)
    assert missing == {}, f"imported lazily but declared nowhere in pyproject.toml: {missing}"


def test_every_cli_import_is_a_base_dependency():
    """The command line's imports, lazy ones included, need nothing beyond the light install."""
    declared = {_requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        for name in _imports(path) - NOT_RUNTIME - set(sys.stdlib_module_names):
            assert DISTRIBUTION.get(name, name).lower().replace("_", "-") in declared, (path.name, name)


def test_cli_batch_dependency_is_declared():
    """Regression: ``monai-dicomseg batch`` imports tqdm, which used to be a test-only dependency."""
    assert "tqdm" in _imports(PACKAGE / "cli" / "batch.py")
    assert "tqdm" in {_requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}


def test_torch_and_monai_only_in_the_monai_extra_and_never_pinned():
    base = {_requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert not base & {"torch", "monai"}
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {"torch", "monai"} <= {_requirement_name(r) for r in extras["monai"]}
    for requirements in extras.values():
        for requirement in requirements:
            if _requirement_name(requirement) == "torch":
                assert requirement.strip() == "torch", f"torch must not be pinned: {requirement!r}"


@pytest.mark.parametrize("statement, module", [
    ("import monai_dicomseg.transforms", "monai_dicomseg.transforms"),
    ("import monai_dicomseg.data", "monai_dicomseg.data"),
    ("import monai_dicomseg.io.reader", "monai_dicomseg.io.reader"),
    ("import monai_dicomseg.io.writer", "monai_dicomseg.io.writer"),
    ("from monai_dicomseg import LoadDicomSeg", "monai_dicomseg.transforms"),
    ("import monai_dicomseg; monai_dicomseg.SaveDicomSegd", "monai_dicomseg.transforms"),
    ("import monai_dicomseg; monai_dicomseg.DicomSegReader", "monai_dicomseg.io.reader"),
])
def test_monai_layer_without_torch_fails_with_one_line(statement: str, module: str):
    result = subprocess.run([sys.executable, "-c", HIDE_TORCH + statement],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("monai_dicomseg.errors.MissingDependencyError: "), result.stderr
    assert f"{module} is the MONAI layer and needs torch and monai" in last
    assert 'pip install "monai_dicomseg[monai]"' in last
    assert "During handling" not in result.stderr and "ModuleNotFoundError" not in result.stderr


def test_missing_dependency_error_is_an_import_error():
    from monai_dicomseg.io import require_monai

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "monai", None)
        with pytest.raises(MissingDependencyError,
                           match=r"^x\.y is the MONAI layer and needs .*monai.*"
                                 r'pip install "monai_dicomseg\[monai\]"') as info:
            require_monai("x.y")
    assert isinstance(info.value, ImportError) and isinstance(info.value, DicomSegError)
    assert "\n" not in str(info.value)


def test_light_layer_imports_without_torch():
    """The command line and the torch-free io modules it uses import with torch/MONAI hidden."""
    code = HIDE_TORCH + (
        "import monai_dicomseg.cli.main, monai_dicomseg.io.source_series, monai_dicomseg.io.grid, "
        "monai_dicomseg.io.segload, monai_dicomseg.seg, monai_dicomseg.anatomy; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_cli_runs_without_torch(tmp_path: Path):
    """``info`` and ``to-nifti`` on data/ with torch/MONAI hidden."""
    code = HIDE_TORCH + "from monai_dicomseg.cli.main import main; sys.exit(main(sys.argv[1:]))"
    for args in (["info", str(ROOT / "data/ct2/seg_labelmap.dcm")],
                 ["to-nifti", str(ROOT / "data/ct2/seg_binary.dcm"), str(tmp_path / "l.nii.gz"),
                  "--source", str(ROOT / "data/ct2/series")]):
        result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "l.nii.gz").is_file()


# --------------------------------------------------------------------------- codecs


def _compressed_seg(tmp_path: Path, syntax: str) -> Path:
    """The LABELMAP SEG of data/ct1 re-encoded with ``syntax``."""
    from monai_dicomseg.cli.convert import convert_seg

    name = {RLELossless: "rle", JPEG2000Lossless: "jpeg2000", JPEGLSLossless: "jpegls"}[syntax]
    out = tmp_path / f"{name}.dcm"
    convert_seg(str(ROOT / "data/ct1/seg_labelmap.dcm"), str(out), segmentation_type="LABELMAP",
                compress=name)
    assert pydicom.dcmread(out, stop_before_pixels=True).file_meta.TransferSyntaxUID == syntax
    return out


@pytest.mark.parametrize("syntax, package", [
    (JPEGLSLossless, "pip install pyjpegls"),
    (JPEG2000Lossless, "pip install pylibjpeg pylibjpeg-openjpeg"),
])
def test_reading_without_decoder_plugin_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          syntax: str, package: str):
    from pydicom.pixels import get_decoder

    path = _compressed_seg(tmp_path, syntax)
    decoder = get_decoder(syntax)
    monkeypatch.setattr(decoder, "_available", {})  # as if no plugin were installed
    assert not decoder.is_available
    seg = monai_dicomseg.seg.segread(path)
    from monai_dicomseg.codec.transfer_syntax import lookup

    # the message names the syntax by its UID and the table's title, and the package to install
    title = lookup(str(syntax)).title
    with pytest.raises(MissingDependencyError,
                       match=rf"{re.escape(str(syntax))} \({re.escape(title)}\).*{re.escape(package)}$"):
        seg.get_volume(combine_segments=True)


def test_reading_with_decoder_plugin_works(tmp_path: Path):
    path = _compressed_seg(tmp_path, RLELossless)
    reference = monai_dicomseg.seg.segread(ROOT / "data/ct1/seg_labelmap.dcm")
    seg = monai_dicomseg.seg.segread(path)
    np.testing.assert_array_equal(seg.get_volume(combine_segments=True).array,
                                  reference.get_volume(combine_segments=True).array)


# --------------------------------------------------------------------------- resampling


def _rotated_plan():
    """A ``general`` (rotated) plan from a 20x24x28 model grid onto a 16x20x24 source grid."""
    from monai_dicomseg.io.grid import plan_grid_mapping

    angle = np.deg2rad(17.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    # source (F, R, C) index -> LPS mm: columns along x, rows along y, frames along z (1.5 mm)
    source_affine = np.array([[0, 0, 1.0, 0], [0, 1.0, 0, 0], [1.5, 0, 0, 0], [0, 0, 0, 1]])
    centre_ras = np.array([-11.5, -9.5, 11.25])  # the source block's centre, in RAS
    output_affine = np.eye(4)
    output_affine[:3, :3] = rotation @ np.diag([1.1, 0.9, 1.3])
    output_affine[:3, 3] = centre_ras - output_affine[:3, :3] @ (np.array([20, 24, 28]) - 1) / 2
    plan = plan_grid_mapping(output_affine, (20, 24, 28), source_affine, (16, 20, 24), space="RAS")
    assert plan.kind == "general"
    labels = np.random.default_rng(3).integers(0, 4, size=(20, 24, 28)).astype(np.uint8)
    return plan, labels


def test_nearest_resampling_runs_without_torch(monkeypatch: pytest.MonkeyPatch):
    """``from-nifti`` of a rotated NIfTI needs nearest resampling; the light install has no torch."""
    from monai_dicomseg.io.grid import map_nearest

    plan, labels = _rotated_plan()
    monkeypatch.setitem(sys.modules, "torch", None)
    mapped = map_nearest(labels, plan)
    assert mapped.dtype == np.uint8
    assert mapped.shape == tuple(plan.source_shape)
    assert set(np.unique(mapped)) <= {0, 1, 2, 3} and mapped.any()


@pytest.mark.monai
def test_nearest_resampling_without_torch_equals_torch(monkeypatch: pytest.MonkeyPatch):
    from monai_dicomseg.io.grid import map_nearest

    plan, labels = _rotated_plan()
    with_torch = map_nearest(labels, plan)
    monkeypatch.setitem(sys.modules, "torch", None)
    without_torch = map_nearest(labels, plan)
    # both round half to even; float32 (torch) vs float64 (numpy) coordinates may differ at exact ties
    assert np.mean(with_torch != without_torch) < 1e-3
