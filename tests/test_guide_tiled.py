"""The guide's tiled-segmentation examples, run from the guide itself.

Sections "Constructing SEG Images from a Total Pixel Matrix", "TILED_FULL and
TILED_SPARSE" and "Multi-resolution Pyramids" of ``shared/spec/seg-user-guide.rst``:
their code blocks are extracted and executed with ``import highdicom as hd``
replaced by ``import monai_dicomseg as hd`` and ``data/test_files/`` pointed at
the shared highdicom test data, so the guide's own asserts (10 sparse frames,
25 full frames) check our writer.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import monai_dicomseg as hd

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
GUIDE = SHARED / "spec" / "seg-user-guide.rst"
DATA = SHARED / "data" / "highdicom"
pytestmark = pytest.mark.skipif(not GUIDE.exists() or not DATA.exists(), reason="shared guide/data absent")


def _section_code(title: str) -> list[str]:
    """Code blocks of one guide section, dedented, with our import and data path."""
    text = GUIDE.read_text(encoding="utf-8")
    start = text.index(title + "\n")
    following = re.search(r"\n[^\n]+\n-{4,}\n", text[start + len(title) + 1:])
    body = text[start: start + len(title) + 1 + (following.start() if following else len(text))]
    blocks = []
    for match in re.finditer(r"\.\. code-block:: python\n\n((?:(?: {4}.*)?\n)+)", body):
        lines = match.group(1).splitlines()
        code = "\n".join(line[4:] for line in lines)
        code = code.replace("import highdicom as hd", "import monai_dicomseg as hd")
        code = code.replace("'data/test_files/", f"'{DATA}/")
        blocks.append(code)
    assert blocks, f"no code in section {title!r}"
    return blocks


def test_total_pixel_matrix_then_tiled_full_examples():
    namespace = {"hd": hd, "np": np}
    for title in ("Constructing SEG Images from a Total Pixel Matrix", '``"TILED_FULL"`` and ``"TILED_SPARSE"``'):
        for code in _section_code(title):
            exec(compile(code, f"guide: {title}", "exec"), namespace)  # noqa: S102 - the guide's code
    assert namespace["seg"].NumberOfFrames == 25


def test_pyramid_example():
    namespace: dict = {}
    for code in _section_code("Multi-resolution Pyramids"):
        exec(compile(code, "guide: Multi-resolution Pyramids", "exec"), namespace)  # noqa: S102
    pyramid = namespace["seg_pyramid"]
    assert [int(s.TotalPixelMatrixRows) for s in pyramid] == [50, 25, 12]
    assert len({str(s.PyramidUID) for s in pyramid}) == 1
