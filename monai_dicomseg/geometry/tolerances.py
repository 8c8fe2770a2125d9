"""Named tolerances shared by every geometric comparison in the package.

Comparisons of floating-point geometry (affines, direction cosines, plane
positions, spacings) never use bare literals: they use one of the constants
below, so that a reader can see which notion of "equal" applies and so that
all layers agree. Units: millimetres for positions (``*_MM``), unitless for
direction cosines and relative spacings, and *voxels of the target grid* for
:data:`GRID_INDEX_TOLERANCE` (see there why a grid test is not in mm).

Two families:

* **DICOM attribute comparisons** (the values of highdicom 0.28, so both
  libraries accept and reject the same inputs): ``DIRECTION_COSINE_*``,
  ``ORIENTATION_MATCH_*``, ``POSITION_TOLERANCE_MM``, ``PIXEL_SPACING_*``,
  ``SPACING_RELATIVE_*``, ``PERPENDICULAR_*``, ``ORTHOGONALITY_*`` and the
  ``AFFINE_EQUALITY_TOLERANCE`` default of ``Volume.match_geometry`` /
  ``geometry_equal``.
* **Label placement** (every entry point that puts labels of one grid on
  another without resampling: ``LoadDicomSeg(d)`` with a reference image,
  ``SaveDicomSeg(d)`` / ``DicomSegWriter``, ``monai-dicomseg from-nifti`` and
  ``to-nifti --source``): one test, :func:`monai_dicomseg.geometry.grid_mapping.find_grid_mapping`,
  with :data:`GRID_INDEX_TOLERANCE` for voxel centres and
  :data:`DIRECTION_COSINE_TOLERANCE` for the direction of single-voxel axes.
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
    "GRID_INDEX_TOLERANCE",
    "ZERO_LENGTH_MM",
    "PIXEL_SPACING_MATCH_ATOL_MM",
    "IMAGE_ORIENTATION_INPUT_TOLERANCE",
    "PARALLEL_COSINES_TOLERANCE",
    "SHEAR_DRIFT_TOLERANCE_MM",
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

SHEAR_DRIFT_TOLERANCE_MM: float = 1e-2
"""In-plane drift (mm) of the last slice of a stack, relative to a stack
straight along the slice normal, below which the stack is not sheared (no
gantry/detector tilt): the affine's slice step is then the normal times the
spacing. Above it the step follows the slice positions (a sheared affine)."""

ORIENTATION_MATCH_TOLERANCE: float = 1e-5
"""Absolute tolerance on direction cosines when deciding whether segmentation
planes keep the source orientation, i.e. whether Spatial Locations Preserved
can be YES (PS3.3 C.7.6.1.1.3); stricter than DIRECTION_COSINE_TOLERANCE, as
in highdicom."""

PIXEL_SPACING_MATCH_RTOL: float = 1e-4
"""Relative tolerance on Pixel Spacing when deciding whether segmentation
planes keep the source pixel grid."""

GRID_INDEX_TOLERANCE: float = 1e-2
"""Largest distance, in voxels of the target grid (along each target axis),
between any voxel centre of a source grid and the target voxel centre it is
mapped to, for the two grids to count as the same grid up to axis order,
flips, integer steps and an integer offset ("exact": labels are copied, never
resampled).

Measured over the whole grid (the mapping is affine, so at its 8 corners): it
bounds the origin offset, a step that is not quite an integer and the drift of
an axis that is not quite parallel, *accumulated* along the axis, in one
number. Why voxels and not mm: the same test serves CT (0.5-5 mm voxels) and
slide coordinates (0.00025 mm pixels); a fixed mm value would be either
meaningless for slides or too strict for CT. Why 1e-2: float32 affines after
MONAI's ``Orientationd``/``Spacingd``/crops carry ~1e-7 relative error
(~1e-4 voxel at 300 mm from the origin), and producers that round
ImagePositionPatient to 4-6 decimals add ~1e-4 voxel; 1e-2 leaves two orders
of magnitude for both, while a 1/100 voxel shift changes no nearest-neighbour
label and under 1 % of any linear weight. Before this table the loader used
1e-2 (origin) / 1e-3 per voxel (axes) and the writer 1e-3 (origin) / 1e-2
(accumulated axes) under other names; both now use this one value."""

ZERO_LENGTH_MM: float = 1e-5
"""Distances (mm) below which a slice spacing or a direction vector counts as
zero, i.e. frames related by in-plane translations only."""

PIXEL_SPACING_MATCH_ATOL_MM: float = 1e-6
"""Absolute tolerance (mm) added to :data:`PIXEL_SPACING_MATCH_RTOL` when
checking that source frames share PixelSpacing (PS3.3 C.7.6.2.1)."""

IMAGE_ORIENTATION_INPUT_TOLERANCE: float = 10 * ORTHOGONALITY_TOLERANCE
"""Tolerance (unitless) on the lengths and the dot product of the two
ImageOrientationPatient cosine triplets a caller passes in: looser than
:data:`ORTHOGONALITY_TOLERANCE`, as values arrive rounded to a few decimals."""

PARALLEL_COSINES_TOLERANCE: float = 1e-6
"""Length (unitless) of ``cross(column_cosines, row_cosines)`` below which
the row and column directions are parallel and define no slice normal."""
