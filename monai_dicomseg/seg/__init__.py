"""The SEG API in highdicom's vocabulary (``hd.seg.*``).

Map of this folder:

* ``segmentation.py``   ``Segmentation`` (writer constructor + reader methods) and ``segread``
* ``content.py``        ``SegmentDescription``, ``AlgorithmIdentificationSequence``
* ``encode.py``         the encode pipeline behind the constructor (``EncodeOptions``, ``encode_segmentation``)
* ``inputs.py``         validation of the ``pixel_array`` given to the writer
* ``frames.py``         which frames are stored, in which order, with which index values
* ``sources.py``        source images: validation and per-frame references
* ``placement.py``      plane geometry and derivation references (``PlanePlacement``)
* ``modules.py``        module-level attributes of the SEG instance
* ``tiling.py``         tiled (slide) geometry; ``pyramid.py`` multi-resolution pyramids
* ``reader.py``         ``read_segmentation_dataset`` + ``SegmentationReaderMixin`` (read accessors)
* ``volume_reading.py`` ``get_volume``, ``volume_layout``, ``assemble_volume_into``
* ``tiled_reading.py``  total pixel matrices of TILED_FULL / TILED_SPARSE SEGs
* ``stacking.py``       slice positions and spacing of a SEG's frames (``volume_positions``)
* ``selection.py``      validation of requested segment numbers
"""
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
