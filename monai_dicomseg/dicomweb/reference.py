"""``DicomWebSeries``: a typed reference to a series (or one instance) on a DICOMweb server.

URI form (PS3.18 resource paths behind a ``dicomweb+`` scheme prefix)::

    dicomweb+https://host:port/dicom-web/studies/<StudyUID>/series/<SeriesUID>
    dicomweb+https://host:port/dicom-web/studies/<StudyUID>/series/<SeriesUID>/instances/<SOPUID>

``https://host:port/dicom-web`` is the service root (``url``): everything
before ``/studies/``. ``dicomweb+https:/host/...`` (what ``pathlib.Path`` makes
of the URI, e.g. inside MONAI's ``LoadImage``) is read as ``https://host/...``. Plain ``http`` is accepted (``dicomweb+http://``) for
loopback servers. The URI never carries credentials: one with
``user:password@`` is refused (it would end up in ``filename_or_obj`` and in
logs). Credentials come from :class:`~monai_dicomseg.dicomweb.session.DicomWebServer`
(the ``server`` field, :func:`~monai_dicomseg.dicomweb.session.register_server`
or environment variables), and ``server`` is left out of ``repr``, equality and
the URI string.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from monai_dicomseg.errors import InputError, InputTypeError

if TYPE_CHECKING:  # pragma: no cover
    from monai_dicomseg.dicomweb.session import DicomWebServer

__all__ = ["DicomWebSeries", "SCHEME_PREFIX", "is_dicomweb_uri", "parse_dicomweb", "redact_url"]

SCHEME_PREFIX = "dicomweb+"
_UID = r"[0-9]+(?:\.[0-9]+)*"
_PATH = re.compile(
    rf"^(?P<root>.*?)/studies/(?P<study>{_UID})/series/(?P<series>{_UID})"
    rf"(?:/instances/(?P<instance>{_UID}))?/?$"
)
_UID_RE = re.compile(rf"^{_UID}$")


def redact_url(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@`` and the query string dropped.

    Used for every URL that goes into a message or a log line.
    """
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _check_uid(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise InputTypeError(f"DicomWebSeries.{name} must be a str UID; got {type(value).__name__}")
    if len(value) > 64 or not _UID_RE.match(value):
        raise InputError(f"DicomWebSeries.{name} must be a DICOM UID (digits and dots, <= 64 chars; PS3.5 9.1); "
                         f"got {value!r}")
    return value


def _check_root(url: Any) -> str:
    if not isinstance(url, str):
        raise InputTypeError(f"DicomWebSeries.url must be a str; got {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"DicomWebSeries.url must be an http(s) service root such as "
                         f"'https://host/dicom-web'; got {redact_url(url)!r}")
    if parts.username is not None or parts.password is not None:
        raise InputError(
            f"DicomWebSeries.url must not contain credentials (they would leak into metadata and logs); "
            f"got {redact_url(url)!r}: use DicomWebServer(username=..., password=...) or register_server()")
    if parts.query or parts.fragment:
        raise InputError(f"DicomWebSeries.url must not have a query or fragment; got {redact_url(url)!r}")
    return url.rstrip("/")


@dataclass(frozen=True)
class DicomWebSeries:
    """A series (or one instance of it) on a DICOMweb server.

    Parameters
    ----------
    url
        Service root, e.g. ``"https://pacs.example.org/dicom-web"`` (no
        credentials, no query).
    study_uid, series_uid
        StudyInstanceUID and SeriesInstanceUID.
    instance_uid
        Optional SOPInstanceUID: the reference names that one instance (e.g.
        one SEG of a series holding several).
    server
        Optional connection settings (auth, TLS, timeouts, cache); not part of
        ``repr``, equality or the URI. None: the server registered for
        ``url`` (:func:`~monai_dicomseg.dicomweb.session.register_server`), else
        one built from the environment.
    """

    url: str
    study_uid: str
    series_uid: str
    instance_uid: "str | None" = None
    server: "DicomWebServer | None" = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", _check_root(self.url))
        _check_uid(self.study_uid, "study_uid")
        _check_uid(self.series_uid, "series_uid")
        if self.instance_uid is not None:
            _check_uid(self.instance_uid, "instance_uid")

    @classmethod
    def from_uri(cls, uri: str, server: "DicomWebServer | None" = None) -> "DicomWebSeries":
        """Parse the URI form (see module docstring).

        Raises
        ------
        InputError
            Not a ``dicomweb+http(s)://.../studies/<uid>/series/<uid>[/instances/<uid>]`` URI,
            or one with credentials.
        """
        if not isinstance(uri, str):
            raise InputTypeError(f"a DICOMweb URI must be a str; got {type(uri).__name__}")
        if not uri.startswith(SCHEME_PREFIX):
            raise InputError(f"a DICOMweb URI starts with {SCHEME_PREFIX!r}; got {redact_url(uri)!r}")
        # pathlib (MONAI's LoadImage runs names through Path) collapses "http://" to "http:/": undo it
        rest = re.sub(r"^(https?):/(?!/)", r"\1://", uri[len(SCHEME_PREFIX):])
        parts = urlsplit(rest)
        match = _PATH.match(parts.path)
        if match is None:
            raise InputError(
                "a DICOMweb URI must end in /studies/<StudyInstanceUID>/series/<SeriesInstanceUID>"
                f"[/instances/<SOPInstanceUID>]; got {redact_url(rest)!r}")
        root = urlunsplit((parts.scheme, parts.netloc, match["root"], parts.query, parts.fragment))
        return cls(root, match["study"], match["series"], match["instance"], server=server)

    @property
    def uri(self) -> str:
        """The URI form (no credentials)."""
        text = f"{SCHEME_PREFIX}{self.url}/studies/{self.study_uid}/series/{self.series_uid}"
        return text + (f"/instances/{self.instance_uid}" if self.instance_uid else "")

    @property
    def series_url(self) -> str:
        """The WADO-RS series URL (for messages; no credentials)."""
        return f"{self.url}/studies/{self.study_uid}/series/{self.series_uid}"

    def with_server(self, server: "DicomWebServer | None") -> "DicomWebSeries":
        """A copy bound to ``server``."""
        return DicomWebSeries(self.url, self.study_uid, self.series_uid, self.instance_uid, server=server)

    def series(self) -> "DicomWebSeries":
        """The whole-series reference (drops ``instance_uid``)."""
        return DicomWebSeries(self.url, self.study_uid, self.series_uid, None, server=self.server)

    def __str__(self) -> str:
        return self.uri


def is_dicomweb_uri(value: Any) -> bool:
    """True for a ``str`` starting with ``dicomweb+`` (cheap; not validated)."""
    return isinstance(value, str) and value.startswith(SCHEME_PREFIX)


def parse_dicomweb(value: Any) -> "DicomWebSeries | None":
    """``value`` as a :class:`DicomWebSeries` if it is one or a ``dicomweb+`` URI, else None."""
    if isinstance(value, DicomWebSeries):
        return value
    if is_dicomweb_uri(value):
        return DicomWebSeries.from_uri(value)
    return None
