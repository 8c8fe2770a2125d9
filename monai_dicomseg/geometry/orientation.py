"""Patient orientation letters, axis handedness and reference conventions.

DICOM's patient coordinate system is LPS (PS3.3 C.7.6.2.1.1): +x points to the
patient's Left, +y to Posterior, +z to Head. A *patient orientation* such as
``"RAH"`` names, for each of three axes, the anatomical direction in which the
axis increases; ``"S"``/``"I"`` are accepted as aliases of ``"H"``/``"F"``.
The same three-letter form names a *reference convention* (``"LPS"`` for
DICOM, ``"RAS"`` for NIfTI).
"""
from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

import numpy as np

from monai_dicomseg.errors import InputError
from monai_dicomseg.geometry.tolerances import ORTHOGONALITY_TOLERANCE

__all__ = [
    "AxisHandedness",
    "PatientOrientationValuesBiped",
    "LPS_PATIENT_REFERENCE_CONVENTION",
    "RAS_PATIENT_REFERENCE_CONVENTION",
    "OPPOSITE_DIRECTION",
    "normalize_patient_orientation",
    "is_orthogonal",
    "closest_patient_orientation",
    "rotation_for_patient_orientation",
    "convert_affine_to_convention",
]


class PatientOrientationValuesBiped(Enum):
    """Anatomical directions (PS3.3 C.7.6.1.1.1 Patient Orientation)."""

    L = "L"
    R = "R"
    A = "A"
    P = "P"
    H = "H"
    F = "F"


class AxisHandedness(Enum):
    """Handedness of three ordered axes in the frame of reference."""

    LEFT_HANDED = "LEFT_HANDED"
    RIGHT_HANDED = "RIGHT_HANDED"


_P = PatientOrientationValuesBiped

OPPOSITE_DIRECTION: dict[PatientOrientationValuesBiped, PatientOrientationValuesBiped] = {
    _P.L: _P.R, _P.R: _P.L, _P.A: _P.P, _P.P: _P.A, _P.H: _P.F, _P.F: _P.H,
}
"""Each anatomical direction mapped to its opposite."""

LPS_PATIENT_REFERENCE_CONVENTION = (_P.L, _P.P, _P.H)
"""DICOM's patient reference convention (PS3.3 C.7.6.2.1.1)."""

RAS_PATIENT_REFERENCE_CONVENTION = (_P.R, _P.A, _P.H)
"""NIfTI's patient reference convention."""

# Unit vector in LPS for each letter (index of the LPS axis, sign).
_LPS_AXIS_AND_SIGN: dict[PatientOrientationValuesBiped, tuple[int, float]] = {
    _P.L: (0, 1.0), _P.R: (0, -1.0),
    _P.P: (1, 1.0), _P.A: (1, -1.0),
    _P.H: (2, 1.0), _P.F: (2, -1.0),
}
_ALIASES = {"S": "H", "I": "F"}

PatientOrientation = tuple[
    PatientOrientationValuesBiped, PatientOrientationValuesBiped, PatientOrientationValuesBiped
]


def normalize_patient_orientation(
    orientation: "str | Sequence[str | Enum]",
    argument: str = "patient_orientation",
) -> PatientOrientation:
    """Convert ``"RAS"``, ``('R', 'A', 'S')`` or enum members to a checked triple.

    Parameters
    ----------
    orientation
        Three directions: one of L/R, one of A/P and one of H/F (S/I aliases),
        in any order.
    argument
        Argument name for error messages.

    Returns
    -------
    tuple of three PatientOrientationValuesBiped

    Raises
    ------
    InputError
        If the value does not name each patient axis exactly once.
    """
    try:
        items = list(orientation)
    except TypeError:
        raise InputError(
            f"{argument} must be a 3-letter string such as 'LPS'; got {orientation!r}"
        ) from None
    if len(items) != 3:
        raise InputError(
            f"{argument} must have 3 directions; got {len(items)} ({orientation!r})"
        )
    letters = []
    for item in items:
        raw = item.value if isinstance(item, Enum) else item
        raw = _ALIASES.get(raw, raw)
        try:
            letters.append(PatientOrientationValuesBiped(raw))
        except ValueError:
            raise InputError(
                f"{argument} contains {raw!r}; expected one of L, R, A, P, H (S), F (I)"
            ) from None
    axes = sorted(_LPS_AXIS_AND_SIGN[d][0] for d in letters)
    if axes != [0, 1, 2]:
        raise InputError(
            f"{argument} must name each of L/R, A/P and H/F exactly once; "
            f"got {''.join(d.value for d in letters)!r}"
        )
    return tuple(letters)  # type: ignore[return-value]  # tuple() is typed tuple[T, ...]; the fixed length holds by construction (one item per axis)


def is_orthogonal(
    matrix: np.ndarray,
    *,
    require_unit: bool = True,
    tol: float = ORTHOGONALITY_TOLERANCE,
) -> bool:
    """Whether a square matrix has mutually orthogonal, finite, non-zero columns.

    Parameters
    ----------
    matrix
        ``(K, K)`` float array.
    require_unit
        Additionally require unit-length columns.
    tol
        Absolute tolerance on normalised dot products and squared norms.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        return False
    norms = np.linalg.norm(m, axis=0)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0.0):
        return False
    if require_unit and not np.allclose(norms ** 2, 1.0, atol=tol):
        return False
    unit = m / norms
    return bool(np.allclose(unit.T @ unit, np.eye(m.shape[1]), atol=tol))


def closest_patient_orientation(affine: np.ndarray) -> PatientOrientation:
    """Anatomical direction closest to each of the three array axes.

    Parameters
    ----------
    affine
        ``(4, 4)`` affine or ``(3, 3)`` (scaled) direction matrix, LPS.

    Returns
    -------
    tuple of three PatientOrientationValuesBiped
        For array axes 0, 1, 2 the LPS axis (with sign) it is most aligned
        with; each patient axis is used once (ties at 45 degrees go to the
        next best axis).
    """
    m = np.asarray(affine, dtype=np.float64)
    if m.shape not in ((3, 3), (4, 4)):
        raise InputError(f"affine must have shape (3, 3) or (4, 4); got {m.shape}")
    direction = m[:3, :3]
    if not is_orthogonal(direction, require_unit=False):
        raise InputError("affine direction columns must be mutually orthogonal")
    positive = (_P.L, _P.P, _P.H)
    negative = (_P.R, _P.A, _P.F)
    used: set[int] = set()
    result = []
    for axis in range(3):
        ranking = np.argsort(-np.abs(direction[:, axis]), kind="stable")
        lps_axis = next(int(i) for i in ranking if int(i) not in used)
        used.add(lps_axis)
        sign = direction[lps_axis, axis]
        result.append(positive[lps_axis] if sign > 0 else negative[lps_axis])
    return tuple(result)  # type: ignore[return-value]  # tuple() is typed tuple[T, ...]; the fixed length holds by construction (one item per axis)


def rotation_for_patient_orientation(
    patient_orientation: "str | Sequence[str | Enum]",
    spacing: "float | Sequence[float]" = 1.0,
) -> np.ndarray:
    """Axis-aligned, scaled direction matrix for a patient orientation.

    Returns
    -------
    numpy.ndarray
        ``(3, 3) float64``; column ``k`` is ``spacing[k]`` times the LPS unit
        vector of direction ``k``.
    """
    letters = normalize_patient_orientation(patient_orientation)
    spacings = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,))
    rotation = np.zeros((3, 3), dtype=np.float64)
    for column, (letter, step) in enumerate(zip(letters, spacings)):
        lps_axis, sign = _LPS_AXIS_AND_SIGN[letter]
        rotation[lps_axis, column] = sign * step
    return rotation


def convert_affine_to_convention(
    affine: np.ndarray,
    from_reference_convention: "str | Sequence[str | Enum]",
    to_reference_convention: "str | Sequence[str | Enum]",
) -> np.ndarray:
    """Express an index-to-reference affine in another patient convention.

    Only the reference (row) side changes: the same voxel index maps to the
    same physical point, written in the coordinates of the target
    convention (for example LPS -> RAS negates the first two rows).

    Returns
    -------
    numpy.ndarray
        ``(4, 4) float64``.
    """
    source = normalize_patient_orientation(from_reference_convention, "from_reference_convention")
    target = normalize_patient_orientation(to_reference_convention, "to_reference_convention")
    # Matrix mapping source coordinates to LPS, then LPS to target coordinates.
    source_to_lps = rotation_for_patient_orientation(source)
    target_to_lps = rotation_for_patient_orientation(target)
    change = np.eye(4)
    change[:3, :3] = target_to_lps.T @ source_to_lps
    return change @ np.asarray(affine, dtype=np.float64)
