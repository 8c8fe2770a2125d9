"""MONAI datasets of slide patches with their SEG labels (torch + MONAI; images through OpenSlide 4).

:class:`SlidePatchSegDataset` is MONAI's ``PatchWSIDataset`` with the label
of each item read from the slide's tiled SEG instead of a class number: the
image patch comes from MONAI's ``WSIReader(backend="openslide")`` (OpenSlide
4 opens a DICOM WSI file and finds its other levels in the same folder), the
label patch from :class:`~monai_dicomseg.slides.SlideLabels` for exactly the
same pixels. Data items::

    {"image": "slide/level-0.dcm", "seg": ["seg-level-0.dcm", ...], "location": [top, left]}

with ``location`` the patch's **top-left** corner in level-0 pixels
(``center_location=False`` by default, unlike MONAI, because
:func:`~monai_dicomseg.slides.sampling.foreground_locations` returns corners).
Each output is ``{"image": MetaTensor (3, H, W), "label": MetaTensor (1, H, W)
labelmap or (S, H, W) stacked}``; both carry ``location``, ``level``,
``size``, ``spacing`` (mm, of the level), ``slide_id`` (the WSI's
SeriesInstanceUID) and ``seg_id`` (the SEG's SeriesInstanceUID), so the
default collate stacks them.

A slide on a DICOMweb server: ``"image"`` a ``dicomweb+`` URI (or
:class:`~monai_dicomseg.dicomweb.DicomWebSeries`) of the WSI series or one of
its instances, ``"seg"`` those of the SEG instances. OpenSlide cannot read
DICOMweb: the image patch is assembled from only the level's tiles under it,
retrieved with WADO-RS ``/frames/`` (:class:`~monai_dicomseg.slides.remote.DicomWebSlide`),
the label patch likewise from the SEG's frames; every frame is cached, so a
later epoch makes no request. The image metadata then has ``backend``
``"dicomweb"`` and ``path`` the URI.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor, PatchWSIDataset

from monai_dicomseg.errors import InputError
from monai_dicomseg.slides.geometry import SlideImage
from monai_dicomseg.slides.labels import LABEL_MODES, SlideLabels
from monai_dicomseg.slides.remote import DicomWebSlide, is_remote
from monai_dicomseg.slides.sampling import foreground_locations

__all__ = ["SlidePatchSegDataset", "slide_patch_datalist"]


class SlidePatchSegDataset(PatchWSIDataset):
    """Image + label patches of DICOM slides and their tiled SEGs (``PatchWSIDataset`` conventions).

    Parameters
    ----------
    data
        Items with ``"image"`` (a WSI instance path), ``"seg"`` (SEG level
        paths) and ``"location"`` (level-0 ``(top, left)``; optional
        ``"size"`` / ``"level"`` per item, as MONAI's ``WSIPatchKeys``).
    patch_size, patch_level, transform, center_location, additional_meta_keys, reader
        As MONAI's ``PatchWSIDataset`` (``reader`` default ``"openslide"``).
    label_mode
        ``"labelmap"`` ((1, H, W) segment numbers) or ``"stacked"`` ((S, H, W)).
    segment_numbers
        Segments to read (default all).
    """

    def __init__(self, data: Sequence[dict], patch_size: int | tuple[int, int] | None = None,
                 patch_level: int | None = None, transform: Callable | None = None, *,
                 label_mode: str = "labelmap", segment_numbers: Sequence[int] | None = None,
                 center_location: bool = False, additional_meta_keys: Sequence[str] | None = None,
                 reader: Any = "openslide", **kwargs: Any) -> None:
        if label_mode not in LABEL_MODES:
            raise InputError(f"label_mode must be one of {LABEL_MODES}; got {label_mode!r}")
        super().__init__(data, patch_size=patch_size, patch_level=patch_level, transform=transform,
                         include_label=True, center_location=center_location,
                         additional_meta_keys=additional_meta_keys, reader=reader, **kwargs)
        self.label_mode = label_mode
        self.segment_numbers = None if segment_numbers is None else [int(n) for n in segment_numbers]
        self._labels: dict[tuple, SlideLabels] = {}
        self._remote: dict[str, DicomWebSlide] = {}

    def remote_slide(self, image: Any) -> DicomWebSlide:
        """The (cached, per worker) :class:`~monai_dicomseg.slides.remote.DicomWebSlide` of a DICOMweb image."""
        key = str(image)
        if key not in self._remote:
            self._remote[key] = DicomWebSlide(image)
        return self._remote[key]

    def _get_data(self, sample: dict) -> tuple[np.ndarray, dict]:
        """The image patch and its metadata: MONAI's reader for a file, the slide's tiles for a DICOMweb URI."""
        if not is_remote(sample["image"]):
            return super()._get_data(sample)
        location, size, level = self._get_location(sample), self._get_size(sample), self._get_level(sample)
        patch = self.remote_slide(sample["image"]).get_patch(location, size, level)
        return patch, {"backend": "dicomweb", "original_channel_dim": 0, "spatial_shape": np.asarray(patch.shape[1:]),
                       "count": 1, "path": str(sample["image"]), "location": np.asarray(location),
                       "size": np.asarray(size), "level": int(level)}

    def slide_labels(self, sample: dict) -> SlideLabels:
        """The (cached, per worker) :class:`SlideLabels` of an item's slide and SEG."""
        segs = sample.get("seg")
        if not segs:
            raise InputError(f"each item needs 'seg' (the SEG level paths); got keys {sorted(sample)}")
        segs = [segs] if isinstance(segs, str) or hasattr(segs, "series_uid") else list(segs)
        key = (str(sample["image"]), *map(str, segs))
        if key not in self._labels:
            image = sample["image"]
            slide = self.remote_slide(image).image if is_remote(image) else SlideImage.from_path(image)
            self._labels[key] = SlideLabels(slide, segs)
        return self._labels[key]

    def _transform(self, index: int) -> Any:
        from monai.transforms import apply_transform

        sample: dict = self.data[index]
        image, metadata = self._get_data(sample)
        labels = self.slide_labels(sample)
        location, size, level = self._get_location(sample), self._get_size(sample), self._get_level(sample)
        patch = labels.get_patch(location, size, level, mode=self.label_mode, segment_numbers=self.segment_numbers)
        label = patch[None] if patch.ndim == 2 else np.moveaxis(patch, -1, 0)
        plane = labels.slide.level(level)
        extra = {"location": np.asarray(location), "level": int(level), "size": np.asarray(size),
                 "spacing": np.asarray(plane.pixel_spacing), "slide_id": plane.series_instance_uid,
                 "seg_id": labels.identity["seg_series_instance_uid"]}
        for key in self.additional_meta_keys:
            metadata[key] = sample[key]
        metadata.update(extra)
        output = {"image": MetaTensor(image, meta=metadata),
                  "label": MetaTensor(torch.as_tensor(np.ascontiguousarray(label)), meta=dict(extra))}
        return apply_transform(self.transform, output) if self.transform else output


def slide_patch_datalist(image: str, segs: Sequence[str], patch_size: int | Sequence[int], level: int = 0,
                         **sampling: Any) -> list[dict]:
    """Items of :class:`SlidePatchSegDataset` at the foreground patches of one slide.

    ``sampling`` goes to :func:`~monai_dicomseg.slides.sampling.foreground_locations`
    (``stride``, ``method``, ``verify``, ``segment_numbers`` ...); the SEG is
    not decoded at full resolution.
    """
    slide = DicomWebSlide(image).image if is_remote(image) else SlideImage.from_path(image)
    labels = SlideLabels(slide, list(segs))
    locations = foreground_locations(labels, patch_size, level, **sampling)
    size = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
    return [{"image": str(image), "seg": [str(s) for s in segs], "location": [int(r), int(c)],  # URIs as str
             "size": list(size), "level": int(level)} for r, c in locations]
