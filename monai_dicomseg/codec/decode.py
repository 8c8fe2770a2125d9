"""Frame-wise access to the Pixel Data of a Segmentation.

Only the requested frames are decoded:

* native (uncompressed) 1-bit BINARY frames are bit-packed with the first
  pixel in the least significant bit of a byte, and consecutive frames follow
  without padding, so a frame may start in the middle of a byte when
  ``Rows * Columns % 8 != 0`` (PS3.5 8.1.1, PS3.3 C.8.20.2);
* native 8- and 16-bit frames are sliced out of the buffer;
* encapsulated frames (PS3.5 8.2 and A.4) are located with pydicom's frame
  generators and decoded one by one with pydicom's pixel decoders.

Header values are checked against the size of the Pixel Data before any
array is allocated, so a corrupt header cannot request gigabytes of memory.
"""
from __future__ import annotations

import struct
import warnings
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from collections.abc import Iterator, Sequence

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID

from monai_dicomseg.codec.bitpack import unpack_bits
from monai_dicomseg.codec.transfer_syntax import (
    EXPLICIT_VR_BIG_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    TransferSyntax,
    readable_syntax,
)
from monai_dicomseg.errors import DecodeError, DicomSegError, MissingDependencyError, UnsupportedError

if TYPE_CHECKING:  # pragma: no cover
    from monai_dicomseg.codec.pixel_source import PixelSource

__all__ = [
    "PixelLayout",
    "pixel_bytes",
    "pixel_data_length",
    "deferred_pixel_source",
    "pixel_layout",
    "decode_frames",
    "packed_frames",
    "MAX_DECODED_BYTES",
    "check_decoded_size",
    "max_decoded_bytes",
    "decoded_size_budget",
]

_PIXEL_DATA_TAG = 0x7FE00010

MAX_DECODED_BYTES: int = 16 << 30
"""Decoded-size budget: the largest array (in bytes) a read may allocate (default 16 GiB).

A hostile or corrupt header (``TotalPixelMatrixColumns = 2**31``,
``NumberOfFrames = 2**31 - 1``) is refused with a :class:`DecodeError` before
anything is allocated. Raise it for genuinely larger outputs, for the whole
process (``monai_dicomseg.codec.decode.MAX_DECODED_BYTES = 64 << 30``) or for a
block of code (``with max_decoded_bytes(64 << 30): ...``). The block's budget
is a :class:`contextvars.ContextVar`: it applies to the thread (or asyncio
task) that entered the block only, and this module constant stays the default
every other thread sees.
"""

_BUDGET: ContextVar["int | None"] = ContextVar("monai_dicomseg_max_decoded_bytes", default=None)


def decoded_size_budget() -> int:
    """The decoded-size budget in force: the innermost :class:`max_decoded_bytes` block's, else the default.

    Returns
    -------
    int
        Bytes; :data:`MAX_DECODED_BYTES` (read at call time) outside any block.
    """
    limit = _BUDGET.get()
    return MAX_DECODED_BYTES if limit is None else limit


class max_decoded_bytes:
    """Context manager that sets the decoded-size budget for the enclosed block.

    The budget lives in a :class:`contextvars.ContextVar`, so two threads (or
    asyncio tasks) may hold different budgets at the same time; neither sees
    the other's, and :data:`MAX_DECODED_BYTES` is not changed. Blocks nest.

    Parameters
    ----------
    limit
        Positive number of bytes.

    Examples
    --------
    >>> with max_decoded_bytes(64 << 30):  # doctest: +SKIP
    ...     matrix = seg.get_total_pixel_matrix()
    """

    def __init__(self, limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
            from monai_dicomseg.errors import InputError

            raise InputError(f"limit must be a positive number of bytes; got {limit!r}")
        self.limit = int(limit)
        self._tokens: list[Token["int | None"]] = []

    def __enter__(self) -> "max_decoded_bytes":
        self._tokens.append(_BUDGET.set(self.limit))
        return self

    def __exit__(self, *exc: object) -> None:
        _BUDGET.reset(self._tokens.pop())


def check_decoded_size(shape: Sequence[int], dtype: "np.dtype | type | str", what: str) -> None:
    """Refuse an output array larger than the decoded-size budget before allocating it.

    The budget is :func:`decoded_size_budget` (:data:`MAX_DECODED_BYTES` outside a
    :class:`max_decoded_bytes` block).

    Parameters
    ----------
    shape, dtype
        The array about to be allocated.
    what
        What the array is, for the message (e.g. ``"total pixel matrix region"``).

    Raises
    ------
    DecodeError
        If ``prod(shape) * itemsize`` exceeds the budget.
    """
    needed = np.dtype(dtype).itemsize
    for n in shape:
        needed *= max(int(n), 0)
    budget = decoded_size_budget()
    if needed > budget:
        raise DecodeError(
            f"the {what} of shape {tuple(int(n) for n in shape)} ({np.dtype(dtype).name}) would need "
            f"{needed} bytes, more than the decoded-size budget of {budget} bytes "
            "(monai_dicomseg.codec.decode.MAX_DECODED_BYTES; raise it with max_decoded_bytes(...) if "
            "the header is genuine)"
        )


@dataclass(frozen=True)
class PixelLayout:
    """Validated description of a SEG's Pixel Data.

    Attributes
    ----------
    rows, columns
        Frame size ``R``, ``C``.
    number_of_frames
        ``F``.
    bits_allocated
        1 (BINARY), 8 or 16.
    transfer_syntax
        Transfer Syntax UID.
    encapsulated
        Whether frames are compressed and encapsulated (PS3.5 A.4).
    """

    rows: int
    columns: int
    number_of_frames: int
    bits_allocated: int
    transfer_syntax: UID
    encapsulated: bool

    @property
    def dtype(self) -> np.dtype:
        """Dtype of decoded stored values: ``uint8`` (1, 8 bit) or ``uint16``."""
        return np.dtype(np.uint16 if self.bits_allocated == 16 else np.uint8)

    @property
    def pixels_per_frame(self) -> int:
        return self.rows * self.columns


def _transfer_syntax(dataset: Dataset) -> UID:
    meta = getattr(dataset, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid is None:
        implicit = getattr(dataset, "is_implicit_VR", None)
        little = getattr(dataset, "is_little_endian", None)
        if little is False:
            return UID(EXPLICIT_VR_BIG_ENDIAN)
        return UID(IMPLICIT_VR_LITTLE_ENDIAN if implicit else EXPLICIT_VR_LITTLE_ENDIAN)
    return UID(uid)


def _int_attribute(dataset: Dataset, keyword: str, default: int | None = None) -> int:
    try:
        value = dataset.get(keyword, default)
    except Exception as exc:  # pydicom cannot convert the stored bytes (odd length, "inf", ...)
        raise DecodeError(f"{keyword} has a value that cannot be decoded: {exc}") from None
    if value is None or value == "":
        raise DecodeError(f"{keyword} is missing (Type 1 for Segmentation images, PS3.3 C.8.20.2)")
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise DecodeError(f"{keyword} must be an integer; got {value!r}") from None


def deferred_pixel_source(dataset: Dataset) -> "PixelSource | None":
    """The file-backed source of a data set whose Pixel Data has not been loaded, else ``None``.

    See :mod:`monai_dicomseg.codec.pixel_source`: a deferred Pixel Data
    element is a ``RawDataElement`` with value ``None`` and the data set's
    ``buffer`` is a :class:`~monai_dicomseg.codec.pixel_source.PixelSource`.
    Once anything loads the whole value, this returns ``None``.
    """
    from pydicom.dataelem import RawDataElement

    from monai_dicomseg.codec.pixel_source import PixelSource

    source = getattr(dataset, "buffer", None)
    if not isinstance(source, PixelSource):
        return None
    element = dataset.get_item(_PIXEL_DATA_TAG, keep_deferred=True)
    if isinstance(element, RawDataElement) and element.value is None:
        return source
    return None


def pixel_data_length(dataset: Dataset) -> int:
    """Byte length of the Pixel Data value, without loading a deferred one."""
    source = deferred_pixel_source(dataset)
    if source is not None:
        return source.length
    return len(dataset.PixelData or b"")


def pixel_bytes(dataset: Dataset, start: int, stop: int) -> "memoryview | bytearray":
    """Bytes ``[start, stop)`` of the Pixel Data value: the one way the decoder reads native Pixel Data.

    Parameters
    ----------
    dataset
        A SEG data set (Pixel Data in memory or deferred, see :func:`deferred_pixel_source`).
    start, stop
        Byte offsets into the value (``0 <= start <= stop <= length``).

    Returns
    -------
    memoryview | bytearray
        A read-only view of in-memory Pixel Data (no copy), or the bytes read
        from the file (one read; a new, writable buffer).

    Raises
    ------
    DecodeError
        If the range is outside the value or the file no longer holds it.
    """
    source = deferred_pixel_source(dataset)
    if source is not None:
        return source.read_range(start, stop)
    view = memoryview(dataset.PixelData or b"").cast("B")
    if not 0 <= start <= stop <= len(view):
        raise DecodeError(f"Pixel Data byte range {start}..{stop} is outside its value of {len(view)} bytes")
    return view[start:stop]


def pixel_layout(dataset: Dataset) -> PixelLayout:
    """Validate the image pixel attributes against the Pixel Data.

    Parameters
    ----------
    dataset
        A SEG data set.

    Returns
    -------
    PixelLayout

    Raises
    ------
    UnsupportedError
        For transfer syntaxes the table (:mod:`~monai_dicomseg.codec.transfer_syntax`) does not
        read (big endian, unknown).
    DecodeError
        If Rows, Columns, BitsAllocated or NumberOfFrames are missing or
        invalid, or if native Pixel Data is shorter than
        ``ceil(Rows * Columns * NumberOfFrames * BitsAllocated / 8)`` bytes.
    """
    syntax = _transfer_syntax(dataset)
    row = readable_syntax(syntax)
    if row.lossy:
        warnings.warn(f"TransferSyntaxUID {syntax} ({row.title}) allows lossy compression: the stored "
                      "segmentation values may differ from what the producer segmented", UserWarning, stacklevel=2)
    encapsulated = row.encapsulated  # deflated: inflated on read, its Pixel Data native
    rows = _int_attribute(dataset, "Rows")
    columns = _int_attribute(dataset, "Columns")
    frames = _int_attribute(dataset, "NumberOfFrames", 1)
    bits = _int_attribute(dataset, "BitsAllocated")
    if rows < 1 or columns < 1:
        raise DecodeError(f"Rows and Columns must be positive; got Rows={rows}, Columns={columns}")
    if frames < 1:
        raise DecodeError(f"NumberOfFrames must be at least 1; got {frames}")
    if bits not in (1, 8, 16):
        raise UnsupportedError(f"BitsAllocated must be 1, 8 or 16 for a segmentation; got {bits}")
    if dataset.get("SamplesPerPixel") not in (None, "") and _int_attribute(dataset, "SamplesPerPixel") != 1:
        raise DecodeError(f"SamplesPerPixel must be 1 for a segmentation; got {dataset.SamplesPerPixel}")
    if "PixelData" not in dataset:
        raise DecodeError("PixelData is missing; expected the encoded frames, found no element")
    layout = PixelLayout(rows, columns, frames, bits, syntax, encapsulated)
    data_length = pixel_data_length(dataset)
    if not encapsulated:
        expected = -(-rows * columns * frames * bits // 8)
        if data_length < expected:
            raise DecodeError(
                f"PixelData is truncated or NumberOfFrames/Rows/Columns are wrong: "
                f"Rows x Columns x NumberOfFrames x BitsAllocated = {rows} x {columns} x {frames} x {bits} "
                f"bits needs {expected} bytes; PixelData has {data_length}"
            )
    elif frames * 8 > data_length:
        # every frame needs at least one fragment item header (PS3.5 A.4)
        raise DecodeError(
            f"NumberOfFrames = {frames} cannot fit in encapsulated PixelData of {data_length} bytes "
            f"(each frame needs at least one 8-byte item)"
        )
    return layout


def _check_output_size(layout: PixelLayout, count: int) -> None:
    check_decoded_size((count, layout.rows, layout.columns), layout.dtype, f"{count} decoded frame(s)")


def _frame_indices(frame_indices: Sequence[int] | np.ndarray, layout: PixelLayout) -> np.ndarray:
    idx = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= layout.number_of_frames):
        bad = int(idx[(idx < 0) | (idx >= layout.number_of_frames)][0])
        raise DecodeError(
            f"frame index {bad} is out of range; expected 0 <= index < NumberOfFrames = {layout.number_of_frames}"
        )
    return idx


def _runs(frames: np.ndarray) -> list[tuple[int, int]]:
    """``[(first, stop), ...]`` half-open runs of consecutive values of a sorted, unique ``frames``."""
    if frames.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(frames) != 1) + 1
    firsts = frames[np.concatenate(([0], breaks))]
    lasts = frames[np.concatenate((breaks - 1, [frames.size - 1]))]
    return list(zip(firsts.tolist(), (lasts + 1).tolist()))


def _frame_rows(dataset: Dataset, unique: np.ndarray, frame_bytes: int) -> np.ndarray:
    """``(n, frame_bytes) uint8`` stored bytes of byte-aligned frames ``unique`` (sorted, no repeats).

    One :func:`pixel_bytes` read per run of adjacent frames; a single run is
    returned without a copy (read-only when the Pixel Data is in memory).
    """
    runs = _runs(unique)
    if len(runs) == 1:
        first, stop = runs[0]
        data = pixel_bytes(dataset, first * frame_bytes, stop * frame_bytes)
        return np.frombuffer(data, dtype=np.uint8).reshape(stop - first, frame_bytes)
    rows = np.empty((unique.size, frame_bytes), np.uint8)
    position = 0
    for first, stop in runs:
        data = pixel_bytes(dataset, first * frame_bytes, stop * frame_bytes)
        rows[position:position + stop - first] = np.frombuffer(data, dtype=np.uint8).reshape(-1, frame_bytes)
        position += stop - first
    return rows


def _selected_rows(dataset: Dataset, idx: np.ndarray, frame_bytes: int, number_of_frames: int
                   ) -> tuple[np.ndarray, bool]:
    """Stored bytes of frames ``idx`` (any order, repeats) as ``(len(idx), frame_bytes)``; whether a copy.

    In-memory Pixel Data is viewed whole and indexed (a view when ``idx`` is
    every frame in order); Pixel Data left in its file is read run by run.
    """
    if deferred_pixel_source(dataset) is None:
        whole = np.frombuffer(pixel_bytes(dataset, 0, frame_bytes * number_of_frames), dtype=np.uint8)
        rows = whole.reshape(number_of_frames, frame_bytes)
        if idx.size == number_of_frames and np.array_equal(idx, np.arange(idx.size)):
            return rows, False
        return rows[idx], True
    unique, inverse = np.unique(idx, return_inverse=True)
    rows = _frame_rows(dataset, unique, frame_bytes)
    if unique.size == idx.size and np.array_equal(unique, idx):  # already sorted, no repeats
        return rows, True
    return rows[inverse.reshape(-1)], True


def packed_frames(
    dataset: Dataset, frame_indices: Sequence[int] | np.ndarray, layout: PixelLayout | None = None
) -> np.ndarray | None:
    """Bit-packed bytes of native 1-bit frames when frames are byte aligned.

    Only the byte ranges of the selected frames are read (one read per run
    of adjacent frames, :func:`pixel_bytes`).

    Returns
    -------
    numpy.ndarray | None
        ``(n, R * C / 8) uint8`` (the selected rows; may be a read-only view
        of in-memory Pixel Data), or ``None``
        when the frames are not native 1-bit with ``R * C % 8 == 0``.
    """
    layout = layout or pixel_layout(dataset)
    if layout.encapsulated or layout.bits_allocated != 1 or layout.pixels_per_frame % 8:
        return None
    idx = _frame_indices(frame_indices, layout)
    if idx.size == 0:
        return np.zeros((0, layout.pixels_per_frame // 8), np.uint8)
    return _selected_rows(dataset, idx, layout.pixels_per_frame // 8, layout.number_of_frames)[0]


def _covering_bytes(dataset: Dataset, idx: np.ndarray, layout: PixelLayout) -> tuple[np.ndarray, np.ndarray]:
    """Bytes holding the bits of 1-bit frames ``idx`` and, per frame, the bit where it starts in them.

    In-memory Pixel Data is used whole; Pixel Data left in its file is read
    run by run of adjacent frames, each run from the byte holding its first
    bit to the byte holding its last.
    """
    n_pixels = layout.pixels_per_frame
    if deferred_pixel_source(dataset) is None:
        size = -(-layout.number_of_frames * n_pixels // 8)
        return np.frombuffer(pixel_bytes(dataset, 0, size), dtype=np.uint8), idx * n_pixels
    unique, inverse = np.unique(idx, return_inverse=True)
    parts: list[np.ndarray] = []
    start_bit = np.empty(unique.size, np.int64)
    position, compact = 0, 0
    for first, stop in _runs(unique):
        byte0, byte1 = first * n_pixels // 8, -(-stop * n_pixels // 8)
        parts.append(np.frombuffer(pixel_bytes(dataset, byte0, byte1), dtype=np.uint8))
        start_bit[position:position + stop - first] = compact * 8 + np.arange(first, stop) * n_pixels - byte0 * 8
        position += stop - first
        compact += byte1 - byte0
    data = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return data, start_bit[inverse.reshape(-1)]


def _unaligned_bits(dataset: Dataset, idx: np.ndarray, layout: PixelLayout) -> np.ndarray:
    """``(n, R * C) uint8`` bits of 1-bit frames that straddle byte boundaries (``R * C % 8 != 0``).

    Frame ``i`` holds bits ``[i * R * C, (i + 1) * R * C)`` of the value
    (PS3.5 8.1.1): gather the covering bytes, unpack, then shift.
    """
    n_pixels = layout.pixels_per_frame
    data, start_bit = _covering_bytes(dataset, idx, layout)
    span = (n_pixels + 7) // 8 + 1
    gather = np.minimum((start_bit // 8)[:, None] + np.arange(span), data.size - 1)
    bits = unpack_bits(data[gather], axis=1)
    shift = (start_bit % 8)[:, None] + np.arange(n_pixels)
    return np.take_along_axis(bits, shift, axis=1)


def _native_bits(dataset: Dataset, idx: np.ndarray, layout: PixelLayout) -> np.ndarray:
    """``(n, R, C) uint8`` 0/1 values of native 1-bit frames ``idx``."""
    n_pixels = layout.pixels_per_frame
    if n_pixels % 8 == 0:
        packed, _ = _selected_rows(dataset, idx, n_pixels // 8, layout.number_of_frames)
        bits = unpack_bits(packed, axis=1)
    else:
        bits = _unaligned_bits(dataset, idx, layout)
    return bits.reshape(idx.size, layout.rows, layout.columns)


def _native_values(dataset: Dataset, idx: np.ndarray, layout: PixelLayout) -> np.ndarray:
    """``(n, R, C)`` 8- or 16-bit stored values of native frames ``idx`` (a new, writable array)."""
    frame_bytes = layout.pixels_per_frame * layout.dtype.itemsize
    rows, copied = _selected_rows(dataset, idx, frame_bytes, layout.number_of_frames)
    values = rows.view(layout.dtype.newbyteorder("<")).reshape(idx.size, layout.rows, layout.columns)
    if not copied:
        return values.astype(layout.dtype, copy=True)
    return values.astype(layout.dtype, copy=False)


def decode_frames(
    dataset: Dataset,
    frame_indices: Sequence[int] | np.ndarray,
    layout: PixelLayout | None = None,
) -> np.ndarray:
    """Decode selected stored frames.

    Parameters
    ----------
    dataset
        A SEG data set.
    frame_indices
        0-based stored frame indices (any order, repeats allowed).
    layout
        Result of :func:`pixel_layout`, if already computed.

    Returns
    -------
    numpy.ndarray
        ``(n, R, C)`` stored values: ``uint8`` for 1- and 8-bit data (0/1 for
        BINARY), ``uint16`` for 16-bit data.

    Raises
    ------
    DecodeError
        For inconsistent headers, truncated or undecodable frames.
    UnsupportedError
        For unsupported transfer syntaxes.
    """
    layout = layout or pixel_layout(dataset)
    idx = _frame_indices(frame_indices, layout)
    _check_output_size(layout, idx.size)
    if idx.size == 0:
        return np.zeros((0, layout.rows, layout.columns), layout.dtype)
    if not layout.encapsulated:
        if layout.bits_allocated == 1:
            return _native_bits(dataset, idx, layout)
        return _native_values(dataset, idx, layout)
    return _decode_encapsulated(dataset, idx, layout)


def _pydicom_decoder(row: TransferSyntax) -> Any:
    """pydicom's decoder of ``row``'s syntax; the packages to install are named from the table when missing."""
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(row.uid)
    except NotImplementedError:
        raise UnsupportedError(f"no pixel data decoder for TransferSyntaxUID {row.uid} ({row.title})") from None
    if not decoder.is_available:
        package = " ".join(row.decoder) or "pylibjpeg"
        raise MissingDependencyError(
            f"reading TransferSyntaxUID {row.uid} ({row.title}) needs a pydicom decoding plugin that is not "
            f"installed: pip install {package}"
        )
    return decoder


def _fragment_frames(dataset: Dataset, unique: np.ndarray, layout: PixelLayout) -> Iterator[np.ndarray]:
    """Frames ``unique`` of uncompressed frames in fragments (Encapsulated Uncompressed, PS3.5 A.4.11).

    Each frame is the native encoding of that frame alone (a 1-bit frame
    starts at a byte boundary), at least ``ceil(R * C * bits / 8)`` bytes
    (padding to even length after it).
    """
    from pydicom.encaps import generate_frames

    n_pixels = layout.pixels_per_frame
    size = -(-n_pixels * layout.bits_allocated // 8)
    wanted = {int(i) for i in unique}
    for index, data in enumerate(generate_frames(dataset.PixelData, number_of_frames=layout.number_of_frames)):
        if index not in wanted:
            continue
        if len(data) < size:
            raise DecodeError(f"encapsulated uncompressed frame {index} has {len(data)} bytes; Rows x Columns x "
                              f"BitsAllocated = {layout.rows} x {layout.columns} x {layout.bits_allocated} needs {size}")
        raw = np.frombuffer(data, np.uint8, size)
        if layout.bits_allocated == 1:
            yield unpack_bits(raw, count=n_pixels)
        else:
            yield raw.view(layout.dtype.newbyteorder("<")).astype(layout.dtype)


_SUBSET_BYTES = 16 << 20  # compressed frames decoded together from a streamed value


def _streamed_frames(decoder: Any, dataset: Dataset, unique: np.ndarray, layout: PixelLayout
                     ) -> "Iterator[np.ndarray] | None":
    """Frames ``unique`` of a SEG built but not saved whose encapsulated Pixel Data is served from its
    compressed frames (``codec/encapsulated_pixel_data.py``), else ``None``.

    Each batch of about ``_SUBSET_BYTES`` of compressed frames is encapsulated
    alone (PS3.5 A.4) in a data set with the SEG's Image Pixel attributes and
    decoded by ``decoder``: the whole value is neither joined nor loaded into
    ``dataset`` (it stays streamed for ``save_as``).
    """
    from monai_dicomseg.codec.encapsulated_pixel_data import StreamedEncapsulatedPixelData

    source = deferred_pixel_source(dataset)
    if not isinstance(source, StreamedEncapsulatedPixelData):
        return None

    def batches() -> Iterator[list[int]]:
        batch: list[int] = []
        size = 0
        for index in unique.tolist():
            batch.append(index)
            size += source.frame_length(index)
            if size >= _SUBSET_BYTES:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    def frames() -> Iterator[np.ndarray]:
        for batch in batches():
            subset = _subset_dataset(dataset, layout, source.subset_value(batch), len(batch))
            for frame, _ in decoder.iter_array(subset, raw=True):
                yield frame

    return frames()


def _subset_dataset(dataset: Dataset, layout: PixelLayout, value: bytes, count: int) -> Dataset:
    """A data set of ``count`` frames: ``dataset``'s Image Pixel attributes, encapsulated Pixel Data ``value``."""
    from pydicom.dataset import FileMetaDataset

    subset = Dataset()
    subset.file_meta = FileMetaDataset()
    subset.file_meta.TransferSyntaxUID = layout.transfer_syntax
    for keyword in ("SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated",
                    "BitsStored", "HighBit", "PixelRepresentation", "PlanarConfiguration"):
        if keyword in dataset:
            subset.add(dataset[keyword])
    subset.NumberOfFrames = count
    subset.add_new("PixelData", "OB", value)
    subset["PixelData"].is_undefined_length = True
    return subset


def _decode_encapsulated(dataset: Dataset, idx: np.ndarray, layout: PixelLayout) -> np.ndarray:
    row = readable_syntax(layout.transfer_syntax)
    if row.pixel_codec == "fragments":
        frames: Iterator[Any] = _fragment_frames(dataset, np.unique(idx), layout)
    else:
        decoder = _pydicom_decoder(row)
        streamed = _streamed_frames(decoder, dataset, np.unique(idx), layout)
        # Pixel Data in memory or in its file: pydicom locates the fragments
        frames = streamed if streamed is not None else (
            frame for frame, _ in decoder.iter_array(dataset, indices=np.unique(idx).tolist(), raw=True))
    unique, inverse = np.unique(idx, return_inverse=True)
    out = np.empty((unique.size, layout.rows, layout.columns), layout.dtype)
    decoded = 0
    try:
        for n, frame in enumerate(frames):
            frame = np.asarray(frame).reshape(layout.rows, layout.columns)
            if layout.bits_allocated == 1 and frame.max(initial=0) > 1:
                frame = frame != 0
            out[n] = frame
            decoded = n + 1
    except (ValueError, EOFError, RuntimeError, IndexError, KeyError, AttributeError, TypeError,
            OverflowError, struct.error) as exc:  # pydicom's decoders: missing/odd attributes, bad bytes
        if isinstance(exc, DicomSegError):
            raise
        raise DecodeError(
            f"cannot decode encapsulated PixelData ({layout.transfer_syntax.name}): {exc}"
        ) from exc
    if decoded != unique.size:
        raise DecodeError(f"encapsulated PixelData ({layout.transfer_syntax.name}) holds fewer frames than "
                          f"NumberOfFrames = {layout.number_of_frames}: {decoded} of {unique.size} requested found")
    if unique.size == idx.size and np.array_equal(unique, idx):
        return out  # already unique and in order: no second copy
    return out[inverse.reshape(-1)]
