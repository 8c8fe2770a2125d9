"""Exception hierarchy of :mod:`monai_dicomseg`.

Every error raised on purpose by the package derives from :class:`DicomSegError`
and, in addition, from the builtin exception a caller would naturally catch
(``ValueError``, ``TypeError``, ``NotImplementedError``, ``RuntimeError``), so
``except ValueError`` keeps working for code written against highdicom.

Messages name the offending argument or DICOM attribute (by keyword) and state
what was expected and what was found.
"""
from __future__ import annotations

__all__ = [
    "DicomSegError",
    "InputError",
    "InputTypeError",
    "EncodeError",
    "DecodeError",
    "GeometryError",
    "UnsupportedError",
    "MissingDependencyError",
    "FrameMismatchError",
    "OverlapError",
    "SegmentNumberError",
    "MissingSourceError",
    "OutputExistsError",
]


class DicomSegError(Exception):
    """Base class of every error raised on purpose by this package."""


class InputError(DicomSegError, ValueError):
    """An argument has the right type but an invalid value (shape, range, content)."""


class InputTypeError(DicomSegError, TypeError):
    """An argument has the wrong type or dtype."""


class EncodeError(DicomSegError, ValueError):
    """The inputs cannot be encoded as a valid DICOM Segmentation."""


class DecodeError(DicomSegError, ValueError):
    """A dataset or file is not a valid/decodable DICOM Segmentation."""


class GeometryError(DicomSegError, ValueError):
    """Spatial metadata is missing, inconsistent or incompatible."""


class UnsupportedError(DicomSegError, NotImplementedError):
    """A valid DICOM feature that this package does not (yet) support."""


class MissingDependencyError(DicomSegError, ImportError):
    """An optional package needed for the requested operation is not installed.

    The message names the PyPI package to install.
    """


class FrameMismatchError(DicomSegError, RuntimeError):
    """Segmentation frames cannot be mapped one-to-one onto the requested sources.

    Subclasses ``RuntimeError`` because highdicom raises ``RuntimeError`` here.
    """


class OverlapError(DicomSegError, RuntimeError, ValueError):
    """Segments overlap where a non-overlapping (label map) result was requested.

    Subclasses ``RuntimeError`` (highdicom raises it when reading) and
    ``ValueError`` (highdicom raises it when ``LABELMAP`` storage is requested
    for overlapping segments), so either ``except`` clause catches it.
    """


class SegmentNumberError(InputError, IndexError):
    """A segment number that the segmentation does not define."""


class MissingSourceError(DicomSegError, KeyError):
    """A requested source instance is not referenced by the segmentation (``KeyError`` as highdicom)."""


class OutputExistsError(InputError, FileExistsError):
    """The output file exists and ``overwrite`` is False (no silent overwrite)."""
