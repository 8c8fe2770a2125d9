"""Named tolerances shared by every geometric comparison in the package.

Comparisons of floating-point geometry (affines, direction cosines, plane
positions, spacings) never use bare literals: they use one of the constants
below, so that a reader can see which notion of "equal" applies and so that
all layers agree. The values follow highdicom 0.28 so that both libraries
accept and reject the same inputs.
"""
from __future__ import annotations

__all__ = [
    "AFFINE_EQUALITY_TOLERANCE",
    "DIRECTION_COSINE_TOLERANCE",
    "ORTHOGONALITY_TOLERANCE",
    "PERPENDICULAR_TOLERANCE",
    "POSITION_TOLERANCE_MM",
    "SPACING_RELATIVE_TOLERANCE",
    "ORIENTATION_MATCH_TOLERANCE",
    "PIXEL_SPACING_MATCH_RTOL",
]

AFFINE_EQUALITY_TOLERANCE: float = 1e-5
"""Absolute tolerance on affine matrix elements (mm, and unitless for the
direction part) when deciding whether two volume geometries are equal, and
on dot products / fractional voxel indices in ``match_geometry``."""

DIRECTION_COSINE_TOLERANCE: float = 1e-4
"""Absolute tolerance on individual direction cosines when deciding whether
two ImageOrientationPatient values (PS3.3 C.7.6.2.1.1) describe the same
orientation."""

ORTHOGONALITY_TOLERANCE: float = 1e-4
"""Absolute tolerance on the elements of ``D.T @ D - I`` (``D`` the matrix of
normalised direction columns) when checking that an affine or direction
matrix is orthogonal."""

PERPENDICULAR_TOLERANCE: float = 1e-3
"""Tolerance on ``|dot| - 1`` when checking that slices are stacked along the
normal of their image plane (unit vectors)."""

POSITION_TOLERANCE_MM: float = 1e-3
"""Absolute tolerance in millimetres below which two plane positions are
considered to be the same position (duplicates)."""

SPACING_RELATIVE_TOLERANCE: float = 1e-2
"""Relative tolerance on consecutive slice distances (as a fraction of the
mean slice spacing) below which a stack of slices is considered regular."""

ORIENTATION_MATCH_TOLERANCE: float = 1e-5
"""Absolute tolerance on direction cosines when deciding whether segmentation
planes keep the source orientation, i.e. whether Spatial Locations Preserved
can be YES (PS3.3 C.7.6.1.1.3); stricter than DIRECTION_COSINE_TOLERANCE, as
in highdicom."""

PIXEL_SPACING_MATCH_RTOL: float = 1e-4
"""Relative tolerance on Pixel Spacing when deciding whether segmentation
planes keep the source pixel grid."""
