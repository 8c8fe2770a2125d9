"""Validation and normalisation of the ``pixel_array`` given to the writer.

Two input forms exist (guide, "Constructing Binary SEG Images with Multiple
Segments"):

* **label map** — ``(R, C)`` or ``(F, R, C)`` integer/bool array whose values
  are segment numbers (0 = no segment);
* **stacked segments** — ``(F, R, C, S)`` array, channel ``s - 1`` holding
  segment ``s`` (binary, or floats in [0, 1] for FRACTIONAL).

A 2D/3D *float* array is one stacked segment (FRACTIONAL probabilities).
Either form is stored as any segmentation type; :class:`SegmentPixels`
serves frames in the form the encoder needs without materialising the
other form for the whole volume.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monai_dicomseg.enums import SegmentationTypeValues
from monai_dicomseg.errors import InputError, InputTypeError, OverlapError

__all__ = ["SegmentPixels", "prepare_pixels", "labelmap_dtype"]

_MAX_LABELMAP_SEGMENTS = 65535


def labelmap_dtype(number_of_segments: int) -> np.dtype:
    """Smallest stored dtype for a LABELMAP with this many segments (8 or 16 bits, PS3.3 C.8.20.2)."""
    return np.dtype(np.uint8) if number_of_segments <= 255 else np.dtype(np.uint16)


@dataclass
class SegmentPixels:
    """A validated segmentation array in label-map or stacked form.

    Attributes
    ----------
    labelmap
        ``(F, R, C)`` unsigned integer label map, or ``None``.
    stacked
        ``(F, R, C, S)`` bool (binary) or float64 (fractional) array, or ``None``.
    number_of_segments
        S, the number of segment descriptions.
    """

    labelmap: np.ndarray | None
    stacked: np.ndarray | None
    number_of_segments: int

    @property
    def shape(self) -> tuple[int, int, int]:
        """tuple[int, int, int]: (F, R, C)."""
        array = self.labelmap if self.labelmap is not None else self.stacked
        return tuple(array.shape[:3])  # type: ignore[union-attr,return-value]

    @property
    def is_fractional_input(self) -> bool:
        """bool: whether the input holds non-binary fractions."""
        return self.stacked is not None and self.stacked.dtype.kind == "f"

    def presence(self) -> np.ndarray:
        """Which segments are non-empty in which plane.

        Returns
        -------
        numpy.ndarray
            ``(F, S)`` bool; entry ``[f, s - 1]`` is True when segment ``s``
            has a non-zero pixel in plane ``f``.
        """
        frames, segments = self.shape[0], self.number_of_segments
        if self.labelmap is not None:
            counts = np.zeros((frames, segments + 1), dtype=np.int64)
            for index in range(frames):
                plane_counts = np.bincount(self.labelmap[index].ravel(), minlength=segments + 1)
                counts[index] = plane_counts[: segments + 1]
            return counts[:, 1:] > 0
        return np.asarray(self.stacked).any(axis=(1, 2))

    def nonempty_planes(self) -> np.ndarray:
        """``(F,) bool``: planes holding any non-zero pixel (cheaper than :meth:`presence`)."""
        array = self.labelmap if self.labelmap is not None else self.stacked
        planes = np.ascontiguousarray(array).reshape(array.shape[0], -1)  # type: ignore[union-attr]
        if planes.dtype.kind in "ub" and (planes.shape[1] * planes.itemsize) % 8 == 0:
            planes = planes.view(np.uint64)  # 8 bytes at a time: same answer, fewer comparisons
        return planes.any(axis=1)

    def overlaps(self) -> bool:
        """bool: whether any pixel belongs to more than one segment."""
        if self.labelmap is not None or self.number_of_segments == 1:
            return False
        stacked = np.asarray(self.stacked)
        return any(
            int(np.count_nonzero(stacked[index], axis=-1).max(initial=0)) > 1
            for index in range(stacked.shape[0])
        )

    def binary_frame(self, plane: int, segment_number: int) -> np.ndarray:
        """``(R, C)`` bool mask of one segment in one plane."""
        if self.labelmap is not None:
            return self.labelmap[plane] == segment_number
        return np.asarray(self.stacked)[plane, :, :, segment_number - 1] != 0

    def fractional_frame(self, plane: int, segment_number: int, max_fractional_value: int) -> np.ndarray:
        """``(R, C)`` uint8 quantised fractions of one segment: ``round(x * max)`` (PS3.3 C.8.20.2.3)."""
        if self.labelmap is not None:
            return (self.labelmap[plane] == segment_number).astype(np.uint8) * np.uint8(max_fractional_value)
        values = np.asarray(self.stacked)[plane, :, :, segment_number - 1]
        if values.dtype.kind == "f":
            return np.rint(values * max_fractional_value).astype(np.uint8)
        return values.astype(np.uint8) * np.uint8(max_fractional_value)

    def labelmap_frames(self, planes: np.ndarray) -> np.ndarray:
        """``(n, R, C)`` label-map frames in the smallest LABELMAP dtype.

        Raises
        ------
        OverlapError
            If the input is stacked and segments overlap.
        """
        dtype = labelmap_dtype(self.number_of_segments)
        if self.labelmap is not None:
            return self.labelmap[planes].astype(dtype, copy=False)
        stacked = np.asarray(self.stacked)
        out = np.zeros((len(planes),) + stacked.shape[1:3], dtype=dtype)
        for out_index, plane in enumerate(planes):
            frame = stacked[plane] != 0
            if self.number_of_segments > 1 and int(np.count_nonzero(frame, axis=-1).max(initial=0)) > 1:
                raise OverlapError(
                    "segments overlap in pixel_array (plane index "
                    f"{int(plane)}); LABELMAP cannot store overlapping segments: "
                    "use segmentation_type BINARY"
                )
            for segment_index in range(self.number_of_segments):
                out[out_index][frame[:, :, segment_index]] = segment_index + 1
        return out


def _check_dtype(array: np.ndarray) -> None:
    if array.dtype.kind not in "buif":
        raise InputTypeError(
            "pixel_array must have a bool, integer or floating point dtype; "
            f"got {array.dtype}"
        )


def _integral(array: np.ndarray, argument: str) -> np.ndarray:
    """Return ``array`` as non-negative integers, rejecting fractional or negative values."""
    if array.dtype.kind == "b":
        return array.view(np.uint8)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise InputError(f"{argument} holds non-integer values; expected segment numbers or 0/1")
    if array.size and array.min() < 0:
        raise InputError(f"{argument} holds negative values (minimum {array.min()}); expected >= 0")
    return array


def prepare_pixels(
    pixel_array: np.ndarray,
    number_of_segments: int,
    segmentation_type: SegmentationTypeValues,
) -> SegmentPixels:
    """Validate ``pixel_array`` against the segment descriptions and the type.

    Parameters
    ----------
    pixel_array
        ``(R, C)``, ``(F, R, C)`` (label map, or one fractional segment when
        float) or ``(F, R, C, S)`` (stacked segments).
    number_of_segments
        Number of segment descriptions.
    segmentation_type
        Requested storage type.

    Raises
    ------
    InputTypeError
        Not a numpy array, or an unsupported dtype.
    InputError
        Wrong rank, empty axes, values that the type cannot store, labels
        without a description, channel count ≠ number of descriptions.
    """
    if not isinstance(pixel_array, np.ndarray):
        raise InputTypeError(f"pixel_array must be a numpy array; got {type(pixel_array).__name__}")
    _check_dtype(pixel_array)
    if pixel_array.ndim not in (2, 3, 4):
        raise InputError(
            "pixel_array must have 2 (R, C), 3 (F, R, C) or 4 (F, R, C, S) dimensions; "
            f"got shape {pixel_array.shape}"
        )
    if 0 in pixel_array.shape:
        raise InputError(f"pixel_array must not have an empty axis; got shape {pixel_array.shape}")
    if pixel_array.ndim == 2:
        pixel_array = pixel_array[np.newaxis]
    is_fractional_type = segmentation_type is SegmentationTypeValues.FRACTIONAL
    if pixel_array.ndim == 3 and pixel_array.dtype.kind == "f" and (
        is_fractional_type or number_of_segments == 1
    ):
        pixel_array = pixel_array[..., np.newaxis]
    if pixel_array.ndim == 3:
        labels = _integral(pixel_array, "pixel_array")
        maximum = int(labels.max(initial=0))
        if maximum > number_of_segments:
            raise InputError(
                f"pixel_array contains label value {maximum} but segment_descriptions describe "
                f"only segments 1..{number_of_segments}"
            )
        if labels.dtype.kind != "u":
            labels = labels.astype(labelmap_dtype(number_of_segments))
        return SegmentPixels(labelmap=labels, stacked=None, number_of_segments=number_of_segments)
    channels = pixel_array.shape[3]
    if channels != number_of_segments:
        raise InputError(
            f"pixel_array has {channels} segment channels (axis 3) but segment_descriptions "
            f"has {number_of_segments} items"
        )
    if pixel_array.dtype.kind == "f":
        if np.isnan(pixel_array).any():
            raise InputError("pixel_array contains NaN values")
        low, high = float(pixel_array.min()), float(pixel_array.max())
        if low < 0.0 or high > 1.0:
            raise InputError(
                f"pixel_array values must lie in [0, 1]; got range [{low}, {high}]"
            )
        binary = bool(np.all((pixel_array == 0) | (pixel_array == 1)))
        if not binary and not is_fractional_type:
            raise InputError(
                f"pixel_array holds fractional values but segmentation_type is "
                f"{segmentation_type.value}; {segmentation_type.value} needs only the values 0 and 1"
            )
        stacked = pixel_array if not binary else pixel_array != 0
        return SegmentPixels(labelmap=None, stacked=stacked, number_of_segments=number_of_segments)
    values = _integral(pixel_array, "pixel_array")
    if int(values.max(initial=0)) > 1:
        raise InputError(
            "pixel_array in stacked-segment form (F, R, C, S) must hold only 0 and 1; "
            f"got maximum {int(values.max())}"
        )
    return SegmentPixels(labelmap=None, stacked=values, number_of_segments=number_of_segments)
