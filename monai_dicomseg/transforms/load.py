"""``LoadDicomSeg`` / ``LoadDicomSegd``: SEG files to channel-first ``MetaTensor`` labels.

The array transform does the work (through :func:`~monai_dicomseg.io.segload.load_seg_array`);
the dictionary transform wraps it by composition and adds ``ref_key``: the
label is placed on the grid of an image loaded earlier in the same dict
(MONAI's ``LoadImaged`` with ``PydicomReader``/``ITKReader``, or
:class:`~monai_dicomseg.transforms.load_series.LoadDicomSeriesd`), so label and
image share spatial shape and affine and every voxel sits on its image voxel.
Prefer ``LoadDicomSeriesd`` for the image: MONAI's ``PydicomReader`` orders
slices by InstanceNumber, and a GeometryError from such an image says so.

Default ``mode="labelmap"`` (one channel; batches of different SEGs collate).
Every metadata key collates (:data:`~monai_dicomseg.io.segload.META_KEYS`);
``on_error="skip"`` makes the dict ``[]`` (zero samples); errors name the dict
key, the SEG and the source series; unknown options are TypeErrors.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

from monai_dicomseg.enums import LoadMode, OnError, is_seg_sop_class, to_enum
from monai_dicomseg.errors import DicomSegError, GeometryError, InputError, InputTypeError
from monai_dicomseg.geometry.affine import RAS, check_space
from monai_dicomseg.io.segload import (
    DEFAULT_MODE,
    MetaKey,
    ReferenceGrid,
    check_threshold,
    error_with_context,
    import_reading_modules,
    load_seg_array,
    source_name,
)
from monai_dicomseg.io.segments import SELECTION_OPTIONS, SegmentSelection
from monai_dicomseg.io.source_series import check_spatial_affine
from monai_dicomseg.io.source_volumes import VolumeIdentity
from monai_dicomseg.meta_keys import FRAME_OF_REFERENCE_UID_KEYS, SERIES_INSTANCE_UID_KEYS, meta_uid
from monai_dicomseg.options import check_options, options_of

__all__ = [
    "LoadDicomSeg", "LoadDicomSegd", "reference_from_image", "ON_ERROR", "LOAD_OPTIONS", "DEFAULT_POSTFIX",
    "meta_dict_key",
]

ON_ERROR = tuple(choice.value for choice in OnError)


DEFAULT_POSTFIX = "meta_dict"
"""MONAI's default ``meta_key_postfix`` (``monai.utils.PostFix.meta()``): ``d[f"{key}_meta_dict"]``."""


def meta_dict_key(key: Hashable, postfix: str = DEFAULT_POSTFIX) -> str:
    """Key of the meta dict of ``d[key]`` under MONAI's ``meta_key_postfix`` convention."""
    return f"{key}_{postfix}"


_SERIES_HINT = (
    " (the reference image was not loaded by monai_dicomseg.LoadDicomSeries(d): MONAI's "
    "LoadImage(d)(reader='PydicomReader') orders slices by InstanceNumber, which scrambles a series "
    "whose InstanceNumbers are not in spatial order and gives it a wrong affine; load the image with "
    "LoadDicomSeriesd, which sorts slices by ImagePositionPatient)"
)


def reference_from_image(image: Any, meta: "Mapping[str, Any] | None" = None) -> ReferenceGrid:
    """The grid of an image loaded by MONAI (``MetaTensor``, or array + meta dict).

    The spatial shape is the last three dimensions (channel-first or
    no-channel 3D images); the affine and ``space`` come from the metadata;
    FrameOfReferenceUID / SeriesInstanceUID are read from the metadata when
    the reader kept them (``PydicomReader`` keeps DICOM tags, ours names them).

    Raises
    ------
    GeometryError
        If the image is not 3D or has no affine.
    """
    if isinstance(image, MetaTensor):
        meta = {**image.meta, **(meta or {})}
        affine = image.affine
        shape = tuple(int(s) for s in image.shape[-3:])
    else:
        meta = dict(meta or {})
        affine = meta.get(MetaKey.AFFINE)  # type: ignore[assignment]  # typed Tensor by the MetaTensor branch; here whatever meta holds (checked below)
        shape = tuple(int(s) for s in np.shape(image)[-3:])
    if len(shape) != 3 or (hasattr(image, "ndim") and image.ndim not in (3, 4)):
        raise GeometryError(
            f"the reference image must be 3D, (X, Y, Z) or (channels, X, Y, Z); got shape {tuple(np.shape(image))}"
        )
    if affine is None:
        raise GeometryError("the reference image has no affine (meta['affine']); load it with LoadImage(d)")
    space = str(getattr(meta.get(MetaKey.SPACE, RAS), "value", meta.get(MetaKey.SPACE, RAS))).upper()
    frame_of_reference_uid = meta_uid(meta, FRAME_OF_REFERENCE_UID_KEYS)
    series_instance_uid = meta_uid(meta, SERIES_INSTANCE_UID_KEYS)
    if frame_of_reference_uid is None and series_instance_uid is None:
        frame_of_reference_uid, series_instance_uid = _uids_from_file(meta.get(MetaKey.FILENAME_OR_OBJ))
    return ReferenceGrid(
        affine=check_spatial_affine(affine, "reference affine"),
        spatial_shape=shape,
        space=space,
        frame_of_reference_uid=frame_of_reference_uid,
        series_instance_uid=series_instance_uid,
        identity=VolumeIdentity.from_meta(meta),  # LoadDicomSeries(d)'s meta["source_frames"]: the SEG's frames
    )


def _uids_from_file(source: Any) -> "tuple[str | None, str | None]":
    """FrameOfReferenceUID and SeriesInstanceUID from one header of the image's files.

    MONAI's ``PydicomReader`` keeps neither in its metadata; reading one header
    (no pixels) of ``filename_or_obj`` (a file, or the first DICOM file of a
    folder) still lets us refuse a SEG of another series. Returns Nones when
    nothing readable is found.
    """
    import pydicom

    if isinstance(source, (list, tuple)) and source:
        source = source[0]
    if not isinstance(source, (str, os.PathLike)) or not str(source):
        return None, None
    path = str(source)
    try:
        if os.path.isdir(path):
            names = sorted(os.listdir(path))
            candidates = [os.path.join(path, n) for n in names if os.path.isfile(os.path.join(path, n))]
        else:
            candidates = [path]
        for candidate in candidates[:8]:
            try:
                ds = pydicom.dcmread(candidate, stop_before_pixels=True,
                                     specific_tags=["FrameOfReferenceUID", "SeriesInstanceUID", "SOPClassUID"])
            except Exception:  # not DICOM: try the next file
                continue
            if "SeriesInstanceUID" not in ds or is_seg_sop_class(ds.get("SOPClassUID")):
                continue
            frame = ds.get("FrameOfReferenceUID")
            return (str(frame) if frame else None), str(ds.SeriesInstanceUID)
    except OSError:
        pass
    return None, None


class LoadDicomSeg(Transform):
    """Load a DICOM SEG as a channel-first ``MetaTensor`` (MONAI order, RAS by default).

    Parameters
    ----------
    mode
        ``"labelmap"`` (default) -> ``(1, X, Y, Z)`` of segment numbers (or
        ``label_map`` values), 0 = background: one channel whatever the number
        of segments, so that a ``DataLoader`` batches SEGs with different
        segments, and MONAI's label convention (``DiceLoss(to_onehot_y=True)``,
        ``AsDiscrete(to_onehot=N)``). ``"stacked"`` -> ``(S, X, Y, Z)``, one
        channel per selected segment (channel -> segment numbers in
        ``meta["channel_segments"]``); uint8 for BINARY/LABELMAP, float32 for
        FRACTIONAL.
    selection
        A :class:`~monai_dicomseg.io.segments.SegmentSelection`, or pass its
        fields by keyword (``**options``):
    segment_numbers, segment_labels, segmented_property_types
        Keep only matching segments (any of them).
    label_map
        ``{key: value}`` harmonisation, key = segment label or property type
        (meaning / code value / coded concept) or segment number; see
        :func:`~monai_dicomseg.io.segments.plan_segment_selection`.
    rescale_fractional
        FRACTIONAL values in [0, 1] (default) or stored integers.
    skip_overlap_checks
        In ``"labelmap"`` mode, resolve overlaps (highest value wins) instead of raising.
    space
        ``"RAS"`` (default, as MONAI) or ``"LPS"`` when no reference is given.
    dtype
        Output dtype (numpy or torch); default per ``mode``.
    threshold
        FRACTIONAL SEGs: fraction (in (0, 1]) at or above which a voxel
        belongs to a segment. Required in ``"labelmap"`` mode for a FRACTIONAL
        SEG (an InputError naming the file says so otherwise); in
        ``"stacked"`` mode it makes the channels 0/1 uint8. Ignored for
        BINARY/LABELMAP SEGs.
    on_error
        ``"raise"`` or ``"skip"`` (warn and return None; the dictionary
        transform returns ``[]``) for a missing or unreadable SEG, a SEG of
        another series / frame of reference, or an incompatible reference grid.
    allow_other_series
        Accept a reference image that is another series of the SEG's Frame of
        Reference (not in its ReferencedSeriesSequence: another kernel, another
        phase); the placement is still checked voxel by voxel (exact or a
        GeometryError). Another FrameOfReferenceUID is refused whatever this option.

    Raises
    ------
    TypeError
        (:class:`~monai_dicomseg.errors.InputTypeError`) for an unknown
        keyword option, naming the closest valid one.

    Notes
    -----
    Without a reference the grid spans only the frames the SEG contains (its
    own geometry, ``meta["grid"] == "seg"``): use a reference to get the source
    image's full grid (``meta["grid"] == "reference"``).
    Call with ``reference=`` an image loaded by MONAI (``MetaTensor``).
    Errors are re-raised with the same class and a message that starts with
    the SEG path and the source series (the reference image's
    ``filename_or_obj``), so a failure inside a ``DataLoader`` worker names
    its case. Metadata keys: :data:`~monai_dicomseg.io.segload.META_KEYS`.
    """

    def __init__(
        self,
        mode: str = DEFAULT_MODE,
        *,
        selection: "SegmentSelection | None" = None,
        rescale_fractional: bool = True,
        skip_overlap_checks: bool = False,
        space: str = "RAS",
        dtype: Any = None,
        threshold: "float | None" = None,
        on_error: str = "raise",
        allow_other_series: bool = False,
        **options: Any,
    ) -> None:
        check_options(options, LOAD_OPTIONS, "LoadDicomSeg")
        import_reading_modules()  # here, in the main process: forked DataLoader workers inherit them
        self.mode = to_enum(LoadMode, mode, "mode")  # the strings are accepted; converted once, here
        self.on_error = to_enum(OnError, on_error, "on_error")
        self.selection = SegmentSelection.from_options(options, selection)
        self.rescale_fractional = rescale_fractional
        self.skip_overlap_checks = skip_overlap_checks
        self.space = check_space(space)
        self.dtype = dtype
        self.threshold = check_threshold(threshold)
        self.allow_other_series = bool(allow_other_series)

    def _numpy_dtype(self) -> Any:
        if self.dtype is None or not isinstance(self.dtype, torch.dtype):
            return self.dtype
        return torch.empty((), dtype=self.dtype).numpy().dtype

    def __call__(self, filename: Any, reference: Any = None) -> "MetaTensor | None":
        """Load ``filename`` (path, file object or Dataset), optionally on ``reference``'s grid.

        Parameters
        ----------
        filename
            The SEG.
        reference
            An image loaded by MONAI (``MetaTensor``), a ``(array, meta)``
            pair, or a :class:`~monai_dicomseg.io.segload.ReferenceGrid`.

        Returns
        -------
        MetaTensor or None
            ``(channels, X, Y, Z)``; None when skipped (``on_error="skip"``).
        """
        return self.load(filename, reference)

    def load(self, filename: Any, reference: Any = None, *, key: "Hashable | None" = None,
             where: str = "LoadDicomSeg") -> "MetaTensor | None":
        """:meth:`__call__` with the dict ``key`` named in errors and warnings."""
        context = _context(where, key, filename, reference)
        try:
            grid = _grid(reference)
            loaded = load_seg_array(
                filename, mode=self.mode, rescale_fractional=self.rescale_fractional,
                skip_overlap_checks=self.skip_overlap_checks, reference=grid, space=self.space,
                dtype=self._numpy_dtype(), threshold=self.threshold, selection=self.selection,
                allow_other_series=self.allow_other_series,
            )
        except (DicomSegError, OSError) as error:
            hint = _SERIES_HINT if isinstance(error, GeometryError) and _needs_series_hint(reference) else ""
            if self.on_error is OnError.RAISE or isinstance(error, InputTypeError):
                raise error_with_context(error, context, hint) from error
            warnings.warn(f"{context}: skipped: {error}{hint}", stacklevel=3)
            return None
        meta = loaded.meta
        affine = torch.as_tensor(meta.pop(MetaKey.AFFINE), dtype=torch.float64)
        return MetaTensor(torch.from_numpy(loaded.array), affine=affine, meta=meta)


def _reference_meta(reference: Any) -> "Mapping[str, Any] | None":
    if isinstance(reference, MetaTensor):
        return reference.meta
    if isinstance(reference, tuple) and len(reference) == 2 and isinstance(reference[1], Mapping):
        return reference[1]
    return None


def _context(where: str, key: "Hashable | None", filename: Any, reference: Any) -> str:
    """``LoadDicomSegd[key 'label'] SEG '/a/seg.dcm' (source series '/a/ct')``."""
    text = where + (f"[key {key!r}]" if key is not None else "") + f" SEG {source_name(filename)}"
    meta = _reference_meta(reference)
    source = None if meta is None else meta.get(MetaKey.FILENAME_OR_OBJ)
    if source:
        text += f" (source series {source_name(source)})"
    return text


def _needs_series_hint(reference: Any) -> bool:
    """True when the reference image was not sorted by position by LoadDicomSeries."""
    meta = _reference_meta(reference)
    return meta is not None and meta.get(MetaKey.SLICE_ORDER) != MetaKey.SLICE_ORDER_BY_POSITION


def _grid(reference: Any) -> "ReferenceGrid | None":
    if reference is None or isinstance(reference, ReferenceGrid):
        return reference
    if isinstance(reference, tuple) and len(reference) == 2 and isinstance(reference[1], Mapping):
        return reference_from_image(*reference)
    return reference_from_image(reference)


LOAD_OPTIONS = options_of(LoadDicomSeg, SELECTION_OPTIONS)
"""Keyword options of :class:`LoadDicomSeg` (also accepted by ``LoadDicomSegd``,
``DicomSegDataset`` and ``load_transforms``): its signature's options and the
segment-selection keywords, derived (:func:`~monai_dicomseg.options.options_of`)."""


class LoadDicomSegd(MapTransform):
    """Dictionary wrapper of :class:`LoadDicomSeg`.

    Parameters
    ----------
    keys
        Keys holding SEG paths.
    ref_key
        Key of an image already loaded in the same dict (e.g. by
        :class:`~monai_dicomseg.transforms.load_series.LoadDicomSeriesd`, or
        ``LoadImaged(reader="PydicomReader")``): the label gets its spatial
        shape and affine, voxel for voxel. None uses the SEG's own geometry.
    allow_missing_keys
        As in MONAI.
    meta_key_postfix, ref_meta_key
        MONAI's meta-dict convention, used only when ``d[ref_key]`` is a plain
        array (``LoadImaged(image_only=False)`` of old pipelines): its metadata
        is read from ``d[ref_meta_key]``, default ``f"{ref_key}_{meta_key_postfix}"``.
    **kwargs
        Options of :class:`LoadDicomSeg` (:data:`LOAD_OPTIONS`), by keyword;
        an unknown name is a TypeError naming the closest valid one.

    With ``on_error="skip"`` a failure warns and the whole dict becomes an
    empty list ``[]``: MONAI's ``Compose`` maps the following transforms over
    it (zero times) and ``list_data_collate`` flattens lists of samples, so a
    broken case contributes no sample (use
    :func:`~monai_dicomseg.data.dataset.collate_skip_none` when the pipeline
    has no transform that returns lists, such as ``RandCropByPosNegLabeld``).
    Errors name the dict key, the SEG path and the source series.
    """

    def __init__(
        self,
        keys: KeysCollection,
        ref_key: "str | None" = None,
        allow_missing_keys: bool = False,
        meta_key_postfix: str = DEFAULT_POSTFIX,
        ref_meta_key: "str | None" = None,
        **kwargs: Any,
    ) -> None:
        check_options(kwargs, LOAD_OPTIONS, "LoadDicomSegd")
        super().__init__(keys, allow_missing_keys)
        self.ref_key = ref_key
        self.meta_key_postfix = meta_key_postfix
        self.ref_meta_key = ref_meta_key
        self.loader = LoadDicomSeg(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> "dict[Hashable, Any] | list":
        d = dict(data)
        reference: Any = None
        if self.ref_key is not None:
            if self.ref_key not in d:
                raise InputError(f"ref_key {self.ref_key!r} is not in the data dict; keys are {list(d)}")
            reference = d[self.ref_key]
            if not isinstance(reference, MetaTensor):
                meta_key = self.ref_meta_key or meta_dict_key(self.ref_key, self.meta_key_postfix)
                meta = d.get(meta_key)
                if not isinstance(meta, Mapping):
                    raise InputError(
                        f"d[{self.ref_key!r}] must be a loaded image (MetaTensor, or array with "
                        f"d[{meta_key!r}]); got {type(reference).__name__}"
                    )
                reference = (reference, meta)
        for key in self.key_iterator(d):
            result = self.loader.load(d[key], reference, key=key, where="LoadDicomSegd")
            if result is None:
                return []
            d[key] = result
        return d
