"""Source images for the generated test corpus (:mod:`corpus`).

The SEG files of the corpus are written by highdicom from sources built here
with :mod:`monai_dicomseg.synthetic` (CT series, slide microscopy images) and a
small Computed Radiography image, so the corpus needs nothing outside the
repository and its test dependencies.
"""
from __future__ import annotations

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ComputedRadiographyImageStorage, ExplicitVRLittleEndian, JPEGLSLossless, generate_uid

from monai_dicomseg import synthetic

#: Patient name of the CT/CR sources (the guide's examples read it back from the SEG).
PATIENT_NAME = "Doe^Archibald"

#: CT source series of the ``seg_image_ct_*`` files: 4 slices of 16 x 16.
CT_SHAPE = (4, 16, 16)
#: (slice, row, column) spacing of that series in mm.
CT_SPACING = (1.25, 0.488281, 0.488281)
#: Extra distance (mm) between the first and the second slice: like the
#: series highdicom's own files derive from, the series is irregular there.
CT_GAP = 2.5


def ct_series_with_gap(seed: int = 0) -> list[Dataset]:
    """``(4, 16, 16)`` CT series whose first slice lies ``CT_GAP`` mm further away.

    Returns
    -------
    list[pydicom.Dataset]
        Four single-frame CT datasets in spatial order (first = the isolated slice).
    """
    labels = synthetic.make_ellipsoid_labels(CT_SHAPE, n_labels=1, seed=seed)
    datasets = synthetic.make_ct_series(CT_SHAPE, spacing=CT_SPACING, labels=labels, seed=seed)
    first = datasets[0]
    cosines = np.asarray(first.ImageOrientationPatient, float)
    normal = np.cross(cosines[:3], cosines[3:])
    position = np.asarray(first.ImagePositionPatient, float) - CT_GAP * normal
    first.ImagePositionPatient = [f"{v:.6f}".rstrip("0").rstrip(".") for v in position]
    first.SliceLocation = f"{float(position @ normal):.6f}".rstrip("0").rstrip(".")
    for ds in datasets:
        ds.PatientName = PATIENT_NAME
    return datasets


def single_ct_slice(shape: tuple[int, int] = (32, 32), seed: int = 0) -> Dataset:
    """One single-frame CT image (the source of ``seg_image_ct_binary_single_frame.dcm``)."""
    return synthetic.make_ct_series((1, *shape), seed=seed, n_labels=2)[0]


def cr_image(shape: tuple[int, int] = (16, 16), seed: int = 0) -> Dataset:
    """A Computed Radiography image (PS3.3 A.2): no patient geometry, 12-bit MONOCHROME2.

    Parameters
    ----------
    shape
        ``(Rows, Columns)``.
    seed
        Seed of the random texture.
    """
    rng = np.random.default_rng(seed)
    sop_instance_uid = generate_uid()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ComputedRadiographyImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_instance_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    ds.SOPClassUID = ComputedRadiographyImageStorage
    ds.SOPInstanceUID = sop_instance_uid
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = PATIENT_NAME
    ds.PatientID = "SYNTH-CR"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = generate_uid()
    ds.StudyDate = "20240102"
    ds.StudyTime = "030405"
    ds.StudyID = "2"
    ds.AccessionNumber = "2"
    ds.ReferringPhysicianName = ""
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 1
    ds.Modality = "CR"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.Manufacturer = "monai_dicomseg"
    ds.InstanceNumber = 1
    ds.PatientOrientation = ["L", "F"]
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ContentDate = "20240102"
    ds.ContentTime = "030405"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(shape[0]), int(shape[1])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = rng.integers(0, 4096, shape).astype("<u2").tobytes()
    return ds


def srgb_icc_profile() -> bytes:
    """An sRGB ICC profile (Pillow's), for the RGB slide images' optical path."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def slide_images() -> dict[str, Dataset]:
    """The slide microscopy sources, by file name (``sm_image*.dcm``).

    ``sm_image.dcm`` and its ``_control``, ``_dots``, ``_numbers`` variants
    are RGB (50 x 50 total pixel matrix in 25 tiles of 10 x 10, TILED_FULL) on
    one slide (shared Frame of Reference and container); ``_grayscale`` is
    16-bit MONOCHROME2 and ``_jpegls`` the first one stored JPEG-LS lossless.
    """
    frame_of_reference = generate_uid()
    icc = srgb_icc_profile()
    images = {
        name: synthetic.make_slide_image(seed=seed, frame_of_reference_uid=frame_of_reference,
                                         icc_profile=icc)
        for seed, name in enumerate(["sm_image.dcm", "sm_image_control.dcm", "sm_image_dots.dcm",
                                     "sm_image_numbers.dcm"])
    }
    images["sm_image_grayscale.dcm"] = synthetic.make_slide_image(
        photometric="MONOCHROME2", seed=7, frame_of_reference_uid=frame_of_reference)
    jpegls = synthetic.make_slide_image(seed=0, frame_of_reference_uid=frame_of_reference, icc_profile=icc)
    jpegls.compress(JPEGLSLossless)
    images["sm_image_jpegls.dcm"] = jpegls
    return images
