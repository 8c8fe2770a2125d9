"""Display colours: sRGB ↔ DICOM-scaled CIELab (PS3.3 C.10.7.1.1).

DICOM stores Recommended Display CIELab Value (0062,000D) as three unsigned
16-bit integers: L* scaled from [0, 100] and a*, b* from [-128, 127] to
[0, 65535], with the D65 white point.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from monai_dicomseg.errors import InputError

__all__ = ["CIELabColor", "rgb_to_dicom_lab", "dicom_lab_to_rgb"]

_D65_WHITE = np.array([0.95047, 1.0, 1.08883])
_SRGB_TO_XYZ = np.array([
    [0.4124564, 0.3575761, 0.1804375],
    [0.2126729, 0.7151522, 0.0721750],
    [0.0193339, 0.1191920, 0.9503041],
])
_XYZ_TO_SRGB = np.linalg.inv(_SRGB_TO_XYZ)
_EPSILON = 216 / 24389
_KAPPA = 24389 / 27


def _check_rgb(rgb: Sequence[int]) -> np.ndarray:
    values = np.asarray(rgb, dtype=np.float64)
    if values.shape != (3,) or np.any(values < 0) or np.any(values > 255):
        raise InputError(f"RGB colour must be three values in [0, 255]; got {rgb!r}")
    return values


def rgb_to_dicom_lab(rgb: Sequence[int]) -> tuple[int, int, int]:
    """Convert an 8-bit sRGB colour to DICOM-scaled CIELab integers.

    Parameters
    ----------
    rgb
        Three values in [0, 255].

    Returns
    -------
    tuple[int, int, int]
        Scaled L*, a*, b* in [0, 65535] (PS3.3 C.10.7.1.1).
    """
    srgb = _check_rgb(rgb) / 255.0
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    xyz = _SRGB_TO_XYZ @ linear / _D65_WHITE
    f = np.where(xyz > _EPSILON, np.cbrt(xyz), (_KAPPA * xyz + 16) / 116)
    lightness = 116 * f[1] - 16
    a_star = 500 * (f[0] - f[1])
    b_star = 200 * (f[1] - f[2])
    scaled = (
        lightness * 65535 / 100,
        (a_star + 128) * 65535 / 255,
        (b_star + 128) * 65535 / 255,
    )
    return tuple(int(np.clip(round(v), 0, 65535)) for v in scaled)  # type: ignore[return-value]  # tuple() is typed tuple[T, ...]; the fixed length holds by construction (one item per axis)


def dicom_lab_to_rgb(lab: Sequence[int]) -> tuple[int, int, int]:
    """Convert DICOM-scaled CIELab integers back to 8-bit sRGB (clipped to gamut)."""
    values = np.asarray(lab, dtype=np.float64)
    if values.shape != (3,):
        raise InputError(f"CIELab colour must have three values; got {lab!r}")
    lightness = values[0] * 100 / 65535
    a_star = values[1] * 255 / 65535 - 128
    b_star = values[2] * 255 / 65535 - 128
    fy = (lightness + 16) / 116
    f = np.array([fy + a_star / 500, fy, fy - b_star / 200])
    xyz = np.where(f ** 3 > _EPSILON, f ** 3, (116 * f - 16) / _KAPPA) * _D65_WHITE
    linear = np.clip(_XYZ_TO_SRGB @ xyz, 0, 1)
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return tuple(int(round(v)) for v in np.clip(srgb * 255, 0, 255))  # type: ignore[return-value]  # tuple() is typed tuple[T, ...]; the fixed length holds by construction (one item per axis)


class CIELabColor:
    """A display colour held as DICOM-scaled CIELab.

    Parameters
    ----------
    l_star, a_star, b_star
        Unscaled CIELab components: L* in [0, 100], a* and b* in [-128, 127].
    """

    def __init__(self, l_star: float, a_star: float, b_star: float) -> None:
        if not 0 <= l_star <= 100 or not -128 <= a_star <= 127 or not -128 <= b_star <= 127:
            raise InputError(
                "CIELab colour must have L* in [0, 100] and a*, b* in [-128, 127]; "
                f"got ({l_star}, {a_star}, {b_star})"
            )
        self.value = (
            int(round(l_star * 65535 / 100)),
            int(round((a_star + 128) * 65535 / 255)),
            int(round((b_star + 128) * 65535 / 255)),
        )

    @classmethod
    def from_rgb(cls, rgb: Sequence[int]) -> "CIELabColor":
        """Build from an 8-bit sRGB triple."""
        color = cls.__new__(cls)
        color.value = rgb_to_dicom_lab(rgb)
        return color

    @classmethod
    def from_dicom_value(cls, value: Sequence[int]) -> "CIELabColor":
        """Build from the three stored (scaled) integers."""
        values = tuple(int(v) for v in value)
        if len(values) != 3 or any(not 0 <= v <= 65535 for v in values):
            raise InputError(f"scaled CIELab value must be three integers in [0, 65535]; got {value!r}")
        color = cls.__new__(cls)
        color.value = values
        return color

    @property
    def rgb(self) -> tuple[int, int, int]:
        """tuple[int, int, int]: the colour as 8-bit sRGB."""
        return dicom_lab_to_rgb(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CIELabColor) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"CIELabColor.from_dicom_value({self.value})"
