"""``imread``: read a DICOM image and access its frames (guide: ``hd.imread``)."""
from __future__ import annotations

import os
from copy import deepcopy
from collections.abc import Iterable
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from monai_dicomseg.errors import DecodeError, InputError, InputTypeError

__all__ = ["Image", "imread"]


class Image(Dataset):
    """A DICOM image dataset with 1-based frame access.

    Frames are returned with the Modality LUT (Rescale Slope/Intercept, PS3.3
    C.11.1) applied, as float64 by default, like highdicom's ``get_frame``.
    """

    @classmethod
    def from_dataset(cls, dataset: Dataset, copy: bool = True) -> "Image":
        """Wrap a pydicom Dataset (copied unless ``copy=False``)."""
        if not isinstance(dataset, Dataset):
            raise InputTypeError(f"dataset must be a pydicom Dataset; got {type(dataset).__name__}")
        if "PixelData" not in dataset and "FloatPixelData" not in dataset:
            raise DecodeError("dataset has no PixelData: not an image")
        image = deepcopy(dataset) if copy else dataset
        image.__class__ = cls
        return image  # type: ignore[return-value]  # its class was set to cls on the line above

    @property
    def number_of_frames(self) -> int:
        """int: NumberOfFrames (1 for single-frame images)."""
        return int(self.get("NumberOfFrames", 1) or 1)

    def _rescale(self, frame_index: int) -> tuple[float, float] | None:
        item = None
        per_frame = self.get("PerFrameFunctionalGroupsSequence")
        for groups in ([per_frame[frame_index]] if per_frame else []) + list(
                self.get("SharedFunctionalGroupsSequence", [])):
            if "PixelValueTransformationSequence" in groups:
                item = groups.PixelValueTransformationSequence[0]
                break
        source = item if item is not None else self
        if "RescaleSlope" in source or "RescaleIntercept" in source:
            return float(source.get("RescaleSlope", 1.0)), float(source.get("RescaleIntercept", 0.0))
        return None

    def get_frames(
        self,
        frame_numbers: Iterable[int] | None = None,
        *,
        dtype: type | str | np.dtype = np.float64,
        apply_modality_transform: bool | None = None,
    ) -> np.ndarray:
        """Return frames as ``(n, R, C)`` (or ``(n, R, C, samples)``) of ``dtype``.

        Parameters
        ----------
        frame_numbers
            1-based frame numbers (default: all frames, in order).
        dtype
            Output dtype.
        apply_modality_transform
            Apply Rescale Slope/Intercept; default: when present.
        """
        total = self.number_of_frames
        numbers = list(range(1, total + 1)) if frame_numbers is None else [int(n) for n in frame_numbers]
        for number in numbers:
            if not 1 <= number <= total:
                raise InputError(f"frame_numbers must be in [1, {total}]; got {number}")
        pixels = self.pixel_array
        if total == 1:
            pixels = pixels[np.newaxis]
        out = pixels[np.asarray(numbers, dtype=np.int64) - 1].astype(dtype)
        if apply_modality_transform is not False:
            for out_index, number in enumerate(numbers):
                rescale = self._rescale(number - 1)
                if rescale is not None:
                    slope, intercept = rescale
                    out[out_index] = out[out_index] * slope + intercept
        return out

    def get_frame(self, frame_number: int, *, dtype: type | str | np.dtype = np.float64,
                  apply_modality_transform: bool | None = None) -> np.ndarray:
        """Return one frame (1-based) as ``(R, C)`` of ``dtype``; see :meth:`get_frames`."""
        return self.get_frames([frame_number], dtype=dtype,
                               apply_modality_transform=apply_modality_transform)[0]


def imread(fp: str | bytes | os.PathLike | BinaryIO, lazy_frame_retrieval: bool = False) -> Image:
    """Read a DICOM image file into an :class:`Image`.

    Parameters
    ----------
    fp
        Path or binary file-like object.
    lazy_frame_retrieval
        Accepted for highdicom compatibility; frames are decoded on access.
    """
    try:
        dataset = pydicom.dcmread(fp)
    except (pydicom.errors.InvalidDicomError, OSError) as error:
        raise DecodeError(f"cannot read DICOM file {fp!r}: {error}") from error
    return Image.from_dataset(dataset, copy=False)
