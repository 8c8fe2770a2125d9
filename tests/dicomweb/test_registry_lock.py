"""The DICOMweb credential registry changes and is read under the lock that guards the client cache."""
from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from monai_dicomseg.dicomweb import session as session_module
from monai_dicomseg.dicomweb.session import DicomWebServer, register_server, server_for, unregister_server

ROOT = "https://pacs.example.org/dicom-web"


class _LockCheckingDict(dict):
    """A registry that records, on every change and iteration, whether the module lock was held."""

    def __init__(self) -> None:
        super().__init__()
        self.unlocked: list[str] = []

    def _check(self, operation: str) -> None:
        if not session_module._LOCK.locked():
            self.unlocked.append(operation)

    def __setitem__(self, key, value) -> None:
        self._check("set")
        super().__setitem__(key, value)

    def pop(self, *args):
        self._check("pop")
        return super().pop(*args)

    def __iter__(self) -> Iterator:
        self._check("iterate")
        return super().__iter__()


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> _LockCheckingDict:
    table = _LockCheckingDict()
    monkeypatch.setattr(session_module, "_REGISTRY", table)
    return table


def test_every_registry_access_holds_the_lock(registry: _LockCheckingDict):
    server = DicomWebServer(ROOT, token="secret")
    register_server(server)
    assert server_for(ROOT + "/studies/1.2.3") is server
    unregister_server(ROOT + "/")
    assert server_for(ROOT).token is None  # nothing registered: from the environment
    assert registry.unlocked == []
    assert session_module._LOCK.locked() is False  # released again


def test_concurrent_registration_and_lookup(registry: _LockCheckingDict):
    """Threads register, look up and unregister at once: no 'dictionary changed size during iteration',
    every lookup sees a complete entry, and the final table is what the threads left."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    errors: list[BaseException] = []
    start = threading.Barrier(8, timeout=60)

    def worker(index: int) -> None:
        try:
            start.wait()
            for round_ in range(200):
                url = f"{ROOT}/tenant{index}/r{round_}"
                register_server(DicomWebServer(url, token=f"t{index}"))
                found = server_for(url + "/studies/1")
                assert found.url == url and found.token == f"t{index}"
                if round_ % 2:
                    unregister_server(url)
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        sys.setswitchinterval(previous)
    assert errors == []
    assert len(registry) == 8 * 100
    assert registry.unlocked == []


def test_registration_is_checked():
    from monai_dicomseg.errors import InputTypeError

    with pytest.raises(InputTypeError, match="register_server needs a DicomWebServer; got str"):
        register_server(ROOT)  # type: ignore[arg-type]  # reason: the bad input under test
