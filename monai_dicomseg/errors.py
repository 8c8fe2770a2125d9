"""Exception hierarchy of :mod:`monai_dicomseg`.

Every error raised on purpose by the package derives from :class:`DicomSegError`
and, in addition, from the builtin exception a caller would naturally catch
(``ValueError``, ``TypeError``, ``NotImplementedError``, ``RuntimeError``), so
``except ValueError`` keeps working for code written against highdicom.

Messages name the offending argument or DICOM attribute (by keyword) and state
what was expected and what was found.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

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


# --------------------------------------------------------------------------- DICOMweb (monai_dicomseg.dicomweb)

class DicomWebError(DicomSegError, OSError):
    """A DICOMweb request failed (QIDO-RS / WADO-RS / STOW-RS, PS3.18).

    The message names the URL (credentials redacted) and the UID concerned;
    credentials never appear in it. Subclasses ``OSError`` like the I/O error
    it replaces (``requests`` errors are ``OSError`` too).
    """


class DicomWebConnectionError(DicomWebError, ConnectionError):
    """The server cannot be reached (refused, DNS, TLS, timeout) after the bounded retries."""


class DicomWebAuthError(DicomWebError, PermissionError):
    """The server refused the credentials (HTTP 401 / 403)."""


class DicomWebNotFoundError(DicomWebError, FileNotFoundError):
    """The study, series or instance does not exist on the server (HTTP 404 or an empty result)."""


class DicomWebResponseError(DicomWebError, DecodeError):
    """The server answered with something unusable: a truncated or malformed body, a wrong UID,
    or a series that is not what was asked for (e.g. not a Segmentation)."""


class DicomWebStoreError(DicomWebError):
    """STOW-RS refused the instance. The file was kept: ``spool_path`` says where."""

    def __init__(self, message: str, spool_path: "str | None" = None) -> None:
        super().__init__(message)
        self.spool_path = spool_path

    def __reduce__(self):  # keep spool_path across processes (DataLoader workers)
        return (type(self), (str(self), self.spool_path))


__all__ += [
    "DicomWebError", "DicomWebConnectionError", "DicomWebAuthError", "DicomWebNotFoundError",
    "DicomWebResponseError", "DicomWebStoreError",
]


# --------------------------------------------------------------------------- error context: the one helper

_CONTEXT_MARK = "_monai_dicomseg_context"


def error_with_context(error: BaseException, context: str, suffix: str = "") -> BaseException:
    """A new error of the same class as ``error`` whose message starts with ``context``.

    The one helper that adds context (the SEG file, the source series, the
    dict key, the output) to an error. Raise it ``from error`` so the original
    traceback stays attached; :func:`error_context` is its ``with`` form.
    """
    message = f"{context}: {error}{suffix}"
    try:
        new = type(error)(message)
    except Exception:  # an exception class with a custom signature: keep its class, reset its args
        new = error
        new.args = (message,)
    return new


@contextlib.contextmanager
def error_context(describe: Callable[[], str]) -> Iterator[None]:
    """Re-raise our errors (same class) with ``describe()`` in front of the message, once.

    ``describe`` is called only when an error occurs; an error that already
    carries a context from this seam passes through unchanged, so nested
    seams do not repeat it.
    """
    try:
        yield
    except DicomSegError as error:
        if getattr(error, _CONTEXT_MARK, False):
            raise
        new = error_with_context(error, describe())
        setattr(new, _CONTEXT_MARK, True)
        raise new from error


__all__ += ["error_with_context", "error_context"]
