"""Plan how to bring one voxel grid onto another by permuting, flipping, padding and cropping.

No resampling: every voxel of the target grid must coincide (within a
tolerance) with a voxel of the source grid or fall outside it, where it is
filled by padding. That holds when each target axis is parallel to one
source axis, the target spacing is an integer multiple of the source
spacing along it, and the target origin sits on a source voxel centre.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from monai_dicomseg.errors import GeometryError
from monai_dicomseg.geometry.grid_mapping import GridMismatch, find_grid_mapping, index_mapping
from monai_dicomseg.geometry.tolerances import AFFINE_EQUALITY_TOLERANCE

__all__ = ["GeometryMatchPlan", "plan_geometry_match"]


@dataclass(frozen=True)
class GeometryMatchPlan:
    """Operations that map a source grid onto a target grid, applied in order.

    Attributes
    ----------
    permutation
        Source spatial axis used for each target axis (``numpy.transpose``
        order).
    pad_width
        ``(before, after)`` voxels added along each (permuted) axis.
    slices
        Index into the permuted, padded array: start, stop and a step whose
        sign flips the axis and whose size subsamples it.
    """

    permutation: tuple[int, int, int]
    pad_width: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    slices: tuple[slice, slice, slice]

    @property
    def needs_permute(self) -> bool:
        return self.permutation != (0, 1, 2)

    @property
    def needs_pad(self) -> bool:
        return any(b or a for b, a in self.pad_width)


def plan_geometry_match(
    source_affine: np.ndarray,
    source_shape: Sequence[int],
    target_affine: np.ndarray,
    target_shape: Sequence[int],
    tol: float = AFFINE_EQUALITY_TOLERANCE,
) -> GeometryMatchPlan:
    """Find the permute/pad/slice operations taking a source grid to a target grid.

    The target grid is re-indexed onto the source grid with
    :func:`~monai_dicomseg.geometry.grid_mapping.find_grid_mapping` (each
    target axis along one source axis, a whole number of source voxels per
    target voxel, target voxel centres on source voxel centres).

    Parameters
    ----------
    source_affine, target_affine
        ``(4, 4) float64`` volume affines in the same frame of reference.
    source_shape, target_shape
        Spatial shapes ``(F, R, C)``.
    tol
        Largest distance (source voxels) of any target voxel centre from a
        source voxel centre, and largest off-axis cosine of single-voxel axes
        (default ``AFFINE_EQUALITY_TOLERANCE``, highdicom's default).

    Raises
    ------
    GeometryError
        If an axis would need rotating, a spacing ratio is not an integer,
        or the grids are offset by a fraction of a voxel.
    """
    source = np.asarray(source_affine, dtype=np.float64)
    mapping = index_mapping(target_affine, source)
    found = find_grid_mapping(mapping, target_shape, source_shape, index_tol=tol, direction_tol=tol,
                              target_affine=source)
    if isinstance(found, GridMismatch):
        raise _mismatch_error(found, source, np.asarray(target_affine, dtype=np.float64), mapping)
    permutation = found.axes
    permuted_shape = [int(source_shape[a]) for a in permutation]
    pad_width: list[tuple[int, int]] = []
    slices: list[slice] = []
    for first, step, size, length in zip(found.starts, found.steps, target_shape, permuted_shape):
        last = first + (int(size) - 1) * step
        low, high = min(first, last), max(first, last)
        before, after = max(0, -low), max(0, high - (length - 1))
        start_index = int(first + before)
        stop_index = start_index + int(size) * step
        slices.append(slice(start_index, None if stop_index < 0 else stop_index, step))
        pad_width.append((int(before), int(after)))
    return GeometryMatchPlan(tuple(permutation), tuple(pad_width), tuple(slices))  # type: ignore[arg-type]  # tuple() of 3-item lists is typed tuple[T, ...]; one entry per spatial axis


def _mismatch_error(mismatch: GridMismatch, source: np.ndarray, target: np.ndarray,
                    mapping: np.ndarray) -> GeometryError:
    """``match_geometry``'s wording of why the target grid is not the source grid re-indexed."""
    def unit(affine: np.ndarray) -> np.ndarray:
        return affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)

    axis = mismatch.axis
    if mismatch.reason == "orientation":
        return GeometryError(
            f"cannot match geometry without resampling: target axis {axis} "
            f"(direction {np.round(unit(target)[:, axis], 6).tolist()}) is not parallel "
            f"to any axis of this volume (directions {np.round(unit(source).T, 6).tolist()})"
        )
    if mismatch.reason == "spacing":
        chosen = int(np.argmax(np.abs(mismatch.value)))
        return GeometryError(
            f"cannot match geometry without resampling: target spacing "
            f"{np.linalg.norm(target[:3, axis]):.6g} mm along axis {axis} is not an integer "
            f"multiple of this volume's spacing {np.linalg.norm(source[:3, chosen]):.6g} mm"
        )
    return GeometryError(
        "cannot match geometry without resampling: the target origin lies at "
        f"fractional voxel index {np.round(mapping[:3, 3], 6).tolist()} of this volume "
        "(it must be a whole voxel offset)"
    )
