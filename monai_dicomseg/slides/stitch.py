"""Patch-wise model outputs stitched into a tiled SEG on a slide level's geometry, streamed.

:class:`SlideSegStitcher` accumulates channel-first patches ``(C, H, W)`` at
MONAI ``(top, left)`` level-0 locations into two disk-backed arrays on the
level's total pixel matrix (per-channel sums, float32, and a coverage count),
then hands the SEG writer an array-like that computes each tile from them
when the writer asks for it (``tile_pixel_array=True``): the stitched matrix
is never held in memory.

Overlap rule: every output pixel is the **mean of the probabilities** of the
patches covering it (each patch weight 1). Then, per pixel:

* FRACTIONAL: the mean of each segment channel (quantised by the writer);
* BINARY: ``mean >= threshold`` per segment channel (segments may overlap);
* LABELMAP: the channel with the highest mean (ties: the lower channel).
  With ``background_channel=True`` channel 0 is background (label 0) and
  channel ``k`` is segment ``k``; without one, channel ``k`` is segment
  ``k + 1`` and a pixel whose highest mean is below ``threshold`` is 0.

Integer label patches (:meth:`SlideSegStitcher.add_labels`) are added as
one-hot probabilities, so overlaps vote (majority, ties to the lower label).
Pixels no patch covered are 0.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pydicom.dataset import Dataset

from monai_dicomseg.errors import InputError, InputTypeError
from monai_dicomseg.seg.mapped import release_leading_range
from monai_dicomseg.slides.geometry import SlideImage, level_region

__all__ = ["SlideSegStitcher", "STITCH_TYPES"]

STITCH_TYPES = ("BINARY", "FRACTIONAL", "LABELMAP")


class _Stitched:
    """The stitched ``(R, C)`` label map or ``(1, R, C, S)`` stack, computed per requested block."""

    def __init__(self, stitcher: "SlideSegStitcher", segmentation_type: str, threshold: float) -> None:
        self.stitcher, self.kind, self.threshold = stitcher, segmentation_type, float(threshold)
        rows, columns, channels = stitcher.sums.shape
        segments = channels - 1 if stitcher.background_channel else channels
        # stacked: (1, R, C, S), one total pixel matrix (an (R, C, S) array would read as R frames)
        self.shape = (rows, columns) if segmentation_type == "LABELMAP" else (1, rows, columns, segments)
        self.dtype = np.dtype(np.float32 if segmentation_type == "FRACTIONAL" else np.uint8)
        self.ndim = len(self.shape)
        self._band = -1

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if self.kind != "LABELMAP":
            if not key or not isinstance(key[0], (int, np.integer)) or int(key[0]) != 0:
                raise InputTypeError(f"the stitched stack is (1, R, C, S): index it [0, rows, columns]; got {key!r}")
            key = key[1:]
        rows, columns = (list(key) + [slice(None)] * 2)[:2]
        stitcher = self.stitcher
        if isinstance(rows, slice) and rows.start is not None and rows.start != self._band:
            if self._band >= 0:  # the writer reads band by band: the previous band is done
                release_leading_range(stitcher.sums, self._band, rows.start)
                release_leading_range(stitcher.counts, self._band, rows.start)
            self._band = rows.start
        sums = np.asarray(stitcher.sums[rows, columns], np.float32)
        counts = np.asarray(stitcher.counts[rows, columns], np.float32)[..., None]
        mean = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
        if stitcher.background_channel and self.kind != "LABELMAP":
            mean = mean[..., 1:]
        if self.kind == "FRACTIONAL":
            return np.clip(mean, 0.0, 1.0)
        if self.kind == "BINARY":
            return (mean >= self.threshold).astype(np.uint8)
        best = mean.argmax(axis=-1)
        if stitcher.background_channel:
            return best.astype(np.uint8)
        return np.where(mean.max(axis=-1) >= self.threshold, best + 1, 0).astype(np.uint8)


class SlideSegStitcher:
    """Accumulate patch outputs on one slide level and write them as a tiled SEG.

    Parameters
    ----------
    slide
        The slide (:class:`SlideImage`, with its ``path``) or a path to it.
    channels
        Channels of the model output ``C`` (including the background channel if any).
    level
        Image level the patches are at (the SEG gets that level's geometry).
    background_channel
        Channel 0 is background (softmax over background + segments).
    directory
        Where the accumulators live (a temporary folder by default, removed by :meth:`close`).

    Notes
    -----
    Disk use: ``R x C x (4 channels + 2)`` bytes for the level's ``R x C``
    matrix. Resident memory stays about one band of tiles while writing.
    """

    def __init__(self, slide: "SlideImage | str | Path", channels: int, level: int = 0, *,
                 background_channel: bool = False, directory: "str | Path | None" = None) -> None:
        self.slide = slide if isinstance(slide, SlideImage) else SlideImage.from_path(slide)
        if not isinstance(channels, (int, np.integer)) or channels < (2 if background_channel else 1):
            raise InputError(f"channels must be an int >= {2 if background_channel else 1}; got {channels!r}")
        self.level, self.background_channel = int(level), bool(background_channel)
        plane = self.slide.level(self.level)
        self._tmp = None if directory is not None else tempfile.TemporaryDirectory(prefix="slide-stitch-")
        folder = Path(directory if directory is not None else self._tmp.name)  # type: ignore[union-attr]
        self.sums = np.lib.format.open_memmap(folder / "sums.npy", "w+", np.float32, (plane.rows, plane.columns, int(channels)))
        self.counts = np.lib.format.open_memmap(folder / "counts.npy", "w+", np.uint16, (plane.rows, plane.columns))

    def add(self, location: Sequence[int], patch: Any) -> None:
        """Add one channel-first ``(C, H, W)`` probability patch (numpy or torch) at ``location`` (level 0, top-left)."""
        array = np.asarray(patch.detach().cpu().numpy() if hasattr(patch, "detach") else patch, np.float32)
        if array.ndim != 3 or array.shape[0] != self.sums.shape[2]:
            raise InputError(f"patch must be (C, H, W) with C = {self.sums.shape[2]}; got shape {array.shape}")
        row, column, height, width = level_region(location, array.shape[1:], self.slide.downsample(self.level))
        r0, c0 = max(row, 0), max(column, 0)
        r1, c1 = min(row + height, self.sums.shape[0]), min(column + width, self.sums.shape[1])
        if r0 >= r1 or c0 >= c1:
            return
        block = array[:, r0 - row:r1 - row, c0 - column:c1 - column].transpose(1, 2, 0)
        self.sums[r0:r1, c0:c1] += block
        self.counts[r0:r1, c0:c1] += 1

    def add_labels(self, location: Sequence[int], labels: Any) -> None:
        """Add an integer ``(H, W)`` or ``(1, H, W)`` label patch as one-hot probabilities (majority vote)."""
        array = np.asarray(labels.detach().cpu().numpy() if hasattr(labels, "detach") else labels)
        array = array[0] if array.ndim == 3 and array.shape[0] == 1 else array
        if array.ndim != 2 or array.dtype.kind not in "biu":
            raise InputTypeError(f"labels must be an integer (H, W) patch; got {array.dtype} {array.shape}")
        channels = self.sums.shape[2]
        first = 0 if self.background_channel else 1
        if array.size and (array.min() < 0 or array.max() > channels - 1 + first):
            raise InputError(f"labels must be in [0, {channels - 1 + first}]; got [{array.min()}, {array.max()}]")
        self.add(location, (array[None] == np.arange(first, channels + first)[:, None, None]).astype(np.float32))

    def stitched(self, segmentation_type: str, threshold: float = 0.5) -> _Stitched:
        """The stitched matrix as a lazy array-like (what :meth:`write` encodes); ``[...]`` computes a block."""
        if segmentation_type not in STITCH_TYPES:
            raise InputError(f"segmentation_type must be one of {STITCH_TYPES}; got {segmentation_type!r}")
        return _Stitched(self, segmentation_type, threshold)

    def write(self, path: "str | Path", segmentation_type: str, segment_descriptions: Sequence[Any], *,
              source_image: Dataset | None = None, threshold: float = 0.5, **kwargs: Any) -> Path:
        """Encode the stitched outputs as a tiled SEG of the level's instance and save it to ``path``.

        Parameters
        ----------
        segmentation_type
            ``"BINARY"``, ``"FRACTIONAL"`` or ``"LABELMAP"``.
        segment_descriptions
            One per segment (channels without the background channel).
        source_image
            The level's WSI instance (default: read from the slide's folder,
            headers only, by SOP Instance UID).
        kwargs
            Further :class:`~monai_dicomseg.seg.Segmentation` arguments
            (``series_instance_uid``, ``manufacturer``, ``dimension_organization_type`` ...).
        """
        from monai_dicomseg.seg.segmentation import Segmentation

        source = source_image if source_image is not None else self._source_header()
        defaults = dict(series_instance_uid=None, series_number=1, sop_instance_uid=None, instance_number=1,
                        manufacturer="monai_dicomseg", manufacturer_model_name="SlideSegStitcher",
                        software_versions="0", device_serial_number="0")
        arguments = {**defaults, **kwargs}
        from monai_dicomseg.uid import UID

        arguments["series_instance_uid"] = arguments["series_instance_uid"] or UID()
        arguments["sop_instance_uid"] = arguments["sop_instance_uid"] or UID()
        seg = Segmentation(source_images=[source], pixel_array=self.stitched(segmentation_type, threshold),
                           segmentation_type=segmentation_type, segment_descriptions=segment_descriptions,
                           tile_pixel_array=True, **arguments)
        seg.save_as(path)
        return Path(path)

    def _source_header(self) -> Dataset:
        import pydicom

        wanted = self.slide.level(self.level).sop_instance_uid
        folder = self.slide.path if self.slide.path is None or self.slide.path.is_dir() else self.slide.path.parent
        if folder is None:
            raise InputError("source_image is required when the slide was not read from a path")
        for file in sorted(folder.iterdir()):
            try:
                header = pydicom.dcmread(file, stop_before_pixels=True)
            except Exception:  # not DICOM
                continue
            if str(header.get("SOPInstanceUID", "")) == wanted:
                return header
        raise InputError(f"the instance {wanted} of level {self.level} is not in {folder}")

    def close(self) -> None:
        """Drop the accumulators (and their temporary folder)."""
        del self.sums, self.counts
        if self._tmp is not None:
            self._tmp.cleanup()
