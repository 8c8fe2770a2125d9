"""``DicomSegWriter``: MONAI's ``ImageWriter`` seam for DICOM Segmentation files.

Follows MONAI's protocol (``monai.data.image_writer.ImageWriter``)::

    writer = DicomSegWriter(segmentation_type="BINARY", labels=["liver", "spleen"])
    writer.set_data_array(prediction, channel_dim=0)      # (C, X, Y, Z) on the model grid
    writer.set_metadata(prediction.meta, source=folder)   # affine/space + source series
    writer.write("out/seg.dcm")                           # atomic; returns the path

so it also plugs into ``monai.transforms.SaveImage(writer=DicomSegWriter,
output_ext=".dcm")`` (the source series then comes from the prediction's
``filename_or_obj``). :class:`~monai_dicomseg.transforms.save.SaveDicomSeg`
is the transform front that names files and records ``saved_to``.

The writer maps the output onto the grid of the source series
(:mod:`monai_dicomseg.io.grid`), turns it into a SEG pixel array
(:mod:`monai_dicomseg.io.prediction`) aligned with the spatially sorted
source instances, and encodes it with
:class:`~monai_dicomseg.seg.Segmentation`: new Series/SOP Instance UIDs,
patient and study copied from the source, every frame with a
DerivationImageSequence (Spatial Locations Preserved YES; PS3.3 C.8.20.1).
Everything is validated before a byte is written.
"""
from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_dicomseg.io import require_monai

try:  # explicit, no import hook: without torch/MONAI, a one-line MissingDependencyError
    from monai.data.image_writer import ImageWriter
except ImportError:
    require_monai(__name__)
    raise

from monai_dicomseg.codec.compression import check_transfer_syntax, compression_transfer_syntax
from monai_dicomseg.codec.transfer_syntax import EXPLICIT_VR_LITTLE_ENDIAN
from monai_dicomseg.codec.vr import check_value
from monai_dicomseg.enums import SegmentationTypeValues
from monai_dicomseg.errors import GeometryError, InputError, InputTypeError, OutputExistsError
from monai_dicomseg.geometry.correspondence import GridCorrespondence, check_same_subject
from monai_dicomseg.io.grid import GridPlan
from monai_dicomseg.io.prediction import OutputSegmentPlan
from monai_dicomseg.errors import error_context  # re-exported: the with-form of errors.error_with_context
from monai_dicomseg.meta_keys import (  # meta_uid re-exported
    FRAME_OF_REFERENCE_UID_KEYS,
    PATIENT_ID_KEYS,
    SERIES_INSTANCE_UID_KEYS,
    MetaKey,
    meta_uid,
)
from monai_dicomseg.io.segwrite import build_segmentation, check_segmentation_type, prepare_output_path
from monai_dicomseg.io.source_series import SourceSeries, check_spatial_affine, load_source_geometry, read_series_datasets
from monai_dicomseg.io.source_volumes import parse_selector
from monai_dicomseg.options import check_options
from monai_dicomseg.seg.content import AlgorithmIdentificationSequence
from monai_dicomseg.seg.profiles import apply_profile, dataset_problems, warn_problems
from monai_dicomseg.sr.coding import CodedConcept

__all__ = ["DicomSegWriter", "OutputExistsError", "resolve_source_series", "meta_uid", "ARTIFICIAL_INTELLIGENCE",
           "parameter_names", "error_context", "describe_source", "prepare_output_path"]

ARTIFICIAL_INTELLIGENCE = CodedConcept("123110", "DCM", "Artificial Intelligence")
"""Algorithm Family (CID 7162) used by default."""


def resolve_source_series(
    source: Any = None,
    meta: "Mapping[str, Any] | None" = None,
) -> SourceSeries:
    """Find and read (headers only) the source series of an output.

    Parameters
    ----------
    source
        Folder, file list or dataset list of the series; default: the
        metadata's ``filename_or_obj`` (a series folder as given to
        ``LoadImage``, one file of the series, or a list of files).
    meta
        Metadata of the reference image or of the output (for
        ``filename_or_obj`` and ``SeriesInstanceUID``).

    Raises
    ------
    InputError
        If no source is named or it cannot be reached/read as one series.
    """
    series_uid = meta_uid(meta, SERIES_INSTANCE_UID_KEYS)
    if source is None:
        source = (meta or {}).get(MetaKey.FILENAME_OR_OBJ)
        if isinstance(source, (list, tuple)) and len(source) == 1 and os.path.isdir(str(source[0])):
            source = source[0]
    if source is None or (isinstance(source, (str, os.PathLike)) and not str(source)):
        raise InputError(
            "cannot find the source DICOM series: pass source= (folder, files or datasets) or a reference "
            "whose metadata has 'filename_or_obj' (e.g. from LoadImaged of the series folder)")
    try:
        if isinstance(source, (str, os.PathLike)) and os.path.isfile(source):
            # one file of the series: its folder, restricted to its series
            datasets, _ = read_series_datasets([source], stop_before_pixels=True)
            series_uid = str(datasets[0].SeriesInstanceUID)
            source = str(Path(source).parent)
        # the volume the image was loaded as, when its series holds several (io/source_volumes.py)
        volume = parse_selector((meta or {}).get(MetaKey.SOURCE_VOLUME))
        # a series with missing slices: mapped onto its filled grid, SEG frames for the source images only
        return load_source_geometry(source, series_instance_uid=series_uid, volume=volume, irregular_slices="fill")
    except InputError as error:
        raise InputError(f"the source DICOM series is not reachable: {error}") from None
    except GeometryError as error:
        raise _uneven_source_error(error) from None


def _uneven_source_error(error: GeometryError) -> GeometryError:
    """The loaders' gap error, reworded for writing (their ``irregular_slices='resample'`` does not apply).

    A SEG frame is written on each source slice, at its own position; the
    writer maps the model grid onto the filled grid of a series with whole
    missing slices, but a stack whose spacing is uneven in other ways has no
    regular grid holding every source slice, and ``irregular_slices`` only
    changes the grid an *image* is loaded on.
    """
    text = str(error)
    if "irregular_slices='resample'" not in text:
        return error
    what = text.split("; irregular_slices=")[0].split("; pass irregular_slices=")[0]
    return GeometryError(
        f"{what}: a SEG is written on the source slices, at their own positions, and no regular grid holds them "
        "all, so the writer cannot map the model output onto them (irregular_slices='resample' changes only the "
        "grid an image is loaded on: it does not help here). Write the label that is already on the source "
        "slices instead: monai_dicomseg.Segmentation(source_images=<the series' datasets sorted along the slice "
        "normal>, pixel_array=<(F, R, C) labels, one frame per source slice in that order>, ...)")


def parameter_names(function: Callable[..., Any]) -> tuple[str, ...]:
    """Names of the keyword-passable parameters of ``function`` (no ``self``, ``*args``, ``**kwargs``)."""
    return tuple(
        name for name, parameter in inspect.signature(function).parameters.items()
        if name != "self" and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY))


def describe_source(source: Any) -> str:
    """A short name of a source series for messages: its folder (or first file), else its UID."""
    if isinstance(source, SourceSeries):
        files = source.filenames or []
        if files:
            return f"source series folder {str(Path(files[0]).parent)!r}"
        return f"source series {source.series_instance_uid}"
    if isinstance(source, (str, os.PathLike)):
        return f"source series {str(source)!r}"
    if isinstance(source, (list, tuple)) and source:
        first = source[0]
        if isinstance(first, (str, os.PathLike)):
            return f"source series (first file {str(first)!r})"
        uid = getattr(first, "SeriesInstanceUID", None)
        if uid:
            return f"source series {uid}"
    return "source series (not named)"


def _numpy(data: Any) -> np.ndarray:
    if hasattr(data, "detach"):
        if getattr(getattr(data, "device", None), "type", "cpu") != "cpu":
            return data.detach()  # stays on its device: resampled and quantised there (io/device_grid.py)
        data = data.detach().cpu().numpy()  # a CPU tensor: a view, no copy
    try:
        return np.asarray(data)
    except (TypeError, ValueError):
        raise InputTypeError(f"the output must be a tensor or array; got {type(data).__name__}") from None


class DicomSegWriter(ImageWriter):
    """Write model outputs as DICOM SEG on the grid of their source series.

    Parameters
    ----------
    segmentation_type
        ``"BINARY"``, ``"FRACTIONAL"`` or ``"LABELMAP"`` (PS3.3 C.8.20.2);
        default: the ``profile``'s type, else ``"BINARY"``.
    labels
        Segment names / descriptions: a list, ``{value_or_channel: name |
        SegmentDescription}`` with int or digit-string keys (a bundle's
        ``channel_def``, e.g. ``{"0": "background", "1": "liver"}``), a list
        of ``SegmentDescription``, or dcmqi metadata JSON (path/dict with
        ``segmentAttributes``). An entry named ``"background"`` marks the
        background value/channel and is never written. The full rule, with
        one example per output kind (argmax labels, one-hot, softmax with
        background, sigmoid multi-label), is in
        :func:`~monai_dicomseg.io.prediction.plan_output_segments`; any mismatch is an
        InputError naming both counts, never a silent shift. Names get SNOMED
        CT codes and colours from :mod:`monai_dicomseg.anatomy`. None: generic
        ``Segment <n>``.
    channels, background
        Which channels are segments / the background channel (see
        :func:`~monai_dicomseg.io.prediction.plan_output_segments`).
    input_kind
        ``"auto"``, ``"labels"``, ``"onehot"`` or ``"probabilities"``.
    discretize
        ``"auto"`` (argmax with a background channel, else threshold),
        ``"argmax"`` or ``"threshold"``; BINARY/LABELMAP only.
    threshold
        Probability a segment must reach (threshold policy, and argmax
        without background).
    interpolation
        ``"auto"`` (nearest for labels/one-hot, linear for probabilities),
        ``"nearest"`` or ``"linear"``; used only when the grids differ by more
        than flips/permutations/crops/pads.
    algorithm_name, algorithm_version, algorithm_family, algorithm_type
        Segment Algorithm Identification (PS3.3 C.8.20.2, Table 10-19).
    series_description, series_number, content_label, content_description
        Written to the SEG.
    manufacturer, manufacturer_model_name, software_versions, device_serial_number
        General/Enhanced General Equipment (PS3.3 C.7.5.2).
    fractional_type, max_fractional_value, transfer_syntax_uid, omit_empty_frames, workers
        Passed to :class:`~monai_dicomseg.seg.Segmentation`.
    compression
        Lossless frame compression by name, the CLI's ``--compress``
        vocabulary: ``None``/``"none"`` (native), ``"deflate"`` (the whole
        data set deflated, every type), ``"rle"``, ``"jpegls"``, ``"jpeg2000"``
        (BINARY: ``"deflate"`` or ``"jpeg2000"``); the names come from
        :mod:`monai_dicomseg.codec.transfer_syntax`. Sets
        ``transfer_syntax_uid``; giving both with different values is an
        InputError. For FRACTIONAL, ``"jpegls"`` with ``workers`` is the
        recommended choice (softmax outputs leave almost no frame empty).
    profile
        A consumer the SEG is for (``"ohif"``, ``"slicer"``, ``"highdicom"``,
        ``"archive"``; :mod:`monai_dicomseg.seg.profiles`): chooses
        ``segmentation_type`` and the compression that consumer displays.
        An explicit ``segmentation_type`` / ``compression`` /
        ``transfer_syntax_uid`` it does not read is an InputError naming both;
        a SEG the consumer may still misread (BINARY frames whose Rows x
        Columns is not a multiple of 8 for OHIF) gives a
        :class:`~monai_dicomseg.seg.profiles.ConsumerWarning` when built.
    allow_grid_mismatch
        Resample an output whose grid lies mostly outside the source series
        anyway (default False: GeometryError). The correspondence rule (less
        than half of the model grid's world box inside the series' box is
        refused, unless the grid covers the whole series and is at most 8
        times its size: a padded grid; another Frame of Reference or
        PatientID in the metadata is always refused) is
        :mod:`monai_dicomseg.geometry.correspondence`'s, shared with
        ``monai-dicomseg from-nifti``.
    overwrite
        Replace an existing file (default False: raise OutputExistsError).
    output_dtype, scale
        Accepted and ignored: ``monai.transforms.SaveImage`` passes them to
        every writer (a SEG's pixel type follows ``segmentation_type``).
    **kwargs
        Nothing else: an unknown keyword (``segmentaton_type=``, ``lables=``)
        raises :class:`~monai_dicomseg.errors.InputTypeError` (a ``TypeError``)
        naming the closest valid option.
    """

    def __init__(
        self,
        segmentation_type: "str | None" = None,
        labels: Any = None,
        channels: "Sequence[int] | None" = None,
        background: "bool | int | None" = None,
        input_kind: str = "auto",
        discretize: str = "auto",
        threshold: float = 0.5,
        interpolation: str = "auto",
        algorithm_name: str = "MONAI",
        algorithm_version: "str | None" = None,
        algorithm_family: Any = ARTIFICIAL_INTELLIGENCE,
        algorithm_type: str = "AUTOMATIC",
        series_description: str = "Segmentation",
        series_number: int = 300,
        content_label: str = "SEGMENTATION",
        content_description: "str | None" = None,
        manufacturer: str = "monai_dicomseg",
        manufacturer_model_name: str = "monai_dicomseg",
        software_versions: "str | None" = None,
        device_serial_number: str = "0",
        fractional_type: str = "PROBABILITY",
        max_fractional_value: int = 255,
        transfer_syntax_uid: "str | None" = None,
        omit_empty_frames: bool = True,
        workers: int = 0,
        compression: "str | None" = None,
        profile: "str | None" = None,
        allow_grid_mismatch: bool = False,
        overwrite: bool = False,
        output_dtype: Any = None,
        scale: Any = None,
        **kwargs: Any,
    ) -> None:
        check_options(kwargs, parameter_names(DicomSegWriter.__init__), "DicomSegWriter")
        super().__init__()
        segmentation_type, transfer_syntax_uid = apply_profile(profile, segmentation_type, compression,
                                                               transfer_syntax_uid)
        if profile is not None:
            compression = None  # resolved into transfer_syntax_uid
        kind = check_segmentation_type(segmentation_type)
        import monai

        from monai_dicomseg import __version__

        if compression is not None:
            chosen = compression_transfer_syntax(compression)
            if str(transfer_syntax_uid) not in (EXPLICIT_VR_LITTLE_ENDIAN, str(chosen)):
                raise InputError(
                    f"compression={compression!r} means transfer_syntax_uid {chosen} but transfer_syntax_uid="
                    f"{str(transfer_syntax_uid)!r} was also given; pass one of them")
            transfer_syntax_uid = chosen
        check_transfer_syntax(transfer_syntax_uid, kind)
        self.segmentation_type = kind
        self.profile = profile
        self.labels = labels
        self.channels = channels
        self.background = background
        self.options: dict[str, Any] = {"discretize": discretize, "threshold": float(threshold), "interpolation": interpolation}
        self.input_kind = input_kind
        self.algorithm_type = str(algorithm_type).upper()
        self.algorithm = AlgorithmIdentificationSequence(
            name=algorithm_name, family=algorithm_family, version=algorithm_version or f"monai {monai.__version__}")
        self.encoder_options: dict[str, Any] = {
            "series_number": int(series_number), "content_label": content_label,
            "content_description": content_description, "manufacturer": manufacturer,
            "manufacturer_model_name": manufacturer_model_name,
            "software_versions": software_versions or f"monai_dicomseg {__version__}",
            "device_serial_number": device_serial_number, "max_fractional_value": int(max_fractional_value),
            "transfer_syntax_uid": transfer_syntax_uid, "omit_empty_frames": bool(omit_empty_frames),
            "workers": int(workers),
        }
        if kind == SegmentationTypeValues.FRACTIONAL.value:
            self.encoder_options["fractional_type"] = fractional_type
        self.series_description = check_value("SeriesDescription", "LO", str(series_description),
                                              where="series_description")
        self.overwrite = bool(overwrite)
        self.allow_grid_mismatch = bool(allow_grid_mismatch)
        self.correspondence: "GridCorrespondence | None" = None
        self.affine: "np.ndarray | None" = None
        self.space = "RAS"
        self.source: "SourceSeries | None" = None
        self.segment_plan: "OutputSegmentPlan | None" = None
        self.grid_plan: "GridPlan | None" = None
        self.source_hint: Any = None
        self.output_path: "Path | None" = None

    def context(self) -> str:
        """Where an error happened: the source series folder (or first file) and the output path, if known."""
        parts = [describe_source(self.source if self.source is not None else self.source_hint)]
        if self.output_path is not None:
            parts.append(f"output {str(self.output_path)!r}")
        return "DicomSegWriter " + ", ".join(parts)

    # ------------------------------------------------------------------ ImageWriter seam

    def set_data_array(self, data_array: Any, channel_dim: "int | None" = 0, squeeze_end_dims: bool = True,
                       **kwargs: Any) -> None:
        """Set the output ``(C, X, Y, Z)`` (``channel_dim=0``) or ``(X, Y, Z)`` (``channel_dim=None``).

        ``squeeze_end_dims`` (passed by ``SaveImage``) is accepted and ignored;
        any other keyword is an InputTypeError.
        """
        check_options(kwargs, parameter_names(DicomSegWriter.set_data_array), "DicomSegWriter.set_data_array")
        array = _numpy(data_array)
        if channel_dim is None:
            array = array[None]
        elif channel_dim != 0:
            array = array.movedim(channel_dim, 0) if hasattr(array, "movedim") else np.moveaxis(array, channel_dim, 0)
        if array.ndim != 4:
            raise InputError(
                f"the output must be 3D with one channel axis, (C, X, Y, Z); got shape {tuple(data_array.shape)}")
        if hasattr(array, "is_complex") and array.is_complex():
            raise InputTypeError(f"the output must be numeric; got dtype {array.dtype}")
        if not hasattr(array, "is_complex") and array.dtype.kind not in "biuf":
            raise InputTypeError(f"the output must be numeric; got dtype {array.dtype}")
        self.data_obj = array

    def set_metadata(self, meta_dict: "Mapping[str, Any] | None" = None, source: Any = None,
                     reference_meta: "Mapping[str, Any] | None" = None, resample: Any = None, mode: Any = None,
                     padding_mode: Any = None, dtype: Any = None, **kwargs: Any) -> None:
        """Read the output grid (``affine``, ``space``) and find the source series.

        Parameters
        ----------
        meta_dict
            Metadata of the output (``MetaTensor.meta``): ``affine`` (4, 4),
            ``space`` (default RAS), optional FrameOfReferenceUID.
        source
            The source series (folder, files, datasets); default from
            ``reference_meta`` / ``meta_dict`` ``filename_or_obj``.
        reference_meta
            Metadata of the source image loaded in the same pipeline.
        resample, mode, padding_mode, dtype
            Passed by ``SaveImage``; ignored (the grid mapping is
            :mod:`monai_dicomseg.io.grid`'s, chosen by ``interpolation``).

        Raises
        ------
        GeometryError
            No affine, or a FrameOfReferenceUID / PatientID in ``meta_dict`` or
            ``reference_meta`` other than the source's
            (:func:`~monai_dicomseg.geometry.correspondence.check_same_subject`).
        InputError
            Unreachable source series.
        """
        check_options(kwargs, parameter_names(DicomSegWriter.set_metadata), "DicomSegWriter.set_metadata")
        meta = dict(meta_dict or {})
        lookup = reference_meta if reference_meta is not None else meta
        self.source_hint = source if source is not None else (lookup or {}).get(MetaKey.FILENAME_OR_OBJ)
        with error_context(self.context):
            self._set_metadata(meta, source, reference_meta, lookup)

    def _set_metadata(self, meta: dict[str, Any], source: Any, reference_meta: "Mapping[str, Any] | None",
                      lookup: "Mapping[str, Any] | None") -> None:
        if meta.get(MetaKey.AFFINE) is None:
            raise GeometryError("the output has no affine (meta['affine']); pass a MetaTensor from the pipeline")
        self.affine = check_spatial_affine(meta[MetaKey.AFFINE], "output affine")
        space = meta.get(MetaKey.SPACE, "RAS")
        self.space = str(getattr(space, "value", space)).upper()
        self.source = resolve_source_series(source, lookup)
        patient = self.source.datasets[0].get("PatientID") if self.source.datasets else None
        for name, candidate in (("output", meta), ("reference image", reference_meta)):
            check_same_subject(
                model_frame_of_reference=meta_uid(candidate, FRAME_OF_REFERENCE_UID_KEYS),
                source_frame_of_reference=self.source.frame_of_reference_uid,
                model_patient_id=meta_uid(candidate, PATIENT_ID_KEYS), source_patient_id=patient,
                what=f"{name} (source series {self.source.series_instance_uid})")

    def build(self) -> Any:
        """Validate, map onto the source grid and encode; returns the ``Segmentation`` (nothing written).

        Errors name the source series and (when known) the output path.
        """
        with error_context(self.context):
            seg = self._build()
        if self.profile is not None:  # every rule of the consumer, frame layout and segment numbers included
            warn_problems(self.profile, dataset_problems(self.profile, seg))
        return seg

    def _build(self) -> Any:
        if self.data_obj is None or self.source is None or self.affine is None:
            raise InputError("call set_data_array() and set_metadata() before build()/write()")
        built = build_segmentation(  # the one torch-free planner + writer, shared with `from-nifti`
            self.data_obj, self.affine, self.source, segmentation_type=self.segmentation_type, space=self.space,  # type: ignore[arg-type]  # build_segmentation takes torch tensors too (plan_segments classifies them on their device); its annotation names ndarray
            labels=self.labels, channels=self.channels, background=self.background, input_kind=self.input_kind,
            algorithm=self.algorithm, algorithm_type=self.algorithm_type,
            allow_grid_mismatch=self.allow_grid_mismatch, encoder_options=self.encoder_options, **self.options)
        self.correspondence, self.segment_plan, self.grid_plan = (
            built.correspondence, built.segment_plan, built.grid_plan)
        seg = built.seg
        seg.SeriesDescription = self.series_description
        return seg

    def write(self, filename: "str | os.PathLike[str]", verbose: bool = False, overwrite: "bool | None" = None,
              **kwargs: Any) -> Path:
        """Build the SEG and write it atomically to ``filename``.

        Raises
        ------
        OutputExistsError
            ``filename`` exists and ``overwrite`` is False.
        InputError
            The folder cannot be created or written.

        Every error names the source series folder and ``filename``.
        """
        check_options(kwargs, parameter_names(DicomSegWriter.write), "DicomSegWriter.write")
        self.output_path = Path(filename)
        with error_context(self.context):
            path = prepare_output_path(filename, self.overwrite if overwrite is None else overwrite)
            seg = self.build()
            try:
                # written once and dropped: frames the encoder kept are let go as they are written
                seg.save_as(path, overwrite=self.overwrite if overwrite is None else overwrite, release_frames=True)
            except FileExistsError:
                raise OutputExistsError(f"{path} exists; pass overwrite=True or another name") from None
        if verbose:
            print(f"DicomSegWriter: wrote {path}")
        return path
