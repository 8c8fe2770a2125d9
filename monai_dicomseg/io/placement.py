"""Place a segmentation volume voxel-for-voxel onto a reference grid.

The planning is numpy only and lives in
:mod:`monai_dicomseg.geometry.grid_placement`; this module keeps the names
importable for the MONAI layer.
"""
from __future__ import annotations

from monai_dicomseg.geometry.grid_placement import (
    AxisPlacement,
    destination_view,
    place_on_grid,
    plan_placement,
)
from monai_dicomseg.geometry.tolerances import DIRECTION_COSINE_TOLERANCE, GRID_INDEX_TOLERANCE

__all__ = ["AxisPlacement", "plan_placement", "place_on_grid", "destination_view", "DIRECTION_TOLERANCE", "INDEX_TOLERANCE"]

DIRECTION_TOLERANCE = DIRECTION_COSINE_TOLERANCE
"""Deprecated alias: see :mod:`monai_dicomseg.geometry.tolerances`."""

INDEX_TOLERANCE = GRID_INDEX_TOLERANCE
"""Deprecated alias: see :mod:`monai_dicomseg.geometry.tolerances`."""
