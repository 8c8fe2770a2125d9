"""Behaviour shared by :class:`Volume` and :class:`VolumeGeometry`.

A volume geometry is an LPS (or slide) affine plus a spatial shape
``(F, R, C)``; see :mod:`monai_dicomseg.geometry.affine` for the column
layout. Every spatial operation here (indexing, permuting, flipping,
padding, cropping, orientation and geometry matching) computes the new
affine and shape once, and lets the subclass apply the matching array
operation through :meth:`_VolumeBase._derive`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from monai_dicomseg._lazy import provider
from monai_dicomseg.enums import CoordinateSystemNames, to_enum
from monai_dicomseg.errors import GeometryError, InputError, InputTypeError
from monai_dicomseg.geometry import affine as affine_ops
from monai_dicomseg.geometry.matching import plan_geometry_match
from monai_dicomseg.geometry.orientation import (
    LPS_PATIENT_REFERENCE_CONVENTION,
    OPPOSITE_DIRECTION,
    AxisHandedness,
    PatientOrientationValuesBiped,
    closest_patient_orientation,
    convert_affine_to_convention,
    normalize_patient_orientation,
)
from monai_dicomseg.geometry.padding import PadModes, normalize_pad_width
from monai_dicomseg.geometry.tolerances import AFFINE_EQUALITY_TOLERANCE

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Self

__all__ = ["VolumeBase", "FunctionalGroupBuilder", "FUNCTIONAL_GROUPS_ROLE"]

ArrayOperation = Callable[[np.ndarray], np.ndarray]


#: The late-bound role that builds DICOM functional-group sequences (see :class:`FunctionalGroupBuilder`).
FUNCTIONAL_GROUPS_ROLE = "volume_functional_groups"


@runtime_checkable
class FunctionalGroupBuilder(Protocol):
    """What the DICOM-attribute methods of a volume need from the layer that knows pydicom.

    ``geometry/`` is numpy only and imports nothing from a higher layer
    (``docs/architecture.md``; ``tests/test_layering.py``). The three sequences
    it hands out are pydicom objects built in ``codec/``
    (:mod:`monai_dicomseg.codec.spatial_content`); the package root binds that
    builder to :data:`FUNCTIONAL_GROUPS_ROLE` (``monai_dicomseg._lazy.provide``),
    and pydicom is imported only when one of the methods is called.
    """

    def plane_positions(self, coordinate_system: CoordinateSystemNames, positions: np.ndarray) -> list[Any]:
        """One Plane Position Sequence per row of ``positions`` ``(F, 3)`` (mm)."""

    def plane_orientation(self, coordinate_system: CoordinateSystemNames,
                          direction_cosines: Sequence[float]) -> Any:
        """The Plane Orientation Sequence of six direction cosines."""

    def pixel_measures(self, pixel_spacing: Sequence[float], spacing_between_slices: float) -> Any:
        """The Pixel Measures Sequence (slice thickness = spacing between slices)."""


def _functional_groups() -> FunctionalGroupBuilder:
    """The builder bound to :data:`FUNCTIONAL_GROUPS_ROLE` by the package root."""
    return provider(FUNCTIONAL_GROUPS_ROLE)


def _spatial_slices(index: Any, spatial_shape: tuple[int, int, int]) -> tuple[slice, slice, slice]:
    """Turn an int/slice/tuple index into one non-empty slice per spatial axis."""
    items = index if isinstance(index, tuple) else (index,)
    if len(items) > 3:
        raise InputError(f"index may address at most 3 spatial axes; got {len(items)} items")
    slices: list[slice] = []
    for axis, item in enumerate(items):
        size = spatial_shape[axis]
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if not -size <= item < size:
                raise InputError(
                    f"index {int(item)} is out of bounds for spatial axis {axis} with size {size}"
                )
            start = int(item) % size
            slices.append(slice(start, start + 1))
        elif isinstance(item, slice):
            slices.append(item)
        else:
            raise InputTypeError(
                f"spatial index items must be int or slice; got {type(item).__name__} on axis {axis}"
            )
    slices.extend([slice(None)] * (3 - len(slices)))
    return tuple(slices)  # type: ignore[return-value]  # tuple() is typed tuple[T, ...]; the fixed length holds by construction (one item per axis)


class VolumeBase(ABC):
    """Geometry of a regular 3D grid in a frame of reference (abstract)."""

    #: Whether the affine may be sheared (:mod:`monai_dicomseg.geometry.sheared`); False as in highdicom.
    _allow_shear: bool = False

    def __init__(
        self,
        affine: np.ndarray,
        coordinate_system: "CoordinateSystemNames | str",
        frame_of_reference_uid: "str | None" = None,
        from_reference_convention: "str | Sequence[str] | None" = None,
    ) -> None:
        matrix = affine_ops.check_affine(affine, "affine", allow_shear=self._allow_shear)
        self._coordinate_system = to_enum(CoordinateSystemNames, coordinate_system, "coordinate_system")
        if from_reference_convention is not None:
            if self._coordinate_system != CoordinateSystemNames.PATIENT:
                raise InputError(
                    "from_reference_convention is only valid for the PATIENT coordinate "
                    f"system; got {self._coordinate_system.value}"
                )
            matrix = convert_affine_to_convention(
                matrix, from_reference_convention, LPS_PATIENT_REFERENCE_CONVENTION
            )
        self._affine = matrix
        self._frame_of_reference_uid = (
            None if frame_of_reference_uid is None else str(frame_of_reference_uid)
        )

    # ------------------------------------------------------------ subclass hooks
    @property
    @abstractmethod
    def spatial_shape(self) -> tuple[int, int, int]:
        """Shape ``(F, R, C)`` of the three spatial axes."""

    @abstractmethod
    def _derive(
        self,
        affine: np.ndarray,
        spatial_shape: Sequence[int],
        array_operation: "ArrayOperation | None",
    ) -> "Self":
        """New object of the same class with a new geometry (and transformed array)."""

    # ------------------------------------------------------------ basic geometry
    @property
    def coordinate_system(self) -> CoordinateSystemNames:
        """Frame-of-reference coordinate system (PATIENT or SLIDE)."""
        return self._coordinate_system

    @property
    def frame_of_reference_uid(self) -> "str | None":
        """FrameOfReferenceUID (PS3.3 C.7.4.1), if known."""
        return self._frame_of_reference_uid

    @property
    def affine(self) -> np.ndarray:
        """``(4, 4) float64`` copy of the index-to-LPS affine."""
        return self._affine.copy()

    def get_affine(self, output_convention: "str | Sequence[str] | None" = None) -> np.ndarray:
        """``(4, 4) float64`` affine in another reference convention (e.g. ``'RAS'``)."""
        if output_convention is None:
            return self.affine
        return convert_affine_to_convention(
            self._affine, LPS_PATIENT_REFERENCE_CONVENTION, output_convention
        )

    @property
    def inverse_affine(self) -> np.ndarray:
        """``(4, 4) float64`` map from frame-of-reference position to voxel index."""
        return np.linalg.inv(self._affine)

    @property
    def direction_cosines(self) -> tuple[float, ...]:
        """ImageOrientationPatient/Slide of the frames: row cosines, column cosines."""
        return affine_ops.image_orientation_from_affine(self._affine)

    @property
    def pixel_spacing(self) -> tuple[float, float]:
        """PixelSpacing of the frames (between rows, between columns), mm."""
        return affine_ops.pixel_spacing_from_affine(self._affine)

    @property
    def spacing_between_slices(self) -> float:
        """Distance between consecutive frames (mm)."""
        return affine_ops.slice_spacing_from_affine(self._affine)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel spacing along the three spatial axes (mm)."""
        return affine_ops.spacing_from_affine(self._affine)

    @property
    def voxel_volume(self) -> float:
        """Volume of one voxel (mm^3)."""
        return float(np.prod(self.spacing))

    @property
    def position(self) -> tuple[float, float, float]:
        """Position of the centre of voxel ``(0, 0, 0)``."""
        return tuple(float(v) for v in self._affine[:3, 3])  # type: ignore[return-value]  # tuple() is typed tuple[T, ...]; the fixed length holds by construction (one item per axis)

    @property
    def physical_extent(self) -> tuple[float, float, float]:
        """Side lengths of the volume (mm)."""
        return tuple(n * d for n, d in zip(self.spatial_shape, self.spacing))  # type: ignore[return-value]  # tuple() is typed tuple[T, ...]; the fixed length holds by construction (one item per axis)

    @property
    def direction(self) -> np.ndarray:
        """``(3, 3) float64`` matrix whose columns are the unit vectors of the axes."""
        return self._affine[:3, :3] / np.linalg.norm(self._affine[:3, :3], axis=0)

    def spacing_vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Step vector (``(3,) float64``, length = spacing) along each spatial axis."""
        return tuple(self._affine[:3, :3].T.copy())

    def unit_vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unit vector (``(3,) float64``) along each spatial axis."""
        return tuple(self.direction.T.copy())

    @property
    def handedness(self) -> AxisHandedness:
        """Whether axes 0, 1, 2 form a right- or left-handed system."""
        v0, v1, v2 = self.spacing_vectors()
        return AxisHandedness.LEFT_HANDED if np.cross(v0, v1) @ v2 < 0 else AxisHandedness.RIGHT_HANDED

    @property
    def center_indices(self) -> tuple[float, float, float]:
        """Continuous index of the volume centre."""
        return tuple((n - 1) / 2.0 for n in self.spatial_shape)  # type: ignore[return-value]  # tuple() is typed tuple[T, ...]; the fixed length holds by construction (one item per axis)

    @property
    def nearest_center_indices(self) -> tuple[int, int, int]:
        """Integer index of the voxel at (or just before) the centre."""
        return tuple((n - 1) // 2 for n in self.spatial_shape)  # type: ignore[return-value]  # tuple() is typed tuple[T, ...]; the fixed length holds by construction (one item per axis)

    @property
    def center_position(self) -> tuple[float, float, float]:
        """Frame-of-reference position of the volume centre."""
        centre = self.map_indices_to_reference(np.array([self.center_indices]))[0]
        return tuple(float(v) for v in centre)  # type: ignore[return-value]  # tuple() is typed tuple[T, ...]; the fixed length holds by construction (one item per axis)

    # ------------------------------------------------------------ coordinate maps
    def map_indices_to_reference(self, indices: np.ndarray) -> np.ndarray:
        """Map ``(N, 3)`` voxel indices (slice, row, column) to ``(N, 3) float64`` positions."""
        points = np.asarray(indices, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 3:
            raise InputError(f"indices must have shape (N, 3); got {points.shape}")
        return points @ self._affine[:3, :3].T + self._affine[:3, 3]

    def map_reference_to_indices(
        self,
        coordinates: np.ndarray,
        round_output: bool = False,
        check_bounds: bool = False,
    ) -> np.ndarray:
        """Map ``(N, 3)`` positions to voxel indices.

        Returns
        -------
        numpy.ndarray
            ``(N, 3) float64``, or ``int64`` rounded to the nearest voxel when
            ``round_output``.

        Raises
        ------
        GeometryError
            With ``check_bounds``, if a position lies outside the volume
            (more than half a voxel beyond an edge voxel centre).
        """
        points = np.asarray(coordinates, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 3:
            raise InputError(f"coordinates must have shape (N, 3); got {points.shape}")
        inverse = self.inverse_affine
        indices = points @ inverse[:3, :3].T + inverse[:3, 3]
        if check_bounds:
            upper = np.asarray(self.spatial_shape, dtype=np.float64) - 0.5
            outside = np.any((indices < -0.5) | (indices > upper), axis=1)
            if outside.any():
                row = int(np.flatnonzero(outside)[0])
                raise GeometryError(
                    f"coordinate {points[row].tolist()} maps to index {indices[row].tolist()}, "
                    f"outside the volume of spatial shape {self.spatial_shape}"
                )
        return np.around(indices).astype(np.int64) if round_output else indices

    # ------------------------------------------------------------ DICOM attributes
    def get_plane_positions(self) -> list[Any]:
        """``PlanePositionSequence`` of each frame along axis 0 (PS3.3 C.7.6.16.2.3)."""
        positions = affine_ops.plane_positions_from_affine(self._affine, self.spatial_shape[0])
        return _functional_groups().plane_positions(self._coordinate_system, positions)

    def get_plane_position(self, plane_index: int) -> Any:
        """``PlanePositionSequence`` of frame ``plane_index`` (zero-based)."""
        if not 0 <= int(plane_index) < self.spatial_shape[0]:
            raise InputError(
                f"plane_index must be in [0, {self.spatial_shape[0]}); got {plane_index}"
            )
        return self.get_plane_positions()[int(plane_index)]

    def get_plane_orientation(self) -> Any:
        """``PlaneOrientationSequence`` of the frames (PS3.3 C.7.6.16.2.4)."""
        return _functional_groups().plane_orientation(self._coordinate_system, self.direction_cosines)

    def get_pixel_measures(self) -> Any:
        """``PixelMeasuresSequence`` of the frames (PS3.3 C.7.6.16.2.1); thickness = slice spacing."""
        return _functional_groups().pixel_measures(self.pixel_spacing, self.spacing_between_slices)

    # ------------------------------------------------------------ spatial operations
    def __getitem__(self, index: Any) -> "Self":
        """Spatial sub-volume; ints keep their axis (length 1), slices may step or reverse."""
        slices = _spatial_slices(index, self.spatial_shape)
        origin, steps, shape = [], [], []
        for axis, item in enumerate(slices):
            start, stop, step = item.indices(self.spatial_shape[axis])
            count = len(range(start, stop, step))
            if count == 0:
                raise InputError(
                    f"index {item} selects no voxels along spatial axis {axis} "
                    f"(size {self.spatial_shape[axis]})"
                )
            origin.append(start)
            steps.append(step)
            shape.append(count)
        new_affine = affine_ops.translate_affine(self._affine, origin)
        new_affine[:3, :3] = new_affine[:3, :3] * np.asarray(steps, dtype=np.float64)
        return self._derive(new_affine, shape, lambda array: array[slices])

    def permute_spatial_axes(self, indices: Sequence[int]) -> "Self":
        """Reorder the spatial axes (``numpy.transpose`` semantics); channels stay last."""
        order = [int(i) for i in indices] if isinstance(indices, (Sequence, np.ndarray)) else None
        if order is None or sorted(order) != [0, 1, 2]:
            raise InputError(f"indices must be a permutation of (0, 1, 2); got {indices!r}")
        new_affine = affine_ops.permute_affine(self._affine, order)
        shape = [self.spatial_shape[i] for i in order]
        return self._derive(
            new_affine, shape,
            lambda array: np.transpose(array, [*order, *range(3, array.ndim)]),
        )

    def swap_spatial_axes(self, axis_1: int, axis_2: int) -> "Self":
        """Exchange two spatial axes."""
        for axis in (axis_1, axis_2):
            if axis not in (0, 1, 2):
                raise InputError(f"spatial axes must be 0, 1 or 2; got {axis!r}")
        if axis_1 == axis_2:
            raise InputError(f"axis_1 and axis_2 must differ; both are {axis_1}")
        order = [0, 1, 2]
        order[axis_1], order[axis_2] = axis_2, axis_1
        return self.permute_spatial_axes(order)

    def flip_spatial(self, axes: "int | Sequence[int]") -> "Self":
        """Reverse the given spatial axes; voxel positions are unchanged."""
        axis_list = [axes] if isinstance(axes, (int, np.integer)) else list(axes)
        if not set(axis_list) <= {0, 1, 2} or len(set(axis_list)) != len(axis_list):
            raise InputError(f"axes must be distinct values among 0, 1, 2; got {axes!r}")
        return self[tuple(slice(None, None, -1) if a in axis_list else slice(None) for a in range(3))]

    def pad(
        self,
        pad_width: "int | Sequence[int] | Sequence[Sequence[int]]",
        *,
        mode: "PadModes | str" = PadModes.CONSTANT,
        constant_value: float = 0.0,
        per_channel: bool = False,
    ) -> "Self":
        """Add voxels before/after each spatial axis (``numpy.pad``-style width)."""
        widths = normalize_pad_width(pad_width)
        new_affine = affine_ops.translate_affine(self._affine, [-b for b, _ in widths])
        shape = [n + b + a for n, (b, a) in zip(self.spatial_shape, widths)]
        return self._derive(new_affine, shape, self._padder(widths, mode, constant_value, per_channel))

    def _padder(
        self, widths: list, mode: "PadModes | str", constant_value: float, per_channel: bool
    ) -> "ArrayOperation | None":
        return None

    def _check_target_shape(self, spatial_shape: Sequence[int]) -> list[int]:
        shape = list(spatial_shape) if isinstance(spatial_shape, (Sequence, np.ndarray)) else []
        if len(shape) != 3 or not all(isinstance(n, (int, np.integer)) and n > 0 for n in shape):
            raise InputError(f"spatial_shape must be 3 positive ints; got {spatial_shape!r}")
        return [int(n) for n in shape]

    def pad_to_spatial_shape(
        self,
        spatial_shape: Sequence[int],
        *,
        mode: "PadModes | str" = PadModes.CONSTANT,
        constant_value: float = 0.0,
        per_channel: bool = False,
    ) -> "Self":
        """Pad symmetrically (extra voxel at the end) up to ``spatial_shape``."""
        target = self._check_target_shape(spatial_shape)
        if any(t < n for t, n in zip(target, self.spatial_shape)):
            raise InputError(
                f"spatial_shape {tuple(target)} is smaller than the volume's "
                f"{self.spatial_shape} along at least one axis; cannot pad"
            )
        widths = [((t - n) // 2, (t - n) - (t - n) // 2) for t, n in zip(target, self.spatial_shape)]
        return self.pad(widths, mode=mode, constant_value=constant_value, per_channel=per_channel)

    def crop_to_spatial_shape(self, spatial_shape: Sequence[int]) -> "Self":
        """Centre-crop to ``spatial_shape`` (extra voxel removed at the end)."""
        target = self._check_target_shape(spatial_shape)
        if any(t > n for t, n in zip(target, self.spatial_shape)):
            raise InputError(
                f"spatial_shape {tuple(target)} is larger than the volume's "
                f"{self.spatial_shape} along at least one axis; cannot crop"
            )
        starts = [(n - t) // 2 for t, n in zip(target, self.spatial_shape)]
        return self[tuple(slice(s, s + t) for s, t in zip(starts, target))]

    def pad_or_crop_to_spatial_shape(
        self,
        spatial_shape: Sequence[int],
        *,
        mode: "PadModes | str" = PadModes.CONSTANT,
        constant_value: float = 0.0,
        per_channel: bool = False,
    ) -> "Self":
        """Centre-crop axes that are too long, then pad axes that are too short."""
        target = self._check_target_shape(spatial_shape)
        cropped = self.crop_to_spatial_shape([min(t, n) for t, n in zip(target, self.spatial_shape)])
        return cropped.pad_to_spatial_shape(
            target, mode=mode, constant_value=constant_value, per_channel=per_channel
        )

    # ------------------------------------------------------------ orientation
    def _require_patient(self, operation: str) -> None:
        if self._coordinate_system != CoordinateSystemNames.PATIENT:
            raise GeometryError(
                f"{operation} needs the PATIENT coordinate system; this volume is "
                f"{self._coordinate_system.value}"
            )

    def get_closest_patient_orientation(self) -> tuple[PatientOrientationValuesBiped, ...]:
        """Anatomical direction (L/R, A/P, H/F) closest to each spatial axis."""
        self._require_patient("get_closest_patient_orientation")
        return closest_patient_orientation(self._affine)

    def _to_orientation(self, target: Sequence[PatientOrientationValuesBiped]) -> "Self":
        current = closest_patient_orientation(self._affine)
        order, flips = [], []
        for letter in target:
            if letter in current:
                order.append(current.index(letter))
            else:
                source_axis = current.index(OPPOSITE_DIRECTION[letter])
                order.append(source_axis)
                flips.append(source_axis)
        result = self.flip_spatial(flips) if flips else self
        return result.permute_spatial_axes(order)

    def to_patient_orientation(self, patient_orientation: "str | Sequence[str | Enum]") -> "Self":
        """Flip/permute axes (no resampling) to get closest to e.g. ``'RAH'`` / ``'LPS'``."""
        self._require_patient("to_patient_orientation")
        return self._to_orientation(normalize_patient_orientation(patient_orientation))

    def match_orientation(self, other: "VolumeBase") -> "Self":
        """Flip/permute axes (no resampling) to the closest orientation of ``other``."""
        if not isinstance(other, VolumeBase):
            raise InputTypeError(
                f"other must be a Volume or VolumeGeometry; got {type(other).__name__}"
            )
        return self._to_orientation(closest_patient_orientation(other._affine))

    # ------------------------------------------------------------ comparison
    def geometry_equal(self, other: "VolumeBase", tol: "float | None" = AFFINE_EQUALITY_TOLERANCE) -> bool:
        """Same spatial shape, coordinate system, frame of reference and affine (within ``tol``).

        A frame of reference UID missing on either side is not compared.
        ``tol=None`` compares affines exactly.
        """
        if not isinstance(other, VolumeBase):
            raise InputTypeError(
                f"other must be a Volume or VolumeGeometry; got {type(other).__name__}"
            )
        if (
            self._frame_of_reference_uid is not None
            and other._frame_of_reference_uid is not None
            and self._frame_of_reference_uid != other._frame_of_reference_uid
        ):
            return False
        if self.spatial_shape != other.spatial_shape:
            return False
        if self._coordinate_system != other._coordinate_system:
            return False
        if tol is None:
            return bool(np.array_equal(self._affine, other._affine))
        return bool(np.allclose(self._affine, other._affine, atol=tol, rtol=0.0))

    def match_geometry(
        self,
        other: "VolumeBase",
        *,
        mode: "PadModes | str" = PadModes.CONSTANT,
        constant_value: float = 0.0,
        per_channel: bool = False,
        tol: float = AFFINE_EQUALITY_TOLERANCE,
    ) -> "Self":
        """Permute, flip, pad and crop (never resample) onto the geometry of ``other``.

        Raises
        ------
        GeometryError
            If the frames of reference or coordinate systems differ, or the
            grids are related by a rotation, a non-integer spacing ratio or a
            fractional voxel shift.
        """
        if not isinstance(other, VolumeBase):
            raise InputTypeError(
                f"other must be a Volume or VolumeGeometry; got {type(other).__name__}"
            )
        if (
            self._frame_of_reference_uid is not None
            and other._frame_of_reference_uid is not None
            and self._frame_of_reference_uid != other._frame_of_reference_uid
        ):
            raise GeometryError(
                "cannot match geometry: FrameOfReferenceUID differs "
                f"({self._frame_of_reference_uid!r} vs {other._frame_of_reference_uid!r})"
            )
        if self._coordinate_system != other._coordinate_system:
            raise GeometryError(
                "cannot match geometry: coordinate systems differ "
                f"({self._coordinate_system.value} vs {other._coordinate_system.value})"
            )
        plan = plan_geometry_match(
            self._affine, self.spatial_shape, other._affine, other.spatial_shape, tol
        )
        result = self.permute_spatial_axes(plan.permutation) if plan.needs_permute else self
        if plan.needs_pad:
            result = result.pad(
                [list(w) for w in plan.pad_width],
                mode=mode, constant_value=constant_value, per_channel=per_channel,
            )
        return result[plan.slices]
