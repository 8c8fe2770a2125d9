"""``DicomSegReader``: a MONAI ``ImageReader`` for DICOM Segmentation files.

``LoadImage(reader=DicomSegReader(mode="labelmap"))`` decodes SEG files with
:func:`~monai_dicomseg.io.segload.load_seg_array` (the same code path as
:class:`~monai_dicomseg.transforms.load.LoadDicomSeg`). ``verify_suffix``
sniffs the SOP Class UID of the file (Segmentation Storage or Label Map
Segmentation Storage, :class:`~monai_dicomseg.enums.SegSOPClass`; PS3.4 B.5) instead of trusting ``.dcm``, so
MONAI's reader selection picks it for SEG files only.

The array returned by ``get_data`` is already channel-first
``(channels, X, Y, Z)`` in MONAI order (``meta["original_channel_dim"] = 0``),
so ``ensure_channel_first=True`` is a no-op.

The grid rule
-------------
A SEG stores only the frames it segments, so its own grid usually covers a
part of the image. The reader returns the label on the **full grid of the
referenced series** (the spatial shape and affine ``LoadDicomSeries`` gives the
image) whenever it finds that series' headers
(:mod:`monai_dicomseg.io.series_lookup`): through ``series_resolver``, under
``source_root``, or beside the SEG (its folder and sub-folders, the layout
``create_datalist`` pairs; for a DICOMweb SEG, the same server).
``meta["grid"]`` says ``"source_series"``. When the series is not found, the
label covers the SEG's stored extent only (``meta["grid"] == "seg"``) and the
reader warns once per file, saying so and how to fix it; ``find_series=False``
asks for the SEG's own grid without a search or a warning. For training, the
safest pattern loads the image too and places the label on it:
``LoadDicomSegd(keys="label", ref_key="image")``.
"""
from __future__ import annotations

import os
import warnings
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

from monai_dicomseg.enums import LoadMode, is_seg_sop_class, to_enum
from monai_dicomseg.errors import DicomSegError, InputError, InputTypeError
from monai_dicomseg.geometry.affine import RAS, check_space
from monai_dicomseg.geometry.slice_grid import check_irregular_slices
from monai_dicomseg.io.segload import (
    DEFAULT_MODE,
    GRID_SEG,
    GRID_SOURCE_SERIES,
    LoadedSeg,
    MetaKey,
    ReferenceGrid,
    error_with_context,
    import_reading_modules,
    load_seg_array,
    read_segmentation,
    referenced_series_uids,
    segment_resolver,
)
from monai_dicomseg.io.series_lookup import SeriesResolver, find_source_series
from monai_dicomseg.io.segments import SELECTION_OPTIONS, SegmentSelection
from monai_dicomseg.options import check_options, options_of

__all__ = ["DicomSegReader", "is_segmentation_file", "READER_OPTIONS"]


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
    return is_seg_sop_class(uid)


class DicomSegReader(ImageReader):
    """MONAI image reader for DICOM SEG (BINARY, FRACTIONAL, LABELMAP), on the source series' grid.

    Parameters
    ----------
    mode
        ``"labelmap"`` (default: one channel of segment numbers, so that
        batches of different SEGs collate; MONAI's label convention) or
        ``"stacked"`` (one channel per segment).
    source_root
        A folder searched (recursively, headers only, cached per process) for
        the series the SEG references; see the module docstring.
    series_resolver
        A callable ``SEG header Dataset -> series source or None`` (a folder, a
        list of files, a :class:`~monai_dicomseg.dicomweb.DicomWebSeries` or a
        ``dicomweb+`` URI), asked first; None: keep searching.
    find_series
        True (default): look for the source series (resolver, ``source_root``,
        beside the SEG) and put the label on its full grid, else warn once per
        file; False: the SEG's own grid, no search, no warning.
    irregular_slices
        The found series' slices are not evenly spaced (a missing slice):
        ``"error"`` (default: the series is unusable and the SEG's own grid
        is used, with a warning naming the gap), ``"fill"`` (the regular grid
        on which every source slice lies, as ``LoadDicomSeries(...,
        irregular_slices="fill")`` builds it, so label and image share it) or
        ``"resample"`` (a regular grid at the median spacing: a SEG whose
        frames do not lie on it is a GeometryError);
        :mod:`monai_dicomseg.geometry.slice_grid`.
    **kwargs
        Selection and decoding options of
        :func:`~monai_dicomseg.io.segload.load_seg_array` (:data:`READER_OPTIONS`:
        ``segment_numbers``, ``segment_labels``, ``segmented_property_types``,
        ``label_map`` or one ``selection`` (a
        :class:`~monai_dicomseg.io.segments.SegmentSelection`),
        ``rescale_fractional``, ``skip_overlap_checks``, ``space``,
        ``dtype``, ``threshold``, ``allow_other_series`` (accept a resolved
        series that is not the referenced one but shares its Frame of
        Reference)).

    Raises
    ------
    TypeError
        (:class:`~monai_dicomseg.errors.InputTypeError`) for an unknown
        keyword option, naming the closest valid one, or a ``series_resolver``
        that is not callable.

    Notes
    -----
    Metadata keys: :data:`~monai_dicomseg.io.segload.META_KEYS`; ``meta["grid"]``
    is ``"source_series"`` or ``"seg"``. Errors are re-raised with the same
    class and a message that starts with the file name: a series given by
    ``series_resolver`` that cannot be read, is of another Frame of Reference,
    or is another series without ``allow_other_series=True``, is an error; a
    series found beside the SEG or under ``source_root`` that cannot be read is
    a warning (the SEG's own grid is used).
    """

    def __init__(self, mode: str = DEFAULT_MODE, *, source_root: "str | os.PathLike[str] | None" = None,
                 series_resolver: "SeriesResolver | None" = None, find_series: bool = True,
                 irregular_slices: str = "error", **kwargs: Any) -> None:
        super().__init__()
        check_options(kwargs, READER_OPTIONS, "DicomSegReader")
        import_reading_modules()  # in the main process: forked DataLoader workers inherit them
        if series_resolver is not None and not callable(series_resolver):
            raise InputTypeError(f"DicomSegReader: series_resolver must be a callable (SEG header Dataset -> "
                                 f"series source or None); got {type(series_resolver).__name__}")
        if source_root is not None and not os.path.isdir(source_root):
            raise InputError(f"DicomSegReader: source_root must be an existing folder; got {str(source_root)!r}")
        self.mode = to_enum(LoadMode, mode, "DicomSegReader: mode")  # the strings are accepted; converted once
        self.source_root = source_root
        self.series_resolver = series_resolver
        self.find_series = bool(find_series)
        self.irregular_slices = check_irregular_slices(irregular_slices, "DicomSegReader: irregular_slices")
        self.selection = SegmentSelection.from_options(kwargs, kwargs.pop("selection", None))
        self.space = check_space(kwargs.get("space", RAS))
        self.kwargs = kwargs
        self._warned: set[str] = set()

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

    def source_grid(self, seg: Any, name: str) -> "tuple[ReferenceGrid | None, tuple[str, ...]]":
        """The grid of the series ``seg`` references, or None; and the places searched.

        Returns
        -------
        tuple
            ``(ReferenceGrid on the series' full grid in this reader's space,
            or None, descriptions of the places searched)``.
        """
        if not self.find_series:
            return None, ()
        lookup = find_source_series(seg, name, source_root=self.source_root, series_resolver=self.series_resolver,
                                    irregular_slices=self.irregular_slices)
        if lookup.found is None:
            return None, lookup.searched
        series = lookup.found.series
        grid = ReferenceGrid(
            affine=series.monai_affine(self.space),
            spatial_shape=tuple(int(n) for n in series.geometry.spatial_shape[::-1]),  # type: ignore[arg-type]  # tuple() of the 3 spatial sizes is typed tuple[int, ...]
            space=self.space,
            frame_of_reference_uid=series.frame_of_reference_uid,
            series_instance_uid=series.series_instance_uid,
        )
        return grid, lookup.searched

    def _warn_seg_grid(self, name: str, seg: Any, searched: tuple[str, ...], shape: tuple[int, ...]) -> None:
        """Warn once per SEG file (per reader) that the label is on the SEG's stored extent only."""
        if name in self._warned:
            return
        self._warned.add(name)
        where = "; ".join(searched) if searched else "no folder to search (the SEG is not a file path)"
        warnings.warn(
            f"DicomSegReader SEG {name!r}: its source series (SeriesInstanceUID {referenced_series_uids(seg)}) "
            f"was not found ({where}); the label covers the SEG's stored extent only (spatial shape "
            f"{tuple(shape)}, meta['grid'] == 'seg'), not the image's full grid: pass "
            "DicomSegReader(source_root=<folder holding the series>) or series_resolver=..., or, for training, load "
            "the image and place the label on it with LoadDicomSegd(keys='label', ref_key='image') "
            "(find_series=False silences this)",
            UserWarning, stacklevel=3,
        )

    def _load_one(self, seg: Any, name: str) -> LoadedSeg:
        try:
            reference, searched = self.source_grid(seg, name)
            result = load_seg_array(seg, mode=self.mode, selection=self.selection, reference=reference,
                                    **self.kwargs)
        except (DicomSegError, OSError) as error:
            raise error_with_context(error, f"DicomSegReader SEG {name!r}") from error
        result.meta[MetaKey.GRID] = GRID_SEG if reference is None else GRID_SOURCE_SERIES
        result.meta[MetaKey.FILENAME_OR_OBJ] = name
        if reference is None and self.find_series:
            self._warn_seg_grid(name, seg, searched, result.array.shape[1:])
        return result

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        """``(array (channels, X, Y, Z), meta)`` of one SEG (several: stacked on channels).

        Several SEGs must share their grid (the channel axes are concatenated).
        """
        items = img if isinstance(img, list) else [img]
        loaded = [self._load_one(seg, name) for seg, name in items]
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


READER_OPTIONS = options_of(
    load_seg_array, (*options_of(DicomSegReader, exclude=("mode",)), *SELECTION_OPTIONS), exclude=("mode", "reference"),
)
"""Keyword options of :class:`DicomSegReader` besides ``mode``: its own (``source_root``, ...), the options of
:func:`~monai_dicomseg.io.segload.load_seg_array` it passes on, and the segment-selection keywords (derived)."""
