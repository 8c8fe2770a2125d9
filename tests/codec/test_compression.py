"""Frame compression backends (:mod:`monai_dicomseg.codec.compression`, issue 7).

Every encoded frame is decoded by a codec nobody here wrote (pydicom's
decoders with the pylibjpeg / pyjpegls plugins) and must give the input back;
encapsulation is checked with :mod:`pydicom.encaps`' own parsers.
"""
from __future__ import annotations

import importlib.util
import os
import re
import struct
import sys
from typing import Any

import numpy as np
import pytest
from pydicom.encaps import encapsulate, generate_frames, get_frame, parse_basic_offsets
from pydicom.pixels import get_decoder
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from monai_dicomseg.codec import compression
from monai_dicomseg.codec.compression import (
    allowed_transfer_syntaxes,
    check_transfer_syntax,
    encapsulate_frames,
    encode_frame,
    encode_frames,
    resolve_workers,
)
from monai_dicomseg.errors import (
    DicomSegError,
    EncodeError,
    InputError,
    MissingDependencyError,
)

CODECS = {"rle": RLELossless, "jpeg2000": JPEG2000Lossless, "jpegls": JPEGLSLossless}
#: (import name, PyPI name) of each optional codec package (the guide's "extras").
PACKAGES = {
    "jpeg2000": ("openjpeg", "pylibjpeg-openjpeg"),
    "jpegls": ("jpeg_ls", "pyjpegls"),
}


# --------------------------------------------------------------------------- helpers


def random_frames(count: int, shape: tuple[int, int], bits: int, seed: int = 0) -> np.ndarray:
    """``(count, R, C)`` frames with blobs and noise, different from one another."""
    rng = np.random.default_rng(seed)
    rows, columns = shape
    if bits == 1:
        r, c = np.ogrid[:rows, :columns]
        frames = np.empty((count, rows, columns), dtype=bool)
        for i in range(count):
            cr, cc = rng.uniform(0, rows), rng.uniform(0, columns)
            frames[i] = ((r - cr) ** 2 + (c - cc) ** 2) < (rng.uniform(4, 12) ** 2)
        frames ^= rng.random(frames.shape) < 0.02
        return frames
    dtype = np.uint8 if bits == 8 else np.uint16
    high = 256 if bits == 8 else 65536
    frames = rng.integers(0, high, size=(count, rows, columns), dtype=np.int64).astype(dtype)
    frames[:, : rows // 2] = 0  # some structure so that RLE has runs
    return frames


def decode(encoded: bytes, syntax: UID, shape: tuple[int, int], bits: int) -> np.ndarray:
    """Decode one compressed frame with pydicom's decoder (independent of our decoder)."""
    rows, columns = shape
    if bits == 1:
        from openjpeg import decode as j2k_decode

        return np.asarray(j2k_decode(encoded)).reshape(rows, columns).astype(bool)
    decoder = get_decoder(syntax)
    array, _ = decoder.as_array(
        encapsulate([encoded]),
        rows=rows,
        columns=columns,
        samples_per_pixel=1,
        number_of_frames=1,
        bits_allocated=bits,
        bits_stored=bits,
        pixel_representation=0,
        photometric_interpretation="MONOCHROME2",
    )
    return np.asarray(array).reshape(rows, columns)


def allowed_cases() -> list[Any]:
    cases = [pytest.param(name, syntax, bits, id=f"{name}-{bits}bit")
             for name, syntax in CODECS.items() for bits in (8, 16)]
    cases.append(pytest.param("jpeg2000", JPEG2000Lossless, 1, id="jpeg2000-1bit"))
    return cases


# --------------------------------------------------------------------------- syntaxes


def test_allowed_transfer_syntaxes() -> None:
    assert set(allowed_transfer_syntaxes(binary=True)) == {
        ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, JPEG2000Lossless}
    assert set(allowed_transfer_syntaxes(binary=False)) == {
        ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, RLELossless, JPEG2000Lossless, JPEGLSLossless}


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, *CODECS.values()],
                         ids=["explicit", *CODECS])
@pytest.mark.parametrize("segmentation_type", ["LABELMAP", "FRACTIONAL"], ids=str.lower)
def test_check_transfer_syntax_accepts_byte_syntaxes(segmentation_type: str, syntax: UID) -> None:
    result = check_transfer_syntax(str(syntax), segmentation_type)
    assert result == syntax
    assert isinstance(result, UID)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, JPEG2000Lossless],
                         ids=["explicit", "jpeg2000"])
def test_check_transfer_syntax_accepts_binary_syntaxes(syntax: UID) -> None:
    assert check_transfer_syntax(syntax, "BINARY") == syntax


BAD_SYNTAXES = [
    pytest.param("BINARY", RLELossless, "RLE Lossless", id="binary-rle"),
    pytest.param("BINARY", JPEGLSLossless, "JPEG-LS", id="binary-jpegls"),
    pytest.param("BINARY", ImplicitVRLittleEndian, "Implicit VR", id="binary-implicit"),
    pytest.param("LABELMAP", ImplicitVRLittleEndian, "Implicit VR", id="labelmap-implicit"),
    pytest.param("FRACTIONAL", ImplicitVRLittleEndian, "Implicit VR", id="fractional-implicit"),
    pytest.param("LABELMAP", ExplicitVRBigEndian, "Big Endian", id="labelmap-big-endian"),
    pytest.param("LABELMAP", JPEGBaseline8Bit, "JPEG Baseline", id="labelmap-lossy-jpeg"),
    pytest.param("FRACTIONAL", JPEG2000, "JPEG 2000", id="fractional-lossy-jpeg2000"),
    pytest.param("LABELMAP", "1.2.3.4.5", "unknown", id="labelmap-unknown-uid"),
    pytest.param("BINARY", "1.2.3.4.5", "unknown", id="binary-unknown-uid"),
]


@pytest.mark.parametrize("segmentation_type, syntax, name", BAD_SYNTAXES)
def test_check_transfer_syntax_rejects(segmentation_type: str, syntax: str, name: str) -> None:
    with pytest.raises(InputError, match=rf"transfer_syntax_uid {re.escape(str(syntax))} "
                                         rf"\(.*{re.escape(name)}.*\) is not allowed "
                                         rf"for {segmentation_type}.*expected one of"):
        check_transfer_syntax(syntax, segmentation_type)


# --------------------------------------------------------------------------- missing packages


def _hide_by_find_spec(monkeypatch: pytest.MonkeyPatch, hidden: str) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == hidden or name.startswith(hidden + "."):
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def _hide_by_module_table(monkeypatch: pytest.MonkeyPatch, hidden: str) -> None:
    # A None entry in sys.modules makes both ``import`` and ``find_spec`` fail.
    monkeypatch.setitem(sys.modules, hidden, None)


HIDERS = {"find_spec": _hide_by_find_spec, "sys_modules": _hide_by_module_table}


MISSING_CASES = [
    pytest.param(seg_type, codec, id=f"{seg_type.lower()}-{codec}")
    for seg_type in ("LABELMAP", "FRACTIONAL", "BINARY") for codec in PACKAGES
    if seg_type != "BINARY" or codec == "jpeg2000"  # BINARY allows JPEG 2000 only
]


@pytest.mark.parametrize("how", HIDERS, ids=list(HIDERS))
@pytest.mark.parametrize("segmentation_type, codec", MISSING_CASES)
def test_missing_codec_package_is_named(monkeypatch: pytest.MonkeyPatch, segmentation_type: str,
                                        codec: str, how: str) -> None:
    import_name, package = PACKAGES[codec]
    HIDERS[how](monkeypatch, import_name)
    with pytest.raises(MissingDependencyError, match=rf"needs the package '{package}'.*"
                                                     rf"pip install {package}") as info:
        check_transfer_syntax(CODECS[codec], segmentation_type)
    assert isinstance(info.value, ImportError)
    assert isinstance(info.value, DicomSegError)


def test_requirements_table_names_pypi_packages() -> None:
    """The table the check reads names the import module and the PyPI package."""
    from monai_dicomseg.codec.transfer_syntax import TRANSFER_SYNTAXES

    for syntax, codec in ((JPEG2000Lossless, "jpeg2000"), (JPEGLSLossless, "jpegls")):
        row = TRANSFER_SYNTAXES[str(syntax)]
        assert (row.encoder_modules[0], row.encoder[0]) == PACKAGES[codec]
    for import_name, _ in PACKAGES.values():
        assert importlib.util.find_spec(import_name) is not None, import_name


@pytest.mark.parametrize("how", HIDERS, ids=list(HIDERS))
def test_rle_falls_back_to_pydicom_without_the_rle_plugin(monkeypatch: pytest.MonkeyPatch,
                                                         how: str) -> None:
    """RLE needs no extra package: pydicom's own encoder is used when pylibjpeg-rle is absent."""
    frame = random_frames(1, (24, 20), 8, seed=3)[0]
    with_plugin = encode_frame(frame, RLELossless, 8)
    HIDERS[how](monkeypatch, "rle")
    assert check_transfer_syntax(RLELossless, "LABELMAP") == RLELossless
    from monai_dicomseg.codec.transfer_syntax import TRANSFER_SYNTAXES

    assert TRANSFER_SYNTAXES[str(RLELossless)].encoding_plugin() == "pydicom"
    without_plugin = encode_frame(frame, RLELossless, 8)
    monkeypatch.undo()
    np.testing.assert_array_equal(decode(without_plugin, RLELossless, frame.shape, 8), frame)
    np.testing.assert_array_equal(decode(with_plugin, RLELossless, frame.shape, 8), frame)


# --------------------------------------------------------------------------- encode_frame


@pytest.mark.parametrize("name, syntax, bits", allowed_cases())
@pytest.mark.parametrize("shape", [(32, 32), (33, 47), (64, 40)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_encode_frame_round_trip(name: str, syntax: UID, bits: int, shape: tuple[int, int]) -> None:
    frames = random_frames(2, shape, bits, seed=bits)
    for frame in frames:
        encoded = encode_frame(frame, syntax, bits)
        assert isinstance(encoded, bytes)
        decoded = decode(encoded, syntax, shape, bits)
        np.testing.assert_array_equal(decoded, frame)


@pytest.mark.parametrize("name, syntax, bits", allowed_cases())
def test_encode_frame_constant_frames(name: str, syntax: UID, bits: int) -> None:
    """All-zero and all-one frames (empty / full segments) survive every codec."""
    dtype = bool if bits == 1 else (np.uint8 if bits == 8 else np.uint16)
    for value in (0, 1):
        frame = np.full((32, 36), value, dtype=dtype)
        decoded = decode(encode_frame(frame, syntax, bits), syntax, frame.shape, bits)
        np.testing.assert_array_equal(decoded, frame)


@pytest.mark.parametrize("bits", [1, 8, 16], ids=lambda b: f"{b}bit")
@pytest.mark.parametrize("shape", [(31, 64), (64, 31), (8, 8), (1, 40)],
                         ids=lambda s: f"{s[0]}x{s[1]}")
def test_jpeg2000_refuses_frames_under_32_pixels(shape: tuple[int, int], bits: int) -> None:
    frame = random_frames(1, shape, bits)[0]
    with pytest.raises(EncodeError, match=rf"JPEG 2000 Lossless cannot encode {shape[0]}x{shape[1]} "
                                          r"frames .*at least 32 rows and columns"):
        encode_frame(frame, JPEG2000Lossless, bits)


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless], ids=["rle", "jpegls"])
def test_small_frames_are_fine_for_other_codecs(syntax: UID) -> None:
    frame = random_frames(1, (5, 7), 8, seed=1)[0]
    np.testing.assert_array_equal(decode(encode_frame(frame, syntax, 8), syntax, (5, 7), 8), frame)


# --------------------------------------------------------------------------- workers


@pytest.mark.parametrize("workers, expected", [(0, 0), (1, 1), (3, 3), (np.int64(2), 2),
                                               (-1, os.cpu_count() or 1)],
                         ids=["zero", "one", "three", "numpy-int", "all-cores"])
def test_resolve_workers(workers: Any, expected: int) -> None:
    assert resolve_workers(workers) == expected


@pytest.mark.parametrize("workers", ["2", 2.0, 1.5, True, None, [2]],
                         ids=["str", "float", "fraction", "bool", "none", "list"])
def test_resolve_workers_rejects_non_int(workers: Any) -> None:
    with pytest.raises(DicomSegError, match=rf"workers must be an int; got {type(workers).__name__}"):
        resolve_workers(workers)


@pytest.mark.parametrize("name, syntax, bits", [
    pytest.param("rle", RLELossless, 8, id="rle-8bit"),
    pytest.param("jpeg2000", JPEG2000Lossless, 1, id="jpeg2000-1bit"),
    pytest.param("jpeg2000", JPEG2000Lossless, 16, id="jpeg2000-16bit"),
    pytest.param("jpegls", JPEGLSLossless, 8, id="jpegls-8bit"),
])
def test_workers_give_serial_bytes_in_frame_order(name: str, syntax: UID, bits: int) -> None:
    frames = random_frames(11, (32, 40), bits, seed=7)
    calls: list[int] = []

    def get_frame(index: int) -> np.ndarray:
        calls.append(index)
        return frames[index]

    serial = encode_frames(len(frames), get_frame, syntax, bits, workers=0)
    assert sorted(calls) == list(range(len(frames)))
    parallel = encode_frames(len(frames), get_frame, syntax, bits, workers=2)
    assert parallel == serial
    assert len(set(serial)) == len(serial)  # frames differ, so order is really checked
    for frame, encoded in zip(frames, parallel):
        np.testing.assert_array_equal(decode(encoded, syntax, frame.shape, bits), frame)


def test_workers_use_a_process_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    pools: list[int] = []
    real_pool = compression.ProcessPoolExecutor

    class RecordingPool(real_pool):  # type: ignore[misc, valid-type]
        def __init__(self, max_workers: int | None = None, **kwargs: Any) -> None:
            pools.append(max_workers)
            super().__init__(max_workers=max_workers, **kwargs)

    monkeypatch.setattr(compression, "ProcessPoolExecutor", RecordingPool)
    frames = random_frames(4, (32, 32), 8)
    encode_frames(4, frames.__getitem__, RLELossless, 8, workers=0)
    assert pools == []
    encode_frames(4, frames.__getitem__, RLELossless, 8, workers=2)
    assert pools == [2]


@pytest.mark.parametrize("count", [0, 1], ids=["no-frames", "one-frame"])
def test_encode_frames_few_frames(count: int) -> None:
    frames = random_frames(max(count, 1), (32, 32), 8)
    result = encode_frames(count, frames.__getitem__, JPEGLSLossless, 8, workers=2)
    assert len(result) == count
    if count:
        np.testing.assert_array_equal(decode(result[0], JPEGLSLossless, (32, 32), 8), frames[0])


def test_encode_frames_rejects_non_int_workers() -> None:
    frames = random_frames(2, (32, 32), 8)
    with pytest.raises(DicomSegError, match="workers must be an int"):
        encode_frames(2, frames.__getitem__, RLELossless, 8, workers="2")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- encapsulation


def _items(pixel_data: bytes) -> list[tuple[int, int]]:
    """``(offset, length)`` of every item after the Basic Offset Table, offsets from its end."""
    _, bot_length = struct.unpack_from("<LL", pixel_data, 0)
    position = 8 + bot_length
    items = []
    while position < len(pixel_data):
        tag_group, tag_element, length = struct.unpack_from("<HHL", pixel_data, position)
        if (tag_group, tag_element) == (0xFFFE, 0xE0DD):
            break
        assert (tag_group, tag_element) == (0xFFFE, 0xE000), hex(position)
        items.append((position - 8 - bot_length, length))
        position += 8 + length
    return items


@pytest.fixture(scope="module")
def encoded_frames() -> list[bytes]:
    frames = random_frames(5, (32, 33), 8, seed=2)  # odd sizes give odd-length fragments
    return [encode_frame(frame, RLELossless, 8) for frame in frames] + [b"\x01\x02\x03"]


def test_basic_offset_table_points_at_each_frame(encoded_frames: list[bytes]) -> None:
    pixel_data, extended = encapsulate_frames(encoded_frames)
    assert extended is None
    offsets = parse_basic_offsets(pixel_data)
    items = _items(pixel_data)
    assert len(offsets) == len(encoded_frames) == len(items)
    assert offsets == [offset for offset, _ in items]
    for frame, (offset, length) in zip(encoded_frames, items):
        start = 8 + 4 * len(offsets) + offset + 8
        assert length % 2 == 0
        assert pixel_data[start:start + len(frame)] == frame
        assert length - len(frame) in (0, 1)
    assert len(pixel_data) % 2 == 0
    # pydicom's own frame generator finds one frame per item, in order.
    frames = list(generate_frames(pixel_data, number_of_frames=len(encoded_frames)))
    assert [f.rstrip(b"\x00") for f in frames] == [f.rstrip(b"\x00") for f in encoded_frames]
    for index, frame in enumerate(encoded_frames):
        assert get_frame(pixel_data, index, number_of_frames=len(encoded_frames))[:len(frame)] == frame


def test_extended_offset_table_on_request(encoded_frames: list[bytes]) -> None:
    pixel_data, extended = encapsulate_frames(encoded_frames, use_extended_offset_table=True)
    assert extended is not None
    offsets_bytes, lengths_bytes = extended
    offsets = np.frombuffer(offsets_bytes, dtype="<u8")
    lengths = np.frombuffer(lengths_bytes, dtype="<u8")
    assert len(offsets) == len(lengths) == len(encoded_frames)
    # PS3.5 A.4: the Basic Offset Table is empty when an Extended Offset Table is present.
    assert parse_basic_offsets(pixel_data) == []
    items = _items(pixel_data)
    assert offsets.tolist() == [offset for offset, _ in items]
    assert lengths.tolist() == [length for _, length in items]
    for index, frame in enumerate(encoded_frames):
        got = get_frame(pixel_data, index, number_of_frames=len(encoded_frames),
                        extended_offsets=(offsets_bytes, lengths_bytes))
        assert got[:len(frame)] == frame


def test_extended_offset_table_when_the_basic_table_would_overflow(
        monkeypatch: pytest.MonkeyPatch, encoded_frames: list[bytes]) -> None:
    """Past 2**32 bytes the 32-bit Basic Offset Table cannot address frames (PS3.5 A.4)."""
    monkeypatch.setattr(compression, "_BASIC_OFFSET_LIMIT", 64)
    pixel_data, extended = encapsulate_frames(encoded_frames)
    assert extended is not None
    assert parse_basic_offsets(pixel_data) == []
    small, extended_small = encapsulate_frames(encoded_frames[-1:])  # 12 bytes
    assert extended_small is None
    assert parse_basic_offsets(small) == [0]
