"""Metadata key names of the MONAI layer, declared once (shared vocabulary).

:class:`MetaKey` names every key the loaders write into a ``MetaTensor``'s
``meta`` and the writers read back from it; ``geometry/volume.py``
(``Volume.to_monai`` / ``Volume.from_monai``) spells MONAI's keys through it
too, so the read side, the write side and the geometry layer cannot drift
apart. The ``GRID_*`` constants are the values of ``meta["grid"]``; the
``*_KEYS`` tuples and :func:`meta_uid` find a UID in the metadata of an image
another reader loaded (keyword, ``GGGGEEEE`` JSON or ITK form).
Standard library (and :mod:`monai_dicomseg.enums`) only.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from monai_dicomseg.enums import StrEnum

__all__ = [
    "FRAME_OF_REFERENCE_UID_KEYS",
    "GRIDS",
    "GRID_REFERENCE",
    "GRID_SEG",
    "GRID_SOURCE_SERIES",
    "PATIENT_ID_KEYS",
    "SERIES_INSTANCE_UID_KEYS",
    "MetaKey",
    "meta_uid",
]


class MetaKey(StrEnum):
    """Metadata key names, declared once (the values of MONAI's ``MetaKeys`` / ``ImageMetaKey`` where
    MONAI has one: ``affine`` ... ``saved_to``, ``filename_or_obj``, ``spacing``; ours after them).

    Members are ``str`` (``meta[MetaKey.AFFINE] is meta["affine"]``) and used on the read side
    (loaders, ``Volume.to_monai``) and the write side (writer, ``SaveDicomSeg``, ``Volume.from_monai``);
    ``repr`` is the plain string, so a printed ``meta`` dict reads as before.
    """

    def __repr__(self) -> str:
        return repr(self.value)

    AFFINE = "affine"
    ORIGINAL_AFFINE = "original_affine"
    SPATIAL_SHAPE = "spatial_shape"
    SPACE = "space"
    SPACING = "spacing"
    ORIGINAL_CHANNEL_DIM = "original_channel_dim"
    FILENAME_OR_OBJ = "filename_or_obj"
    SAVED_TO = "saved_to"
    SEGMENTATION_TYPE = "segmentation_type"
    MODE = "mode"
    THRESHOLD = "threshold"
    SEGMENTS = "segments"
    CHANNEL_SEGMENTS = "channel_segments"
    CHANNEL_VALUES = "channel_values"
    LABELS = "labels"
    SERIES_INSTANCE_UID = "SeriesInstanceUID"
    SOP_INSTANCE_UID = "SOPInstanceUID"
    FRAME_OF_REFERENCE_UID = "FrameOfReferenceUID"
    SOURCE_SERIES_INSTANCE_UID = "source_series_instance_uid"
    SLICE_ORDER = "slice_order"
    SLICE_ORDER_BY_POSITION = "ImagePositionPatient"  # value of SLICE_ORDER: sorted along the normal
    GRID = "grid"
    SHEARED = "sheared"
    SLICE_GRID = "slice_grid"
    FILLED_SLICES = "filled_slices"
    SOURCE_VOLUME = "source_volume"
    SOURCE_VOLUMES = "source_volumes"
    SOURCE_FRAMES = "source_frames"
    MULTIFRAME = "multiframe"


GRID_SOURCE_SERIES = "source_series"
"""``meta["grid"]``: the label is on the full grid of the SEG's source series, found by ``DicomSegReader``."""
GRID_REFERENCE = "reference"
"""``meta["grid"]``: the label is on a reference image's grid (``LoadDicomSegd(ref_key=...)``, ``reference=``)."""
GRID_SEG = "seg"
"""``meta["grid"]``: the label is on the SEG's own grid, spanning only the frames it stores."""
GRIDS = (GRID_SOURCE_SERIES, GRID_REFERENCE, GRID_SEG)


FRAME_OF_REFERENCE_UID_KEYS: tuple[str, ...] = (MetaKey.FRAME_OF_REFERENCE_UID.value, "00200052", "0020|0052")
"""Where a reader puts FrameOfReferenceUID (0020,0052): ours and PydicomReader's keyword, JSON tag, ITK tag."""
SERIES_INSTANCE_UID_KEYS: tuple[str, ...] = (MetaKey.SERIES_INSTANCE_UID.value, "0020000E", "0020|000e", "0020|000E")
"""Where a reader puts SeriesInstanceUID (0020,000E)."""
PATIENT_ID_KEYS: tuple[str, ...] = ("PatientID", "00100020", "0010|0020")
"""Where a reader puts PatientID (0010,0020)."""


def meta_uid(meta: Mapping[str, Any] | None, keys: Sequence[str]) -> str | None:
    """A UID from MONAI metadata under any of ``keys`` (keyword, ``GGGGEEEE`` JSON or ITK form).

    The first non-blank value wins; a pydicom JSON value (``{"vr": "UI", "Value": [...]}``) or a
    list gives its first element. ``None`` when no key holds one.
    """
    for key in keys:
        value = (meta or {}).get(key)
        if isinstance(value, Mapping):  # pydicom JSON form {"vr": "UI", "Value": [...]}
            value = (value.get("Value") or [None])[0]
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        if value is not None and str(value).strip():
            return str(value).strip()
    return None
