"""Realistic synthetic source images for tests, tutorials and benchmarks.

The builders here produce standard-conformant CT Image Storage series (one
single-frame instance per slice) and Enhanced CT Image Storage instances
(one multi-frame instance) whose pixels contain a few ellipsoid "organs" with
distinct Hounsfield units, together with the matching label map. They use
pydicom and numpy only (no torch), so any layer of the package and any test
can use them.

Geometry follows DICOM conventions (PS3.3 C.7.6.2): arrays are ``(F, R, C)``
(frames/slices, rows, columns); ``spacing`` is ``(slice, row, column)`` in mm
where "row spacing" is the distance between adjacent rows (the first value of
Pixel Spacing) and "column spacing" the distance between adjacent columns;
positions are in the LPS patient coordinate system.
"""
from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    CTImageStorage,
    EnhancedCTImageStorage,
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    VLWholeSlideMicroscopyImageStorage,
    generate_uid,
)

from monai_dicomseg.codec.transfer_syntax import EXPLICIT_VR_LITTLE_ENDIAN
from monai_dicomseg.errors import InputError

__all__ = [
    "ORIENTATIONS",
    "orientation_cosines",
    "make_ellipsoid_labels",
    "labels_to_hounsfield",
    "make_ct_series",
    "make_enhanced_ct",
    "make_slide_image",
    "write_series",
]

#: Image Orientation (Patient) of the named standard planes (PS3.3 C.7.6.2.1.1).
ORIENTATIONS: dict[str, tuple[float, ...]] = {
    "axial": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    "coronal": (1.0, 0.0, 0.0, 0.0, 0.0, -1.0),
    "sagittal": (0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
}

#: Hounsfield units of air, the body background and the organs (label 1, 2, ...).
AIR_HU = -1000
BODY_HU = 20
ORGAN_HU = (60, 300, -700, 150, 40, 900, -100, 80, 500, 30, 200, 700)

_RESCALE_INTERCEPT = -1024.0


def orientation_cosines(orientation: str | Sequence[float]) -> np.ndarray:
    """Return the six direction cosines of ``orientation`` as a float array.

    Parameters
    ----------
    orientation
        ``"axial"``, ``"coronal"``, ``"sagittal"``, ``"oblique"`` (axial
        rotated by 20 degrees about the patient's left-right axis and 15 degrees
        about the head-foot axis) or six explicit direction cosines (row
        direction then column direction, unit and orthogonal).

    Returns
    -------
    numpy.ndarray
        ``(6,) float64`` Image Orientation (Patient) values.
    """
    if isinstance(orientation, str):
        if orientation == "oblique":
            return _oblique_cosines(np.deg2rad(20.0), np.deg2rad(15.0))
        try:
            return np.asarray(ORIENTATIONS[orientation], dtype=np.float64)
        except KeyError:
            raise ValueError(
                f"orientation must be one of {sorted([*ORIENTATIONS, 'oblique'])} "
                f"or 6 direction cosines, got {orientation!r}"
            ) from None
    cosines = np.asarray(orientation, dtype=np.float64).reshape(-1)
    if cosines.shape != (6,):
        raise ValueError(f"orientation must have 6 direction cosines, got {cosines.size}")
    row, col = cosines[:3], cosines[3:]
    if not (np.isclose(np.linalg.norm(row), 1, atol=1e-4)
            and np.isclose(np.linalg.norm(col), 1, atol=1e-4)
            and abs(float(row @ col)) < 1e-4):
        raise ValueError(f"orientation cosines must be two orthonormal vectors, got {cosines}")
    return cosines


def _oblique_cosines(tilt: float, turn: float) -> np.ndarray:
    """Axial cosines rotated by ``tilt`` about x (L) then ``turn`` about z (S)."""
    rot_x = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
    rot_z = np.array([[np.cos(turn), -np.sin(turn), 0], [np.sin(turn), np.cos(turn), 0], [0, 0, 1]])
    rotation = rot_z @ rot_x
    return np.concatenate([rotation @ [1.0, 0, 0], rotation @ [0, 1.0, 0]])


# --------------------------------------------------------------------------- labels


def make_ellipsoid_labels(
    shape: tuple[int, int, int],
    n_labels: int = 3,
    seed: int = 0,
) -> np.ndarray:
    """Return a label map of ``n_labels`` non-overlapping ellipsoids.

    Every label ``1..n_labels`` is present at least once, whatever the shape
    (a single voxel is claimed for a label squeezed out by its neighbours).

    Parameters
    ----------
    shape
        ``(F, R, C)`` size of the label map.
    n_labels
        Number of distinct labels (0 is background).
    seed
        Seed of the random generator placing the ellipsoids.

    Returns
    -------
    numpy.ndarray
        ``(F, R, C)`` ``uint8`` (``uint16`` for more than 255 labels) label map.
    """
    shape = tuple(int(s) for s in shape)  # type: ignore[assignment]  # normalised to ints; the length is checked on the next line
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be 3 positive sizes (F, R, C), got {shape}")
    if n_labels < 0 or n_labels > 65535:
        raise ValueError(f"n_labels must be in [0, 65535], got {n_labels}")
    if n_labels > int(np.prod(shape)):
        raise ValueError(f"cannot place {n_labels} labels in {int(np.prod(shape))} voxels")
    dtype = np.uint8 if n_labels <= 255 else np.uint16
    labels = np.zeros(shape, dtype=dtype)
    rng = np.random.default_rng(seed)
    grid = np.indices(shape, dtype=np.float32)
    extent = np.asarray(shape, dtype=np.float32)
    # Radii shrink with the number of labels so that most ellipsoids survive.
    scale = max(1.0, n_labels ** (1 / 3))
    for label in range(1, n_labels + 1):
        center = rng.uniform(0.15, 0.85, size=3) * (extent - 1)
        radii = np.maximum(rng.uniform(0.12, 0.3, size=3) * extent / scale, 0.75)
        distance = sum(((grid[axis] - center[axis]) / radii[axis]) ** 2 for axis in range(3))
        labels[(distance <= 1.0) & (labels == 0)] = label
        if not np.any(labels == label):
            _claim_one_voxel(labels, label, center, rng)
    return labels


def _claim_one_voxel(labels: np.ndarray, label: int, center: np.ndarray,
                     rng: np.random.Generator) -> None:
    """Give ``label`` the free voxel nearest to ``center`` (any voxel if none is free)."""
    free = np.argwhere(labels == 0)
    if free.size == 0:
        # Steal a voxel from the most frequent label (which keeps at least one).
        counts = np.bincount(labels.reshape(-1))
        free = np.argwhere(labels == np.argmax(counts))
    nearest = free[np.argmin(((free - center) ** 2).sum(axis=1))]
    labels[tuple(nearest)] = label
    del rng  # kept in the signature for future jitter; deterministic today


def labels_to_hounsfield(labels: np.ndarray, body: bool = True) -> np.ndarray:
    """Return a CT-like ``(F, R, C) int16`` HU image for a label map.

    Air outside an elliptic-cylinder "body", soft tissue inside, and a distinct
    HU value for each organ label (cycling through :data:`ORGAN_HU`), plus a
    little deterministic texture so frames are not trivially constant.
    """
    frames, rows, cols = labels.shape
    hu = np.full(labels.shape, AIR_HU, dtype=np.int16)
    if body:
        r, c = np.ogrid[:rows, :cols]
        inside = (((r - (rows - 1) / 2) / (0.48 * rows)) ** 2
                  + ((c - (cols - 1) / 2) / (0.48 * cols)) ** 2) <= 1.0
        hu[:, inside] = BODY_HU
    organ_hu = np.asarray((BODY_HU, *ORGAN_HU), dtype=np.int16)
    organ = labels > 0
    hu[organ] = organ_hu[1 + (labels[organ].astype(np.int64) - 1) % len(ORGAN_HU)]
    texture = (np.indices(labels.shape).sum(axis=0) % 7 - 3).astype(np.int16)
    hu[hu > AIR_HU] += texture[hu > AIR_HU]
    return hu


# --------------------------------------------------------------------------- geometry


def _slice_positions(
    n_slices: int,
    cosines: np.ndarray,
    spacing: tuple[float, float, float],
    origin: Sequence[float] | np.ndarray,
    reverse_order: bool,
) -> np.ndarray:
    """``(F, 3)`` Image Position (Patient) of each slice, in generation order."""
    normal = np.cross(cosines[:3], cosines[3:])
    step = -spacing[0] if reverse_order else spacing[0]
    offsets = np.arange(n_slices, dtype=np.float64)[:, None] * step * normal[None, :]
    return np.asarray(origin, dtype=np.float64)[None, :] + offsets


def _default_origin(shape: tuple[int, int, int], spacing: tuple[float, float, float],
                    cosines: np.ndarray) -> np.ndarray:
    """An origin that centres the volume roughly on (0, 0, 0) mm."""
    normal = np.cross(cosines[:3], cosines[3:])
    half = (
        cosines[:3] * spacing[2] * (shape[2] - 1)
        + cosines[3:] * spacing[1] * (shape[1] - 1)
        + normal * spacing[0] * (shape[0] - 1)
    ) / 2
    return np.round(-half, 3)


def _ds_float(value: float) -> str:
    """Format a float for a DS element (at most 16 characters)."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _ds_values(values: Sequence[float] | np.ndarray) -> list[str]:
    return [_ds_float(float(v)) for v in values]


# --------------------------------------------------------------------------- modules


def _now() -> tuple[str, str]:
    stamp = datetime.datetime(2024, 1, 2, 3, 4, 5)
    return stamp.strftime("%Y%m%d"), stamp.strftime("%H%M%S")


def _file_meta(sop_class_uid: str, sop_instance_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = UID(EXPLICIT_VR_LITTLE_ENDIAN)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _add_patient_study_series(ds: Dataset, uids: dict[str, str], series_number: int) -> None:
    """Patient, General Study, General Series, Frame of Reference, Equipment modules."""
    date, time = _now()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Synthetic^Phantom"
    ds.PatientID = "SYNTH-0001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = uids["study"]
    ds.StudyDate = date
    ds.StudyTime = time
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.AccessionNumber = "SYNTH1"
    ds.StudyDescription = "Synthetic phantom study"
    ds.Modality = "CT"
    ds.SeriesInstanceUID = uids["series"]
    ds.SeriesNumber = series_number
    ds.SeriesDate = date
    ds.SeriesTime = time
    ds.SeriesDescription = "Synthetic ellipsoid phantom"
    ds.PatientPosition = "HFS"
    ds.BodyPartExamined = "ABDOMEN"
    ds.FrameOfReferenceUID = uids["frame_of_reference"]
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = "monai_dicomseg"
    ds.ManufacturerModelName = "synthetic"
    ds.SoftwareVersions = "0.1.0"
    ds.DeviceSerialNumber = "0000"
    ds.InstitutionName = "Synthetic Hospital"


def _add_pixel_module(ds: Dataset, hu: np.ndarray) -> None:
    """Image Pixel module: signed 16-bit MONOCHROME2 stored values = HU - intercept."""
    stored = (hu.astype(np.int32) - int(_RESCALE_INTERCEPT)).astype(np.int16)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(hu.shape[-2]), int(hu.shape[-1])
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.PixelData = np.ascontiguousarray(stored).astype("<i2").tobytes()


def _new_uids(frame_of_reference_uid: str | None = None) -> dict[str, str]:
    return {
        "study": generate_uid(),
        "series": generate_uid(),
        "frame_of_reference": frame_of_reference_uid or generate_uid(),
    }


# --------------------------------------------------------------------------- CT series


def make_ct_series(
    shape: tuple[int, int, int] = (6, 32, 40),
    spacing: tuple[float, float, float] = (2.5, 0.8, 0.7),
    orientation: str | Sequence[float] = "axial",
    *,
    flip_rows: bool = False,
    reverse_order: bool = False,
    shuffle_instance_numbers: bool = False,
    shuffle: bool = False,
    origin: Sequence[float] | None = None,
    labels: np.ndarray | None = None,
    n_labels: int = 3,
    seed: int = 0,
    series_number: int = 1,
    frame_of_reference_uid: str | None = None,
) -> list[Dataset]:
    """Build a CT Image Storage series of single-frame instances.

    The slices share one study, series and Frame of Reference and carry the
    Patient, General Study, General Series, Frame of Reference, General
    Equipment, General Image, Image Plane, Image Pixel, CT Image, VOI LUT and
    SOP Common modules (PS3.3 A.3), so ``dciodvfy`` reports no errors.

    Parameters
    ----------
    shape
        ``(F, R, C)``: number of slices, rows and columns.
    spacing
        ``(slice, row, column)`` spacing in mm. Slice thickness equals the
        slice spacing.
    orientation
        See :func:`orientation_cosines`.
    flip_rows
        Reverse the column direction cosine (rows run against the named
        orientation's second axis, e.g. posterior to anterior for axial).
    reverse_order
        Place slice ``k`` at ``origin - k * spacing * normal`` instead of
        ``+``, i.e. generation order runs against the slice normal.
    shuffle_instance_numbers
        Assign Instance Numbers in a random order instead of ``1..F``.
    shuffle
        Return the datasets in a random order (the spatial order is then only
        recoverable from Image Position (Patient)).
    origin
        Image Position (Patient) of the first generated slice; default centres
        the volume on the origin.
    labels
        ``(F, R, C)`` label map drawn into the pixels; default
        :func:`make_ellipsoid_labels` with ``n_labels`` and ``seed``. It is
        indexed in *generation* order (before ``shuffle``).
    n_labels, seed
        Passed to :func:`make_ellipsoid_labels` when ``labels`` is not given;
        ``seed`` also drives the shuffles.
    series_number
        Series Number of the series.
    frame_of_reference_uid
        Frame of Reference UID (a new one by default).

    Returns
    -------
    list[pydicom.dataset.Dataset]
        One dataset per slice, each with ``file_meta`` ready for ``save_as``.
    """
    shape = (int(shape[0]), int(shape[1]), int(shape[2]))
    spacing = (float(spacing[0]), float(spacing[1]), float(spacing[2]))
    cosines = orientation_cosines(orientation).copy()
    if flip_rows:
        cosines[3:] = -cosines[3:]
    if labels is None:
        labels = make_ellipsoid_labels(shape, n_labels, seed)
    if labels.shape != shape:
        raise ValueError(f"labels has shape {labels.shape}, expected {shape}")
    start = _default_origin(shape, spacing, cosines) if origin is None else origin
    positions = _slice_positions(shape[0], cosines, spacing, start, reverse_order)
    hu = labels_to_hounsfield(labels)
    uids = _new_uids(frame_of_reference_uid)
    rng = np.random.default_rng(seed + 1)
    instance_numbers = np.arange(1, shape[0] + 1)
    if shuffle_instance_numbers:
        instance_numbers = rng.permutation(instance_numbers)
    datasets = [
        _ct_slice(hu[k], positions[k], cosines, spacing, uids, int(instance_numbers[k]),
                  series_number)
        for k in range(shape[0])
    ]
    if shuffle:
        datasets = [datasets[i] for i in rng.permutation(len(datasets))]
    return datasets


def _ct_slice(
    hu: np.ndarray,
    position: np.ndarray,
    cosines: np.ndarray,
    spacing: tuple[float, float, float],
    uids: dict[str, str],
    instance_number: int,
    series_number: int,
) -> Dataset:
    """One single-frame CT Image Storage instance."""
    sop_instance_uid = generate_uid()
    ds = Dataset()
    ds.file_meta = _file_meta(CTImageStorage, sop_instance_uid)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_instance_uid
    _add_patient_study_series(ds, uids, series_number)
    date, time = _now()
    # General Image / General Acquisition
    ds.InstanceNumber = instance_number
    ds.ContentDate = date
    ds.ContentTime = time
    ds.AcquisitionNumber = 1
    ds.AcquisitionDate = date
    ds.AcquisitionTime = time
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    # Image Plane (PS3.3 C.7.6.2)
    ds.PixelSpacing = _ds_values([spacing[1], spacing[2]])
    ds.ImageOrientationPatient = _ds_values(cosines)
    ds.ImagePositionPatient = _ds_values(position)
    ds.SliceThickness = _ds_float(spacing[0])
    normal = np.cross(cosines[:3], cosines[3:])
    ds.SliceLocation = _ds_float(float(position @ normal))
    # CT Image (PS3.3 C.8.2.1)
    ds.RescaleIntercept = _ds_float(_RESCALE_INTERCEPT)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.KVP = "120"
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    _add_pixel_module(ds, hu)
    return ds


# --------------------------------------------------------------------------- enhanced CT


def make_enhanced_ct(
    shape: tuple[int, int, int] = (6, 32, 40),
    spacing: tuple[float, float, float] = (2.5, 0.8, 0.7),
    orientation: str | Sequence[float] = "axial",
    *,
    reverse_order: bool = False,
    origin: Sequence[float] | None = None,
    labels: np.ndarray | None = None,
    n_labels: int = 3,
    seed: int = 0,
    frame_of_reference_uid: str | None = None,
) -> Dataset:
    """Build one multi-frame Enhanced CT Image Storage instance.

    Pixel Measures, Plane Orientation, Pixel Value Transformation, CT Image
    Frame Type and Frame VOI LUT live in the Shared Functional Groups; Plane
    Position and Frame Content in the Per-Frame Functional Groups (PS3.3
    A.38, C.7.6.16). Frame ``k + 1`` is slice ``k`` of ``labels``.

    Parameters
    ----------
    shape, spacing, orientation, reverse_order, origin, labels, n_labels, seed,
    frame_of_reference_uid
        As for :func:`make_ct_series`.

    Returns
    -------
    pydicom.dataset.Dataset
        The multi-frame dataset, with ``file_meta``.
    """
    shape = (int(shape[0]), int(shape[1]), int(shape[2]))
    spacing = (float(spacing[0]), float(spacing[1]), float(spacing[2]))
    cosines = orientation_cosines(orientation)
    if labels is None:
        labels = make_ellipsoid_labels(shape, n_labels, seed)
    if labels.shape != shape:
        raise ValueError(f"labels has shape {labels.shape}, expected {shape}")
    start = _default_origin(shape, spacing, cosines) if origin is None else origin
    positions = _slice_positions(shape[0], cosines, spacing, start, reverse_order)
    uids = _new_uids(frame_of_reference_uid)
    sop_instance_uid = generate_uid()
    date, time = _now()
    ds = Dataset()
    ds.file_meta = _file_meta(EnhancedCTImageStorage, sop_instance_uid)
    ds.SOPClassUID = EnhancedCTImageStorage
    ds.SOPInstanceUID = sop_instance_uid
    _add_patient_study_series(ds, uids, series_number=1)
    # Enhanced General Equipment, Image, Multi-frame, Enhanced CT Image modules
    ds.InstanceNumber = 1
    ds.ContentDate = date
    ds.ContentTime = time
    ds.AcquisitionDateTime = date + time
    ds.AcquisitionNumber = 1
    # DERIVED frames need no CT acquisition/reconstruction macros (PS3.3 C.8.15.3).
    ds.ImageType = ["DERIVED", "PRIMARY", "VOLUME", "NONE"]
    ds.AcquisitionDuration = 1.0
    ds.PixelPresentation = "MONOCHROME"
    ds.VolumetricProperties = "VOLUME"
    ds.VolumeBasedCalculationTechnique = "NONE"
    ds.ContentQualification = "RESEARCH"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    ds.NumberOfFrames = shape[0]
    ds.AcquisitionContextSequence = DicomSequence()
    _add_dimension_organization(ds)
    ds.SharedFunctionalGroupsSequence = DicomSequence(
        [_shared_ct_groups(cosines, spacing)])
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(
        [_per_frame_ct_group(k, positions[k], date + time) for k in range(shape[0])])
    _add_pixel_module(ds, labels_to_hounsfield(labels))
    return ds


def _add_dimension_organization(ds: Dataset) -> None:
    """Multi-frame Dimension module indexed by Image Position (Patient)."""
    organization_uid = generate_uid()
    organization = Dataset()
    organization.DimensionOrganizationUID = organization_uid
    ds.DimensionOrganizationSequence = DicomSequence([organization])
    index = Dataset()
    index.DimensionOrganizationUID = organization_uid
    index.DimensionIndexPointer = 0x00200032  # Image Position (Patient)
    index.FunctionalGroupPointer = 0x00209113  # Plane Position Sequence
    index.DimensionDescriptionLabel = "Image Position (Patient)"
    ds.DimensionIndexSequence = DicomSequence([index])
    ds.DimensionOrganizationType = "3D"


def _shared_ct_groups(cosines: np.ndarray, spacing: tuple[float, float, float]) -> Dataset:
    """Shared Functional Groups item of the Enhanced CT Image IOD."""
    measures = Dataset()
    measures.PixelSpacing = _ds_values([spacing[1], spacing[2]])
    measures.SliceThickness = _ds_float(spacing[0])
    plane_orientation = Dataset()
    plane_orientation.ImageOrientationPatient = _ds_values(cosines)
    transformation = Dataset()
    transformation.RescaleIntercept = _ds_float(_RESCALE_INTERCEPT)
    transformation.RescaleSlope = "1"
    transformation.RescaleType = "HU"
    frame_type = Dataset()
    frame_type.FrameType = ["DERIVED", "PRIMARY", "VOLUME", "NONE"]
    frame_type.PixelPresentation = "MONOCHROME"
    frame_type.VolumetricProperties = "VOLUME"
    frame_type.VolumeBasedCalculationTechnique = "NONE"
    voi = Dataset()
    voi.WindowCenter = "40"
    voi.WindowWidth = "400"
    region = Dataset()
    region.CodeValue = "818981001"
    region.CodingSchemeDesignator = "SCT"
    region.CodeMeaning = "Abdomen"
    anatomy = Dataset()
    anatomy.AnatomicRegionSequence = DicomSequence([region])
    anatomy.FrameLaterality = "U"
    irradiation = Dataset()
    irradiation.IrradiationEventUID = generate_uid()
    shared = Dataset()
    shared.FrameAnatomySequence = DicomSequence([anatomy])
    shared.IrradiationEventIdentificationSequence = DicomSequence([irradiation])
    shared.PixelMeasuresSequence = DicomSequence([measures])
    shared.PlaneOrientationSequence = DicomSequence([plane_orientation])
    shared.PixelValueTransformationSequence = DicomSequence([transformation])
    shared.CTImageFrameTypeSequence = DicomSequence([frame_type])
    shared.FrameVOILUTSequence = DicomSequence([voi])
    return shared


def _per_frame_ct_group(index: int, position: np.ndarray, datetime_: str) -> Dataset:
    """Per-frame Functional Groups item: Plane Position and Frame Content."""
    plane_position = Dataset()
    plane_position.ImagePositionPatient = _ds_values(position)
    content = Dataset()
    content.FrameAcquisitionNumber = 1
    content.FrameReferenceDateTime = datetime_
    content.FrameAcquisitionDateTime = datetime_
    content.FrameAcquisitionDuration = 100.0
    content.DimensionIndexValues = [index + 1]
    content.StackID = "1"
    content.InStackPositionNumber = index + 1
    item = Dataset()
    item.PlanePositionSequence = DicomSequence([plane_position])
    item.FrameContentSequence = DicomSequence([content])
    return item


# --------------------------------------------------------------------------- slide microscopy


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def make_slide_image(
    total_shape: tuple[int, int] = (50, 50),
    tile_shape: tuple[int, int] = (10, 10),
    *,
    photometric: str = "RGB",
    pixel_spacing: float = 0.0005,
    origin: tuple[float, float] = (20.0, 25.0),
    seed: int = 0,
    frame_of_reference_uid: str | None = None,
    container_identifier: str = "SLIDE-0001",
    icc_profile: bytes | None = None,
) -> Dataset:
    """Build a VL Whole Slide Microscopy Image Storage instance stored as tiles.

    The total pixel matrix is cut into ``tile_shape`` frames in TILED_FULL
    order (row of tiles by row of tiles, PS3.3 C.7.6.17.3), so the frames carry
    no per-frame positions; the image is one focal plane and one optical path.
    Slide axes follow the common orientation: columns run along -Y and rows
    along -X of the slide coordinate system (Image Orientation (Slide) =
    ``[0, -1, 0, -1, 0, 0]``, PS3.3 C.8.12.4.1.1).

    Parameters
    ----------
    total_shape
        ``(TotalPixelMatrixRows, TotalPixelMatrixColumns)``.
    tile_shape
        ``(Rows, Columns)`` of each frame; edge tiles are padded with the
        Pixel Padding Value when the total size is not a multiple.
    photometric
        ``"RGB"`` (8-bit, 3 samples) or ``"MONOCHROME2"`` (16-bit, 1 sample).
    pixel_spacing
        Pixel spacing in mm (rows and columns).
    origin
        ``(X, Y)`` offset of the top-left pixel in the slide coordinate
        system, mm.
    seed
        Seed of the random "tissue" texture.
    frame_of_reference_uid
        Frame of Reference UID (a new one by default).
    container_identifier
        Container Identifier (the slide's barcode).
    icc_profile
        ICC profile of the optical path. Required for RGB by the standard
        (Type 1C, PS3.3 C.8.12.5); this module writes none by itself (it
        depends on numpy and pydicom only), so pass e.g. Pillow's sRGB profile
        for a fully conformant RGB image.

    Returns
    -------
    pydicom.dataset.Dataset
        The multi-frame dataset with ``file_meta`` (Explicit VR Little Endian).
    """
    # long because: a test fixture written as one straight-line recipe (pixels, tiling, then the WSI modules of
    #   PS3.3 A.32.8) so the dataset it builds can be read top to bottom
    rows, columns = int(total_shape[0]), int(total_shape[1])
    tile_rows, tile_columns = int(tile_shape[0]), int(tile_shape[1])
    if photometric not in ("RGB", "MONOCHROME2"):
        raise InputError(f"photometric must be 'RGB' or 'MONOCHROME2', got {photometric!r}")
    rng = np.random.default_rng(seed)
    n_tile_rows = -(-rows // tile_rows)
    n_tile_columns = -(-columns // tile_columns)
    samples = 3 if photometric == "RGB" else 1
    dtype = np.uint8 if photometric == "RGB" else np.uint16
    padding = int(np.iinfo(dtype).max)
    matrix = np.full((n_tile_rows * tile_rows, n_tile_columns * tile_columns, samples), padding, dtype)
    yy, xx = np.mgrid[0:rows, 0:columns]
    tissue = ((yy - rows / 2) ** 2 / (0.4 * rows) ** 2 + (xx - columns / 2) ** 2 / (0.45 * columns) ** 2) < 1
    texture = rng.integers(0, 40, (rows, columns, samples))
    stain = np.asarray([200, 120, 190][:samples]) * (1 if samples == 3 else 200)
    matrix[:rows, :columns][tissue] = (stain[None, :] - texture[tissue]).astype(dtype)
    frames = (matrix.reshape(n_tile_rows, tile_rows, n_tile_columns, tile_columns, samples)
              .transpose(0, 2, 1, 3, 4).reshape(-1, tile_rows, tile_columns, samples))

    uids = _new_uids(frame_of_reference_uid)
    sop_instance_uid = generate_uid()
    date, time = _now()
    ds = Dataset()
    ds.file_meta = _file_meta(VLWholeSlideMicroscopyImageStorage, sop_instance_uid)
    ds.SOPClassUID = VLWholeSlideMicroscopyImageStorage
    ds.SOPInstanceUID = sop_instance_uid
    _add_patient_study_series(ds, uids, series_number=1)
    del ds.PatientPosition, ds.BodyPartExamined
    ds.Modality = "SM"
    ds.SeriesDescription = "Synthetic slide"
    ds.PositionReferenceIndicator = "SLIDE_CORNER"
    # Whole Slide Microscopy Image / Multi-frame / Specimen modules (PS3.3 A.32.8)
    ds.InstanceNumber = 1
    ds.ContentDate = date
    ds.ContentTime = time
    ds.AcquisitionDateTime = date + time
    ds.AcquisitionDuration = 0.0
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.VolumetricProperties = "VOLUME"
    ds.BurnedInAnnotation = "NO"
    ds.SpecimenLabelInImage = "NO"
    ds.FocusMethod = "AUTO"
    ds.ExtendedDepthOfField = "NO"
    ds.LossyImageCompression = "00"
    ds.ImagedVolumeWidth = columns * pixel_spacing
    ds.ImagedVolumeHeight = rows * pixel_spacing
    ds.ImagedVolumeDepth = 0.01
    ds.TotalPixelMatrixRows = rows
    ds.TotalPixelMatrixColumns = columns
    ds.TotalPixelMatrixFocalPlanes = 1
    ds.NumberOfOpticalPaths = 1
    origin_item = Dataset()
    origin_item.XOffsetInSlideCoordinateSystem = _ds_float(origin[0])
    origin_item.YOffsetInSlideCoordinateSystem = _ds_float(origin[1])
    ds.TotalPixelMatrixOriginSequence = DicomSequence([origin_item])
    ds.ImageOrientationSlide = ["0", "-1", "0", "-1", "0", "0"]
    ds.DimensionOrganizationType = "TILED_FULL"
    organization_uid = generate_uid()
    organization = Dataset()
    organization.DimensionOrganizationUID = organization_uid
    ds.DimensionOrganizationSequence = DicomSequence([organization])
    indices = []
    for pointer, label in ((0x0048021F, "Row tile index"), (0x0048021E, "Column tile index")):
        index = Dataset()
        index.DimensionOrganizationUID = organization_uid
        index.DimensionIndexPointer = pointer
        index.FunctionalGroupPointer = 0x0048021A  # Plane Position (Slide) Sequence
        index.DimensionDescriptionLabel = label
        indices.append(index)
    ds.DimensionIndexSequence = DicomSequence(indices)
    ds.ContainerIdentifier = container_identifier
    ds.IssuerOfTheContainerIdentifierSequence = DicomSequence()
    ds.ContainerTypeCodeSequence = DicomSequence([_code("433466003", "SCT", "Microscope slide")])
    ds.AcquisitionContextSequence = DicomSequence()
    specimen = Dataset()
    specimen.SpecimenIdentifier = container_identifier
    specimen.SpecimenUID = generate_uid()
    specimen.IssuerOfTheSpecimenIdentifierSequence = DicomSequence()
    specimen.SpecimenPreparationSequence = DicomSequence()
    ds.SpecimenDescriptionSequence = DicomSequence([specimen])
    optical_path = Dataset()
    optical_path.OpticalPathIdentifier = "1"
    optical_path.IlluminationTypeCodeSequence = DicomSequence(
        [_code("111744", "DCM", "Brightfield illumination")])
    optical_path.IlluminationColorCodeSequence = DicomSequence(
        [_code("414298005", "SCT", "Full Spectrum")])
    if icc_profile is not None:
        optical_path.ICCProfile = icc_profile
    ds.OpticalPathSequence = DicomSequence([optical_path])
    measures = Dataset()
    measures.PixelSpacing = _ds_values([pixel_spacing, pixel_spacing])
    measures.SliceThickness = "0.01"
    frame_type = Dataset()
    frame_type.FrameType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    shared = Dataset()
    shared.PixelMeasuresSequence = DicomSequence([measures])
    shared.WholeSlideMicroscopyImageFrameTypeSequence = DicomSequence([frame_type])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    # Image Pixel module
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    if samples == 3:
        ds.PlanarConfiguration = 0
    else:  # monochrome WSM images carry an identity rescale and presentation LUT (PS3.3 C.8.12.4)
        ds.PresentationLUTShape = "IDENTITY"
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = "1"
    ds.NumberOfFrames = len(frames)
    ds.Rows, ds.Columns = tile_rows, tile_columns
    ds.BitsAllocated = ds.BitsStored = 8 * np.dtype(dtype).itemsize
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.PixelPaddingValue = padding
    ds.PixelData = np.ascontiguousarray(frames if samples == 3 else frames[..., 0]).astype(
        np.dtype(dtype).newbyteorder("<")).tobytes()
    return ds


# --------------------------------------------------------------------------- files


def write_series(datasets: Sequence[Dataset], folder: str | Path) -> list[Path]:
    """Write ``datasets`` as DICOM Part 10 files ``0001.dcm, 0002.dcm, ...``.

    Parameters
    ----------
    datasets
        Datasets with ``file_meta`` (as returned by :func:`make_ct_series`).
    folder
        Destination folder, created if missing.

    Returns
    -------
    list[pathlib.Path]
        The written paths, in the order of ``datasets``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, dataset in enumerate(datasets, start=1):
        path = folder / f"{number:04d}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
