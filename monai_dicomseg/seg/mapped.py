"""Keep a memory-mapped input out of the resident set once it has been read.

A gigapixel label matrix given as a ``numpy.memmap`` is read band by band (or
plane by plane) by the encoder. The kernel keeps every page it has read
mapped into the process until the mapping is closed, so the resident set
(what ``top`` and ``VmHWM`` report) grows to the whole file even though each
band is needed only once per pass. :func:`release_leading_range` tells the
kernel (``madvise(MADV_DONTNEED)``) that a range of a *shared* mapping is not
needed now: its pages leave this process's resident set and stay in the page
cache; touching them again simply reads them again. Nothing is lost:
``MADV_DONTNEED`` on a shared mapping never discards data. Private
(copy-on-write, ``mode="c"``) mappings are left alone: there the call would
drop the caller's own modifications.
"""
from __future__ import annotations

import ctypes
import mmap
import sys
from typing import Any

import numpy as np

__all__ = ["release_leading_range"]

_MADV_DONTNEED = 4  # Linux, <sys/mman.h>
_SHARED_MODES = ("r", "r+", "w+", "readonly", "readwrite", "write")
_LIBC: Any = None


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL(None, use_errno=True)
            _LIBC.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC


def release_leading_range(array: Any, start: int, stop: int) -> bool:
    """Drop ``array[start:stop]`` (first axis) of a shared ``numpy.memmap`` from the resident set.

    Parameters
    ----------
    array
        Anything; only a C-contiguous ``numpy.memmap`` opened ``"r"``, ``"r+"``
        or ``"w+"`` is acted on.
    start, stop
        Range along the first axis (clipped to the array); only the whole
        pages inside it are released.

    Returns
    -------
    bool
        Whether the kernel was asked (False for other arrays, other
        platforms, private mappings, or a range smaller than a page).
    """
    if not isinstance(array, np.memmap) or not sys.platform.startswith("linux"):
        return False
    if getattr(array, "mode", None) not in _SHARED_MODES or not array.flags.c_contiguous or array.ndim == 0:
        return False
    libc = _libc()
    if not libc:
        return False
    length = int(array.shape[0])
    start, stop = max(0, int(start)), min(length, int(stop))
    if stop <= start:
        return False
    row_bytes = int(array.strides[0])
    first = array.ctypes.data + start * row_bytes
    last = array.ctypes.data + stop * row_bytes
    first = -(-first // mmap.PAGESIZE) * mmap.PAGESIZE  # whole pages only: neighbours stay untouched
    last = last // mmap.PAGESIZE * mmap.PAGESIZE
    if last <= first:
        return False
    return libc.madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), _MADV_DONTNEED) == 0
