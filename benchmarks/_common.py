"""Shared set-up of the benchmark scripts: data builders and timing helpers."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pydicom
from pathlib import Path

from monai_dicomseg.synthetic import make_ct_series, make_ellipsoid_labels, write_series

SHAPE = (200, 512, 512)
SEGMENTS = 100


CACHE = Path(__file__).resolve().parent / ".cache"


def big_case(shape: tuple[int, int, int] = SHAPE, segments: int = SEGMENTS, seed: int = 0):
    """Return ``(source datasets, (F, R, C) uint8 label map)`` of the benchmark case.

    Building the synthetic series takes a while, so it is cached under
    ``benchmarks/.cache`` (git-ignored) and read back on later runs.
    """
    folder = CACHE / f"{shape[0]}x{shape[1]}x{shape[2]}_{segments}_{seed}"
    labels_path = folder / "labels.npy"
    if labels_path.exists():
        files = sorted((folder / "series").glob("*.dcm"))
        series = [pydicom.dcmread(path) for path in files]
        series.sort(key=lambda ds: int(ds.InstanceNumber))
        return series, np.load(labels_path)
    labels = make_ellipsoid_labels(shape, n_labels=segments, seed=seed)
    series = make_ct_series(shape=shape, spacing=(1.5, 0.8, 0.8), labels=labels, seed=seed)
    write_series(series, folder / "series")
    np.save(labels_path, labels)
    return series, labels


def status_mb(key: str) -> "float | None":
    """A memory line of ``/proc/self/status`` (``"VmRSS"``, ``"VmHWM"``) in MB; None where /proc is missing."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Set the peak RSS mark (VmHWM) to the current RSS (Linux >= 4.0, ``clear_refs`` 5); False if not allowed.

    The next VmHWM is then the peak of what runs from here, not of the set-up before."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def median_time(function: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    """Run ``function`` once to warm up, then ``repeats`` times; return (median seconds, last result).

    The machine is shared and noisy: medians of warmed-up runs, and ratios
    measured in the same run, are what the scripts report.
    """
    function()
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def report(name: str, ours: float, theirs: float, other: str = "highdicom") -> None:
    """Print one line: our time, the other time and the speed-up ratio."""
    print(f"{name:<38} ours {ours * 1000:8.1f} ms   {other} {theirs * 1000:8.1f} ms   "
          f"speed-up x{theirs / ours:5.2f}")


def series_folder(shape: tuple[int, int, int] = SHAPE, segments: int = SEGMENTS, seed: int = 0) -> Path:
    """The cached source series folder of :func:`big_case` (built on first use)."""
    big_case(shape, segments, seed)
    return CACHE / f"{shape[0]}x{shape[1]}x{shape[2]}_{segments}_{seed}" / "series"
