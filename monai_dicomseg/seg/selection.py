"""Validation of a requested list of segment numbers (shared by every read accessor)."""
from __future__ import annotations

from collections.abc import Sequence

from monai_dicomseg.errors import InputError

__all__ = ["check_segment_request"]


def check_segment_request(segment_numbers: Sequence[int], available: Sequence[int]) -> list[int]:
    """Return ``segment_numbers`` as ints, refusing empty, unknown or repeated numbers."""
    requested = [int(s) for s in segment_numbers]
    if len(requested) == 0:
        raise InputError("segment_numbers may not be empty; expected at least one segment number")
    invalid = sorted(set(requested) - set(available))
    if invalid:
        raise InputError(
            f"segment_numbers contains {invalid}, not defined in SegmentSequence; "
            f"expected values from {list(available)}"
        )
    if len(set(requested)) != len(requested):
        raise InputError(f"segment_numbers must not repeat a segment; got {requested}")
    return requested
