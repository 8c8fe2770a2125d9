"""``DicomSegReader``: a MONAI ``ImageReader`` for DICOM Segmentation files.

``LoadImage(reader=DicomSegReader(mode="labelmap"))`` decodes SEG files with
:func:`~monai_dicomseg.io.segload.load_seg_array` (the same code path as
:class:`~monai_dicomseg.transforms.load.LoadDicomSeg`). ``verify_suffix``
sniffs the SOP Class UID of the file (Segmentation Storage
1.2.840.10008.5.1.4.1.1.66.4, Label Map Segmentation Storage
1.2.840.10008.5.1.4.1.1.66.7; PS3.4 B.5) instead of trusting ``.dcm``, so
MONAI's reader selection picks it for SEG files only.

The array returned by ``get_data`` is already channel-first
``(channels, X, Y, Z)`` in MONAI order (``meta["original_channel_dim"] = 0``),
so ``ensure_channel_first=True`` is a no-op. A reader has no access to a
reference image: the grid is the SEG's own; use
:class:`~monai_dicomseg.transforms.load.LoadDicomSegd` with ``ref_key`` to land
on the source image's grid.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pydicom

from monai_dicomseg.io import require_monai

try:  # explicit, no import hook: without torch/MONAI, a one-line MissingDependencyError
    from monai.data import ImageReader
    from monai.utils import ensure_tuple
except ImportError:
    require_monai(__name__)
    raise

from monai_dicomseg.errors import DicomSegError, InputError
from monai_dicomseg.io.segload import (
    DEFAULT_MODE,
    MODES,
    LoadedSeg,
    MetaKey,
    error_with_context,
    load_seg_array,
    read_segmentation,
    segment_resolver,
)
from monai_dicomseg.io.segments import SELECTION_OPTIONS, SegmentSelection
from monai_dicomseg.options import check_options
from monai_dicomseg.io.source_series import SEG_SOP_CLASS_UIDS

__all__ = ["DicomSegReader", "is_segmentation_file", "READER_OPTIONS"]

READER_OPTIONS = (*SELECTION_OPTIONS, "selection", "rescale_fractional", "skip_overlap_checks", "space", "dtype",
                  "threshold")
"""Keyword options of :class:`DicomSegReader` besides ``mode``."""


def is_segmentation_file(path: "str | os.PathLike[str]") -> bool:
    """True if ``path`` is a DICOM file whose SOPClassUID is a Segmentation class.

    Reads only the header up to SOPClassUID (or the file meta
    MediaStorageSOPClassUID); never raises for unreadable files.
    """
    if not os.path.isfile(path):
        return False
    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except Exception:  # not DICOM / truncated: simply not ours
        return False
    uid = getattr(dataset, "SOPClassUID", None)
    if uid is None:
        uid = getattr(getattr(dataset, "file_meta", None), "MediaStorageSOPClassUID", None)
    return str(uid) in SEG_SOP_CLASS_UIDS


class DicomSegReader(ImageReader):
    """MONAI image reader for DICOM SEG (BINARY, FRACTIONAL, LABELMAP).

    Parameters
    ----------
    mode
        ``"labelmap"`` (default: one channel of segment numbers, so that
        batches of different SEGs collate; MONAI's label convention) or
        ``"stacked"`` (one channel per segment).
    **kwargs
        Selection and decoding options of
        :func:`~monai_dicomseg.io.segload.load_seg_array` (:data:`READER_OPTIONS`:
        ``segment_numbers``, ``segment_labels``, ``segmented_property_types``,
        ``label_map`` or one ``selection`` (a
        :class:`~monai_dicomseg.io.segments.SegmentSelection`),
        ``rescale_fractional``, ``skip_overlap_checks``, ``space``,
        ``dtype``, ``threshold``).

    Raises
    ------
    TypeError
        (:class:`~monai_dicomseg.errors.InputTypeError`) for an unknown
        keyword option, naming the closest valid one.

    Notes
    -----
    Metadata keys: :data:`~monai_dicomseg.io.segload.META_KEYS`. Errors are
    re-raised with the same class and a message that starts with the file name.
    """

    def __init__(self, mode: str = DEFAULT_MODE, **kwargs: Any) -> None:
        super().__init__()
        check_options(kwargs, READER_OPTIONS, "DicomSegReader")
        if mode not in MODES:
            raise InputError(f"DicomSegReader: mode must be one of {MODES}; got {mode!r}")
        self.mode = mode
        self.selection = SegmentSelection.from_options(kwargs, kwargs.pop("selection", None))
        self.kwargs = kwargs

    def verify_suffix(self, filename: "Sequence[str | os.PathLike[str]] | str | os.PathLike[str]") -> bool:
        """True if every file is a DICOM Segmentation (by SOP Class UID, not by suffix)."""
        names = ensure_tuple(filename)
        return len(names) > 0 and all(is_segmentation_file(name) for name in names)

    def read(self, data: "Sequence[str | os.PathLike[str]] | str | os.PathLike[str]", **kwargs: Any) -> Any:
        """Read the header of one or more SEG files (pixels are decoded by :meth:`get_data`).

        Returns
        -------
        tuple or list of tuple
            ``(Segmentation, name)`` for one file, where ``name`` is the path
            as given (``str``); a list of such pairs for several files.
            :meth:`get_data` takes either.
        """
        names = ensure_tuple(data)
        segs = []
        for name in names:
            try:
                segs.append((read_segmentation(name, segments=segment_resolver(self.selection)), str(name)))
            except (DicomSegError, OSError) as error:
                raise error_with_context(error, f"DicomSegReader SEG {str(name)!r}") from error
        return segs[0] if len(segs) == 1 else segs

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        """``(array (channels, X, Y, Z), meta)`` of one SEG (several: stacked on channels).

        Several SEGs must share their grid (the channel axes are concatenated).
        """
        items = img if isinstance(img, list) else [img]
        loaded: list[LoadedSeg] = []
        for seg, name in items:
            try:
                result = load_seg_array(seg, mode=self.mode, selection=self.selection, **self.kwargs)
            except (DicomSegError, OSError) as error:
                raise error_with_context(error, f"DicomSegReader SEG {name!r}") from error
            result.meta[MetaKey.FILENAME_OR_OBJ] = name
            loaded.append(result)
        meta = loaded[0].meta
        for other in loaded[1:]:
            if other.array.shape[1:] != loaded[0].array.shape[1:] or not np.allclose(
                    other.meta[MetaKey.AFFINE], meta[MetaKey.AFFINE], atol=1e-4):
                raise InputError(
                    "DicomSegReader: SEG files read together must share spatial shape and affine; "
                    f"{other.meta[MetaKey.FILENAME_OR_OBJ]!r} differs from {meta[MetaKey.FILENAME_OR_OBJ]!r}"
                )
        array = loaded[0].array if len(loaded) == 1 else np.concatenate([x.array for x in loaded])
        return array, meta
