"""Module-level attributes of a Segmentation instance (PS3.3 A.51, C.8.20).

Each function fills one group of modules of the Segmentation IOD on a
dataset being built; :mod:`monai_dicomseg.seg.encode` calls them in order.
"""
from __future__ import annotations

import copy
import datetime
from collections.abc import Sequence

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from monai_dicomseg.codec import raw
from monai_dicomseg.seg.sources import SourceFrames, stored_uid

__all__ = [
    "copy_patient_and_study",
    "set_series_and_equipment",
    "set_instance_dates",
    "set_common_instance_reference",
    "set_raw",
]

# Patient (C.7.1.1) and General Study (C.7.2.1) attributes of type 2: present, maybe empty.
_PATIENT_STUDY_TYPE_2 = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
    "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
)
# Optional attributes copied when the source has them (C.7.1.1, C.7.2.1, C.7.2.2, C.7.1.3).
_PATIENT_STUDY_OPTIONAL = (
    "IssuerOfPatientID", "OtherPatientIDsSequence", "PatientIdentityRemoved",
    "DeidentificationMethod", "DeidentificationMethodCodeSequence", "PatientAge",
    "PatientSize", "PatientWeight", "StudyDescription",
    "ClinicalTrialSponsorName", "ClinicalTrialProtocolID", "ClinicalTrialProtocolName",
    "ClinicalTrialSiteID", "ClinicalTrialSiteName", "ClinicalTrialSubjectID",
    "ClinicalTrialSubjectReadingID", "ClinicalTrialTimePointID",
    "IssuerOfAccessionNumberSequence", "IssuerOfPatientIDQualifiersSequence",
    # Specimen Module (C.7.6.22), present for slide microscopy sources
    "ContainerIdentifier", "IssuerOfTheContainerIdentifierSequence",
    "AlternateContainerIdentifierSequence", "ContainerTypeCodeSequence",
    "ContainerDescription", "ContainerComponentSequence", "SpecimenDescriptionSequence",
)


def set_raw(dataset: Dataset, keyword: str, vr: str, value: bytes) -> None:
    """Store an already encoded (Explicit VR Little Endian) element value unparsed."""
    tag = Tag(keyword)
    dataset[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)  # public: kept unconverted


def copy_patient_and_study(dataset: Dataset, source: Dataset) -> None:
    """Copy Patient, General Study and Patient Study attributes from the source (PS3.3 C.7.1–C.7.2)."""
    dataset.SpecificCharacterSet = source.get("SpecificCharacterSet", "ISO_IR 100") or "ISO_IR 100"
    dataset.StudyInstanceUID = source.StudyInstanceUID
    for keyword in _PATIENT_STUDY_TYPE_2:
        if keyword in source:
            dataset[keyword] = copy.deepcopy(source[keyword])
        else:
            setattr(dataset, keyword, None)
    for keyword in _PATIENT_STUDY_OPTIONAL:
        if keyword in source:
            dataset[keyword] = copy.deepcopy(source[keyword])


def set_series_and_equipment(
    dataset: Dataset,
    *,
    series_instance_uid: str,
    series_number: int,
    manufacturer: str,
    manufacturer_model_name: str,
    software_versions: str | Sequence[str],
    device_serial_number: str,
    frame_of_reference_uid: str | None,
    position_reference_indicator: str | None,
) -> None:
    """Segmentation Series (C.8.20.1), Frame of Reference (C.7.4.1), (Enhanced) General Equipment (C.7.5)."""
    dataset.Modality = "SEG"
    dataset.SeriesInstanceUID = series_instance_uid
    dataset.SeriesNumber = series_number
    dataset.Manufacturer = manufacturer
    dataset.ManufacturerModelName = manufacturer_model_name
    dataset.SoftwareVersions = software_versions
    dataset.DeviceSerialNumber = device_serial_number
    if frame_of_reference_uid is not None:
        dataset.FrameOfReferenceUID = frame_of_reference_uid
        dataset.PositionReferenceIndicator = position_reference_indicator


def set_instance_dates(dataset: Dataset, now: datetime.datetime | None = None) -> None:
    """Instance Creation and Content Date/Time (C.12.1, C.7.6.1), and Series Date/Time."""
    now = now or datetime.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S.%f")
    dataset.InstanceCreationDate = date
    dataset.InstanceCreationTime = time
    dataset.SeriesDate = date
    dataset.SeriesTime = time
    dataset.ContentDate = date
    dataset.ContentTime = time


def set_common_instance_reference(dataset: Dataset, sources: SourceFrames) -> None:
    """ReferencedSeriesSequence (C.12.2) and the General Image SourceImageSequence (C.7.6.1).

    Both are encoded directly as bytes: a 500-instance series would otherwise
    need 1,000 pydicom Datasets.
    """
    by_series: dict[str, list[bytes]] = {}
    source_items = []
    for source in sources.datasets:
        reference = (raw.ui("ReferencedSOPClassUID", stored_uid(source, "SOPClassUID")),
                     raw.ui("ReferencedSOPInstanceUID", stored_uid(source, "SOPInstanceUID")))
        series_uid = stored_uid(source, "SeriesInstanceUID")
        by_series.setdefault(series_uid, []).append(raw.item(*reference))
        source_items.append(raw.item(*reference))
    series_items = [
        raw.item(raw.sequence("ReferencedInstanceSequence", instances),
                 raw.ui("SeriesInstanceUID", series_uid))
        for series_uid, instances in by_series.items()
    ]
    set_raw(dataset, "ReferencedSeriesSequence", "SQ", b"".join(series_items))
    set_raw(dataset, "SourceImageSequence", "SQ", b"".join(source_items))
