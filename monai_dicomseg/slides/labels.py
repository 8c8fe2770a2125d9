"""Label patches of a slide from its tiled SEG(s): MONAI patch requests answered from the SEG pyramid.

:class:`SlideLabels` pairs a :class:`~monai_dicomseg.slides.geometry.SlideImage`
with the levels of a tiled SEG of that slide (one instance, or a pyramid of
instances: TILED_FULL or TILED_SPARSE; BINARY, FRACTIONAL or LABELMAP; ours
or any other producer's). :meth:`SlideLabels.get_patch` answers a patch in
MONAI ``WSIReader`` terms (``location = (top, left)`` level-0 pixels,
``size = (height, width)`` at ``level``) with the SEG's labels for exactly
the pixels of that image patch:

* **Level choice.** The SEG level whose pixel spacing equals the image
  level's (relative 1e-3) is read as stored. Otherwise the coarsest SEG
  level still at least as fine as the image level is resampled
  (downsampling); when every SEG level is coarser, the finest is upsampled
  and a warning says so.
* **Resampling.** Output pixel ``i`` samples the SEG level at its centre,
  ``(start + i + 0.5) * f`` SEG pixels (``f`` = image spacing / SEG
  spacing): nearest for BINARY / LABELMAP and for label maps, bilinear
  between the two nearest SEG pixel centres for FRACTIONAL stacks.
* **Edges.** Pixels outside the total pixel matrix are 0 (as an image reader
  pads outside the slide).
* Only the SEG tiles under the patch are decoded
  (:meth:`~monai_dicomseg.seg.Segmentation.get_total_pixel_matrix` with a region).
"""
from __future__ import annotations

import os
import warnings
from typing import Any
from collections.abc import Sequence

import numpy as np

from monai_dicomseg.enums import SegmentationTypeValues
from monai_dicomseg.errors import InputError, InputTypeError
from monai_dicomseg.slides.geometry import (
    SPACING_TOLERANCE,
    SlideImage,
    TiledPlane,
    check_same_slide,
    level_region,
    tiled_plane,
)

__all__ = ["SlideLabels", "LABEL_MODES"]

#: ``"labelmap"``: ``(H, W)`` segment numbers; ``"stacked"``: ``(H, W, S)`` one channel per segment.
LABEL_MODES = ("labelmap", "stacked")


def _as_segmentation(item: Any) -> Any:
    from monai_dicomseg.seg.segmentation import Segmentation, segread
    from monai_dicomseg.slides.remote import is_remote, remote_segmentation

    if isinstance(item, Segmentation):
        return item
    if is_remote(item):  # a SEG on a DICOMweb server: frames retrieved per tile (slides/remote.py)
        return remote_segmentation(item)
    if isinstance(item, (str, os.PathLike)):
        return segread(item)
    if hasattr(item, "SOPClassUID"):
        return Segmentation.from_dataset(item, copy=False)
    raise InputTypeError("segmentations must be paths, dicomweb+ URIs / DicomWebSeries, pydicom Datasets or "
                         f"Segmentations; got {type(item).__name__}")


def _sample_positions(start: int, size: int, factor: float, linear: bool) -> tuple[np.ndarray, np.ndarray]:
    """SEG pixel index (or two indices and a weight) of each output pixel's centre."""
    centres = (start + np.arange(size) + 0.5) * factor
    if not linear:
        return np.floor(centres).astype(np.int64), np.zeros(size)
    continuous = centres - 0.5
    lower = np.floor(continuous).astype(np.int64)
    return lower, continuous - lower


class SlideLabels:
    """The labels of a tiled SEG (one instance or a pyramid) for patches of a slide image.

    Parameters
    ----------
    slide
        The slide's levels (:class:`SlideImage`, e.g. ``SlideImage.from_path(folder)``).
    segmentations
        The SEG's levels: paths, datasets or :class:`~monai_dicomseg.seg.Segmentation`
        objects (any order; sorted finest first). They must share segments and type.
        ``dicomweb+`` URIs / :class:`~monai_dicomseg.dicomweb.DicomWebSeries` of SEG
        instances on a server are read tile by tile: each patch retrieves only the
        frames under it (WADO-RS ``/frames/``, cached per frame;
        :func:`~monai_dicomseg.slides.remote.remote_segmentation`).

    Raises
    ------
    GeometryError
        A SEG of another slide (Frame of Reference, container, origin,
        orientation or extent differ; see :func:`check_same_slide`).
    InputError
        No SEG, or levels with different segment numbers / types.
    """

    def __init__(self, slide: SlideImage, segmentations: Sequence[Any]) -> None:
        if not isinstance(slide, SlideImage):
            raise InputTypeError(f"slide must be a SlideImage; got {type(slide).__name__}")
        if isinstance(segmentations, (str, os.PathLike)) or hasattr(segmentations, "SOPClassUID") \
                or hasattr(segmentations, "series_uid"):  # one path, dataset or DicomWebSeries
            segmentations = [segmentations]
        segs = [_as_segmentation(item) for item in segmentations]
        if not segs:
            raise InputError("segmentations must hold at least one tiled SEG")
        planes = [tiled_plane(seg) for seg in segs]
        for plane in planes:
            check_same_slide(slide.levels[0], plane, what=f"segmentation {plane.sop_instance_uid}")
        order = np.argsort([p.pixel_spacing[0] for p in planes], kind="stable")
        self.slide = slide
        self.segmentations = [segs[i] for i in order]
        self.planes: list[TiledPlane] = [planes[i] for i in order]
        first = self.segmentations[0]
        self._numbers = [int(n) for n in first.segment_numbers]
        for seg in self.segmentations[1:]:
            if list(seg.segment_numbers) != list(first.segment_numbers) \
                    or seg.segmentation_type != first.segmentation_type:
                raise InputError("the SEG levels must share segment numbers and SegmentationType; got "
                                 f"{list(first.segment_numbers)} {first.segmentation_type.value} and "
                                 f"{list(seg.segment_numbers)} {seg.segmentation_type.value}")

    @property
    def segment_numbers(self) -> list[int]:
        """Segment numbers of the SEG (1-based)."""
        return list(self._numbers)

    @property
    def segmentation_type(self) -> SegmentationTypeValues:
        """BINARY, FRACTIONAL or LABELMAP."""
        return self.segmentations[0].segmentation_type

    @property
    def identity(self) -> dict[str, Any]:
        """SeriesInstanceUID and SOPInstanceUIDs of the SEG levels (for patch metadata)."""
        return {"seg_series_instance_uid": self.planes[0].series_instance_uid,
                "seg_sop_instance_uids": [p.sop_instance_uid for p in self.planes]}

    def source_level(self, level: int) -> tuple[int, tuple[float, float]]:
        """``(SEG level index, (row, column) factor)`` read for image ``level``.

        ``factor`` is image spacing / SEG spacing: ``(1, 1)`` when a SEG level
        matches, ``> 1`` when a finer SEG level is downsampled, ``< 1`` when
        the finest is upsampled (warned by :meth:`get_patch`).
        """
        target = self.slide.level(level).pixel_spacing
        factors = [(target[0] / p.pixel_spacing[0], target[1] / p.pixel_spacing[1]) for p in self.planes]
        for index, factor in enumerate(factors):
            if all(abs(f - 1.0) <= SPACING_TOLERANCE for f in factor):
                return index, (1.0, 1.0)
        finer = [i for i, f in enumerate(factors) if min(f) >= 1.0]
        index = finer[-1] if finer else 0
        return index, factors[index]

    def get_patch(
        self,
        location: Sequence[int],
        size: Sequence[int],
        level: int = 0,
        *,
        mode: str = "labelmap",
        segment_numbers: Sequence[int] | None = None,
    ) -> np.ndarray:
        """The SEG's labels for the image patch ``(location, size, level)`` (MONAI ``WSIReader`` terms).

        Parameters
        ----------
        location
            ``(top, left)`` in level-0 pixels; must be on the level's pixel
            grid (see :func:`~monai_dicomseg.slides.geometry.level_region`).
        size
            ``(height, width)`` at ``level``.
        level
            Image pyramid level.
        mode
            ``"labelmap"`` or ``"stacked"`` (:data:`LABEL_MODES`).
        segment_numbers
            Segments to include (default all), in channel order.

        Returns
        -------
        numpy.ndarray
            ``(H, W)`` segment numbers (``"labelmap"``; uint8/uint16), or
            ``(H, W, S)`` (``"stacked"``: uint8 0/1, float32 fractions in
            [0, 1] for FRACTIONAL).

        Raises
        ------
        InputError
            Bad mode, level, size or location; a FRACTIONAL labelmap whose
            fractions are not all 0 or the maximum (read it ``"stacked"``).
        OverlapError
            ``"labelmap"`` of overlapping BINARY segments.
        """
        if mode not in LABEL_MODES:
            raise InputError(f"mode must be one of {LABEL_MODES}; got {mode!r}")
        row, column, height, width = level_region(location, size, self.slide.downsample(level))
        index, factor = self.source_level(level)
        if min(factor) < 1.0 - SPACING_TOLERANCE:
            warnings.warn(f"no SEG level is as fine as image level {level} (factor {min(factor):.3g}): "
                          "the finest SEG level is upsampled", UserWarning, stacklevel=2)
        if factor == (1.0, 1.0):  # the SEG level matches: a plain region read, no resampling
            rows_range, columns_range = np.arange(row, row + height), np.arange(column, column + width)
            return self._read_block(index, rows_range, columns_range, False, mode, segment_numbers)[0]
        linear = mode == "stacked" and self.segmentation_type is SegmentationTypeValues.FRACTIONAL
        rows = _sample_positions(row, height, factor[0], linear)
        columns = _sample_positions(column, width, factor[1], linear)
        block, r0, c0 = self._read_block(index, rows[0], columns[0], linear, mode, segment_numbers)
        if not linear:
            return block[np.ix_(rows[0] - r0, columns[0] - c0)]
        ri, ci = rows[0] - r0, columns[0] - c0
        wr = rows[1].astype(np.float32)[:, None, None]
        wc = columns[1].astype(np.float32)[None, :, None]
        top = block[np.ix_(ri, ci)] * (1 - wc) + block[np.ix_(ri, ci + 1)] * wc
        bottom = block[np.ix_(ri + 1, ci)] * (1 - wc) + block[np.ix_(ri + 1, ci + 1)] * wc
        return (top * (1 - wr) + bottom * wr).astype(np.float32)

    def _read_block(self, index: int, rows: np.ndarray, columns: np.ndarray, linear: bool, mode: str,
                    segment_numbers: Sequence[int] | None) -> tuple[np.ndarray, int, int]:
        """The SEG level's pixels covering the sample indices (zero outside the matrix), and its corner."""
        seg, plane = self.segmentations[index], self.planes[index]
        extra = 1 if linear else 0
        r0, r1 = int(rows[0]), int(rows[-1]) + 1 + extra  # sample indices ascend
        c0, c1 = int(columns[0]), int(columns[-1]) + 1 + extra
        numbers = self._numbers if segment_numbers is None else [int(n) for n in segment_numbers]
        channels = () if mode == "labelmap" else (len(numbers),)
        fractional = self.segmentation_type is SegmentationTypeValues.FRACTIONAL and mode == "stacked"
        block = np.zeros((r1 - r0, c1 - c0, *channels), np.float32 if fractional else np.uint16)
        rr0, rr1, cc0, cc1 = max(r0, 0), min(r1, plane.rows), max(c0, 0), min(c1, plane.columns)
        if rr0 < rr1 and cc0 < cc1:
            pixels = seg.get_total_pixel_matrix(rr0, rr1, cc0, cc1, as_indices=True, segment_numbers=numbers,
                                                combine_segments=mode == "labelmap")
            block[rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0] = pixels
        if not fractional:
            top = max(numbers) if mode == "labelmap" else 1
            block = block.astype(np.uint8 if top < 256 else np.uint16)
        return block, r0, c0
