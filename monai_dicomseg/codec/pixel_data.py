"""Native (uncompressed) Pixel Data of SEG frames (PS3.5 8.1.1, 8.2).

Frames are produced lazily by a callable so that a 100-segment BINARY
volume is never materialised as one boolean array: BINARY frames are packed
in groups of 8 (8 frames always end on a byte boundary, whatever R × C),
FRACTIONAL/LABELMAP frames are copied into one preallocated buffer.

Past :data:`STREAM_PIXEL_DATA_BYTES` the value is not built at construction
at all: :class:`StreamedPixelData` encodes the frames again when the SEG is
written, so writing needs memory for a few frames, not for the file.
"""
from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from monai_dicomseg.codec.bitpack import pack_bits, packed_length
from monai_dicomseg.codec.pixel_source import BytesPixelData, PixelSource, batched
from monai_dicomseg.codec.raw import pixel_data_header
from monai_dicomseg.errors import DecodeError, EncodeError

__all__ = ["encode_binary_frames", "encode_byte_frames", "join_frames", "STREAM_PIXEL_DATA_BYTES",
           "StreamedPixelData", "native_pixel_data_length", "install_pixel_source"]

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
        out.write(pack_bits(group[:count]))  # type: ignore[arg-type]  # an ndarray exports the buffer protocol (numpy's stubs declare __buffer__ only for Python >= 3.12); 8 frames end on a byte
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
        out.write(frame)  # type: ignore[arg-type]  # an ndarray exports the buffer protocol (numpy's stubs declare __buffer__ only for Python >= 3.12)
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


# -- Pixel Data encoded while it is written ---------------------------------

STREAM_PIXEL_DATA_BYTES = 64 << 20
"""Native Pixel Data of at least this many bytes is not built at construction: a :class:`StreamedPixelData`
encodes it from the input frames when the SEG is written (``save_as`` streams it frame by frame)."""

_BATCH_BYTES = 1 << 20  # small frames (tiles) are joined into writes of about this size


class StreamedPixelData(PixelSource):
    """Native SEG Pixel Data (PS3.5 8.1.1, 8.2) served from its frames, encoded on demand.

    Installed like the reader's :class:`~monai_dicomseg.codec.pixel_source.FilePixelData`
    (:func:`install_pixel_source`): the data set holds a deferred Pixel Data
    element and this object as its ``buffer``, so

    * ``save_as`` streams the value with :meth:`chunks` (one unit of frames
      at a time: 8 frames for BINARY, which always end on a byte; one frame
      otherwise) and the whole value never exists in memory;
    * the decoder reads byte ranges (:meth:`read_range`), encoding the frames
      that cover them;
    * ``dataset.PixelData``, ``pixel_array``, pydicom's own writer get the
      whole value through pydicom's deferred read (then held in memory).

    The frames come from the caller's array, which must not change before
    the SEG is written: a CRC-32 of every unit, taken here, is checked each
    time the unit is encoded again, and a difference raises
    :class:`~monai_dicomseg.errors.EncodeError` (``save_as`` to a path then
    leaves no file).

    Parameters
    ----------
    number_of_frames, rows, columns
        Output geometry.
    bits_allocated
        1 (BINARY, bit-packed), 8 or 16 (little endian).
    get_frame
        ``get_frame(i)`` returns frame ``i`` as ``(R, C)``: bool for 1 bit,
        integers otherwise (stored as ``uint8`` / ``<u2``).
    vr
        ``"OB"`` or ``"OW"``.
    name
        What to call the data in messages.
    verify
        Take a CRC-32 of every unit now and check it each time the unit is
        encoded again (the caller's array may change). False for frames the
        encoder itself keeps (:class:`~monai_dicomseg.codec.frame_store.FrameStore`):
        no one else can change them, and the pass over them is saved.

    Raises
    ------
    ValueError
        If a frame does not have shape ``(R, C)``.
    """

    def __init__(self, number_of_frames: int, rows: int, columns: int, bits_allocated: int,
                 get_frame: Callable[[int], np.ndarray], vr: str, name: str = "Pixel Data from pixel_array",
                 verify: bool = True) -> None:
        self._frames, self._rows, self._columns = int(number_of_frames), int(rows), int(columns)
        self._get_frame = get_frame
        if bits_allocated == 1:
            self._unit_frames, self._unit_bytes = _GROUP, self._rows * self._columns  # 8 frames of R*C bits
            self._dtype = np.dtype(bool)
            size = (self._frames * self._rows * self._columns + 7) // 8
        else:
            self._dtype = np.dtype(f"<u{bits_allocated // 8}")
            self._unit_frames = 1
            self._unit_bytes = self._rows * self._columns * self._dtype.itemsize
            size = self._frames * self._unit_bytes
        self._data_size = size
        length = size + size % 2
        self._header = pixel_data_header(vr, length)
        super().__init__(0, len(self._header), length, name)
        self.vr = vr
        units = -(-self._frames // self._unit_frames)
        self._checksums: np.ndarray | None = None
        if verify:
            self._checksums = np.fromiter((zlib.crc32(self._encode_unit(u)) for u in range(units)),
                                          dtype=np.uint32, count=units)

    # -- encoding ------------------------------------------------------------

    def _encode_unit(self, unit: int) -> memoryview:
        """Value bytes of unit ``unit`` (8 frames packed, or one frame), as encoded today."""
        first = unit * self._unit_frames
        count = min(self._unit_frames, self._frames - first)
        if self._dtype.kind == "b":
            group = np.empty((count, self._rows, self._columns), dtype=bool)
            for offset in range(count):
                group[offset] = self._get_frame(first + offset)
            return pack_bits(group).data
        frame = np.ascontiguousarray(np.asarray(self._get_frame(first)).astype(self._dtype, copy=False))
        if frame.shape != (self._rows, self._columns):
            raise ValueError(f"frame {first} has shape {frame.shape}; expected {(self._rows, self._columns)}")
        return frame.data.cast("B")

    def _checked_unit(self, unit: int) -> memoryview:
        data = self._encode_unit(unit)
        if self._checksums is not None and zlib.crc32(data) != int(self._checksums[unit]):
            first = unit * self._unit_frames
            last = min(first + self._unit_frames, self._frames)
            frames = f"frame {last}" if last == first + 1 else f"frames {first + 1}-{last}"
            raise EncodeError(
                f"pixel_array changed after the Segmentation was constructed: {frames} of the Pixel Data "
                f"no longer match what was validated. Native Pixel Data of "
                f"STREAM_PIXEL_DATA_BYTES = {STREAM_PIXEL_DATA_BYTES} bytes or more is encoded from pixel_array "
                "when written (save_as); do not modify the array before that, or pass a copy"
            )
        return data

    def _value_pieces(self, start: int, stop: int) -> Iterator[memoryview | bytes]:
        """The value bytes ``[start, stop)`` in pieces of at most one unit (checked against the CRC)."""
        position = start
        unit = start // self._unit_bytes
        while position < min(stop, self._data_size):
            unit_start = unit * self._unit_bytes
            data = self._checked_unit(unit)
            piece = data[position - unit_start: min(stop, unit_start + len(data)) - unit_start]
            yield piece
            position += len(piece)
            unit += 1
        if stop > position:
            yield bytes(stop - position)  # the even-length padding

    def _pieces(self, position: int, size: int) -> Iterator[memoryview | bytes]:
        """Bytes ``[position, position + size)`` of the element (header, then value), clipped to its end."""
        stop = min(position + size, self.value_start + self.length)
        if position < self.value_start:
            yield self._header[position: min(stop, self.value_start)]
        start = max(position, self.value_start)
        if stop > start:
            yield from self._value_pieces(start - self.value_start, stop - self.value_start)

    # -- PixelSource ---------------------------------------------------------

    def _pread_into(self, view: memoryview, position: int) -> int:
        done = 0
        for piece in self._pieces(position, len(view)):
            view[done: done + len(piece)] = piece
            done += len(piece)
        return done

    def _read_bytes(self, position: int, size: int) -> bytes:
        """Grown in one buffer handed over as ``bytes`` (the whole-value load: no second copy)."""
        out = io.BytesIO()
        for piece in self._pieces(position, size):
            out.write(piece)
        if out.tell() != size:
            raise DecodeError(f"{self.name}: cannot read bytes {position}..{position + size}: the element "
                              f"ends at {self.value_start + self.length}")
        return out.getvalue()

    def chunks(self, size: int) -> Iterator[memoryview | bytes]:
        """The value in order, frame unit by frame unit (small units joined up to about ``size`` bytes)."""
        return batched(self._value_pieces(0, self.length), min(size, _BATCH_BYTES))

    # -- copies --------------------------------------------------------------

    def __copy__(self) -> "StreamedPixelData":
        """Another reader of the same frames (own position; the frames and checksums are shared)."""
        return self._fresh_reader()

    def __deepcopy__(self, memo: dict[int, Any]) -> "StreamedPixelData":
        """As :meth:`__copy__`: the input array is not duplicated (it must stay unchanged anyway)."""
        return self.__copy__()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as the encoded element (what the frames give now, checked), like a pickled ``FilePixelData``."""
        data = self._read_bytes(0, self.value_start + self.length)
        return BytesPixelData, (data, 0, self.value_start, self.length, self.name)


def native_pixel_data_length(number_of_frames: int, rows: int, columns: int, bits_allocated: int) -> int:
    """Byte length of native Pixel Data (PS3.5 8.1.1, 8.2), padded to even."""
    size = (number_of_frames * rows * columns * bits_allocated + 7) // 8
    return size + size % 2


def install_pixel_source(dataset: Any, source: PixelSource, element_length: int | None = None) -> None:
    """Give ``dataset`` a deferred Pixel Data element served by ``source`` (its ``buffer``).

    The element is what :func:`~monai_dicomseg.codec.decode.deferred_pixel_source`
    recognises: a ``RawDataElement`` with value ``None`` (explicit VR, little
    endian: the form of the bytes ``source`` serves). ``source`` has a ``vr``;
    ``element_length`` is the element's length field (default: the value's
    length; ``0xFFFFFFFF`` for encapsulated Pixel Data, PS3.5 A.4).
    """
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    tag = Tag("PixelData")
    length = source.length if element_length is None else element_length
    dataset[tag] = RawDataElement(tag, source.vr, length, None, source.value_start, False, True)  # type: ignore[attr-defined]  # the streamed sources set vr (OB / OW); PixelSource itself has none
    dataset.filename = None
    dataset.fileobj_type = None
    dataset.timestamp = None
    dataset.buffer = source
