"""Shared pieces of ``pull`` and ``push``: server options and staging cached series as a folder.

Credentials are never command-line arguments (they would show in ``ps`` and
shell history): the token or the basic-auth password comes from an
environment variable (``MONAI_DICOMSEG_DICOMWEB_TOKEN``, or
``MONAI_DICOMSEG_DICOMWEB_USERNAME`` / ``..._PASSWORD``; ``--token-env`` /
``--password-env`` name other variables).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from monai_dicomseg.errors import InputError

__all__ = ["add_server_options", "server_from_args", "staged_folder"]


def add_server_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("DICOMweb server")
    group.add_argument("--token-env", metavar="VAR", default="MONAI_DICOMSEG_DICOMWEB_TOKEN",
                       help="environment variable holding a bearer token (default: %(default)s)")
    group.add_argument("--user", metavar="NAME",
                       help="HTTP basic user (default: $MONAI_DICOMSEG_DICOMWEB_USERNAME); the password is read "
                            "from the variable named by --password-env")
    group.add_argument("--password-env", metavar="VAR", default="MONAI_DICOMSEG_DICOMWEB_PASSWORD",
                       help="environment variable holding the basic-auth password (default: %(default)s)")
    group.add_argument("--ca-bundle", metavar="PEM", help="CA certificates to verify the server's TLS certificate")
    group.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (not recommended)")
    group.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default: %(default)s)")
    group.add_argument("--retries", type=int, default=3, help="retries on 5xx/connection errors (default: 3)")
    group.add_argument("--cache", metavar="DIR", help="instance cache folder (default: ~/.cache/monai_dicomseg/dicomweb)")


def server_from_args(url: str, args: argparse.Namespace) -> Any:
    """The :class:`~monai_dicomseg.dicomweb.DicomWebServer` for ``url`` from the options and environment."""
    from monai_dicomseg.dicomweb import DicomWebServer

    token = os.environ.get(args.token_env) or None
    user = args.user or os.environ.get("MONAI_DICOMSEG_DICOMWEB_USERNAME") or None
    password = os.environ.get(args.password_env) if user else None
    if user and password is None:
        raise InputError(f"--user {user!r} needs the password in the environment variable {args.password_env}")
    verify: Any = False if args.insecure else (args.ca_bundle or True)
    return DicomWebServer(url, token=token, username=None if token else user, password=None if token else password,
                          verify=verify, timeout=(min(10.0, args.timeout), args.timeout), retries=args.retries,
                          cache_dir=args.cache)


@contextlib.contextmanager
def staged_folder(paths: Sequence[str]) -> Iterator[Path]:
    """A temporary folder holding symbolic links to ``paths`` (a cached series as the folder the CLI expects)."""
    with tempfile.TemporaryDirectory(prefix="mds-series-") as folder:
        for index, path in enumerate(paths):
            os.symlink(os.path.abspath(path), os.path.join(folder, f"{index:05d}.dcm"))
        yield Path(folder)
