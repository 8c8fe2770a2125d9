"""The MONAI layer's missing-dependency message comes from the modules themselves, not an import hook.

``monai_dicomseg/io/__init__.py`` used to put a finder on ``sys.meta_path``
(process-wide, for as long as the interpreter lives) so that importing
``io/reader.py`` / ``io/writer.py`` without torch/MONAI gave a one-line
:class:`MissingDependencyError`. Each MONAI-layer module now says so itself;
the user-visible behaviour is checked in ``tests/test_light_install.py``.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "monai_dicomseg"
HIDE_TORCH = "import sys; sys.modules['torch'] = None; sys.modules['monai'] = None; "
PROBE = ("before = list(sys.meta_path); import monai_dicomseg.io, monai_dicomseg.io.segload; "
         "print(list(sys.meta_path) == before, len(sys.meta_path) == len(before))")


@pytest.mark.parametrize("hide", [True, False], ids=["without-torch", "with-torch"])
def test_importing_io_leaves_sys_meta_path_alone(hide: bool):
    code = (HIDE_TORCH if hide else "import sys; ") + PROBE
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]


def test_io_package_defines_no_import_hook():
    tree = ast.parse((PACKAGE / "io" / "__init__.py").read_text())
    names = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not names & {"meta_path", "path_hooks"}
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]


def _guarded(path: Path) -> bool:
    """Module level: ``require_monai(__name__)``, or MONAI imported in a try whose handler calls it."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Expr) and "require_monai(__name__)" in ast.unparse(node):
            return True
        if isinstance(node, ast.Try) and any("monai" in ast.unparse(item) for item in node.body):
            return any("require_monai(__name__)" in ast.unparse(handler) for handler in node.handlers)
    return False


@pytest.mark.parametrize("relative", ["io/reader.py", "io/writer.py", "transforms/__init__.py",
                                      "data/__init__.py"])
def test_each_monai_layer_entry_point_checks_its_dependencies(relative: str):
    assert _guarded(PACKAGE / relative), f"{relative}: call require_monai(__name__) before importing MONAI"


def test_an_unguarded_module_is_seen(tmp_path: Path):
    """A guard for the check itself."""
    probe = tmp_path / "probe.py"
    probe.write_text("from monai.data import ImageReader\n")
    assert not _guarded(probe)
    probe.write_text("try:\n    from monai.data import ImageReader\nexcept ImportError:\n    raise\n")
    assert not _guarded(probe)
