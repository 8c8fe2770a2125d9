"""``DicomSegDataset``: (image series, SEG) pairs as training samples.

A thin :class:`monai.data.Dataset` whose transform starts with the loading
transforms of this package (:func:`load_transforms`): the image series sorted
by position (:class:`~monai_dicomseg.transforms.load_series.LoadDicomSeriesd`) and
the SEG placed on the image's grid
(:class:`~monai_dicomseg.transforms.load.LoadDicomSegd` with ``ref_key``).
Everything is plain, picklable Python objects and deterministic, so the same
``data``/``transform`` work with ``CacheDataset``/``PersistentDataset``,
``DataLoader(num_workers>0)`` and ``DistributedSampler``::

    ds = DicomSegDataset(root, transform=[RandSpatialCropd(...)])
    cached = monai.data.CacheDataset(ds.data, ds.transform)   # loads cached
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from monai.data import Dataset, list_data_collate
from monai.transforms import Compose

from monai_dicomseg.data.datalist import create_datalist
from monai_dicomseg.errors import InputError
from monai_dicomseg.io.segload import DEFAULT_MODE
from monai_dicomseg.options import check_options
from monai_dicomseg.transforms.load import LOAD_OPTIONS, LoadDicomSegd
from monai_dicomseg.transforms.load_series import LoadDicomSeriesd

__all__ = ["DicomSegDataset", "load_transforms", "collate_skip_none"]


def load_transforms(
    image_key: str = "image",
    label_key: str = "label",
    *,
    image_reader: str = "dicomseg",
    mode: str = DEFAULT_MODE,
    label_map: "Mapping[Any, int] | None" = None,
    on_error: str = "raise",
    **seg_kwargs: Any,
) -> list[Callable]:
    """The loading transforms: image series, then the SEG on the image's grid.

    Parameters
    ----------
    image_key, label_key
        Keys of the datalist entries (see :func:`~monai_dicomseg.data.datalist.create_datalist`).
    image_reader
        ``"dicomseg"`` (:class:`~monai_dicomseg.transforms.load_series.LoadDicomSeriesd`,
        sorted by position) or a MONAI reader name such as ``"PydicomReader"``
        (``LoadImaged(..., ensure_channel_first=True)``).
    mode, label_map, on_error, **seg_kwargs
        Passed to :class:`~monai_dicomseg.transforms.load.LoadDicomSegd`
        (``on_error`` also to ``LoadDicomSeriesd``, so a broken series is skipped too)
        (options :data:`~monai_dicomseg.transforms.load.LOAD_OPTIONS`). The
        default ``mode="labelmap"`` gives one label channel whatever the
        segment count, so that batches of different SEGs collate, and is
        MONAI's label convention (``DiceLoss(to_onehot_y=True)``).

    Raises
    ------
    TypeError
        (:class:`~monai_dicomseg.errors.InputTypeError`) for an unknown
        keyword option, naming the closest valid one.
    """
    check_options(seg_kwargs, {*LOAD_OPTIONS, "image_key", "label_key", "image_reader"}, "load_transforms")
    if image_reader == "dicomseg":
        image_loader: Callable = LoadDicomSeriesd(image_key, on_error=on_error)
    else:
        from monai.transforms import LoadImaged

        image_loader = LoadImaged(image_key, reader=image_reader, ensure_channel_first=True, image_only=True)
    return [image_loader,
            LoadDicomSegd(label_key, ref_key=image_key, mode=mode, label_map=label_map, on_error=on_error,
                          **seg_kwargs)]


def collate_skip_none(batch: Sequence[Any]) -> Any:
    """``list_data_collate`` after dropping the samples a skipping loader left out.

    A sample skipped by ``LoadDicomSegd(on_error="skip")`` is ``[]`` (or None
    from older pipelines); both are dropped, lists of samples (from
    ``RandCropByPosNegLabeld`` and the like) are flattened as
    ``list_data_collate`` does. Returns None when nothing is left.
    """
    kept: list[Any] = []
    for item in batch:
        if item is None:
            continue
        if isinstance(item, (list, tuple)):
            kept.extend(sample for sample in item if sample is not None)
        else:
            kept.append(item)
    if not kept:
        return None
    return list_data_collate(kept)


class DicomSegDataset(Dataset):
    """Dataset of (image series, SEG) pairs, image and label on the same grid.

    Parameters
    ----------
    data
        A folder tree (scanned with :func:`~monai_dicomseg.data.datalist.create_datalist`)
        or a datalist of dicts with ``image_key`` and ``label_key``.
    transform
        Further transforms (callable or sequence) applied after loading.
    image_key, label_key, image_reader, mode, label_map, on_error, **seg_kwargs
        See :func:`load_transforms`.

    Each item is a dict with ``image`` ``(1, X, Y, Z)`` float32 and ``label``
    (``(1, X, Y, Z)`` in ``"labelmap"`` mode, ``(S, X, Y, Z)`` stacked),
    ``MetaTensor`` s sharing affine and shape; with ``on_error="skip"`` a
    broken case is ``[]`` (zero samples: use :func:`collate_skip_none`, or a
    cropping transform that returns lists). Every metadata key collates, so
    ``DataLoader(batch_size>1)`` works across SEGs with different segments
    (:data:`~monai_dicomseg.io.segload.META_KEYS`). An unknown keyword option
    is a TypeError naming the closest valid one.
    """

    def __init__(
        self,
        data: "str | os.PathLike[str] | Sequence[Mapping[str, Any]]",
        transform: "Callable | Sequence[Callable] | None" = None,
        *,
        image_key: str = "image",
        label_key: str = "label",
        image_reader: str = "dicomseg",
        mode: str = DEFAULT_MODE,
        label_map: "Mapping[Any, int] | None" = None,
        on_error: str = "raise",
        **seg_kwargs: Any,
    ) -> None:
        check_options(seg_kwargs, {*LOAD_OPTIONS, "transform", "image_key", "label_key", "image_reader"},
                      "DicomSegDataset")
        if isinstance(data, (str, os.PathLike)):
            datalist = create_datalist(data, image_key=image_key, label_key=label_key)
        else:
            datalist = [dict(item) for item in data]
        for index, item in enumerate(datalist):
            if image_key not in item or label_key not in item:
                raise InputError(f"data[{index}] must have keys {image_key!r} and {label_key!r}; got {sorted(item)}")
        extra: list[Callable] = []
        if transform is not None:
            extra = list(transform) if isinstance(transform, Sequence) else [transform]
        self.load = Compose(load_transforms(image_key, label_key, image_reader=image_reader, mode=mode,
                                            label_map=label_map, on_error=on_error, **seg_kwargs))
        self.extra = Compose(extra)
        super().__init__(datalist, Compose([*self.load.transforms, *extra]))
