"""1-bit pixel packing for BINARY segmentations (PS3.5 8.1.1, 8.2).

Frames are concatenated bit-wise: frame *k* starts at bit ``k * rows * columns``
of Pixel Data, bits fill each byte from the least significant bit, and only
the very end is padded with zero bits (and then to an even byte count). When
``rows * columns`` is not a multiple of 8, frames therefore straddle bytes.
The packing itself is streamed frame by frame (:mod:`~monai_dicomseg.codec.pixel_data`,
:mod:`~monai_dicomseg.seg.encode`) and unpacked per frame by
:mod:`~monai_dicomseg.codec.decode`; this module keeps the length rule.
"""
from __future__ import annotations

__all__ = ["packed_length"]


def packed_length(number_of_frames: int, rows: int, columns: int) -> int:
    """Number of Pixel Data bytes for ``number_of_frames`` 1-bit frames, padded to even."""
    nbytes = (number_of_frames * rows * columns + 7) // 8
    return nbytes + (nbytes % 2)
