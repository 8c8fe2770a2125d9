"""Padding of volume arrays along their three spatial axes."""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from enum import Enum

import numpy as np

from monai_dicomseg.enums import to_enum
from monai_dicomseg.errors import InputError, InputTypeError

__all__ = ["PadModes", "normalize_pad_width", "pad_spatial"]


class PadModes(Enum):
    """How new voxels are filled when a volume is padded."""

    CONSTANT = "CONSTANT"
    EDGE = "EDGE"
    MINIMUM = "MINIMUM"
    MAXIMUM = "MAXIMUM"
    MEAN = "MEAN"
    MEDIAN = "MEDIAN"


def _non_negative_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputTypeError(f"pad_width values must be integers; got {value!r}")
    if value < 0:
        raise InputError(f"pad_width values must be non-negative; got {value}")
    return int(value)


def normalize_pad_width(
    pad_width: "int | Sequence[int] | Sequence[Sequence[int]]",
) -> list[tuple[int, int]]:
    """Expand a ``numpy.pad``-style width to ``[(before, after)] * 3``.

    Accepted forms: ``n``; ``[before, after]``; ``[[n0], [n1], [n2]]``;
    ``[[b0, a0], [b1, a1], [b2, a2]]``; all values non-negative ints.
    """
    if isinstance(pad_width, (int, np.integer)) and not isinstance(pad_width, bool):
        n = _non_negative_int(pad_width)
        return [(n, n)] * 3
    if not isinstance(pad_width, (Sequence, np.ndarray)) or len(pad_width) == 0:
        raise InputTypeError(f"pad_width must be an int or a sequence; got {pad_width!r}")
    if all(isinstance(p, (int, np.integer)) for p in pad_width):
        if len(pad_width) != 2:
            raise InputError(f"pad_width as a flat sequence must be [before, after]; got {pad_width!r}")
        before, after = (_non_negative_int(p) for p in pad_width)
        return [(before, after)] * 3
    if len(pad_width) != 3 or not all(isinstance(p, (Sequence, np.ndarray)) for p in pad_width):
        raise InputError(f"pad_width must give one entry per spatial axis (3); got {pad_width!r}")
    lengths = {len(p) for p in pad_width}  # type: ignore[arg-type]  # entries checked to be Sequence/ndarray on the line above (mypy does not narrow through all())
    if lengths == {1}:
        return [(_non_negative_int(p[0]), _non_negative_int(p[0])) for p in pad_width]  # type: ignore[index]  # entries checked to be Sequence/ndarray above (mypy does not narrow through all())
    if lengths == {2}:
        return [(_non_negative_int(p[0]), _non_negative_int(p[1])) for p in pad_width]  # type: ignore[index]  # entries checked to be Sequence/ndarray above (mypy does not narrow through all())
    raise InputError(f"pad_width entries must all have length 1 or all length 2; got {pad_width!r}")


def _fill_value(array: np.ndarray, mode: PadModes, constant_value: float) -> object:
    if mode == PadModes.MINIMUM:
        return array.min()
    if mode == PadModes.MAXIMUM:
        return array.max()
    if mode == PadModes.MEAN:
        return array.mean()
    if mode == PadModes.MEDIAN:
        return np.median(array)
    return constant_value


def pad_spatial(
    array: np.ndarray,
    widths: Sequence[tuple[int, int]],
    *,
    mode: "PadModes | str" = PadModes.CONSTANT,
    constant_value: float = 0.0,
    per_channel: bool = False,
) -> np.ndarray:
    """Pad axes 0-2 of ``array`` (shape ``(F, R, C, *channels)``), keeping its dtype.

    Parameters
    ----------
    widths
        ``(before, after)`` for each spatial axis.
    mode
        :class:`PadModes` member or its name (case-insensitive).
    constant_value
        Fill value for ``CONSTANT``.
    per_channel
        For statistic modes (MINIMUM/MAXIMUM/MEAN/MEDIAN) compute the fill
        value from each channel separately.
    """
    pad_mode = to_enum(PadModes, mode.upper() if isinstance(mode, str) else mode, "mode")
    full = [tuple(w) for w in widths] + [(0, 0)] * (array.ndim - 3)
    if pad_mode == PadModes.EDGE:
        return np.pad(array, full, mode="edge")
    if not per_channel or array.ndim == 3 or pad_mode == PadModes.CONSTANT:
        return np.pad(array, full, mode="constant",  # type: ignore[call-overload]  # numpy stubs: constant_values is typed narrower than the array-dtype scalar _fill_value returns
                      constant_values=_fill_value(array, pad_mode, constant_value))
    out_shape = [s + b + a for s, (b, a) in zip(array.shape[:3], widths)] + list(array.shape[3:])
    result = np.empty(out_shape, dtype=array.dtype)
    for channel in itertools.product(*(range(n) for n in array.shape[3:])):
        index = (slice(None),) * 3 + channel
        result[index] = np.pad(array[index], full[:3], mode="constant",  # type: ignore[call-overload]  # numpy stubs: constant_values is typed narrower than the array-dtype scalar _fill_value returns
                               constant_values=_fill_value(array[index], pad_mode, constant_value))
    return result
