"""Bounded concurrent DICOMweb requests (issue 27): at most ``max_workers`` in flight, results in input order.

A PACS answers one QIDO-RS or WADO-RS request in tens to hundreds of
milliseconds, mostly waiting; 10,000 studies asked one at a time take hours.
:func:`bounded_map` runs a request function over many items in a thread pool
of ``max_workers`` threads, so never more than ``max_workers`` requests are in
flight (a PACS administrator's limit), and returns the results in the order of
the items, so every caller's output equals its sequential version. Each thread
talks through its own ``DICOMwebClient`` (:meth:`DicomWebServer.client
<monai_dicomseg.dicomweb.session.DicomWebServer.client>` is per thread), with
the server's retry and backoff settings on every request. The first failing
item (in input order) raises its error; requests not yet started are cancelled.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from monai_dicomseg.errors import InputError, InputTypeError

__all__ = ["bounded_map", "check_max_workers", "DEFAULT_MAX_WORKERS"]

DEFAULT_MAX_WORKERS = 4
"""Requests in flight at once by default (1: strictly sequential)."""

T = TypeVar("T")
R = TypeVar("R")


def check_max_workers(max_workers: Any) -> int:
    """``max_workers`` as an int >= 1.

    Raises
    ------
    InputTypeError
        Not an integer (a bool is refused too).
    InputError
        Below 1.
    """
    if isinstance(max_workers, bool) or not isinstance(max_workers, int):
        raise InputTypeError(f"max_workers must be an int >= 1 (requests in flight at once); "
                             f"got {type(max_workers).__name__} {max_workers!r}")
    if max_workers < 1:
        raise InputError(f"max_workers must be >= 1 (requests in flight at once); got {max_workers}")
    return max_workers


def bounded_map(function: Callable[[T], R], items: Iterable[T], max_workers: int = DEFAULT_MAX_WORKERS) -> list[R]:
    """``[function(item) for item in items]`` with at most ``max_workers`` calls running at once.

    ``max_workers=1`` (or one item) runs in the calling thread, exactly the
    sequential loop. Results are in the order of ``items``.
    """
    items = list(items)
    workers = min(check_max_workers(max_workers), len(items))
    if workers <= 1:
        return [function(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dicomweb")
    try:
        futures = [pool.submit(function, item) for item in items]
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
