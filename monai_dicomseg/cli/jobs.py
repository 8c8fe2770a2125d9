"""Sharded, resumable ``batch`` runs: ``--shard``, ``--manifest``, ``--retry-failed`` (issue 27).

One ``batch`` job can be split over N machines or processes (a SLURM job
array, a Kubernetes indexed Job, an Argo fan-out, ``torchrun``) and re-run
after a failure without redoing what is finished.

Shards
    ``--shard K/N`` (0 <= K < N) runs the inputs whose shard is K. The shard
    of an input is ``sha256(its path relative to INPUT_DIR) mod N``: it
    depends on that one path only, so shards that list INPUT_DIR at different
    moments (files arriving meanwhile) still never both take a file, and the
    union of the N shards is every input. Within a shard the inputs run in
    sorted order. ``--shard auto`` reads the job array's environment
    (:func:`shard_from_env`, see :data:`ENVIRONMENTS`); more than one
    matching scheduler, or none, is a usage error.
Manifest
    ``--manifest FILE.jsonl``: one JSON line per event and item: ``started``
    before an item runs, then ``done`` or ``failed``, with the input (relative
    to INPUT_DIR), its SHA-256 and size, the outputs (relative to OUTPUT_DIR)
    with their SHA-256 and size, the error line, the start time (UTC), the
    seconds taken, the shard, host and process. Each line is appended with one
    ``write`` under an exclusive ``flock`` and ``fsync``-ed, so N shards may
    share one manifest (on a network file system whose locks you do not trust,
    give each shard its own file). A line a killed process left unfinished is
    ignored when read.
Resume
    With a manifest, an item whose last record is ``done`` is skipped when its
    input still has the recorded SHA-256 and every recorded output exists with
    its recorded SHA-256 ("verified"); otherwise it runs again. An item whose
    last record is ``failed`` is not retried (it counts as failed) unless
    ``--retry-failed``. An item whose last record is ``started`` was
    interrupted: it runs again, replacing its own outputs, and the hidden
    temporaries its killed write left (``.NAME.XXXXXXXX.part``, see
    :mod:`monai_dicomseg.atomic`) are removed first. Outputs already existing
    for an item the manifest does not know are refused as without a manifest
    (``--overwrite``).
Outputs
    Every file is written through :func:`monai_dicomseg.atomic.atomic_write`
    (temporary file + rename): an output is complete or absent. Different
    shards never write the same output (each output belongs to one input).
Other inputs
    ``batch to-nifti DATALIST.json`` and ``batch pull`` (SEG URIs, a
    datalist, a DICOMweb server) give each input a key of their own
    (:mod:`monai_dicomseg.cli.batch_inputs`): it takes the place of the
    relative path above (shard, manifest ``input``, output path). A URI input
    has no content hash: its ``done`` record holds while its outputs do.
    ``batch push`` has no output file: its ``done`` record names the stored
    UIDs and holds while the input is unchanged and the server still lists
    the instance (:mod:`monai_dicomseg.cli.batch_dicomweb`).
Exit status (for workflow engines)
    :data:`EXIT_OK` (0): every item of the shard is done (now or verified
    earlier); :data:`EXIT_FAILED` (1): some item failed (now, or earlier and
    not retried); :data:`EXIT_USAGE` (2): bad arguments (argparse), a bad
    ``--shard`` or shard environment, ``--retry-failed`` without a manifest.
    130: interrupted. A summary line goes to stdout.
"""
from __future__ import annotations

import argparse
import datetime
import fcntl
import hashlib
import json
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monai_dicomseg.errors import InputError

__all__ = [
    "Shard", "ShardError", "Manifest", "ItemKind", "parse_shard", "shard_from_env", "shard_of", "select_shard",
    "add_job_options", "wanted", "run_jobs", "file_sha256", "ENVIRONMENTS", "SHARD_ENV", "COUNT_ENV",
    "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

SHARD_ENV = "MONAI_DICOMSEG_SHARD"
"""``K/N`` for any scheduler; wins over every other variable."""
COUNT_ENV = "MONAI_DICOMSEG_SHARD_COUNT"
"""N for schedulers that give only an index (Kubernetes indexed Jobs, AWS Batch arrays)."""

ENVIRONMENTS: tuple[tuple[str, str, str], ...] = (
    ("SLURM job array", "SLURM_ARRAY_TASK_ID",
     "index (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP of SLURM_ARRAY_TASK_COUNT"),
    ("Kubernetes indexed Job", "JOB_COMPLETION_INDEX", f"index JOB_COMPLETION_INDEX of {COUNT_ENV}"),
    ("AWS Batch array job", "AWS_BATCH_JOB_ARRAY_INDEX", f"index AWS_BATCH_JOB_ARRAY_INDEX of {COUNT_ENV}"),
    ("torchrun / torch.distributed", "RANK", "index RANK of WORLD_SIZE"),
)
"""``(scheduler, variable that announces it, rule)`` read by ``--shard auto`` after :data:`SHARD_ENV`."""

_STATUSES = ("started", "done", "failed")


class ShardError(InputError):
    """A bad ``--shard`` value or shard environment (exit status 2)."""


# --------------------------------------------------------------------------- shards


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based), and where it came from (for messages)."""

    index: int
    count: int
    origin: str = "--shard"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, key: str) -> bool:
        """True when the input with relative path ``key`` belongs to this shard."""
        return shard_of(key, self.count) == self.index


def shard_of(key: str, count: int) -> int:
    """The shard (0..count-1) of the input whose path relative to INPUT_DIR is ``key`` (POSIX separators)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def _integer(text: "str | None", name: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise ShardError(f"{name} must be an integer; got {text!r}") from None


def _checked(index: int, count: int, origin: str) -> Shard:
    if count < 1:
        raise ShardError(f"{origin}: the shard count must be >= 1; got {count}")
    if not 0 <= index < count:
        raise ShardError(f"{origin}: the shard index must be in 0..{count - 1} (0-based); got {index}")
    return Shard(index, count, origin)


def parse_shard(text: str, origin: str = "--shard") -> Shard:
    """``"K/N"`` as a :class:`Shard` (0 <= K < N).

    Raises
    ------
    ShardError
        Not two integers separated by ``/``, N < 1, or K outside 0..N-1.
    """
    parts = str(text).split("/")
    if len(parts) != 2:
        raise ShardError(f"{origin} must be K/N (shard K of N, 0-based, e.g. 0/4); got {text!r}")
    return _checked(_integer(parts[0], f"{origin} K"), _integer(parts[1], f"{origin} N"), origin)


def _slurm(env: Mapping[str, str]) -> Shard:
    task = _integer(env["SLURM_ARRAY_TASK_ID"], "SLURM_ARRAY_TASK_ID")
    if "SLURM_ARRAY_TASK_COUNT" not in env:
        raise ShardError("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not; pass --shard K/N")
    first = _integer(env.get("SLURM_ARRAY_TASK_MIN", "0"), "SLURM_ARRAY_TASK_MIN")
    step = max(1, _integer(env.get("SLURM_ARRAY_TASK_STEP", "1"), "SLURM_ARRAY_TASK_STEP"))
    if (task - first) % step:
        raise ShardError(f"SLURM_ARRAY_TASK_ID {task} is not SLURM_ARRAY_TASK_MIN {first} plus a multiple of "
                         f"SLURM_ARRAY_TASK_STEP {step}; pass --shard K/N")
    return _checked((task - first) // step, _integer(env["SLURM_ARRAY_TASK_COUNT"], "SLURM_ARRAY_TASK_COUNT"),
                    "SLURM_ARRAY_TASK_ID")


def _indexed(env: Mapping[str, str], variable: str) -> Shard:
    if COUNT_ENV not in env:
        raise ShardError(f"{variable} is set but {COUNT_ENV} (the number of shards) is not; set it to the "
                         "job's completions / array size, or pass --shard K/N")
    return _checked(_integer(env[variable], variable), _integer(env[COUNT_ENV], COUNT_ENV), variable)


def _torch(env: Mapping[str, str]) -> Shard:
    if "WORLD_SIZE" not in env:
        raise ShardError("RANK is set but WORLD_SIZE is not; pass --shard K/N")
    return _checked(_integer(env["RANK"], "RANK"), _integer(env["WORLD_SIZE"], "WORLD_SIZE"), "RANK")


def shard_from_env(env: "Mapping[str, str] | None" = None) -> Shard:
    """The shard the job array's environment names (``--shard auto``).

    :data:`SHARD_ENV` (``K/N``) wins; else exactly one of the schedulers of
    :data:`ENVIRONMENTS` must be present: SLURM (``SLURM_ARRAY_TASK_ID``,
    ``SLURM_ARRAY_TASK_COUNT``, ``SLURM_ARRAY_TASK_MIN``, ``SLURM_ARRAY_TASK_STEP``;
    so ``--array=1-8`` and ``--array=0-14:2`` work), a Kubernetes indexed Job
    (``JOB_COMPLETION_INDEX`` with :data:`COUNT_ENV`), an AWS Batch array
    (``AWS_BATCH_JOB_ARRAY_INDEX`` with :data:`COUNT_ENV`), ``torchrun``
    (``RANK``, ``WORLD_SIZE``).

    Raises
    ------
    ShardError
        None present, more than one present (e.g. ``torchrun`` inside a SLURM
        array: say which with :data:`SHARD_ENV`), or a value out of range.
    """
    env = os.environ if env is None else env
    if env.get(SHARD_ENV):
        return parse_shard(env[SHARD_ENV], SHARD_ENV)
    present = [(name, variable) for name, variable, _ in ENVIRONMENTS if env.get(variable, "") != ""]
    if not present:
        raise ShardError(f"--shard auto: no job-array environment found (set {SHARD_ENV}=K/N, or run in a SLURM "
                         "array, a Kubernetes indexed Job, an AWS Batch array or torchrun)")
    if len(present) > 1:
        raise ShardError(f"--shard auto: ambiguous environment ({', '.join(f'{n} ({v})' for n, v in present)}); "
                         f"set {SHARD_ENV}=K/N or pass --shard K/N")
    variable = present[0][1]
    if variable == "SLURM_ARRAY_TASK_ID":
        return _slurm(env)
    if variable == "RANK":
        return _torch(env)
    return _indexed(env, variable)


def _shard_argument(text: str) -> "Shard | str":
    if text == "auto":
        return "auto"
    try:
        return parse_shard(text)
    except ShardError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _stem(path: Path) -> str:
    from monai_dicomseg.cli.batch import _stem as stem

    return stem(path)


def _key(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def select_shard(inputs: Sequence[Path], root: "str | os.PathLike[str]", shard: "Shard | None") -> list[Path]:
    """The inputs (sorted) whose path relative to ``root`` belongs to ``shard`` (all of them for None)."""
    base = Path(root)
    return sorted(p for p in inputs if shard is None or shard.owns(_key(Path(p), base)))


# --------------------------------------------------------------------------- manifest


def file_sha256(path: "str | os.PathLike[str]") -> str:
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """An append-only JSON-lines manifest (see the module docstring)."""

    path: Path

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one record as one line: one ``write`` under an exclusive ``flock``, then ``fsync``."""
        line = (json.dumps(dict(record), sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                written = os.write(fd, line)
                if written != len(line):  # pragma: no cover - disk full: the reader skips the torn line
                    raise OSError(f"manifest {self.path}: wrote {written} of {len(line)} bytes")
                os.fsync(fd)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def records(self) -> list[dict[str, Any]]:
        """Every complete record in file order (a torn or foreign line is skipped with a warning)."""
        if not self.path.exists():
            return []
        found, bad = [], 0
        with open(self.path, "rb") as handle:
            for raw in handle:
                try:
                    record = json.loads(raw)
                except ValueError:
                    bad += 1
                    continue
                if isinstance(record, dict) and record.get("status") in _STATUSES and "input" in record:
                    found.append(record)
                else:
                    bad += 1
        if bad:
            warnings.warn(f"manifest {self.path}: {bad} unreadable line(s) skipped (a process killed while "
                          "appending leaves at most one)", stacklevel=2)
        return found

    def latest(self, command: str) -> dict[str, dict[str, Any]]:
        """``input -> last record`` of ``command``."""
        return {r["input"]: r for r in self.records() if r.get("command") == command}


# --------------------------------------------------------------------------- arguments


def add_job_options(parser: argparse.ArgumentParser) -> None:
    """``--shard``, ``--manifest``, ``--retry-failed`` for one ``batch`` subcommand."""
    group = parser.add_argument_group("sharded, resumable runs")
    group.add_argument("--shard", type=_shard_argument, metavar="K/N",
                       help="run shard K of N (0-based; an input's shard is a hash of its relative path), or "
                            f"'auto': from {SHARD_ENV}, SLURM_ARRAY_TASK_ID/_COUNT, JOB_COMPLETION_INDEX or "
                            f"AWS_BATCH_JOB_ARRAY_INDEX with {COUNT_ENV}, or torchrun's RANK/WORLD_SIZE")
    group.add_argument("--manifest", metavar="FILE.jsonl",
                       help="append one JSON line per item (started/done/failed, checksums, times); a re-run "
                            "skips items done and verified (shards may share one file)")
    group.add_argument("--retry-failed", action="store_true",
                       help="with --manifest: run again the items whose last record is 'failed'")


def wanted(args: argparse.Namespace) -> bool:
    """True when the run is sharded or has a manifest (then :func:`run_jobs` runs it)."""
    return any(getattr(args, name, None) for name in ("shard", "manifest", "retry_failed"))


# --------------------------------------------------------------------------- one item (in a worker)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def _execute(command: str, source: str, output: "str | None",
             options: dict[str, Any]) -> "tuple[list[str], str | None, dict[str, Any]]":
    """Run one item; return ``(paths written, text to print, extra record fields)``."""
    if command in ("pull", "push"):  # DICOMweb items: cli/batch_dicomweb.py
        from monai_dicomseg.cli import batch_dicomweb

        return batch_dicomweb.execute(command, source, output, dict(options))
    if options.get("source_error"):
        raise InputError(options["source_error"])
    options = {k: v for k, v in options.items() if k != "source_error"}
    if command == "info":
        from monai_dicomseg.cli.batch import _item

        _, error, text = _item((command, source, output, options))
        if error is not None:
            raise InputError(error)
        return [], text, {}
    if command == "to-nifti":
        from monai_dicomseg.cli.to_nifti import seg_to_nifti

        return [str(p) for p in seg_to_nifti(source, output, **options)], None, {}  # type: ignore[arg-type]  # every command but info has an output path
    if command == "from-nifti":
        from monai_dicomseg.cli.from_nifti import nifti_to_seg

        series = options.pop("series")
        nifti_to_seg(source, series, output, **options)  # type: ignore[arg-type]  # every command but info has an output path
    else:
        from monai_dicomseg.cli.convert import convert_seg

        convert_seg(source, output, **options)  # type: ignore[arg-type]  # every command but info has an output path
    return [str(output)], None, {}


def _outputs(paths: Iterable[str], out_root: "Path | None") -> list[dict[str, Any]]:
    found = []
    for path in paths:
        name = os.path.relpath(path, out_root) if out_root is not None else str(path)
        found.append({"path": Path(name).as_posix(), "sha256": file_sha256(path), "bytes": os.path.getsize(path)})
    return found


def _run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Run one item in a worker: ``started`` record, the command, then the ``done``/``failed`` record."""
    from monai_dicomseg.cli.main import one_line

    command, source, output, options = task["job"]
    manifest = Manifest(Path(task["manifest"])) if task["manifest"] else None
    out_root = Path(task["out_root"]) if task["out_root"] else None
    record = {"command": command, "input": task["key"], "shard": task["shard"], "host": socket.gethostname(),
              "pid": os.getpid(), "started": _now(), "error": None, "outputs": [],
              "output": Path(os.path.relpath(output, out_root)).as_posix() if output and out_root else None}
    try:
        if task.get("remote"):  # a URI: identified by its UIDs (the key), no content to hash here
            record.update(input_sha256=None, input_bytes=None, source=source)
        else:
            record.update(input_sha256=file_sha256(source), input_bytes=os.path.getsize(source))
    except OSError as error:
        record.update(input_sha256=None, input_bytes=None, error=one_line(error))
    if manifest is not None:
        manifest.append({**record, "status": "started"})
    clock, text = time.perf_counter(), None
    try:
        if record["error"]:
            raise InputError(record["error"])
        if task.get("stale"):
            _remove_temporaries(**task["stale"])
        written, text, extra = _execute(command, source, output, dict(options))
        record.update(extra)
        record["outputs"] = _outputs(written, out_root)
        record["status"] = "done"
    except Exception as error:  # noqa: BLE001 - every failure becomes one record and one line
        record.update(status="failed", error=one_line(error))
    record["seconds"] = round(time.perf_counter() - clock, 3)
    if manifest is not None:
        manifest.append(record)
    return {**record, "text": text, "path": source}


def _owner(name: str, stems: Sequence[str]) -> "str | None":
    """The stem (longest first) an output file name belongs to: ``case1.nii.gz``, ``case1.json``, ``case1_2.nii.gz``."""
    for stem in sorted(stems, key=len, reverse=True):
        if name.startswith(stem) and name[len(stem):len(stem) + 1] in (".", "_"):
            return stem
    return None


def _remove_temporaries(folder: str, stem: str, stems: Sequence[str]) -> None:
    """Remove the temporaries (``.NAME.XXXXXXXX.part``, :mod:`monai_dicomseg.atomic`) that a killed write of
    an output of input ``stem`` left in ``folder``; ``stems``: every input stem writing into ``folder``
    (a temporary belongs to the longest stem its name starts with)."""
    from monai_dicomseg.atomic import TEMPORARY_PATTERN

    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if not TEMPORARY_PATTERN.match(entry.name):
            continue
        destination = entry.name[1:-len(".XXXXXXXX.part")]
        if _owner(destination, stems) == stem:
            try:
                os.unlink(entry.path)
            except OSError:
                pass


# --------------------------------------------------------------------------- planning


def _verified(record: Mapping[str, Any], source: str, out_root: "Path | None", remote: bool = False) -> bool:
    """The ``done`` record still holds: same input content (a ``remote`` input: same URI), every output present
    with its checksum."""
    try:
        if record.get("source" if remote else "input_sha256") != (source if remote else file_sha256(source)):
            return False
        for output in record.get("outputs") or []:
            path = (out_root / output["path"]) if out_root is not None else Path(output["path"])
            if not path.is_file() or path.stat().st_size != output.get("bytes") \
                    or file_sha256(path) != output.get("sha256"):
                return False
    except (OSError, KeyError, TypeError):
        return False
    return True


@dataclass
class Plan:
    """What a (re-)run of one shard does: tasks to run, items verified done, items failed earlier."""

    tasks: list[dict[str, Any]]
    verified: list[str]
    failed_before: list[dict[str, Any]]


@dataclass(frozen=True)
class ItemKind:
    """How :func:`run_jobs` identifies and checks the items of a command that are not files of INPUT_DIR.

    Attributes
    ----------
    remote
        The inputs are URIs (``batch pull``): no content hash; a ``done`` record holds while its outputs do.
    still_done
        Called once with the ``done`` records whose local checks passed; returns one bool each: does the
        result still hold (``batch push``: the server still holds each stored SOP Instance UID)?
    """

    remote: bool = False
    still_done: "Callable[[list[Mapping[str, Any]]], list[bool]] | None" = None


def _verified_indices(jobs: Sequence[tuple], keys: Sequence[str], latest: Mapping[str, Mapping[str, Any]],
                      out_root: "Path | None", kind: ItemKind) -> set[int]:
    """Indices of the items whose last record is ``done`` and still verified."""
    from concurrent.futures import ThreadPoolExecutor

    done = [(i, latest[k]) for i, k in enumerate(keys) if latest.get(k, {}).get("status") == "done"]
    with ThreadPoolExecutor(max_workers=4) as pool:  # hashing releases the GIL
        checks = list(pool.map(lambda item: _verified(item[1], jobs[item[0]][1], out_root, kind.remote), done))
    passed = [(i, record) for (i, record), ok in zip(done, checks) if ok]
    if kind.still_done is not None and passed:
        held = kind.still_done([record for _, record in passed])
        passed = [item for item, ok in zip(passed, held) if ok]
    return {i for i, _ in passed}


def _plan(jobs: Sequence[tuple], keys: Sequence[str], shard: "Shard | None", manifest: "Manifest | None",
          out_root: "Path | None", retry_failed: bool, stems: Mapping[str, list[str]],
          kind: ItemKind = ItemKind()) -> Plan:
    """Decide per item: run, skip (verified), or count as failed earlier (see the module docstring)."""
    latest = manifest.latest(jobs[0][0]) if manifest is not None and jobs else {}
    verified_index = _verified_indices(jobs, keys, latest, out_root, kind)
    plan = Plan([], [], [])
    for index, (job, key) in enumerate(zip(jobs, keys)):
        record = latest.get(key)
        status = record.get("status") if record else None
        if index in verified_index:
            plan.verified.append(key)
            continue
        if status == "failed" and not retry_failed:
            plan.failed_before.append(record)  # type: ignore[arg-type]  # status is "failed" only when record is set
            continue
        command, source, output, options = job
        stale = None
        if status is not None:  # our own outputs from an earlier attempt: replace them
            options = {**options, "overwrite": True} if "overwrite" in options else options
            if status == "started" and "resumed" in options:  # push: the killed attempt may have stored it
                options = {**options, "resumed": True}
            if output:
                folder = str(Path(output).parent)
                stale = {"folder": folder, "stem": _stem(Path(key)), "stems": stems.get(folder, [])}
        plan.tasks.append({"job": (command, source, output, options), "key": key, "stale": stale,
                           "remote": kind.remote,
                           "shard": str(shard) if shard else None,
                           "manifest": str(manifest.path) if manifest else None,
                           "out_root": str(out_root) if out_root else None})
    return plan


# --------------------------------------------------------------------------- running


def _run_tasks(tasks: list[dict[str, Any]], workers: int,
               progress: Callable[[Iterable[Any], int], Iterable[Any]]) -> list[dict[str, Any]]:
    if workers <= 0:
        workers = os.cpu_count() or 1
    workers = min(workers, len(tasks)) or 1
    if workers == 1:
        return list(progress((_run_task(task) for task in tasks), len(tasks)))
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn" if sys.platform == "darwin" else "forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(_run_task, task) for task in tasks]
        return [f.result() for f in progress(as_completed(futures), len(tasks))]


def _resolve(args: argparse.Namespace) -> "tuple[Shard | None, Manifest | None]":
    shard = args.shard
    if shard == "auto":
        shard = shard_from_env()
    manifest = Manifest(Path(args.manifest)) if getattr(args, "manifest", None) else None
    if getattr(args, "retry_failed", False) and manifest is None:
        raise ShardError("--retry-failed needs --manifest (the record of what failed)")
    if manifest is not None and not manifest.path.parent.is_dir():
        raise ShardError(f"--manifest {str(manifest.path)!r}: folder {str(manifest.path.parent)!r} does not exist")
    return shard, manifest


def _report(command: str, shard: "Shard | None", manifest: "Manifest | None", total: int, plan: Plan,
            results: list[dict[str, Any]], order: Sequence[str]) -> int:
    texts = {r["path"]: r["text"] for r in results if r.get("text") is not None}
    for path in order:
        if path in texts:
            print(texts[path])
    failed = sorted((r["input"], r["error"]) for r in results if r["status"] == "failed")
    for key, error in failed:
        print(f"FAILED {key}: {error}", file=sys.stderr)
    for record in sorted(plan.failed_before, key=lambda r: r["input"]):
        print(f"FAILED earlier {record['input']}: {record.get('error')} (--retry-failed to run it again)",
              file=sys.stderr)
    done = len(results) - len(failed)
    where = f" shard {shard} ({shard.origin})" if shard else ""
    print(f"batch {command}{where}: {done} done, {len(plan.verified)} skipped (done and verified earlier), "
          f"{len(failed)} failed, {len(plan.failed_before)} failed earlier (not retried) - "
          f"{len(plan.tasks) + len(plan.verified) + len(plan.failed_before)} item(s)"
          + (f" in this shard, of {total} inputs" if shard else "")
          + (f"; manifest {manifest.path}" if manifest else ""),
          file=sys.stderr if command == "info" else sys.stdout)
    return EXIT_FAILED if failed or plan.failed_before else EXIT_OK


def run_jobs(args: argparse.Namespace, inputs: Sequence[Any],
             make_jobs: Callable[[argparse.Namespace, list], list[tuple]], keys: "Sequence[str] | None" = None,
             kind: ItemKind = ItemKind()) -> int:
    """Run ``batch`` with ``--shard``/``--manifest``: select, plan, run, record, summarise; return the exit status.

    ``make_jobs`` is :func:`monai_dicomseg.cli.batch._jobs` (``(args, inputs) -> [(command, input, output,
    options)]``), called with this shard's inputs only. ``keys``: each input's key (shard, manifest ``input``,
    output folder and stem: an output of key ``a/b/c`` lies in ``OUTPUT_DIR/a/b``, named ``c...``); default:
    the input's path relative to INPUT_DIR. ``kind``: see :class:`ItemKind` (``batch pull``/``push``).
    """
    from tqdm import tqdm

    command = args.batch_command
    try:
        shard, manifest = _resolve(args)
    except ShardError as error:
        print(f"monai-dicomseg batch: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if keys is None:
        root = Path(args.input_dir)
        keys = [_key(Path(p), root) for p in inputs]
        mine = select_shard(inputs, root, shard)
        mine_keys = [_key(Path(p), root) for p in mine]
    else:
        pairs = sorted((k, i) for i, k in enumerate(keys) if shard is None or shard.owns(k))
        mine, mine_keys = [inputs[i] for _, i in pairs], [k for k, _ in pairs]
    jobs = make_jobs(args, mine) if mine else []
    out_root = Path(args.output_dir) if getattr(args, "output_dir", None) else None
    stems: dict[str, list[str]] = {}  # output folder -> stems of every input (all shards) writing there
    for key in keys:
        if out_root is not None:
            stems.setdefault(str(out_root / Path(key).parent), []).append(_stem(Path(key)))
    plan = _plan(jobs, mine_keys, shard, manifest, out_root, args.retry_failed, stems, kind)

    def progress(iterable: Iterable[Any], total: int) -> Iterable[Any]:
        return tqdm(iterable, total=total, unit="file", desc=f"batch {command}", file=sys.stderr,
                    disable=None, leave=False)

    results = _run_tasks(plan.tasks, args.workers, progress) if plan.tasks else []
    return _report(command, shard, manifest, len(inputs), plan, results, [job[1] for job in jobs])
