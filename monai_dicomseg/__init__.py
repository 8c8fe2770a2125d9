"""monai_dicomseg: DICOM Segmentation (SEG) as a first-class citizen of PyTorch/MONAI.

The SEG API uses highdicom's vocabulary, so ``import monai_dicomseg as hd``
runs highdicom's SEG user-guide examples. Names are loaded lazily: importing
the package does not import torch or MONAI; the MONAI layer
(``DicomSegReader``, ``LoadDicomSeg(d)``, ``SaveDicomSeg(d)``, ...) is
imported on first use.
"""
from __future__ import annotations


from monai_dicomseg._lazy import lazy_getattr, provide
from monai_dicomseg.enums import (
    CoordinateSystemNames,
    DimensionOrganizationTypeValues,
    PhotometricInterpretationValues,
)
from monai_dicomseg.errors import (
    DecodeError,
    DicomSegError,
    EncodeError,
    GeometryError,
    InputError,
    InputTypeError,
    MissingDependencyError,
    UnsupportedError,
)

__version__ = "0.1.0"

_LAZY = {
    "UID": "monai_dicomseg.uid",
    # subpackages in the guide's vocabulary
    "seg": "monai_dicomseg.seg",
    "sr": "monai_dicomseg.sr",
    "spatial": "monai_dicomseg.spatial",
    # SEG
    "Segmentation": "monai_dicomseg.seg.segmentation",
    "AlgorithmIdentificationSequence": "monai_dicomseg.seg.content",
    "imread": "monai_dicomseg.image",
    "Image": "monai_dicomseg.image",
    # geometry
    "Volume": "monai_dicomseg.geometry.volume",
    "VolumeGeometry": "monai_dicomseg.geometry.volume",
    "get_volume_from_series": "monai_dicomseg.geometry.series",
    "PlanePositionSequence": "monai_dicomseg.codec.spatial_content",
    "PlaneOrientationSequence": "monai_dicomseg.codec.spatial_content",
    "PixelMeasuresSequence": "monai_dicomseg.codec.spatial_content",
    # MONAI layer (imports torch + MONAI on first access)
    "DicomSegReader": "monai_dicomseg.io.reader",
    "DicomSegWriter": "monai_dicomseg.io.writer",
    "LoadDicomSeg": "monai_dicomseg.transforms.load",
    "LoadDicomSegd": "monai_dicomseg.transforms.load",
    "SaveDicomSeg": "monai_dicomseg.transforms.save",
    "SaveDicomSegd": "monai_dicomseg.transforms.save",
    "LoadDicomSeries": "monai_dicomseg.transforms.load_series",
    "LoadDicomSeriesd": "monai_dicomseg.transforms.load_series",
    "create_datalist": "monai_dicomseg.data.datalist",
    "DicomSegDataset": "monai_dicomseg.data.dataset",
    "load_transforms": "monai_dicomseg.data.dataset",
    "collate_skip_none": "monai_dicomseg.data.dataset",
    "segments_from_meta": "monai_dicomseg.io.segments",
    "check_label_map": "monai_dicomseg.data.vocabulary",
    "build_vocabulary": "monai_dicomseg.data.vocabulary",
    "describe_labels": "monai_dicomseg.data.vocabulary",
    # naming segments (no torch)
    "segment_descriptions_from_names": "monai_dicomseg.anatomy",
    "segment_descriptions_from_dcmqi": "monai_dicomseg.anatomy",
    "check_options": "monai_dicomseg.options",
    # synthetic CT series and label maps for tutorials and tests (no torch)
    "synthetic": "monai_dicomseg.synthetic",
    # slides: DICOM WSIs and their tiled SEGs as patches (core torch-free; the datasets need MONAI + OpenSlide)
    "slides": "monai_dicomseg.slides",
    "SlidePatchSegDataset": "monai_dicomseg.data.slides",
    "slide_patch_datalist": "monai_dicomseg.data.slides",
    # writing side: the labels contract and atomic files (no torch)
    "is_background_name": "monai_dicomseg.io.prediction",
    "remove_stale_temporaries": "monai_dicomseg.atomic",
    # validity and viewer verdicts of a SEG file (no torch): the function behind `monai-dicomseg check`
    "check_file": "monai_dicomseg.cli.check",
}

__getattr__ = lazy_getattr(__name__, _LAZY)

# Late bindings (docs/architecture.md): a lower layer's role, played by a higher layer's object.
# geometry/ is numpy-only; Volume.get_plane_positions() & co. get their pydicom sequences from codec/.
provide("volume_functional_groups", "monai_dicomseg.codec.spatial_content:VOLUME_FUNCTIONAL_GROUPS")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "CoordinateSystemNames",
    "DimensionOrganizationTypeValues",
    "PhotometricInterpretationValues",
    "DicomSegError",
    "InputError",
    "InputTypeError",
    "EncodeError",
    "DecodeError",
    "GeometryError",
    "UnsupportedError",
    "MissingDependencyError",
    *_LAZY,
]
