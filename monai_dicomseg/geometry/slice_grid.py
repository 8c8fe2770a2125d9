"""The regular slice grid of a series from archives: sheared stacks, gaps and irregular spacing (numpy only).

A volume is a regular grid: frame ``k`` lies at ``origin + k * step``
(PS3.3 C.7.6.2.1.1). Real series depart from that in two ways, handled here:

Sheared stacks (gantry / detector tilt)
    The slice positions lie on a straight line that is *not* along the normal
    of the image planes (a CT acquired with a tilted gantry: each slice is
    offset in-plane by ``spacing * tan(tilt)``). The grid is still exact: its
    step vector is the actual step between slice positions, so the volume's
    affine has a slice column that is not perpendicular to the row and column
    directions (a sheared affine, which MONAI's ``MetaTensor`` and NIfTI
    allow). Nothing is resampled. ``tilt_degrees`` is the angle between the
    step and the normal; a stack whose last slice drifts in-plane by at most
    :data:`~monai_dicomseg.geometry.tolerances.SHEAR_DRIFT_TOLERANCE_MM` is
    not sheared.
Gaps and irregular spacing
    Missing slices (every gap a whole multiple of the spacing) or irregular
    spacing. The policy ``irregular_slices`` decides: ``"error"`` (default) a
    :class:`~monai_dicomseg.errors.GeometryError` naming the gap and the
    option; ``"fill"`` a grid at the common spacing on which every source
    slice lies exactly, the missing slices filled (listed in
    :attr:`SliceGrid.filled_slices`); ``"resample"`` a grid at the median
    spacing from the first to the last slice, each grid slice interpolated
    linearly between its two neighbouring source slices (exact where a source
    slice lies on the grid slice).

Slice ``k`` of the grid is ordered along ``cross(column_cosines, row_cosines)``
(our frame axis, as :class:`~monai_dicomseg.geometry.volume.Volume`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from monai_dicomseg.errors import GeometryError, InputError
from monai_dicomseg.geometry.affine import as_float_vector, slice_normal, stack_affine
from monai_dicomseg.geometry.tolerances import (
    POSITION_TOLERANCE_MM,
    SHEAR_DRIFT_TOLERANCE_MM,
    SPACING_RELATIVE_TOLERANCE,
)

__all__ = [
    "IRREGULAR_SLICES_OPTION",
    "IRREGULAR_SLICES_POLICIES",
    "GRID_KINDS",
    "SliceGrid",
    "plan_slice_grid",
    "check_irregular_slices",
    "fit_stack_step",
]

IRREGULAR_SLICES_OPTION = "irregular_slices"
"""Name of the loader option that chooses the policy for gaps / irregular spacing."""

IRREGULAR_SLICES_POLICIES = ("error", "fill", "resample")
"""Values of ``irregular_slices``: refuse (default), fill the missing slices, resample linearly."""

GRID_KINDS = ("source", "filled", "resampled")
""":attr:`SliceGrid.kind`: one grid slice per source slice; source slices plus filled ones; resampled."""

_AXIS_NAMES = ("x", "y", "z")


def check_irregular_slices(value: object, argument: str = IRREGULAR_SLICES_OPTION) -> str:
    """Return ``value`` if it is one of :data:`IRREGULAR_SLICES_POLICIES`, else raise InputError."""
    if not isinstance(value, str) or value not in IRREGULAR_SLICES_POLICIES:
        raise InputError(f"{argument} must be one of {IRREGULAR_SLICES_POLICIES}; got {value!r}")
    return value


@dataclass(frozen=True)
class SliceGrid:
    """A regular grid of slices and where its values come from.

    Attributes
    ----------
    origin
        ``(3,) float64`` position (mm) of grid slice 0 (``ImagePositionPatient``
        of the first source slice along the normal).
    step
        ``(3,) float64`` vector (mm) from one grid slice to the next: the
        slice normal times :attr:`spacing`, plus an in-plane part when sheared.
    number_of_slices
        Number of grid slices ``n``.
    number_of_sources
        Number of source slices ``N`` the grid was planned from.
    source_slices
        ``(n,) int64``: index (into the positions given to
        :func:`plan_slice_grid`) of the source slice lying on each grid slice,
        ``-1`` where none does.
    lower, weight
        ``(n,) int64`` and ``(n,) float64``: grid slice ``k`` is
        ``(1 - weight[k]) * source[lower[k]] + weight[k] * source[upper[k]]``
        with ``upper`` the next source slice along the normal (``"resampled"``
        grids); ``lower[k] == -1`` marks a filled slice (``"filled"``).
    upper
        ``(n,) int64``, see ``lower``.
    kind
        One of :data:`GRID_KINDS`.
    tilt_degrees
        Angle between :attr:`step` and the slice normal (0.0 when not sheared).
    spacing
        Distance between consecutive grid planes along the normal (mm).
    """

    origin: np.ndarray
    step: np.ndarray
    number_of_slices: int
    number_of_sources: int
    source_slices: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    weight: np.ndarray
    kind: str
    tilt_degrees: float
    spacing: float

    @property
    def sheared(self) -> bool:
        """Whether the step is off the slice normal (gantry/detector tilt)."""
        return self.tilt_degrees > 0.0

    @property
    def filled_slices(self) -> list[int]:
        """Grid slices (0-based, along the normal) on which no source slice lies."""
        return [int(k) for k in np.flatnonzero(self.source_slices < 0)]

    def affine(self, image_orientation: "Sequence[float] | np.ndarray",
               pixel_spacing: "Sequence[float] | np.ndarray") -> np.ndarray:
        """``(4, 4) float64`` LPS affine of the grid, ``(slice, row, column)`` order.

        Column 0 is :attr:`step` (sheared when :attr:`sheared`), columns 1 and
        2 as :func:`~monai_dicomseg.geometry.affine.affine_from_image_plane`.
        """
        cosines = as_float_vector(image_orientation, 6, "image_orientation")
        spacing = as_float_vector(pixel_spacing, 2, "pixel_spacing")
        direction = np.column_stack([self.step, cosines[3:] * spacing[0], cosines[:3] * spacing[1]])
        return stack_affine(direction, self.origin)

    def assemble(self, frames: np.ndarray, fill_value: float = 0.0) -> np.ndarray:
        """The grid's ``(n, R, C, ...)`` array from the source ``frames`` (``(N, R, C, ...)``, input order).

        Filled slices take ``fill_value``; resampled slices are interpolated
        linearly (float output); source slices are copied.
        """
        frames = np.asarray(frames)
        if self.kind == "source":
            return frames[self.source_slices]
        if self.kind == "filled":
            out = np.full((self.number_of_slices, *frames.shape[1:]), fill_value, dtype=frames.dtype)
            present = self.source_slices >= 0
            out[present] = frames[self.source_slices[present]]
            return out
        dtype = np.result_type(frames.dtype, np.float32)
        weight = self.weight.reshape(-1, *([1] * (frames.ndim - 1))).astype(dtype)
        low = frames[self.lower].astype(dtype)
        return low + weight * (frames[self.upper].astype(dtype) - low)

    def source_frames(self, array: np.ndarray) -> np.ndarray:
        """The frames of ``array`` (grid order, axis 0) that lie on a source slice, in grid order.

        Used by the writer: a SEG frame is written for source slices only, never for a filled one.

        Raises
        ------
        GeometryError
            For a resampled grid on which some source slice does not lie.
        """
        if self.kind == "source":
            return array
        present = self.source_slices >= 0
        if int(present.sum()) != self.number_of_sources:
            raise GeometryError(
                "some source slices do not lie on this resampled grid, so its values cannot be written "
                "back onto them exactly")
        return np.asarray(array)[present]


def _axis_label(normal: np.ndarray) -> tuple[int, str]:
    axis = int(np.argmax(np.abs(normal)))
    return axis, _AXIS_NAMES[axis]


def _describe_pair(points: np.ndarray, normal: np.ndarray, first: int, names: Sequence[str]) -> str:
    """``"slices 11 and 12 (z = 40.0 and 45.0 mm; InstanceNumber 12 and 13)"``."""
    axis, label = _axis_label(normal)
    text = (f"slices {first} and {first + 1} (sorted along the slice normal; {label} = "
            f"{points[first, axis]:.2f} and {points[first + 1, axis]:.2f} mm")
    if names:
        text += f"; {names[first]} and {names[first + 1]}"
    return text + ")"


_POLICY_HINT = (f"pass {IRREGULAR_SLICES_OPTION}='fill' (a regular grid, the missing slices filled with the "
                "padding value and listed in meta['filled_slices']) or "
                f"{IRREGULAR_SLICES_OPTION}='resample' (linear interpolation onto a regular grid at the median "
                "spacing)")


def _gap_error(points: np.ndarray, normal: np.ndarray, gaps: np.ndarray, base: float,
               multiples: np.ndarray, names: Sequence[str]) -> GeometryError:
    missing = int(np.round(multiples).sum() - len(gaps))
    worst = int(np.argmax(multiples))
    where = _describe_pair(points, normal, worst, names)
    _, label = _axis_label(normal)
    centre = float((points[worst] + points[worst + 1])[_AXIS_NAMES.index(label)] / 2.0)
    others = int(np.sum(np.round(multiples) > 1)) - 1
    return GeometryError(
        f"the series has a gap at {label} = {centre:.2f} mm between {where}: {gaps[worst]:.2f} mm "
        f"where the spacing is {base:.2f} mm elsewhere ({missing} slice(s) missing"
        + (f" in {others + 1} gaps" if others > 0 else "") + f"); {_POLICY_HINT}")


def _irregular_error(points: np.ndarray, normal: np.ndarray, gaps: np.ndarray,
                     names: Sequence[str], fill: bool) -> GeometryError:
    low, high = int(np.argmin(gaps)), int(np.argmax(gaps))
    what = (f"the slices are irregularly spaced: the spacing ranges from {gaps[low]:.3f} mm (between "
            f"{_describe_pair(points, normal, low, names)}) to {gaps[high]:.3f} mm (between "
            f"{_describe_pair(points, normal, high, names)}), median {float(np.median(gaps)):.3f} mm")
    if fill:
        return GeometryError(
            f"{what}; {IRREGULAR_SLICES_OPTION}='fill' needs every gap to be a whole number of slices: pass "
            f"{IRREGULAR_SLICES_OPTION}='resample' (linear interpolation onto a regular grid at the median spacing)")
    return GeometryError(f"{what}; {_POLICY_HINT}")


def _fit_in_plane(points: np.ndarray, distances: np.ndarray, normal: np.ndarray,
                  tolerance: float, names: Sequence[str]) -> np.ndarray:
    """In-plane drift per mm along the normal ``(3,)`` of sorted collinear positions (GeometryError if not).

    Positions ``p_i = origin + t_i * (normal + drift)`` with ``t_i`` the
    distance along the normal from the first slice.
    """
    t = distances - distances[0]
    in_plane = points - np.outer(points @ normal, normal)
    design = np.column_stack([np.ones_like(t), t])
    coefficients = np.linalg.lstsq(design, in_plane, rcond=None)[0]
    residual = np.linalg.norm(in_plane - design @ coefficients, axis=1)
    worst = int(np.argmax(residual))
    if residual[worst] > tolerance:
        name = f" ({names[worst]})" if names else ""
        raise GeometryError(
            f"plane positions are not a volume: slice {worst}{name} (sorted along the slice normal) is offset "
            f"in-plane by {residual[worst]:.3f} mm from the line through the other slice positions (not a "
            f"gantry/detector tilt, which offsets every slice by the same step; tolerance {tolerance:.3f} mm)")
    drift = coefficients[1] - (coefficients[1] @ normal) * normal
    if np.linalg.norm(drift) * t[-1] <= SHEAR_DRIFT_TOLERANCE_MM:
        return np.zeros(3)
    return drift


def _grid(origin: np.ndarray, step_direction: np.ndarray, spacing: float, count: int, sources: int,
          source_slices: np.ndarray, kind: str, lower: "np.ndarray | None" = None,
          upper: "np.ndarray | None" = None, weight: "np.ndarray | None" = None, tilt: float = 0.0) -> SliceGrid:
    lower = source_slices.copy() if lower is None else lower
    upper = source_slices.copy() if upper is None else upper
    weight = np.zeros(count) if weight is None else weight
    return SliceGrid(origin=origin, step=step_direction * spacing, number_of_slices=int(count),
                     number_of_sources=int(sources), source_slices=source_slices.astype(np.int64),
                     lower=lower.astype(np.int64), upper=upper.astype(np.int64), weight=weight.astype(np.float64),
                     kind=kind, tilt_degrees=float(tilt), spacing=float(spacing))


def _resampled(distances: np.ndarray, gaps: np.ndarray, tolerance: float) -> tuple:
    """Spacing, count, source/lower/upper/weight arrays of the median-spacing grid (sorted indices)."""
    extent = float(distances[-1] - distances[0])
    count = int(round(extent / float(np.median(gaps)))) + 1
    spacing = extent / (count - 1)
    targets = distances[0] + spacing * np.arange(count)
    lower = np.clip(np.searchsorted(distances, targets, side="right") - 1, 0, len(distances) - 2)
    upper = lower + 1
    weight = np.clip((targets - distances[lower]) / (distances[upper] - distances[lower]), 0.0, 1.0)
    source = np.full(count, -1, dtype=np.int64)
    at_lower = np.abs(targets - distances[lower]) <= tolerance
    at_upper = np.abs(distances[upper] - targets) <= tolerance
    source[at_upper] = upper[at_upper]
    source[at_lower] = lower[at_lower]
    weight[at_lower] = 0.0
    weight[at_upper & ~at_lower] = 1.0
    return spacing, count, source, lower, upper, weight


def _spacing_plan(distances: np.ndarray, policy: str, rtol: float, points: np.ndarray,
                  normal: np.ndarray, names: Sequence[str]) -> tuple:
    """``(kind, spacing, count, source, lower, upper, weight)`` in sorted indices."""
    gaps = np.diff(distances)
    count = len(distances)
    spacing = float((distances[-1] - distances[0]) / (count - 1))
    if np.all(np.abs(gaps - spacing) <= rtol * spacing):
        index = np.arange(count)
        return "source", spacing, count, index, None, None, None
    smallest = float(gaps.min())
    multiples = gaps / smallest
    whole = np.all(np.abs(multiples - np.round(multiples)) <= rtol * np.round(multiples))
    if policy == "error":
        raise (_gap_error(points, normal, gaps, smallest, multiples, names) if whole
               else _irregular_error(points, normal, gaps, names, fill=False))
    if policy == "fill":
        if not whole:
            raise _irregular_error(points, normal, gaps, names, fill=True)
        steps = np.concatenate([[0], np.cumsum(np.round(multiples).astype(np.int64))])
        base = float((distances[-1] - distances[0]) / steps[-1])
        source = np.full(int(steps[-1]) + 1, -1, dtype=np.int64)
        source[steps] = np.arange(count)
        lower = source.copy()
        return "filled", base, len(source), source, lower, lower.copy(), None
    spacing, n, source, lower, upper, weight = _resampled(distances, gaps, rtol * float(np.median(gaps)))
    return "resampled", spacing, n, source, lower, upper, weight


def plan_slice_grid(
    positions: "np.ndarray | Sequence[Sequence[float]]",
    image_orientation: "Sequence[float] | np.ndarray",
    *,
    irregular_slices: str = "error",
    spacing_hint: "float | None" = None,
    rtol: float = SPACING_RELATIVE_TOLERANCE,
    slice_names: "Sequence[str] | None" = None,
) -> SliceGrid:
    """The regular grid of a stack of parallel slices (sheared, with gaps or irregular spacing).

    Parameters
    ----------
    positions
        ``(N, 3)`` ``ImagePositionPatient`` of each slice (mm), any order.
    image_orientation
        Shared ``ImageOrientationPatient`` (6 floats; PS3.3 C.7.6.2.1.1).
    irregular_slices
        ``"error"`` (default), ``"fill"`` or ``"resample"``; see the module docstring.
    spacing_hint
        Spacing of a single-slice stack (``SpacingBetweenSlices``); 1.0 if None.
    rtol
        Allowed deviation of a gap from the regular spacing, and of a slice
        from the line through the others, as a fraction of the spacing.
    slice_names
        One name per position (e.g. ``"InstanceNumber 12"``), used in errors.

    Returns
    -------
    SliceGrid
        Indices in it refer to the input order of ``positions``.

    Raises
    ------
    GeometryError
        Duplicate positions, a slice off the line through the others, or
        (``"error"``) a gap / irregular spacing, naming where and the option;
        (``"fill"``) gaps that are not whole numbers of slices.
    InputError
        Bad ``positions`` shape or policy.
    """
    policy = check_irregular_slices(irregular_slices)
    points = np.asarray(positions, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or points.shape[0] == 0:
        raise InputError(f"positions must have shape (N, 3) with N >= 1; got {points.shape}")
    normal = slice_normal(image_orientation)
    names = list(slice_names) if slice_names is not None else []
    if points.shape[0] == 1:
        return _grid(points[0], normal, float(spacing_hint or 1.0), 1, 1, np.zeros(1, np.int64), "source")
    distances = points @ normal
    order = np.argsort(distances, kind="stable")
    points, distances = points[order], distances[order]
    names = [names[i] for i in order] if names else []
    _check_distinct(distances, order)
    gaps = np.diff(distances)
    drift = _fit_in_plane(points, distances, normal, POSITION_TOLERANCE_MM + rtol * float(np.median(gaps)), names)
    kind, spacing, count, source, lower, upper, weight = _spacing_plan(distances, policy, rtol, points, normal, names)
    tilt = float(np.degrees(np.arctan(np.linalg.norm(drift))))
    return _grid(points[0], normal + drift, spacing, count, len(points), _to_input(source, order), kind,
                 None if lower is None else _to_input(lower, order),
                 None if upper is None else _to_input(upper, order), weight, tilt)


def _to_input(sorted_index: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Map indices into the sorted positions back to input indices (``-1`` kept)."""
    out = np.full(len(sorted_index), -1, dtype=np.int64)
    valid = sorted_index >= 0
    out[valid] = order[sorted_index[valid]]
    return out


def _check_distinct(distances: np.ndarray, order: np.ndarray) -> None:
    duplicate = np.flatnonzero(np.diff(distances) < POSITION_TOLERANCE_MM)
    if duplicate.size:
        first = int(duplicate[0])
        raise GeometryError(
            f"plane positions are not a volume: slices {int(order[first])} and {int(order[first + 1])} lie at the "
            f"same distance along the slice normal ({distances[first]:.4f} mm); {duplicate.size} duplicate(s) in "
            "total (several stacks, phases or echoes in one series?)")


def fit_stack_step(
    positions: "np.ndarray | Sequence[Sequence[float]]",
    slice_indices: "np.ndarray | Sequence[int]",
    image_orientation: "Sequence[float] | np.ndarray",
    spacing: float,
    *,
    rtol: float = SPACING_RELATIVE_TOLERANCE,
) -> np.ndarray:
    """Step vector between consecutive slices of frames at known slice indices, sheared or not.

    For frames whose positions were placed on slice indices along the normal
    (a SEG's frames: :func:`~monai_dicomseg.seg.stacking.volume_positions`),
    fit ``position = origin + index * step``. The step is the normal times
    ``spacing`` unless the last slice drifts in-plane by more than
    :data:`~monai_dicomseg.geometry.tolerances.SHEAR_DRIFT_TOLERANCE_MM`
    (a gantry/detector tilt), in which case it follows the positions.

    Parameters
    ----------
    positions
        ``(m, 3)`` ``ImagePositionPatient`` of the frames (repeats allowed).
    slice_indices
        ``(m,)`` slice index of each frame.
    image_orientation
        Shared ``ImageOrientationPatient``.
    spacing
        Distance between slices along the normal (mm).
    rtol
        Allowed distance of a frame from the fitted line, as a fraction of ``spacing``.

    Returns
    -------
    numpy.ndarray
        ``(3,) float64`` step (mm).

    Raises
    ------
    GeometryError
        A frame lies off the line through the others by more than the tolerance.
    """
    points = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    index = np.asarray(slice_indices, dtype=np.float64).reshape(-1)
    normal = slice_normal(image_orientation)
    if points.shape[0] != index.shape[0]:
        raise InputError(f"positions and slice_indices differ in length: {points.shape[0]} and {index.shape[0]}")
    if np.unique(index).size < 2:
        return normal * float(spacing)
    in_plane = points - np.outer(points @ normal, normal)
    design = np.column_stack([np.ones_like(index), index])
    coefficients = np.linalg.lstsq(design, in_plane, rcond=None)[0]
    residual = np.linalg.norm(in_plane - design @ coefficients, axis=1)
    tolerance = POSITION_TOLERANCE_MM + rtol * float(spacing)
    if residual.max() > tolerance:
        raise GeometryError(
            f"frame positions are not a volume: a frame is offset in-plane by {residual.max():.3f} mm from the "
            f"line through the others (not a gantry/detector tilt; tolerance {tolerance:.3f} mm)")
    drift = coefficients[1] - (coefficients[1] @ normal) * normal
    if np.linalg.norm(drift) * (index.max() - index.min()) <= SHEAR_DRIFT_TOLERANCE_MM:
        drift = np.zeros(3)
    return normal * float(spacing) + drift
