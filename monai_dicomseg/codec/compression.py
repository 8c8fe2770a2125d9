"""Lossless frame compression for SEG Pixel Data (PS3.5 8.2, A.4).

Which transfer syntaxes a segmentation type may use, their names and their
encoder packages come from the one table,
:mod:`~monai_dicomseg.codec.transfer_syntax` (native and Deflate for every
type; JPEG 2000 Lossless for BINARY too; RLE and JPEG-LS for 8/16 bit).

Codecs are pydicom's encoders with the plugins the table names (the fast
pylibjpeg-rle plugin for RLE where installed); 1-bit JPEG 2000, which pydicom
does not encode, goes to pylibjpeg-openjpeg directly. Frames may be encoded
in worker processes; the bytes are the same as serial encoding because each
frame is encoded independently and results are kept in frame order.
"""
from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import numpy as np
from pydicom.encaps import encapsulate, encapsulate_extended
from pydicom.uid import UID

from monai_dicomseg.codec.transfer_syntax import (
    TRANSFER_SYNTAXES,
    by_name,
    check_writable,
    compression_names,
    writable_syntaxes,
)
from monai_dicomseg.enums import BINARY, LABELMAP
from monai_dicomseg.errors import EncodeError, InputTypeError

__all__ = [
    "COMPRESSION_NAMES",
    "compression_transfer_syntax",
    "allowed_transfer_syntaxes",
    "check_transfer_syntax",
    "encode_frames",
    "encapsulate_frames",
    "resolve_workers",
]

# openjpeg refuses to encode smaller images.
_MIN_JPEG2000_SIZE = 32
# Basic Offset Table offsets are 32-bit (PS3.5 A.4): beyond that the
# Extended Offset Table is required.
_BASIC_OFFSET_LIMIT = 2 ** 32


COMPRESSION_NAMES: dict[str, UID] = {name: UID(by_name(name).uid) for name in compression_names()}
"""Short names of the lossless frame compressions (the CLI's ``--compress`` vocabulary) -> transfer syntax
(from :mod:`~monai_dicomseg.codec.transfer_syntax`)."""


def compression_transfer_syntax(compression: "str | None") -> UID:
    """Transfer syntax of a compression name: ``None``/``"none"``, ``"deflate"``, ``"rle"``, ``"jpeg2000"``, ...

    The names (and aliases) are those of the written rows of
    :data:`~monai_dicomseg.codec.transfer_syntax.TRANSFER_SYNTAXES`.

    Raises
    ------
    InputError
        An unknown name (the valid names are listed).
    """
    return UID(by_name(compression).uid)


def allowed_transfer_syntaxes(binary: bool) -> tuple[UID, ...]:
    """Transfer syntaxes written for BINARY (1-bit) or 8/16-bit (LABELMAP) segmentations."""
    return tuple(UID(row.uid) for row in writable_syntaxes(BINARY if binary else LABELMAP))


def check_transfer_syntax(transfer_syntax_uid: str, segmentation_type: str) -> UID:
    """Validate the transfer syntax for a segmentation type and that its codec is installed.

    Raises
    ------
    InputError
        The syntax is not allowed for the type (e.g. RLE for BINARY).
    MissingDependencyError
        The codec's package is not installed; the message names it.
    """
    return UID(check_writable(str(transfer_syntax_uid), str(segmentation_type)).uid)


def resolve_workers(workers: int) -> int:
    """Number of worker processes: 0 = in process, N > 0 = N, negative = all cores."""
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)):
        raise InputTypeError(f"workers must be an int; got {type(workers).__name__}")
    if workers < 0:
        return os.cpu_count() or 1
    return int(workers)


def encode_frame(frame: np.ndarray, transfer_syntax_uid: str, bits_allocated: int) -> bytes:
    """Compress one ``(R, C)`` frame.

    Parameters
    ----------
    frame
        ``(R, C)`` bool (1-bit), uint8 or uint16 array.
    transfer_syntax_uid
        One of the compressed syntaxes above.
    bits_allocated
        1, 8 or 16.
    """
    rows, columns = frame.shape
    row = TRANSFER_SYNTAXES[str(transfer_syntax_uid)]
    if "openjpeg" in row.encoder_modules and min(rows, columns) < _MIN_JPEG2000_SIZE:
        raise EncodeError(
            f"JPEG 2000 Lossless cannot encode {rows}x{columns} frames (openjpeg needs at least "
            f"{_MIN_JPEG2000_SIZE} rows and columns); use another transfer_syntax_uid"
        )
    if bits_allocated == 1:
        from openjpeg.utils import encode_array

        return bytes(encode_array(np.ascontiguousarray(frame, dtype=bool), bits_stored=1,
                                  photometric_interpretation=2, use_mct=False))
    from pydicom.pixels import get_encoder

    return bytes(get_encoder(row.uid).encode(
        np.ascontiguousarray(frame),
        encoding_plugin=row.encoding_plugin(),
        rows=rows,
        columns=columns,
        samples_per_pixel=1,
        number_of_frames=1,
        bits_allocated=bits_allocated,
        bits_stored=bits_allocated,
        pixel_representation=0,
        photometric_interpretation="MONOCHROME2",
    ))


def _encode_batch(frames: np.ndarray, transfer_syntax_uid: str, bits_allocated: int) -> list[bytes]:
    return [encode_frame(frame, transfer_syntax_uid, bits_allocated) for frame in frames]


# Frame source inherited by forked workers: they read frames from the parent's
# memory (copy-on-write) instead of receiving pickled arrays through a pipe.
_FORKED_FRAME_SOURCE: Callable[[int], np.ndarray] | None = None


def _encode_range(bounds: tuple[int, int], transfer_syntax_uid: str, bits_allocated: int) -> list[bytes]:
    get_frame = _FORKED_FRAME_SOURCE
    if get_frame is None:  # a check, not an assert: asserts vanish under python -O
        raise EncodeError("compression worker started without a frame source (_FORKED_FRAME_SOURCE is None)")
    return [encode_frame(get_frame(i), transfer_syntax_uid, bits_allocated) for i in range(*bounds)]


def encode_frames(
    number_of_frames: int,
    get_frame: Callable[[int], np.ndarray],
    transfer_syntax_uid: str,
    bits_allocated: int,
    workers: int = 0,
) -> list[bytes]:
    """Compress frames in order, in process or in ``workers`` processes.

    Where the platform can fork, workers inherit ``get_frame`` and its data
    and receive only frame ranges; elsewhere frames are pickled to them in
    batches. Either way the result list is in frame order whatever the
    scheduling, so the bytes equal serial encoding.
    """
    global _FORKED_FRAME_SOURCE
    processes = resolve_workers(workers)
    if processes == 0 or number_of_frames < 2:
        return [encode_frame(get_frame(i), transfer_syntax_uid, bits_allocated)
                for i in range(number_of_frames)]
    batch = max(1, min(32, number_of_frames // (4 * processes) or 1))
    encoded: list[bytes] = []
    if "fork" in multiprocessing.get_all_start_methods():
        ranges = [(start, min(start + batch, number_of_frames))
                  for start in range(0, number_of_frames, batch)]
        _FORKED_FRAME_SOURCE = get_frame
        try:
            with ProcessPoolExecutor(max_workers=processes,
                                     mp_context=multiprocessing.get_context("fork")) as executor:
                worker = partial(_encode_range, transfer_syntax_uid=str(transfer_syntax_uid),
                                 bits_allocated=bits_allocated)
                for result in executor.map(worker, ranges):
                    encoded.extend(result)
        finally:
            _FORKED_FRAME_SOURCE = None
        return encoded

    def batches() -> Iterator[np.ndarray]:
        for start in range(0, number_of_frames, batch):
            yield np.stack([get_frame(i) for i in range(start, min(start + batch, number_of_frames))])

    worker = partial(_encode_batch, transfer_syntax_uid=str(transfer_syntax_uid),
                     bits_allocated=bits_allocated)
    with ProcessPoolExecutor(max_workers=processes) as executor:
        for result in executor.map(worker, batches()):
            encoded.extend(result)
    return encoded


def encapsulate_frames(frames: list[bytes], use_extended_offset_table: bool = False
                       ) -> tuple[bytes, tuple[bytes, bytes] | None]:
    """Encapsulate compressed frames, one fragment each (PS3.5 A.4).

    Returns
    -------
    pixel_data
        Encapsulated Pixel Data value (Basic Offset Table first).
    extended
        ``(ExtendedOffsetTable, ExtendedOffsetTableLengths)`` values when an
        extended offset table is used (requested, or needed because the
        frames exceed the 32-bit Basic Offset Table), else ``None``.
    """
    total = sum(len(frame) + (len(frame) % 2) + 8 for frame in frames)
    if use_extended_offset_table or total >= _BASIC_OFFSET_LIMIT:
        pixel_data, offsets, lengths = encapsulate_extended(frames)
        return pixel_data, (offsets, lengths)
    return encapsulate(frames, has_bot=True), None
