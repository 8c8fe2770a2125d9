"""Model outputs to SEG pixel arrays: input kinds, channel -> segment plans, discretisation.

A model output is channel-first ``(C, X, Y, Z)`` on its own grid. It is one of

``"labels"``
    one channel of integer label values (``AsDiscrete(argmax=True)`` output);
``"onehot"``
    C channels of 0/1 (``AsDiscrete(to_onehot=...)``, multi-label masks);
``"probabilities"``
    C channels in [0, 1] (softmax with or without a background channel, or
    independent sigmoids).

:func:`plan_output_segments` decides which label values / channels become which
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import EllipsisType
from typing import Any

import numpy as np

from monai_dicomseg.anatomy import (
    describe_segment, segment_descriptions_from_dcmqi, segment_descriptions_from_names, terms_for_names,
)
from monai_dicomseg.enums import Discretize, InputKind, Interpolation, SegmentationTypeValues, to_enum
from monai_dicomseg.errors import InputError, InputTypeError
from monai_dicomseg.io import device_grid
from monai_dicomseg.io.grid import (
    GridPlan, argmax_on_grid, channel_argmax, iter_linear_slabs, iter_support_slabs, map_nearest,
)
from monai_dicomseg.seg.content import AlgorithmIdentificationSequence, SegmentDescription
from monai_dicomseg.seg.inputs import StackedSegmentSource

__all__ = ["INPUT_KINDS", "DISCRETIZE", "INTERPOLATION", "BACKGROUND_NAMES", "OutputSegmentPlan", "classify_input",
           "resolve_interpolation", "resolve_discretize",
           "value_range", "check_probabilities", "is_background_name", "is_channel_partition", "label_value_names",
           "plan_output_segments", "values_text",
           "to_source_grid", "describe_tensor"]

INPUT_KINDS = tuple(kind.value for kind in InputKind)
DISCRETIZE = tuple(choice.value for choice in Discretize)
INTERPOLATION = tuple(choice.value for choice in Interpolation)
_PROBABILITY_TOLERANCE = 1e-4
_FRACTIONAL = SegmentationTypeValues.FRACTIONAL.value  # segmentation_type is check_segmentation_type's str


@dataclass
class OutputSegmentPlan:
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


def resolve_interpolation(interpolation: "str | Interpolation", kind: "str | InputKind") -> Interpolation:
    """The interpolation of a channel output (the one place ``"auto"`` is decided).

    ``"auto"``: nearest for one-hot channels (0/1 stay 0/1), linear for probabilities.
    """
    choice = to_enum(Interpolation, interpolation, "interpolation")
    if choice is not Interpolation.AUTO:
        return choice
    return Interpolation.NEAREST if kind == InputKind.ONEHOT else Interpolation.LINEAR


def resolve_discretize(discretize: "str | Discretize", background: "int | None") -> Discretize:
    """How channels become BINARY / LABELMAP segments (the one place ``"auto"`` is decided).

    ``"auto"``: argmax when the output has a background channel, else a threshold per channel.
    """
    choice = to_enum(Discretize, discretize, "discretize")
    if choice is not Discretize.AUTO:
        return choice
    return Discretize.ARGMAX if background is not None else Discretize.THRESHOLD


def value_range(array: np.ndarray) -> "tuple[float, float]":
    """``(min, max)`` of ``array`` in one multi-threaded pass, without temporaries.

    NaN anywhere makes both NaN (``torch.aminmax`` propagates it), so the
    result also answers "any NaN / infinity?" without an ``isfinite`` mask.
    """
    if array.size == 0:
        return 0.0, 0.0
    if array.dtype == bool:
        array = array.view(np.uint8)
    try:
        import torch  # the light install (no torch) takes numpy's two passes below
    except ImportError:
        return float(np.min(array)), float(np.max(array))
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
    kind = to_enum(InputKind, kind, "input_kind")
    integral = array.dtype == bool or np.issubdtype(array.dtype, np.integer)
    if not integral:
        low, high = values if values is not None else value_range(array)
        if np.isnan(low) or np.isnan(high):
            raise InputError("the model output contains NaN values; expected probabilities in [0, 1] or labels")
    if kind is InputKind.AUTO:
        if integral or array.shape[0] == 1:
            is_int = integral or bool(np.all(np.mod(array, 1) == 0))
            if array.shape[0] == 1 and is_int:
                return InputKind.LABELS
            if is_int and array.min() >= 0 and array.max() <= 1:
                return InputKind.ONEHOT
            if integral:
                raise InputError(
                    f"an integer output with {array.shape[0]} channels must be one-hot (0/1); got values "
                    f"{int(array.min())}..{int(array.max())} (use one channel for a label map)")
            return InputKind.PROBABILITIES
        return InputKind.ONEHOT if _is_binary(array) else InputKind.PROBABILITIES
    if kind is InputKind.LABELS:
        if array.shape[0] != 1:
            raise InputError(f"input_kind='labels' needs one channel; got {array.shape[0]}")
        if not integral and not np.all(np.mod(array, 1) == 0):
            raise InputError("input_kind='labels' needs integer label values; got fractional values")
        if array.min() < 0:
            raise InputError(f"label values must be >= 0; got {array.min()}")
    if kind is InputKind.ONEHOT and not np.all((array == 0) | (array == 1)):
        raise InputError("input_kind='onehot' needs values 0 and 1 only")
    return kind


def describe_tensor(tensor: Any, kind: str = "auto") -> "tuple[str, list | None, Callable[[], bool]]":
    """:func:`classify_input` (and :func:`check_probabilities`) of a torch tensor on its device.

    The same rules, computed with torch reductions where the tensor lives
    (nothing the size of the output crosses to the host).

    Returns
    -------
    tuple
        ``(kind, present label values or None, partition test)`` for
        :func:`plan_output_segments`.
    """
    import torch

    kind = to_enum(InputKind, kind, "input_kind")
    values = device_grid.as_tensor(tensor)
    values = values.to(torch.uint8) if values.dtype == torch.bool else values
    integral = not values.dtype.is_floating_point
    low, high = (float(v) for v in torch.aminmax(values)) if values.numel() else (0.0, 0.0)
    if not integral and (np.isnan(low) or np.isnan(high)):
        raise InputError("the model output contains NaN values; expected probabilities in [0, 1] or labels")
    channels = int(values.shape[0])

    def whole() -> bool:
        return integral or bool((torch.remainder(values, 1) == 0).all())

    def binary() -> bool:
        return bool(((values == 0) | (values == 1)).all())

    if kind is InputKind.AUTO:
        if integral or channels == 1:
            if channels == 1 and whole():
                kind = InputKind.LABELS
            elif whole() and low >= 0 and high <= 1:
                kind = InputKind.ONEHOT
            elif integral:
                raise InputError(
                    f"an integer output with {channels} channels must be one-hot (0/1); got values "
                    f"{int(low)}..{int(high)} (use one channel for a label map)")
            else:
                kind = InputKind.PROBABILITIES
        else:
            kind = InputKind.ONEHOT if binary() else InputKind.PROBABILITIES
    elif kind is InputKind.LABELS:
        if channels != 1:
            raise InputError(f"input_kind='labels' needs one channel; got {channels}")
        if not whole():
            raise InputError("input_kind='labels' needs integer label values; got fractional values")
        if low < 0:
            raise InputError(f"label values must be >= 0; got {low}")
    elif kind is InputKind.ONEHOT and not binary():
        raise InputError("input_kind='onehot' needs values 0 and 1 only")
    if kind is InputKind.PROBABILITIES:
        check_probabilities(None, (low, high))  # type: ignore[arg-type]  # with values given, array is not read
    present = torch.unique(values).tolist() if kind is InputKind.LABELS else None

    def partition() -> bool:
        if channels < 2:
            return False
        step = 16
        for start in range(0, int(values.shape[-1]), step):
            total = values[..., start:start + step].sum(dim=0, dtype=torch.float32)
            if not float((total - 1.0).abs().max()) <= 1e-3:
                return False
        return True

    return kind, present, partition


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

#: Names that mark the background entry of ``labels`` (compared case-insensitively,
#: surrounding spaces and underscores ignored, so ``"_background_"`` matches).
BACKGROUND_NAMES = frozenset({"background", "bg"})


def is_background_name(name: Any) -> bool:
    """Whether ``name`` (a label name or a SegmentDescription) names the background."""
    if isinstance(name, SegmentDescription):
        name = name.get("SegmentLabel", "")
    if not isinstance(name, str):
        return False
    return name.strip().strip("_").strip().lower() in BACKGROUND_NAMES


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


def _label_key(key: Any) -> int:
    """A ``labels`` mapping key as an int: ints, or digit strings (a bundle's ``channel_def``)."""
    if isinstance(key, str) and key.strip().isdigit():
        return int(key.strip())
    if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or key < 0:
        raise InputError(
            "labels keys must be label values / channel indices >= 0 (int, or a digit string as in a "
            f"bundle's channel_def); got {key!r}")
    return int(key)


@dataclass
class _Labels:
    """``labels`` normalised: which entries (list positions or keys) name which segments.

    ``positions`` are list indices (``listed``) or mapping keys / dcmqi
    labelIDs; ``descriptions`` (numbered 1..n) belong to them in order;
    ``background`` is the position/key of the entry named background, if any;
    ``length`` counts every entry, background included.
    """

    listed: bool
    positions: list[int]
    descriptions: list[SegmentDescription]
    background: "int | None"
    length: int


def _split_background(positions: list[int], entries: list[Any], what: str) -> "tuple[list[int], list[Any], int | None]":
    background = [p for p, e in zip(positions, entries) if is_background_name(e)]
    if len(background) > 1:
        raise InputError(f"labels names the background more than once ({what} {background})")
    kept = [(p, e) for p, e in zip(positions, entries) if not is_background_name(e)]
    return [p for p, _ in kept], [e for _, e in kept], (background[0] if background else None)


def _split_labels(labels: Any) -> "tuple[bool, list[int], list[Any], int | None, int]":
    """``(listed, positions, entries, background, length)`` of a list / mapping ``labels`` (no dcmqi)."""
    if isinstance(labels, Mapping):
        converted: dict[int, Any] = {}
        for key, value in labels.items():
            number = _label_key(key)
            if number in converted:
                raise InputError(f"labels has key {number} twice (as {key!r} and as another spelling)")
            converted[number] = value
        if not converted:
            raise InputError("labels must not be empty")
        keys = sorted(converted)
        values = [converted[k] for k in keys]
        listed = False
    elif isinstance(labels, Sequence) and not isinstance(labels, (str, bytes)):
        values = list(labels)
        if not values:
            raise InputError("labels must not be empty")
        keys = list(range(len(values)))
        listed = True
    else:
        raise InputTypeError(
            "labels must be a list of names, a {value: name} mapping (int or digit-string keys), "
            f"SegmentDescriptions or a dcmqi metadata JSON (path or dict); got {type(labels).__name__}")
    if not (all(isinstance(v, SegmentDescription) for v in values) or all(isinstance(v, str) for v in values)):
        raise InputTypeError("labels must hold only names (str) or only SegmentDescriptions")
    positions, entries, background = _split_background(keys, values, "position" if listed else "key")
    return listed, positions, entries, background, len(values)


def _normalise_labels(labels: Any, algorithm: "AlgorithmIdentificationSequence | None",
                      algorithm_type: str) -> _Labels:
    """Any accepted ``labels`` form as :class:`_Labels` (background entry set apart, never described)."""
    if _is_dcmqi(labels):
        pairs = segment_descriptions_from_dcmqi(labels, algorithm)
        keys, entries, background = _split_background([k for k, _ in pairs], [d for _, d in pairs], "labelID")
        return _Labels(False, keys, [_renumbered(d, i + 1) for i, d in enumerate(entries)], background,
                       len(pairs))
    listed, positions, entries, background, length = _split_labels(labels)
    if entries and isinstance(entries[0], SegmentDescription):
        descriptions = [_renumbered(v, i + 1) for i, v in enumerate(entries)]
    else:
        descriptions = segment_descriptions_from_names(entries, algorithm, algorithm_type) if entries else []
    return _Labels(listed, positions, descriptions, background, length)


def _label_output_keys(listed: bool, positions: list[int], background: "int | None") -> "tuple[list[int], int | None]":
    """``(label value of each named entry, background value)`` for a label output (see plan_output_segments)."""
    if listed:
        if background not in (None, 0):
            raise InputError(
                f"labels names the background at position {background}; in a list for a label output "
                "the background can only be the first entry (value 0)")
        # with a leading background name, entry i names value i; otherwise entry i names value i + 1
        return (list(positions) if background == 0 else [p + 1 for p in positions]), background
    if 0 in positions:
        raise InputError(
            "labels names label value 0, which is the background of a label output and never a segment; "
            "name it 'background' or leave it out")
    return list(positions), background


def label_value_names(labels: Any) -> "tuple[dict[int, str], int | None]":
    """``({label value: name}, background value)`` for a label map, by the rule of :func:`plan_output_segments`.

    ``labels`` is a list of names or a ``{value: name}`` mapping (int or
    digit-string keys); the background entry is left out of the names (its
    value, if named, is returned apart; value 0 is always background). Used by
    the command line (``from-nifti --labels``) so that it reads names exactly
    as the MONAI writer does.
    """
    listed, positions, entries, background, _ = _split_labels(labels)
    keys, background = _label_output_keys(listed, positions, background)
    return {key: str(getattr(entry, "SegmentLabel", entry)) for key, entry in zip(keys, entries)}, background


def values_text(values: Sequence[int]) -> str:
    """Label values for an error message: ``"1..5"`` for a run, else up to 20 listed (``"1, 3, ..."``)."""
    values = sorted(values)
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}..{values[-1]}"
    return ", ".join(str(v) for v in values[:20]) + (", ..." if len(values) > 20 else "")


def _generic(count: int, algorithm: "AlgorithmIdentificationSequence | None",
             algorithm_type: str) -> list[SegmentDescription]:
    names = [f"Segment {i + 1}" for i in range(count)]
    return [describe_segment(i + 1, t, algorithm, algorithm_type)
            for i, t in enumerate(terms_for_names(names, warn=False))]


def _plan_label_values(given: "_Labels | None", present: Sequence[int],
                       algorithm: "AlgorithmIdentificationSequence | None", algorithm_type: str) -> OutputSegmentPlan:
    values = sorted(int(v) for v in present if int(v) != 0)
    if given is None:
        keys = values
        descriptions = [describe_segment(i + 1, t, algorithm, algorithm_type)
                        for i, t in enumerate(terms_for_names([f"Segment {v}" for v in keys], warn=False))]
        return OutputSegmentPlan("labels", keys, None, descriptions)
    keys, background = _label_output_keys(given.listed, given.positions, given.background)
    known = set(keys) | ({background} if background is not None else set())
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(
            f"the output has label values {values_text(values)} but labels names {len(keys)} "
            f"(values {values_text(keys) or 'none'}); label values {values_text(unknown)} have no entry in "
            "labels")
    return OutputSegmentPlan("labels", keys, None, given.descriptions)


def _check_every_channel_named(given: _Labels, n_channels: int, background: "int | None") -> None:
    """Raise unless a mapping / dcmqi ``labels`` names every channel that is not the background.

    The same count rule as for a list: an output channel without an entry
    would otherwise be dropped without a word (a 3-entry ``channel_def`` on a
    4-channel softmax wrote channel 3's voxels as background).
    """
    named = set(given.positions) | ({given.background} if given.background is not None else set())
    unnamed = [c for c in range(n_channels) if c not in named and c != background]
    if unnamed:
        keys = sorted(named)
        raise InputError(
            f"the output has {n_channels} channel(s) but labels names {len(keys)} (keys {values_text(keys)}"
            f"{'' if background is None else f', background channel {background}'}); channel(s) "
            f"{values_text(unnamed)} have no entry in labels; name every channel (e.g. add "
            f"{{\"{unnamed[0]}\": \"<name>\"}} to the channel_def) or pass channels= to write only some")


def _explicit_background(background: "bool | int | None") -> "int | None | bool | EllipsisType":
    """Channel index of an explicit ``background``, None for ``False``, ``...`` (Ellipsis) when not given."""
    if background is None:
        return ...
    if isinstance(background, (bool, np.bool_)):
        return 0 if background else None
    return int(background)


def plan_output_segments(
    kind: str,
    n_channels: int,
    labels: Any,
    *,
    channels: "Sequence[int] | None" = None,
    background: "bool | int | None" = None,
    present: "Sequence[int] | None" = None,
    partition: "Callable[[], bool] | bool | None" = None,
    algorithm_identification: "AlgorithmIdentificationSequence | None" = None,
    algorithm_type: str = "AUTOMATIC",
) -> OutputSegmentPlan:
    """Decide the segments of an output: the ``labels`` contract.

    ``labels`` is a list of names (or SegmentDescriptions), a mapping
    ``{value_or_channel: name}`` with int or digit-string keys (a MONAI
    bundle's ``channel_def`` such as ``{"0": "background", "1": "liver"}``),
    a dcmqi metadata JSON (``labelID`` = value or channel), or None (generic
    ``Segment <n>`` names). An entry named ``"background"`` / ``"bg"`` /
    ``"_background_"`` (any case) marks the background value or channel and is
    never written as a segment (PS3.3 C.8.20.2: segments are the labelled
    structures; the background is the absence of all of them).

    **Label output** (one channel of integer values, ``AsDiscrete(argmax=True)``):
    value 0 is the background. A list names label values: if its first entry
    is a background name, entry ``i`` names value ``i``, otherwise entry ``i``
    names value ``i + 1``. A mapping names values by key. A label value present
    in the output without a name is an error naming both counts::

        labels=["background", "liver", "spleen"]   # values 1, 2 -> liver, spleen
        labels=["liver", "spleen"]                 # the same
        labels={"0": "background", "1": "liver", "2": "spleen"}  # the same

    **Channel outputs** (C channels: one-hot, softmax, sigmoid). A list of
    length C names the channels by index (a background name marks the
    background channel). A list of length C - 1 names channels 1..C-1 and is
    accepted only when channel 0 is known to be the background: explicit
    ``background=0`` (or True), or an output that partitions every voxel
    (softmax or one-hot whose channels sum to 1), where argmax needs a
    background channel anyway. A list of length C without a background name
    on such a partition is an error (the background channel would silently
    become the first name) unless ``background=False`` says every channel is a
    segment. A mapping names channels by key; channel 0 is the background when
    it is not named (as before). Any other length is an error naming both
    counts. A mapping (or dcmqi JSON) must name every channel that is not
    the background, like a list of length C or C - 1: a channel without an
    entry is an InputError naming both counts, never dropped silently
    (explicit ``channels=`` still selects the channels to write). Examples::

        # one-hot (B, liver, spleen) from AsDiscrete(to_onehot=3)
        labels={"0": "background", "1": "liver", "2": "spleen"}  # or ["background", "liver", "spleen"]
        # softmax with background (3 channels, sum 1): argmax, channel 0 not written
        labels=["liver", "spleen"]                  # channels 1, 2 (channel 0 is background)
        labels=["liver", "spleen", "kidney"]        # error: names 3 channels of a softmax without background
        # sigmoid multi-label (3 channels, independent): every channel a segment, threshold
        labels=["liver", "tumor", "vessel"]

    Parameters
    ----------
    kind
        From :func:`classify_input`.
    n_channels
        ``C`` of the output.
    labels
        See above.
    channels
        Channel indices that are segments (channel inputs); the non-background
        entries of a ``labels`` list then name these channels in order.
    background
        Background channel index, True (channel 0), False (none) or None
        (decided from ``labels`` as above; without ``labels``: channel 0 when
        ``C > 1``).
    present
        Label values present in a label input (to check and for defaults).
    partition
        Whether the channels sum to 1 in every voxel (softmax / one-hot of an
        argmax), or a callable computing it on demand.

    Raises
    ------
    InputError
        Any mismatch between ``labels`` and the output (counts named), label
        values without a name, channel indices out of range, a background
        named twice or contradicting ``background``.
    """
    # long because: the labels contract is one decision table (labels form x background x channel count);
    # split across functions its cases would no longer read side by side with the docstring above.
    given = None if labels is None else _normalise_labels(labels, algorithm_identification, algorithm_type)
    channels_given = channels is not None
    if kind == "labels":
        return _plan_label_values(given, present or [], algorithm_identification, algorithm_type)
    explicit = _explicit_background(background)

    def is_partition() -> bool:
        return bool(partition()) if callable(partition) else bool(partition)

    descriptions = None if given is None else given.descriptions
    if given is not None and given.background is not None:
        if explicit is not ... and explicit != given.background:
            raise InputError(
                f"labels names channel {given.background} 'background' but background={background!r}")
        background_channel: "int | None" = given.background
        if channels is None:
            if given.listed and given.length != n_channels:
                raise InputError(
                    f"the output has {n_channels} channel(s) but labels names {given.length} (including "
                    f"'background' at channel {given.background}); a list with a background entry names every "
                    "channel")
            channels = list(given.positions)
    elif given is not None and not given.listed:
        if explicit is not ...:
            background_channel = explicit
        else:
            chosen = set(channels if channels is not None else given.positions)
            background_channel = 0 if 0 not in chosen and n_channels > 1 else None
        if channels is None:
            channels = list(given.positions)
    elif given is not None and channels is None:  # list without a background entry
        count = given.length
        if count == n_channels:
            if explicit is not ... and explicit is not None:
                raise InputError(
                    f"labels names all {n_channels} channels but background={background!r}; name the background "
                    f"channel 'background' or give {n_channels - 1} names for the other channels")
            if explicit is ... and n_channels > 1 and is_partition():
                raise InputError(
                    f"the output's {n_channels} channels sum to 1 (softmax or one-hot), so one of them is the "
                    f"background, but labels names {count} channels without a 'background' entry; name it "
                    f"(e.g. ['background', ...]), give {n_channels - 1} names for channels 1..{n_channels - 1}, "
                    "or pass background=False if every channel is a segment")
            background_channel = None
            channels = list(range(n_channels))
        elif count == n_channels - 1 and explicit is not None:
            if explicit is ...:
                if not is_partition():
                    raise InputError(
                        f"the output has {n_channels} channels but labels names {count}; channel 0 is not known "
                        "to be the background (the channels do not sum to 1): pass background=0, or name every "
                        "channel")
                explicit = 0
            background_channel = explicit
            channels = [c for c in range(n_channels) if c != background_channel]
        else:
            raise InputError(
                f"the output has {n_channels} channel(s) but labels names {count}"
                f"{'' if explicit is ... or explicit is None else f' (background channel {explicit})'}; "
                f"expected {n_channels} names (one per channel, 'background' included if there is one) or "
                f"{n_channels - 1} names for channels 1..{n_channels - 1} with background=0")
    else:
        if explicit is not ...:
            background_channel = explicit
        elif channels is not None:
            background_channel = 0 if 0 not in set(channels) and n_channels > 1 else None
        else:
            background_channel = 0 if n_channels > 1 else None
    if channels is None:
        channels = [c for c in range(n_channels) if c != background_channel]
    channels = [int(c) for c in channels]
    bad = [c for c in channels + ([] if background_channel is None else [background_channel])
           if not 0 <= c < n_channels]
    if bad:
        raise InputError(f"channel indices {bad} are out of range for an output with {n_channels} channels")
    if background_channel in channels:
        raise InputError(f"channel {background_channel} cannot be both background and a segment")
    if given is not None and not given.listed and not channels_given:
        _check_every_channel_named(given, n_channels, background_channel)
    if descriptions is None:
        descriptions = _generic(len(channels), algorithm_identification, algorithm_type)
    if len(descriptions) != len(channels):
        raise InputError(
            f"the output has {n_channels} channels ({len(channels)} segment channel(s) {channels}"
            f"{'' if background_channel is None else f', background channel {background_channel}'}) "
            f"but labels names {len(descriptions)} segment(s); pass channels= or background=")
    return OutputSegmentPlan(kind, channels, background_channel, descriptions)


def is_channel_partition(array: np.ndarray, tolerance: float = 1e-3) -> bool:
    """Whether the channels of ``(C, X, Y, Z)`` sum to 1 in every voxel (softmax, or one-hot of an argmax)."""
    if array.shape[0] < 2 or array.size == 0:
        return False
    step = 16  # slabs along the last axis: a bounded temporary, and an early answer for a sigmoid
    for start in range(0, array.shape[-1], step):
        total = array[..., start:start + step].sum(axis=0, dtype=np.float32)
        if not np.abs(total - 1.0).max() <= tolerance:
            return False
    return True


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
    plan: OutputSegmentPlan,
    grid: GridPlan,
    segmentation_type: str,
    *,
    discretize: str = "auto",
    threshold: float = 0.5,
    interpolation: str = "auto",
    lazy: bool = True,
) -> "np.ndarray | StackedSegmentSource":
    """The SEG pixel array on the source grid (see module docstring for shapes).

    Stacked results (FRACTIONAL, and BINARY/LABELMAP by threshold) are
    returned as a :class:`~monai_dicomseg.seg.inputs.StackedSegmentSource`
    when ``lazy`` (default): the encoder pulls source-grid slabs (linear
    interpolation: a few planes of every segment) or single segments
    (nearest) from it, twice, so peak memory is the model output plus one
    slab / one segment on the source grid whatever the number of classes,
    never the full ``(F, R, C, S)`` array. With linear interpolation only
    where a segment can be non-zero is computed: a value is a convex
    combination of its model-grid neighbours, so where none of them reaches
    ``0.5 / 255`` (FRACTIONAL: stored as ``rint(p * max) = 0``) or
    ``threshold`` the result is known to be 0 (see
    :func:`~monai_dicomseg.io.grid.iter_support_slabs`); softmax classes of
    organs are small regions, so most of the work vanishes. The encoded
    bytes are the same as with ``lazy=False`` (the materialised array). Label maps ``(F, R, C)``
    are always arrays (they are the size of the output itself).

    Parameters
    ----------
    array
        ``(C, X, Y, Z)`` model output (numpy).
    plan
        From :func:`plan_output_segments`.
    grid
        From :func:`~monai_dicomseg.io.grid.plan_grid_mapping`.
    segmentation_type
        ``"BINARY"``, ``"FRACTIONAL"`` or ``"LABELMAP"``.
    """
    discretize = to_enum(Discretize, discretize, "discretize")
    interpolation = to_enum(Interpolation, interpolation, "interpolation")
    if not 0.0 < float(threshold) <= 1.0:
        raise InputError(f"threshold must be in (0, 1]; got {threshold}")
    routed = _device_route(array, plan, grid, segmentation_type, discretize, float(threshold), interpolation, lazy)
    if routed is not None:
        return routed
    array = _host_array(array)
    if plan.kind == InputKind.LABELS:
        return _labels_to_grid(array, plan, grid, fractional=segmentation_type == _FRACTIONAL, lazy=lazy)
    interpolation = resolve_interpolation(interpolation, plan.kind)
    if segmentation_type == _FRACTIONAL:
        return _fractions_to_grid(array, plan, grid, interpolation, lazy)
    if resolve_discretize(discretize, plan.background) is Discretize.ARGMAX:
        return _argmax_to_grid(array, plan, grid, float(threshold), interpolation)
    return _threshold_to_grid(array, plan, grid, float(threshold), interpolation, lazy)


def _labels_to_grid(array: np.ndarray, plan: OutputSegmentPlan, grid: GridPlan, *, fractional: bool,
                    lazy: bool) -> "np.ndarray | StackedSegmentSource":
    """A label output ``(1, X, Y, Z)``: values looked up to segment numbers, copied (nearest) onto the grid;
    FRACTIONAL: one 0/1 fraction per segment."""
    n = len(plan.sources)
    dtype = _label_dtype(n)
    lookup: np.ndarray = np.zeros(int(max([*plan.sources, 0])) + 1, dtype=dtype)
    lookup[plan.sources] = np.arange(1, n + 1, dtype=dtype)
    values = array[0]
    values = values.astype(np.intp) if values.dtype.kind == "f" or values.dtype == bool else values
    mapped = map_nearest(lookup[np.clip(values, 0, lookup.size - 1)], grid)
    if fractional:
        if lazy:
            return _labels_source(mapped, n)
        return (mapped[..., None] == np.arange(1, n + 1, dtype=dtype)).astype(np.float32)
    return mapped


def _fractions_to_grid(array: np.ndarray, plan: OutputSegmentPlan, grid: GridPlan, interpolation: Interpolation,
                       lazy: bool) -> "np.ndarray | StackedSegmentSource":
    """FRACTIONAL channels ``(F, R, C, S)`` on the grid, clipped to [0, 1] (lazy: a slab source)."""
    segment_channels = _select_channels(array, plan.sources)
    if lazy:
        if interpolation is Interpolation.NEAREST:
            return _support_source(segment_channels, grid, _FRACTION_CUT,
                                   lambda v: np.clip(v.astype(np.float32), 0.0, 1.0), fractional=True,
                                   mode="nearest")
        return _support_source(segment_channels, grid, _FRACTION_CUT, _clip_unit, fractional=True)
    if interpolation is Interpolation.NEAREST:
        stacked = map_nearest(segment_channels, grid).astype(np.float32)
    else:
        stacked = np.empty((len(plan.sources), *grid.source_shape), dtype=np.float32)
        for start, stop, values in iter_linear_slabs(segment_channels, grid):
            stacked[:, start:stop] = values
    return np.clip(np.moveaxis(stacked, 0, -1), 0.0, 1.0)


def _argmax_to_grid(array: np.ndarray, plan: OutputSegmentPlan, grid: GridPlan, threshold: float,
                    interpolation: Interpolation) -> np.ndarray:
    """One label per voxel ``(F, R, C)``: the best channel (with the background channel, or a virtual
    background at ``threshold`` that the best channel must reach)."""
    n = len(plan.sources)
    dtype = _label_dtype(n)
    if plan.background is not None:
        order = [plan.background, *plan.sources]
        lookup: np.ndarray = np.arange(0, n + 1, dtype=dtype)
        scores = _select_channels(array, order)
    else:  # a virtual background at the threshold: best channel must reach it
        scores = np.concatenate([array[plan.sources].astype(np.float32, copy=False),
                                 np.full((1, *array.shape[1:]), threshold, dtype=np.float32)])
        lookup = np.append(np.arange(1, n + 1), 0).astype(dtype)
    if interpolation is Interpolation.NEAREST:  # argmax on the (smaller) model grid, then copy small labels
        return map_nearest(lookup[channel_argmax(scores)], grid)
    return argmax_on_grid(scores, grid, lookup)


def _threshold_to_grid(array: np.ndarray, plan: OutputSegmentPlan, grid: GridPlan, threshold: float,
                       interpolation: Interpolation, lazy: bool) -> "np.ndarray | StackedSegmentSource":
    """Stacked, possibly overlapping masks ``(F, R, C, S)``: each channel at ``threshold``."""
    segment_channels = _select_channels(array, plan.sources)
    if lazy:
        return _support_source(segment_channels, grid, threshold, lambda v: v >= threshold,
                               fractional=False, mode=interpolation)
    if interpolation is Interpolation.NEAREST:
        return np.ascontiguousarray(np.moveaxis(map_nearest(segment_channels >= threshold, grid), 0, -1)
                                    ).astype(np.uint8)
    stacked = np.empty((*grid.source_shape, len(plan.sources)), dtype=np.uint8)
    for start, stop, values in iter_linear_slabs(segment_channels, grid):
        stacked[start:stop] = np.moveaxis(values >= threshold, 0, -1)
    return stacked


# --------------------------------------------------------------------------- on the tensor's device (torch)


def _host_array(array: Any) -> np.ndarray:
    """A numpy view of ``array``: numpy as is, a CPU tensor without a copy; a tensor on another device is
    copied whole (only rotated grids come here with one: see :func:`_device_route`)."""
    if device_grid.is_tensor(array):
        tensor = device_grid.as_tensor(array)
        return (tensor if tensor.device.type == "cpu" else tensor.cpu()).numpy()
    return array


def _device_route(array: Any, plan: OutputSegmentPlan, grid: GridPlan, segmentation_type: str, discretize: str,
                  threshold: float, interpolation: str, lazy: bool) -> Any:
    """:func:`to_source_grid` in torch, slab by slab on the array's device; None: take the numpy path.

    Taken for FRACTIONAL probabilities / one-hot (numpy arrays too: all classes of a slab in one pass,
    quantised there) and for every output held in a torch tensor, on axis-aligned (exact, separable) plans
    where torch is installed. A CPU tensor's argmax with linear interpolation reads the tensor through a
    zero-copy numpy view (the candidate-based :func:`~monai_dicomseg.io.grid.argmax_on_grid`: same labels,
    far less work than interpolating every channel).
    """
    tensor = device_grid.is_tensor(array)
    if grid.kind == "general" or not device_grid.available() or not (tensor or segmentation_type == _FRACTIONAL):
        return None
    if plan.kind == InputKind.LABELS:
        return _device_labels(array, plan, grid, segmentation_type, lazy) if tensor else None
    interpolation = resolve_interpolation(interpolation, plan.kind)
    if not (tensor or lazy):
        return None  # numpy, materialised: the reference computation
    if segmentation_type == _FRACTIONAL:
        source = device_grid.fractional_source(array, plan.sources, grid, interpolation)
        return source if source is None or lazy else _materialised(source)
    discretize = resolve_discretize(discretize, plan.background)
    if discretize is Discretize.THRESHOLD:
        source = device_grid.threshold_source(array, plan.sources, grid, threshold, interpolation)
        return source if source is None or lazy else _materialised(source).astype(np.uint8)
    dtype = _label_dtype(len(plan.sources))
    on_cpu = device_grid.as_tensor(array).device.type == "cpu"
    if interpolation is Interpolation.LINEAR and on_cpu and not _DEVICE_ARGMAX_ON_CPU:
        return None
    if plan.background is not None:
        order, floor = [plan.background, *plan.sources], None
        lookup: np.ndarray = np.arange(0, len(plan.sources) + 1, dtype=dtype)
    else:
        order, floor = list(plan.sources), float(np.float32(threshold))
        lookup = np.arange(1, len(plan.sources) + 1, dtype=dtype)
    return device_grid.argmax_labels(array, order, grid, lookup, interpolation, floor)


_DEVICE_ARGMAX_ON_CPU = False
"""Whether a CPU tensor's linear argmax interpolates every channel in torch (tests set it to compare the device
code with the numpy path); by default it takes :func:`~monai_dicomseg.io.grid.argmax_on_grid` on a view."""


def _device_labels(array: Any, plan: OutputSegmentPlan, grid: GridPlan, segmentation_type: str, lazy: bool) -> Any:
    """A label tensor ``(1, X, Y, Z)``: segment numbers looked up and copied (nearest) on its device."""
    import torch

    n = len(plan.sources)
    dtype = _label_dtype(n)
    tensor = device_grid.as_tensor(array)[0]
    lookup = torch.zeros(int(max([*plan.sources, 0])) + 1, dtype=torch.int32, device=tensor.device)
    lookup[torch.as_tensor(plan.sources, dtype=torch.long, device=tensor.device)] = torch.arange(
        1, n + 1, dtype=torch.int32, device=tensor.device)
    labels = lookup[tensor.long().clamp(0, lookup.numel() - 1)]  # floats truncated, as astype(intp)
    mapped: np.ndarray = device_grid.nearest_labels(labels, grid).astype(dtype)
    if segmentation_type == _FRACTIONAL:
        if lazy:
            return _labels_source(mapped, n)
        return (mapped[..., None] == np.arange(1, n + 1, dtype=dtype)).astype(np.float32)
    return mapped


def _materialised(source: StackedSegmentSource) -> np.ndarray:
    """The ``(F, R, C, S)`` array of a lazy source (``lazy=False``)."""
    out = np.zeros(source.shape, dtype=source.dtype)
    for f0, f1, s0, s1, values in source.blocks():
        out[f0:f1, :, :, s0:s1] = np.moveaxis(values, 0, -1)
    return out


# --------------------------------------------------------------------------- lazy (streamed) sources

_BLOCK_VALUES = 1 << 24
"""Source-grid values per block of a lazy source (16 M: 64 MB of float32)."""


def _clip_unit(values: np.ndarray) -> np.ndarray:
    return np.clip(values, 0.0, 1.0, out=values)


def _linear_source(channels: np.ndarray, grid: GridPlan,
                   finish: "Callable[[np.ndarray], np.ndarray]") -> StackedSegmentSource:
    """Trilinear values of ``channels`` ``(S, X, Y, Z)`` on the source grid, served by plane slabs."""
    frames, rows, columns = grid.source_shape
    count = channels.shape[0]
    probe = finish(np.zeros((1, 1, 1, 1), dtype=np.float32))

    def blocks() -> "Iterator[tuple[int, int, int, int, np.ndarray]]":
        for start, stop, values in iter_linear_slabs(channels, grid):
            yield start, stop, 0, count, finish(values)

    return StackedSegmentSource((frames, rows, columns, count), probe.dtype, blocks)


def _nearest_source(channels: np.ndarray, grid: GridPlan,
                    finish: "Callable[[np.ndarray], np.ndarray] | None") -> StackedSegmentSource:
    """Nearest-neighbour copies of ``channels`` ``(S, X, Y, Z)``, served a few segments at a time."""
    frames, rows, columns = grid.source_shape
    count = channels.shape[0]
    step = max(1, _BLOCK_VALUES // max(1, frames * rows * columns))
    dtype = (finish(np.zeros((1,), dtype=channels.dtype)) if finish is not None else channels[:0]).dtype

    def blocks() -> "Iterator[tuple[int, int, int, int, np.ndarray]]":
        for start in range(0, count, step):
            stop = min(start + step, count)
            mapped = map_nearest(channels[start:stop], grid)
            yield 0, frames, start, stop, (finish(mapped) if finish is not None else mapped)

    return StackedSegmentSource((frames, rows, columns, count), dtype, blocks)


def _labels_source(labels: np.ndarray, count: int) -> StackedSegmentSource:
    """One 0/1 mask per segment number ``1..count`` of an ``(F, R, C)`` label map, by plane slabs."""
    frames, rows, columns = labels.shape
    step = max(1, _BLOCK_VALUES // max(1, count * rows * columns))
    numbers = np.arange(1, count + 1, dtype=labels.dtype)[:, None, None, None]

    def blocks() -> "Iterator[tuple[int, int, int, int, np.ndarray]]":
        for start in range(0, frames, step):
            stop = min(start + step, frames)
            yield start, stop, 0, count, labels[None, start:stop] == numbers

    return StackedSegmentSource((frames, rows, columns, count), np.bool_, blocks)


_FRACTION_CUT = 0.5 / 255
"""A stored fraction ``rint(p * max)`` is 0 iff ``p * max <= 0.5`` (half to even); MaximumFractionalValue is
at most 255 (8 bits, PS3.3 C.8.20.2.3), so source values below ``0.5 / 255`` are stored as 0 for any maximum."""


def _has_fraction(values: np.ndarray) -> bool:
    """Whether a finished (clipped) block holds a value other than 0 and 1 (plane by plane: no big temporary)."""
    return any(bool(((plane != 0) & (plane != 1)).any()) for plane in values.reshape(-1, *values.shape[-2:]))


def _support_source(channels: np.ndarray, grid: GridPlan, cut: float,
                    finish: "Callable[[np.ndarray], np.ndarray]", fractional: bool,
                    mode: str = "linear") -> StackedSegmentSource:
    """Like :func:`_linear_source` (``mode="nearest"``: :func:`_nearest_source`), computing each segment only
    on its support (byte-identical encoding).

    Blocks are one segment by a few planes; planes where a segment is known
    to stay below ``cut`` (stored as 0 / below the threshold) are not
    served at all (the encoder's scan starts from "empty"). The scan also
    decides whether the input holds fractions (Segments Overlap
    ``UNDEFINED``): if no served value is a fraction but the model output
    has values strictly between 0 and 1, the full computation is run until
    a block with a fraction is found and that block is served again, exactly
    as :func:`_linear_source` serves it (re-serving identical values changes
    nothing else).
    """
    full = _nearest_source(channels, grid, finish) if mode == "nearest" else _linear_source(channels, grid, finish)
    slabs = iter_support_slabs(channels, grid, cut, _BLOCK_VALUES, mode=mode)
    if slabs is None:
        return full
    frames, rows, columns = grid.source_shape
    count = channels.shape[0]
    dtype = finish(np.zeros((1, 1, 1, 1), dtype=np.float32)).dtype

    def model_has_fraction() -> bool:
        return any(bool(((channel > 0) & (channel < 1)).any()) for channel in channels)

    def blocks() -> "Iterator[tuple[int, int, int, int, np.ndarray]]":
        seen = not fractional
        for index, start, stop, row_slice, column_slice, values in slabs():
            values = finish(values)
            seen = seen or _has_fraction(values)
            block = np.zeros((1, stop - start, rows, columns), dtype=dtype)
            block[0, :, row_slice, column_slice] = values
            yield start, stop, index, index + 1, block
        if seen or not model_has_fraction():
            return
        for full_block in full.blocks():  # the first block of the full computation that holds a fraction
            if _has_fraction(full_block[4]):
                yield full_block
                return

    return StackedSegmentSource((frames, rows, columns, count), dtype, blocks)
