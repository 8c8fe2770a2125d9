"""The ``monai-dicomseg`` command line: thin subcommands over the public functions.

Map of this folder:

* ``main.py``        the entry point and subcommand table (``python -m monai_dicomseg``)
* ``info.py``        ``info``: type, SOP class, frames, geometry and segments of a SEG
* ``to_nifti.py``    ``to-nifti``: SEG -> NIfTI (+ dcmqi-style JSON sidecar)
* ``from_nifti.py``  ``from-nifti``: NIfTI label map -> SEG of its source series
* ``convert.py``     ``convert``: rewrite a SEG with another type or compression, losslessly
* ``batch.py``       ``batch``: run one subcommand over every file of a folder
* ``pull.py``, ``push.py``  DICOMweb (WADO-RS / STOW-RS) transfer around the conversions
* ``dcmqi_meta.py``  dcmqi's segmentation metadata JSON <-> segment descriptions
* ``_common.py``, ``_dicomweb.py``  helpers shared by the subcommands (private to this folder)
"""
