"""DICOM enumerations used across the package.

Each enumeration's values are the DICOM defined terms (strings) so that
``Enum(value)`` converts an attribute value read from a dataset. Public
functions accept ``str | Enum`` and convert once with :func:`to_enum`.
"""
from __future__ import annotations

import sys
from enum import Enum
from typing import TypeVar

from monai_dicomseg.errors import InputError

__all__ = [
    "StrEnum",
    "SegSOPClass",
    "SEG_SOP_CLASS_UIDS",
    "is_seg_sop_class",
    "LoadMode",
    "OnError",
    "InputKind",
    "Interpolation",
    "Discretize",
    "SegmentationTypeValues",
    "SegmentationFractionalTypeValues",
    "SegmentAlgorithmTypeValues",
    "SpatialLocationsPreservedValues",
    "SegmentsOverlapValues",
    "DimensionOrganizationTypeValues",
    "CoordinateSystemNames",
    "PhotometricInterpretationValues",
    "to_enum",
]


if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - Python 3.10
    class StrEnum(str, Enum):
        """:class:`enum.StrEnum` of Python 3.11: members are ``str`` and ``str(member)`` is the value."""

        def __str__(self) -> str:
            return str(self.value)

        __format__ = str.__format__  # type: ignore[assignment]  # f"{member}" is the value, as in 3.11


class SegSOPClass(StrEnum):
    """The SOP Classes of DICOM Segmentation (PS3.4 B.5): the one place their UIDs are spelled.

    Members are ``str`` (the UID), so ``ds.SOPClassUID == SegSOPClass.SEGMENTATION``
    and ``str(ds.SOPClassUID) in SEG_SOP_CLASS_UIDS`` hold for pydicom values.
    """

    SEGMENTATION = "1.2.840.10008.5.1.4.1.1.66.4"
    """Segmentation Storage: the Segmentation IOD (BINARY, FRACTIONAL; PS3.3 A.51)."""
    LABEL_MAP_SEGMENTATION = "1.2.840.10008.5.1.4.1.1.66.7"
    """Label Map Segmentation Storage: the Label Map Segmentation IOD (LABELMAP; PS3.3 A.51a)."""

    @property
    def storage_name(self) -> str:
        """The SOP Class Name of PS3.4 B.5, e.g. ``'Segmentation Storage'``."""
        return _SOP_CLASS_NAMES[self]

    @classmethod
    def for_type(cls, segmentation_type: "SegmentationTypeValues") -> "SegSOPClass":
        """The SOP Class a SEG of ``segmentation_type`` is written with (LABELMAP: Label Map Segmentation)."""
        if segmentation_type is SegmentationTypeValues.LABELMAP:
            return cls.LABEL_MAP_SEGMENTATION
        return cls.SEGMENTATION


_SOP_CLASS_NAMES = {
    SegSOPClass.SEGMENTATION: "Segmentation Storage",
    SegSOPClass.LABEL_MAP_SEGMENTATION: "Label Map Segmentation Storage",
}

SEG_SOP_CLASS_UIDS: frozenset[str] = frozenset(member.value for member in SegSOPClass)
"""Both SEG SOP Class UIDs as plain strings (for ``in`` tests on values read from files or JSON)."""


def is_seg_sop_class(uid: object) -> bool:
    """Whether ``uid`` (a pydicom UID, str or None) is one of the SEG SOP Classes."""
    return str(uid or "") in SEG_SOP_CLASS_UIDS


class LoadMode(StrEnum):
    """How the loaders return a SEG (``mode=``): one channel per segment, or one label-map channel."""

    STACKED = "stacked"
    """``(S, X, Y, Z)``: one 0/1 (or fraction) channel per selected segment."""
    LABELMAP = "labelmap"
    """``(1, X, Y, Z)``: the value of a voxel is its segment's number (or ``label_map`` value)."""


class OnError(StrEnum):
    """What a loader does when an item cannot be read (``on_error=``)."""

    RAISE = "raise"
    """Raise the error, naming the file and the dict key."""
    SKIP = "skip"
    """Warn and return ``[]`` for the item (a dataset drops it)."""


class _CaseInsensitiveStrEnum(StrEnum):
    """A :class:`StrEnum` whose lower-case values are also found from any case (``"Linear"``)."""

    @classmethod
    def _missing_(cls, value: object) -> "_CaseInsensitiveStrEnum | None":
        if isinstance(value, str):
            for member in cls:
                if member.value == value.lower():
                    return member
        return None


class InputKind(_CaseInsensitiveStrEnum):
    """What a model output holds (``input_kind=`` of the writers; ``AUTO``: decided from its values)."""

    AUTO = "auto"
    LABELS = "labels"
    """``(1, X, Y, Z)`` integer label values."""
    ONEHOT = "onehot"
    """``(C, X, Y, Z)`` 0/1 channels."""
    PROBABILITIES = "probabilities"
    """``(C, X, Y, Z)`` values in [0, 1]."""


class Interpolation(_CaseInsensitiveStrEnum):
    """How a model output is mapped onto the source grid (``interpolation=``; ``AUTO``: nearest for
    one-hot, linear for probabilities)."""

    AUTO = "auto"
    NEAREST = "nearest"
    LINEAR = "linear"


class Discretize(_CaseInsensitiveStrEnum):
    """How probabilities become BINARY / LABELMAP segments (``discretize=``; ``AUTO``: argmax with a
    background channel, else threshold)."""

    AUTO = "auto"
    ARGMAX = "argmax"
    THRESHOLD = "threshold"


class SegmentationTypeValues(Enum):
    """Segmentation Type (0062,0001), PS3.3 C.8.20.2."""

    BINARY = "BINARY"
    FRACTIONAL = "FRACTIONAL"
    LABELMAP = "LABELMAP"


BINARY, FRACTIONAL, LABELMAP = (member.value for member in SegmentationTypeValues)
"""The SegmentationType values as plain strings, for comparisons with a data set's attribute or a user's str."""


class SegmentationFractionalTypeValues(Enum):
    """Segmentation Fractional Type (0062,0010), PS3.3 C.8.20.2."""

    PROBABILITY = "PROBABILITY"
    OCCUPANCY = "OCCUPANCY"


class SegmentAlgorithmTypeValues(Enum):
    """Segment Algorithm Type (0062,0008), PS3.3 C.8.20.2."""

    AUTOMATIC = "AUTOMATIC"
    SEMIAUTOMATIC = "SEMIAUTOMATIC"
    MANUAL = "MANUAL"


class SpatialLocationsPreservedValues(Enum):
    """Spatial Locations Preserved (0028,135A), PS3.3 C.7.6.1.1.3."""

    YES = "YES"
    NO = "NO"
    REORIENTED_ONLY = "REORIENTED_ONLY"


class SegmentsOverlapValues(Enum):
    """Segments Overlap (0062,0013), PS3.3 C.8.20.2."""

    YES = "YES"
    UNDEFINED = "UNDEFINED"
    NO = "NO"


class DimensionOrganizationTypeValues(Enum):
    """Dimension Organization Type (0020,9311), PS3.3 C.7.6.17."""

    THREE_DIMENSIONAL = "3D"
    THREE_DIMENSIONAL_TEMPORAL = "3D_TEMPORAL"
    TILED_FULL = "TILED_FULL"
    TILED_SPARSE = "TILED_SPARSE"


class CoordinateSystemNames(Enum):
    """Frame-of-reference coordinate systems: patient (LPS) or slide."""

    PATIENT = "PATIENT"
    SLIDE = "SLIDE"


class PhotometricInterpretationValues(Enum):
    """Photometric Interpretation (0028,0004) values allowed for SEG."""

    MONOCHROME2 = "MONOCHROME2"
    PALETTE_COLOR = "PALETTE COLOR"


E = TypeVar("E", bound=Enum)


def to_enum(enum_type: type[E], value: "str | Enum", argument: str) -> E:
    """Convert ``value`` (a DICOM string or an enum member) to ``enum_type``.

    Parameters
    ----------
    enum_type
        Target enumeration.
    value
        A member of ``enum_type``, a member of an enum with the same values
        (e.g. highdicom's), or the DICOM string itself.
    argument
        Name of the argument, used in the error message.

    Raises
    ------
    InputError
        If ``value`` is not one of the enumeration's values.
    """
    if isinstance(value, enum_type):
        return value
    raw = value.value if isinstance(value, Enum) else value
    try:
        return enum_type(raw)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in enum_type)
        raise InputError(
            f"{argument} must be one of {allowed}; got {raw!r}"
        ) from None
