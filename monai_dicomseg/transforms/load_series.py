"""``LoadDicomSeries`` / ``LoadDicomSeriesd``: a source series sorted by position, as MONAI loads it.

MONAI's ``PydicomReader`` orders a series by InstanceNumber, so a series whose
Instance Numbers are not spatially monotonic loads with its slices scrambled
(and an affine computed from the first and last instance). These transforms
load the series through :func:`~monai_dicomseg.io.source_series.load_source_series`
(sorted by Image Position (Patient) along the normal; PS3.3 C.7.6.2) and return
the array/affine in MONAI order (``(1, C, R, S)``, RAS by default; see
:mod:`monai_dicomseg.io.source_series`), i.e. identical to ``PydicomReader`` whenever
that one orders correctly. The metadata names the SeriesInstanceUID and
FrameOfReferenceUID, which :class:`~monai_dicomseg.transforms.load.LoadDicomSegd`
checks against the SEG.
"""
from __future__ import annotations

import json
import os
import warnings
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

from monai_dicomseg.enums import OnError, to_enum
from monai_dicomseg.errors import DicomSegError
from monai_dicomseg.geometry.affine import check_space
from monai_dicomseg.geometry.slice_grid import check_irregular_slices
from monai_dicomseg.io.segload import error_with_context, source_name
from monai_dicomseg.meta_keys import MetaKey
from monai_dicomseg.io.source_series import SeriesSource, load_source_series
from monai_dicomseg.io.source_volumes import VOLUME_ITEM_KEY, VolumeSelector, parse_selector
from monai_dicomseg.options import check_options, options_of

__all__ = ["LoadDicomSeries", "LoadDicomSeriesd", "SERIES_OPTIONS"]


class LoadDicomSeries(Transform):
    """Load a DICOM series (single-frame or multi-frame instances) as a channel-first ``MetaTensor``.

    Parameters
    ----------
    dtype
        numpy dtype of the voxels (modality rescale applied when present).
    space
        ``"RAS"`` (default, as MONAI) or ``"LPS"``.
    ensure_channel_first
        Add the leading channel axis (default True): ``(1, C, R, S)`` with
        ``meta["original_channel_dim"] = 0``, so that MONAI's
        ``EnsureChannelFirst(d)``, which every MONAI tutorial runs after
        loading, is a no-op. False: ``(C, R, S)`` with
        ``meta["original_channel_dim"] = "no_channel"``, so that
        ``EnsureChannelFirst(d)`` adds the axis (as after ``LoadImaged``).
        The default differs from ``LoadImaged`` (False) on purpose:
        ``LoadDicomSegd(ref_key=...)``, ``DicomSegDataset`` and the label
        loaders are channel-first, and both tutorial orders (with or without
        ``EnsureChannelFirstd``) give the same 4D tensor. ``LoadImaged(...,
        ensure_channel_first=True)`` itself (MONAI 1.6) leaves
        ``"no_channel"`` in the metadata, so an ``EnsureChannelFirstd`` after
        it adds a second axis; this loader records the axis it added instead.
    series_instance_uid
        Choose one series when a folder holds several.
    on_error
        ``"raise"`` (default) or ``"skip"``: warn and return None (the
        dictionary transform returns ``[]``, as ``LoadDicomSegd`` does) for a
        missing, unreadable or irregular series.
    volume
        Which volume when the series (or a multi-frame instance) holds several
        stacks, temporal positions, echoes or acquisitions: an int index into
        the volumes the error lists, or ``{key: value}`` over
        :data:`~monai_dicomseg.io.source_volumes.VOLUME_KEYS` (e.g.
        ``{"StackID": "1"}``, ``{"TemporalPositionIndex": 2}``), or its JSON
        text (``meta["source_volume"]``, a ``create_datalist`` entry's
        ``"volume"``). Default None: the only volume, else a GeometryError
        listing them. ``LoadDicomSeriesd`` also reads a per-item selector from
        ``d["volume"]`` (see there).
    irregular_slices
        What to do with a series whose slices are not evenly spaced (a missing
        slice, irregular spacing): ``"error"`` (default; a GeometryError naming
        the gap, e.g. "a gap at z = 42.50 mm between slices 11 and 12 ..."),
        ``"fill"`` (a regular grid on which every source slice lies, the
        missing slices filled with the Pixel Padding Value or else the series
        minimum, listed in ``meta["filled_slices"]``) or ``"resample"``
        (linear interpolation onto a regular grid at the median spacing, from
        the first to the last slice; the grid slices no source slice lies on
        are listed in ``meta["filled_slices"]``). A gantry/detector-tilted
        (sheared) stack needs no option: it loads exactly with its sheared
        affine and ``meta["sheared"]`` gives the tilt in degrees.

    Raises
    ------
    TypeError
        (:class:`~monai_dicomseg.errors.InputTypeError`) for an unknown
        keyword option, naming the closest valid one.

    Notes
    -----
    Metadata keys: :data:`~monai_dicomseg.io.segload.SERIES_META_KEYS`
    (``meta["slice_order"] == "ImagePositionPatient"`` marks a series sorted by
    position). Errors are re-raised with the same class and a message that
    starts with the series folder (and the dict key in ``LoadDicomSeriesd``).
    """

    def __init__(self, dtype: Any = np.float32, space: str = "RAS", ensure_channel_first: bool = True,
                 series_instance_uid: "str | None" = None, on_error: str = "raise",
                 volume: "VolumeSelector | str" = None, irregular_slices: str = "error", **options: Any) -> None:
        check_options(options, SERIES_OPTIONS, "LoadDicomSeries")
        self.on_error = to_enum(OnError, on_error, "on_error")  # converted once, here
        self.dtype = dtype
        self.space = check_space(space)
        self.ensure_channel_first = bool(ensure_channel_first)
        self.series_instance_uid = series_instance_uid
        self.volume = parse_selector(volume)
        self.irregular_slices = check_irregular_slices(irregular_slices)

    def __call__(self, source: SeriesSource) -> "MetaTensor | None":
        """Load ``source`` (folder, file list or dataset list).

        Returns
        -------
        MetaTensor or None
            ``(1, C, R, S)`` ``dtype``; ``affine`` in ``space``. None when
            skipped (``on_error="skip"``).
        """
        return self.load(source)

    def load(self, source: SeriesSource, *, key: "Hashable | None" = None,
             where: str = "LoadDicomSeries", volume: "VolumeSelector | str" = None) -> "MetaTensor | None":
        """:meth:`__call__` with the dict ``key`` named in errors (``volume``: a per-item selector)."""
        try:
            chosen = self.volume if volume is None or volume == "" else parse_selector(volume)
            series = load_source_series(source, series_instance_uid=self.series_instance_uid, dtype=self.dtype,
                                        volume=chosen, irregular_slices=self.irregular_slices)
        except (DicomSegError, OSError) as error:
            context = where + (f"[key {key!r}]" if key is not None else "") + f" series {source_name(source)}"
            if self.on_error == "raise" or isinstance(error, TypeError):
                raise error_with_context(error, context) from error
            warnings.warn(f"{context}: skipped: {error}", stacklevel=3)
            return None
        array = np.ascontiguousarray(series.monai_array())
        affine = series.monai_affine(self.space)
        if isinstance(source, (str, os.PathLike)):
            name = str(source)
        elif series.filenames:
            name = series.filenames[0]
        else:
            name = ""
        meta = {
            MetaKey.ORIGINAL_AFFINE: affine.copy(),
            MetaKey.SPATIAL_SHAPE: np.asarray(array.shape),
            MetaKey.SPACE: self.space,
            # the axis added below is already first: EnsureChannelFirst(d) after this is a no-op
            MetaKey.ORIGINAL_CHANNEL_DIM: 0 if self.ensure_channel_first else "no_channel",
            MetaKey.SERIES_INSTANCE_UID: series.series_instance_uid,
            MetaKey.FRAME_OF_REFERENCE_UID: series.frame_of_reference_uid or "",
            MetaKey.SLICE_ORDER: MetaKey.SLICE_ORDER_BY_POSITION,
            MetaKey.FILENAME_OR_OBJ: name,
            MetaKey.SOURCE_VOLUME: series.volume_selector,
            MetaKey.SOURCE_VOLUMES: len(series.volumes),
            MetaKey.SOURCE_FRAMES: series.frames_key,
            MetaKey.MULTIFRAME: series.is_multiframe,
            MetaKey.SHEARED: float(series.tilt_degrees),
            MetaKey.SLICE_GRID: series.slice_grid.kind if series.slice_grid is not None else "source",
            # frame f of ours is slice F - 1 - f of MONAI's last axis
            MetaKey.FILLED_SLICES: json.dumps(sorted(array.shape[2] - 1 - f for f in series.filled_slices)),
        }
        if self.ensure_channel_first:
            array = array[None]
        return MetaTensor(torch.from_numpy(array), affine=torch.as_tensor(affine, dtype=torch.float64), meta=meta)


SERIES_OPTIONS = options_of(LoadDicomSeries)
"""Keyword options of :class:`LoadDicomSeries` (also accepted by ``LoadDicomSeriesd``): its signature's
options, derived (:func:`~monai_dicomseg.options.options_of`)."""


class LoadDicomSeriesd(MapTransform):
    """Dictionary wrapper of :class:`LoadDicomSeries`.

    Parameters
    ----------
    keys
        Keys holding series sources (folders or file lists).
    allow_missing_keys
        As in MONAI.
    **kwargs
        Options of :class:`LoadDicomSeries` (:data:`SERIES_OPTIONS`) by
        keyword; an unknown name is a TypeError naming the closest valid one.

    With ``on_error="skip"`` a broken series warns and the dict becomes ``[]``
    (zero samples; see :class:`~monai_dicomseg.transforms.load.LoadDicomSegd`).
    A non-empty ``d["volume"]`` (the selector JSON that ``create_datalist``
    writes for a SEG over one volume of a multi-volume series) picks the
    volume of that item, over the ``volume=`` option.
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False, **kwargs: Any) -> None:
        check_options(kwargs, SERIES_OPTIONS, "LoadDicomSeriesd")
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadDicomSeries(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> "dict[Hashable, Any] | list":
        d = dict(data)
        for key in self.key_iterator(d):
            loaded = self.loader.load(d[key], key=key, where="LoadDicomSeriesd", volume=d.get(VOLUME_ITEM_KEY))
            if loaded is None:
                return []
            d[key] = loaded
        return d
