"""docs/architecture.md names every module of the package, in the layers tests/test_layering.py enforces.

The map is the newcomer's way in: a module missing from it (or a stale entry,
or a module listed under the wrong layer) fails here, so the map and the code
cannot drift apart.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_layering import LAYERS

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "monai_dicomseg"
ARCHITECTURE = REPO / "docs" / "architecture.md"
ROW = re.compile(r"^\|\s*`([^`]+\.py)`\s*\|")
LAYER_HEADING = re.compile(r"^### Layer (\d+)\b")
ROOT_HEADING = "### Package root"


def _group(module: str) -> str:
    """Layer group of a map entry (``"codec/decode.py"`` -> ``"codec"``, ``"errors.py"`` -> ``"errors"``)."""
    parts = module.split("/")
    return parts[0] if len(parts) > 1 else parts[0][: -len(".py")]


def _parse_map(text: str) -> dict["int | str", list[str]]:
    """The modules of the "Layer map" section, by layer rank (``"root"`` for the package root)."""
    parts = re.split(r"^## Layer map\b", text, maxsplit=1, flags=re.MULTILINE)
    assert len(parts) == 2, "no '## Layer map' section"
    section = re.split(r"^## ", parts[1], maxsplit=1, flags=re.MULTILINE)[0]
    layers: dict["int | str", list[str]] = {}
    current: "int | str | None" = None
    for line in section.splitlines():
        heading = LAYER_HEADING.match(line)
        if heading:
            current = int(heading.group(1))
            layers.setdefault(current, [])
        elif line.startswith(ROOT_HEADING):
            current = "root"
            layers.setdefault(current, [])
        elif line.startswith("### "):
            current = None
        row = ROW.match(line)
        if row:
            assert current is not None, f"map row outside a layer section: {line}"
            layers[current].append(row.group(1))
    return layers


def _disk_modules() -> set[str]:
    return {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")}


def _map_problems(text: str, on_disk: set[str]) -> list[str]:
    """Every way the map disagrees with the package on disk and with ``LAYERS``."""
    layers = _parse_map(text)
    listed = [module for modules in layers.values() for module in modules]
    problems = [f"not on the map: {m}" for m in sorted(on_disk - set(listed))]
    problems += [f"on the map but not on disk: {m}" for m in sorted(set(listed) - on_disk)]
    problems += [f"on the map twice: {m}" for m in sorted({m for m in listed if listed.count(m) > 1})]
    ranks = sorted(rank for rank in layers if rank != "root")
    if ranks != list(range(len(LAYERS))):
        problems.append(f"layer sections {ranks}; LAYERS has ranks 0..{len(LAYERS) - 1}")
    for rank in ranks:
        groups = {_group(m) for m in layers[rank]}
        if rank < len(LAYERS) and groups != LAYERS[rank]:
            problems.append(f"layer {rank} holds {sorted(groups)} on the map, {sorted(LAYERS[rank])} in LAYERS")
        folders = [m.split("/")[0] for m in layers[rank] if "/" in m]
        scattered = sorted({f for f in folders if folders.count(f) != _run_length(folders, f)})
        if scattered:
            problems.append(f"layer {rank}: rows of {scattered} are not grouped by folder")
    if layers.get("root") != ["__init__.py"]:
        problems.append(f"the package root section must list __init__.py only; got {layers.get('root')}")
    return problems


def _run_length(items: list[str], item: str) -> int:
    """Length of the contiguous run of ``item`` starting at its first occurrence."""
    start = items.index(item)
    end = start
    while end < len(items) and items[end] == item:
        end += 1
    return end - start


def test_every_module_is_on_the_map_in_its_layer():
    problems = _map_problems(ARCHITECTURE.read_text(encoding="utf-8"), _disk_modules())
    assert not problems, "docs/architecture.md, section 'Layer map':\n" + "\n".join(problems)


SAMPLE = """# x
## Layer map
### Layer 0: shared
| module | one idea |
|--------|----------|
| `errors.py` | errors |
### Layer 1: geometry
| `geometry/affine.py` | affines |
| `sr/coding.py` | codes |
| `geometry/volume.py` | volumes |
### Package root (facade)
| `__init__.py` | facade |
## Conventions
| `codec/decode.py` | not in the map section |
"""


@pytest.mark.parametrize("on_disk, expected", [
    ({"errors.py", "geometry/affine.py", "sr/coding.py", "geometry/volume.py", "__init__.py", "geometry/new.py"},
     "not on the map: geometry/new.py"),
    ({"errors.py", "geometry/affine.py", "sr/coding.py", "__init__.py"},
     "on the map but not on disk: geometry/volume.py"),
    (set(), "layer sections [0, 1]; LAYERS has ranks 0.."),
    (set(), "layer 1 holds ['geometry', 'sr'] on the map"),
    (set(), "layer 1: rows of ['geometry'] are not grouped by folder"),
], ids=["missing-module", "stale-entry", "too-few-layers", "layer-disagrees", "not-grouped"])
def test_the_map_check_sees_each_disagreement(on_disk: set[str], expected: str):
    """A guard for the check itself, on a small map."""
    assert any(problem.startswith(expected) for problem in _map_problems(SAMPLE, on_disk)), \
        _map_problems(SAMPLE, on_disk)


def test_a_map_row_outside_a_layer_section_is_refused():
    with pytest.raises(AssertionError, match="map row outside a layer section"):
        _parse_map("## Layer map\n| `errors.py` | x |\n")
    with pytest.raises(AssertionError, match="no '## Layer map' section"):
        _parse_map("# Architecture\n### Layer 0\n")


def test_the_code_cites_the_map_in_the_repository():
    """Docstrings and comments point at docs/architecture.md, not at a design document outside the repo."""
    needle = "design".upper() + ".md"  # spelled so that this file does not cite it either
    citing = [str(path.relative_to(REPO)) for folder in (PACKAGE, REPO / "tests") for path in folder.rglob("*.py")
              if needle in path.read_text(encoding="utf-8")]
    assert citing == []
    assert ARCHITECTURE.is_file()
