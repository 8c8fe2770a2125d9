"""Upload many small synthetic studies (a CT series + one SEG each) to a DICOMweb server (issue 27 tests, benchmark)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import monai_dicomseg as mds
from monai_dicomseg import synthetic


def _segmentation(ct: list, labels: Any) -> Any:
    from pydicom.sr.codedict import codes

    descriptions = [mds.seg.SegmentDescription(
        segment_number=n, segment_label=f"organ {n}", segmented_property_category=codes.SCT.Organ,
        segmented_property_type=codes.SCT.Liver, algorithm_type="MANUAL") for n in (1, 2)]
    return mds.seg.Segmentation(
        source_images=ct, pixel_array=labels, segmentation_type="BINARY", segment_descriptions=descriptions,
        series_instance_uid=mds.UID(), series_number=2, sop_instance_uid=mds.UID(), instance_number=1,
        manufacturer="test", manufacturer_model_name="test", software_versions="0", device_serial_number="0")


def write_studies(root: Path, count: int, patient_id: str, shape: tuple[int, int, int] = (3, 8, 8),
                  seed: int = 0, segs_per_study: int = 1) -> list[dict[str, Any]]:
    """``count`` studies on disk under ``root/caseNNNN/`` (``ct/`` + ``seg.dcm``, ``seg1.dcm``...), all with
    ``patient_id``; the keys of the first SEG, and ``"segs"``: every SEG (path, series UID, instance UID)."""
    studies = []
    for case in range(count):
        labels = synthetic.make_ellipsoid_labels(shape, n_labels=2, seed=seed + case)
        ct = synthetic.make_ct_series(shape, labels=labels, seed=seed + case)
        for ds in ct:
            ds.PatientID = patient_id
        folder = root / f"case{case:04d}"
        files = synthetic.write_series(ct, folder / "ct")
        segs = []
        for number in range(segs_per_study):
            seg = _segmentation(ct, labels)
            path = folder / (f"seg{number}.dcm" if number else "seg.dcm")
            seg.save_as(path)
            segs.append({"path": path, "series_uid": str(seg.SeriesInstanceUID), "uid": str(seg.SOPInstanceUID)})
        studies.append({"ct_files": [Path(f) for f in files], "seg": segs[0]["path"], "segs": segs,
                        "study_uid": str(ct[0].StudyInstanceUID), "series_uid": str(ct[0].SeriesInstanceUID),
                        "seg_series_uid": segs[0]["series_uid"], "seg_uid": segs[0]["uid"],
                        "voxels": int((labels > 0).sum())})
    return studies


def upload_studies(server: Any, studies: list[dict[str, Any]]) -> None:
    """STOW-RS every file of ``studies`` (no read-back check: faster)."""
    from monai_dicomseg.dicomweb import store

    files = [f for study in studies for f in [*study["ct_files"], *(seg["path"] for seg in study["segs"])]]
    store(files, server, verify=False)
