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
from monai_dicomseg.data.vocabulary import (
    NUMBERINGS,
    LabelVocabulary,
    build_vocabulary,
    channel_def_from_label_map,
    check_label_map,
)
from monai_dicomseg.errors import InputError
from monai_dicomseg.io.segload import DEFAULT_MODE
from monai_dicomseg.io.segments import SELECTION_OPTIONS, SegmentSelection
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
    numbering
        Without ``label_map``: ``"dataset"`` (default) or ``"per_file"``
        (:data:`~monai_dicomseg.data.vocabulary.NUMBERINGS`, see below).

    Each item is a dict with ``image`` ``(1, X, Y, Z)`` float32 and ``label``
    (``(1, X, Y, Z)`` in ``"labelmap"`` mode, ``(S, X, Y, Z)`` stacked),
    ``MetaTensor`` s sharing affine and shape; with ``on_error="skip"`` a
    broken case is ``[]`` (zero samples: use :func:`collate_skip_none`, or a
    cropping transform that returns lists). Every metadata key collates, so
    ``DataLoader(batch_size>1)`` works across SEGs with different segments
    (:data:`~monai_dicomseg.io.segload.META_KEYS`). An unknown keyword option
    is a TypeError naming the closest valid one.

    Label values (:mod:`monai_dicomseg.data.vocabulary`): with ``label_map``,
    its keys are first checked against every readable SEG header of the dataset
    (:func:`~monai_dicomseg.data.vocabulary.check_label_map`: a key naming no
    segment anywhere, or a SEG named by no key, is an InputError). Without
    one, ``numbering="dataset"`` (default) derives one value per structure
    (coded type + laterality, label as fallback) for the whole dataset and
    loads every item with it as ``label_map``, so a structure has the same
    value in every item; ``numbering="per_file"`` keeps each SEG's own
    segment numbers (the meaning of a value may then differ between items).
    With a segment selector (``segment_numbers=`` ...) the selected segments
    keep their numbers, which must then be consistent across the dataset.

    Attributes
    ----------
    label_map
        The mapping every item is loaded with (None with ``"per_file"``
        numbering or a selector); each item's ``meta["labels"]`` holds it as JSON.
    vocabulary
        The :class:`~monai_dicomseg.data.vocabulary.LabelVocabulary` derived
        without ``label_map`` (None otherwise).
    channel_def
        ``{"0": "background", "1": "liver", ...}`` (a bundle's ``channel_def``).
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
        numbering: str = "dataset",
        **seg_kwargs: Any,
    ) -> None:
        check_options(seg_kwargs, {*LOAD_OPTIONS, "transform", "image_key", "label_key", "image_reader",
                                   "numbering"}, "DicomSegDataset")
        if isinstance(data, (str, os.PathLike)):
            datalist = create_datalist(data, image_key=image_key, label_key=label_key)
        else:
            datalist = [dict(item) for item in data]
        for index, item in enumerate(datalist):
            if image_key not in item or label_key not in item:
                raise InputError(f"data[{index}] must have keys {image_key!r} and {label_key!r}; got {sorted(map(str, item))}")
        extra: list[Callable] = []
        if transform is not None:
            extra = list(transform) if isinstance(transform, Sequence) else [transform]
        self.label_key, self.on_error, self.numbering = label_key, on_error, numbering
        self.vocabulary: "LabelVocabulary | None" = None
        self.label_map = self._label_map(datalist, label_map, seg_kwargs)
        self.load = Compose(load_transforms(image_key, label_key, image_reader=image_reader, mode=mode,
                                            label_map=self.label_map, on_error=on_error, **seg_kwargs))
        self.extra = Compose(extra)
        super().__init__(datalist, Compose([*self.load.transforms, *extra]))

    def _label_map(self, datalist: Sequence[Any], label_map: "Mapping[Any, int] | None",
                   seg_kwargs: Mapping[str, Any]) -> "Mapping[Any, int] | None":
        """The ``label_map`` every item is loaded with (class docstring); checks across the dataset."""
        if self.numbering not in NUMBERINGS:
            raise InputError(f"numbering must be one of {NUMBERINGS}; got {self.numbering!r}")
        skip = True  # an unreadable SEG is warned about once here and reported by the loader, as before
        if label_map is not None:
            if self.numbering == "per_file":
                raise InputError("numbering='per_file' cannot be combined with label_map (the label_map sets "
                                 "the values)")
            return check_label_map(datalist, label_map, self.label_key, skip_unreadable=skip) if datalist \
                else label_map
        if self.numbering == "per_file" or not datalist:
            return None
        selectors = {k: seg_kwargs[k] for k in SELECTION_OPTIONS if seg_kwargs.get(k) is not None}
        selection = seg_kwargs.get("selection")
        if selection is not None and selection.label_map is not None:
            check_label_map(datalist, selection.label_map, self.label_key, skip_unreadable=skip)
            return None
        if selection is not None or selectors:
            selection = selection if selection is not None else SegmentSelection(**selectors)
            self.vocabulary = build_vocabulary(datalist, self.label_key, selection=selection,
                                               skip_unreadable=skip)
            if self.vocabulary.renumbered:
                raise InputError(
                    "the selected segments are numbered differently across the SEGs of the dataset, so a value "
                    f"would mean different structures: {_numbers_table(self.vocabulary)}; pass "
                    "label_map={name: value} instead of the selector, or numbering='per_file'")
            return None
        self.vocabulary = build_vocabulary(datalist, self.label_key, skip_unreadable=skip)
        return self.vocabulary.label_map

    @property
    def channel_def(self) -> dict[str, str]:
        """``{"0": "background", "<value>": "<name>", ...}`` of this dataset's label values.

        With ``numbering="per_file"`` (no common meaning), an InputError.
        """
        if self.label_map is not None:
            return channel_def_from_label_map(self.label_map)
        if self.vocabulary is not None:
            return self.vocabulary.channel_def
        raise InputError("channel_def: numbering='per_file' gives each SEG's own numbers, which have no "
                         "dataset-wide meaning; use numbering='dataset' or a label_map")


def _numbers_table(vocabulary: "LabelVocabulary") -> str:
    return "; ".join(f"{row['name']!r}: segment numbers {row['segment_numbers']}" for row in vocabulary.structures)
