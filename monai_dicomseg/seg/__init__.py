"""The SEG API in highdicom's vocabulary (``hd.seg.*``)."""
from __future__ import annotations

from monai_dicomseg._lazy import lazy_getattr
from monai_dicomseg.enums import (
    SegmentAlgorithmTypeValues,
    SegmentationFractionalTypeValues,
    SegmentationTypeValues,
    SegmentsOverlapValues,
    SpatialLocationsPreservedValues,
)

_LAZY = {
    "Segmentation": "monai_dicomseg.seg.segmentation",
    "segread": "monai_dicomseg.seg.segmentation",
    "SegmentDescription": "monai_dicomseg.seg.content",
    "AlgorithmIdentificationSequence": "monai_dicomseg.seg.content",
    "create_segmentation_pyramid": "monai_dicomseg.seg.pyramid",
}

__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = [
    "SegmentAlgorithmTypeValues",
    "SegmentationFractionalTypeValues",
    "SegmentationTypeValues",
    "SegmentsOverlapValues",
    "SpatialLocationsPreservedValues",
    *_LAZY,
]
