"""Demo: write a synthetic CT segmentation as BINARY, FRACTIONAL and LABELMAP SEGs.

Run with ``make demo`` (or ``python tutorials/demo.py``). It

1. builds a small synthetic CT series with a few ellipsoid "organs" in a
   temporary folder,
2. writes the organ label map as a BINARY, a FRACTIONAL and a LABELMAP DICOM
   SEG with ``monai_dicomseg`` (highdicom's API: ``import monai_dicomseg as hd``),
3. reads each SEG back and compares it with what was written,

and prints one line per SEG. The exit status is non-zero when a round trip
fails.
"""
from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.sr.codedict import codes

import monai_dicomseg as hd

SHAPE = (12, 64, 80)  # slices, rows, columns
ORGANS = ("liver", "spleen", "left kidney", "right kidney")
MAX_FRACTIONAL_VALUE = 255


def segment_descriptions() -> list[hd.seg.SegmentDescription]:
    """One MANUAL description per organ, numbered 1, 2, ..."""
    property_types = (codes.SCT.Liver, codes.SCT.Spleen, codes.SCT.Kidney, codes.SCT.Kidney)
    return [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=label,
            segmented_property_category=codes.SCT.Organ,
            segmented_property_type=property_type,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for number, (label, property_type) in enumerate(zip(ORGANS, property_types), start=1)
    ]


def probabilities(labels: np.ndarray) -> np.ndarray:
    """``(F, R, C, S) float32`` soft masks: 1 inside each organ, 0.5 on its border."""
    one_hot = labels[..., None] == np.arange(1, len(ORGANS) + 1)
    grown = one_hot.copy()
    for axis in (1, 2):
        grown |= np.roll(one_hot, 1, axis=axis) | np.roll(one_hot, -1, axis=axis)
    return np.where(one_hot, 1.0, np.where(grown, 0.5, 0.0)).astype(np.float32)


def write_seg(sources: Sequence[pydicom.Dataset], pixel_array: np.ndarray,
              segmentation_type: str, path: Path) -> int:
    """Write one SEG and return its number of frames."""
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=pixel_array,
        segmentation_type=segmentation_type,
        segment_descriptions=segment_descriptions(),
        series_instance_uid=hd.UID(),
        series_number=100,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer='monai_dicomseg',
        manufacturer_model_name='demo',
        software_versions=hd.__version__,
        device_serial_number='0000',
        max_fractional_value=MAX_FRACTIONAL_VALUE,
    )
    seg.save_as(path)
    return int(seg.NumberOfFrames)


def read_with_monai_dicomseg(path: Path, sources: Sequence[pydicom.Dataset]) -> np.ndarray:
    seg = hd.seg.segread(path)
    return seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[ds.SOPInstanceUID for ds in sources],
        assert_missing_frames_are_empty=True,
    )


def read_with_highdicom(path: Path, sources: Sequence[pydicom.Dataset]) -> np.ndarray:
    import highdicom

    seg = highdicom.seg.segread(path)
    return seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[ds.SOPInstanceUID for ds in sources],
        assert_missing_frames_are_empty=True,
    )


def choose_reader(path: Path, sources: Sequence[pydicom.Dataset]
                  ) -> tuple[str, Callable[[Path, Sequence[pydicom.Dataset]], np.ndarray]]:
    """Our reader when it works; otherwise highdicom, clearly labelled."""
    try:
        read_with_monai_dicomseg(path, sources)
        return "monai_dicomseg", read_with_monai_dicomseg
    except (ImportError, AttributeError, NotImplementedError) as error:
        print(f"note: monai_dicomseg reader unavailable ({type(error).__name__}: {error}); "
              "reading back with highdicom instead")
        return "highdicom (fallback)", read_with_highdicom


def main() -> int:
    labels = hd.synthetic.make_ellipsoid_labels(SHAPE, n_labels=len(ORGANS), seed=42)
    sources = hd.synthetic.make_ct_series(SHAPE, spacing=(3.0, 0.8, 0.8), labels=labels)
    inputs = {
        "BINARY": (labels, labels[..., None] == np.arange(1, len(ORGANS) + 1)),
        "FRACTIONAL": (probabilities(labels), probabilities(labels)),
        "LABELMAP": (labels, labels[..., None] == np.arange(1, len(ORGANS) + 1)),
    }
    failures = 0
    with tempfile.TemporaryDirectory(prefix="monai_dicomseg_demo_") as folder:
        folder = Path(folder)
        hd.synthetic.write_series(sources, folder / "ct")
        print(f"synthetic CT: {len(sources)} slices of {SHAPE[1]}x{SHAPE[2]}, "
              f"{len(ORGANS)} organs, written to {folder / 'ct'}")
        reader_name, reader = None, None
        print(f"{'type':<11} {'frames':>6} {'size':>10}  {'reader':<22} round trip")
        for segmentation_type, (pixel_array, expected) in inputs.items():
            path = folder / f"seg_{segmentation_type.lower()}.dcm"
            frames = write_seg(sources, pixel_array, segmentation_type, path)
            if reader is None:
                reader_name, reader = choose_reader(path, sources)
            read_back = reader(path, sources)
            ok = read_back.shape == expected.shape and np.allclose(
                read_back, expected, atol=1 / MAX_FRACTIONAL_VALUE)
            failures += not ok
            print(f"{segmentation_type:<11} {frames:>6} {path.stat().st_size:>9,}B  "
                  f"{reader_name:<22} {'OK' if ok else 'FAILED'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
