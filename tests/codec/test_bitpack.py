"""1-bit packing lives in one module (codec/bitpack.py) with DICOM's bit order (PS3.5 8.1.1)."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from monai_dicomseg.codec.bitpack import pack_bits, packed_length, place_frame_bits, repack_frames, unpack_bits

PACKAGE = Path(__file__).resolve().parents[2] / "monai_dicomseg"
BITPACK = PACKAGE / "codec" / "bitpack.py"


def _numpy_bit_calls(path: Path) -> list[int]:
    """Lines of ``path`` that call or name ``packbits`` / ``unpackbits`` (any spelling)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("packbits", "unpackbits"):
            lines.append(node.lineno)
        elif isinstance(node, ast.alias) and node.name in ("packbits", "unpackbits"):
            lines.append(node.lineno)
    return lines


def test_no_other_module_packs_bits():
    offenders = {str(p.relative_to(PACKAGE)): _numpy_bit_calls(p)
                 for p in sorted(PACKAGE.rglob("*.py")) if p != BITPACK}
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"np.packbits/np.unpackbits outside codec/bitpack.py: {offenders}"
    assert _numpy_bit_calls(BITPACK), "the scan no longer finds the calls in codec/bitpack.py"


def test_bitpack_imports_only_numpy():
    tree = ast.parse(BITPACK.read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= {"__future__", "collections", "typing", "numpy"}


def test_little_bit_order():
    # PS3.5 8.1.1: the first pixel is the least significant bit of the first byte
    assert pack_bits(np.array([1, 0, 0, 0, 0, 0, 0, 0], bool)).tolist() == [1]
    assert pack_bits(np.array([0, 0, 0, 0, 0, 0, 0, 1, 1], bool)).tolist() == [128, 1]
    assert unpack_bits(np.array([1], np.uint8)).tolist() == [1, 0, 0, 0, 0, 0, 0, 0]
    assert unpack_bits(np.array([128, 1], np.uint8), count=9).tolist() == [0] * 7 + [1, 1]
    assert unpack_bits(np.array([[1], [2]], np.uint8), axis=1).tolist() == [[1] + [0] * 7, [0, 1] + [0] * 6]


@pytest.mark.parametrize("rows, columns", [(2, 4), (3, 3), (1, 1), (5, 7)])
def test_repack_and_place_equal_whole_packing(rows, columns):
    rng = np.random.default_rng(rows * 10 + columns)
    frames = rng.random((5, rows, columns)) > 0.5
    whole = pack_bits(frames)
    per_frame = [pack_bits(f).tobytes() for f in frames]  # each starts on a byte (WADO-RS frames)
    assert repack_frames(per_frame, rows * columns) == whole.tobytes()
    out = np.zeros(packed_length(5, rows, columns), np.uint8)
    for index, frame in enumerate(frames):
        place_frame_bits(out, index, frame.reshape(-1))
    assert out[:whole.size].tobytes() == whole.tobytes()
    assert not out[whole.size:].any()
    assert repack_frames([], rows * columns) == b""


@pytest.mark.parametrize("frames, rows, columns, expected", [(1, 1, 1, 2), (1, 4, 4, 2), (1, 4, 6, 4), (3, 3, 3, 4)])
def test_packed_length_even(frames, rows, columns, expected):
    assert packed_length(frames, rows, columns) == expected
