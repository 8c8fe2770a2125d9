"""Series from real archives built at test time, shared by the io/ and cli/ tests.

* :func:`two_phase_datasets` / :func:`write_two_phase_series`: one series (folder) holding two temporal positions at
  the same slice positions (the case where geometry alone cannot tell a SEG's volume).
* :func:`liver_seg`: a one-segment BINARY SEG written by highdicom (the independent
  producer) over the given source images.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from monai_dicomseg.synthetic import make_ct_series, make_ellipsoid_labels


def two_phase_datasets(shape: tuple[int, int, int]) -> tuple[list, list]:
    """Phases 1 and 2 (TemporalPositionIndex) of one series at the same slice positions, different pixels."""
    first = make_ct_series(shape, labels=make_ellipsoid_labels(shape, 3, 0))
    second = make_ct_series(shape, labels=make_ellipsoid_labels(shape, 3, 1),
                            frame_of_reference_uid=str(first[0].FrameOfReferenceUID))
    for phase, datasets in ((1, first), (2, second)):
        for ds in datasets:
            ds.SeriesInstanceUID = first[0].SeriesInstanceUID
            ds.StudyInstanceUID = first[0].StudyInstanceUID
            ds.TemporalPositionIndex = phase
            ds.InstanceNumber = int(ds.InstanceNumber) + 100 * phase
    return first, second


def write_two_phase_series(folder: Path, shape: tuple[int, int, int]) -> tuple[list, list]:
    """Write :func:`two_phase_datasets` into ``folder``; returns the datasets of phases 1 and 2."""
    first, second = two_phase_datasets(shape)
    folder.mkdir(parents=True)
    for ds in first + second:
        ds.save_as(folder / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
    return first, second


def liver_seg(source_images: list, mask: np.ndarray, **plane_kwargs):
    """A BINARY highdicom SEG of one AUTOMATIC 'liver' segment over ``source_images``."""
    import highdicom as hd

    algorithm = hd.AlgorithmIdentificationSequence(
        name="test", family=hd.sr.CodedConcept("123110", "DCM", "Artificial Intelligence"), version="1")
    description = hd.seg.SegmentDescription(
        segment_number=1, segment_label="s1",
        segmented_property_category=hd.sr.CodedConcept("91723000", "SCT", "Anatomical Structure"),
        segmented_property_type=hd.sr.CodedConcept("10200004", "SCT", "Liver"),
        algorithm_type="AUTOMATIC", algorithm_identification=algorithm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hd.seg.Segmentation(
            source_images=source_images, pixel_array=mask, segmentation_type="BINARY",
            segment_descriptions=[description], series_instance_uid=hd.UID(), series_number=5,
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer="t", manufacturer_model_name="t",
            software_versions="1", device_serial_number="1", **plane_kwargs)


def copy_data_cases(target: Path, seg_names: "tuple[str, ...]", cases: "tuple[str, ...]" = ("ct1", "ct2")) -> Path:
    """A copy of the repository's ``data/<case>/series`` folders and the named SEGs of each case under ``target``
    (tests that write beside their inputs must not touch data/)."""
    import shutil

    data = Path(__file__).resolve().parents[1] / "data"
    for case in cases:
        shutil.copytree(data / case / "series", target / case / "series")
        for name in seg_names:
            shutil.copy(data / case / name, target / case / name)
    return target
