"""A real DICOMweb server for the tests: Orthanc with its DICOMweb plugin, on loopback only.

The session-scoped :func:`orthanc` fixture starts ``Orthanc`` (Debian packages
``orthanc`` and ``orthanc-dicomweb``) on a free 127.0.0.1 port with a
temporary storage folder and a generated configuration: HTTP basic auth on,
``RemoteAccessAllowed`` false, the DICOM (DIMSE) server off, the DICOMweb
plugin at ``/dicom-web/``, and a Lua ``ReceivedInstanceFilter`` that refuses
the Label Map Segmentation SOP class (a real server-side STOW-RS rejection).
It waits until the server answers and stops it at the end.

Without Orthanc the tests skip with one line saying how to install it; with
``CI=true`` a missing server is a failure. Every request goes to 127.0.0.1.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

INSTALL_HINT = ("Orthanc not installed: DICOMweb tests need it "
                "(sudo apt-get install -y orthanc orthanc-dicomweb, or sudo .ci/install-services)")
PLUGIN_CANDIDATES = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so",
)
LABELMAP_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.7"
USERNAME, PASSWORD = "mds-user", "s3cret-Pa55word"

_FILTER_LUA = f"""
function ReceivedInstanceFilter(dicom, origin, info)
  if dicom.SOPClassUID == '{LABELMAP_SOP_CLASS}' then
    return false
  end
  return true
end
"""


@dataclass(frozen=True)
class OrthancServer:
    """A running Orthanc: its DICOMweb root, REST root and credentials."""

    url: str           # http://127.0.0.1:<port>/dicom-web
    rest: str          # http://127.0.0.1:<port>
    username: str
    password: str
    storage: Path

    def server(self, **kwargs):
        from monai_dicomseg.dicomweb import DicomWebServer

        kwargs.setdefault("retries", 1)
        kwargs.setdefault("backoff", 0.01)
        kwargs.setdefault("timeout", (5.0, 30.0))
        return DicomWebServer(self.url, username=self.username, password=self.password, **kwargs)


def _plugin_path() -> "str | None":
    found = [p for p in PLUGIN_CANDIDATES if os.path.exists(p)]
    if not found:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            listing = subprocess.run(["dpkg", "-L", "orthanc-dicomweb"], capture_output=True, text=True,
                                     timeout=10).stdout
            found = [line for line in listing.splitlines() if "DicomWeb" in line and line.endswith(".so")]
    return found[0] if found else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the DICOMweb server is required)", pytrace=False)
    pytest.skip(reason)


def _wait(rest: str, process: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            answer = requests.get(f"{rest}/dicom-web/studies", auth=(USERNAME, PASSWORD), timeout=2)
            if answer.status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"Orthanc did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory):
    """Start Orthanc + DICOMweb on loopback for the session; yield an :class:`OrthancServer`."""
    binary = shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if os.path.exists("/usr/sbin/Orthanc") else None)
    plugin = _plugin_path()
    if binary is None or plugin is None:
        _missing(INSTALL_HINT)
    pytest.importorskip("dicomweb_client", reason="pip install dicomweb-client")
    root = tmp_path_factory.mktemp("orthanc")
    storage = root / "storage"
    storage.mkdir()
    (root / "filter.lua").write_text(_FILTER_LUA)
    port = free_port()
    config = {
        "Name": "monai_dicomseg-tests",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "HttpPort": port,
        "DicomServerEnabled": False,
        "DicomPort": free_port(),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USERNAME: PASSWORD},
        "Plugins": [plugin],
        "LuaScripts": [str(root / "filter.lua")],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False, "StudiesMetadata": "Full",
                     "SeriesMetadata": "Full"},
        "StableAge": 1,
        "HttpTimeout": 30,
        "ConcurrentJobs": 1,
    }
    config_path = root / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=1))
    log = root / "orthanc.log"
    with open(log, "wb") as handle:
        process = subprocess.Popen([binary, str(config_path)], stdout=handle, stderr=subprocess.STDOUT,
                                   cwd=root, start_new_session=True)
    rest = f"http://127.0.0.1:{port}"
    try:
        _wait(rest, process, log)
        yield OrthancServer(f"{rest}/dicom-web", rest, USERNAME, PASSWORD, storage)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover
            process.kill()
            process.wait()
