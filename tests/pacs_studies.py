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
                  seed: int = 0) -> list[dict[str, Any]]:
    """``count`` studies on disk under ``root/caseNNNN/`` (``ct/`` + ``seg.dcm``), all with ``patient_id``."""
    studies = []
    for case in range(count):
        labels = synthetic.make_ellipsoid_labels(shape, n_labels=2, seed=seed + case)
        ct = synthetic.make_ct_series(shape, labels=labels, seed=seed + case)
        for ds in ct:
            ds.PatientID = patient_id
        folder = root / f"case{case:04d}"
        files = synthetic.write_series(ct, folder / "ct")
        seg = _segmentation(ct, labels)
        seg.save_as(folder / "seg.dcm")
        studies.append({"ct_files": [Path(f) for f in files], "seg": folder / "seg.dcm",
                        "study_uid": str(ct[0].StudyInstanceUID), "series_uid": str(ct[0].SeriesInstanceUID),
                        "seg_series_uid": str(seg.SeriesInstanceUID), "seg_uid": str(seg.SOPInstanceUID)})
    return studies


def upload_studies(server: Any, studies: list[dict[str, Any]]) -> None:
    """STOW-RS every file of ``studies`` (no read-back check: faster)."""
    from monai_dicomseg.dicomweb import store

    files = [f for study in studies for f in [*study["ct_files"], study["seg"]]]
    store(files, server, verify=False)
