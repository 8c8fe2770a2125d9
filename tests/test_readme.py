"""Every code example of README.md runs, on the example dataset in ``data/``.

* ```python blocks run in README order in one namespace (the PACS block runs
  against Orthanc in ``tests/dicomweb/test_readme_pacs.py``), in a temporary folder
  holding a copy of ``data/``. Blocks that use torch/MONAI run only in the
  ``monai``-marked test; the others also run without them (light install).
* ``monai-dicomseg ...`` lines of ```bash blocks run as subprocesses, in order.
* The metadata-key tables equal ``META_KEYS`` / ``SERIES_META_KEYS``, the
  sections come in the front-door order, and the quoted light-install error is
  the real message.

This module imports nothing from torch or MONAI.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")

_FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<lang>\w+)\n(?P<body>.*?)^(?P=indent)```[ ]*$", re.M | re.S)
#: A block that needs torch/MONAI: it imports them or uses the MONAI layer through ``mds``.
_NEEDS_MONAI = re.compile(r"^\s*(?:from|import)\s+(?:monai|torch)\b|\bmds\.", re.M)

SECTIONS = [
    "Install",
    "Load SEG labels in a MONAI pipeline",
    "Write model output as SEG",
    "Series from real archives",
    "Slides",
    "Metadata keys",
    "Command line",
    "From and to a PACS",
    "At scale",
    "highdicom-compatible API",
    "Speed",
    "Development",
]


def _blocks(lang: str) -> list[str]:
    return [m.group("body") for m in _FENCE.finditer(README) if m.group("lang") == lang]


#: A block that needs a DICOMweb server: it runs in ``tests/dicomweb/test_readme_pacs.py`` against Orthanc.
_NEEDS_SERVER = re.compile(r"\bmonai_dicomseg\.dicomweb\b")


def _python_blocks(with_monai: bool) -> list[str]:
    return [b for b in _blocks("python")
            if not _NEEDS_SERVER.search(b) and (with_monai or not _NEEDS_MONAI.search(b))]


def pacs_blocks() -> list[str]:
    """The README blocks that talk to a DICOMweb server (run against a live Orthanc)."""
    return [b for b in _blocks("python") if _NEEDS_SERVER.search(b)]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary folder with a copy of data/ as the current directory."""
    shutil.copytree(ROOT / "data", tmp_path / "data", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(blocks: list[str]) -> dict:
    namespace: dict = {"__name__": "__readme__"}
    for number, code in enumerate(blocks, start=1):
        exec(compile(code, f"<README.md python block {number}>", "exec"), namespace)  # noqa: S102
    return namespace


def test_readme_has_examples_of_both_kinds():
    assert len(_python_blocks(with_monai=True)) >= 4
    assert 1 <= len(_python_blocks(with_monai=False)) < len(_python_blocks(with_monai=True))


def test_python_blocks_without_monai(workdir: Path):
    """The SEG-layer examples (light install)."""
    namespace = _run(_python_blocks(with_monai=False))
    assert (workdir / "lesion_seg.dcm").is_file()
    assert int(namespace["volume"].array.sum()) == 6 * 20 * 20


@pytest.mark.monai
def test_all_python_blocks(workdir: Path):
    _run(_python_blocks(with_monai=True))
    namespace = _run(_python_blocks(with_monai=True))  # a user runs the examples twice in the same folder
    assert tuple(namespace["sample"]["label"].shape) == (1, 64, 64, 16)
    assert tuple(namespace["batch"]["label"].shape) == (6, 1, 64, 64, 16)
    saved = Path(namespace["saved"])
    assert saved.is_file() and saved.parent.resolve() == (workdir / "out").resolve()

    import monai_dicomseg as hd

    seg = hd.seg.segread(saved)
    assert seg.SegmentationType == "LABELMAP"
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["liver", "spleen", "left kidney"]


def _cli_lines() -> list[str]:
    lines = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            if line.startswith("monai-dicomseg "):
                lines.append(re.sub(r"\s+#.*$", "", line))
    return lines


def test_cli_lines_run(workdir: Path):
    lines = _cli_lines()
    assert len(lines) >= 5
    environment = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for line in lines:
        command = [sys.executable, "-m", "monai_dicomseg", *shlex.split(line)[1:]]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=workdir,
                                env=environment)
        assert result.returncode == 0, f"{line}\n{result.stderr[-2000:]}"
    for name in ("labels.nii.gz", "labels.json", "seg.dcm", "seg_jpegls.dcm"):
        assert (workdir / name).is_file(), name
    assert sorted(p.name for p in (workdir / "nifti" / "ct2").glob("*.nii.gz")) == [
        "seg_binary.nii.gz", "seg_fractional.nii.gz", "seg_labelmap.nii.gz"]


def test_sections_in_front_door_order():
    headings = re.findall(r"^## (.+)$", README, re.M)
    assert headings == SECTIONS
    # the quick start stays right under the opening lines
    first_block = _FENCE.search(README)
    assert first_block is not None and "make demo" in first_block.group("body")
    assert README.index("make demo") < README.index("## Install")


def _tables(section: str) -> list[dict[str, str]]:
    """The ``| `key` | description |`` tables of a section, in order."""
    text = README.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    tables: list[dict[str, str]] = []
    current: "dict[str, str] | None" = None
    for line in text.splitlines():
        match = re.match(r"^\| `([^`]+)` \| (.*) \|$", line)
        if match:
            if current is None:
                current = {}
                tables.append(current)
            current[match.group(1)] = match.group(2)
        elif not line.startswith("|"):
            current = None
    return tables


def test_metadata_tables_match_the_code():
    from monai_dicomseg.io.segload import META_KEYS, SERIES_META_KEYS

    assert _tables("Metadata keys") == [META_KEYS, SERIES_META_KEYS]


def test_quoted_light_install_error_is_the_real_message():
    from monai_dicomseg.io import _message

    message = _message("monai_dicomseg.transforms", ["torch", "monai"])
    quoted = re.search(r"`MissingDependencyError: (.+?) \.\.\.`", README)
    assert quoted is not None
    assert message.startswith(quoted.group(1))


def test_readme_uses_data_dir_files_that_exist():
    for relative in sorted(set(re.findall(r"\bdata/[\w./-]+", README))):
        relative = relative.rstrip(".")
        assert (ROOT / relative).exists(), relative


def _inline_cli_examples() -> list[list[str]]:
    """``monai-dicomseg ...`` examples quoted inline (single backticks) in the README prose."""
    spans = re.findall(r"(?<!`)`(monai-dicomseg [^`]+)`(?!`)", README.replace("\n  ", " "))
    return [shlex.split(span)[1:] for span in spans]


def test_inline_cli_examples_parse_with_their_arguments_in_order():
    """The prose examples (not run: they need a server) parse, each argument in its role (push: URL first)."""
    from monai_dicomseg.cli.main import build_parser

    examples = [argv for argv in _inline_cli_examples() if argv[0] in ("pull", "push")]
    assert {argv[0] for argv in examples} == {"pull", "push"}, examples
    parser = build_parser()
    for argv in examples:
        parsed = parser.parse_args(argv)
        if argv[0] == "push":
            assert re.match(r"https?://", parsed.url), argv
            assert all(f.endswith((".dcm", ".nii.gz", ".nii")) for f in parsed.files), argv
            assert parsed.series is None or parsed.series.startswith("dicomweb+"), argv
        elif argv[0] == "pull":
            assert parsed.seg.startswith("dicomweb+") and parsed.output.endswith((".nii.gz", ".nii")), argv
