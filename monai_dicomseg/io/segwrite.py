"""The torch-free core of SEG writing: a channel-first array + affine -> a Segmentation of a source series.

One planner, one writer behind both front doors:
:class:`~monai_dicomseg.io.writer.DicomSegWriter` (MONAI's ``ImageWriter``,
hence ``SaveDicomSeg``) and ``monai-dicomseg from-nifti`` (the light install)
both call :func:`build_segmentation`. It

1. refuses a model grid that does not correspond to the source series
   (:func:`~monai_dicomseg.geometry.correspondence.check_grid_correspondence`),
   before any work on the array;
2. classifies the array (labels, one-hot, probabilities) and plans which
   values/channels become which segments
   (:func:`~monai_dicomseg.io.prediction.plan_output_segments`, the labels
   contract);
3. plans the grid mapping (:func:`~monai_dicomseg.io.grid.plan_grid_mapping`)
   and maps the output onto the source grid
   (:func:`~monai_dicomseg.io.prediction.to_source_grid`): the interpolation
   default (``"auto"``: nearest for labels and one-hot, linear for
   probabilities, so a FRACTIONAL map is interpolated linearly through either
   door) and the discretisation default are decided there, once;
4. encodes with :class:`~monai_dicomseg.seg.Segmentation` (PS3.3 C.8.20).

:func:`prepare_output_path` is the one output check of both doors (folder,
existing file, directory). numpy + pydicom only: torch is used by
:mod:`monai_dicomseg.io.grid` only where it is installed (rotated grids).
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from monai_dicomseg.enums import BINARY, InputKind, SegmentationTypeValues
from monai_dicomseg.errors import InputError, OutputExistsError
from monai_dicomseg.geometry.correspondence import GridCorrespondence, check_grid_correspondence
from monai_dicomseg.io.grid import GridPlan, plan_grid_mapping
from monai_dicomseg.io import device_grid
from monai_dicomseg.io.prediction import (
    OutputSegmentPlan, check_probabilities, classify_input, describe_tensor, is_channel_partition, plan_output_segments,
    to_source_grid, value_range,
)
from monai_dicomseg.io.source_series import SourceSeries
from monai_dicomseg.seg.content import AlgorithmIdentificationSequence

__all__ = ["BuiltSegmentation", "build_segmentation", "plan_segments", "prepare_output_path", "SEGMENTATION_TYPES"]

SEGMENTATION_TYPES = tuple(kind.value for kind in SegmentationTypeValues)
"""SegmentationType values the writer produces (PS3.3 C.8.20.2)."""


@dataclass(frozen=True)
class BuiltSegmentation:
    """Result of :func:`build_segmentation`: the encoded SEG (nothing written) and the plans behind it.

    Attributes
    ----------
    seg
        The :class:`~monai_dicomseg.seg.Segmentation`.
    segment_plan
        Which values/channels became which segments.
    grid_plan
        How the model grid maps onto the source grid (``kind`` ``"exact"``: re-indexed, no resampling).
    correspondence
        The measured correspondence of the model grid with the source series.
    """

    seg: Any
    segment_plan: OutputSegmentPlan
    grid_plan: GridPlan
    correspondence: GridCorrespondence

    @property
    def resampled(self) -> bool:
        """Whether the output was resampled (the grids differ by more than flips/permutations/crops/pads)."""
        return self.grid_plan.kind != "exact"


def check_segmentation_type(segmentation_type: Any, argument: str = "segmentation_type") -> str:
    """``segmentation_type`` (str or enum) upper-cased; InputError naming ``argument`` otherwise."""
    kind = str(getattr(segmentation_type, "value", segmentation_type)).upper()
    if kind not in SEGMENTATION_TYPES:
        raise InputError(f"{argument} must be one of {list(SEGMENTATION_TYPES)}; got {segmentation_type!r}")
    return kind


def plan_segments(array: np.ndarray, *, input_kind: str = "auto", labels: Any = None,
                  channels: "Sequence[int] | None" = None, background: "bool | int | None" = None,
                  algorithm: "AlgorithmIdentificationSequence | None" = None,
                  algorithm_type: str = "AUTOMATIC") -> OutputSegmentPlan:
    """Classify ``array`` ``(C, X, Y, Z)`` and plan its segments (the labels contract).

    Raises
    ------
    InputError
        NaN values, probabilities outside [0, 1], any mismatch between
        ``labels`` and the output (see
        :func:`~monai_dicomseg.io.prediction.plan_output_segments`).
    """
    if device_grid.is_tensor(array):  # a tensor on a GPU: classified there (io/device_grid.py, issue 25)
        kind, present, partition = describe_tensor(array, input_kind)
        return plan_output_segments(
            kind, int(array.shape[0]), labels, channels=channels, background=background, present=present,
            partition=partition, algorithm_identification=algorithm, algorithm_type=algorithm_type)
    values = None if array.dtype == bool or np.issubdtype(array.dtype, np.integer) else value_range(array)
    kind = classify_input(array, input_kind, values)
    if kind is InputKind.PROBABILITIES:
        check_probabilities(array, values)
    present = np.unique(array).tolist() if kind is InputKind.LABELS else None
    return plan_output_segments(
        kind, array.shape[0], labels, channels=channels, background=background, present=present,
        partition=lambda: is_channel_partition(array), algorithm_identification=algorithm,
        algorithm_type=algorithm_type)


def build_segmentation(
    array: np.ndarray,
    affine: np.ndarray,
    source: SourceSeries,
    *,
    segmentation_type: str = BINARY,
    space: str = "RAS",
    labels: Any = None,
    channels: "Sequence[int] | None" = None,
    background: "bool | int | None" = None,
    input_kind: str = "auto",
    discretize: str = "auto",
    threshold: float = 0.5,
    interpolation: str = "auto",
    algorithm: "AlgorithmIdentificationSequence | None" = None,
    algorithm_type: str = "AUTOMATIC",
    allow_grid_mismatch: bool = False,
    encoder_options: "Mapping[str, Any] | None" = None,
) -> BuiltSegmentation:
    """Encode ``array`` (on its own grid) as a SEG of ``source`` (on the source grid); nothing is written.

    Parameters
    ----------
    array
        ``(C, X, Y, Z)`` numeric: one channel of integer labels, C one-hot
        channels or C probability channels (``input_kind``).
    affine
        ``(4, 4)`` index -> ``space`` mm affine of ``array``'s grid.
    source
        The source series (headers suffice: :func:`~monai_dicomseg.io.source_series.load_source_geometry`).
    segmentation_type
        ``"BINARY"``, ``"FRACTIONAL"`` or ``"LABELMAP"``.
    labels, channels, background, input_kind, algorithm, algorithm_type
        The labels contract (:func:`plan_segments`).
    discretize, threshold, interpolation
        See :func:`~monai_dicomseg.io.prediction.to_source_grid` (the defaults are decided there).
    allow_grid_mismatch
        Resample a grid lying mostly outside the series instead of refusing it.
    encoder_options
        Keyword arguments of :class:`~monai_dicomseg.seg.Segmentation` besides
        the source images, pixel array, type, descriptions and UIDs
        (``series_number``, ``instance_number``, ``transfer_syntax_uid``, ...).
        New Series and SOP Instance UIDs are generated unless given.

    Raises
    ------
    GeometryError
        The grid does not correspond to the source series.
    InputError
        Bad array or labels (see :func:`plan_segments`), bad options.
    """
    from monai_dicomseg.seg.segmentation import Segmentation
    from monai_dicomseg.uid import UID

    kind = check_segmentation_type(segmentation_type)
    geometry = source.geometry
    correspondence = check_grid_correspondence(  # before any work on the array
        affine, array.shape[1:], geometry.affine, geometry.spatial_shape, space=space,
        allow_grid_mismatch=allow_grid_mismatch)
    segment_plan = plan_segments(array, input_kind=input_kind, labels=labels, channels=channels,
                                 background=background, algorithm=algorithm, algorithm_type=algorithm_type)
    grid_plan = plan_grid_mapping(affine, array.shape[1:], geometry.affine, geometry.spatial_shape, space=space)
    pixels = to_source_grid(array, segment_plan, grid_plan, kind, discretize=discretize, threshold=threshold,
                            interpolation=interpolation)
    options: dict[str, Any] = {"series_instance_uid": UID(), "sop_instance_uid": UID(), "instance_number": 1}
    options.update(encoder_options or {})
    pixels = source.source_frames(pixels)  # type: ignore[arg-type]  # SourceSeries.source_frames takes a StackedSegmentSource too (it checks isinstance); its annotation says ndarray; frames of source images only: none for a filled slice (gaps)
    seg = Segmentation(**source.segmentation_sources(), pixel_array=pixels, segmentation_type=kind,
                       segment_descriptions=segment_plan.descriptions, **options)
    return BuiltSegmentation(seg, segment_plan, grid_plan, correspondence)


def prepare_output_path(filename: "str | os.PathLike[str]", overwrite: bool, *, create_folder: bool = True,
                        overwrite_hint: str = "overwrite=True") -> Path:
    """Check that ``filename`` may be written (before any work is done); create its folder if asked.

    Parameters
    ----------
    filename
        The output file.
    overwrite
        Whether an existing file may be replaced.
    create_folder
        Create a missing folder (the MONAI writer); False refuses it (the command line).
    overwrite_hint
        How the caller's user allows overwriting, for the message (``"--overwrite"`` on the command line).

    Raises
    ------
    OutputExistsError
        (an InputError) ``filename`` exists and ``overwrite`` is False.
    InputError
        The folder is missing (``create_folder=False``) or cannot be created or written; ``filename`` is a
        directory.
    """
    path = Path(filename)
    folder = path.parent if str(path.parent) else Path(".")
    if create_folder:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InputError(f"output folder {str(folder)!r} cannot be created: {error.strerror or error}") from None
    elif not folder.is_dir():
        raise InputError(f"output folder {str(folder)!r} does not exist")
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"output folder {str(folder)!r} is not a writable directory")
    if path.is_dir():
        raise InputError(f"output path {str(path)!r} is a directory")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"output {str(path)!r} exists; pass {overwrite_hint} to replace it "
                                "(no silent overwrite)")
    return path
