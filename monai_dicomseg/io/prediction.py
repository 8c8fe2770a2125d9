"""Model outputs to SEG pixel arrays: input kinds, channel -> segment plans, discretisation.

A model output is channel-first ``(C, X, Y, Z)`` on its own grid. It is one of

``"labels"``
    one channel of integer label values (``AsDiscrete(argmax=True)`` output);
``"onehot"``
    C channels of 0/1 (``AsDiscrete(to_onehot=...)``, multi-label masks);
``"probabilities"``
    C channels in [0, 1] (softmax with or without a background channel, or
    independent sigmoids).

:func:`plan_segments` decides which label values / channels become which
segment numbers (1-based, contiguous; PS3.3 C.8.20.2) and builds the
segment descriptions; :func:`to_source_grid` produces the array the SEG
encoder takes, already on the source grid (see :mod:`monai_dicomseg.io.grid`):

* BINARY / LABELMAP, ``discretize="argmax"``: ``(F, R, C)`` label map of
  segment numbers (mutually exclusive segments);
* BINARY / LABELMAP, ``discretize="threshold"``: ``(F, R, C, S) uint8``
  stacked masks (``value >= threshold``; segments may overlap, BINARY only);
* FRACTIONAL: ``(F, R, C, S) float32`` probabilities, quantised by the encoder
  to ``max_fractional_value`` (PS3.3 C.8.20.2.3).

Threshold/argmax policy (``discretize="auto"``): argmax when the output has a
background channel (softmax), else threshold (sigmoid, one-hot). Argmax
without a background channel leaves a voxel empty unless its best channel
reaches ``threshold``. Interpolation (``"auto"``): nearest for labels and
one-hot, linear for probabilities (argmax/threshold applied *after*
resampling, on the source grid).
"""
from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from monai_dicomseg.anatomy import (
    describe_segment, segment_descriptions_from_dcmqi, segment_descriptions_from_names, terms_for_names,
)
from monai_dicomseg.errors import InputError, InputTypeError
from monai_dicomseg.io.grid import GridPlan, argmax_on_grid, channel_argmax, iter_linear_slabs, map_nearest
from monai_dicomseg.seg.content import AlgorithmIdentificationSequence, SegmentDescription

__all__ = ["INPUT_KINDS", "DISCRETIZE", "INTERPOLATION", "SegmentPlan", "classify_input", "value_range",
           "check_probabilities", "plan_segments", "to_source_grid"]

INPUT_KINDS = ("auto", "labels", "onehot", "probabilities")
DISCRETIZE = ("auto", "argmax", "threshold")
INTERPOLATION = ("auto", "nearest", "linear")
_PROBABILITY_TOLERANCE = 1e-4


@dataclass
class SegmentPlan:
    """Which input values become which segments.

    Attributes
    ----------
    kind
        ``"labels"``, ``"onehot"`` or ``"probabilities"``.
    sources
        Per segment (segment number ``i + 1``): label value (labels) or channel index.
    background
        Background channel index (channel inputs) or None.
    descriptions
        Segment descriptions numbered ``1..len(sources)``.
    """

    kind: str
    sources: list[int]
    background: "int | None"
    descriptions: list[SegmentDescription]

    @property
    def labels(self) -> list[str]:
        """Segment labels in segment-number order."""
        return [str(d.SegmentLabel) for d in self.descriptions]


def _choice(value: Any, allowed: Sequence[str], argument: str) -> str:
    text = str(getattr(value, "value", value)).lower()
    if text not in allowed:
        raise InputError(f"{argument} must be one of {list(allowed)}; got {value!r}")
    return text


def value_range(array: np.ndarray) -> "tuple[float, float]":
    """``(min, max)`` of ``array`` in one multi-threaded pass, without temporaries.

    NaN anywhere makes both NaN (``torch.aminmax`` propagates it), so the
    result also answers "any NaN / infinity?" without an ``isfinite`` mask.
    """
    import torch

    if array.size == 0:
        return 0.0, 0.0
    if array.dtype == bool:
        array = array.view(np.uint8)
    try:
        low, high = torch.aminmax(torch.from_numpy(np.ascontiguousarray(array)))
        return float(low), float(high)
    except (TypeError, RuntimeError, ValueError):  # dtypes torch lacks (float128, big-endian, ...)
        return float(np.min(array)), float(np.max(array))


def classify_input(array: np.ndarray, kind: str = "auto",
                   values: "tuple[float, float] | None" = None) -> str:
    """Kind of a channel-first ``(C, X, Y, Z)`` output (see module docstring).

    Parameters
    ----------
    array
        ``(C, X, Y, Z)`` model output.
    kind
        ``"auto"`` or one of :data:`INPUT_KINDS`.
    values
        ``(min, max)`` of ``array`` when already known (:func:`value_range`).

    Raises
    ------
    InputError
        Contradicting an explicit ``kind`` (non-integer labels, one-hot values
        other than 0/1), or NaN values.
    """
    kind = _choice(kind, INPUT_KINDS, "input_kind")
    integral = array.dtype == bool or np.issubdtype(array.dtype, np.integer)
    if not integral:
        low, high = values if values is not None else value_range(array)
        if np.isnan(low) or np.isnan(high):
            raise InputError("the model output contains NaN values; expected probabilities in [0, 1] or labels")
    if kind == "auto":
        if integral or array.shape[0] == 1:
            is_int = integral or bool(np.all(np.mod(array, 1) == 0))
            if array.shape[0] == 1 and is_int:
                return "labels"
            if is_int and array.min() >= 0 and array.max() <= 1:
                return "onehot"
            if integral:
                raise InputError(
                    f"an integer output with {array.shape[0]} channels must be one-hot (0/1); got values "
                    f"{int(array.min())}..{int(array.max())} (use one channel for a label map)")
            return "probabilities"
        return "onehot" if _is_binary(array) else "probabilities"
    if kind == "labels":
        if array.shape[0] != 1:
            raise InputError(f"input_kind='labels' needs one channel; got {array.shape[0]}")
        if not integral and not np.all(np.mod(array, 1) == 0):
            raise InputError("input_kind='labels' needs integer label values; got fractional values")
        if array.min() < 0:
            raise InputError(f"label values must be >= 0; got {array.min()}")
    if kind == "onehot" and not np.all((array == 0) | (array == 1)):
        raise InputError("input_kind='onehot' needs values 0 and 1 only")
    return kind


def _is_binary(array: np.ndarray) -> bool:
    """All values 0 or 1 (a cheap sample first: probabilities fail it at once)."""
    flat = array.reshape(-1)
    sample = flat[: 1 << 16]
    if not np.all((sample == 0) | (sample == 1)):
        return False
    return bool(np.all((flat == 0) | (flat == 1)))


def check_probabilities(array: np.ndarray, values: "tuple[float, float] | None" = None) -> None:
    """Raise InputError unless every value is finite and in [0, 1].

    One fused min/max pass (:func:`value_range`, or ``values`` when already
    known): NaN propagates into both, infinities fall outside [0, 1].
    """
    low, high = values if values is not None else value_range(array)
    if not (np.isfinite(low) and np.isfinite(high)):
        raise InputError("the model output contains NaN or infinite values; expected probabilities in [0, 1]")
    if low < -_PROBABILITY_TOLERANCE or high > 1 + _PROBABILITY_TOLERANCE:
        raise InputError(
            f"probabilities must lie in [0, 1]; got values in [{low:.4g}, {high:.4g}] "
            "(apply Activations(softmax=True) or sigmoid to logits first)")


# --------------------------------------------------------------------------- segments


def _is_dcmqi(labels: Any) -> bool:
    if isinstance(labels, Mapping):
        return "segmentAttributes" in labels
    if isinstance(labels, (str, os.PathLike)):
        text = str(labels)
        return text.lower().endswith(".json") or text.lstrip().startswith("{")
    return False


def _renumbered(description: SegmentDescription, number: int) -> SegmentDescription:
    if not isinstance(description, SegmentDescription):
        raise InputTypeError(f"expected a SegmentDescription; got {type(description).__name__}")
    if int(description.SegmentNumber) == number:
        return description
    result = copy.deepcopy(description)
    result.SegmentNumber = number
    return result


def _keyed(labels: Any, algorithm: "AlgorithmIdentificationSequence | None", algorithm_type: str
           ) -> "tuple[list[int] | None, list[SegmentDescription]]":
    """``(keys or None, descriptions numbered 1..n)`` from any accepted ``labels`` form."""
    if _is_dcmqi(labels):
        pairs = segment_descriptions_from_dcmqi(labels, algorithm)
        return [key for key, _ in pairs], [d for _, d in pairs]
    if isinstance(labels, Mapping):
        keys = []
        for key in labels:
            if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or key < 0:
                raise InputError(f"labels keys must be label values / channel indices >= 0; got {key!r}")
            keys.append(int(key))
        keys.sort()
        values = [labels[k] for k in keys]
        if all(isinstance(v, SegmentDescription) for v in values):
            return keys, [_renumbered(v, i + 1) for i, v in enumerate(values)]
        if not all(isinstance(v, str) for v in values):
            raise InputTypeError("labels values must be all names (str) or all SegmentDescriptions")
        return keys, segment_descriptions_from_names(values, algorithm, algorithm_type)
    if isinstance(labels, Sequence) and not isinstance(labels, (str, bytes)):
        items = list(labels)
        if not items:
            raise InputError("labels must not be empty")
        if all(isinstance(v, SegmentDescription) for v in items):
            return None, [_renumbered(v, i + 1) for i, v in enumerate(items)]
        if all(isinstance(v, str) for v in items):
            return None, segment_descriptions_from_names(items, algorithm, algorithm_type)
        raise InputTypeError("labels must hold only names (str) or only SegmentDescriptions")
    raise InputTypeError(
        "labels must be a list of names, a {value: name} mapping, SegmentDescriptions or a dcmqi "
        f"metadata JSON (path or dict); got {type(labels).__name__}")


def plan_segments(
    kind: str,
    n_channels: int,
    labels: Any,
    *,
    channels: "Sequence[int] | None" = None,
    background: "bool | int | None" = None,
    present: "Sequence[int] | None" = None,
    algorithm_identification: "AlgorithmIdentificationSequence | None" = None,
    algorithm_type: str = "AUTOMATIC",
) -> SegmentPlan:
    """Decide the segments of an output.

    Parameters
    ----------
    kind
        From :func:`classify_input`.
    n_channels
        ``C`` of the output.
    labels
        Names / SegmentDescriptions (list: label values ``1..n`` for label
        inputs, channels for channel inputs), ``{value_or_channel: name}``,
        or dcmqi metadata (``labelID`` = value or channel). None: one generic
        segment per label value present / per non-background channel.
    channels
        Channel indices that are segments (channel inputs); default: all
        channels but the background.
    background
        Background channel index, True (channel 0), False (none) or None
        (channel 0 when ``C`` is one more than the number of labels, or when
        ``labels`` is None and ``C > 1``).
    present
        Label values present in a label input (to check and for defaults).

    Raises
    ------
    InputError
        Channel count not matching ``labels``; label values without a name;
        channel indices out of range.
    """
    keys, descriptions = (None, None) if labels is None else _keyed(labels, algorithm_identification, algorithm_type)
    if kind == "labels":
        values = sorted(int(v) for v in (present or []) if int(v) != 0)
        if descriptions is None:
            keys = values or []
            names = [f"Segment {v}" for v in keys]
            descriptions = [describe_segment(i + 1, t, algorithm_identification, algorithm_type)
                            for i, t in enumerate(terms_for_names(names, warn=False))]
        elif keys is None:
            keys = list(range(1, len(descriptions) + 1))
        unknown = sorted(set(values) - set(keys))
        if unknown:
            raise InputError(f"label values {unknown} in the output have no entry in labels (known: {keys})")
        return SegmentPlan(kind, list(keys), None, descriptions)
    # channel inputs
    if isinstance(background, bool):
        background_channel: "int | None" = 0 if background else None
    elif background is None:
        count = None if descriptions is None else len(descriptions)
        if channels is not None or keys is not None:
            chosen = set(channels if channels is not None else keys or [])
            background_channel = 0 if 0 not in chosen and n_channels > 1 else None
        elif count is None:
            background_channel = 0 if n_channels > 1 else None
        else:
            background_channel = 0 if n_channels == count + 1 else None
    else:
        background_channel = int(background)
    if channels is None:
        channels = keys if keys is not None else [c for c in range(n_channels) if c != background_channel]
    channels = [int(c) for c in channels]
    bad = [c for c in channels + ([] if background_channel is None else [background_channel])
           if not 0 <= c < n_channels]
    if bad:
        raise InputError(f"channel indices {bad} are out of range for an output with {n_channels} channels")
    if background_channel in channels:
        raise InputError(f"channel {background_channel} cannot be both background and a segment")
    if descriptions is None:
        names = [f"Segment {i + 1}" for i in range(len(channels))]
        descriptions = [describe_segment(i + 1, t, algorithm_identification, algorithm_type)
                        for i, t in enumerate(terms_for_names(names, warn=False))]
    if len(descriptions) != len(channels):
        raise InputError(
            f"the output has {n_channels} channels ({len(channels)} segment channel(s) {channels}"
            f"{'' if background_channel is None else f', background channel {background_channel}'}) "
            f"but labels describe {len(descriptions)} segment(s); pass channels= or background=")
    return SegmentPlan(kind, channels, background_channel, descriptions)


# --------------------------------------------------------------------------- arrays


def _select_channels(array: np.ndarray, channels: Sequence[int]) -> np.ndarray:
    """``array[channels]``: a view (no copy) when the channels are a contiguous ascending run."""
    channels = [int(c) for c in channels]
    if channels and channels == list(range(channels[0], channels[0] + len(channels))):
        return array[channels[0]:channels[0] + len(channels)]
    return array[channels]


def _label_dtype(count: int) -> type:
    return np.uint8 if count < 256 else np.uint16


def to_source_grid(
    array: np.ndarray,
    plan: SegmentPlan,
    grid: GridPlan,
    segmentation_type: str,
    *,
    discretize: str = "auto",
    threshold: float = 0.5,
    interpolation: str = "auto",
) -> np.ndarray:
    """The SEG pixel array on the source grid (see module docstring for shapes).

    Parameters
    ----------
    array
        ``(C, X, Y, Z)`` model output (numpy).
    plan
        From :func:`plan_segments`.
    grid
        From :func:`~monai_dicomseg.io.grid.plan_grid_mapping`.
    segmentation_type
        ``"BINARY"``, ``"FRACTIONAL"`` or ``"LABELMAP"``.
    """
    discretize = _choice(discretize, DISCRETIZE, "discretize")
    interpolation = _choice(interpolation, INTERPOLATION, "interpolation")
    if not 0.0 < float(threshold) <= 1.0:
        raise InputError(f"threshold must be in (0, 1]; got {threshold}")
    n = len(plan.sources)
    dtype = _label_dtype(n)
    if plan.kind == "labels":
        lookup = np.zeros(int(max([*plan.sources, 0])) + 1, dtype=dtype)
        lookup[plan.sources] = np.arange(1, n + 1, dtype=dtype)
        values = array[0]
        values = values.astype(np.intp) if values.dtype.kind == "f" or values.dtype == bool else values
        labels = lookup[np.clip(values, 0, lookup.size - 1)]
        mapped = map_nearest(labels, grid)
        if segmentation_type == "FRACTIONAL":
            return (mapped[..., None] == np.arange(1, n + 1, dtype=dtype)).astype(np.float32)
        return mapped
    if interpolation == "auto":
        interpolation = "nearest" if plan.kind == "onehot" else "linear"
    if segmentation_type == "FRACTIONAL":
        segment_channels = _select_channels(array, plan.sources)
        if interpolation == "nearest":
            stacked = map_nearest(segment_channels, grid).astype(np.float32)
        else:
            stacked = np.empty((n, *grid.source_shape), dtype=np.float32)
            for start, stop, values in iter_linear_slabs(segment_channels, grid):
                stacked[:, start:stop] = values
        return np.clip(np.moveaxis(stacked, 0, -1), 0.0, 1.0)
    if discretize == "auto":
        discretize = "argmax" if plan.background is not None else "threshold"
    if discretize == "argmax":
        if plan.background is not None:
            order = [plan.background, *plan.sources]
            lookup = np.arange(0, n + 1, dtype=dtype)
            scores = _select_channels(array, order)
        else:  # a virtual background at the threshold: best channel must reach it
            scores = np.concatenate([array[plan.sources].astype(np.float32, copy=False),
                                     np.full((1, *array.shape[1:]), threshold, dtype=np.float32)])
            lookup = np.append(np.arange(1, n + 1), 0).astype(dtype)
        if interpolation == "nearest":  # argmax on the (smaller) model grid, then copy small labels
            return map_nearest(lookup[channel_argmax(scores)], grid)
        return argmax_on_grid(scores, grid, lookup)
    # threshold: stacked, possibly overlapping masks
    segment_channels = _select_channels(array, plan.sources)
    if interpolation == "nearest":
        return np.ascontiguousarray(np.moveaxis(map_nearest(segment_channels >= threshold, grid), 0, -1)
                                    ).astype(np.uint8)
    stacked = np.empty((*grid.source_shape, n), dtype=np.uint8)
    for start, stop, values in iter_linear_slabs(segment_channels, grid):
        stacked[start:stop] = np.moveaxis(values >= threshold, 0, -1)
    return stacked
