"""Where the planes of a segmentation sit, and which source frames they derive from.

Three cases (guide, "Per-Frame Derivation Image Sequences"; PS3.3 C.7.6.1.1.3
Spatial Locations Preserved):

* orientation, pixel spacing, frame size and position all match a source
  frame → the frame references it with Spatial Locations Preserved YES (and
  takes the source's position values verbatim);
* every plane lies in a source plane but in-plane geometry differs
  (in-plane rotation, flip, scaling) → references with NO;
* otherwise → an empty Derivation Image Sequence.

The tolerances are those of :mod:`monai_dicomseg.geometry.tolerances`, so the
decisions are the ones highdicom makes on the same inputs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monai_dicomseg.errors import GeometryError, InputError
from monai_dicomseg.geometry.affine import regular_slice_spacing, slice_normal
from monai_dicomseg.geometry.tolerances import (
    ORIENTATION_MATCH_TOLERANCE,
    PERPENDICULAR_TOLERANCE,
    PIXEL_SPACING_MATCH_RTOL,
    POSITION_TOLERANCE_MM,
)
from monai_dicomseg.seg.sources import SourceFrames
from monai_dicomseg.seg.tiling import SlideGeometry, slide_offsets, tile_grid

__all__ = ["PlanePlacement", "aligned_placement", "explicit_placement", "tiled_placement"]

@dataclass(frozen=True)
class PlanePlacement:
    """Plane geometry of the segmentation and its derivation references.

    Attributes
    ----------
    positions
        ``(P, 3) float64`` ImagePositionPatient of each plane, or ``None``.
    position_values
        Per plane, the three values to write (source DS strings or floats).
    orientation
        Six ImageOrientationPatient values, or ``None``.
    pixel_spacing, slice_thickness, spacing_between_slices
        Pixel Measures values (strings or floats), each possibly ``None``.
    derivations
        Per plane, the indices of the source frames it derives from (may be
        empty lists), or ``None`` for no references at all.
    spatial_locations_preserved
        ``"YES"`` or ``"NO"`` for the references.
    aligned
        True when ``pixel_array[i]`` is by definition source frame ``i``
        (no geometry given), so frame counts and sizes must agree.
    tile_positions
        ``(P, 2)`` 1-based (row, column) tile positions for tiled (SLIDE)
        segmentations; then ``positions`` are slide coordinates.
    slide
        The slide geometry of a tiled segmentation.
    total_pixel_matrix
        ``(rows, columns)`` of the segmentation's total pixel matrix.
    """

    positions: np.ndarray | None
    position_values: list | None
    orientation: tuple | None
    pixel_spacing: tuple | None
    slice_thickness: object
    spacing_between_slices: object
    derivations: list[list[int]] | None
    spatial_locations_preserved: str
    aligned: bool = False
    tile_positions: np.ndarray | None = None
    slide: SlideGeometry | None = None
    total_pixel_matrix: tuple[int, int] | None = None


def regular_spacing(positions: np.ndarray | None, orientation: object) -> float | None:
    """Spacing between slices when the planes form a regular stack, else ``None``.

    Recorded as Spacing Between Slices (PS3.3 C.7.6.16.2.1) as highdicom does;
    a single plane or irregular planes record none.
    """
    if positions is None or orientation is None or len(positions) < 2:
        return None
    try:
        return float(regular_slice_spacing(positions, np.asarray(orientation, dtype=np.float64)))
    except GeometryError:
        return None


def aligned_placement(sources: SourceFrames) -> PlanePlacement:
    """PlanePlacement for ``pixel_array[i]`` ↔ source frame ``i`` (geometry copied from the sources)."""
    spacing = None if sources.slide is not None else regular_spacing(sources.positions, sources.orientation)
    return PlanePlacement(
        positions=sources.positions,
        position_values=sources.position_strings,
        orientation=sources.orientation,
        pixel_spacing=sources.pixel_spacing,
        slice_thickness=sources.slice_thickness,
        spacing_between_slices=spacing if spacing is not None else sources.spacing_between_slices,
        derivations=[[index] for index in range(sources.number_of_frames)],
        spatial_locations_preserved="YES",
        aligned=True,
        tile_positions=sources.tile_positions,
        slide=sources.slide,
        total_pixel_matrix=None if sources.slide is None else (
            sources.slide.total_rows, sources.slide.total_columns),
    )


def tiled_placement(
    sources: SourceFrames,
    matrix_shape: tuple[int, int],
    tile_size: tuple[int, int],
    pixel_spacing: tuple[float, float] | None,
    slice_thickness: object,
) -> tuple[PlanePlacement, np.ndarray]:
    """PlanePlacement of the tiles cut from a total pixel matrix (guide, "Constructing SEG
    Images from a Total Pixel Matrix").

    Parameters
    ----------
    sources
        A tiled source (``sources.slide`` set).
    matrix_shape
        ``(R, C)`` of the segmentation's total pixel matrix.
    tile_size
        ``(rows, columns)`` of each tile.
    pixel_spacing
        Spacing of the segmentation matrix; default: the source's, scaled by
        the ratio of the matrix sizes (a downsampled level covers the same area).
    slice_thickness
        SliceThickness to record (default: the source's).

    Returns
    -------
    placement, tile_positions
        The placement, and ``(n, 2)`` 1-based tile positions in cutting order.
    """
    slide = sources.slide
    if slide is None:
        raise InputError("tiled_placement needs a tiled (TILED_FULL/SPARSE) source: sources.slide is None")
    rows, columns = matrix_shape
    same_grid = (rows, columns) == (slide.total_rows, slide.total_columns)
    if pixel_spacing is None:
        pixel_spacing = (slide.pixel_spacing[0] * slide.total_rows / rows,
                         slide.pixel_spacing[1] * slide.total_columns / columns)
        spacing_values: tuple = sources.pixel_spacing if same_grid else pixel_spacing  # type: ignore[assignment]  # tiled sources carry PixelSpacing (slide.pixel_spacing is read above), so sources.pixel_spacing is set
    else:
        spacing_values = tuple(pixel_spacing)
    tiles = tile_grid(rows, columns, *tile_size)
    positions = slide_offsets(slide, tiles, pixel_spacing)
    derivations = None
    if same_grid and tuple(tile_size) == (slide.tile_rows, slide.tile_columns) and np.allclose(
            pixel_spacing, slide.pixel_spacing, rtol=PIXEL_SPACING_MATCH_RTOL):
        by_position: dict[tuple[int, int], list[int]] = {}
        for index, (row, column) in enumerate(np.asarray(sources.tile_positions).tolist()):
            by_position.setdefault((row, column), []).append(index)
        derivations = [by_position.get((int(r), int(c)), []) for r, c in tiles.tolist()]
    placement = PlanePlacement(
        positions=positions,
        position_values=list(map(tuple, positions.tolist())),
        orientation=sources.orientation,
        pixel_spacing=spacing_values,
        slice_thickness=sources.slice_thickness if slice_thickness is None else slice_thickness,
        spacing_between_slices=None,
        derivations=derivations,
        spatial_locations_preserved="YES",
        tile_positions=tiles,
        slide=slide,
        total_pixel_matrix=(rows, columns),
    )
    return placement, tiles


def _match_all(distances: np.ndarray) -> list[list[int]] | None:
    """Per row, the columns at the minimal distance — if every row has one within tolerance."""
    minima = distances.min(axis=1)
    if not np.all(minima < POSITION_TOLERANCE_MM):
        return None
    return [np.flatnonzero(row == minimum).tolist() for row, minimum in zip(distances, minima)]


def explicit_placement(
    sources: SourceFrames,
    positions: np.ndarray,
    orientation: tuple,
    pixel_spacing: tuple,
    slice_thickness: object,
    spacing_between_slices: object,
    frame_shape: tuple[int, int],
    positions_given: bool = True,
) -> PlanePlacement:
    """PlanePlacement for planes given explicitly (plane positions or a Volume).

    Parameters
    ----------
    sources
        The source frames.
    positions
        ``(P, 3)`` ImagePositionPatient of each plane of ``pixel_array``.
    orientation
        ImageOrientationPatient of the planes (6 values).
    pixel_spacing, slice_thickness, spacing_between_slices
        Pixel Measures of the planes.
    frame_shape
        ``(R, C)`` of ``pixel_array``'s frames.
    positions_given
        False when the positions were copied from the sources (only the
        orientation or pixel measures were given): then frames are referenced
        only when everything matches, as highdicom does.
    """
    positions = np.asarray(positions, dtype=np.float64)
    values = list(map(tuple, positions.tolist()))
    if spacing_between_slices is None:
        spacing_between_slices = regular_spacing(positions, orientation)
    cosines = np.asarray(orientation, dtype=np.float64)
    derivations = None
    preserved = "NO"
    if sources.positions is None or sources.orientation is None:
        return PlanePlacement(positions, values, tuple(orientation), tuple(pixel_spacing),
                         slice_thickness, spacing_between_slices, None, preserved)
    source_cosines = np.asarray(sources.orientation, dtype=np.float64)
    orientation_equal = bool(np.allclose(cosines, source_cosines, atol=ORIENTATION_MATCH_TOLERANCE))
    if orientation_equal:
        orientation = sources.orientation  # the source's values, free of rounding noise
    normal = slice_normal(source_cosines)
    coplanar = orientation_equal or abs(abs(float(slice_normal(cosines) @ normal)) - 1.0) < PERPENDICULAR_TOLERANCE
    spacing_equal = sources.pixel_spacing is not None and bool(np.allclose(
        np.asarray(pixel_spacing, float), np.asarray(sources.pixel_spacing, float), rtol=PIXEL_SPACING_MATCH_RTOL))
    if spacing_equal:
        pixel_spacing = sources.pixel_spacing  # type: ignore[assignment]  # spacing_equal implies sources.pixel_spacing is not None
    if coplanar:
        offsets = positions[:, np.newaxis, :] - sources.positions[np.newaxis]
        if orientation_equal and spacing_equal and frame_shape == (sources.rows, sources.columns):
            derivations = _match_all(np.linalg.norm(offsets, axis=-1))
            if derivations is not None:
                preserved = "YES"
                # Reuse the source's stored position strings for exact agreement.
                values = [sources.position_strings[matches[0]] for matches in derivations]  # type: ignore[index]  # orientation/spacing/shape equal implies position strings were read from the sources
                positions = sources.positions[[matches[0] for matches in derivations]]
        if derivations is None and positions_given:
            derivations = _match_all(np.abs(offsets @ normal))
    return PlanePlacement(positions, values, tuple(orientation), tuple(pixel_spacing),
                     slice_thickness, spacing_between_slices, derivations, preserved)
