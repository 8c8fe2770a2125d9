"""Descriptors of the non-spatial ("channel") axes of a :class:`Volume`.

Axes 3, 4, ... of a volume array are channels. Each is described by a DICOM
attribute keyword (``"SegmentNumber"`` for the stacked-segment form of a SEG,
PS3.3 C.8.20.2) or by a custom name with an explicit Python value type. The
geometry layer does not import pydicom, so the DICOM keywords it knows are
listed here (keyword, tag, value type); anything else needs ``is_custom``.
"""
from __future__ import annotations

import numbers
from enum import Enum
from collections.abc import Mapping
from typing import Any

from monai_dicomseg.errors import InputError, InputTypeError

__all__ = [
    "ChannelDescriptor",
    "RGBColorChannels",
    "RGB_COLOR_CHANNEL_DESCRIPTOR",
    "KNOWN_CHANNEL_ATTRIBUTES",
    "normalize_channels",
]


class RGBColorChannels(Enum):
    """Colour component along an RGB channel axis."""

    R = "R"
    G = "G"
    B = "B"


KNOWN_CHANNEL_ATTRIBUTES: dict[str, tuple[int, type]] = {
    "SegmentNumber": (0x0062_0004, int),
    "ReferencedSegmentNumber": (0x0062_000B, int),
    "OpticalPathIdentifier": (0x0048_0106, str),
    "DiffusionBValue": (0x0018_9087, float),
    "EchoTime": (0x0018_0081, float),
    "EffectiveEchoTime": (0x0018_9082, float),
    "TemporalPositionIndex": (0x0020_9128, int),
    "TemporalPositionIdentifier": (0x0020_0100, int),
    "TriggerTime": (0x0018_1060, float),
    "InStackPositionNumber": (0x0020_9057, int),
    "StackID": (0x0020_9056, str),
    "AcquisitionNumber": (0x0020_0012, int),
    "ConcatenationFrameOffsetNumber": (0x0020_9228, int),
}
"""DICOM attributes usable as channel descriptors: keyword -> (tag, value type)."""

_KEYWORD_FOR_TAG = {tag: keyword for keyword, (tag, _) in KNOWN_CHANNEL_ATTRIBUTES.items()}


class ChannelDescriptor:
    """What varies along one channel axis of a volume.

    Parameters
    ----------
    identifier
        A known DICOM keyword (``"SegmentNumber"``), its integer tag, another
        descriptor (copied; highdicom's are accepted by duck typing), or a
        custom name when ``is_custom`` is true.
    is_custom
        The identifier is a free name, not a DICOM attribute.
    value_type
        Python type of the values (``int``, ``float``, ``str`` or an Enum
        subclass); required for, and only allowed with, custom descriptors.
    """

    def __init__(
        self,
        identifier: "str | int | ChannelDescriptor | Any",
        is_custom: bool = False,
        value_type: "type | None" = None,
    ) -> None:
        if hasattr(identifier, "keyword") and hasattr(identifier, "value_type"):
            self._keyword = str(identifier.keyword)
            self._value_type = identifier.value_type
            custom = bool(getattr(identifier, "is_custom", False))
            self._tag = None if custom else KNOWN_CHANNEL_ATTRIBUTES.get(self._keyword, (None,))[0]
            if not custom and self._tag is None:
                self._tag = int(identifier.tag) if getattr(identifier, "tag", None) is not None else None  # type: ignore[union-attr,arg-type]  # duck-typed descriptor (hasattr checks above); getattr guards the tag
            return
        if is_custom:
            if not isinstance(identifier, str):
                raise InputTypeError(
                    f"a custom channel identifier must be a str; got {type(identifier).__name__}"
                )
            if identifier in KNOWN_CHANNEL_ATTRIBUTES:
                raise InputError(
                    f"custom channel identifier {identifier!r} is a DICOM keyword; "
                    "use it without is_custom"
                )
            if value_type is None:
                raise InputTypeError("value_type is required for a custom channel identifier")
            if not isinstance(value_type, type) or not issubclass(value_type, (str, int, float, Enum)):
                raise InputTypeError(
                    f"value_type must be int, float, str or an Enum subclass; got {value_type!r}"
                )
            if value_type is Enum:
                raise InputTypeError("value_type must be a specific Enum subclass, not Enum")
            self._keyword, self._tag, self._value_type = identifier, None, value_type
            return
        if value_type is not None:
            raise InputTypeError("value_type may only be given for a custom channel identifier")
        if isinstance(identifier, bool) or not isinstance(identifier, (str, int)):
            raise InputTypeError(
                f"channel identifier must be a str keyword or int tag; got {type(identifier).__name__}"
            )
        keyword = _KEYWORD_FOR_TAG.get(identifier) if isinstance(identifier, int) else identifier
        if keyword not in KNOWN_CHANNEL_ATTRIBUTES:
            raise InputError(
                f"channel identifier {identifier!r} is not a supported DICOM attribute "
                f"(known: {', '.join(KNOWN_CHANNEL_ATTRIBUTES)}); pass is_custom=True "
                "and value_type for a custom channel"
            )
        self._keyword = keyword
        self._tag, self._value_type = KNOWN_CHANNEL_ATTRIBUTES[keyword]

    @property
    def keyword(self) -> str:
        """DICOM keyword or custom name."""
        return self._keyword

    @property
    def tag(self) -> "int | None":
        """DICOM tag as an int; None for custom descriptors."""
        return self._tag

    @property
    def value_type(self) -> type:
        """Python type of the values along the axis."""
        return self._value_type

    @property
    def is_custom(self) -> bool:
        """Whether the descriptor is a custom name rather than a DICOM attribute."""
        return self._tag is None

    @property
    def is_enumerated(self) -> bool:
        """Whether the values are members of an Enum."""
        return issubclass(self._value_type, Enum)

    def __hash__(self) -> int:
        return hash(self._keyword)

    def __eq__(self, other: object) -> bool:
        keyword = getattr(other, "keyword", other if isinstance(other, str) else None)
        return keyword == self._keyword

    def __repr__(self) -> str:
        return self._keyword

    __str__ = __repr__


RGB_COLOR_CHANNEL_DESCRIPTOR = ChannelDescriptor(
    "RGBColorChannel", is_custom=True, value_type=RGBColorChannels
)
"""Descriptor of the colour axis of an RGB volume."""


def normalize_channels(
    channels: "Mapping[Any, Any] | None", channel_shape: tuple[int, ...]
) -> dict[ChannelDescriptor, list[Any]]:
    """Check a ``channels`` mapping against the channel axes of an array.

    Parameters
    ----------
    channels
        Ordered mapping: descriptor (or keyword/tag) -> values, one entry per
        channel axis in axis order.
    channel_shape
        ``array.shape[3:]``.

    Returns
    -------
    dict
        ``ChannelDescriptor`` -> list of values (Enum values converted).
    """
    channels = {} if channels is None else channels
    if len(channels) != len(channel_shape):
        raise InputError(
            f"channels must describe every channel axis: array has "
            f"{len(channel_shape)} channel axis/axes, channels has {len(channels)} item(s)"
        )
    result: dict[ChannelDescriptor, list[Any]] = {}
    for axis, (identifier, values) in enumerate(channels.items(), start=3):
        descriptor = identifier if isinstance(identifier, ChannelDescriptor) else ChannelDescriptor(identifier)
        values = list(values)
        if descriptor.is_enumerated:
            try:
                values = [descriptor.value_type(v) for v in values]
            except ValueError as error:
                raise InputError(f"channel {descriptor}: {error}") from None
        if descriptor.value_type is int:
            values = [int(v) if isinstance(v, numbers.Integral) and not isinstance(v, bool) else v
                      for v in values]
        elif descriptor.value_type is float:
            values = [float(v) if isinstance(v, numbers.Real) and not isinstance(v, bool) else v
                      for v in values]
        if len(values) != channel_shape[axis - 3]:
            raise InputError(
                f"channel {descriptor} (array axis {axis}) has {len(values)} value(s); "
                f"the array has size {channel_shape[axis - 3]} along that axis"
            )
        bad = [v for v in values if not isinstance(v, descriptor.value_type) or (
            descriptor.value_type is int and isinstance(v, bool))]
        if bad:
            raise InputTypeError(
                f"channel {descriptor} values must be {descriptor.value_type.__name__}; "
                f"got {bad[0]!r} ({type(bad[0]).__name__})"
            )
        if descriptor in result:
            raise InputError(f"channel {descriptor} is given more than once")
        result[descriptor] = values
    return result
