"""A local, size-bounded cache of DICOM instances keyed by SOP Instance UID.

Layout under ``root``::

    instances/<2 hex>/<SOPInstanceUID>.dcm     the instance as retrieved (Part 10 file)
    instances/<2 hex>/<SOPInstanceUID>.json    {"size": n, "sha256": "..."}   (written after the .dcm)
    instances/<2 hex>/<SOPInstanceUID>.<variant>.dcm   a derived instance, e.g. ``segments-<digest>``:
                                               a SEG holding only the frames of some segments
    instances/<2 hex>/<SOPInstanceUID>.metadata.djson  the instance's WADO-RS metadata (DICOM JSON)
                                               (each with its own ``.json`` sidecar)
    series/<SeriesInstanceUID>.json            manifest: study, series, SOP Instance UIDs, SOP classes
    locks/<name>.lock                          fcntl file locks

Safety with several DataLoader workers and processes at once:

* every file is written to a temporary name in the same folder and
  ``os.replace``-d into place (atomic on POSIX): a reader never sees half a file;
* a per-series lock (``fcntl.flock``, cross-process) is held while a series is
  fetched, so two workers that want the same series fetch it once;
* eviction (least recently used first, by modification time, which a hit
  refreshes) runs under a global lock and never removes the series being inserted.

Verified on read: an entry counts only when its ``.json`` sidecar exists and
the file's size and SHA-256 match it; anything else is deleted and fetched again.
A writer replaces file and sidecar under an entry lock, and a reader that finds
them disagreeing decides under that lock, so an entry being rewritten by another
process is never taken for a corrupt one.
Variants and metadata entries are verified, counted and evicted like instances;
their file names can never be taken for the whole instance (a UID holds only
digits and dots, a variant name starts with a letter).

Limit: ``max_bytes`` bounds the cache between series; it must exceed what the
concurrent workers hold at once (a series can be evicted right after another
worker got its paths, in which case that worker's read fails and the next
access refetches it).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from monai_dicomseg.errors import InputError

__all__ = ["InstanceCache", "default_cache_dir", "DEFAULT_MAX_BYTES"]

DEFAULT_MAX_BYTES = 10 * 1024**3
_SAFE_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_SAFE_VARIANT = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
METADATA = "metadata"
"""The variant name of an instance's WADO-RS metadata entry (stored as ``<uid>.metadata.djson``)."""
_SUFFIXES = (".dcm", ".djson")


def default_cache_dir() -> str:
    """``$MONAI_DICOMSEG_DICOMWEB_CACHE`` or ``$XDG_CACHE_HOME/monai_dicomseg/dicomweb`` (``~/.cache``)."""
    env = os.environ.get("MONAI_DICOMSEG_DICOMWEB_CACHE")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "monai_dicomseg", "dicomweb")


def _uid(uid: str, what: str) -> str:
    uid = str(uid)
    if not _SAFE_UID.match(uid) or len(uid) > 64:
        raise InputError(f"{what} must be a DICOM UID (digits and dots); got {uid!r}")
    return uid


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _verified(path: Path, discard: bool) -> "str | Literal[False] | None":
    """``path`` when its sidecar matches its size and SHA-256 (the LRU time is refreshed); None when
    absent; False on a mismatch (the pair is removed first when ``discard``)."""
    sidecar = path.with_suffix(".json")
    try:
        record = json.loads(sidecar.read_text())
        if os.path.getsize(path) != int(record["size"]) or _sha256(str(path)) != record["sha256"]:
            raise ValueError("size or checksum mismatch")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        if discard:
            _discard_path(path)
        return False
    with contextlib.suppress(OSError):
        os.utime(path)  # LRU: a hit is a use
    return str(path)


def _entry_lock(path: Path) -> str:
    """Lock name guarding the file + sidecar pair of ``path`` (256 stripes: few lock files)."""
    return "entry-" + hashlib.sha1(path.name.encode()).hexdigest()[:2]


def _discard_path(path: Path) -> None:
    for victim in (path.with_suffix(".json"), path):
        with contextlib.suppress(FileNotFoundError):
            victim.unlink()


def _owner(path: Path) -> str:
    """The SOP Instance UID an entry file belongs to (its name up to the variant or suffix)."""
    name = path.name
    for suffix in _SUFFIXES:
        name = name[: -len(suffix)] if name.endswith(suffix) else name
    parts = name.split(".")
    return ".".join(p for p in parts if p.isdigit())


class InstanceCache:
    """Instances keyed by SOP Instance UID, plus per-series manifests.

    Parameters
    ----------
    root
        Cache folder (created). None: :func:`default_cache_dir`.
    max_bytes
        Upper bound of the instance files' total size (default 10 GiB).
    """

    def __init__(self, root: "str | os.PathLike[str] | None" = None, max_bytes: "int | None" = None) -> None:
        self.root = Path(root if root is not None else default_cache_dir())
        self.max_bytes = int(DEFAULT_MAX_BYTES if max_bytes is None else max_bytes)
        if self.max_bytes <= 0:
            raise InputError(f"cache max_bytes must be > 0; got {max_bytes!r}")
        for sub in ("instances", "series", "locks"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ locks

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An exclusive cross-process lock named ``name`` (a UID or ``"evict"``)."""
        path = self.root / "locks" / f"{name}.lock"
        with open(path, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    # ------------------------------------------------------------------ instances

    def path(self, sop_instance_uid: str, variant: "str | None" = None) -> Path:
        """Where the instance (or its ``variant``) lives, whether or not it is cached.

        Parameters
        ----------
        sop_instance_uid
            SOP Instance UID.
        variant
            None: the instance as retrieved; :data:`METADATA`: its WADO-RS
            metadata (DICOM JSON); another lowercase name (``[a-z][a-z0-9-]*``):
            a derived instance (e.g. ``"segments-<digest>"``).
        """
        uid = _uid(sop_instance_uid, "SOPInstanceUID")
        folder = self.root / "instances" / hashlib.sha1(uid.encode()).hexdigest()[:2]
        if variant is None:
            return folder / f"{uid}.dcm"
        if not isinstance(variant, str) or not _SAFE_VARIANT.match(variant):
            raise InputError(f"cache variant must match {_SAFE_VARIANT.pattern}; got {variant!r}")
        return folder / (f"{uid}.{variant}.djson" if variant == METADATA else f"{uid}.{variant}.dcm")

    def get(self, sop_instance_uid: str, variant: "str | None" = None) -> "str | None":
        """The verified path of a cached instance (or ``variant``), or None (a corrupt entry is deleted)."""
        path = self.path(sop_instance_uid, variant)
        found = _verified(path, discard=False)
        if found is False:  # corrupt, or a writer is between the file and its sidecar: decide under its lock
            with self.lock(_entry_lock(path)):
                found = _verified(path, discard=True)
        return found or None

    def put(self, sop_instance_uid: str, data: bytes, variant: "str | None" = None) -> str:
        """Store ``data`` (a Part 10 file, or JSON for :data:`METADATA`) atomically; returns its path."""
        path = self.path(sop_instance_uid, variant)
        record = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        with self.lock(_entry_lock(path)):  # a reader never takes a half-replaced pair for corruption
            _atomic_write(path, data)
            _atomic_write(path.with_suffix(".json"), json.dumps(record).encode())
        return str(path)

    def discard(self, sop_instance_uid: str, variant: "str | None" = None) -> None:
        """Remove an instance or one ``variant`` of it (no error when absent)."""
        _discard_path(self.path(sop_instance_uid, variant))

    def metadata(self, sop_instance_uid: str) -> "dict[str, Any] | None":
        """The verified cached WADO-RS metadata (one DICOM JSON object) of an instance, or None."""
        path = self.get(sop_instance_uid, METADATA)
        if path is None:
            return None
        try:
            item = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            self.discard(sop_instance_uid, METADATA)
            return None
        return item if isinstance(item, dict) else None

    def put_metadata(self, sop_instance_uid: str, item: dict[str, Any]) -> str:
        """Store the WADO-RS metadata (one DICOM JSON object) of an instance."""
        return self.put(sop_instance_uid, json.dumps(item, sort_keys=True).encode(), METADATA)

    # ------------------------------------------------------------------ manifests

    def manifest(self, series_uid: str) -> "dict[str, Any] | None":
        """The stored manifest of a series, or None."""
        path = self.root / "series" / f"{_uid(series_uid, 'SeriesInstanceUID')}.json"
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            with contextlib.suppress(OSError):
                path.unlink()
            return None

    def put_manifest(self, series_uid: str, manifest: dict[str, Any]) -> None:
        """Store the manifest of a series atomically."""
        path = self.root / "series" / f"{_uid(series_uid, 'SeriesInstanceUID')}.json"
        _atomic_write(path, json.dumps(manifest, sort_keys=True).encode())

    # ------------------------------------------------------------------ size bound

    def size(self) -> int:
        """Total bytes of the cached instance files."""
        return sum(size for _, size, _ in self._entries())

    def _entries(self) -> list[tuple[Path, int, float]]:
        entries = []
        paths = [p for suffix in _SUFFIXES for p in (self.root / "instances").glob(f"*/*{suffix}")]
        for path in paths:
            if path.name.startswith(".tmp-"):
                continue
            with contextlib.suppress(FileNotFoundError):
                stat = path.stat()
                entries.append((path, stat.st_size, stat.st_mtime))
        return entries

    def evict(self, keep: Sequence[str] = ()) -> int:
        """Remove least recently used entries until the total is within ``max_bytes``.

        Parameters
        ----------
        keep
            SOP Instance UIDs never removed (the series being inserted), with
            their variants and metadata.

        Returns
        -------
        int
            Number of entries removed.
        """
        protected = {_uid(uid, "SOPInstanceUID") for uid in keep}
        removed = 0
        with self.lock("evict"):
            entries = self._entries()
            total = sum(size for _, size, _ in entries)
            for path, size, _ in sorted(entries, key=lambda e: e[2]):
                if total <= self.max_bytes:
                    break
                if _owner(path) in protected:
                    continue
                _discard_path(path)
                total -= size
                removed += 1
        return removed
