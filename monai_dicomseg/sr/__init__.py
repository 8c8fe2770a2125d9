"""Structured-reporting vocabulary needed by SEG: coded concepts."""
from monai_dicomseg.sr.coding import CodedConcept, as_coded_concept

__all__ = ["CodedConcept", "as_coded_concept"]
