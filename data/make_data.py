"""Regenerate the example dataset in ``data/`` (deterministic).

Run from the repository root::

    python data/make_data.py            # rewrites data/ct1 and data/ct2
    python data/make_data.py OUT_DIR    # writes the same files under OUT_DIR

Two short synthetic CT series (:mod:`monai_dicomseg.synthetic`) and, for each,
a BINARY, a FRACTIONAL and a LABELMAP SEG written by ``monai_dicomseg``'s own
writer (``monai_dicomseg.seg.Segmentation``), plus a NIfTI label map and its
dcmqi-style JSON sidecar for ``ct1`` (written by ``monai-dicomseg to-nifti``'s
function). Everything is reproducible: label maps come from fixed seeds, every
UID is derived from :data:`UID_ROOT` and the file's role, and the dates that a
writer would take from the clock are fixed, so running the script twice gives
byte-identical files (with the same pydicom / nibabel versions).

Needs only the light install (numpy, pydicom, nibabel): no torch, no MONAI.
"""
from __future__ import annotations

import gzip
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import generate_uid

#: Root of every UID in data/ (pydicom's registered prefix, PS3.5 9.1); the
#: suffix is a hash of the file's role, e.g. "ct1/series/0003.dcm".
UID_ROOT = "1.2.826.0.1.3680043.8.498."
#: Date and time written into every instance (instead of the clock).
FIXED_DATE, FIXED_TIME = "20240102", "030405"
DATA_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Case:
    """One CT series and the segments drawn into it."""

    name: str
    shape: tuple[int, int, int]          # (slices, rows, columns)
    spacing: tuple[float, float, float]  # (slice, row, column) mm
    orientation: str
    organs: tuple[str, ...]
    seed: int
    series_number: int
    nifti: bool


CASES = (
    Case("ct1", (16, 64, 64), (2.5, 0.8, 0.8), "axial", ("liver", "spleen", "left kidney"),
         seed=1, series_number=1, nifti=True),
    Case("ct2", (12, 48, 56), (2.0, 1.0, 0.9), "coronal", ("liver", "spleen"),
         seed=2, series_number=2, nifti=False),
)


def uid(role: str) -> str:
    """The fixed UID of ``role`` (e.g. ``"ct1/seg_binary.dcm"``)."""
    return str(generate_uid(prefix=UID_ROOT, entropy_srcs=["monai_dicomseg data/", role]))


def _fix_series_uids(datasets: list[pydicom.Dataset], case: Case) -> None:
    """Replace the random study/series/frame-of-reference/instance UIDs by fixed ones."""
    study, series, frame_of_reference = uid("study"), uid(f"{case.name}/series"), uid(
        f"{case.name}/frame_of_reference")
    for ds in datasets:
        number = int(ds.InstanceNumber)
        instance = uid(f"{case.name}/series/{number:04d}.dcm")
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.FrameOfReferenceUID = frame_of_reference
        ds.SOPInstanceUID = instance
        ds.file_meta.MediaStorageSOPInstanceUID = instance
        ds.SeriesDescription = f"synthetic CT {case.name} ({case.orientation})"


def _fix_seg(seg: pydicom.Dataset, role: str) -> None:
    """Fixed dates and Dimension Organization UID (the writer takes them from the clock / UID())."""
    for keyword in ("InstanceCreationDate", "SeriesDate", "ContentDate"):
        setattr(seg, keyword, FIXED_DATE)
    for keyword in ("InstanceCreationTime", "SeriesTime", "ContentTime"):
        setattr(seg, keyword, FIXED_TIME)
    organization = uid(f"{role}/dimension_organization")
    for item in seg.get("DimensionOrganizationSequence", []):
        item.DimensionOrganizationUID = organization
    for item in seg.get("DimensionIndexSequence", []):
        item.DimensionOrganizationUID = organization


def probabilities(labels: np.ndarray, n_segments: int) -> np.ndarray:
    """``(F, R, C, S) float32``: 1.0 inside each organ, 0.4 on a one-voxel in-plane rim.

    The rim stays below 0.5, so ``threshold=0.5`` gives back the label map
    exactly (no voxel is >= 0.5 in two segments).
    """
    one_hot = labels[..., None] == np.arange(1, n_segments + 1)
    grown = one_hot.copy()
    for axis in (1, 2):
        grown |= np.roll(one_hot, 1, axis=axis) | np.roll(one_hot, -1, axis=axis)
    return np.where(one_hot, 1.0, np.where(grown, 0.4, 0.0)).astype(np.float32)


def write_case(case: Case, out: Path) -> list[Path]:
    """Write one case under ``out/<name>/``; return the files written."""
    import monai_dicomseg as hd
    from monai_dicomseg import synthetic
    from monai_dicomseg.anatomy import segment_descriptions_from_names

    folder = out / case.name
    labels = synthetic.make_ellipsoid_labels(case.shape, n_labels=len(case.organs), seed=case.seed)
    sources = synthetic.make_ct_series(case.shape, spacing=case.spacing, orientation=case.orientation,
                                       labels=labels, series_number=case.series_number)
    _fix_series_uids(sources, case)
    for old in sorted((folder / "series").glob("*.dcm")) if (folder / "series").is_dir() else []:
        old.unlink()
    written = synthetic.write_series(sources, folder / "series")
    pixel_arrays = {
        "binary": labels,                                   # label map -> one segment per value
        "fractional": probabilities(labels, len(case.organs)),
        "labelmap": labels,
    }
    for kind, pixel_array in pixel_arrays.items():
        role = f"{case.name}/seg_{kind}.dcm"
        seg = hd.seg.Segmentation(
            source_images=sources,
            pixel_array=pixel_array,
            segmentation_type=kind.upper(),
            segment_descriptions=segment_descriptions_from_names(case.organs, algorithm_type="MANUAL"),
            series_instance_uid=uid(f"{role}/series"),
            series_number=100 + case.series_number,
            sop_instance_uid=uid(role),
            instance_number=1,
            manufacturer="monai_dicomseg",
            manufacturer_model_name="data/make_data.py",
            software_versions="0.1.0",
            device_serial_number="0000",
            max_fractional_value=255,
            content_label=kind.upper()[:16],
            content_description=f"synthetic {kind} segmentation of {case.name}",
        )
        _fix_seg(seg, role)
        path = folder / f"seg_{kind}.dcm"
        seg.save_as(path, enforce_file_format=True)
        written.append(path)
    if case.nifti:
        written += _write_nifti(folder)
    return written


def _write_nifti(folder: Path) -> list[Path]:
    """``labels.nii.gz`` + ``labels.json`` from the LABELMAP SEG on the series grid.

    nibabel stamps the gzip header with the current time; the file is re-packed
    with ``mtime=0`` so that it is byte-reproducible.
    """
    from monai_dicomseg.cli.to_nifti import seg_to_nifti

    target = folder / "labels.nii.gz"
    written = seg_to_nifti(str(folder / "seg_labelmap.dcm"), str(target),
                           source=str(folder / "series"), overwrite=True)
    raw = gzip.decompress(target.read_bytes())
    with open(target, "wb") as stream, gzip.GzipFile(filename="", mode="wb", fileobj=stream,
                                                      mtime=0, compresslevel=9) as packed:
        packed.write(raw)
    return written


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else DATA_DIR
    for case in CASES:
        for path in write_case(case, out):
            print(f"{path.relative_to(out)}  {path.stat().st_size:,} B")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
