"""Datasets of (source series, SEG) pairs (needs torch + MONAI: ``pip install "monai_dicomseg[monai]"``).

Map of this folder:

* ``datalist.py``    ``create_datalist``: pair SEG files with their source series in one header-only pass
* ``dataset.py``     ``DicomSegDataset``, ``load_transforms``, ``collate_skip_none``
* ``vocabulary.py``  one label value per structure across a dataset: ``check_label_map``,
  ``build_vocabulary``, ``describe_labels`` (SEG headers only, cached)
* ``anatomy.json``   the segment-name table (codes, colours) behind :mod:`monai_dicomseg.anatomy`

Import the names from the top level (``monai_dicomseg.create_datalist``).
Without torch or MONAI, importing this package raises
:class:`~monai_dicomseg.errors.MissingDependencyError` with a one-line message
naming what to install.
"""
from monai_dicomseg.io import require_monai

require_monai(__name__)
