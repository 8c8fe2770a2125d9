"""Volumes on a sheared grid: gantry/detector-tilted stacks, exactly (numpy only).

A CT acquired with a tilted gantry stores parallel slices whose positions
move in-plane from one slice to the next: the step between slice positions
is not along the normal of the image planes. Its grid is exactly an affine
whose slice column (column 0, the step between ``ImagePositionPatient``
values, PS3.3 C.7.6.2.1.1) is not perpendicular to the row and column
directions: a sheared affine. MONAI's ``MetaTensor`` and NIfTI hold such an
affine; highdicom's ``Volume`` (and our :class:`~monai_dicomseg.geometry.volume.Volume`,
which follows it) requires orthogonal axes and refuses it.

:class:`ShearedVolume` and :class:`ShearedVolumeGeometry` are the same
classes with the shear allowed; the loaders (``load_source_series``,
``LoadDicomSeries(d)``) return them for a tilted series, and plain ones
otherwise, so ``isinstance(volume, ShearedVolume)`` tells a sheared grid.
Index-space operations (indexing, flips, permutations, padding, cropping,
plane positions) are exact on a sheared affine; orientation matching is
not meaningful for it and may raise.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from monai_dicomseg.errors import InputError
from monai_dicomseg.geometry.affine import shear_angle
from monai_dicomseg.geometry.volume import Volume, VolumeGeometry

__all__ = ["ShearedVolume", "ShearedVolumeGeometry", "tilt_degrees"]


def tilt_degrees(affine: np.ndarray) -> float:
    """Angle (degrees) between the slice step (column 0) and the normal of the image planes."""
    return shear_angle(affine)


class _ShearedMixin:
    """Properties of a possibly sheared grid."""

    _allow_shear = True
    _affine: np.ndarray

    @property
    def tilt_degrees(self) -> float:
        """Angle between the slice step and the normal of the image planes (0.0 when not sheared)."""
        return shear_angle(self._affine)

    @property
    def spacing_between_slices(self) -> float:
        """Distance between consecutive image planes along their normal (mm), PS3.3 C.7.6.2.1.1.

        Smaller than the length of the slice step (``spacing[0]``) when sheared.
        """
        normal = np.cross(self._affine[:3, 1], self._affine[:3, 2])
        return float(abs(self._affine[:3, 0] @ normal) / np.linalg.norm(normal))


class ShearedVolumeGeometry(_ShearedMixin, VolumeGeometry):
    """:class:`~monai_dicomseg.geometry.volume.VolumeGeometry` whose affine may be sheared."""

    def with_array(self, array: np.ndarray, channels: Any = None) -> "ShearedVolume":
        """A :class:`ShearedVolume` with this geometry."""
        if tuple(np.shape(array)[:3]) != self.spatial_shape:
            raise InputError(
                f"array spatial shape {tuple(np.shape(array)[:3])} does not match the geometry's "
                f"{self.spatial_shape}")
        return ShearedVolume(array, self._affine.copy(), self._coordinate_system,
                             self._frame_of_reference_uid, channels)


class ShearedVolume(_ShearedMixin, Volume):
    """:class:`~monai_dicomseg.geometry.volume.Volume` whose affine may be sheared."""

    def get_geometry(self) -> ShearedVolumeGeometry:
        """The geometry of this volume, without the array."""
        return ShearedVolumeGeometry(self._affine.copy(), self.spatial_shape, self._coordinate_system,
                                     self._frame_of_reference_uid)
