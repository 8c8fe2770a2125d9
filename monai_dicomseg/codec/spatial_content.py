"""Plane Position, Plane Orientation and Pixel Measures functional group sequences.

Each class is a one-item pydicom ``Sequence`` ready to be placed in a
functional group (PS3.3 C.7.6.16.2.1 Pixel Measures, C.7.6.16.2.3 Plane
Position (Patient), C.7.6.16.2.4 Plane Orientation (Patient), C.8.12.6.1
Plane Position (Slide), C.8.12.6.2 Plane Orientation (Slide)). Decimal
String values are formatted to at most 16 characters (PS3.5 6.2 DS).

:data:`VOLUME_FUNCTIONAL_GROUPS` builds them for ``Volume.get_plane_positions()``
and its two siblings: ``geometry/`` (numpy only) declares what it needs
(:class:`~monai_dicomseg.geometry.volume_base.FunctionalGroupBuilder`) and the
package root binds this object to it.
"""
from __future__ import annotations

import copy as copy_module
import math
from collections.abc import Sequence

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.valuerep import DSfloat, format_number_as_ds

from monai_dicomseg.enums import CoordinateSystemNames, to_enum
from monai_dicomseg.errors import InputError, InputTypeError

__all__ = [
    "decimal_string",
    "PixelMeasuresSequence",
    "PlanePositionSequence",
    "PlaneOrientationSequence",
    "VolumeFunctionalGroups",
    "VOLUME_FUNCTIONAL_GROUPS",
]

_SLIDE_OFFSETS = (
    "XOffsetInSlideCoordinateSystem",
    "YOffsetInSlideCoordinateSystem",
    "ZOffsetInSlideCoordinateSystem",
)


def decimal_string(value: float, argument: str) -> DSfloat:
    """A finite number as a valid DS value (at most 16 characters, PS3.5 6.2)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputTypeError(f"{argument} must be a number; got {value!r}") from None
    if not math.isfinite(number):
        raise InputError(f"{argument} must be finite; got {number}")
    if number == 0.0:
        number = 0.0  # avoid "-0.0"
    return DSfloat(format_number_as_ds(number), auto_format=False)


def _numbers(values: object, length: int, argument: str) -> list[DSfloat]:
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise InputTypeError(f"{argument} must be a sequence of {length} numbers; got {values!r}")
    if len(values) != length:
        raise InputError(f"{argument} must have {length} values; got {len(values)}")
    return [decimal_string(v, f"{argument}[{i}]") for i, v in enumerate(values)]


def _single_item(cls: type, sequence: object, required: Sequence[str], copy: bool) -> DicomSequence:
    if not isinstance(sequence, DicomSequence):
        raise InputTypeError(
            f"{cls.__name__}.from_sequence expects a pydicom Sequence; got {type(sequence).__name__}"
        )
    if len(sequence) != 1:
        raise InputError(f"{cls.__name__}.from_sequence expects exactly 1 item; got {len(sequence)}")
    missing = [kw for kw in required if kw not in sequence[0]]
    if missing:
        raise InputError(f"{cls.__name__}.from_sequence: item lacks {', '.join(missing)}")
    result = copy_module.deepcopy(sequence) if copy else sequence
    result.__class__ = cls
    return result


class PixelMeasuresSequence(DicomSequence):
    """Pixel Measures Sequence item (PS3.3 C.7.6.16.2.1).

    Parameters
    ----------
    pixel_spacing
        (spacing between rows, spacing between columns) in mm.
    slice_thickness
        SliceThickness in mm, or None to omit it.
    spacing_between_slices
        SpacingBetweenSlices in mm, or None to omit it.
    """

    def __init__(
        self,
        pixel_spacing: Sequence[float],
        slice_thickness: "float | None",
        spacing_between_slices: "float | None" = None,
    ) -> None:
        super().__init__()
        item = Dataset()
        item.PixelSpacing = _numbers(pixel_spacing, 2, "pixel_spacing")
        if any(float(v) <= 0 for v in item.PixelSpacing):
            raise InputError(f"pixel_spacing must be positive; got {list(pixel_spacing)}")
        if slice_thickness is not None:
            item.SliceThickness = decimal_string(slice_thickness, "slice_thickness")
        if spacing_between_slices is not None:
            item.SpacingBetweenSlices = decimal_string(spacing_between_slices, "spacing_between_slices")
        self.append(item)

    @classmethod
    def from_sequence(cls, sequence: DicomSequence, copy: bool = True) -> "PixelMeasuresSequence":
        """View (or copy) an existing one-item sequence as this class; needs PixelSpacing."""
        return _single_item(cls, sequence, ["PixelSpacing"], copy)  # type: ignore[return-value]  # _single_item returns a Sequence of cls items (typed as a plain DicomSequence)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DicomSequence) or len(other) != 1:
            return NotImplemented
        mine, theirs = self[0], other[0]
        for keyword in ("PixelSpacing", "SliceThickness", "SpacingBetweenSlices"):
            if (keyword in mine) != (keyword in theirs):
                return False
            if keyword in mine and mine.get(keyword) != theirs.get(keyword):
                return False
        return True

    __hash__ = None  # type: ignore[assignment]  # mutable, compares by value: unhashable on purpose (pydicom Dataset declares __hash__)


class PlanePositionSequence(DicomSequence):
    """Plane Position (Patient) or (Slide) Sequence item.

    Parameters
    ----------
    coordinate_system
        ``PATIENT``: writes ImagePositionPatient (PS3.3 C.7.6.16.2.3).
        ``SLIDE``: writes X/Y/ZOffsetInSlideCoordinateSystem and the
        Row/ColumnPositionInTotalImagePixelMatrix (PS3.3 C.8.12.6.1).
    image_position
        (x, y, z) of the centre of the frame's first pixel, mm.
    pixel_matrix_position
        (column, row) one-based position of the frame in the total pixel
        matrix; required for SLIDE.
    """

    def __init__(
        self,
        coordinate_system: "CoordinateSystemNames | str",
        image_position: Sequence[float],
        pixel_matrix_position: "tuple[int, int] | None" = None,
    ) -> None:
        super().__init__()
        system = to_enum(CoordinateSystemNames, coordinate_system, "coordinate_system")
        position = _numbers(image_position, 3, "image_position")
        item = Dataset()
        if system == CoordinateSystemNames.PATIENT:
            item.ImagePositionPatient = position
        else:
            if pixel_matrix_position is None:
                raise InputError("pixel_matrix_position is required for the SLIDE coordinate system")
            if len(pixel_matrix_position) != 2:
                raise InputError(
                    f"pixel_matrix_position must be (column, row); got {pixel_matrix_position!r}"
                )
            column, row = (int(v) for v in pixel_matrix_position)
            if column < 0 or row < 0:
                raise InputError(
                    f"pixel_matrix_position values must be non-negative; got {(column, row)}"
                )
            for keyword, value in zip(_SLIDE_OFFSETS, position):
                setattr(item, keyword, value)
            item.RowPositionInTotalImagePixelMatrix = row
            item.ColumnPositionInTotalImagePixelMatrix = column
        self.append(item)

    @classmethod
    def from_sequence(cls, sequence: DicomSequence, copy: bool = True) -> "PlanePositionSequence":
        """View (or copy) a one-item sequence holding ImagePositionPatient or slide offsets."""
        item = sequence[0] if isinstance(sequence, DicomSequence) and len(sequence) == 1 else None
        if item is not None and "ImagePositionPatient" not in item:
            required = [*_SLIDE_OFFSETS, "RowPositionInTotalImagePixelMatrix",
                        "ColumnPositionInTotalImagePixelMatrix"]
        else:
            required = ["ImagePositionPatient"]
        return _single_item(cls, sequence, required, copy)  # type: ignore[return-value]  # _single_item returns a Sequence of cls items (typed as a plain DicomSequence)

    def _values(self) -> list[float]:
        item = self[0]
        if "ImagePositionPatient" in item:
            return [float(v) for v in item.ImagePositionPatient]
        return [float(item.get(k)) for k in _SLIDE_OFFSETS] + [
            int(item.RowPositionInTotalImagePixelMatrix),
            int(item.ColumnPositionInTotalImagePixelMatrix),
        ]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PlanePositionSequence):
            return NotImplemented
        if ("ImagePositionPatient" in self[0]) != ("ImagePositionPatient" in other[0]):
            return False
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # mutable, compares by value: unhashable on purpose (pydicom Dataset declares __hash__)


class PlaneOrientationSequence(DicomSequence):
    """Plane Orientation (Patient) or (Slide) Sequence item.

    Parameters
    ----------
    coordinate_system
        ``PATIENT`` writes ImageOrientationPatient (PS3.3 C.7.6.16.2.4);
        ``SLIDE`` writes ImageOrientationSlide (PS3.3 C.8.12.6.2).
    image_orientation
        Row direction cosines then column direction cosines (6 floats).
    """

    def __init__(
        self,
        coordinate_system: "CoordinateSystemNames | str",
        image_orientation: Sequence[float],
    ) -> None:
        super().__init__()
        system = to_enum(CoordinateSystemNames, coordinate_system, "coordinate_system")
        cosines = _numbers(image_orientation, 6, "image_orientation")
        item = Dataset()
        if system == CoordinateSystemNames.PATIENT:
            item.ImageOrientationPatient = cosines
        else:
            item.ImageOrientationSlide = cosines
        self.append(item)

    @property
    def cosines(self) -> tuple[float, ...]:
        """The six direction cosines."""
        item = self[0]
        values = item.ImageOrientationPatient if "ImageOrientationPatient" in item else item.ImageOrientationSlide
        return tuple(float(v) for v in values)

    @property
    def coordinate_system(self) -> CoordinateSystemNames:
        """PATIENT or SLIDE, from the attribute present."""
        return (CoordinateSystemNames.PATIENT if "ImageOrientationPatient" in self[0]
                else CoordinateSystemNames.SLIDE)

    @classmethod
    def from_sequence(cls, sequence: DicomSequence, copy: bool = True) -> "PlaneOrientationSequence":
        """View (or copy) a one-item sequence holding ImageOrientationPatient or ImageOrientationSlide."""
        item = sequence[0] if isinstance(sequence, DicomSequence) and len(sequence) == 1 else None
        required = (["ImageOrientationSlide"] if item is not None and "ImageOrientationSlide" in item
                    else ["ImageOrientationPatient"])
        return _single_item(cls, sequence, required, copy)  # type: ignore[return-value]  # _single_item returns a Sequence of cls items (typed as a plain DicomSequence)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PlaneOrientationSequence):
            return NotImplemented
        return self.coordinate_system == other.coordinate_system and self.cosines == other.cosines

    __hash__ = None  # type: ignore[assignment]  # mutable, compares by value: unhashable on purpose (pydicom Dataset declares __hash__)


class VolumeFunctionalGroups:
    """The functional-group sequences of a volume's planes (implements ``FunctionalGroupBuilder``).

    Slide volumes place every plane at (column, row) = (1, 1) of the total
    pixel matrix (PS3.3 C.8.12.6.1), as a volume has no tiles.
    """

    def plane_positions(self, coordinate_system: CoordinateSystemNames,
                        positions: np.ndarray) -> list[PlanePositionSequence]:
        """One :class:`PlanePositionSequence` per row of ``positions`` ``(F, 3)`` float (mm)."""
        matrix_position = (1, 1) if coordinate_system == CoordinateSystemNames.SLIDE else None
        return [PlanePositionSequence(coordinate_system, p, pixel_matrix_position=matrix_position)
                for p in positions]

    def plane_orientation(self, coordinate_system: CoordinateSystemNames,
                          direction_cosines: Sequence[float]) -> PlaneOrientationSequence:
        """The :class:`PlaneOrientationSequence` of six direction cosines (row then column)."""
        return PlaneOrientationSequence(coordinate_system, direction_cosines)

    def pixel_measures(self, pixel_spacing: Sequence[float],
                       spacing_between_slices: float) -> PixelMeasuresSequence:
        """The :class:`PixelMeasuresSequence`; SliceThickness = SpacingBetweenSlices (contiguous slabs)."""
        return PixelMeasuresSequence(pixel_spacing=pixel_spacing, slice_thickness=spacing_between_slices,
                                     spacing_between_slices=spacing_between_slices)


#: The object the package root binds to ``geometry.volume_base.FUNCTIONAL_GROUPS_ROLE``.
VOLUME_FUNCTIONAL_GROUPS = VolumeFunctionalGroups()
