"""DICOM unique identifiers (PS3.5 Section 9)."""
from __future__ import annotations

import pydicom.uid

__all__ = ["UID"]


class UID(pydicom.uid.UID):
    """A DICOM UID; ``UID()`` without an argument generates a new one.

    New UIDs use pydicom's organisational prefix and 2.25-style random
    suffixes so that they are unique without coordination.
    """

    def __new__(cls, value: str | None = None) -> "UID":
        if value is None:
            value = pydicom.uid.generate_uid()
        return super().__new__(cls, value)  # type: ignore[return-value]  # pydicom types UID.__new__ as returning pydicom's UID, not Self; the instance is a cls
