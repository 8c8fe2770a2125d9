"""``SaveDicomSeg`` / ``SaveDicomSegd``: model outputs to DICOM SEG files, for bundle postprocessing.

The array transform names the file and records it; the work (grid mapping,
discretisation, encoding, atomic write) is done by
:class:`~monai_dicomseg.io.writer.DicomSegWriter`. The dictionary transform
wraps the array one by composition and adds ``ref_key``: the source image
loaded in the same dict (``LoadImaged`` of a series folder, or
:class:`~monai_dicomseg.transforms.load_series.LoadDicomSeriesd`), whose
``filename_or_obj`` leads to the source DICOM series.

File naming follows MONAI's ``SaveImage``: ``<output_dir>/<name>_<output_postfix><output_ext>``
(default ``<SeriesInstanceUID>_seg.dcm``; an empty postfix gives ``<name><output_ext>``;
a postfix given with its own leading ``"_"``, as in ``"_ai"``, is not doubled) where
``name`` is the source's SeriesInstanceUID (``output_name="series_uid"``,
default) or the source folder/file stem (``"source"``). Names come from
untrusted attributes, so they are sanitised to ``[A-Za-z0-9._-]`` and the
final path must resolve inside ``output_dir``. Existing files are never
silently replaced (``overwrite=False``). The written path is stored in the
output's metadata under ``saved_to``.
"""
from __future__ import annotations

import os
import re
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import ensure_tuple, ensure_tuple_rep

from monai_dicomseg.errors import DicomSegError, InputError
from monai_dicomseg.io.segload import error_with_context
from monai_dicomseg.meta_keys import MetaKey
from monai_dicomseg.transforms.load import DEFAULT_POSTFIX, meta_dict_key
from monai_dicomseg.io.writer import DicomSegWriter, error_context, parameter_names, prepare_output_path
from monai_dicomseg.options import check_options

__all__ = ["SaveDicomSeg", "SaveDicomSegd", "safe_file_stem", "OUTPUT_NAMES"]

OUTPUT_NAMES = ("series_uid", "source")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_file_stem(text: str, fallback: str = "segmentation") -> str:
    """A file-name stem from an untrusted string: ``[A-Za-z0-9._-]``, no leading dots, <= 128 chars."""
    stem = re.sub(r"\.{2,}", "_", _UNSAFE.sub("_", str(text))).strip("._") or fallback
    return stem[:128]


def _postfix(postfix: "str | None") -> str:
    """``"_" + postfix`` (MONAI's ``<name>_<postfix>``), sanitised; ``""`` for none; a leading ``"_"`` kept once."""
    text = _UNSAFE.sub("_", str(postfix or ""))[:64]
    return "" if not text else (text if text.startswith("_") else "_" + text)


def _writer_options() -> tuple[str, ...]:
    """Options SaveDicomSeg passes on to DicomSegWriter (``overwrite`` is its own)."""
    return tuple(name for name in parameter_names(DicomSegWriter.__init__) if name != "overwrite")


class SaveDicomSeg(Transform):
    """Save a model output (``MetaTensor``, any grid) as a DICOM SEG on its source series.

    Parameters
    ----------
    output_dir
        Folder of the SEG files (created if missing; must be writable).
    output_postfix
        Appended to the name after ``"_"``, as MONAI's ``SaveImage`` does
        (default ``"seg"``: ``<name>_seg.dcm``); ``""`` appends nothing; a
        leading ``"_"`` is not doubled (``"_ai"`` and ``"ai"`` both give
        ``<name>_ai.dcm``).
    output_ext
        File extension (default ``".dcm"``).
    output_name
        ``"series_uid"`` (source SeriesInstanceUID) or ``"source"`` (stem of
        the source folder / first file).
    overwrite
        Replace existing files (default False: raise
        :class:`~monai_dicomseg.errors.OutputExistsError`).
    savepath_in_metadict
        Record the path in ``meta["saved_to"]`` (default True).
    print_log
        Print each written path.
    store_to
        Also store each SEG on a DICOMweb server (STOW-RS): a
        :class:`~monai_dicomseg.dicomweb.DicomWebServer` or service root URL.
        The file in ``output_dir`` is kept; a refused store raises
        :class:`~monai_dicomseg.errors.DicomWebStoreError` naming the spooled copy.
    **writer_options
        :class:`~monai_dicomseg.io.writer.DicomSegWriter` arguments:
        ``segmentation_type``, ``labels``, ``channels``, ``background``,
        ``input_kind``, ``discretize``, ``threshold``, ``interpolation``,
        ``algorithm_name``/``_version``/``_family``, ``series_description``,
        ``series_number``, ``compression`` (``None``, ``"deflate"``, ``"rle"``, ``"jpegls"``,
        ``"jpeg2000"``: lossless frame compression, the CLI's ``--compress``
        names), ``workers`` (processes compressing frames),
        ``allow_grid_mismatch`` (write an output whose grid lies mostly
        outside the source series: refused by default, see
        :mod:`monai_dicomseg.geometry.correspondence`), ... Every writer
        path streams: peak memory is the model output plus a few source-grid
        slabs (or one segment), whatever the number of classes. An unknown name is an
        :class:`~monai_dicomseg.errors.InputTypeError` (a ``TypeError``)
        naming the closest valid option.

    Examples
    --------
    >>> save = SaveDicomSeg(output_dir="out", segmentation_type="LABELMAP", labels=["liver", "spleen"])
    >>> save(prediction, source="/data/ct_series")   # doctest: +SKIP
    >>> fractional = SaveDicomSeg(output_dir="out", segmentation_type="FRACTIONAL", compression="jpegls",
    ...                           workers=-1)  # doctest: +SKIP
    """

    def __init__(
        self,
        output_dir: "str | os.PathLike[str]" = "./",
        output_postfix: str = "seg",
        output_ext: str = ".dcm",
        output_name: str = "series_uid",
        overwrite: bool = False,
        savepath_in_metadict: bool = True,
        print_log: bool = False,
        store_to: Any = None,
        **writer_options: Any,
    ) -> None:
        check_options(writer_options, (*parameter_names(SaveDicomSeg.__init__), *_writer_options()), "SaveDicomSeg")
        if output_name not in OUTPUT_NAMES:
            raise InputError(f"output_name must be one of {list(OUTPUT_NAMES)}; got {output_name!r}")
        self.output_dir = Path(output_dir)
        self.output_postfix = _postfix(output_postfix)
        ext = str(output_ext or "")
        self.output_ext = "" if not ext else "." + safe_file_stem(ext.lstrip("."), "dcm")
        self.output_name = output_name
        self.overwrite = overwrite
        self.savepath_in_metadict = savepath_in_metadict
        self.print_log = print_log
        self.store_to = store_to
        self.writer_options = writer_options
        DicomSegWriter(**writer_options)  # validate options now, not at the first image

    def filename(self, writer: DicomSegWriter) -> Path:
        """Output path for the source found by ``writer`` (sanitised; inside ``output_dir``)."""
        if writer.source is None:  # set_metadata finds the source or raises; a guard, not an assert (python -O)
            raise InputError("SaveDicomSeg.filename: the writer has no source series yet; call set_metadata first")
        if self.output_name == "series_uid":
            stem = writer.source.series_instance_uid
        else:
            files = writer.source.filenames or []
            stem = Path(files[0]).parent.name if files else writer.source.series_instance_uid
        name = safe_file_stem(stem) + self.output_postfix + self.output_ext
        root = self.output_dir.resolve()
        path = (root / name).resolve()
        if path.parent != root:
            raise InputError(f"output file name {name!r} would escape output_dir {str(root)!r}")
        return path

    def __call__(self, img: Any, meta_data: "Mapping[str, Any] | None" = None, source: Any = None,
                 reference: Any = None, filename: "str | os.PathLike[str] | None" = None) -> Any:
        """Write ``img`` as a SEG and return it (with ``meta["saved_to"]``).

        Parameters
        ----------
        img
            ``(C, X, Y, Z)`` ``MetaTensor`` (probabilities, one-hot or one
            channel of labels) with the affine of its grid.
        meta_data
            Metadata when ``img`` is a plain tensor/array.
        source
            The source series (folder, files, datasets); default from
            ``reference``'s / ``img``'s ``filename_or_obj``.
        reference
            The source image (``MetaTensor`` or its meta dict) as loaded in the pipeline.
        filename
            Explicit output path (bypasses naming; still no silent overwrite).
        """
        meta = dict(img.meta) if isinstance(img, MetaTensor) else dict(meta_data or {})
        if isinstance(img, MetaTensor):
            meta[MetaKey.AFFINE] = img.affine
        reference_meta = reference.meta if isinstance(reference, MetaTensor) else (
            reference if isinstance(reference, Mapping) else None)
        writer = DicomSegWriter(overwrite=self.overwrite, **self.writer_options)
        lookup = reference_meta if reference_meta is not None else meta
        writer.source_hint = source if source is not None else (lookup or {}).get(MetaKey.FILENAME_OR_OBJ)
        with error_context(writer.context):  # errors name the source series and the output
            writer.set_data_array(img, channel_dim=0)
            writer.set_metadata(meta, source=source, reference_meta=reference_meta)
            path = Path(filename) if filename is not None else self.filename(writer)
            writer.output_path = path
            prepare_output_path(path, self.overwrite)
            written = writer.write(path, verbose=self.print_log)
        if self.store_to is not None:  # DICOMweb sink (STOW-RS)
            from monai_dicomseg.dicomweb import store

            store(written, self.store_to)
        if self.savepath_in_metadict:
            if isinstance(img, MetaTensor):
                img.meta[MetaKey.SAVED_TO] = str(written)
            elif isinstance(meta_data, dict):
                meta_data[MetaKey.SAVED_TO] = str(written)
        return img


class SaveDicomSegd(MapTransform):
    """Dictionary wrapper of :class:`SaveDicomSeg`.

    Parameters
    ----------
    keys
        Keys of the model outputs to save.
    ref_key
        Key of the source image in the same dict (its ``filename_or_obj``
        names the source DICOM series); default: each output's own metadata.
    source_key
        Alternatively, a key holding the series folder/files/datasets.
    allow_missing_keys
        As in MONAI.
    meta_keys, meta_key_postfix
        MONAI's meta-dict convention, used when ``d[key]`` is a plain array:
        its metadata is ``d[meta_keys[i]]``, default ``d[f"{key}_{meta_key_postfix}"]``.
    ref_meta_key
        Meta dict of a plain-array ``d[ref_key]``; default ``f"{ref_key}_{meta_key_postfix}"``.
    **kwargs
        Passed to :class:`SaveDicomSeg` by keyword; an unknown name is an
        InputTypeError (a ``TypeError``) naming the closest valid option.
    """

    def __init__(self, keys: KeysCollection, ref_key: "str | None" = None, source_key: "str | None" = None,
                 allow_missing_keys: bool = False, meta_keys: "KeysCollection | None" = None,
                 meta_key_postfix: str = DEFAULT_POSTFIX, ref_meta_key: "str | None" = None,
                 **kwargs: Any) -> None:
        check_options(kwargs, (*parameter_names(SaveDicomSegd.__init__), *parameter_names(SaveDicomSeg.__init__),
                               *_writer_options()), "SaveDicomSegd")
        super().__init__(keys, allow_missing_keys)
        self.ref_key = ref_key
        self.source_key = source_key
        self.meta_keys = ensure_tuple_rep(None, len(self.keys)) if meta_keys is None else ensure_tuple(meta_keys)
        if len(self.meta_keys) != len(self.keys):
            raise InputError(f"meta_keys must give one key per key ({len(self.keys)}); got {len(self.meta_keys)}")
        self.meta_key_postfix = meta_key_postfix
        self.ref_meta_key = ref_meta_key
        self.saver = SaveDicomSeg(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        reference = source = None
        if self.ref_key is not None:
            if self.ref_key not in d:
                raise InputError(f"ref_key {self.ref_key!r} is not in the data (keys: {list(d)})")
            reference = d[self.ref_key]
            if not isinstance(reference, MetaTensor):
                reference = d.get(self.ref_meta_key or meta_dict_key(self.ref_key, self.meta_key_postfix), reference)
        if self.source_key is not None:
            source = d[self.source_key]
        for key, meta_key in self.key_iterator(d, self.meta_keys):
            meta = d.get(meta_key or meta_dict_key(key, self.meta_key_postfix))
            try:
                d[key] = self.saver(d[key], meta_data=meta, source=source, reference=reference)
            except DicomSegError as error:
                raise error_with_context(error, f"SaveDicomSegd key {key!r}") from error
        return d
