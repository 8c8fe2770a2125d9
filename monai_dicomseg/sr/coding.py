"""Coded concepts (PS3.3 Section 8.8, Code Sequence Macro, Table 8.8-1)."""
from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from monai_dicomseg.errors import InputError, InputTypeError

__all__ = ["CodedConcept", "as_coded_concept"]

# Code Value (0008,0100) is SH (16 chars); longer codes go to Long Code Value
# (0008,0119), URNs/URLs to URN Code Value (0008,0120). PS3.3 8.8.
_SHORT_CODE_MAX = 16


class CodedConcept(Dataset):
    """One coded concept as a DICOM Code Sequence item.

    Parameters
    ----------
    value
        Code value, e.g. ``"10200004"``.
    scheme_designator
        Coding scheme, e.g. ``"SCT"``.
    meaning
        Human-readable code meaning, e.g. ``"Liver"``.
    scheme_version
        Optional Coding Scheme Version (0008,0103).

    Notes
    -----
    Equality with another :class:`CodedConcept` or a
    :class:`pydicom.sr.coding.Code` compares value and scheme designator
    (and scheme version when both have one), not the meaning.
    """

    def __init__(
        self,
        value: str,
        scheme_designator: str,
        meaning: str,
        scheme_version: str | None = None,
    ) -> None:
        super().__init__()
        for name, item in (("value", value), ("scheme_designator", scheme_designator),
                           ("meaning", meaning)):
            if not isinstance(item, str) or not item:
                raise InputError(f"CodedConcept {name} must be a non-empty string; got {item!r}")
        if value.startswith(("urn", "http")):
            self.URNCodeValue = value
        elif len(value) > _SHORT_CODE_MAX:
            self.LongCodeValue = value
        else:
            self.CodeValue = value
        self.CodingSchemeDesignator = scheme_designator
        self.CodeMeaning = meaning
        if scheme_version is not None:
            self.CodingSchemeVersion = scheme_version

    @property
    def value(self) -> str:
        """str: the code value, whichever of the three code value attributes holds it."""
        for keyword in ("CodeValue", "LongCodeValue", "URNCodeValue"):
            if keyword in self:
                return str(self[keyword].value)
        raise InputError("coded concept has none of CodeValue, LongCodeValue, URNCodeValue")

    @property
    def scheme_designator(self) -> str:
        """str: Coding Scheme Designator (0008,0102)."""
        return str(self.CodingSchemeDesignator)

    @property
    def meaning(self) -> str:
        """str: Code Meaning (0008,0104)."""
        return str(self.CodeMeaning)

    @property
    def scheme_version(self) -> str | None:
        """str | None: Coding Scheme Version (0008,0103) if present."""
        return str(self.CodingSchemeVersion) if "CodingSchemeVersion" in self else None

    @classmethod
    def from_dataset(cls, dataset: Dataset, copy: bool = True) -> "CodedConcept":
        """Build from a Code Sequence item read from a file."""
        if not isinstance(dataset, Dataset):
            raise InputTypeError(f"dataset must be a pydicom Dataset; got {type(dataset).__name__}")
        value = None
        for keyword in ("CodeValue", "LongCodeValue", "URNCodeValue"):
            if keyword in dataset:
                value = str(dataset[keyword].value)
                break
        if value is None or "CodingSchemeDesignator" not in dataset:
            raise InputError(
                "code item must have CodeValue (or LongCodeValue/URNCodeValue) and "
                "CodingSchemeDesignator"
            )
        return cls(
            value=value,
            scheme_designator=str(dataset.CodingSchemeDesignator),
            meaning=str(dataset.get("CodeMeaning", "") or value),
            scheme_version=(str(dataset.CodingSchemeVersion)
                            if "CodingSchemeVersion" in dataset else None),
        )

    @classmethod
    def from_code(cls, code: "Code | CodedConcept | Dataset") -> "CodedConcept":
        """Convert a :class:`pydicom.sr.coding.Code` (or a CodedConcept) to a CodedConcept."""
        if isinstance(code, CodedConcept):
            return code
        if isinstance(code, Code):
            return cls(code.value, code.scheme_designator, code.meaning, code.scheme_version)
        if isinstance(code, Dataset):
            return cls.from_dataset(code)
        raise InputTypeError(
            f"expected a CodedConcept or pydicom.sr.coding.Code; got {type(code).__name__}"
        )

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, (Code, CodedConcept)):
            if self.value != other.value or self.scheme_designator != other.scheme_designator:
                return False
            mine, theirs = self.scheme_version, other.scheme_version
            return mine is None or theirs is None or mine == theirs
        if isinstance(other, Dataset):
            try:
                return self == CodedConcept.from_dataset(other)
            except InputError:
                return False
        return NotImplemented

    def __ne__(self, other: Any) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __hash__(self) -> int:
        return hash((self.value, self.scheme_designator))

    def __repr__(self) -> str:
        return f"CodedConcept({self.value!r}, {self.scheme_designator!r}, {self.meaning!r})"


def as_coded_concept(code: "Code | CodedConcept | Dataset", argument: str) -> CodedConcept:
    """Convert ``code`` to a :class:`CodedConcept`, naming ``argument`` in errors."""
    if isinstance(code, (Code, CodedConcept, Dataset)):
        return CodedConcept.from_code(code)
    raise InputTypeError(
        f"{argument} must be a CodedConcept or pydicom.sr.coding.Code; got {type(code).__name__}"
    )
