"""The one transfer-syntax table (issue 23): nothing else lists syntaxes; a row is all a new syntax needs.

* A scan of the package source (AST: string constants outside docstrings,
  imported names, and literal collections) finds no transfer syntax UID,
  no pydicom transfer-syntax constant and no list of compression names
  outside ``codec/transfer_syntax.py``.
* Removing a row makes files of that syntax unreadable (UnsupportedError
  naming the readable ones); putting a row back, built from scratch, makes
  them readable again: no other list to edit.
* Encapsulated Uncompressed (1.2.840.10008.1.2.1.98, frames in fragments,
  read here) and HTJ2K (pydicom's decoder, frames encoded by OpenJPH, a
  producer independent of us) read equal to the native file.
"""
from __future__ import annotations

import ast
import base64
import io
import re
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate

from monai_dicomseg import synthetic
from monai_dicomseg.codec import transfer_syntax as table
from monai_dicomseg.codec.transfer_syntax import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    TRANSFER_SYNTAXES,
    Storage,
    TransferSyntax,
    lookup,
    readable_syntax,
)
from monai_dicomseg.errors import DecodeError, InputError, MissingDependencyError, UnsupportedError
from monai_dicomseg.seg.segmentation import segread
from oracles import COMMON_SEG_ARGUMENTS, segment_descriptions

ROOT = Path(__file__).resolve().parents[2] / "monai_dicomseg"
TABLE = ROOT / "codec" / "transfer_syntax.py"
UID_PATTERN = re.compile(r"^1\.2\.840\.10008\.1\.2(\.\d+)*$")
PYDICOM_SYNTAX_NAMES = {name for name in dir(pydicom.uid)
                        if isinstance(getattr(pydicom.uid, name), pydicom.uid.UID)
                        and getattr(pydicom.uid, name).is_transfer_syntax}
SYNTAX_WORDS = {name for row in TRANSFER_SYNTAXES.values() for name in (row.name, *row.aliases)}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def syntax_listings(source: str) -> list[str]:
    """What in ``source`` lists transfer syntaxes: UID strings, pydicom syntax constants, compression-name lists."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if UID_PATTERN.match(node.value.strip()):
                found.append(f"line {node.lineno}: UID {node.value!r}")
        elif isinstance(node, ast.ImportFrom) and node.module == "pydicom.uid":
            found += [f"line {node.lineno}: imports {a.name}" for a in node.names if a.name in PYDICOM_SYNTAX_NAMES]
        elif isinstance(node, ast.Attribute) and node.attr in PYDICOM_SYNTAX_NAMES:
            found.append(f"line {node.lineno}: uses {node.attr}")
        elif isinstance(node, (ast.List, ast.Tuple, ast.Set, ast.Dict)):
            items = node.keys if isinstance(node, ast.Dict) else node.elts
            words = [i.value for i in items if isinstance(i, ast.Constant) and i.value in SYNTAX_WORDS]
            if len(words) >= 2:
                found.append(f"line {node.lineno}: lists compression names {words}")
    return found


#: Modules that may name syntaxes, and why. seg/profiles.py states which of the table's syntaxes each
#: *consumer* reads (knowledge about viewers, not about syntaxes); every name there is resolved through
#: the table when the module is imported (Profile.__post_init__), so it adds no syntax of its own.
NAMING_SYNTAXES = {ROOT / "seg" / "profiles.py"}


@pytest.mark.parametrize("path", sorted(p for p in ROOT.rglob("*.py") if p != TABLE and p not in NAMING_SYNTAXES),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_but_the_table_lists_transfer_syntaxes(path: Path) -> None:
    found = syntax_listings(path.read_text())
    assert not found, f"{path.relative_to(ROOT)} lists transfer syntaxes (use codec/transfer_syntax.py):\n" + \
        "\n".join(found)


def test_the_scan_sees_what_it_must() -> None:
    """A guard for the scan itself: each kind of listing is caught, docstrings are not."""
    probe = ('"""Explicit VR is 1.2.840.10008.1.2.1."""\n'
             "from pydicom.uid import RLELossless, generate_uid\n"
             "import pydicom\n"
             "A = '1.2.840.10008.1.2.4.90'\n"
             "B = pydicom.uid.JPEGLSLossless\n"
             "C = ['rle', 'jpegls']\n"
             "D = '1.2.840.10008.5.1.4.1.1.66.4'\n")
    found = syntax_listings(probe)
    assert len(found) == 4, found
    assert all(f"line {n}:" in " ".join(found) for n in (2, 4, 5, 6))


def test_the_table_imports_only_the_standard_library_and_shared_errors() -> None:
    """Every layer may import it (tests/test_layering.py SHARED_MODULES): it must stay that light."""
    tree = ast.parse(TABLE.read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.col_offset == 0}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) and n.col_offset == 0 for a in n.names}
    third_party = {m for m in imported if m.split(".")[0] not in sys.stdlib_module_names}
    assert third_party <= {"monai_dicomseg.errors"}, third_party


# --------------------------------------------------------------------------- queries


def test_rows_answer_the_questions_a_checker_asks() -> None:
    deflate = lookup("1.2.840.10008.1.2.1.99")
    assert deflate.name == "deflate" and deflate.storage is Storage.DEFLATED and deflate.writable
    assert deflate.seg_types == ("BINARY", "FRACTIONAL", "LABELMAP") and deflate.bits_allocated == (1, 8, 16)
    assert lookup("1.2.840.10008.1.2.5").bits_allocated == (8, 16)  # RLE: no BINARY
    assert lookup("1.2.840.10008.1.2.4.201").storage is Storage.ENCAPSULATED
    assert not lookup("1.2.840.10008.1.2.4.201").writable  # HTJ2K: read only (module docstring says why)
    assert lookup("1.2.840.10008.1.2.4.50").lossy and lookup("1.2.840.10008.1.2.4.50").seg_types == ()
    assert lookup("1.2.3") is None and lookup(None) is None
    assert lookup(EXPLICIT_VR_LITTLE_ENDIAN + "\x00").name == "none"  # padded value
    rows = table.table_rows()
    assert len(rows) == len(TRANSFER_SYNTAXES)
    assert {"uid", "name", "storage", "seg_types", "bits_allocated", "decoder", "encoder", "decoder_installed",
            "encoder_installed", "lossy", "writable", "readable"} <= set(rows[0])
    assert all(row["decoder_installed"] for row in rows if row["readable"] and not row["lossy"])


def test_names_and_aliases() -> None:
    assert table.compression_names() == ("none", "deflate", "rle", "jpegls", "jpeg2000")
    assert table.by_name(None).name == "none"
    for spelling, name in [("JPEG-LS", "jpegls"), ("jpeg_ls", "jpegls"), ("J2K", "jpeg2000"),
                           ("native", "none"), ("Deflated", "deflate")]:
        assert table.by_name(spelling).name == name
    with pytest.raises(InputError, match=r"compression must be one of \[None, 'none', 'deflate', .*got 'htj2k'"):
        table.by_name("htj2k")  # read, not written


@pytest.mark.parametrize("uid, kind", [("1.2.840.10008.1.2.5", "BINARY"), ("1.2.840.10008.1.2.4.201", "LABELMAP"),
                                       ("1.2.840.10008.1.2", "LABELMAP"), ("9.9", "BINARY")])
def test_check_writable_refuses(uid: str, kind: str) -> None:
    with pytest.raises(InputError, match=rf"transfer_syntax_uid {re.escape(uid)} .* is not allowed for {kind} "
                                         r"segmentations; expected one of: .*compression='deflate'"):
        table.check_writable(uid, kind)


def test_check_writable_names_a_missing_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jpeg_ls", None)
    with pytest.raises(MissingDependencyError, match=r"needs the package 'pyjpegls': pip install pyjpegls"):
        table.check_writable("1.2.840.10008.1.2.4.80", "LABELMAP")
    assert table.check_writable("1.2.840.10008.1.2.1.99", "BINARY").name == "deflate"  # zlib: always there


@pytest.mark.parametrize("uid, message", [("1.2.840.10008.1.2.2", "expected a little-endian transfer syntax"),
                                          ("1.2.3.4", r"1\.2\.3\.4 \(unknown\) is not a transfer syntax")])
def test_unreadable_syntaxes(uid: str, message: str) -> None:
    with pytest.raises(UnsupportedError, match=message + r".*readable: .*Deflated Explicit VR Little Endian"):
        readable_syntax(uid)


# --------------------------------------------------------------------------- a row is all it takes


def _native_seg(kind: str, shape: tuple[int, int, int], n_segments: int, labels: "np.ndarray | None" = None,
                **options):
    import monai_dicomseg as ours

    sources = synthetic.make_ct_series(shape, labels=np.zeros(shape, np.uint8), seed=4)
    if labels is None:
        labels = np.random.default_rng(5).integers(0, n_segments + 1, size=shape).astype(np.uint8)
    pixel_array = labels if kind == "LABELMAP" else labels[..., None] == np.arange(1, n_segments + 1)
    seg = ours.seg.Segmentation(
        **COMMON_SEG_ARGUMENTS, source_images=sources, pixel_array=pixel_array, segmentation_type=kind,
        segment_descriptions=segment_descriptions(ours, n_segments), series_instance_uid=ours.UID(),
        sop_instance_uid=ours.UID(), **options)
    return seg, sources


def _bytes(seg) -> bytes:
    buffer = io.BytesIO()
    seg.save_as(buffer)
    return buffer.getvalue()


def _volume(data: bytes) -> np.ndarray:
    return segread(io.BytesIO(data)).get_volume(combine_segments=True).array


def test_adding_a_row_is_all_it_takes_to_read_a_syntax(monkeypatch: pytest.MonkeyPatch) -> None:
    rle = "1.2.840.10008.1.2.5"
    seg, _ = _native_seg("LABELMAP", (3, 24, 20), 3, transfer_syntax_uid=rle)
    data = _bytes(seg)
    expected = _volume(data)
    monkeypatch.delitem(TRANSFER_SYNTAXES, rle)
    with pytest.raises(UnsupportedError, match=r"TransferSyntaxUID 1\.2\.840\.10008\.1\.2\.5 \(unknown\)"):
        segread(io.BytesIO(data))
    monkeypatch.setitem(TRANSFER_SYNTAXES, rle, TransferSyntax(rle, "rle-test", "RLE (a new row)",
                                                              Storage.ENCAPSULATED))
    np.testing.assert_array_equal(_volume(data), expected)


# --------------------------------------------------------------------------- syntaxes read, not written


def _reencapsulate(data: bytes, uid: str, frames: list[bytes]) -> bytes:
    dataset = pydicom.dcmread(io.BytesIO(data))
    dataset.file_meta.TransferSyntaxUID = uid
    dataset.PixelData = encapsulate(frames, has_bot=True)
    dataset["PixelData"].VR = "OB"
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.mark.parametrize("kind, shape", [("BINARY", (3, 35, 37)), ("LABELMAP", (3, 35, 37))])
def test_encapsulated_uncompressed_reads_equal_to_native(kind: str, shape: tuple[int, int, int]) -> None:
    """1.2.840.10008.1.2.1.98: each frame alone in its fragment(s), native encoding (a 1-bit frame byte-aligned)."""
    seg, _ = _native_seg(kind, shape, 3)
    native = _bytes(seg)
    frames = _stored_frames(native)
    encoded = [np.packbits(f.reshape(-1), bitorder="little").tobytes() if kind == "BINARY" else f.tobytes()
               for f in frames]
    data = _reencapsulate(native, "1.2.840.10008.1.2.1.98", encoded)
    np.testing.assert_array_equal(_volume(data), _volume(native))
    short = _reencapsulate(native, "1.2.840.10008.1.2.1.98", [e[:-2] for e in encoded])
    with pytest.raises(DecodeError, match="encapsulated uncompressed frame 0 has"):
        _volume(short)


# HTJ2K codestreams written by OpenJPH 0.26 (imagecodecs 2026.3.6 ``htj2k_encode``, reversible) for the frames
# of _htj2k_frames(): an encoder independent of this package and of pydicom, kept as bytes so the test needs
# neither. test_htj2k_with_a_live_encoder re-encodes them when imagecodecs is installed.
def _htj2k_frames() -> np.ndarray:
    frames = np.zeros((2, 32, 33), np.uint8)
    frames[0, 4:20, 5:25] = 1
    frames[1, 10:30, 2:12] = 2
    frames[1, 0:3, :] = 3
    return frames


HTJ2K_FRAMES_B64 = [
    "/0//UQApQAAAAAAhAAAAIAAAAAAAAAAAAAAAIQAAACAAAAAAAAAAAAABBwEB/1AACAACAAAAAv9SAAwAAgABAAUEBEAB/1wAEyBIUFBQUFBQUFBQUFBQSEhI/2QAFwABT3BlbkpQSCBWZXIgMC4yNi4zLv+QAAoAAAAAAGkAAf+TwCb7+wBCNADAEgD+AGMAwBJAEYDwBbMAAEMAoAlA+HAApADAE0ATQBKA8H8JCkUA4P1kh1UA/vvAJADAKiAVcAmAAPx/B1101wAA/P9wYAC6667JAP7/acBlAP/Z",
    "/0//UQApQAAAAAAhAAAAIAAAAAAAAAAAAAAAIQAAACAAAAAAAAAAAAABBwEB/1AACAACAAAAAv9SAAwAAgABAAUEBEAB/1wAEyBIUFBQUFBQUFBQUFBQSEhI/2QAFwABT3BlbkpQSCBWZXIgMC4yNi4zLv+QAAoAAAAAAJEAAf+TwCb5+wBCNACgCSAIwOkKMwAAYwDAEkASgP4AAwD9W9F0AMASQBMA/M5zAPVAEr21AMAVMAVkATAA/OvA631vZwAC4G+PjLNfvrXqOgD868LYBQDAK+AWpAJgzcz0/s/kqF6F6F6F6mwA/3/74D/5IGGgYdQAAK5znOc4EAH8/v7ZBQD/2Q==",
]


def _stored_frames(data: bytes) -> np.ndarray:
    from monai_dicomseg.codec.decode import decode_frames

    seg = segread(io.BytesIO(data))
    return decode_frames(seg, np.arange(int(seg.NumberOfFrames)))


@pytest.mark.parametrize("uid", ["1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202"])
def test_htj2k_reads_equal_to_native(uid: str) -> None:
    """HTJ2K Lossless and Lossless RPCL: pydicom's decoder (pylibjpeg-openjpeg >= 2), OpenJPH's codestreams."""
    frames = _htj2k_frames()
    seg, _ = _native_seg("LABELMAP", frames.shape, 3, labels=frames)
    native = _bytes(seg)
    order = [next(i for i, f in enumerate(frames) if np.array_equal(f, stored)) for stored in _stored_frames(native)]
    data = _reencapsulate(native, uid, [base64.b64decode(HTJ2K_FRAMES_B64[i]) for i in order])
    np.testing.assert_array_equal(_stored_frames(data), _stored_frames(native))
    np.testing.assert_array_equal(_volume(data), _volume(native))


@pytest.mark.parametrize("bits", [8, 16], ids=["8bit", "16bit"])
def test_htj2k_from_a_live_independent_encoder_reads_equal_to_native(bits: int) -> None:
    """HTJ2K Lossless frames encoded at test time by imagecodecs (OpenJPH, a test dependency), read through
    pydicom's decoder: equal to the native SEG; the stored codestreams above decode equal in OpenJPH too."""
    import imagecodecs

    frames = _htj2k_frames()
    for frame, code in zip(frames, HTJ2K_FRAMES_B64):
        assert (imagecodecs.htj2k_decode(base64.b64decode(code)) == frame).all()
    labels = frames.astype(np.uint16)
    if bits == 16:  # segment numbers above 255: 16-bit frames
        labels[labels > 0] += 255
    seg, _ = _native_seg("LABELMAP", labels.shape, int(labels.max()), labels=labels)
    native = _bytes(seg)
    stored = _stored_frames(native)
    codestreams = [imagecodecs.htj2k_encode(np.ascontiguousarray(frame), reversible=True) for frame in stored]
    data = _reencapsulate(native, "1.2.840.10008.1.2.4.201", codestreams)
    np.testing.assert_array_equal(_stored_frames(data), stored)
    np.testing.assert_array_equal(_volume(data), _volume(native))


def test_consumer_profiles_name_only_syntaxes_of_the_table() -> None:
    from monai_dicomseg.seg.profiles import PROFILES, Profile

    for profile in PROFILES.values():  # built at import: each name resolved through the table
        for kind, names in profile.syntaxes.items():
            assert all(TRANSFER_SYNTAXES[table.by_name(n).uid].name == n for n in names), (profile.name, kind)
    with pytest.raises(ValueError, match="BINARY/jpegls is not a BINARY syntax of the table"):
        Profile("typo", "x", ("BINARY",), {"BINARY": ("jpegls",)})
    with pytest.raises(InputError):
        Profile("typo", "x", ("BINARY",), {"BINARY": ("deflatee",)})
