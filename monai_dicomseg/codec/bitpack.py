"""1-bit pixel packing for BINARY segmentations (PS3.5 8.1.1, 8.2): the one place bits are packed.

Frames are concatenated bit-wise: frame *k* starts at bit ``k * rows * columns``
of Pixel Data, bits fill each byte from the least significant bit (the note of
PS3.5 8.1.1: "little" bit order), and only the very end is padded with zero
bits (and then to an even byte count). When ``rows * columns`` is not a
multiple of 8, frames therefore straddle bytes.

Every module that packs or unpacks 1-bit pixels calls the functions here, so
the bit order is written once (a test checks that no other module calls
``np.packbits`` / ``np.unpackbits``). The module imports only numpy, so every
layer may import it (``dicomweb/`` re-packs retrieved frames with it).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = ["pack_bits", "packed_length", "place_frame_bits", "repack_frames", "unpack_bits"]

_ORDER: Literal["little"] = "little"  # PS3.5 8.1.1: the first pixel is the least significant bit of the first byte


def packed_length(number_of_frames: int, rows: int, columns: int) -> int:
    """Number of Pixel Data bytes for ``number_of_frames`` 1-bit frames, padded to even."""
    nbytes = (number_of_frames * rows * columns + 7) // 8
    return nbytes + (nbytes % 2)


def pack_bits(bits: np.ndarray, *, axis: int | None = None) -> np.ndarray:
    """Pack 0/1 (or bool) values into ``uint8`` bytes, first value in the least significant bit.

    Parameters
    ----------
    bits
        Any shape; non-zero is 1. With ``axis=None`` the array is flattened first.
    axis
        Pack along this axis only (``np.packbits`` semantics).

    Returns
    -------
    numpy.ndarray
        ``uint8``; the last byte is padded with zero bits.
    """
    return np.packbits(bits, axis=axis, bitorder=_ORDER)


def unpack_bits(packed: np.ndarray, *, count: int | None = None, axis: int | None = None) -> np.ndarray:
    """Unpack ``uint8`` bytes into 0/1 ``uint8`` values (inverse of :func:`pack_bits`).

    Parameters
    ----------
    packed
        ``uint8`` bytes. With ``axis=None`` the array is flattened first.
    count
        Number of values to keep (``np.unpackbits`` semantics); default: all ``8 * n``.
    axis
        Unpack along this axis only.
    """
    return np.unpackbits(packed, axis=axis, count=count, bitorder=_ORDER)


def repack_frames(frames: Sequence[bytes], pixels: int) -> bytes:
    """Concatenate 1-bit frames that each start on a byte bit-wise into native Pixel Data (not padded).

    Parameters
    ----------
    frames
        Per frame, at least ``ceil(pixels / 8)`` bytes (e.g. WADO-RS ``/frames/``
        parts, PS3.18 8.7.3.5.2, which start each frame on a byte boundary).
    pixels
        ``Rows * Columns * SamplesPerPixel`` of one frame.
    """
    bits = [unpack_bits(np.frombuffer(f, dtype=np.uint8), count=pixels) for f in frames]
    return pack_bits(np.concatenate(bits) if bits else np.zeros(0, np.uint8)).tobytes()


def place_frame_bits(out: np.ndarray, index: int, bits: np.ndarray) -> None:
    """OR the 1-bit frame ``bits`` (flat, bool) into native Pixel Data ``out`` (``uint8``) as frame ``index``.

    Frame ``index`` occupies bits ``[index * bits.size, (index + 1) * bits.size)``
    of ``out`` (frames straddle bytes when ``bits.size % 8 != 0``).
    """
    first_bit = index * bits.size
    offset = first_bit % 8
    if offset:
        bits = np.concatenate([np.zeros(offset, dtype=bool), bits])
    packed = pack_bits(bits)
    start = first_bit // 8
    out[start:start + packed.size] |= packed
