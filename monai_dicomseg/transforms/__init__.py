"""MONAI transforms for DICOM SEG (needs torch + MONAI: ``pip install "monai_dicomseg[monai]"``).

Map of this folder:

* ``load.py``   ``LoadDicomSeg`` / ``LoadDicomSegd``: SEG files to channel-first ``MetaTensor`` labels
* ``save.py``   ``SaveDicomSeg`` / ``SaveDicomSegd``: model outputs to SEG files (bundle post-processing)
* ``load_series.py`` ``LoadDicomSeries`` / ``LoadDicomSeriesd``: a source series sorted by position

Import the classes from the top level (``monai_dicomseg.LoadDicomSegd``).
Without torch or MONAI, importing this package raises
:class:`~monai_dicomseg.errors.MissingDependencyError` with a one-line message
naming what to install.
"""
from monai_dicomseg.io import require_monai

require_monai(__name__)
