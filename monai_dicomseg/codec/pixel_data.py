"""Native (uncompressed) Pixel Data of SEG frames (PS3.5 8.1.1, 8.2).

Frames are produced lazily by a callable so that a 100-segment BINARY
volume is never materialised as one boolean array: BINARY frames are packed
in groups of 8 (8 frames always end on a byte boundary, whatever R × C),
FRACTIONAL/LABELMAP frames are copied into one preallocated buffer.
"""
from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from monai_dicomseg.codec.bitpack import pack_bits, packed_length

__all__ = ["encode_binary_frames", "encode_byte_frames", "join_frames"]

_GROUP = 8


def encode_binary_frames(number_of_frames: int, rows: int, columns: int,
                         get_frame: Callable[[int], np.ndarray]) -> bytes:
    """Pack ``number_of_frames`` binary frames into 1-bit Pixel Data, padded to even length.

    Parameters
    ----------
    number_of_frames, rows, columns
        Output geometry.
    get_frame
        ``get_frame(i)`` returns frame ``i`` as a ``(R, C)`` bool array.
    """
    out = io.BytesIO()  # grows in place and hands its buffer over: no second output-sized copy
    group = np.empty((_GROUP, rows, columns), dtype=bool)
    for start in range(0, number_of_frames, _GROUP):
        count = min(_GROUP, number_of_frames - start)
        for offset in range(count):
            group[offset] = get_frame(start + offset)
        out.write(pack_bits(group[:count]))  # 8 frames end on a byte
    return _even(out, packed_length(number_of_frames, rows, columns))


def encode_byte_frames(number_of_frames: int, rows: int, columns: int, dtype: np.dtype,
                       get_frame: Callable[[int], np.ndarray]) -> bytes:
    """Concatenate 8- or 16-bit frames (little endian) into Pixel Data, padded to even length."""
    stored = np.dtype(dtype).newbyteorder("<")
    out = io.BytesIO()
    for index in range(number_of_frames):
        frame = np.ascontiguousarray(np.asarray(get_frame(index)).astype(stored, copy=False))
        if frame.shape != (rows, columns):
            raise ValueError(f"frame {index} has shape {frame.shape}; expected {(rows, columns)}")
        out.write(frame)
    size = number_of_frames * rows * columns * stored.itemsize
    return _even(out, size + size % 2)


def join_frames(frames: Iterable[Any], size: int) -> bytes:
    """Concatenate byte-like frames (consumed one by one, so each can be freed once written), padded to even."""
    out = io.BytesIO()
    for frame in frames:
        out.write(frame)
    return _even(out, size + size % 2)


def _even(out: io.BytesIO, size: int) -> bytes:
    """The buffer's bytes, zero-padded up to ``size`` (``BytesIO.getvalue`` returns its own buffer: no copy)."""
    padding = size - out.tell()
    if padding < 0:
        raise ValueError(f"Pixel Data is {out.tell()} bytes; expected at most {size}")
    out.write(bytes(padding))
    return out.getvalue()
