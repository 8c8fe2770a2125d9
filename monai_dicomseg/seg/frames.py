"""Which frames a segmentation stores, in which order, with which index values.

Frame organisation follows PS3.3 C.7.6.17 (Multi-frame Dimension Module):
BINARY/FRACTIONAL frames are ordered segment by segment, LABELMAP frames hold
all segments; within a segment, planes are ordered along the slice normal
``n = column_cosines × row_cosines`` (the (frame, row, column) volume
convention, so an axial series runs head → feet as in highdicom), and the
Dimension Index Values are (segment number, plane rank) — or only the plane
rank for LABELMAP.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monai_dicomseg.enums import DimensionOrganizationTypeValues
from monai_dicomseg.errors import GeometryError
from monai_dicomseg.geometry.affine import slice_normal
from monai_dicomseg.seg.placement import regular_spacing

__all__ = ["FramePlan", "plan_frames", "plane_order", "fractional_presence"]

# Two planes closer than this along the normal (mm) are the same plane.
_SAME_PLANE_TOLERANCE_MM = 1e-3


@dataclass(frozen=True)
class FramePlan:
    """The stored frames, in storage order.

    Attributes
    ----------
    planes
        ``(N,) int64`` index of the input plane (axis 0 of ``pixel_array``)
        of each stored frame.
    segment_numbers
        ``(N,) int64`` segment number of each frame (0 for LABELMAP frames).
    position_indices
        ``(N, k) int64`` position part of the Dimension Index Values: the
        1-based rank of each frame's plane along the normal (k = 1), or the
        ranks of its tile's row and column positions among the stored tiles
        (k = 2); ``None`` without plane positions.
    dimension_organization_type
        ``3D`` when the stored planes are regularly spaced and each holds one
        channel, ``TILED_SPARSE`` for tiles, else ``None``.
    """

    planes: np.ndarray
    segment_numbers: np.ndarray
    position_indices: np.ndarray | None
    dimension_organization_type: DimensionOrganizationTypeValues | None

    @property
    def number_of_frames(self) -> int:
        """int: number of stored frames."""
        return int(self.planes.size)


def plane_order(positions: np.ndarray | None, orientation: np.ndarray | None,
                number_of_planes: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Sort planes along the slice normal.

    Parameters
    ----------
    positions
        ``(P, 3)`` ImagePositionPatient per plane, or ``None``.
    orientation
        ImageOrientationPatient (6 floats), or ``None``.
    number_of_planes
        P.

    Returns
    -------
    order
        ``(P,) int64`` plane indices in storage order.
    ranks
        ``(P,) int64`` 1-based rank of each plane (by plane index), or ``None``.
    distances
        ``(P,) float64`` signed distance of each plane along the normal, or ``None``.

    Raises
    ------
    GeometryError
        If two planes share a position (the frames could not be told apart).
    """
    if positions is None or orientation is None:
        return np.arange(number_of_planes), None, None
    distances = positions @ slice_normal(orientation)
    order = np.argsort(distances, kind="stable")
    gaps = np.diff(distances[order])
    if gaps.size and gaps.min() < _SAME_PLANE_TOLERANCE_MM:
        duplicate = int(np.argmin(gaps))
        first, second = sorted((int(order[duplicate]), int(order[duplicate + 1])))
        raise GeometryError(
            f"source frames {first} and {second} (0-based) lie in the same plane "
            f"(ImagePositionPatient {positions[first].tolist()} and {positions[second].tolist()}); "
            "expected distinct plane positions"
        )
    ranks = np.empty(number_of_planes, dtype=np.int64)
    ranks[order] = np.arange(1, number_of_planes + 1)
    return order, ranks, distances


def fractional_presence(stacked: np.ndarray, max_fractional_value: int) -> np.ndarray:
    """Which segments are non-empty in which plane *after quantisation* (FRACTIONAL).

    A stored FRACTIONAL value is ``round(x * MaximumFractionalValue)``
    (PS3.3 C.8.20.2.3); a frame whose values all round to 0 stores nothing,
    so ``omit_empty_frames`` leaves it out (as highdicom does) even though
    some of its fractions are > 0.

    Parameters
    ----------
    stacked
        ``(F, R, C, S)`` fractions in [0, 1] (float), or binary masks.
    max_fractional_value
        MaximumFractionalValue (1..255).

    Returns
    -------
    numpy.ndarray
        ``(F, S)`` bool.
    """
    frames, segments = stacked.shape[0], stacked.shape[-1]
    if stacked.dtype.kind != "f":
        return np.asarray(stacked).reshape(frames, -1, segments).any(axis=1)  # type: ignore[return-value]  # numpy stubs: ndarray.any(axis=...) is typed bool | ndarray; with an axis it is an ndarray
    scale = stacked.dtype.type(max_fractional_value)
    presence = np.zeros((frames, segments), dtype=bool)
    for plane in range(frames):  # one plane at a time: no full-size temporary
        presence[plane] = (np.rint(stacked[plane] * scale) != 0).any(axis=(0, 1))
    return presence


def _dense_ranks(values: np.ndarray) -> np.ndarray:
    """1-based rank of each value among the distinct values."""
    return np.unique(values, return_inverse=True)[1].reshape(-1) + 1


def plan_frames(
    presence: np.ndarray,
    positions: np.ndarray | None,
    orientation: np.ndarray | None,
    labelmap: bool,
    omit_empty_frames: bool,
    tile_positions: np.ndarray | None = None,
) -> FramePlan:
    """Decide the stored frames.

    Parameters
    ----------
    presence
        ``(P, S)`` bool: segment ``s`` is non-empty in plane ``p``; for
        LABELMAP a ``(P, 1)`` array saying whether plane ``p`` is non-empty
        is enough.
    positions, orientation
        Plane geometry (see :func:`plane_order`), or ``None``.
    tile_positions
        ``(P, 2)`` 1-based (row, column) tile positions of tiled planes;
        tiles are stored row by row and indexed by their row and column
        positions (PS3.3 C.7.6.17).
    labelmap
        Whether one frame holds all segments (LABELMAP).
    omit_empty_frames
        Leave out frames without any non-zero pixel. When every frame is
        empty the first one is kept, so the result is still a valid image.
    """
    number_of_planes, number_of_segments = presence.shape
    if tile_positions is not None:
        order = np.lexsort((tile_positions[:, 1], tile_positions[:, 0]))
        ranks, distances = None, None
    else:
        order, ranks, distances = plane_order(positions, orientation, number_of_planes)
    if labelmap:
        keep = presence.any(axis=1)[order] if omit_empty_frames else np.ones(order.size, bool)  # type: ignore[index]  # numpy stubs: ndarray.any(axis=...) is typed bool | ndarray; with an axis it is an ndarray
        if not keep.any():
            keep[0] = True
        planes = order[keep]
        segments = np.zeros(planes.size, dtype=np.int64)
    else:
        plane_grid = np.tile(order, number_of_segments)
        segment_grid = np.repeat(np.arange(1, number_of_segments + 1), order.size)
        if omit_empty_frames:
            keep = presence[plane_grid, segment_grid - 1]
            if not keep.any():
                keep[0] = True
        else:
            keep = np.ones(plane_grid.size, dtype=bool)
        planes, segments = plane_grid[keep], segment_grid[keep]
    organization = None
    single_channel = labelmap or number_of_segments == 1
    if single_channel and distances is not None and positions is not None:
        included = np.unique(planes)
        included = included[np.argsort(distances[included], kind="stable")]
        if included.size > 1 and regular_spacing(positions[included], orientation) is not None:
            organization = DimensionOrganizationTypeValues.THREE_DIMENSIONAL
    indices: np.ndarray | None
    if tile_positions is not None:
        stored = tile_positions[planes]
        indices = np.stack([_dense_ranks(stored[:, 0]), _dense_ranks(stored[:, 1])], axis=1)
        organization = DimensionOrganizationTypeValues.TILED_SPARSE
    else:
        indices = None if ranks is None else ranks[planes][:, np.newaxis]
    return FramePlan(
        planes=planes.astype(np.int64),
        segment_numbers=segments.astype(np.int64),
        position_indices=indices,
        dimension_organization_type=organization,
    )
