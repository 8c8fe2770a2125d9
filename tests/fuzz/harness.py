"""Run one hostile file through the public API; classify what happened.

Only documented error types (subclasses of
:class:`~monai_dicomseg.errors.DicomSegError`) may escape; anything else is
re-raised so the test fails with its traceback. Each case runs in-process
under a ``signal.alarm`` guard (a hang becomes :class:`CaseTimeout`) and a
decoded-size budget (:func:`monai_dicomseg.codec.decode.max_decoded_bytes`),
so no case can allocate more than the budget for its output arrays.
"""
from __future__ import annotations

import collections
import contextlib
import io
import os
import re
import signal
import tempfile
from typing import Any
from collections.abc import Callable, Iterator

from monai_dicomseg.codec.decode import max_decoded_bytes
from monai_dicomseg.errors import DicomSegError

__all__ = ["CaseTimeout", "OUTCOMES", "CASE_SECONDS", "BUDGET_BYTES", "exercise", "time_guard"]

CASE_SECONDS = int(os.environ.get("MDS_FUZZ_CASE_SECONDS", "20"))
"""Hang guard per case (generous: a detector for hangs, not a speed test)."""

BUDGET_BYTES = 64 << 20
"""Decoded-size budget during fuzzing: 64 MiB (the seeds decode to a few kB)."""

OUTCOMES: collections.Counter[str] = collections.Counter()
"""Outcome classes of every case run in this session (reported at the end of the run)."""

_FOREIGN_CLI_ERROR = re.compile(r": error: [A-Za-z_.]*(Error|Exception|Exit)\b")


class CaseTimeout(BaseException):
    """A case ran past :data:`CASE_SECONDS` (BaseException: no ``except Exception`` swallows it)."""


@contextlib.contextmanager
def time_guard(seconds: int = CASE_SECONDS) -> Iterator[None]:
    """Raise :class:`CaseTimeout` in the main thread after ``seconds``."""
    if not hasattr(signal, "SIGALRM"):  # pragma: no cover - Windows
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"case ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _call(results: list[str], name: str, function: Callable[[], Any]) -> Any:
    try:
        value = function()
    except DicomSegError as error:
        results.append(f"{name}:{type(error).__name__}")
        return None
    results.append(f"{name}:ok")
    return value


def _describe(seg: Any) -> None:
    for number in list(seg.segment_numbers)[:3]:
        description = seg.get_segment_description(number)
        (description.segment_label, description.segmented_property_category,
         description.segmented_property_type, description.algorithm_type, description.tracking_uid,
         description.tracking_id, description.anatomic_regions, description.primary_anatomic_structures,
         description.display_color, description.algorithm_identification)


def _by_source(seg: Any) -> Any:
    uids = seg.get_source_image_uids()
    if uids:
        return seg.get_pixels_by_source_instance([uids[0][2]])
    return None


def _cli_info(data: bytes) -> None:
    from monai_dicomseg.cli.info import describe_seg
    from monai_dicomseg.cli.main import main

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "case.dcm")
        with open(path, "wb") as handle:
            handle.write(data)
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            status = main(["info", path])
        assert status in (0, 1), f"monai-dicomseg info exited with {status}"
        assert not _FOREIGN_CLI_ERROR.search(stderr.getvalue()), stderr.getvalue()
        describe_seg(path)  # the same work, so a foreign exception type surfaces with its traceback


def exercise(data: bytes, *, cli: bool = True) -> str:
    """Read ``data`` and call every public accessor; return the case's outcome class.

    Returns
    -------
    str
        ``"rejected:<ErrorType>"`` when :func:`segread` refuses the file,
        ``"read:all-ok"`` when every accessor succeeded, else
        ``"read:some-typed-errors"``.

    Raises
    ------
    Exception
        Any exception that is not a :class:`DicomSegError` (the bug the
        fuzz suite looks for); :class:`CaseTimeout` for a hang.
    """
    from monai_dicomseg.seg.segmentation import segread

    results: list[str] = []
    with time_guard(), max_decoded_bytes(BUDGET_BYTES):
        seg = _call(results, "segread", lambda: segread(io.BytesIO(data)))
        if seg is not None:
            _call(results, "metadata", lambda: (seg.segment_numbers, seg.number_of_segments,
                                                seg.segmentation_type, seg.segmentation_fractional_type,
                                                seg.get_segment_numbers()))
            _call(results, "descriptions", lambda: _describe(seg))
            _call(results, "source_uids", seg.get_source_image_uids)
            _call(results, "get_volume", seg.get_volume)
            _call(results, "by_source", lambda: _by_source(seg))
            if _call(results, "is_tiled", lambda: seg.is_tiled):
                _call(results, "total_pixel_matrix", seg.get_total_pixel_matrix)
        if cli:
            _call(results, "cli_info", lambda: _cli_info(data))
    if results[0] != "segread:ok":
        outcome = "rejected:" + results[0].split(":", 1)[1]
    elif all(r.endswith(":ok") for r in results):
        outcome = "read:all-ok"
    else:
        outcome = "read:some-typed-errors"
    OUTCOMES[outcome] += 1
    for result in results[1:]:
        if not result.endswith(":ok"):
            OUTCOMES["accessor " + result] += 1
    return outcome
