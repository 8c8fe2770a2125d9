"""Bounded concurrent DICOMweb requests (issue 27): results equal to sequential, never more than max_workers in flight.

In-flight requests are counted by a loopback proxy in front of the test Orthanc
(``tests/dicomweb_proxy.CountingProxy``); its gate holds the first k requests until k
are open together, so "k in flight" is shown without timing assumptions.
"""
from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from dicomweb_proxy import CountingProxy
from monai_dicomseg.dicomweb import (
    DicomWebSeries, DicomWebServer, create_datalist_from_server, materialize, prefetch, unregister_server,
)
from monai_dicomseg.dicomweb.concurrency import bounded_map
from monai_dicomseg.errors import DicomWebNotFoundError, InputError, InputTypeError
from pacs_studies import upload_studies, write_studies

PATIENT = "H18-CONCURRENCY"
STUDIES = 6


# --------------------------------------------------------------------------- bounded_map alone


def test_bounded_map_order_bound_and_first_error():
    lock, state = threading.Lock(), {"now": 0, "max": 0}
    all_in = threading.Barrier(3, timeout=30)

    def work(n: int) -> int:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        if n < 3:
            all_in.wait()  # the first three run together, or this times out
        with lock:
            state["now"] -= 1
        return n * n

    assert bounded_map(work, range(20), max_workers=3) == [n * n for n in range(20)]
    assert state["max"] == 3

    def failing(n: int) -> int:
        if n in (4, 7):
            raise ValueError(f"item {n}")
        return n

    with pytest.raises(ValueError, match="item 4"):
        bounded_map(failing, range(10), max_workers=4)
    assert bounded_map(lambda n: n, [], max_workers=2) == []


@pytest.mark.parametrize("value, error, match", [
    (0, InputError, "max_workers must be >= 1"), (-2, InputError, "got -2"),
    (2.0, InputTypeError, "must be an int"), (True, InputTypeError, "got bool"), ("4", InputTypeError, "str"),
])
def test_max_workers_refused(value, error, match):
    with pytest.raises(error, match=match):
        bounded_map(str, [1], max_workers=value)


# --------------------------------------------------------------------------- against Orthanc


@pytest.fixture(scope="module")
def studies(orthanc, tmp_path_factory):
    root = tmp_path_factory.mktemp("concurrency")
    found = write_studies(root, STUDIES, PATIENT)
    upload_studies(orthanc.server(cache_dir=str(root / "upload-cache")), found)
    return found


@pytest.fixture
def proxy(orthanc):
    with CountingProxy(orthanc.url) as running:
        yield running


def _server(orthanc, proxy, cache: Path) -> DicomWebServer:
    return DicomWebServer(proxy.url, username=orthanc.username, password=orthanc.password, retries=1,
                          backoff=0.01, timeout=(5.0, 60.0), cache_dir=str(cache))


def test_datalist_concurrent_equals_sequential_and_is_bounded(orthanc, studies, proxy, tmp_path):
    server = _server(orthanc, proxy, tmp_path / "cache")
    try:
        sequential = create_datalist_from_server(server, patient_id=PATIENT, return_unpaired=True, max_workers=1)
        sequential_requests = proxy.paths()
        assert proxy.max_in_flight == 1
        assert len(sequential[0]) == STUDIES and {d["study_instance_uid"] for d in sequential[0]} == \
            {s["study_uid"] for s in studies}
        proxy.reset(gate=4, gate_match="/metadata")  # after the one SEG search: 6 metadata requests
        concurrent = create_datalist_from_server(server, patient_id=PATIENT, return_unpaired=True, max_workers=4)
        assert concurrent == sequential
        assert proxy.paths() == sequential_requests  # the same requests, each once
        assert not proxy.gate_timed_out and proxy.max_in_flight == 4
    finally:
        unregister_server(server.url)


def _relative(paths: list[list[str]], root: Path) -> list[list[tuple[str, str]]]:
    return [[(str(Path(p).relative_to(root)), hashlib.sha256(Path(p).read_bytes()).hexdigest()) for p in group]
            for group in paths]


def test_prefetch_equals_sequential_and_is_bounded(orthanc, studies, proxy, tmp_path):
    server = _server(orthanc, proxy, tmp_path / "sequential")
    try:
        datalist = create_datalist_from_server(server, patient_id=PATIENT, max_workers=2)
        sources = [item[key] for item in datalist for key in ("image", "label")]
        sources += sources[:4]  # repeated sources are retrieved once
        sequential = [materialize(source, server=server) for source in sources]
        concurrent_server = server.with_options(cache_dir=str(tmp_path / "concurrent"))
        proxy.reset(gate=3, gate_match="/metadata")  # each series starts with its metadata request
        concurrent = prefetch(sources, server=concurrent_server, max_workers=3)
        assert _relative(concurrent, tmp_path / "concurrent") == _relative(sequential, tmp_path / "sequential")
        assert not proxy.gate_timed_out and proxy.max_in_flight == 3
        for study in studies:  # one metadata and one retrieval request per series, never twice
            for series in (study["series_uid"], study["seg_series_uid"]):
                assert proxy.count(f"/series/{series}/metadata") == 1
                assert proxy.count(f"/series/{series}") - proxy.count(f"/series/{series}/metadata") == 1
        proxy.reset(gate=0)
        assert prefetch(sources, server=concurrent_server, max_workers=3) == concurrent
        assert proxy.requests == []  # warm cache: no request at all
    finally:
        unregister_server(server.url)


def test_prefetch_raises_the_first_failing_source(orthanc, studies, proxy, tmp_path):
    server = _server(orthanc, proxy, tmp_path / "cache")
    study = studies[0]
    good = DicomWebSeries(server.url, study["study_uid"], study["series_uid"], server=server)
    missing = DicomWebSeries(server.url, study["study_uid"], "1.2.3.4.5.6.7.8.9", server=server)
    with pytest.raises(DicomWebNotFoundError, match="1.2.3.4.5.6.7.8.9"):
        prefetch([good, missing, good], server=server, max_workers=2)


def test_materialize_missing_instances_concurrently(orthanc, studies, proxy, tmp_path):
    study = studies[1]
    server = _server(orthanc, proxy, tmp_path / "cache")
    series = DicomWebSeries(server.url, study["study_uid"], study["series_uid"], server=server)
    reference = materialize(series, server=server.with_options(cache_dir=str(tmp_path / "reference")))
    instances = [Path(p).stem for p in reference]
    assert len(instances) == 3
    # one instance cached: the two others come one by one, both requests open together
    materialize(DicomWebSeries(server.url, study["study_uid"], study["series_uid"], instances[0], server=server))
    proxy.reset(gate=2, gate_match="/instances/")
    paths = materialize(series, server=server, max_workers=2)
    assert [Path(p).name for p in paths] == [Path(p).name for p in reference]
    assert proxy.count("/instances/") == 2 and not proxy.gate_timed_out and proxy.max_in_flight == 2
