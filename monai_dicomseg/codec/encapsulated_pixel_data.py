"""Encapsulated Pixel Data (PS3.5 A.4) served item by item from its compressed frames, never joined.

The value is a Basic Offset Table item, then one fragment item per frame
(each padded to even length), as :func:`~monai_dicomseg.codec.compression.encapsulate_frames`
builds it in memory. Past :data:`~monai_dicomseg.codec.pixel_data.STREAM_PIXEL_DATA_BYTES`
:func:`set_encapsulated_pixel_data` installs a :class:`StreamedEncapsulatedPixelData`
instead: the data set holds a deferred Pixel Data element (undefined length)
and this source as its ``buffer``, so ``save_as`` writes the items straight
from the frames (which may themselves be read one at a time from a
:class:`~monai_dicomseg.codec.frame_store.FrameStore` file) and the joined
value never exists. Anything that needs the whole value (``dataset.PixelData``,
``pixel_array``, pydicom's writer) gets it through pydicom's deferred read of
an undefined-length element (header, items, Sequence Delimitation Item).
"""
from __future__ import annotations

import io
import struct
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from monai_dicomseg.codec.pixel_source import BytesPixelData, PixelSource, batched

__all__ = ["StreamedEncapsulatedPixelData", "set_encapsulated_pixel_data", "encapsulated_length"]

_ITEM = b"\xfe\xff\x00\xe0"  # (FFFE,E000) Item tag, little endian
_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # (FFFE,E0DD) Sequence Delimitation Item, length 0
_HEADER = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF)  # Pixel Data, OB, undefined length
_BASIC_OFFSET_LIMIT = 1 << 32  # a Basic Offset Table entry is 32 bits (PS3.5 A.4)
_BATCH_BYTES = 1 << 20  # small pieces (item headers, tiles) are joined into writes of about this size


def _padded(lengths: np.ndarray) -> np.ndarray:
    return lengths + lengths % 2


def encapsulated_length(lengths: np.ndarray, basic_offset_table: bool) -> int:
    """Byte length of the encapsulated value of frames of ``lengths`` (BOT item, fragment items)."""
    table = 4 * len(lengths) if basic_offset_table else 0
    return 8 + table + int((_padded(lengths) + 8).sum())


def _offsets(lengths: np.ndarray) -> np.ndarray:
    """Offset of each frame's item from the first item after the Basic Offset Table (PS3.5 A.4)."""
    steps = _padded(lengths) + 8
    return np.concatenate([[0], np.cumsum(steps)[:-1]]).astype(np.uint64)


class StreamedEncapsulatedPixelData(PixelSource):
    """Encapsulated SEG Pixel Data (PS3.5 A.4) served from its compressed frames, item by item.

    Parameters
    ----------
    frames
        A sequence of bytes-like compressed frames (``len(frames)``,
        ``frames[i]``); each frame is read when served, never kept.
    lengths
        ``(N,)`` int byte lengths of the frames (unpadded).
    basic_offset_table
        Whether the Basic Offset Table item lists the frame offsets (False:
        an empty item, the Extended Offset Table being used).
    name
        What to call the data in messages.

    Notes
    -----
    The element it serves (:meth:`_pread_into`, from position 0) is the
    Pixel Data header with undefined length, the value, then the Sequence
    Delimitation Item; :attr:`length` and :meth:`chunks` are the value only
    (what ``Segmentation.save_as`` writes between its own header and
    delimiter).
    """

    def __init__(self, frames: Sequence[Any], lengths: np.ndarray, basic_offset_table: bool,
                 name: str = "encapsulated Pixel Data of the encoded frames") -> None:
        self._frames = frames
        self._lengths = np.asarray(lengths, dtype=np.int64)
        if self._lengths.shape != (len(frames),):
            raise ValueError(f"lengths has shape {self._lengths.shape}; expected ({len(frames)},), one per frame")
        table = _offsets(self._lengths).astype("<u4").tobytes() if basic_offset_table else b""
        self._table_item = _ITEM + struct.pack("<I", len(table)) + table
        steps = _padded(self._lengths) + 8
        # value position of each frame's item: after the table item, then the items before it
        self._starts = len(self._table_item) + np.concatenate([[0], np.cumsum(steps)]).astype(np.int64)
        length = int(self._starts[-1])
        super().__init__(0, len(_HEADER), length, name)
        self.vr = "OB"

    # -- frames --------------------------------------------------------------

    @property
    def number_of_frames(self) -> int:
        """How many frames (one fragment item each) the value holds."""
        return len(self._lengths)

    def frame_length(self, index: int) -> int:
        """Byte length of compressed frame ``index`` (0-based, unpadded)."""
        return int(self._lengths[index])

    def frame(self, index: int) -> Any:
        """Compressed frame ``index`` (0-based), read from the frames now (bytes-like, its planned length).

        Raises
        ------
        EncodeError
            If the frame no longer has the length the value was laid out with.
        """
        data = self._frames[index]
        size = int(self._lengths[index])
        if len(data) != size:
            from monai_dicomseg.errors import EncodeError

            raise EncodeError(f"compressed frame {index + 1} has {len(data)} bytes; {size} were planned "
                              "(the frames changed after the Pixel Data was laid out)")
        return data

    def subset_value(self, indices: Sequence[int]) -> bytes:
        """An encapsulated value (empty Basic Offset Table, one item per frame, PS3.5 A.4) of frames ``indices``
        alone, in that order: what a decoder needs to decode those frames without the whole value."""
        out = io.BytesIO()
        out.write(_ITEM + struct.pack("<I", 0))
        for index in indices:
            for piece in self._item(int(index)):
                out.write(piece)
        return out.getvalue()

    # -- pieces --------------------------------------------------------------

    def _item(self, index: int) -> Iterator[bytes | memoryview]:
        """Item ``index``: header, frame bytes, padding."""
        data = self.frame(index)
        size = int(self._lengths[index])
        yield _ITEM + struct.pack("<I", size + size % 2)
        yield memoryview(data).cast("B") if not isinstance(data, bytes) else data
        if size % 2:
            yield b"\x00"

    def _value_pieces(self, start: int, stop: int) -> Iterator[bytes | memoryview]:
        """Value bytes ``[start, stop)`` in pieces (the table item, then items)."""
        table = self._table_item
        if start < len(table):
            yield table[start:min(stop, len(table))]
        first = max(int(np.searchsorted(self._starts, start, side="right")) - 1, 0)
        for index in range(first, len(self._lengths)):
            item_start = int(self._starts[index])
            if item_start >= stop:
                return
            position = item_start
            for piece in self._item(index):
                low, high = max(start, position), min(stop, position + len(piece))
                if low < high:
                    yield piece[low - position:high - position]
                position += len(piece)

    def _pieces(self, position: int, size: int) -> Iterator[bytes | memoryview]:
        """Element bytes ``[position, position + size)`` (header, value, delimiter), clipped to the end."""
        stop = position + size
        if position < self.value_start:
            yield _HEADER[position:min(stop, self.value_start)]
        value_start, value_stop = max(position, self.value_start), min(stop, self.value_start + self.length)
        if value_start < value_stop:
            yield from self._value_pieces(value_start - self.value_start, value_stop - self.value_start)
        end = self.value_start + self.length
        low, high = max(position, end), min(stop, end + len(_DELIMITER))
        if low < high:
            yield _DELIMITER[low - end:high - end]

    # -- PixelSource ---------------------------------------------------------

    def _pread_into(self, view: memoryview, position: int) -> int:
        done = 0
        for piece in self._pieces(position, len(view)):
            view[done:done + len(piece)] = piece
            done += len(piece)
        return done

    def _read_bytes(self, position: int, size: int) -> bytes:
        """What a file would give: up to ``size`` bytes, fewer at the end of the element (pydicom reads past
        the Sequence Delimitation Item while looking for it)."""
        out = io.BytesIO()
        for piece in self._pieces(position, size):
            out.write(piece)
        return out.getvalue()

    def read_range(self, start: int, stop: int) -> bytearray:
        """Value bytes ``[start, stop)``."""
        out = bytearray()
        for piece in self._value_pieces(start, stop):
            out += piece
        return out

    def chunks(self, size: int) -> Iterator[bytes | memoryview]:
        """The value in order, item by item (small pieces joined up to about ``size`` bytes)."""
        return batched(self._value_pieces(0, self.length), min(size, _BATCH_BYTES))

    # -- copies --------------------------------------------------------------

    def __copy__(self) -> "StreamedEncapsulatedPixelData":
        """Another reader of the same frames (own position)."""
        return self._fresh_reader()

    def __deepcopy__(self, memo: dict[int, Any]) -> "StreamedEncapsulatedPixelData":
        """As :meth:`__copy__`: the frames are not duplicated."""
        return self.__copy__()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as the element's bytes (header, value, delimiter)."""
        data = self._read_bytes(0, self.value_start + self.length + len(_DELIMITER))
        return BytesPixelData, (data, 0, self.value_start, self.length, self.name)


def set_encapsulated_pixel_data(dataset: Any, frames: Sequence[Any], use_extended_offset_table: bool = False,
                                lengths: "np.ndarray | None" = None) -> None:
    """Give ``dataset`` encapsulated Pixel Data (PS3.5 A.4) of ``frames``, one fragment per frame.

    The Extended Offset Table (ExtendedOffsetTable, ExtendedOffsetTableLengths,
    PS3.3 C.7.6.3) is written when asked or when the value reaches the 32-bit
    Basic Offset Table's limit. At or past
    :data:`~monai_dicomseg.codec.pixel_data.STREAM_PIXEL_DATA_BYTES` the value is
    served from ``frames`` when written (:class:`StreamedEncapsulatedPixelData`);
    below it, it is built in memory.

    Parameters
    ----------
    dataset
        The SEG being built.
    frames
        Compressed frames (a sequence of bytes-like; may read each on access).
    use_extended_offset_table
        Ask for the Extended Offset Table.
    lengths
        ``(N,)`` frame byte lengths when known (else one ``len(frames[i])`` pass).
    """
    from monai_dicomseg.codec import pixel_data
    from monai_dicomseg.codec.compression import encapsulate_frames

    if lengths is None:
        lengths = np.array([len(frames[index]) for index in range(len(frames))], dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    items = int((_padded(lengths) + 8).sum())  # the rule of encapsulate_frames: items past 32 bits need the EOT
    extended = bool(use_extended_offset_table) or items >= _BASIC_OFFSET_LIMIT
    if encapsulated_length(lengths, not extended) < pixel_data.STREAM_PIXEL_DATA_BYTES:
        data, table = encapsulate_frames([frames[index] for index in range(len(frames))], use_extended_offset_table)
        if table is not None:
            dataset.ExtendedOffsetTable, dataset.ExtendedOffsetTableLengths = table
        dataset.add_new("PixelData", "OB", data)
        dataset["PixelData"].is_undefined_length = True
        return
    if extended:
        dataset.ExtendedOffsetTable = _offsets(lengths).astype("<u8").tobytes()
        dataset.ExtendedOffsetTableLengths = _padded(lengths).astype("<u8").tobytes()
    source = StreamedEncapsulatedPixelData(frames, lengths, basic_offset_table=not extended)
    pixel_data.install_pixel_source(dataset, source, element_length=0xFFFFFFFF)  # undefined length (PS3.5 A.4)
