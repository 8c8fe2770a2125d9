"""Atomic file writing: a file is either complete or absent, never half-written.

Every file the package writes (SEG, NIfTI, JSON sidecars) goes through
:func:`atomic_write`: the content is written to a temporary file
``.<name>.<random>.part`` in the destination folder, then renamed onto the
destination. The finished file gets the permissions of a normally opened file,
``0o666 & ~umask`` (0644 under the usual umask 022), not the 0600 of
:func:`tempfile.mkstemp`, so a PACS forwarder running as another user can read
it.

Clean-up rule for temporaries left by a killed process: the first atomic
write into a folder (and then at most every :data:`CLEANUP_INTERVAL_S`
seconds per folder and process) removes files in that folder that match the
temporary pattern ``.<name>.<8 characters of [a-z0-9_]>.part`` and were last
modified more than :data:`STALE_AFTER_S` seconds ago (one hour: no live write
takes that long to receive a byte). Nothing else is ever removed;
:func:`remove_stale_temporaries` does the same on demand.
"""
from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from monai_dicomseg.errors import InputError

__all__ = ["atomic_write", "file_mode", "current_umask", "remove_stale_temporaries", "STALE_AFTER_S",
           "CLEANUP_INTERVAL_S", "TEMPORARY_PATTERN"]

#: Temporaries older than this (seconds since their last modification) are stale.
STALE_AFTER_S = 3600.0
#: A folder is scanned for stale temporaries at most this often per process.
CLEANUP_INTERVAL_S = 600.0
#: Names of our temporaries: ``.<name>.<mkstemp's 8 random characters>.part``.
TEMPORARY_PATTERN = re.compile(r"^\..+\.[a-z0-9_]{8}\.part$")

_UMASK_LOCK = threading.Lock()
_CLEANED: dict[str, float] = {}
_CLEANED_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where possible.

    ``/proc/self/status`` (Linux) gives it race-free; elsewhere it is read by
    the ``os.umask`` round trip under a lock (other threads of this package
    never see the temporary value because they read it through here too).
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """Permissions of a file created normally now: ``0o666 & ~umask``."""
    return 0o666 & ~current_umask()


def remove_stale_temporaries(folder: "str | os.PathLike[str]", max_age_s: float = STALE_AFTER_S,
                             now: "float | None" = None) -> list[Path]:
    """Remove our temporaries in ``folder`` not modified for ``max_age_s`` seconds; return them.

    Only regular files whose name matches :data:`TEMPORARY_PATTERN` are
    considered; errors (a file removed meanwhile, no permission) are ignored.
    """
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(".") or not TEMPORARY_PATTERN.match(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False) or now - entry.stat(follow_symlinks=False).st_mtime < max_age_s:
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _clean_now(folder: Path) -> None:
    key = os.path.abspath(folder)
    now = time.monotonic()
    with _CLEANED_LOCK:
        last = _CLEANED.get(key)
        if last is not None and now - last < CLEANUP_INTERVAL_S:
            return
        _CLEANED[key] = now
    remove_stale_temporaries(folder)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object], overwrite: bool = True) -> Path:
    """Write a file through a temporary file in the same folder, then rename it.

    Parameters
    ----------
    path
        Destination file.
    write
        Called with an open binary file; writes the content.
    overwrite
        If False and ``path`` exists, raise instead of replacing it.

    Raises
    ------
    FileExistsError
        ``overwrite`` is False and the destination exists.
    InputError
        The destination folder does not exist.
    """
    destination = Path(path)
    folder = destination.parent if str(destination.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"cannot write {destination}: folder {folder} does not exist")
    if not overwrite and destination.exists():
        raise FileExistsError(f"{destination} exists and overwrite is False")
    _clean_now(folder)
    handle, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part", dir=folder)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(handle, file_mode())  # mkstemp's 0600 -> what open() would give
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        if not overwrite:
            # link fails if the destination appeared meanwhile: no silent overwrite
            os.link(temporary, destination)
            os.unlink(temporary)
        else:
            os.replace(temporary, destination)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return destination
