"""Hypothesis-driven mutations of valid SEG files: only documented error types escape.

Seeds are valid files of every segmentation type, several transfer syntaxes
and both producers (ours, highdicom), plus tiled files, written at test time
(:mod:`fuzz.hostile_files`). Mutations:

* truncation at any offset;
* byte flips, mostly in the header (flips in the pixel data rarely matter);
* top-level element values replaced with hostile bytes (odd lengths, huge
  numbers, "inf", text in numbers, empty);
* structured attribute mutations anywhere in the data set (delete, empty,
  hostile text, huge integers, emptied / duplicated sequence items).

Each case goes through :func:`fuzz.harness.exercise` (segread, every
accessor, get_volume, get_pixels_by_source_instance, get_total_pixel_matrix,
CLI ``info`` through ``main()``) under a time guard and a decoded-size budget.
CI runs a few cases per seed; ``HYPOTHESIS_PROFILE=fuzz`` runs hundreds.
"""
from __future__ import annotations

import copy
import io
import os
import struct
from typing import Any

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless, ImplicitVRLittleEndian

from fuzz.conftest import LONG
from fuzz.harness import exercise
from fuzz.hostile_files import (
    to_bytes,
    top_level_elements,
    valid_seg_bytes,
    valid_tiled_seg_bytes,
)

SEEDS: dict[str, Any] = {
    "ours-binary": lambda: valid_seg_bytes("BINARY"),
    "ours-fractional": lambda: valid_seg_bytes("FRACTIONAL"),
    "ours-labelmap": lambda: valid_seg_bytes("LABELMAP"),
    "ours-binary-jpeg2000": lambda: valid_seg_bytes("BINARY", "ours", JPEG2000Lossless),
    "ours-fractional-jpeg2000": lambda: valid_seg_bytes("FRACTIONAL", "ours", JPEG2000Lossless),
    "ours-labelmap-jpegls": lambda: valid_seg_bytes("LABELMAP", "ours", JPEGLSLossless),
    "ours-tiled-sparse": lambda: valid_tiled_seg_bytes("BINARY", "TILED_SPARSE", "ours"),
    "ours-tiled-full-labelmap": lambda: valid_tiled_seg_bytes("LABELMAP", "TILED_FULL", "ours"),
    "highdicom-binary": lambda: valid_seg_bytes("BINARY", "highdicom"),
    "highdicom-binary-implicit": lambda: valid_seg_bytes("BINARY", "highdicom", ImplicitVRLittleEndian),
    "highdicom-labelmap": lambda: valid_seg_bytes("LABELMAP", "highdicom"),
    "highdicom-fractional-rle": lambda: valid_seg_bytes("FRACTIONAL", "highdicom", RLELossless),
    "highdicom-tiled-full": lambda: valid_tiled_seg_bytes("BINARY", "TILED_FULL", "highdicom"),
}
EXAMPLES = int(os.environ.get("MDS_FUZZ_EXAMPLES", 300 if LONG else 10))
"""Cases per (mutation, seed): 10 in CI (~20 s in all), 300 with ``HYPOTHESIS_PROFILE=fuzz``."""
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not LONG,
    database=None,
    suppress_health_check=list(HealthCheck),
)
_cache: dict[str, bytes] = {}


def _seed(name: str) -> bytes:
    if name not in _cache:
        if name.startswith("highdicom"):
            pytest.importorskip("highdicom")
        _cache[name] = SEEDS[name]()
    return _cache[name]


def _pixel_data_start(data: bytes) -> int:
    for tag, start, _, _ in top_level_elements(data):
        if tag == 0x7FE00010:
            return start
    return len(data)


SEED_IDS = list(SEEDS)


# --------------------------------------------------------------------------- byte-level


@pytest.mark.parametrize("seed", SEED_IDS)
@FUZZ_SETTINGS
@given(fraction=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated(seed: str, fraction: float) -> None:
    data = _seed(seed)
    exercise(data[: int(len(data) * fraction)])


@pytest.mark.parametrize("seed", SEED_IDS)
@FUZZ_SETTINGS
@given(data=st.data())
def test_byte_flips(seed: str, data: st.DataObject) -> None:
    original = _seed(seed)
    header_end = _pixel_data_start(original)
    flips = data.draw(st.lists(
        st.tuples(
            st.one_of(st.integers(132, max(132, header_end - 1)), st.integers(0, len(original) - 1)),
            st.integers(1, 255),
        ),
        min_size=1, max_size=8,
    ), label="flips")
    mutated = bytearray(original)
    for offset, xor in flips:
        mutated[offset] ^= xor
    exercise(bytes(mutated))


HOSTILE_BYTES = [
    b"", b"\x00", b"\x01\x00\x00", b"\xff\xff", b"\xff\xff\xff\xff", b"\x00\x00\x00\x80",
    b"inf ", b"1e400 ", b"-1", b"nan ", b"abc ", b"1\\2\\3 ", b"\\\\", b"99999999999999999999",
    b"\x00" * 7, b"1.2.3.4", b"A" * 65,
]


@pytest.mark.parametrize("seed", SEED_IDS)
@FUZZ_SETTINGS
@given(data=st.data())
def test_top_level_values(seed: str, data: st.DataObject) -> None:
    """Replace the value (and length) of one top-level element with hostile bytes."""
    original = _seed(seed)
    elements = [e for e in top_level_elements(original) if e[0] > 0x0002FFFF]
    tag, start, value_start, end = data.draw(st.sampled_from(elements), label="element")
    value = data.draw(st.one_of(st.sampled_from(HOSTILE_BYTES), st.binary(max_size=12)), label="value")
    header = original[start:value_start]
    if len(header) == 12:
        header = header[:8] + struct.pack("<I", len(value))
    else:
        header = header[:6] + struct.pack("<H", len(value))
    exercise(original[:start] + header + value + original[end:])


# --------------------------------------------------------------------------- structured


def _paths(dataset: Dataset, prefix: tuple = ()) -> list[tuple]:
    """Every element (as a path of (tag, item index) steps) of a fully parsed data set."""
    out = []
    for element in dataset:
        if element.tag == 0x7FE00010:
            continue
        path = prefix + (element.tag,)
        out.append(path)
        if element.VR == "SQ":
            for n, item in enumerate(element.value):
                out.extend(_paths(item, path + (n,)))
    return out


def _parent(dataset: Dataset, path: tuple) -> tuple[Dataset, int] | None:
    """The data set holding the element at ``path``; ``None`` once an earlier mutation removed it."""
    node = dataset
    try:
        for step in range(0, len(path) - 1, 2):
            node = node[path[step]].value[path[step + 1]]
    except (KeyError, IndexError, TypeError):
        return None
    return node, path[-1]


class Case(bytes):
    """Mutated file bytes with a short repr (hypothesis prints failing draws)."""

    def __repr__(self) -> str:
        return f"<{len(self)} bytes>"


HOSTILE_TEXT = ["inf", "1e400", "-1", "0", "nan", "abc", "", "4294967296", "-2147483649", "1\\2\\3",
                "99999999999999999999", "1.5", "\\", " "]
HOSTILE_INTS = [0, 1, 65535, 255, 2, 7, 9999]


@st.composite
def _structured(draw: Any, seed: str) -> bytes:
    dataset = pydicom.dcmread(io.BytesIO(_seed(seed)))
    for _ in dataset.iterall():
        pass
    paths = _paths(dataset)
    for _ in range(draw(st.integers(1, 3), label="mutations")):
        found = _parent(dataset, draw(st.sampled_from(paths), label="path"))
        if found is None or found[1] not in found[0]:
            continue
        parent, tag = found
        element = parent[tag]
        operation = draw(st.sampled_from(["delete", "empty", "text", "int", "items"]), label="operation")
        if operation == "delete":
            del parent[tag]
        elif operation == "empty" or (operation == "items" and element.VR != "SQ"):
            element.value = [] if element.VR == "SQ" else None
        elif operation == "items":
            items = list(element.value)
            if items:
                choice = draw(st.sampled_from(["drop", "duplicate", "reverse"]), label="items")
                if choice == "drop":
                    items.pop(draw(st.integers(0, len(items) - 1)))
                elif choice == "duplicate":
                    items.append(copy.deepcopy(items[draw(st.integers(0, len(items) - 1))]))
                else:
                    items.reverse()
                element.value = items
        elif element.VR in ("US", "UL", "SS", "SL"):
            element.value = draw(st.sampled_from(HOSTILE_INTS), label="int")
        elif element.VR not in ("SQ", "OB", "OW", "OF", "OD", "OL", "UN", "AT", "FD", "FL"):
            element._value = draw(st.sampled_from(HOSTILE_TEXT), label="text")
    try:
        return Case(to_bytes(dataset))
    except Exception:  # pydicom cannot write some combinations: keep the unmutated parts honest
        from hypothesis import reject

        reject()


@pytest.mark.parametrize("seed", SEED_IDS)
@FUZZ_SETTINGS
@given(data=st.data())
def test_structured_mutations(seed: str, data: st.DataObject) -> None:
    exercise(data.draw(_structured(seed), label="file"))


# --------------------------------------------------------------------------- the seeds themselves


@pytest.mark.parametrize("seed", SEED_IDS)
def test_seed_reads_completely(seed: str) -> None:
    outcome = exercise(_seed(seed))
    if "tiled" in seed:  # no source-instance indexing / patient volume for slides: typed errors
        assert outcome.startswith("read:")
    else:
        assert outcome == "read:all-ok"
