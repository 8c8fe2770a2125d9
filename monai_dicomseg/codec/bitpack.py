"""1-bit pixel packing for BINARY segmentations (PS3.5 8.1.1, 8.2).

Frames are concatenated bit-wise: frame *k* starts at bit ``k * rows * columns``
of Pixel Data, bits fill each byte from the least significant bit, and only
the very end is padded with zero bits (and then to an even byte count). When
``rows * columns`` is not a multiple of 8, frames therefore straddle bytes.
"""
from __future__ import annotations

import numpy as np

from monai_dicomseg.errors import DecodeError

__all__ = ["pack_frames", "unpack_frames", "packed_length"]


def packed_length(number_of_frames: int, rows: int, columns: int) -> int:
    """Number of Pixel Data bytes for ``number_of_frames`` 1-bit frames, padded to even."""
    nbytes = (number_of_frames * rows * columns + 7) // 8
    return nbytes + (nbytes % 2)


def pack_frames(frames: np.ndarray) -> bytes:
    """Pack binary frames into Pixel Data bytes.

    Parameters
    ----------
    frames
        ``(F, R, C)`` bool or 0/1 integer array.

    Returns
    -------
    bytes
        ``packed_length(F, R, C)`` bytes.
    """
    packed = np.packbits(np.ascontiguousarray(frames, dtype=bool).reshape(-1), bitorder="little")
    data = packed.tobytes()
    return data + b"\x00" if len(data) % 2 else data


def unpack_frames(data: bytes | np.ndarray, number_of_frames: int, rows: int, columns: int,
                  frame_indices: np.ndarray | None = None) -> np.ndarray:
    """Unpack 1-bit Pixel Data into ``(n, R, C)`` uint8 frames.

    Parameters
    ----------
    data
        Pixel Data bytes.
    number_of_frames
        NumberOfFrames of the dataset.
    rows, columns
        Frame size.
    frame_indices
        0-based indices of the frames to unpack (default: all).

    Raises
    ------
    DecodeError
        If ``data`` is shorter than the frames need.
    """
    buffer = np.frombuffer(data, dtype=np.uint8)
    pixels = rows * columns
    needed = (number_of_frames * pixels + 7) // 8
    if buffer.size < needed:
        raise DecodeError(
            f"PixelData holds {buffer.size} bytes; {number_of_frames} 1-bit frames of "
            f"{rows}x{columns} need {needed}"
        )
    if frame_indices is None:
        bits = np.unpackbits(buffer[:needed], bitorder="little", count=number_of_frames * pixels)
        return bits.reshape(number_of_frames, rows, columns)
    frame_indices = np.asarray(frame_indices, dtype=np.int64)
    out = np.empty((len(frame_indices), rows, columns), dtype=np.uint8)
    if pixels % 8 == 0:
        step = pixels // 8
        for out_index, frame_index in enumerate(frame_indices):
            start = int(frame_index) * step
            out[out_index] = np.unpackbits(buffer[start:start + step], bitorder="little").reshape(rows, columns)
        return out
    for out_index, frame_index in enumerate(frame_indices):
        first_bit = int(frame_index) * pixels
        start, offset = divmod(first_bit, 8)
        stop = (first_bit + pixels + 7) // 8
        bits = np.unpackbits(buffer[start:stop], bitorder="little")
        out[out_index] = bits[offset:offset + pixels].reshape(rows, columns)
    return out
