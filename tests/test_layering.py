"""DESIGN.md's one-way layering: the SEG system works without torch or MONAI loaded."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CODE = """
import sys
import numpy as np
import monai_dicomseg as hd
import monai_dicomseg.codec.compression, monai_dicomseg.codec.decode, monai_dicomseg.codec.frame_index
import monai_dicomseg.geometry.volume, monai_dicomseg.geometry.series
import monai_dicomseg.seg.encode, monai_dicomseg.seg.reader, monai_dicomseg.seg.pyramid
from monai_dicomseg.synthetic import make_ct_series
from pydicom.sr.codedict import codes
series = make_ct_series(shape=(3, 16, 16))
seg = hd.seg.Segmentation(
    source_images=series, pixel_array=np.ones((3, 16, 16), np.uint8), segmentation_type="LABELMAP",
    segment_descriptions=[hd.seg.SegmentDescription(
        segment_number=1, segment_label="a", segmented_property_category=codes.SCT.Organ,
        segmented_property_type=codes.SCT.Liver, algorithm_type="MANUAL")],
    series_instance_uid=hd.UID(), series_number=1, sop_instance_uid=hd.UID(), instance_number=1,
    manufacturer="x", manufacturer_model_name="x", software_versions="0", device_serial_number="0")
assert seg.get_volume(combine_segments=True).array.sum() == 3 * 16 * 16
loaded = sorted(name for name in ("torch", "monai", "highdicom", "nibabel") if name in sys.modules)
print(",".join(loaded))
"""


def test_seg_system_loads_without_torch_or_monai():
    result = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"imported heavy/optional packages: {result.stdout.strip()}"


# DESIGN.md section 2, lowest first: a module may import its own group, any
# group of a lower rank, and the package root (the lazy public facade).
LAYERS: list[set[str]] = [
    {"errors", "enums", "_lazy", "options", "uid", "atomic", "color", "synthetic", "image"},  # shared vocabulary
    {"geometry", "sr", "dicomweb"},  # numpy geometry; coded concepts; DICOMweb transport (stdlib)
    {"codec"},  # pydicom + numpy encoder/decoder
    {"seg"},  # the public SEG API
    {"anatomy", "spatial"},  # guide-vocabulary facades over seg/ and geometry/ (hd.spatial, names -> segments)
    {"io"},  # MONAI layer, lowest part: readers/writers
    {"transforms"},
    {"data"},
    {"cli"},
    {"__main__"},
]
SHARED = LAYERS[0]
RANK = {group: rank for rank, groups in enumerate(LAYERS) for group in groups}
ROOT = Path(__file__).resolve().parents[1] / "monai_dicomseg"
# third-party packages a group must never import (also inside functions)
FORBIDDEN_THIRD_PARTY = {
    "geometry": ("torch", "monai", "pydicom", "highdicom"),  # nibabel: optional, Volume.from_nibabel/to_nibabel only
    "codec": ("torch", "monai", "highdicom", "nibabel"),
    "seg": ("torch", "monai", "highdicom", "nibabel"),
    "sr": ("torch", "monai"),
}


def _group(module: str) -> "str | None":
    """Layer group of a dotted module name inside the package (``None``: the package root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, at any depth (functions, ``TYPE_CHECKING`` blocks), absolute."""
    package = ""
    if path.is_relative_to(ROOT):  # relative imports resolve against the module's package
        package = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.append((node.lineno, ".".join(base + ([node.module] if node.module else []))))
            else:
                found.append((node.lineno, node.module or ""))
    return found


def _sources() -> list[Path]:
    return sorted(ROOT.rglob("*.py"))


def _source_group(path: Path) -> str:
    relative = path.relative_to(ROOT)
    return relative.parts[0] if len(relative.parts) > 1 else path.stem


def test_every_module_belongs_to_a_layer():
    missing = sorted({_source_group(p) for p in _sources()} - set(RANK) - {"__init__"})
    assert not missing, f"add these to LAYERS (and to DESIGN.md): {missing}"


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_flow_one_way(path):
    source = _source_group(path)
    if source == "__init__":
        return  # the package root is the lazy facade over every layer
    problems = []
    for line, module in _imports(path):
        if module.split(".")[0] != "monai_dicomseg":
            top = module.split(".")[0]
            if top in FORBIDDEN_THIRD_PARTY.get(source, ()):
                problems.append(f"line {line}: imports {module} ({source} must not)")
            continue
        target = _group(module)
        if target is None or target == source or (source in SHARED and target in SHARED):
            continue
        if RANK.get(target, len(LAYERS)) >= RANK[source]:
            problems.append(f"line {line}: {source} imports {module} (layer {target!r} is not below {source!r})")
    assert not problems, f"{path.relative_to(ROOT)}:\n" + "\n".join(problems)


def test_geometry_does_not_import_codec_even_inside_functions(tmp_path):
    """The static check sees function-level and TYPE_CHECKING imports (a guard for the check itself)."""
    probe = tmp_path / "probe.py"
    probe.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import monai_dicomseg.codec.raw\n"
                     "def f():\n    from monai_dicomseg.codec.spatial_content import PlanePositionSequence\n")
    assert {(3, "monai_dicomseg.codec.raw"), (5, "monai_dicomseg.codec.spatial_content")} <= set(_imports(probe))
    for path in (ROOT / "geometry").rglob("*.py"):
        assert not [m for _, m in _imports(path) if m.startswith("monai_dicomseg.codec")], path.name
