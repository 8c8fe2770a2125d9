"""Place the frames of a SEG on a regular 3D grid (volume positions).

Segmentations routinely omit empty frames, so the grid is inferred allowing
missing positions: the slice spacing is SpacingBetweenSlices when recorded,
else the smallest gap between distinct positions along the slice normal,
and every frame must sit on an integer multiple of it (PS3.3 C.7.6.2.1.1).
Semantics follow highdicom 0.28's ``get_volume_positions``. Without missing
positions the check is :func:`~monai_dicomseg.geometry.affine.regular_slice_spacing`
(the writer's); the distance and normal checks are shared with it.
"""
from __future__ import annotations

import numpy as np

from monai_dicomseg.errors import GeometryError
from monai_dicomseg.geometry.affine import (
    check_stacked_along_normal,
    regular_slice_spacing,
    slice_distances,
)
from monai_dicomseg.geometry.tolerances import (
    PERPENDICULAR_TOLERANCE,
    SPACING_RELATIVE_TOLERANCE,
    ZERO_LENGTH_MM,
)

__all__ = ["volume_positions"]


def volume_positions(
    positions: np.ndarray,
    image_orientation: np.ndarray,
    *,
    spacing_hint: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    perpendicular_tol: float | None = None,
    allow_missing_positions: bool = True,
    allow_shear: bool = False,
) -> tuple[float, np.ndarray]:
    """Slice spacing and the 0-based volume position of every frame.

    Parameters
    ----------
    positions
        ``(F, 3) float64`` ImagePositionPatient of each frame (duplicates,
        e.g. one per segment, are allowed).
    image_orientation
        ``(6,)`` shared ImageOrientationPatient.
    spacing_hint
        SpacingBetweenSlices, if recorded.
    rtol, atol
        Tolerance on the deviation from the regular grid (relative to the
        spacing, or in mm). Default ``rtol = 0.01``.
    perpendicular_tol
        Allowed ``1 - |cos|`` between the stacking direction and the normal.
    allow_missing_positions
        Allow grid positions without a frame.
    allow_shear
        Accept frames stacked along a line off the normal (gantry/detector
        tilt); the caller then fits the step with
        :func:`~monai_dicomseg.geometry.slice_grid.fit_stack_step`, which
        checks the frames lie on that line.

    Returns
    -------
    tuple[float, numpy.ndarray]
        Positive spacing (mm) and ``(F,) int64`` volume positions, 0 being
        the lowest distance along ``cross(column_cosines, row_cosines)``.

    Raises
    ------
    GeometryError
        If the frames do not form a regularly spaced stack.
    """
    if atol is not None and rtol is not None:
        raise GeometryError("rtol and atol may not be given together")
    atol = 0.0 if atol is None else float(atol)
    rtol = (SPACING_RELATIVE_TOLERANCE if atol == 0.0 else 0.0) if rtol is None else float(rtol)
    perpendicular_tol = PERPENDICULAR_TOLERANCE if perpendicular_tol is None else perpendicular_tol
    if spacing_hint is not None:
        spacing_hint = abs(float(spacing_hint)) or None
    points = np.asarray(positions, dtype=np.float64)
    n = points.shape[0]
    unique, inverse = np.unique(points, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    if unique.shape[0] == 1:
        return (spacing_hint or 1.0), np.zeros(n, np.int64)
    distances = slice_distances(unique, image_orientation)
    order = np.argsort(distances, kind="stable")
    if not allow_missing_positions:
        spacing = regular_slice_spacing(unique, image_orientation, rtol=rtol, atol=atol,
                                        perpendicular_tol=1.0 if allow_shear else perpendicular_tol)
        return spacing, np.argsort(order)[inverse]
    spacing = spacing_hint if spacing_hint is not None else float(np.diff(distances[order]).min())
    if spacing <= ZERO_LENGTH_MM:
        raise GeometryError(
            "frame positions are related by in-plane translations; they do not form a volume"
        )
    multiples = (distances - distances.min()) / spacing
    deviation = np.abs(distances - (multiples.round() * spacing + distances.min()))
    if np.any(deviation > atol + rtol * spacing):
        raise GeometryError(
            f"frame positions are not regularly spaced: largest deviation from a grid of "
            f"spacing {spacing:.4f} mm is {deviation.max():.4f} mm"
        )
    if not allow_shear:
        check_stacked_along_normal(unique, order, image_orientation, perpendicular_tol)
    return spacing, multiples.round().astype(np.int64)[inverse]
