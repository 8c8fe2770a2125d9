"""``LoadDicomSeries`` / ``LoadDicomSeriesd``: a source series sorted by position, as MONAI loads it.

MONAI's ``PydicomReader`` orders a series by InstanceNumber, so a series whose
Instance Numbers are not spatially monotonic loads with its slices scrambled
(and an affine computed from the first and last instance). These transforms
load the series through :func:`~monai_dicomseg.io.series.load_source_series`
(sorted by Image Position (Patient) along the normal; PS3.3 C.7.6.2) and return
the array/affine in MONAI order (``(1, C, R, S)``, RAS by default; see
:mod:`monai_dicomseg.io.series`), i.e. identical to ``PydicomReader`` whenever
that one orders correctly. The metadata names the SeriesInstanceUID and
FrameOfReferenceUID, which :class:`~monai_dicomseg.transforms.load.LoadDicomSegd`
checks against the SEG.
"""
from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

from monai_dicomseg.errors import InputError
from monai_dicomseg.io.series import SeriesSource, load_source_series

__all__ = ["LoadDicomSeries", "LoadDicomSeriesd"]


class LoadDicomSeries(Transform):
    """Load a single-frame DICOM series as a channel-first ``MetaTensor``.

    Parameters
    ----------
    dtype
        numpy dtype of the voxels (modality rescale applied when present).
    space
        ``"RAS"`` (default, as MONAI) or ``"LPS"``.
    ensure_channel_first
        Add the leading channel axis (default True): ``(1, C, R, S)``; else
        ``(C, R, S)``.
    series_instance_uid
        Choose one series when a folder holds several.
    """

    def __init__(self, dtype: Any = np.float32, space: str = "RAS", ensure_channel_first: bool = True,
                 series_instance_uid: "str | None" = None) -> None:
        if str(space).upper() not in ("RAS", "LPS"):
            raise InputError(f"space must be 'RAS' or 'LPS'; got {space!r}")
        self.dtype = dtype
        self.space = str(space).upper()
        self.ensure_channel_first = ensure_channel_first
        self.series_instance_uid = series_instance_uid

    def __call__(self, source: SeriesSource) -> MetaTensor:
        """Load ``source`` (folder, file list or dataset list).

        Returns
        -------
        MetaTensor
            ``(1, C, R, S)`` ``dtype``; ``affine`` in ``space``.
        """
        series = load_source_series(source, series_instance_uid=self.series_instance_uid, dtype=self.dtype)
        array = np.ascontiguousarray(series.monai_array())
        affine = series.monai_affine(self.space)
        if isinstance(source, (str, os.PathLike)):
            name = str(source)
        elif series.filenames:
            name = series.filenames[0]
        else:
            name = ""
        meta = {
            "original_affine": affine.copy(),
            "spatial_shape": np.asarray(array.shape),
            "space": self.space,
            "original_channel_dim": "no_channel",
            "SeriesInstanceUID": series.series_instance_uid,
            "FrameOfReferenceUID": series.frame_of_reference_uid or "",
            "filename_or_obj": name,
        }
        if self.ensure_channel_first:
            array = array[None]
        return MetaTensor(torch.from_numpy(array), affine=torch.as_tensor(affine, dtype=torch.float64), meta=meta)


class LoadDicomSeriesd(MapTransform):
    """Dictionary wrapper of :class:`LoadDicomSeries`.

    Parameters
    ----------
    keys
        Keys holding series sources (folders or file lists).
    allow_missing_keys
        As in MONAI.
    **kwargs
        Passed to :class:`LoadDicomSeries` by keyword.
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False, **kwargs: Any) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadDicomSeries(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key])
        return d
