"""The one-way layering of docs/architecture.md: the SEG system works without torch or MONAI loaded."""
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


# docs/architecture.md ("Layer map"), lowest first: a module may import its own group and any group of a
# lower rank, directly or through the package root's facade (a name of the root resolves to the module
# that defines it: monai_dicomseg/__init__.py's _LAZY table or its eager imports).
# tests/test_architecture_map.py checks that the map in docs/architecture.md agrees with this list.
LAYERS: list[set[str]] = [
    {"errors", "enums", "meta_keys", "_lazy", "options", "uid", "atomic", "color", "synthetic", "image"},  # shared vocabulary
    {"geometry", "sr", "dicomweb"},  # numpy geometry; coded concepts; DICOMweb transport (stdlib)
    {"codec"},  # pydicom + numpy encoder/decoder
    {"seg"},  # the public SEG API
    {"anatomy", "spatial", "slides"},  # facades over seg/ and geometry/ (hd.spatial, names -> segments;
    #   slides/: slide images and tiled SEGs as patches, torch-free; its MONAI datasets are in data/slides.py)
    {"io"},  # MONAI layer, lowest part: readers/writers
    {"transforms"},
    {"data"},
    {"cli"},
    {"__main__"},
]
SHARED = LAYERS[0]
# modules any layer may import: vocabulary kept in a higher folder (stdlib + shared errors only, tested
# in tests/codec/test_transfer_syntax_table.py): the one transfer-syntax table; the one 1-bit packing
# module (numpy only, tested in tests/codec/test_bitpack.py)
SHARED_MODULES = {"monai_dicomseg.codec.transfer_syntax", "monai_dicomseg.codec.bitpack"}
RANK = {group: rank for rank, groups in enumerate(LAYERS) for group in groups}
ROOT = Path(__file__).resolve().parents[1] / "monai_dicomseg"
# third-party packages a group must never import (also inside functions)
FORBIDDEN_THIRD_PARTY = {
    "geometry": ("torch", "monai", "pydicom", "highdicom"),  # nibabel: optional, Volume.from_nibabel/to_nibabel only
    "codec": ("torch", "monai", "highdicom", "nibabel"),
    "seg": ("torch", "monai", "highdicom", "nibabel"),
    "sr": ("torch", "monai"),
    "slides": ("torch", "monai", "highdicom"),
}
# the only functions that may import a package FORBIDDEN_THIRD_PARTY names for their group, and which:
# Volume.to_monai / Volume.from_monai convert to and from MONAI's MetaTensor (highdicom pull request #454's
# API on hd.Volume). They import monai/torch when called, so geometry/ still loads without them
# (test_seg_system_loads_without_torch_or_monai); the numpy side (axis order, metadata) stays outside them.
THIRD_PARTY_EXEMPTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("geometry/volume.py", "Volume.to_monai"): ("torch", "monai"),
    ("geometry/volume.py", "Volume.from_monai"): ("torch", "monai"),
}


def _exempt_lines(path: Path) -> dict[int, tuple[str, ...]]:
    """Line number -> third-party packages allowed there (the lines of the functions exempted in ``path``)."""
    try:
        relative = path.relative_to(ROOT).as_posix()
    except ValueError:
        return {}
    wanted = {name: packages for (file, name), packages in THIRD_PARTY_EXEMPTIONS.items() if file == relative}
    lines: dict[int, tuple[str, ...]] = {}
    for name, function in _functions(ast.parse(path.read_text(), filename=str(path))):
        if name in wanted:
            lines.update({line: wanted[name] for line in range(function.lineno, (function.end_lineno or 0) + 1)})
    return lines


def _functions(tree: ast.Module) -> list[tuple[str, ast.AST]]:
    """``(qualified name, node)`` of the module's functions and of its classes' methods."""
    found: list[tuple[str, ast.AST]] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.append((node.name, node))
        elif isinstance(node, ast.ClassDef):
            found += [(f"{node.name}.{item.name}", item) for item in node.body
                      if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return found


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
    assert not missing, f"add these to LAYERS (and to docs/architecture.md): {missing}"


def _root_facade() -> dict[str, str]:
    """Each name the package root offers -> the module that defines it (``_LAZY`` and eager imports)."""
    tree = ast.parse((ROOT / "__init__.py").read_text())
    table: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets):
            lazy = ast.literal_eval(node.value)
            table.update({name: target.partition(":")[0] for name, target in lazy.items()})
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith(PACKAGE + "."):
            table.update({alias.asname or alias.name: node.module for alias in node.names})
    return table


PACKAGE = "monai_dicomseg"
FACADE = _root_facade()


def _facade_target(name: str) -> "str | None":
    """The module behind ``monai_dicomseg.<name>``: a facade name, a subpackage/module, or None (root's own)."""
    if name in FACADE:
        return FACADE[name]
    if (ROOT / name).is_dir() or (ROOT / f"{name}.py").is_file():
        return f"{PACKAGE}.{name}"
    return None


def _root_aliases(tree: ast.AST) -> set[str]:
    """Local names bound to the package root (``import monai_dicomseg [as hd]``, ``import monai_dicomseg.x``)."""
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE:
                    aliases.add(alias.asname or PACKAGE)
                elif alias.name.startswith(PACKAGE + ".") and alias.asname is None:
                    aliases.add(PACKAGE)
    return aliases


def _facade_imports(path: Path) -> list[tuple[int, str]]:
    """What ``path`` reaches through the package root, as ``(line, module)``; ``"?"`` for a dynamic lookup.

    ``from monai_dicomseg import X``, ``monai_dicomseg.X`` / ``hd.X`` after
    ``import monai_dicomseg as hd``, and ``getattr(hd, name)`` (a non-constant
    name cannot be resolved, so it is reported as ``"?"``).
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    aliases = _root_aliases(tree)
    found: list[tuple[int, "str | None"]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == PACKAGE:
            found += [(node.lineno, _facade_target(alias.name)) for alias in node.names]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            found.append((node.lineno, _facade_target(node.attr)))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
              and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id in aliases):
            name = node.args[1] if len(node.args) > 1 else None
            constant = isinstance(name, ast.Constant) and isinstance(name.value, str)
            found.append((node.lineno, _facade_target(name.value) if constant else "?"))  # type: ignore[union-attr]
    return [(line, module) for line, module in found if module is not None]


def _layer_problems(path: Path, source: str) -> list[str]:
    """Imports of ``path`` (direct and through the root facade) that do not flow one way."""
    problems = []
    for line, module in _facade_imports(path):
        if module == "?":
            problems.append(f"line {line}: getattr on the package root with a computed name (unresolvable)")
            continue
        target = _group(module)
        if target is not None and target != source and not (source in SHARED and target in SHARED):
            if RANK.get(target, len(LAYERS)) >= RANK[source]:
                problems.append(f"line {line}: {source} reaches {module} through the package root "
                                f"(layer {target!r} is not below {source!r})")
    exempt = _exempt_lines(path)
    for line, module in _imports(path):
        if module.split(".")[0] != "monai_dicomseg":
            top = module.split(".")[0]
            if top in FORBIDDEN_THIRD_PARTY.get(source, ()) and top not in exempt.get(line, ()):
                problems.append(f"line {line}: imports {module} ({source} must not)")
            continue
        target = _group(module)
        if module in SHARED_MODULES:
            continue
        if target is None or target == source or (source in SHARED and target in SHARED):
            continue
        if RANK.get(target, len(LAYERS)) >= RANK[source]:
            problems.append(f"line {line}: {source} imports {module} (layer {target!r} is not below {source!r})")
    return problems


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_flow_one_way(path):
    """Direct imports and names reached through the package root (``hd.X``, ``from monai_dicomseg import X``)."""
    source = _source_group(path)
    if source == "__init__":
        return  # the package root is the lazy facade over every layer
    problems = _layer_problems(path, source)
    assert not problems, f"{path.relative_to(ROOT)}:\n" + "\n".join(problems)


def test_root_facade_imports_are_checked(tmp_path):
    """A guard for the check itself: geometry reaching codec through the root's lazy names fails."""
    probe = tmp_path / "probe.py"
    probe.write_text("import monai_dicomseg\nimport monai_dicomseg as hd\nfrom monai_dicomseg import Volume, "
                     "InputError, __version__\nfrom monai_dicomseg import PlanePositionSequence\n"
                     "def f(name):\n    return (monai_dicomseg.PixelMeasuresSequence, hd.Segmentation, hd.seg,\n"
                     "            getattr(hd, 'PlaneOrientationSequence'), getattr(monai_dicomseg, name), hd.Volume)\n")
    problems = "\n".join(_layer_problems(probe, "geometry"))
    assert "line 4: geometry reaches monai_dicomseg.codec.spatial_content" in problems
    assert "line 6: geometry reaches monai_dicomseg.codec.spatial_content" in problems  # hd.PixelMeasures...
    assert "line 6: geometry reaches monai_dicomseg.seg.segmentation" in problems
    assert "line 6: geometry reaches monai_dicomseg.seg " in problems
    assert "line 7: geometry reaches monai_dicomseg.codec.spatial_content" in problems  # constant getattr
    assert "line 7: getattr on the package root with a computed name" in problems
    assert "geometry.volume" not in problems and "errors" not in problems and "__version__" not in problems
    assert _layer_problems(probe, "cli") == ["line 7: getattr on the package root with a computed name "
                                             "(unresolvable)"]
    assert FACADE["PlanePositionSequence"] == "monai_dicomseg.codec.spatial_content"
    assert FACADE["InputError"] == "monai_dicomseg.errors"


def test_late_bindings_are_declared_by_the_root_and_point_up():
    """``_lazy.provide`` (dependency inversion) is called by the package root only; each binding resolves,
    to a module above the shared vocabulary, and satisfies the role's protocol."""
    callers = [path.relative_to(ROOT) for path in _sources()
               if any(isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "provide"
                      for node in ast.walk(ast.parse(path.read_text())))]
    assert [str(c) for c in callers] == ["__init__.py"]
    import monai_dicomseg  # noqa: F401 - declares the bindings
    from monai_dicomseg._lazy import PROVIDERS, provider
    from monai_dicomseg.geometry.volume_base import FUNCTIONAL_GROUPS_ROLE, FunctionalGroupBuilder

    assert set(PROVIDERS) == {FUNCTIONAL_GROUPS_ROLE}
    for role, target in PROVIDERS.items():
        assert _group(target.partition(":")[0]) not in SHARED, role
        provider(role)
    assert isinstance(provider(FUNCTIONAL_GROUPS_ROLE), FunctionalGroupBuilder)


def test_third_party_exemptions_are_narrow():
    """Each exemption names an existing function; outside those functions the packages stay forbidden."""
    for (file, name), packages in THIRD_PARTY_EXEMPTIONS.items():
        path = ROOT / file
        names = {qualified for qualified, _ in _functions(ast.parse(path.read_text()))}
        assert name in names, f"{file}: exempted function {name} does not exist"
        imported = {module.split(".")[0] for line, module in _imports(path) if line in _exempt_lines(path)}
        assert imported & set(packages), f"{file}: {name} no longer imports {packages}: drop the exemption"
    probe = ROOT / "geometry" / "volume.py"
    outside = [line for line, module in _imports(probe) if module.split(".")[0] in ("torch", "monai")
               and line not in _exempt_lines(probe)]
    assert not outside, f"geometry/volume.py imports torch/monai outside the exempted methods: lines {outside}"


def test_geometry_does_not_import_codec_even_inside_functions(tmp_path):
    """The static check sees function-level and TYPE_CHECKING imports (a guard for the check itself)."""
    probe = tmp_path / "probe.py"
    probe.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import monai_dicomseg.codec.raw\n"
                     "def f():\n    from monai_dicomseg.codec.spatial_content import PlanePositionSequence\n")
    assert {(3, "monai_dicomseg.codec.raw"), (5, "monai_dicomseg.codec.spatial_content")} <= set(_imports(probe))
    for path in (ROOT / "geometry").rglob("*.py"):
        assert not [m for _, m in _imports(path) if m.startswith("monai_dicomseg.codec")], path.name


# third-party private attributes the package may rely on (none since pydicom's are replaced by public API)
THIRD_PARTY_PRIVATE: set[str] = set()


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _group_private_names(group: str) -> set[str]:
    """Underscore names a layer group defines itself (functions, classes, attributes, assignments)."""
    names: set[str] = set()
    folder = ROOT / group
    paths = sorted(folder.rglob("*.py")) if folder.is_dir() else [ROOT / f"{group}.py"]
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
    return {name for name in names if _private(name)}


def _private_uses(path: Path) -> list[str]:
    """Underscore names of another layer (or of a third-party object) that ``path`` touches.

    Imports: a private module or name of another group's module. Attribute
    access: ``obj._name`` (``obj`` not ``self``/``cls``) where ``_name`` is not
    defined in ``path``'s own group, i.e. it belongs to a lower layer or a
    third-party package.
    """
    source = _source_group(path)
    own = _group_private_names(source)
    problems = []
    tree = ast.parse(path.read_text(), filename=str(path))
    for line, module in _imports(path):
        parts = module.split(".")
        if parts[0] == "monai_dicomseg" and len(parts) > 2 and _group(module) != source:
            if any(_private(part) for part in parts[2:]):
                problems.append(f"line {line}: imports private module {module}")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("monai_dicomseg."):
            if _group(node.module) != source:
                problems += [f"line {node.lineno}: imports {alias.name} from {node.module}"
                             for alias in node.names if _private(alias.name)]
        elif isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own:
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if node.attr not in THIRD_PARTY_PRIVATE:
                problems.append(f"line {node.lineno}: touches .{node.attr} of another layer or package")
    return problems


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_layer_touches_a_private_name_of_another(path):
    if _source_group(path) == "__init__":
        return
    problems = _private_uses(path)
    assert not problems, f"{path.relative_to(ROOT)}:\n" + "\n".join(problems)


def test_private_name_check_sees_imports_and_attributes(tmp_path):
    """A guard for the check itself: a probe module in cli/ that reaches into seg/ is caught."""
    probe = ROOT / "cli" / "_probe_private_access.py"
    probe.write_text("from monai_dicomseg.seg._stacking import x\nfrom monai_dicomseg.io.prediction import _y\n"
                     "def f(seg):\n    return seg._get_frame_index(), seg.public\n")
    try:
        problems = "\n".join(_private_uses(probe))
    finally:
        probe.unlink()
    assert "private module monai_dicomseg.seg._stacking" in problems
    assert "imports _y from monai_dicomseg.io.prediction" in problems
    assert "._get_frame_index" in problems and ".public" not in problems


def _runtime_imports(path: Path) -> set[str]:
    """Modules ``path`` imports outside ``if TYPE_CHECKING:`` blocks (absolute names)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    type_only = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.If)
                 and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
                 for inner in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_reader_and_segmentation_do_not_import_each_other():
    """seg/segmentation.py builds on seg/reader.py, never the other way round, and with no ImportError stand-in."""
    reader, segmentation = ROOT / "seg" / "reader.py", ROOT / "seg" / "segmentation.py"
    assert "monai_dicomseg.seg.segmentation" not in _runtime_imports(reader)
    assert "monai_dicomseg.seg.reader" in _runtime_imports(segmentation)
    handlers = [node for node in ast.walk(ast.parse(segmentation.read_text())) if isinstance(node, ast.ExceptHandler)]
    assert not [h for h in handlers if isinstance(h.type, ast.Name) and h.type.id == "ImportError"]
