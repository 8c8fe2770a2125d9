"""Slides: DICOM whole-slide images and their tiled SEGs as patches (torch-free core).

Map of this folder:

* ``geometry.py``  levels of a DICOM WSI (``SlideImage``, headers only), MONAI's patch convention
  (``level_region``), same-slide checks (``check_same_slide``)
* ``labels.py``    ``SlideLabels``: a SEG pyramid's labels for a MONAI patch request (region reads)
* ``sampling.py``  foreground patch locations from a SEG's stored tiles or a low-resolution level
* ``stitch.py``    ``SlideSegStitcher``: patch-wise model outputs stitched into a tiled SEG, streamed
* ``remote.py``    slides on a DICOMweb server: ``DicomWebSlide`` (image patches) and SEG levels whose
  tiles are retrieved per patch with WADO-RS ``/frames/`` and cached per frame
* ``synthetic.py`` synthetic multi-level DICOM WSIs whose pixels encode their labels (test data)

The MONAI datasets over these live in :mod:`monai_dicomseg.data.slides`.
"""
from __future__ import annotations

from monai_dicomseg._lazy import lazy_getattr

_LAZY = {
    "SlideImage": "monai_dicomseg.slides.geometry",
    "SlideLabels": "monai_dicomseg.slides.labels",
    "foreground_locations": "monai_dicomseg.slides.sampling",
    "grid_locations": "monai_dicomseg.slides.sampling",
    "SlideSegStitcher": "monai_dicomseg.slides.stitch",
    "synthetic": "monai_dicomseg.slides.synthetic",
    "DicomWebSlide": "monai_dicomseg.slides.remote",
}

__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = list(_LAZY)
