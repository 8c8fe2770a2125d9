"""Atomic file writing: a file is either complete or absent, never half-written."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from monai_dicomseg.errors import InputError

__all__ = ["atomic_write"]


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None], overwrite: bool = True) -> Path:
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
    handle, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part", dir=folder)
    try:
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
