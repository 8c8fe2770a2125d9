"""A throwaway local Orthanc + DICOMweb server, for tests, benchmarks and demos.

:func:`start_orthanc` runs the ``Orthanc`` binary of the Debian packages
``orthanc`` and ``orthanc-dicomweb`` on a free 127.0.0.1 port with a
temporary storage folder and a generated configuration: HTTP basic auth on,
``RemoteAccessAllowed`` false, the DICOM (DIMSE) server off, the DICOMweb
plugin at ``/dicom-web/``, and optionally a Lua ``ReceivedInstanceFilter``
refusing some SOP classes (a server-side STOW-RS rejection). Nothing listens
beyond loopback use; nothing is installed or enabled system-wide.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monai_dicomseg.errors import MissingDependencyError

__all__ = ["OrthancServer", "orthanc_available", "start_orthanc", "INSTALL_HINT"]

INSTALL_HINT = ("Orthanc not installed: DICOMweb tests need it "
                "(sudo apt-get install -y orthanc orthanc-dicomweb, or sudo .ci/install-services)")
_PLUGIN_CANDIDATES = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so",
)


@dataclass(frozen=True)
class OrthancServer:
    """A running Orthanc: DICOMweb root, REST root and credentials (``password`` hidden from repr)."""

    url: str
    rest: str
    username: str
    password: str = field(repr=False)
    storage: Path

    def server(self, **kwargs: Any) -> Any:
        """A :class:`~monai_dicomseg.dicomweb.DicomWebServer` for it (short retries and timeouts)."""
        from monai_dicomseg.dicomweb.session import DicomWebServer

        kwargs.setdefault("retries", 1)
        kwargs.setdefault("backoff", 0.01)
        kwargs.setdefault("timeout", (5.0, 30.0))
        return DicomWebServer(self.url, username=self.username, password=self.password, **kwargs)


def _binary() -> "str | None":
    found = shutil.which("Orthanc")
    return found or ("/usr/sbin/Orthanc" if os.path.exists("/usr/sbin/Orthanc") else None)


def _plugin() -> "str | None":
    found = [p for p in _PLUGIN_CANDIDATES if os.path.exists(p)]
    if not found:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            listing = subprocess.run(["dpkg", "-L", "orthanc-dicomweb"], capture_output=True, text=True,
                                     timeout=10).stdout
            found = [line for line in listing.splitlines() if "DicomWeb" in line and line.endswith(".so")]
    return found[0] if found else None


def orthanc_available() -> bool:
    """True when the Orthanc binary and its DICOMweb plugin are installed."""
    return _binary() is not None and _plugin() is not None


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _filter_lua(refused: Sequence[str]) -> str:
    checks = "\n".join(f"  if dicom.SOPClassUID == '{uid}' then return false end" for uid in refused)
    return f"function ReceivedInstanceFilter(dicom, origin, info)\n{checks}\n  return true\nend\n"


def _wait(rest: str, auth: tuple[str, str], process: subprocess.Popen, log: Path, timeout: float) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{rest}/dicom-web/studies", auth=auth, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"Orthanc did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def start_orthanc(
    root: "str | os.PathLike[str]",
    *,
    username: str = "mds-user",
    password: "str | None" = None,
    refuse_sop_classes: Sequence[str] = (),
    timeout: float = 60.0,
) -> Iterator[OrthancServer]:
    """Run Orthanc + DICOMweb in ``root`` (storage, config, log) until the block ends.

    Parameters
    ----------
    root
        An empty working folder.
    username, password
        The one registered user (password: random when None).
    refuse_sop_classes
        SOP Class UIDs a Lua ``ReceivedInstanceFilter`` drops (STOW-RS acknowledges, nothing is stored).
    timeout
        Seconds to wait for the server to answer.

    Raises
    ------
    MissingDependencyError
        Orthanc or its DICOMweb plugin is not installed (the message says how).
    """
    binary, plugin = _binary(), _plugin()
    if binary is None or plugin is None:
        raise MissingDependencyError(INSTALL_HINT)
    root = Path(root)
    storage = root / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    password = password or secrets.token_urlsafe(12)
    port = free_port()
    config: dict[str, Any] = {
        "Name": "monai_dicomseg",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "HttpPort": port,
        "DicomServerEnabled": False,
        "DicomPort": free_port(),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {username: password},
        "Plugins": [plugin],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False,
                     "StudiesMetadata": "Full", "SeriesMetadata": "Full"},
        "StableAge": 1,
        "HttpTimeout": 30,
        "ConcurrentJobs": 1,
    }
    if refuse_sop_classes:
        (root / "filter.lua").write_text(_filter_lua(refuse_sop_classes))
        config["LuaScripts"] = [str(root / "filter.lua")]
    config_path = root / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=1))
    os.chmod(config_path, 0o600)
    log = root / "orthanc.log"
    with open(log, "wb") as handle:
        process = subprocess.Popen([binary, str(config_path)], stdout=handle, stderr=subprocess.STDOUT,
                                   cwd=root, start_new_session=True)
    rest = f"http://127.0.0.1:{port}"
    try:
        _wait(rest, (username, password), process, log, timeout)
        yield OrthancServer(f"{rest}/dicom-web", rest, username, password, storage)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover
            process.kill()
            process.wait()
