"""Whether a model output grid corresponds to the source series it is written onto (numpy only).

The one rule every writer applies before resampling a model output onto a
source series (``DicomSegWriter``, ``SaveDicomSeg(d)``, ``monai-dicomseg
from-nifti``/``batch from-nifti``/``push``). The *world box* of a grid is the
region its voxels cover (voxel centres +- half a voxel).

1. **Same subject.** When both sides know their Frame of Reference UID (or
   both know the PatientID) and the values differ, the output is refused
   (:class:`~monai_dicomseg.errors.GeometryError`). Patient coordinates of two
   Frames of Reference are unrelated (PS3.3 C.7.4.1.1.1), so no resampling can
   place the output correctly; ``allow_grid_mismatch`` does not override it
   (fix or drop the wrong metadata, or name the right source series).
2. **Most of the output lands on the series.** At least
   :data:`MIN_INSIDE_FRACTION` (half) of the model grid's box must lie inside
   the series' box, or else the model box must cover (at least
   :data:`PADDED_MIN_COVERED_FRACTION` of) the whole series' box and be at
   most 8 times its size (:data:`PADDED_MIN_INSIDE_FRACTION`: a padded grid, on
   average at most twice as long along each axis). Otherwise the output is
   refused unless ``allow_grid_mismatch=True`` (CLI ``--allow-grid-mismatch``).
   No overlap at all is always refused (nothing would be written).

Why this rule: a label map made for another series (another field of view,
another patient's scan) usually still overlaps the series somewhere in
patient coordinates, and the resampler then writes the overlapping part
without a word; the issue's example, a 256 x 256 x 100 grid at 0.8 mm written
onto a 64 x 64 x 16 series, has 3 % of its box on the series. The outputs of
the usual pipelines keep most of their box on the series: ``Orientationd``
(the same box), ``Spacingd`` (the same extent at another spacing, e.g.
1.5 mm), crops (a box inside the series' box: fraction 1). A grid a few voxels
larger (``SpatialPadd``/``DivisiblePadd`` without ``Invertd``, a coarse grid
with a margin) covers the whole series; on a thin series (a few slices) a
margin of one or two slices already puts more than half of its box outside,
hence the padded-grid allowance, bounded so that a grid many times the
series' size (the example above) is still refused. The fraction is of the
*model* box, not of the source box, so that small crops of a large series
stay silent. This geometric check cannot tell two scans with a similar
field of view apart; the identity check (rule 1) is what catches those when
the metadata carries the UIDs.

Fractions are exact when the grid axes are parallel to the source axes (any
spacing, flips, permutations: the intersection is a box) and estimated from a
regular sample of points otherwise (rotated grids; within about
``1 / samples`` per axis).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from monai_dicomseg.errors import GeometryError
from monai_dicomseg.geometry.affine import RAS, check_space, ras_to_lps_affine

__all__ = ["MIN_INSIDE_FRACTION", "PADDED_MIN_INSIDE_FRACTION", "PADDED_MIN_COVERED_FRACTION",
           "GRID_MISMATCH_OPTION", "GridCorrespondence", "world_box", "inside_fraction", "grid_correspondence",
           "check_grid_correspondence", "check_same_subject"]

MIN_INSIDE_FRACTION = 0.5
"""Least fraction of the model grid's world box that must lie inside the source series' box."""

PADDED_MIN_INSIDE_FRACTION = 1.0 / 8.0
"""Least inside fraction of a model grid that covers the whole series (a padded grid: at most 8x its box)."""

PADDED_MIN_COVERED_FRACTION = 0.9
"""Fraction of the series' box a model box must cover to count as a padded grid of the series."""

GRID_MISMATCH_OPTION = "allow_grid_mismatch=True (command line: --allow-grid-mismatch)"
"""How a refused output is written anyway, as named in the messages."""

_SAMPLES = 32
_ALIGNED_TOLERANCE = 1e-6


@dataclass(frozen=True)
class GridCorrespondence:
    """How a model grid sits on a source grid (all boxes in LPS mm).

    Attributes
    ----------
    inside_fraction
        Fraction of the model grid's world box inside the source series' box, in [0, 1].
    covered_fraction
        Fraction of the source series' box inside the model grid's box (covered by the output), in [0, 1].
    model_box, source_box
        ``(low, high)``: ``(3,) float64`` each, the axis-aligned LPS bounds of each world box.
    model_shape, source_shape
        Spatial shapes (model: its own index order; source: ``(F, R, C)``).
    model_spacing, source_spacing
        Voxel size along each index axis, mm.
    """

    inside_fraction: float
    covered_fraction: float
    model_box: tuple[np.ndarray, np.ndarray]
    source_box: tuple[np.ndarray, np.ndarray]
    model_shape: tuple[int, ...]
    source_shape: tuple[int, ...]
    model_spacing: tuple[float, ...]
    source_spacing: tuple[float, ...]

    @property
    def corresponds(self) -> bool:
        """Whether rule 2 of the module accepts the grid (mostly inside, or a padded grid of the series)."""
        if self.inside_fraction >= MIN_INSIDE_FRACTION:
            return True
        return (self.covered_fraction >= PADDED_MIN_COVERED_FRACTION
                and self.inside_fraction >= PADDED_MIN_INSIDE_FRACTION)

    def describe(self) -> str:
        """Both boxes, shapes and spacings, for messages."""
        def box(bounds: tuple[np.ndarray, np.ndarray]) -> str:
            return " x ".join(f"{lo:.1f}..{hi:.1f}" for lo, hi in zip(*bounds))

        def numbers(values: Sequence[float]) -> str:
            return " x ".join(f"{v:.3g}" for v in values)

        return (f"model grid {list(self.model_shape)} at {numbers(self.model_spacing)} mm covering LPS "
                f"{box(self.model_box)} mm; source series {list(self.source_shape)} (frames, rows, columns) at "
                f"{numbers(self.source_spacing)} mm covering LPS {box(self.source_box)} mm")


def _corners(shape: Sequence[int]) -> np.ndarray:
    """``(8, 4)`` homogeneous index corners of a grid's voxel extent (centres +- 0.5)."""
    bounds = [(-0.5, n - 0.5) for n in shape]
    return np.array([[i, j, k, 1.0] for i in bounds[0] for j in bounds[1] for k in bounds[2]])


def world_box(affine: np.ndarray, shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` ``(3,) float64``: axis-aligned world bounds of the voxel extent of a grid.

    Parameters
    ----------
    affine
        ``(4, 4)`` index -> world mm.
    shape
        Spatial shape (3 sizes).
    """
    world = _corners(shape) @ np.asarray(affine, dtype=np.float64).T
    return world[:, :3].min(axis=0), world[:, :3].max(axis=0)


def _aligned_fraction(to_source: np.ndarray, model_shape: Sequence[int],
                      source_shape: Sequence[int]) -> "float | None":
    """Exact inside fraction when each model axis runs along one source axis, else None."""
    linear = to_source[:3, :3]
    scale = np.abs(linear).max()
    significant = np.abs(linear) > _ALIGNED_TOLERANCE * scale
    if not (np.all(significant.sum(axis=0) == 1) and np.all(significant.sum(axis=1) == 1)):
        return None
    fraction = 1.0
    for axis in range(3):
        target = int(np.argmax(significant[:, axis]))
        ends = linear[target, axis] * np.array([-0.5, model_shape[axis] - 0.5]) + to_source[target, 3]
        low, high = ends.min(), ends.max()
        overlap = min(high, source_shape[target] - 0.5) - max(low, -0.5)
        fraction *= max(0.0, overlap) / (high - low)
    return float(fraction)


def inside_fraction(model_affine: np.ndarray, model_shape: Sequence[int], source_affine: np.ndarray,
                    source_shape: Sequence[int], samples: int = _SAMPLES) -> float:
    """Fraction of the model grid's world box that lies inside the source grid's world box.

    Parameters
    ----------
    model_affine, source_affine
        ``(4, 4)`` index -> world mm, in the same space (both LPS).
    model_shape, source_shape
        Spatial shapes.
    samples
        Points per axis of the regular sample used for rotated grids.

    Raises
    ------
    GeometryError
        A singular affine.
    """
    try:
        to_source = np.linalg.solve(np.asarray(source_affine, dtype=np.float64),
                                    np.asarray(model_affine, dtype=np.float64))
    except np.linalg.LinAlgError:
        raise GeometryError("cannot compare grids: an affine is singular") from None
    exact = _aligned_fraction(to_source, model_shape, source_shape)
    if exact is not None:
        return exact
    steps = [(np.arange(samples) + 0.5) / samples * n - 0.5 for n in model_shape]
    points = np.stack(np.meshgrid(*steps, indexing="ij"), axis=-1).reshape(-1, 3)
    mapped = points @ to_source[:3, :3].T + to_source[:3, 3]
    inside = np.all((mapped >= -0.5) & (mapped <= np.asarray(source_shape, dtype=np.float64) - 0.5), axis=1)
    return float(inside.mean())


def _lps(affine: np.ndarray, space: str) -> np.ndarray:
    affine = np.asarray(affine, dtype=np.float64)
    return ras_to_lps_affine(affine) if check_space(space) == RAS else affine


def grid_correspondence(model_affine: np.ndarray, model_shape: Sequence[int], source_affine: np.ndarray,
                        source_shape: Sequence[int], space: str = "RAS") -> GridCorrespondence:
    """Measure how the model grid sits on the source grid (see module docstring).

    Parameters
    ----------
    model_affine
        ``(4, 4)`` model index -> mm in ``space`` (MONAI: RAS).
    model_shape
        Spatial shape of the model output.
    source_affine
        ``(4, 4)`` source ``(F, R, C)`` index -> LPS mm (PS3.3 C.7.6.2.1.1).
    source_shape
        ``(F, R, C)``.
    space
        ``"RAS"`` or ``"LPS"``: the space of ``model_affine``.
    """
    model = _lps(model_affine, space)
    source = np.asarray(source_affine, dtype=np.float64)
    model_shape = tuple(int(n) for n in model_shape)
    source_shape = tuple(int(n) for n in source_shape)
    return GridCorrespondence(
        inside_fraction=inside_fraction(model, model_shape, source, source_shape),
        covered_fraction=inside_fraction(source, source_shape, model, model_shape),
        model_box=world_box(model, model_shape), source_box=world_box(source, source_shape),
        model_shape=model_shape, source_shape=source_shape,
        model_spacing=tuple(float(v) for v in np.linalg.norm(model[:3, :3], axis=0)),
        source_spacing=tuple(float(v) for v in np.linalg.norm(source[:3, :3], axis=0)))


def check_grid_correspondence(model_affine: np.ndarray, model_shape: Sequence[int], source_affine: np.ndarray,
                              source_shape: Sequence[int], *, space: str = "RAS",
                              allow_grid_mismatch: bool = False) -> GridCorrespondence:
    """Refuse a model grid whose world box lies mostly outside the source series (rule 2 of the module).

    Refused when ``inside_fraction < MIN_INSIDE_FRACTION`` unless the grid
    covers the series (``covered_fraction >= PADDED_MIN_COVERED_FRACTION``)
    and ``inside_fraction >= PADDED_MIN_INSIDE_FRACTION``.

    Parameters are those of :func:`grid_correspondence`; ``allow_grid_mismatch``
    skips the refusal (the measurement is still returned).

    Raises
    ------
    GeometryError
        Less than :data:`MIN_INSIDE_FRACTION` of the model grid's box inside
        the source box; the message gives the fraction, both boxes, shapes and
        spacings and the option that writes anyway. No overlap at all is
        refused whatever ``allow_grid_mismatch`` says (nothing would be written).
    """
    found = grid_correspondence(model_affine, model_shape, source_affine, source_shape, space)
    if found.inside_fraction == 0.0:
        raise GeometryError(
            f"the model grid does not overlap the source series: none of its world box lies inside the "
            f"series' box; {found.describe()} (wrong affine, or a series of another Frame of Reference?)")
    if not found.corresponds and not allow_grid_mismatch:
        raise GeometryError(
            f"the model grid does not correspond to the source series: only {found.inside_fraction:.1%} of its "
            f"world box lies inside the series' box and it covers {found.covered_fraction:.1%} of the series "
            f"(expected at least {MIN_INSIDE_FRACTION:.0%} inside, or a grid covering the series that is at most "
            f"{1 / PADDED_MIN_INSIDE_FRACTION:.0f} times its size), so most of the output would fall outside the "
            f"series; {found.describe()}. Was the output made for another series? To resample it onto this "
            f"series anyway (the part outside is dropped), pass {GRID_MISMATCH_OPTION}")
    return found


def check_same_subject(*, model_frame_of_reference: "str | None" = None,
                       source_frame_of_reference: "str | None" = None, model_patient_id: "str | None" = None,
                       source_patient_id: "str | None" = None, what: str = "output") -> None:
    """Refuse an output whose metadata names another Frame of Reference or patient (rule 1 of the module).

    A value that is None or empty on either side is unknown and not compared.

    Raises
    ------
    GeometryError
        Both FrameOfReferenceUIDs (PS3.3 C.7.4.1) known and different, or both
        PatientIDs (PS3.3 C.7.1.1) known and different.
    """
    for attribute, mine, theirs in (("FrameOfReferenceUID", model_frame_of_reference, source_frame_of_reference),
                                    ("PatientID", model_patient_id, source_patient_id)):
        mine, theirs = (str(v).strip() if v is not None else "" for v in (mine, theirs))
        if mine and theirs and mine != theirs:
            raise GeometryError(
                f"the {what} belongs to another {'Frame of Reference' if attribute[0] == 'F' else 'patient'}: "
                f"{attribute} {mine!r} in its metadata, the source series has {theirs!r}. Its coordinates "
                f"cannot be placed on this series (allow_grid_mismatch does not override this); name the "
                f"series the output was made from, or remove the wrong {attribute} from the metadata")
