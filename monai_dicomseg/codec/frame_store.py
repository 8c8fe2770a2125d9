"""Encoded SEG frames kept between the validation pass and the write: in memory, then in a temporary file.

The encoder of a streamed stacked input (:class:`~monai_dicomseg.seg.inputs.StackedSegmentSource`,
the writer's resampled model outputs) computes every frame once, in the order
the blocks come (a slab of planes, all segments), while the Pixel Data value
lists them in the frame plan's order (segment by segment, PS3.3 C.7.6.17). The
frames wait here in between. Up to ``memory_bytes`` (by default
:data:`~monai_dicomseg.codec.pixel_data.STREAM_PIXEL_DATA_BYTES`, read when the
store is made) they stay in memory; past it they are appended to an anonymous
temporary file (``tempfile.TemporaryFile``: no name on disk, removed by the OS
when closed or when the process ends), so a 2 GB FRACTIONAL output needs a few
frames of memory, not 2 GB.

A SEG written once and dropped (:meth:`DicomSegWriter.write
<monai_dicomseg.io.writer.DicomSegWriter.write>`, the CLI) lets the store
release each frame as it is read for the file (:meth:`FrameStore.release_when_read`):
the frame's whole blocks of the temporary file are deallocated
(``fallocate(FALLOC_FL_PUNCH_HOLE)`` on Linux; elsewhere the bytes stay until
:meth:`FrameStore.close`). Without it, a 2 GB output exists twice as dirty
page-cache pages (the store's and the output file's) and the kernel throttles
the writer to the disk's speed (``vm.dirty_ratio``); with it, the store's
pages are dropped before the kernel ever writes them back.
"""
from __future__ import annotations

import ctypes
import os
import sys
import tempfile
from collections.abc import Hashable
from typing import Any

import numpy as np

from monai_dicomseg.errors import EncodeError

__all__ = ["FrameStore", "punch_hole"]

_FALLOC_FL_KEEP_SIZE, _FALLOC_FL_PUNCH_HOLE = 0x01, 0x02  # <linux/falloc.h>
_FALLOCATE: list[Any] = []  # [libc fallocate or None], resolved on first use


def _fallocate() -> Any:
    if not _FALLOCATE:
        function = None
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                # glibc: fallocate64 takes 64-bit offsets everywhere; musl has only fallocate (64-bit off_t)
                function = getattr(libc, "fallocate64", None)
                if function is None and ctypes.sizeof(ctypes.c_void_p) == 8:
                    function = libc.fallocate
            except (OSError, AttributeError):
                function = None
            if function is not None:
                function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
                function.restype = ctypes.c_int
        _FALLOCATE.append(function)
    return _FALLOCATE[0]


def punch_hole(fd: int, offset: int, size: int, block: int) -> bool:
    """Deallocate the whole ``block``-byte blocks inside ``[offset, offset + size)`` of file ``fd``.

    Only blocks lying entirely in the range are released (their bytes read as
    zeros afterwards); a partial block at either end, shared with a
    neighbouring frame, is left as it is. The file keeps its size.

    Returns
    -------
    bool
        Whether blocks were released: False on a platform or file system
        without hole punching (the bytes then simply stay), or when the range
        holds no whole block.
    """
    start = -(-offset // block) * block
    stop = (offset + size) // block * block
    function = _fallocate()
    if function is None or stop <= start:
        return False
    return function(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, start, stop - start) == 0


class FrameStore:
    """Bytes of encoded frames by key, copied in; past a memory budget written to a temporary file.

    Parameters
    ----------
    memory_bytes
        Bytes kept in memory before frames go to the temporary file (None:
        :data:`~monai_dicomseg.codec.pixel_data.STREAM_PIXEL_DATA_BYTES`).
    directory
        Folder of the temporary file (None: :func:`tempfile.gettempdir`, i.e.
        ``TMPDIR``).

    Notes
    -----
    :meth:`put` copies the bytes, so a caller may reuse its buffer at once.
    A key stored twice keeps its last value. Not thread-safe: one writer.
    After :meth:`release_when_read`, :meth:`get` hands each frame out once.
    """

    def __init__(self, memory_bytes: int | None = None, directory: str | None = None) -> None:
        if memory_bytes is None:
            from monai_dicomseg.codec import pixel_data

            memory_bytes = pixel_data.STREAM_PIXEL_DATA_BYTES
        self.memory_bytes = int(memory_bytes)
        self.directory = directory
        self._memory: dict[Hashable, bytes] = {}
        self._memory_used = 0
        self._on_disk: dict[Hashable, tuple[int, int]] = {}
        self._file: Any = None
        self._end = 0
        self._closed = False
        self._release = False
        self._released: dict[Hashable, int] = {}  # key -> byte length, of frames handed out and let go
        self._block = 4096

    # -- writing -------------------------------------------------------------

    def put(self, key: Hashable, data: Any) -> None:
        """Keep a copy of ``data`` (bytes-like, or a C-contiguous array whose buffer is the frame's bytes)."""
        self._check_open()
        view = memoryview(np.ascontiguousarray(data) if isinstance(data, np.ndarray) else data).cast("B")  # type: ignore[arg-type]  # an ndarray exports the buffer protocol (numpy's stubs declare __buffer__ only for Python >= 3.12)
        self.discard(key)
        if self._memory_used + len(view) <= self.memory_bytes:
            self._memory[key] = bytes(view)
            self._memory_used += len(view)
            return
        try:
            if self._file is None:
                self._file = tempfile.TemporaryFile(dir=self.directory)
                self._block = max(1, os.fstat(self._file.fileno()).st_blksize)
            done = 0
            while done < len(view):  # os.pwrite may write less than asked (large values, signals)
                done += os.pwrite(self._file.fileno(), view[done:], self._end + done)
        except OSError as error:  # a full or read-only temporary folder: say where, and what to change
            folder = self.directory or tempfile.gettempdir()
            raise EncodeError(
                f"cannot keep encoded frames in a temporary file in {folder!r} ({error}); {self._end} bytes were "
                "written there before. Free space there or set TMPDIR to a folder with room for the Pixel Data"
            ) from error
        self._on_disk[key] = (self._end, len(view))
        self._end += len(view)

    def discard(self, key: Hashable) -> None:
        """Forget ``key`` (its bytes in the file stay until :meth:`close`)."""
        data = self._memory.pop(key, None)
        if data is not None:
            self._memory_used -= len(data)
        self._on_disk.pop(key, None)
        self._released.pop(key, None)

    def release_when_read(self) -> None:
        """From now on, :meth:`get` lets each frame go once it has been read.

        For a SEG written once and dropped: memory frames are freed and the
        file's blocks under a disk frame are deallocated (:func:`punch_hole`)
        as the write reads them, so the frames never exist twice in the page
        cache. A second :meth:`get` of a released frame raises
        :class:`~monai_dicomseg.errors.EncodeError`; :meth:`length` still
        answers.
        """
        self._release = True

    # -- reading -------------------------------------------------------------

    def __contains__(self, key: Hashable) -> bool:
        return key in self._memory or key in self._on_disk or key in self._released

    def __len__(self) -> int:
        return len(self._memory) + len(self._on_disk) + len(self._released)

    def length(self, key: Hashable) -> int | None:
        """Byte length of the frame of ``key`` (None when absent), without reading it."""
        data = self._memory.get(key)
        if data is not None:
            return len(data)
        place = self._on_disk.get(key)
        if place is None:
            return self._released.get(key)
        return place[1]

    def _check_open(self) -> None:
        if self._closed:
            why = (" (the SEG was written once, Segmentation.save_as(..., release_frames=True): build it again to "
                   "read its Pixel Data)") if self._release else ""
            raise EncodeError(f"the frame store was closed: its frames can no longer be read or added{why}")

    def get(self, key: Hashable) -> bytes | None:
        """The frame's bytes (None when absent); read from the file when it is there.

        Raises
        ------
        EncodeError
            After :meth:`close`, or when the temporary file lost bytes.
        """
        self._check_open()
        data = self._memory.get(key)
        if data is not None:
            if self._release:
                self.discard(key)
                self._released[key] = len(data)
            return data
        place = self._on_disk.get(key)
        if place is None:
            if key in self._released:
                raise EncodeError(f"frame {key!r} was released when it was written (a SEG written once, "
                                  "Segmentation.save_as(..., release_frames=True)): build the SEG again to read "
                                  "its Pixel Data")
            return None
        offset, size = place
        data = os.pread(self._file.fileno(), size, offset)
        if len(data) != size:
            raise EncodeError(f"the frame store's temporary file returned {len(data)} of {size} bytes at "
                              f"offset {offset}: it was truncated")
        if self._release:
            del self._on_disk[key]
            self._released[key] = size
            punch_hole(self._file.fileno(), offset, size, self._block)
        return data

    def pop(self, key: Hashable) -> bytes | None:
        """:meth:`get`, then forget the key (memory frames are released at once)."""
        data = self.get(key)
        self.discard(key)
        return data

    @property
    def spilled(self) -> bool:
        """Whether frames went to the temporary file."""
        return self._file is not None

    @property
    def nbytes(self) -> int:
        """Bytes of the frames held (in memory and in the file; released frames not counted)."""
        return self._memory_used + sum(size for _, size in self._on_disk.values())

    def close(self) -> None:
        """Release the memory and the temporary file (later :meth:`get` / :meth:`put` raise EncodeError)."""
        self._closed = True
        self._memory.clear()
        self._memory_used = 0
        self._released.clear()
        if self._file is not None:
            self._file.close()
            self._file = None

    def __del__(self) -> None:
        file = getattr(self, "_file", None)
        if file is not None:
            file.close()

    def __repr__(self) -> str:
        return (f"FrameStore({len(self)} frames, {self._memory_used} bytes in memory, "
                f"{self._end} bytes written to {'a temporary file' if self.spilled else 'no file'})")
