"""The guide's ``hd.spatial`` namespace: series sorting and spatial helpers."""
from monai_dicomseg.geometry.sorting import sort_datasets

__all__ = ["sort_datasets"]
