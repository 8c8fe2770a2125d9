"""Native Pixel Data left in its file: read by byte range through an open file descriptor.

:func:`~monai_dicomseg.seg.reader.read_segmentation_dataset` parses a large
file with native (not encapsulated, PS3.5 A.4) Pixel Data without loading the
Pixel Data value. The data set keeps a :class:`FilePixelData` as its
``buffer`` (the attribute pydicom reads deferred elements from) and a deferred
``RawDataElement`` (value ``None``) for Pixel Data, so:

* the decoder reads only the byte ranges of the frames it decodes
  (:func:`~monai_dicomseg.codec.decode.pixel_bytes`: one ``os.pread`` per run
  of adjacent frames);
* anything that needs the whole value (``dataset.PixelData``,
  ``pixel_array``, pydicom's writer) gets it through pydicom's deferred read,
  once: pydicom then replaces the element by the loaded one.

The descriptor stays open until :meth:`PixelSource.close` or garbage
collection, so the bytes stay readable when the file is deleted or replaced
by a rename (a cache evicting it, a temporary folder removed). A file
truncated by someone else gives a :class:`~monai_dicomseg.errors.DecodeError`
naming the file and byte range, never a short array (no ``mmap``, so never a
``SIGBUS`` either).

Copies: ``copy.deepcopy`` duplicates the descriptor (``os.dup``; both copies
read the same open file). Pickling reads the element's bytes at that moment
and carries them: the unpickled source is a :class:`BytesPixelData` serving
the same ranges from memory.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

from monai_dicomseg.errors import DecodeError

__all__ = ["PixelSource", "FilePixelData", "BytesPixelData", "batched"]

_MAX_READ = 1 << 30  # one pread at most this many bytes (Linux caps a single read near 2 GiB)


def batched(pieces: "Iterator[Any]", limit: int) -> "Iterator[Any]":
    """``pieces`` (bytes-like) joined into writes of about ``limit`` bytes, in order.

    A piece of ``limit`` bytes or more that arrives with nothing pending passes
    through uncopied; smaller ones are gathered until they reach ``limit``.
    """
    pending: list[Any] = []
    pending_bytes = 0
    for piece in pieces:
        if len(piece) >= limit and not pending:
            yield piece
            continue
        pending.append(piece)
        pending_bytes += len(piece)
        if pending_bytes >= limit:
            yield b"".join(pending)
            pending, pending_bytes = [], 0
    if pending:
        yield b"".join(pending)


class PixelSource:
    """Bytes of one Pixel Data element, addressed by absolute file position.

    Parameters
    ----------
    element_start
        File position of the element's tag (where pydicom's deferred read seeks).
    value_start, length
        File position and byte length of the element's value.
    name
        What to call the file in messages.

    Also a minimal read-only file object (``seek``/``tell``/``read``) over the
    file, for pydicom's deferred read of the whole element.
    """

    frame_store: Any = None
    """The :class:`~monai_dicomseg.codec.frame_store.FrameStore` the value's frames are read from, when the
    encoder kept them in one (a write of a SEG used once may let it release them: ``save_as(...,
    release_frames=True)``); None otherwise."""

    def __init__(self, element_start: int, value_start: int, length: int, name: str) -> None:
        self.element_start = int(element_start)
        self.value_start = int(value_start)
        self.length = int(length)
        self.name = name
        self._position = 0

    # -- what subclasses provide ---------------------------------------------

    def _pread_into(self, view: memoryview, position: int) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Release the file (later reads raise :class:`DecodeError`)."""

    def _fresh_reader(self) -> Any:
        """Another reader of the same bytes (shared state, its own position): the copy of a streamed source."""
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other._position = 0
        return other

    # -- range reads ---------------------------------------------------------

    def _read_absolute(self, position: int, size: int) -> bytearray:
        out = bytearray(size)
        view = memoryview(out)
        done = 0
        while done < size:
            got = self._pread_into(view[done:done + _MAX_READ], position + done)
            if got <= 0:
                raise DecodeError(
                    f"{self.name}: cannot read bytes {position}..{position + size} (Pixel Data): the file "
                    f"ends after {done} of these {size} bytes (was it truncated after it was opened?)"
                )
            done += got
        return out

    def read_range(self, start: int, stop: int) -> bytearray:
        """Bytes ``[start, stop)`` of the Pixel Data value (0 = its first byte).

        Raises
        ------
        DecodeError
            If the range lies outside the value, or the file no longer holds it.
        """
        if not 0 <= start <= stop <= self.length:
            raise DecodeError(
                f"{self.name}: Pixel Data byte range {start}..{stop} is outside its value of {self.length} bytes"
            )
        return self._read_absolute(self.value_start + start, stop - start)

    def chunks(self, size: int) -> "Iterator[bytearray | bytes | memoryview]":
        """The whole value in order, in chunks of at most ``size`` bytes (what ``save_as`` writes)."""
        for start in range(0, self.length, size):
            yield self.read_range(start, min(start + size, self.length))

    # -- the file object pydicom's deferred read uses ------------------------

    @property
    def closed(self) -> bool:
        """Always ``False``: pydicom would otherwise re-open the file by name (perhaps another file now)."""
        return False

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._position}.get(whence)
        if base is None:
            raise DecodeError(f"{self.name}: seek whence={whence} is not supported on Pixel Data sources")
        self._position = base + int(offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def read(self, size: int = -1) -> bytes:
        """File-object read at the current position (``size`` bytes; ``-1``: to the end of Pixel Data)."""
        if size is None or size < 0:
            size = max(self.value_start + self.length - self._position, 0)
        data = self._read_bytes(self._position, size)
        self._position += size
        return data

    def _read_bytes(self, position: int, size: int) -> bytes:
        return bytes(self._read_absolute(position, size))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, value at {self.value_start}, {self.length} bytes)"


class FilePixelData(PixelSource):
    """Pixel Data read with ``os.pread`` from an open descriptor that this object owns.

    Parameters
    ----------
    fd
        An open, readable descriptor (closed by :meth:`close` or garbage collection).
    element_start, value_start, length, name
        As :class:`PixelSource`.
    """

    def __init__(self, fd: int, element_start: int, value_start: int, length: int, name: str) -> None:
        super().__init__(element_start, value_start, length, name)
        self._fd: int | None = fd
        self._lock = threading.Lock()  # only for systems without os.pread (lseek + read)

    def _pread_into(self, view: memoryview, position: int) -> int:
        fd = self._fd
        if fd is None:
            raise DecodeError(f"{self.name}: the Pixel Data source was closed; read the file again")
        try:
            if hasattr(os, "preadv"):
                return os.preadv(fd, [view], position)
            if hasattr(os, "pread"):
                data = os.pread(fd, len(view), position)
            else:  # pragma: no cover - Windows
                with self._lock:
                    os.lseek(fd, position, os.SEEK_SET)
                    data = os.read(fd, len(view))
        except OSError as exc:
            raise DecodeError(f"{self.name}: cannot read Pixel Data at byte {position}: {exc}") from exc
        view[: len(data)] = data
        return len(data)

    def _read_bytes(self, position: int, size: int) -> bytes:
        """One ``os.pread`` straight into a ``bytes`` (the whole-value load: no second copy)."""
        if self._fd is not None and hasattr(os, "pread") and size <= _MAX_READ:
            try:
                data = os.pread(self._fd, size, position)
            except OSError as exc:
                raise DecodeError(f"{self.name}: cannot read Pixel Data at byte {position}: {exc}") from exc
            if len(data) == size:
                return data
        return super()._read_bytes(position, size)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:  # pragma: no cover - already closed by someone else
                pass

    def __del__(self) -> None:
        self.close()

    def __deepcopy__(self, memo: dict[int, Any]) -> "FilePixelData":
        if self._fd is None:
            raise DecodeError(f"{self.name}: the Pixel Data source was closed; it cannot be copied")
        return FilePixelData(os.dup(self._fd), self.element_start, self.value_start, self.length, self.name)

    def __copy__(self) -> "FilePixelData":
        return self.__deepcopy__({})

    def __reduce__(self) -> tuple[Any, ...]:
        size = self.value_start + self.length - self.element_start
        data = bytes(self._read_absolute(self.element_start, size))
        return BytesPixelData, (data, self.element_start, self.value_start, self.length, self.name)


class BytesPixelData(PixelSource):
    """The same element served from memory (what a pickled :class:`FilePixelData` becomes).

    Parameters
    ----------
    data
        The element's bytes, from its tag to the end of its value.
    element_start, value_start, length, name
        As :class:`PixelSource`.
    """

    def __init__(self, data: bytes, element_start: int, value_start: int, length: int, name: str) -> None:
        super().__init__(element_start, value_start, length, name)
        self._data = data

    def _pread_into(self, view: memoryview, position: int) -> int:
        offset = position - self.element_start
        if offset < 0:
            return 0
        chunk = self._data[offset: offset + len(view)]
        view[: len(chunk)] = chunk
        return len(chunk)

    def __reduce__(self) -> tuple[Any, ...]:
        return BytesPixelData, (self._data, self.element_start, self.value_start, self.length, self.name)
