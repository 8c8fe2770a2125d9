"""``LoadDicomSeg`` / ``LoadDicomSegd``: SEG files to channel-first ``MetaTensor`` labels.

The array transform does the work (through :func:`~monai_dicomseg.io.segload.load_seg_array`);
the dictionary transform wraps it by composition and adds ``ref_key``: the
label is placed on the grid of an image loaded earlier in the same dict
(MONAI's ``LoadImaged`` with ``PydicomReader``/``ITKReader``, or
:class:`~monai_dicomseg.transforms.series.LoadDicomSeriesd`), so label and
image share spatial shape and affine and every voxel sits on its image voxel.
"""
from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

from monai_dicomseg.errors import DicomSegError, GeometryError, InputError, InputTypeError
from monai_dicomseg.io.segload import MODES, ReferenceGrid, load_seg_array
from monai_dicomseg.io.series import check_spatial_affine

__all__ = ["LoadDicomSeg", "LoadDicomSegd", "reference_from_image", "ON_ERROR"]

ON_ERROR = ("raise", "skip")

_FOR_KEYS = ("FrameOfReferenceUID", "00200052", "0020|0052")
_SERIES_KEYS = ("SeriesInstanceUID", "0020000E", "0020|000e", "0020|000E")


def _meta_uid(meta: Mapping[str, Any], keys: Sequence[str]) -> "str | None":
    for key in keys:
        value = meta.get(key)
        if isinstance(value, Mapping):  # pydicom JSON form: {"vr": "UI", "Value": [...]}
            value = (value.get("Value") or [None])[0]
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        if value:
            return str(value).strip()
    return None


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
        affine = meta.get("affine")
        shape = tuple(int(s) for s in np.shape(image)[-3:])
    if len(shape) != 3 or (hasattr(image, "ndim") and image.ndim not in (3, 4)):
        raise GeometryError(
            f"the reference image must be 3D, (X, Y, Z) or (channels, X, Y, Z); got shape {tuple(np.shape(image))}"
        )
    if affine is None:
        raise GeometryError("the reference image has no affine (meta['affine']); load it with LoadImage(d)")
    space = str(getattr(meta.get("space", "RAS"), "value", meta.get("space", "RAS"))).upper()
    return ReferenceGrid(
        affine=check_spatial_affine(affine, "reference affine"),
        spatial_shape=shape,  # type: ignore[arg-type]
        space=space,
        frame_of_reference_uid=_meta_uid(meta, _FOR_KEYS),
        series_instance_uid=_meta_uid(meta, _SERIES_KEYS),
    )


class LoadDicomSeg(Transform):
    """Load a DICOM SEG as a channel-first ``MetaTensor`` (MONAI order, RAS by default).

    Parameters
    ----------
    mode
        ``"stacked"`` -> ``(S, X, Y, Z)``, one channel per selected segment
        (channel -> segment numbers in ``meta["channel_segments"]``); uint8
        for BINARY/LABELMAP, float32 for FRACTIONAL. ``"labelmap"`` ->
        ``(1, X, Y, Z)`` of segment numbers (or ``label_map`` values).
    segment_numbers, segment_labels, segmented_property_types
        Keep only matching segments (any of them).
    label_map
        ``{key: value}`` harmonisation, key = segment label or property type
        (meaning / code value / coded concept) or segment number; see
        :func:`~monai_dicomseg.io.segments.plan_segments`.
    rescale_fractional
        FRACTIONAL values in [0, 1] (default) or stored integers.
    skip_overlap_checks
        In ``"labelmap"`` mode, resolve overlaps instead of raising.
    space
        ``"RAS"`` (default, as MONAI) or ``"LPS"`` when no reference is given.
    dtype
        Output dtype (numpy or torch); default per ``mode``.
    on_error
        ``"raise"`` or ``"skip"`` (warn and return None) for a missing or
        unreadable SEG, a SEG of another series / frame of reference, or an
        incompatible reference grid.

    Notes
    -----
    Without a reference the grid spans only the frames the SEG contains (its
    own geometry): use a reference to get the source image's full grid.
    Call with ``reference=`` an image loaded by MONAI (``MetaTensor``).
    """

    def __init__(
        self,
        mode: str = "stacked",
        *,
        segment_numbers: "Sequence[int] | None" = None,
        segment_labels: "Sequence[str] | None" = None,
        segmented_property_types: "Sequence[Any] | None" = None,
        label_map: "Mapping[Any, int] | None" = None,
        rescale_fractional: bool = True,
        skip_overlap_checks: bool = False,
        space: str = "RAS",
        dtype: Any = None,
        on_error: str = "raise",
    ) -> None:
        if mode not in MODES:
            raise InputError(f"mode must be one of {MODES}; got {mode!r}")
        if on_error not in ON_ERROR:
            raise InputError(f"on_error must be one of {ON_ERROR}; got {on_error!r}")
        if str(space).upper() not in ("RAS", "LPS"):
            raise InputError(f"space must be 'RAS' or 'LPS'; got {space!r}")
        self.mode = mode
        self.selection = {
            "segment_numbers": segment_numbers, "segment_labels": segment_labels,
            "segmented_property_types": segmented_property_types, "label_map": label_map,
        }
        self.rescale_fractional = rescale_fractional
        self.skip_overlap_checks = skip_overlap_checks
        self.space = str(space).upper()
        self.dtype = dtype
        self.on_error = on_error

    def _numpy_dtype(self) -> Any:
        if self.dtype is None or not isinstance(self.dtype, torch.dtype):
            return self.dtype
        return torch.empty((), dtype=self.dtype).numpy().dtype

    def __call__(self, filename: Any, reference: Any = None) -> "MetaTensor | None":
        """Load ``filename`` (path, file object or Dataset), optionally on ``reference``'s grid.

        Returns
        -------
        MetaTensor or None
            ``(channels, X, Y, Z)``; None when skipped (``on_error="skip"``).
        """
        try:
            grid = None
            if reference is not None:
                grid = reference if isinstance(reference, ReferenceGrid) else reference_from_image(reference)
            loaded = load_seg_array(
                filename, mode=self.mode, rescale_fractional=self.rescale_fractional,
                skip_overlap_checks=self.skip_overlap_checks, reference=grid, space=self.space,
                dtype=self._numpy_dtype(), **self.selection,
            )
        except (DicomSegError, OSError) as error:
            if self.on_error == "raise" or isinstance(error, (InputTypeError,)):
                raise
            warnings.warn(f"LoadDicomSeg skipped {filename!r}: {error}", stacklevel=2)
            return None
        meta = loaded.meta
        affine = torch.as_tensor(meta.pop("affine"), dtype=torch.float64)
        return MetaTensor(torch.from_numpy(loaded.array), affine=affine, meta=meta)


class LoadDicomSegd(MapTransform):
    """Dictionary wrapper of :class:`LoadDicomSeg`.

    Parameters
    ----------
    keys
        Keys holding SEG paths.
    ref_key
        Key of an image already loaded in the same dict (e.g. by
        ``LoadImaged(reader="PydicomReader")``): the label gets its spatial
        shape and affine, voxel for voxel. None uses the SEG's own geometry.
    allow_missing_keys
        As in MONAI.
    **kwargs
        Passed to :class:`LoadDicomSeg` by keyword.

    With ``on_error="skip"`` a failure warns and the whole dict becomes
    None (filter it with :func:`~monai_dicomseg.data.dataset.collate_skip_none`).
    """

    def __init__(
        self,
        keys: KeysCollection,
        ref_key: "str | None" = None,
        allow_missing_keys: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.ref_key = ref_key
        self.loader = LoadDicomSeg(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> "dict[Hashable, Any] | None":
        d = dict(data)
        reference = None
        if self.ref_key is not None:
            if self.ref_key not in d:
                raise InputError(f"ref_key {self.ref_key!r} is not in the data dict; keys are {list(d)}")
            reference = d[self.ref_key]
            if not isinstance(reference, MetaTensor):
                meta = d.get(f"{self.ref_key}_meta_dict")
                if meta is None:
                    raise InputError(
                        f"d[{self.ref_key!r}] must be a loaded image (MetaTensor, or array with "
                        f"'{self.ref_key}_meta_dict'); got {type(reference).__name__}"
                    )
                try:
                    reference = reference_from_image(reference, meta)
                except GeometryError:
                    if self.loader.on_error == "raise":
                        raise
                    warnings.warn(f"LoadDicomSegd: bad reference {self.ref_key!r}", stacklevel=2)
                    return None
        for key in self.key_iterator(d):
            result = self.loader(d[key], reference)
            if result is None:
                return None
            d[key] = result
        return d
