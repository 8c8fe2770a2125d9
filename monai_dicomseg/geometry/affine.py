"""LPS affines of volumes and the DICOM image-plane attributes they encode.

A volume affine is a ``(4, 4) float64`` matrix mapping a voxel index
``(slice, row, column, 1)`` to a patient (LPS) or slide position. Following
the Image Plane Module (PS3.3 C.7.6.2, Equation C.7.6.2.1-1) and the Plane
Position / Plane Orientation / Pixel Measures functional groups (PS3.3
C.7.6.16.2.1-3):

* column 0 is the step between consecutive frames (slice normal times the
  spacing between slices);
* column 1 is the step down the rows: the *column* direction cosines
  (``ImageOrientationPatient[3:]``) times ``PixelSpacing[0]``;
* column 2 is the step along the columns: the *row* direction cosines
  (``ImageOrientationPatient[:3]``) times ``PixelSpacing[1]``;
* column 3 is ``ImagePositionPatient`` of the first frame.

The slice normal is ``cross(column_cosines, row_cosines)`` so that the three
axes form a right-handed system, the convention highdicom's ``Volume`` uses.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from monai_dicomseg.errors import GeometryError, InputError
from monai_dicomseg.geometry.orientation import (
    LPS_PATIENT_REFERENCE_CONVENTION,
    RAS_PATIENT_REFERENCE_CONVENTION,
    convert_affine_to_convention,
    is_orthogonal,
    rotation_for_patient_orientation,
)
from monai_dicomseg.geometry.tolerances import (
    IMAGE_ORIENTATION_INPUT_TOLERANCE,
    ORTHOGONALITY_TOLERANCE,
    PARALLEL_COSINES_TOLERANCE,
    PERPENDICULAR_TOLERANCE,
    POSITION_TOLERANCE_MM,
    SPACING_RELATIVE_TOLERANCE,
)

__all__ = [
    "as_float_vector",
    "check_image_orientation",
    "check_affine",
    "shear_angle",
    "stack_affine",
    "check_stacked_along_normal",
    "affine_from_image_plane",
    "affine_from_components",
    "slice_normal",
    "plane_positions_from_affine",
    "image_orientation_from_affine",
    "pixel_spacing_from_affine",
    "slice_spacing_from_affine",
    "spacing_from_affine",
    "lps_to_ras_affine",
    "ras_to_lps_affine",
    "RAS",
    "LPS",
    "SPACES",
    "check_space",
    "translate_affine",
    "permute_affine",
    "flip_affine",
    "slice_distances",
    "regular_slice_spacing",
]


def as_float_vector(value: object, length: int, argument: str) -> np.ndarray:
    """Convert ``value`` to a finite ``(length,) float64`` vector or raise InputError."""
    try:
        vector = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(
            f"{argument} must be a sequence of {length} numbers; got {value!r}"
        ) from None
    if vector.shape != (length,):
        raise InputError(
            f"{argument} must have {length} values; got shape {vector.shape}"
        )
    if not np.all(np.isfinite(vector)):
        raise InputError(f"{argument} must be finite; got {vector.tolist()}")
    return vector


def check_affine(affine: object, argument: str = "affine", *, allow_shear: bool = False) -> np.ndarray:
    """Validate a volume affine and return it as a new ``(4, 4) float64`` array.

    Parameters
    ----------
    affine
        The ``(4, 4)`` matrix.
    argument
        Name used in errors.
    allow_shear
        Accept a sheared affine (:mod:`monai_dicomseg.geometry.sheared`):
        columns 1 and 2 (the in-plane axes) orthogonal and non-zero, column 0
        (the slice step) any vector out of their plane.

    Raises
    ------
    InputError
        If the shape is not ``(4, 4)``, the last row is not ``[0, 0, 0, 1]``,
        a value is not finite, or the direction columns are not mutually
        orthogonal and non-zero (with ``allow_shear``: the in-plane columns
        not orthogonal, or the slice step in their plane).
    """
    try:
        matrix = np.array(affine, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{argument} must be a (4, 4) numeric array") from None
    if matrix.shape != (4, 4):
        raise InputError(f"{argument} must have shape (4, 4); got {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise InputError(f"{argument} must contain only finite values")
    if not np.array_equal(matrix[3], [0.0, 0.0, 0.0, 1.0]):
        raise InputError(
            f"{argument} last row must be [0, 0, 0, 1]; got {matrix[3].tolist()}"
        )
    if allow_shear:
        _check_sheared(matrix, argument)
    elif not is_orthogonal(matrix[:3, :3], require_unit=False):
        raise InputError(
            f"{argument} direction columns must be non-zero and mutually "
            f"orthogonal; got {matrix[:3, :3].tolist()}"
        )
    return matrix


def shear_angle(affine: np.ndarray) -> float:
    """Angle (degrees) between column 0 of an affine (the slice step) and the normal of columns 1 and 2.

    0.0 for an orthogonal affine; the gantry/detector tilt of a sheared stack.
    """
    matrix = np.asarray(affine, dtype=np.float64)
    normal = np.cross(matrix[:3, 1], matrix[:3, 2])
    step = matrix[:3, 0]
    cosine = abs(float(step @ normal)) / (np.linalg.norm(step) * np.linalg.norm(normal))
    return float(np.degrees(np.arccos(min(1.0, cosine))))


def _check_sheared(matrix: np.ndarray, argument: str) -> None:
    """Columns 1, 2 orthogonal and non-zero; column 0 out of their plane (sheared affines)."""
    norms = np.linalg.norm(matrix[:3, :3], axis=0)
    if np.any(norms == 0.0) or abs(float(matrix[:3, 1] @ matrix[:3, 2])) > ORTHOGONALITY_TOLERANCE * norms[1] * norms[2]:
        raise InputError(
            f"{argument} in-plane direction columns 1 and 2 must be non-zero and orthogonal, and the slice "
            f"step (column 0) non-zero; got {matrix[:3, :3].tolist()}")
    if shear_angle(matrix) >= MAX_SHEAR_DEGREES:
        raise InputError(
            f"{argument} slice step (column 0) lies (almost) in the image plane (angle to the normal "
            f"{shear_angle(matrix):.2f} degrees, at most {MAX_SHEAR_DEGREES} accepted); got {matrix[:3, :3].tolist()}")


MAX_SHEAR_DEGREES = 80.0
"""Largest angle between the slice step and the normal that a sheared affine may have."""


def stack_affine(direction: np.ndarray, position: "Sequence[float] | np.ndarray") -> np.ndarray:
    """Build a ``(4, 4) float64`` affine from a ``(3, 3)`` scaled direction matrix and a position."""
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(direction, dtype=np.float64)
    affine[:3, 3] = np.asarray(position, dtype=np.float64).reshape(3)
    return affine


def check_image_orientation(
    image_orientation: "Sequence[float] | np.ndarray", attribute: str = "ImageOrientationPatient"
) -> np.ndarray:
    """Check that row and column direction cosines are unit vectors at right angles.

    PS3.3 C.7.6.2.1.1: the two cosine triplets of ImageOrientationPatient are
    orthonormal. Returns the six values as ``(6,) float64``.

    Raises
    ------
    GeometryError
        Naming ``attribute``, when a cosine triplet is not of unit length or
        the two are not orthogonal (beyond ``IMAGE_ORIENTATION_INPUT_TOLERANCE``).
    """
    cosines = np.asarray(image_orientation, dtype=np.float64).reshape(-1)
    if cosines.shape != (6,) or not np.all(np.isfinite(cosines)):
        raise GeometryError(f"{attribute} must hold 6 finite values; got {cosines.tolist()}")
    row, column = cosines[:3], cosines[3:]
    norms = np.array([np.linalg.norm(row), np.linalg.norm(column)])
    dot = float(row @ column)
    if np.any(np.abs(norms - 1.0) > IMAGE_ORIENTATION_INPUT_TOLERANCE) or abs(dot) > IMAGE_ORIENTATION_INPUT_TOLERANCE:
        raise GeometryError(
            f"{attribute} {cosines.tolist()} is not a pair of orthogonal unit vectors "
            f"(lengths {norms.round(6).tolist()}, dot product {dot:.6f}; expected 1, 1 and 0)"
        )
    return cosines


def slice_normal(image_orientation: "Sequence[float] | np.ndarray") -> np.ndarray:
    """Unit vector along which frames of a volume are stacked.

    Parameters
    ----------
    image_orientation
        ``ImageOrientationPatient`` (or ``ImageOrientationSlide``): row
        cosines then column cosines, 6 floats (PS3.3 C.7.6.2.1.1).

    Returns
    -------
    numpy.ndarray
        ``(3,) float64`` ``cross(column_cosines, row_cosines)``, normalised.
    """
    cosines = as_float_vector(image_orientation, 6, "image_orientation")
    normal = np.cross(cosines[3:], cosines[:3])
    norm = np.linalg.norm(normal)
    if norm < PARALLEL_COSINES_TOLERANCE:
        raise InputError(
            f"image_orientation row and column cosines must not be parallel; got {cosines.tolist()}"
        )
    return normal / norm


def affine_from_image_plane(
    image_position: "Sequence[float] | np.ndarray",
    image_orientation: "Sequence[float] | np.ndarray",
    pixel_spacing: "Sequence[float] | np.ndarray",
    spacing_between_slices: float = 1.0,
) -> np.ndarray:
    """Volume affine from the Image Plane attributes of its first frame.

    Parameters
    ----------
    image_position
        ``ImagePositionPatient`` of frame 0, 3 floats (mm).
    image_orientation
        ``ImageOrientationPatient``, 6 floats (row cosines, column cosines).
    pixel_spacing
        ``PixelSpacing``: (spacing between rows, spacing between columns) mm.
    spacing_between_slices
        Distance between consecutive frames along the slice normal (mm).

    Returns
    -------
    numpy.ndarray
        ``(4, 4) float64`` with the column layout described in the module
        docstring.
    """
    position = as_float_vector(image_position, 3, "image_position")
    cosines = as_float_vector(image_orientation, 6, "image_orientation")
    spacing = as_float_vector(pixel_spacing, 2, "pixel_spacing")
    if np.any(spacing <= 0):
        raise InputError(f"pixel_spacing values must be positive; got {spacing.tolist()}")
    if not np.isfinite(spacing_between_slices) or spacing_between_slices <= 0:
        raise InputError(
            f"spacing_between_slices must be positive; got {spacing_between_slices!r}"
        )
    row_cosines, column_cosines = cosines[:3], cosines[3:]
    direction = np.column_stack([
        slice_normal(cosines) * float(spacing_between_slices),
        column_cosines * spacing[0],
        row_cosines * spacing[1],
    ])
    return stack_affine(direction, position)


def affine_from_components(
    *,
    spacing: "Sequence[float] | float",
    position: "Sequence[float] | None" = None,
    center_position: "Sequence[float] | None" = None,
    direction: "Sequence[float] | np.ndarray | None" = None,
    patient_orientation: "str | Sequence[str] | None" = None,
    spatial_shape: "Sequence[int] | None" = None,
) -> np.ndarray:
    """Volume affine from spacing, a direction and a corner or centre position.

    Parameters
    ----------
    spacing
        Voxel spacing along array axes 0, 1, 2 (mm); one number for all.
    position
        Position of the centre of voxel ``(0, 0, 0)``. Exclusive with
        ``center_position``.
    center_position
        Position of the centre of the volume; needs ``spatial_shape``.
    direction
        ``(3, 3)`` or flattened ``(9,)`` (row-major) matrix whose *columns*
        are the unit vectors of the array axes. Exclusive with
        ``patient_orientation``.
    patient_orientation
        Axis-aligned alternative to ``direction``, e.g. ``"FPL"``.
    spatial_shape
        Shape of the volume, used with ``center_position``.

    Returns
    -------
    numpy.ndarray
        ``(4, 4) float64``.
    """
    if (direction is None) == (patient_orientation is None):
        raise InputError("exactly one of direction and patient_orientation must be given")
    if (position is None) == (center_position is None):
        raise InputError("exactly one of position and center_position must be given")
    if np.ndim(spacing) == 0:
        spacing = [spacing] * 3  # type: ignore[list-item]  # a scalar spacing stands for all 3 axes; the parameter type is the sequence form
    spacings = as_float_vector(spacing, 3, "spacing")
    if np.any(spacings <= 0):
        raise InputError(f"spacing values must be positive; got {spacings.tolist()}")
    if direction is not None:
        unit = np.asarray(direction, dtype=np.float64)
        if unit.shape == (9,):
            unit = unit.reshape(3, 3)
        if unit.shape != (3, 3):
            raise InputError(f"direction must have shape (3, 3) or (9,); got {unit.shape}")
        if not is_orthogonal(unit, require_unit=True):
            raise InputError(
                f"direction must be an orthogonal matrix of unit columns; got {unit.tolist()}"
            )
    else:
        unit = rotation_for_patient_orientation(patient_orientation)  # type: ignore[arg-type]  # exactly one of direction / patient_orientation is given (checked above): not None here
    scaled = unit * spacings[np.newaxis, :]
    if position is not None:
        origin = as_float_vector(position, 3, "position")
    else:
        if spatial_shape is None:
            raise InputError("spatial_shape is required with center_position")
        shape = as_float_vector(spatial_shape, 3, "spatial_shape")
        centre = as_float_vector(center_position, 3, "center_position")
        origin = centre - scaled @ ((shape - 1.0) / 2.0)
    return stack_affine(scaled, origin)


def plane_positions_from_affine(affine: np.ndarray, number_of_frames: int) -> np.ndarray:
    """``ImagePositionPatient`` of each frame of a volume.

    Returns
    -------
    numpy.ndarray
        ``(number_of_frames, 3) float64``: ``position + k * slice_step``.
    """
    matrix = np.asarray(affine, dtype=np.float64)
    steps = np.arange(int(number_of_frames), dtype=np.float64)[:, np.newaxis]
    return matrix[:3, 3][np.newaxis, :] + steps * matrix[:3, 0][np.newaxis, :]


def image_orientation_from_affine(affine: np.ndarray) -> tuple[float, ...]:
    """``ImageOrientationPatient`` (row cosines, column cosines) of a volume's frames.

    Returns
    -------
    tuple of 6 float
        Normalised column 2 (along a row) then normalised column 1 (down a
        column) of the affine.
    """
    matrix = np.asarray(affine, dtype=np.float64)
    along_row = matrix[:3, 2] / np.linalg.norm(matrix[:3, 2])
    down_column = matrix[:3, 1] / np.linalg.norm(matrix[:3, 1])
    return tuple(float(v) for v in (*along_row, *down_column))


def pixel_spacing_from_affine(affine: np.ndarray) -> tuple[float, float]:
    """``PixelSpacing`` (between rows, between columns) in mm."""
    matrix = np.asarray(affine, dtype=np.float64)
    return float(np.linalg.norm(matrix[:3, 1])), float(np.linalg.norm(matrix[:3, 2]))


def slice_spacing_from_affine(affine: np.ndarray) -> float:
    """Spacing between consecutive frames (mm), the length of column 0."""
    return float(np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, 0]))


def spacing_from_affine(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel spacing along array axes 0, 1, 2 (mm)."""
    norms = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)
    return tuple(float(v) for v in norms)  # type: ignore[return-value]  # tuple() is typed tuple[T, ...]; the fixed length holds by construction (one item per axis)


RAS = "RAS"
"""MONAI's and NIfTI's patient space (``meta["space"]`` default, ``affine_lps_to_ras=True``)."""
LPS = "LPS"
"""DICOM's patient coordinate system (PS3.3 C.7.6.2.1.1)."""
SPACES = (RAS, LPS)
"""The axis codes a ``space=`` argument (and MONAI's ``meta["space"]``) may take."""


def check_space(space: object, argument: str = "space") -> str:
    """``"RAS"`` or ``"LPS"`` from a string (any case) or MONAI ``SpaceKeys`` member.

    Raises
    ------
    InputError
        Anything else, naming ``argument``.
    """
    value = str(getattr(space, "value", space)).upper()
    if value not in SPACES:
        raise InputError(f"{argument} must be 'RAS' or 'LPS'; got {space!r}")
    return value


def lps_to_ras_affine(affine: np.ndarray) -> np.ndarray:
    """Rewrite an LPS affine (DICOM) in RAS coordinates (NIfTI): negate rows 0 and 1."""
    return convert_affine_to_convention(
        affine, LPS_PATIENT_REFERENCE_CONVENTION, RAS_PATIENT_REFERENCE_CONVENTION
    )


def ras_to_lps_affine(affine: np.ndarray) -> np.ndarray:
    """Rewrite a RAS affine (NIfTI) in LPS coordinates (DICOM): negate rows 0 and 1."""
    return convert_affine_to_convention(
        affine, RAS_PATIENT_REFERENCE_CONVENTION, LPS_PATIENT_REFERENCE_CONVENTION
    )


def translate_affine(affine: np.ndarray, index_offset: "Sequence[float]") -> np.ndarray:
    """Affine whose voxel ``(0, 0, 0)`` is voxel ``index_offset`` of ``affine``."""
    result = np.array(affine, dtype=np.float64)
    result[:3, 3] = result[:3, 3] + result[:3, :3] @ np.asarray(index_offset, dtype=np.float64)
    return result


def permute_affine(affine: np.ndarray, axes: "Sequence[int]") -> np.ndarray:
    """Affine of an array whose axes were transposed with ``axes`` (numpy semantics)."""
    order = [int(a) for a in axes]
    if sorted(order) != [0, 1, 2]:
        raise InputError(f"axes must be a permutation of (0, 1, 2); got {tuple(axes)}")
    return np.asarray(affine, dtype=np.float64)[:, [*order, 3]].copy()


def flip_affine(
    affine: np.ndarray, spatial_shape: "Sequence[int]", axes: "Sequence[int]"
) -> np.ndarray:
    """Affine of an array reversed along ``axes`` (voxel centres unchanged)."""
    result = np.array(affine, dtype=np.float64)
    for axis in axes:
        result[:3, 3] += result[:3, axis] * (int(spatial_shape[axis]) - 1)
        result[:3, axis] = -result[:3, axis]
    return result


def slice_distances(
    positions: "np.ndarray | Sequence[Sequence[float]]",
    image_orientation: "Sequence[float] | np.ndarray",
) -> np.ndarray:
    """Signed distance of each plane position along the slice normal.

    Returns
    -------
    numpy.ndarray
        ``(N,) float64``: ``positions @ slice_normal(image_orientation)``.
    """
    points = np.asarray(positions, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise InputError(f"positions must have shape (N, 3); got {points.shape}")
    return points @ slice_normal(image_orientation)


def check_stacked_along_normal(
    points: np.ndarray,
    order: np.ndarray,
    image_orientation: "Sequence[float] | np.ndarray",
    perpendicular_tol: float = PERPENDICULAR_TOLERANCE,
) -> None:
    """Check that distinct plane positions differ only along the slice normal (PS3.3 C.7.6.2.1.1).

    Parameters
    ----------
    points
        ``(N, 3) float64`` distinct ImagePositionPatient values, N >= 2.
    order
        ``(N,)`` their order along the normal (``order[0]`` is the reference frame).
    image_orientation
        Shared ``ImageOrientationPatient`` (6 floats).
    perpendicular_tol
        Allowed ``1 - |cos|`` between frame-to-frame offsets and the normal.

    Raises
    ------
    GeometryError
        Naming the first frame offset in-plane.
    """
    offsets = points[order[1:]] - points[order[0]]
    cosines = offsets @ slice_normal(image_orientation) / np.linalg.norm(offsets, axis=1)
    off_normal = np.flatnonzero(np.abs(cosines) < 1.0 - perpendicular_tol)
    if off_normal.size:
        frame = int(order[off_normal[0] + 1])
        tilt = float(np.degrees(np.arccos(min(1.0, abs(float(cosines[off_normal[0]]))))))
        raise GeometryError(
            f"plane positions are not a volume along the slice normal: frame {frame} is offset from frame "
            f"{int(order[0])} in-plane, not only along the normal (a tilt of {tilt:.1f}\u00b0 if the stack is "
            f"sheared by a gantry/detector tilt; cosine {cosines[off_normal[0]]:.6f}, expected +-1). "
            "Volumes here have orthogonal axes, as highdicom's; load_source_series and "
            "LoadDicomSeries(d) load a tilted stack exactly, with a sheared affine"
        )


def regular_slice_spacing(
    positions: "np.ndarray | Sequence[Sequence[float]]",
    image_orientation: "Sequence[float] | np.ndarray",
    *,
    rtol: float = SPACING_RELATIVE_TOLERANCE,
    perpendicular_tol: float = PERPENDICULAR_TOLERANCE,
    duplicate_tol: float = POSITION_TOLERANCE_MM,
    atol: float = 0.0,
) -> float:
    """Check that plane positions form a regular volume; return its slice spacing.

    Positions may be in any order. They form a volume when, sorted along
    the slice normal, they are distinct, all lie on one line parallel to the
    normal (PS3.3 C.7.6.2.1.1: a volume's frames differ only by a
    translation along the normal), and consecutive distances agree.

    Parameters
    ----------
    positions
        ``(N, 3)`` ``ImagePositionPatient`` of each frame, N >= 1.
    image_orientation
        Shared ``ImageOrientationPatient`` (6 floats).
    rtol
        Allowed deviation of each gap from the mean gap, as a fraction of it.
    perpendicular_tol
        Allowed ``1 - |cos|`` between frame-to-frame offsets and the normal.
    duplicate_tol
        Two frames closer than this (mm) along the normal are duplicates.
    atol
        Allowed absolute deviation (mm) of each gap, added to ``rtol * spacing``.

    Returns
    -------
    float
        Positive slice spacing in mm; 1.0 for a single frame.

    Raises
    ------
    GeometryError
        Naming duplicates, frames off the normal, gaps (some gap an integer
        multiple of the smallest) or otherwise irregular spacing.
    """
    points = np.asarray(positions, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or points.shape[0] == 0:
        raise InputError(f"positions must have shape (N, 3) with N >= 1; got {points.shape}")
    if points.shape[0] == 1:
        return 1.0
    distances = slice_distances(points, image_orientation)
    order = np.argsort(distances, kind="stable")
    sorted_distances = distances[order]
    gaps = np.diff(sorted_distances)
    duplicate = np.flatnonzero(gaps < duplicate_tol)
    if duplicate.size:
        first = int(duplicate[0])
        raise GeometryError(
            f"plane positions are not a volume: frames {int(order[first])} and "
            f"{int(order[first + 1])} lie at the same distance along the slice normal "
            f"({sorted_distances[first]:.4f} mm); {duplicate.size} duplicate(s) in total"
        )
    check_stacked_along_normal(points, order, image_orientation, perpendicular_tol)
    spacing = float((sorted_distances[-1] - sorted_distances[0]) / (len(gaps)))
    deviation = np.abs(gaps - spacing)
    if np.all(deviation <= atol + rtol * spacing):
        return spacing
    smallest = float(gaps.min())
    multiples = gaps / smallest
    if np.all(np.abs(multiples - np.round(multiples)) * smallest <= atol + rtol * np.round(multiples) * smallest):
        missing = int(np.round(multiples).sum() - len(gaps))
        worst = int(np.argmax(multiples))
        raise GeometryError(
            f"plane positions are not a regular volume: {missing} slice(s) missing "
            f"(expected spacing {smallest:.4f} mm, largest gap {gaps[worst]:.4f} mm "
            f"between frames {int(order[worst])} and {int(order[worst + 1])})"
        )
    raise GeometryError(
        f"plane positions are not regularly spaced: gaps along the slice normal "
        f"range from {smallest:.4f} to {float(gaps.max()):.4f} mm (mean {spacing:.4f} mm, "
        f"relative tolerance {rtol})"
    )
