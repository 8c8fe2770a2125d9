"""Synthetic (series, SEG) cases and an independent ground truth for the MONAI-layer tests.

The truth does not use the package's geometry code: each voxel of a grid
(MONAI affine, RAS) is mapped to patient coordinates and back to the
generation indices ``(k, r, c)`` of :func:`monai_dicomseg.synthetic.make_ct_series`
using only the datasets' ImagePositionPatient / ImageOrientationPatient /
PixelSpacing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from monai_dicomseg import synthetic

SHAPE = (8, 24, 20)
ORGANS = ["liver", "spleen", "kidney"]
ORGAN_CODES = [codes.SCT.Liver, codes.SCT.Spleen, codes.SCT.Kidney]

COMMON = {
    "series_number": 300, "instance_number": 1, "manufacturer": "test",
    "manufacturer_model_name": "test", "software_versions": "0.1", "device_serial_number": "1",
}


@dataclass
class Case:
    """A written series folder, a written SEG and the generation-order truth."""

    series_folder: Path
    seg_path: Path
    labels: np.ndarray  # (F, R, C) generation order
    datasets: list  # generation order
    segment_numbers: list[int]  # SEG segment number of label value 1, 2, ...


def descriptions(module: Any, order: "list[int] | None" = None) -> list[Any]:
    """Segment descriptions numbered 1.. for the organs in ``order`` (indices into ORGANS)."""
    order = list(range(len(ORGANS))) if order is None else order
    return [
        module.seg.SegmentDescription(
            segment_number=number,
            segment_label=ORGANS[i],
            segmented_property_category=codes.SCT.Organ,
            segmented_property_type=ORGAN_CODES[i],
            algorithm_type=module.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for number, i in enumerate(order, start=1)
    ]


def highdicom_binary_seg(path: Any, datasets: list, labels: Any) -> Any:
    """A BINARY SEG of label map ``labels`` (values 1..3 = the first three ORGANS) written by highdicom, the
    independent producer, from ``datasets``; returns ``path``."""
    import highdicom as hd
    import numpy as np

    stacked = labels[..., None] == np.arange(1, 4, dtype=labels.dtype)
    seg = hd.seg.Segmentation(
        source_images=datasets, pixel_array=stacked, segmentation_type="BINARY",
        segment_descriptions=descriptions(hd), series_instance_uid=hd.UID(),
        sop_instance_uid=hd.UID(), series_number=20, instance_number=1, manufacturer="test",
        manufacturer_model_name="test", software_versions="0", device_serial_number="0")
    seg.save_as(path)
    return path


def make_case(
    folder: Path,
    *,
    orientation: Any = "axial",
    flip_rows: bool = False,
    reverse_order: bool = False,
    shuffle_instance_numbers: bool = False,
    segmentation_type: str = "BINARY",
    writer: str = "ours",
    scramble_sources: bool = False,
    omit_empty: bool = True,
    empty_slices: tuple[int, ...] = (0, 1),
    shape: tuple[int, int, int] = SHAPE,
    seed: int = 0,
    frame_of_reference_uid: "str | None" = None,
) -> Case:
    """Write a CT series and a SEG of its labels (label v -> segment v)."""
    labels = synthetic.make_ellipsoid_labels(shape, n_labels=3, seed=seed)
    labels[list(empty_slices)] = 0  # frames the SEG may omit
    datasets = synthetic.make_ct_series(
        shape=shape, orientation=orientation, flip_rows=flip_rows, reverse_order=reverse_order,
        shuffle_instance_numbers=shuffle_instance_numbers, labels=labels, seed=seed,
        frame_of_reference_uid=frame_of_reference_uid,
    )
    series_folder = folder / "series"
    synthetic.write_series(datasets, series_folder)
    order = np.arange(shape[0])
    if scramble_sources:
        order = np.random.default_rng(seed + 7).permutation(shape[0])
    sources = [datasets[i] for i in order]
    stacked = labels[order][..., None] == np.arange(1, 4, dtype=labels.dtype)
    if writer == "highdicom":
        import highdicom as module
    else:
        import monai_dicomseg as module
    seg = module.seg.Segmentation(
        source_images=sources,
        pixel_array=stacked if segmentation_type != "LABELMAP" else labels[order],
        segmentation_type=segmentation_type,
        segment_descriptions=descriptions(module),
        series_instance_uid=module.UID(), sop_instance_uid=module.UID(),
        omit_empty_frames=omit_empty,
        **COMMON,
    )
    seg_path = folder / "seg.dcm"
    seg.save_as(seg_path)
    return Case(series_folder, seg_path, labels, datasets, [1, 2, 3])


def generation_affine(datasets: list) -> np.ndarray:
    """LPS affine of generation indices ``(k, r, c)`` from the raw attributes."""
    first, second = datasets[0], datasets[1]
    iop = np.asarray(first.ImageOrientationPatient, dtype=float)
    dr, dc = (float(v) for v in first.PixelSpacing)
    p0 = np.asarray(first.ImagePositionPatient, dtype=float)
    p1 = np.asarray(second.ImagePositionPatient, dtype=float)
    affine = np.eye(4)
    affine[:3, 0] = p1 - p0
    affine[:3, 1] = iop[3:] * dr
    affine[:3, 2] = iop[:3] * dc
    affine[:3, 3] = p0
    return affine


def truth_on_grid(labels: np.ndarray, datasets: list, affine: Any, shape: tuple[int, ...],
                  space: str = "RAS") -> np.ndarray:
    """Label of each voxel of a MONAI grid (``affine`` in ``space``), from the generation truth."""
    affine = np.asarray(affine, dtype=float)
    if space == "RAS":
        affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=0).reshape(3, -1)
    world = affine[:3, :3] @ grid + affine[:3, 3:4]
    index = np.linalg.solve(generation_affine(datasets), np.vstack([world, np.ones(world.shape[1])]))[:3]
    rounded = np.round(index).astype(int)
    assert np.allclose(index, rounded, atol=1e-3), "grid is not aligned with the generation grid"
    inside = np.all((rounded >= 0) & (rounded < np.asarray(labels.shape)[:, None]), axis=0)
    truth = np.zeros(world.shape[1], dtype=labels.dtype)
    truth[inside] = labels[tuple(rounded[:, inside])]
    return truth.reshape(shape)


def read_headers(folder: Path) -> list:
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.glob("*.dcm"))]


def write_dcmqi_seg(case_folder: Path, series_folder: Path, labels: np.ndarray, datasets: list,
                    extra_args: tuple = ()) -> Path:
    """Write a SEG of ``labels`` (generation order) with dcmqi's ``itkimage2segimage``.

    The label map is written as NIfTI on the series' grid (nibabel affine from
    the raw attributes, LPS -> RAS) and converted by dcmqi, which places each
    slice on the source image of the same position. Skips if dcmqi is missing.
    """
    import json
    import subprocess

    import nibabel
    import pytest
    from oracles import find_tool

    tool = find_tool("itkimage2segimage")
    if tool is None:
        pytest.skip("itkimage2segimage not found (pip install dcmqi)")
    # nibabel array axes (i, j, k) = (column, row, generation slice)
    lps = generation_affine(datasets)[:, [2, 1, 0, 3]]
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    nifti = case_folder / "labels.nii.gz"
    nibabel.save(nibabel.Nifti1Image(np.ascontiguousarray(labels.transpose(2, 1, 0)).astype(np.uint8), ras), nifti)
    attributes = [
        {"labelID": i + 1, "SegmentDescription": ORGANS[i], "SegmentLabel": ORGANS[i],
         "SegmentAlgorithmType": "MANUAL",
         "SegmentedPropertyCategoryCodeSequence": {"CodeValue": "91772007", "CodingSchemeDesignator": "SCT",
                                                   "CodeMeaning": "Organ"},
         "SegmentedPropertyTypeCodeSequence": {"CodeValue": ORGAN_CODES[i].value,
                                               "CodingSchemeDesignator": "SCT",
                                               "CodeMeaning": ORGAN_CODES[i].meaning},
         "recommendedDisplayRGBValue": [200, 100, 50]}
        for i in range(3)
    ]
    meta = {"ContentCreatorName": "test", "ClinicalTrialSeriesID": "1", "ClinicalTrialTimePointID": "1",
            "SeriesDescription": "dcmqi", "SeriesNumber": "300", "InstanceNumber": "1",
            "segmentAttributes": [attributes], "ContentLabel": "SEG", "ContentDescription": "dcmqi",
            "ClinicalTrialCoordinatingCenterName": "test", "BodyPartExamined": ""}
    meta_path = case_folder / "meta.json"
    meta_path.write_text(json.dumps(meta))
    out = case_folder / "dcmqi_seg.dcm"
    result = subprocess.run(
        [str(tool), "--inputImageList", str(nifti), "--inputDICOMDirectory", str(series_folder),
         "--outputDICOM", str(out), "--inputMetadata", str(meta_path), *extra_args, "--skip"],
        capture_output=True, text=True, timeout=120)
    if result.returncode != 0 or not out.exists():
        raise RuntimeError(f"itkimage2segimage failed: {result.stdout[-2000:]} {result.stderr[-2000:]}")
    return out
