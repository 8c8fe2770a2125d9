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
from typing import Any
from collections.abc import Sequence

import numpy as np
from pydicom.dataset import Dataset

from monai_dicomseg.errors import InputError, InputTypeError
from monai_dicomseg.seg.mapped import release_leading_range
from monai_dicomseg.slides.geometry import SlideImage, level_region
from monai_dicomseg.enums import BINARY as _BINARY, FRACTIONAL as _FRACTIONAL, LABELMAP as _LABELMAP

__all__ = ["SlideSegStitcher", "STITCH_TYPES"]

STITCH_TYPES = (_BINARY, _FRACTIONAL, _LABELMAP)


class _Stitched:
    """The stitched ``(R, C)`` label map or ``(1, R, C, S)`` stack, computed per requested block.

    ``shape`` (rows, columns) smaller than the accumulators gives a pyramid
    level: the full-resolution result resized as
    :func:`~monai_dicomseg.seg.pyramid.create_segmentation_pyramid` resizes
    (nearest for BINARY / LABELMAP, which commutes with the per-pixel rule;
    antialiased linear of the FRACTIONAL fractions), block by block.
    """

    def __init__(self, stitcher: "SlideSegStitcher", segmentation_type: str, threshold: float,
                 shape: "tuple[int, int] | None" = None) -> None:
        self.stitcher, self.kind, self.threshold = stitcher, segmentation_type, float(threshold)
        rows, columns, channels = stitcher.sums.shape
        segments = channels - 1 if stitcher.background_channel else channels
        out_rows, out_columns = (rows, columns) if shape is None else (int(shape[0]), int(shape[1]))
        # stacked: (1, R, C, S), one total pixel matrix (an (R, C, S) array would read as R frames)
        self.shape: tuple[int, ...] = (out_rows, out_columns) if segmentation_type == _LABELMAP \
            else (1, out_rows, out_columns, segments)
        self.dtype = np.dtype(np.float32 if segmentation_type == _FRACTIONAL else np.uint8)
        self.ndim = len(self.shape)
        self._band = -1
        self._maps: "list[tuple[np.ndarray, np.ndarray | None]] | None" = None
        if (out_rows, out_columns) != (rows, columns):
            from monai_dicomseg.seg.pyramid import linear_weights, nearest_indices

            if segmentation_type == _FRACTIONAL:
                self._maps = [linear_weights(rows, out_rows), linear_weights(columns, out_columns)]
            else:
                self._maps = [(nearest_indices(rows, out_rows), None), (nearest_indices(columns, out_columns), None)]

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if self.kind != _LABELMAP:
            if not key or not isinstance(key[0], (int, np.integer)) or int(key[0]) != 0:
                raise InputTypeError(f"the stitched stack is (1, R, C, S): index it [0, rows, columns]; got {key!r}")
            key = key[1:]
        rows, columns = (list(key) + [slice(None)] * 2)[:2]
        out_rows, out_columns = (self.shape[0], self.shape[1]) if self.kind == _LABELMAP else self.shape[1:3]
        if not isinstance(rows, slice) or not isinstance(columns, slice) \
                or (rows.step or 1) != 1 or (columns.step or 1) != 1:
            raise InputTypeError(f"index the stitched matrix with unit-step slices; got {key!r}")
        r0, r1, _ = rows.indices(out_rows)
        c0, c1, _ = columns.indices(out_columns)
        if self._maps is None:
            return self._rule(self._mean(r0, r1, c0, c1))
        row_map, column_map = self._maps
        if self.kind != _FRACTIONAL:  # nearest: the rule at the sampled accumulator pixels
            ri, ci = row_map[0][r0:r1], column_map[0][c0:c1]
            lo, clo = (int(ri.min()), int(ci.min())) if len(ri) and len(ci) else (0, 0)
            mean = self._mean(lo, int(ri.max(initial=lo)) + 1, clo, int(ci.max(initial=clo)) + 1)
            return self._rule(mean[np.ix_(ri - lo, ci - clo)])
        return self._linear(row_map, column_map, r0, r1, c0, c1)

    def _linear(self, row_map: tuple, column_map: tuple, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Antialiased linear resize of the fractions, as ``resize_linear`` (columns, then rows)."""
        (ri, rw), (ci, cw) = (row_map[0][r0:r1], row_map[1][r0:r1]), (column_map[0][c0:c1], column_map[1][c0:c1])
        lo, hi, clo, chi = int(ri.min()), int(ri.max()) + 1, int(ci.min()), int(ci.max()) + 1
        values = self._rule(self._mean(lo, hi, clo, chi)).astype(np.float64)
        horizontal = np.einsum("rck...,ck->rc...", values[:, ci - clo], cw)
        return np.einsum("rkc...,rk->rc...", horizontal[ri - lo], rw).astype(np.float32)

    def _mean(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """``(h, w, C)`` float32 mean probabilities of accumulator rows ``r0:r1``, columns ``c0:c1``."""
        stitcher = self.stitcher
        if r0 != self._band:
            if 0 <= self._band < r0:  # the writer reads band by band: the rows above are done
                release_leading_range(stitcher.sums, self._band, r0)
                release_leading_range(stitcher.counts, self._band, r0)
            self._band = r0
        sums = np.asarray(stitcher.sums[r0:r1, c0:c1], np.float32)
        counts = np.asarray(stitcher.counts[r0:r1, c0:c1], np.float32)[..., None]
        return np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)

    def _rule(self, mean: np.ndarray) -> np.ndarray:
        """The overlap rule (module docstring) applied to ``(..., C)`` mean probabilities."""
        if self.stitcher.background_channel and self.kind != _LABELMAP:
            mean = mean[..., 1:]
        if self.kind == _FRACTIONAL:
            return np.clip(mean, 0.0, 1.0)
        if self.kind == _BINARY:
            return (mean >= self.threshold).astype(np.uint8)
        best = mean.argmax(axis=-1)
        if self.stitcher.background_channel:
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
    matrix. Resident memory stays about one patch band while adding (each
    :meth:`add` hands its rows of the accumulators back to the page cache)
    and about one band of tiles while writing.
    """

    def __init__(self, slide: "SlideImage | str | Path", channels: int, level: int = 0, *,
                 background_channel: bool = False, directory: "str | Path | None" = None) -> None:
        self.slide = slide if isinstance(slide, SlideImage) else SlideImage.from_path(slide)
        if not isinstance(channels, (int, np.integer)) or channels < (2 if background_channel else 1):
            raise InputError(f"channels must be an int >= {2 if background_channel else 1}; got {channels!r}")
        self.level, self.background_channel = int(level), bool(background_channel)
        plane = self.slide.level(self.level)
        self._tmp = None if directory is not None else tempfile.TemporaryDirectory(prefix="slide-stitch-")
        folder = Path(directory if directory is not None else self._tmp.name)  # type: ignore[union-attr]  # _tmp is a TemporaryDirectory exactly when directory is None
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
        # the sums stay in the file (page cache), not in this process: resident memory stays one window band
        release_leading_range(self.sums, r0, r1)
        release_leading_range(self.counts, r0, r1)

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

    def stitched(self, segmentation_type: str, threshold: float = 0.5, level: "int | None" = None) -> _Stitched:
        """The stitched matrix as a lazy array-like (what :meth:`write` encodes); ``[...]`` computes a block.

        ``level`` (default: the stitcher's level) may be a coarser slide level:
        the stitched result resized to it (the pyramid levels of :meth:`write`).
        """
        if segmentation_type not in STITCH_TYPES:
            raise InputError(f"segmentation_type must be one of {STITCH_TYPES}; got {segmentation_type!r}")
        level = self.level if level is None else level
        if not isinstance(level, (int, np.integer)) or level < self.level:
            raise InputError(f"level must be an int >= the stitcher's level {self.level}; got {level!r}")
        plane = self.slide.level(int(level))
        return _Stitched(self, segmentation_type, threshold, (plane.rows, plane.columns))

    def write(self, path: "str | Path", segmentation_type: str, segment_descriptions: Sequence[Any], *,
              source_image: "Dataset | Sequence[Dataset] | None" = None, threshold: float = 0.5,
              pyramid_levels: "int | None" = None, **kwargs: Any) -> "Path | list[Path]":
        """Encode the stitched outputs as a tiled SEG of the level's instance and save it to ``path``.

        Parameters
        ----------
        segmentation_type
            ``"BINARY"``, ``"FRACTIONAL"`` or ``"LABELMAP"``.
        segment_descriptions
            One per segment (channels without the background channel).
        source_image
            The level's WSI instance, or with ``pyramid_levels`` one instance
            per written level (default: read from the slide's folder, headers
            only, by SOP Instance UID).
        pyramid_levels
            Write a SEG pyramid of this many levels: SEG level ``k`` is on
            slide level ``level + k`` (which must exist), holds the stitched
            result resized as :func:`~monai_dicomseg.seg.create_segmentation_pyramid`
            resizes a source pyramid (nearest for BINARY / LABELMAP,
            antialiased linear for FRACTIONAL), one series, one PyramidUID,
            instance numbers ``1..n``; each level is streamed tile by tile.
            Files: ``path`` (level 0), then ``<stem>-level-<k><suffix>``.
        kwargs
            Further :class:`~monai_dicomseg.seg.Segmentation` arguments
            (``series_instance_uid``, ``manufacturer``, ``dimension_organization_type``,
            ``pyramid_label`` ...).

        Returns
        -------
        pathlib.Path or list[pathlib.Path]
            The file; with ``pyramid_levels``, the files finest first.
        """
        from monai_dicomseg.uid import UID

        count = 1 if pyramid_levels is None else pyramid_levels
        levels = self._pyramid_levels(count, kwargs)
        sources = self._sources(source_image, levels)
        defaults = dict(series_instance_uid=None, series_number=1, sop_instance_uid=None, instance_number=1,
                        manufacturer="monai_dicomseg", manufacturer_model_name="SlideSegStitcher",
                        software_versions="0", device_serial_number="0")
        arguments = {**defaults, **kwargs}
        arguments["series_instance_uid"] = arguments["series_instance_uid"] or UID()
        if pyramid_levels is not None:
            arguments["pyramid_uid"] = arguments.get("pyramid_uid") or UID()
        path = Path(path)
        paths = [path] + [path.with_name(f"{path.stem}-level-{k}{path.suffix}") for k in range(1, count)]
        for k, (level, source, target) in enumerate(zip(levels, sources, paths)):
            if pyramid_levels is not None:
                arguments["instance_number"] = k + 1
            arguments["sop_instance_uid"] = (kwargs.get("sop_instance_uid") if k == 0 else None) or UID()
            self._write_level(target, source, self.stitched(segmentation_type, threshold, level),
                              segmentation_type, segment_descriptions, arguments)
        return paths if pyramid_levels is not None else path

    def _pyramid_levels(self, count: Any, kwargs: dict) -> list[int]:
        """The slide levels of the SEG levels to write (checked)."""
        if not isinstance(count, (int, np.integer)) or count < 1:
            raise InputError(f"pyramid_levels must be an int >= 1; got {count!r}")
        if self.level + count > self.slide.level_count:
            raise InputError(f"pyramid_levels={count} from level {self.level} needs slide levels up to "
                             f"{self.level + count - 1}; the slide has {self.slide.level_count}")
        if count > 1 and kwargs.get("sop_instance_uid"):
            raise InputError("sop_instance_uid names one instance; a pyramid gets a new UID per level")
        return list(range(self.level, self.level + int(count)))

    def _sources(self, source_image: Any, levels: list[int]) -> list[Dataset]:
        """One WSI header per written level (given, or read from the slide's folder)."""
        if source_image is None:
            return [self._source_header(level) for level in levels]
        sources = [source_image] if isinstance(source_image, Dataset) else list(source_image)
        if len(sources) != len(levels):
            raise InputError(f"source_image must give {len(levels)} instance(s), one per written level; "
                             f"got {len(sources)}")
        for level, source in zip(levels, sources):
            wanted = self.slide.level(level).sop_instance_uid
            if str(source.get("SOPInstanceUID", "")) != wanted:
                raise InputError(f"source_image for slide level {level} must be instance {wanted}; "
                                 f"got {source.get('SOPInstanceUID')}")
        return sources

    @staticmethod
    def _write_level(path: Path, source: Dataset, pixels: _Stitched, segmentation_type: str,
                     segment_descriptions: Sequence[Any], arguments: dict) -> None:
        from monai_dicomseg.seg.segmentation import Segmentation

        seg = Segmentation(source_images=[source], pixel_array=pixels, segmentation_type=segmentation_type,
                           segment_descriptions=segment_descriptions, tile_pixel_array=True, **arguments)
        seg.save_as(path, release_frames=True)  # written once

    def _source_header(self, level: "int | None" = None) -> Dataset:
        import pydicom

        level = self.level if level is None else level
        wanted = self.slide.level(level).sop_instance_uid
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
        raise InputError(f"the instance {wanted} of level {level} is not in {folder}")

    def close(self) -> None:
        """Drop the accumulators (and their temporary folder)."""
        del self.sums, self.counts
        if self._tmp is not None:
            self._tmp.cleanup()
