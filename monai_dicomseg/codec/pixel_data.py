"""Native (uncompressed) Pixel Data of SEG frames (PS3.5 8.1.1, 8.2).

Frames are produced lazily by a callable so that a 100-segment BINARY
volume is never materialised as one boolean array: BINARY frames are packed
in groups of 8 (8 frames always end on a byte boundary, whatever R × C),
FRACTIONAL/LABELMAP frames are copied into one preallocated buffer.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from monai_dicomseg.codec.bitpack import packed_length

__all__ = ["encode_binary_frames", "encode_byte_frames"]

_GROUP = 8


def encode_binary_frames(number_of_frames: int, rows: int, columns: int,
                         get_frame: Callable[[int], np.ndarray]) -> bytes:
    """Pack ``number_of_frames`` binary frames into 1-bit Pixel Data.

    Parameters
    ----------
    number_of_frames, rows, columns
        Output geometry.
    get_frame
        ``get_frame(i)`` returns frame ``i`` as a ``(R, C)`` bool array.
    """
    out = np.zeros(packed_length(number_of_frames, rows, columns), dtype=np.uint8)
    group = np.empty((_GROUP, rows, columns), dtype=bool)
    for start in range(0, number_of_frames, _GROUP):
        count = min(_GROUP, number_of_frames - start)
        for offset in range(count):
            group[offset] = get_frame(start + offset)
        packed = np.packbits(group[:count].reshape(-1), bitorder="little")
        first = start * rows * columns // 8
        out[first:first + packed.size] = packed
    return out.tobytes()


def encode_byte_frames(number_of_frames: int, rows: int, columns: int, dtype: np.dtype,
                       get_frame: Callable[[int], np.ndarray]) -> bytes:
    """Concatenate 8- or 16-bit frames (little endian) into Pixel Data, padded to even length."""
    out = np.empty((number_of_frames, rows, columns), dtype=np.dtype(dtype).newbyteorder("<"))
    for index in range(number_of_frames):
        out[index] = get_frame(index)
    data = out.tobytes()
    return data + b"\x00" if len(data) % 2 else data
