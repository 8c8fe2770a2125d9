"""Connection settings and the HTTP session of a DICOMweb server (PS3.18).

:class:`DicomWebServer` holds everything needed to talk to one server:

* **auth** — a bearer token, HTTP basic credentials, or a user-supplied
  ``requests.Session`` (anything it carries: client certificates, OAuth
  refresh, proxies). Credentials live in the session (``Authorization``
  header / ``session.auth``), never in URLs, so they do not reach
  ``dicomweb-client``'s debug log lines, our messages or MONAI metadata;
  ``repr`` hides them.
* **TLS verification** on by default (``verify=True``; a CA bundle path is
  accepted). Turning it off must be explicit.
* **timeouts** ``(connect, read)`` seconds on every request.
* **bounded retries** with exponential backoff on 5xx answers and on
  connection errors/timeouts; a 4xx is never retried (it will not change).

When a reference carries no server, :func:`server_for` returns the one
registered for the longest matching URL prefix (:func:`register_server`), or
one built from the environment: ``MONAI_DICOMSEG_DICOMWEB_TOKEN`` (bearer), or
``MONAI_DICOMSEG_DICOMWEB_USERNAME`` / ``MONAI_DICOMSEG_DICOMWEB_PASSWORD``
(basic). Environment variables survive ``spawn``-started DataLoader workers;
the registry survives ``fork``.

Failures are translated into the typed errors of :mod:`monai_dicomseg.errors`
(:class:`~monai_dicomseg.errors.DicomWebError` and subclasses) by
:func:`translate_errors`, which names the URL (redacted) and the UID.
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from typing import Any

from monai_dicomseg.dicomweb.reference import _check_root, redact_url
from monai_dicomseg.errors import (
    DicomWebAuthError, DicomWebConnectionError, DicomWebError, DicomWebNotFoundError, DicomWebResponseError,
    InputError, MissingDependencyError,
)

__all__ = ["DicomWebServer", "register_server", "unregister_server", "server_for", "translate_errors", "ENV_PREFIX"]

ENV_PREFIX = "MONAI_DICOMSEG_DICOMWEB_"
_RETRIABLE_STATUS = (HTTPStatus.INTERNAL_SERVER_ERROR, HTTPStatus.BAD_GATEWAY,  # 500, 502
                     HTTPStatus.SERVICE_UNAVAILABLE, HTTPStatus.GATEWAY_TIMEOUT)  # 503, 504


@dataclass(frozen=True)
class DicomWebServer:
    """Connection settings of one DICOMweb service root.

    Parameters
    ----------
    url
        Service root, e.g. ``"https://pacs.example.org/dicom-web"`` (no credentials).
    token
        Bearer token (``Authorization: Bearer ...``).
    username, password
        HTTP basic credentials (used when ``token`` is None).
    session
        A ``requests.Session`` to use as it is (its auth, certificates,
        adapters); ``token``/``username`` are added to it when given.
    verify
        TLS certificate verification: True (default), False, or a CA bundle path.
    timeout
        Seconds, or ``(connect, read)`` seconds, for every request.
    retries
        Extra attempts after a 5xx answer or a connection error/timeout
        (never after a 4xx). 0 disables retrying.
    backoff
        First wait in seconds; doubles after each attempt.
    cache_dir, cache_max_bytes
        Instance cache (see :class:`~monai_dicomseg.dicomweb.cache.InstanceCache`);
        None: ``$MONAI_DICOMSEG_DICOMWEB_CACHE`` or ``~/.cache/monai_dicomseg/dicomweb``,
        10 GiB.
    spool_dir
        Where a SEG that STOW-RS refused is kept (default ``<cache_dir>/spool``).
    """

    url: str
    token: "str | None" = field(default=None, repr=False)
    username: "str | None" = None
    password: "str | None" = field(default=None, repr=False)
    session: Any = field(default=None, repr=False, compare=False)
    verify: "bool | str" = True
    timeout: "float | tuple[float, float]" = (10.0, 120.0)
    retries: int = 3
    backoff: float = 0.25
    cache_dir: "str | None" = None
    cache_max_bytes: "int | None" = None
    spool_dir: "str | None" = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", _check_root(self.url))
        if int(self.retries) < 0:
            raise InputError(f"DicomWebServer.retries must be >= 0; got {self.retries!r}")
        if float(self.backoff) < 0:
            raise InputError(f"DicomWebServer.backoff must be >= 0; got {self.backoff!r}")
        if (self.username is None) != (self.password is None):
            raise InputError("DicomWebServer: give both username and password (or neither)")

    @classmethod
    def from_env(cls, url: str, **kwargs: Any) -> "DicomWebServer":
        """Settings for ``url`` with credentials from ``MONAI_DICOMSEG_DICOMWEB_*`` variables."""
        env = os.environ
        kwargs.setdefault("token", env.get(ENV_PREFIX + "TOKEN") or None)
        if env.get(ENV_PREFIX + "USERNAME"):
            kwargs.setdefault("username", env[ENV_PREFIX + "USERNAME"])
            kwargs.setdefault("password", env.get(ENV_PREFIX + "PASSWORD", ""))
        if env.get(ENV_PREFIX + "CACHE"):
            kwargs.setdefault("cache_dir", env[ENV_PREFIX + "CACHE"])
        if env.get(ENV_PREFIX + "VERIFY") in ("0", "false", "False"):
            kwargs.setdefault("verify", False)
        return cls(url, **kwargs)

    def with_options(self, **changes: Any) -> "DicomWebServer":
        """A copy with some settings changed."""
        return replace(self, **changes)

    # ------------------------------------------------------------------ secrets

    def secrets(self) -> list[str]:
        """Strings that must never appear in a message (to scrub exception texts)."""
        found = [s for s in (self.token, self.password) if s]
        session = self.session
        if session is not None:
            auth = getattr(session, "auth", None)
            if isinstance(auth, tuple) and len(auth) == 2 and auth[1]:
                found.append(str(auth[1]))
            header = getattr(session, "headers", {}).get("Authorization")
            if header:
                found.append(str(header).split(" ", 1)[-1])
        return found

    def scrub(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text

    # ------------------------------------------------------------------ clients

    def make_session(self) -> Any:
        """A ``requests.Session`` with auth and TLS settings (the user's own one when given)."""
        import requests

        session = self.session if self.session is not None else requests.Session()
        if self.token:
            session.headers["Authorization"] = f"Bearer {self.token}"
        elif self.username is not None:
            session.auth = (self.username, self.password or "")
        if self.session is None or self.verify is not True:
            session.verify = self.verify
        return session

    def client(self) -> Any:
        """A ``dicomweb_client.DICOMwebClient`` for this server, one per process, thread and settings.

        A new process (DataLoader worker) makes its own session: sockets are
        never shared across ``fork``; each thread (the bounded request pools of
        :mod:`~monai_dicomseg.dicomweb.concurrency`) has its own client too.
        """
        key = (os.getpid(), id(self.session), self)
        clients = getattr(_THREAD, "clients", None)
        if clients is None:
            clients = _THREAD.clients = {}
        client = clients.get(key)
        if client is None:
            client = clients[key] = self._new_client()
        return client

    def _new_client(self) -> Any:
        try:
            from dicomweb_client.api import DICOMwebClient
        except ImportError:  # pragma: no cover - declared dependency
            raise MissingDependencyError("DICOMweb needs the 'dicomweb-client' package: pip install dicomweb-client") \
                from None
        client = DICOMwebClient(self.url, session=self.make_session(), timeout=self.timeout)
        client.set_http_retry_params(
            retry=self.retries > 0, max_attempts=int(self.retries) + 1,
            wait_exponential_multiplier=max(1, int(self.backoff * 500)),  # ms; first wait = 2 * multiplier
            retriable_error_codes=_RETRIABLE_STATUS,
        )
        return client


#: Guards the process-wide credential registry (threads of one process - e.g. DataLoader threads, a web
#: app - register and look up at once). Clients are per thread (``_THREAD``), so they need no lock.
_LOCK = threading.Lock()
_THREAD = threading.local()
_REGISTRY: dict[str, DicomWebServer] = {}


def register_server(server: DicomWebServer) -> None:
    """Use ``server``'s settings for every reference whose URL starts with ``server.url`` (thread-safe)."""
    if not isinstance(server, DicomWebServer):
        from monai_dicomseg.errors import InputTypeError

        raise InputTypeError(f"register_server needs a DicomWebServer; got {type(server).__name__}")
    with _LOCK:
        _REGISTRY[server.url] = server


def unregister_server(url: str) -> None:
    """Forget the settings registered for ``url`` (no error when none; thread-safe)."""
    with _LOCK:
        _REGISTRY.pop(str(url).rstrip("/"), None)


def server_for(url: str, server: "DicomWebServer | None" = None) -> DicomWebServer:
    """The settings for ``url``: ``server`` if given, else the registered one, else from the environment.

    The longest registered prefix is chosen from one consistent view of the
    registry (taken under its lock), never from a table another thread is
    changing.
    """
    if server is not None:
        return server
    url = str(url).rstrip("/")
    with _LOCK:
        matches = [root for root in _REGISTRY if url == root or url.startswith(root + "/")]
        registered = _REGISTRY[max(matches, key=len)] if matches else None
    return registered if registered is not None else DicomWebServer.from_env(url)


def _status_error(status: int, where: str, uid: str, reason: str = "") -> DicomWebError:
    detail = f" ({reason})" if reason else ""
    if status in (401, 403):
        return DicomWebAuthError(
            f"the DICOMweb server refused the credentials: HTTP {status} for {where} (UID {uid}){detail}; "
            "check the token/username/password given to DicomWebServer or the MONAI_DICOMSEG_DICOMWEB_* variables")
    if status == 404:
        return DicomWebNotFoundError(f"not found on the DICOMweb server: HTTP 404 for {where} (UID {uid}){detail}")
    return DicomWebError(f"the DICOMweb server answered HTTP {status} for {where} (UID {uid}){detail}")


@contextlib.contextmanager
def translate_errors(server: DicomWebServer, url: str, uid: str, action: str = "request") -> Iterator[None]:
    """Turn ``requests``/``retrying``/decoding failures inside the block into typed DICOMweb errors.

    Parameters
    ----------
    server
        For scrubbing secrets out of any text.
    url
        The resource URL (redacted before use).
    uid
        The UID the request is about (named in the message).
    action
        A few words for the message (``"retrieve series metadata"``).
    """
    import requests

    where = f"{action} {redact_url(url)}"
    try:
        yield
    except DicomWebError:
        raise
    except requests.HTTPError as error:
        response = error.response
        status = response.status_code if response is not None else 0
        raise _status_error(status, where, uid) from None
    except (requests.ConnectionError, requests.Timeout) as error:
        if isinstance(error, requests.exceptions.ChunkedEncodingError):
            raise DicomWebResponseError(
                f"truncated response from the DICOMweb server: {where} (UID {uid}): "
                f"{server.scrub(str(error))[:200]}") from None
        raise DicomWebConnectionError(
            f"cannot reach the DICOMweb server after {server.retries + 1} attempt(s): {where} (UID {uid}): "
            f"{type(error).__name__}: {server.scrub(_short(error))}") from None
    except requests.RequestException as error:
        raise DicomWebResponseError(
            f"bad response from the DICOMweb server: {where} (UID {uid}): {type(error).__name__}: "
            f"{server.scrub(_short(error))}") from None
    except Exception as error:
        retry_error = _retry_response(error)
        if retry_error is not None:
            raise _status_error(retry_error, where, uid, f"after {server.retries + 1} attempts") from None
        raise DicomWebResponseError(
            f"unusable (truncated or malformed) response from the DICOMweb server: {where} (UID {uid}): "
            f"{type(error).__name__}: {server.scrub(str(error))[:200]}") from None


def _retry_response(error: BaseException) -> "int | None":
    """HTTP status of the last attempt when ``retrying`` gave up on a retriable status."""
    attempt = getattr(error, "last_attempt", None)
    if attempt is None or type(error).__name__ != "RetryError":
        return None
    value = getattr(attempt, "value", None)
    response = value[1] if isinstance(value, tuple) and len(value) == 2 else value
    return int(getattr(response, "status_code", 0) or 0)


def _short(error: BaseException) -> str:
    """The innermost reason of a ``requests`` connection error (e.g. 'Connection refused')."""
    text = str(error)
    for marker in ("Errno", "Connection refused", "timed out", "Name or service not known"):
        index = text.find(marker)
        if index >= 0:
            return text[max(0, index - 1):][:120].rstrip("')\"")
    return text[:160]
