"""DICOMweb layer without a server: references/URIs, settings, the instance cache, unreachable servers."""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monai_dicomseg.dicomweb import DicomWebSeries, DicomWebServer, InstanceCache, materialize, redact_url
from monai_dicomseg.dicomweb.reference import parse_dicomweb
from monai_dicomseg.errors import DicomWebConnectionError, DicomWebError, InputError, InputTypeError

STUDY, SERIES, SOP = "1.2.3.4", "1.2.3.4.5", "1.2.3.4.5.6"
ROOT = "https://pacs.example.org:8443/dicom-web"

uids = st.lists(st.integers(0, 10**12), min_size=2, max_size=6).map(lambda xs: ".".join(map(str, xs))).filter(
    lambda u: len(u) <= 64)


@given(study=uids, series=uids, instance=st.none() | uids)
def test_uri_round_trip(study, series, instance):
    ref = DicomWebSeries(ROOT, study, series, instance)
    assert DicomWebSeries.from_uri(ref.uri) == ref
    assert str(ref) == ref.uri and ref.uri.startswith("dicomweb+https://")


def test_uri_form_and_parse():
    ref = DicomWebSeries.from_uri(f"dicomweb+{ROOT}/studies/{STUDY}/series/{SERIES}/instances/{SOP}")
    assert (ref.url, ref.study_uid, ref.series_uid, ref.instance_uid) == (ROOT, STUDY, SERIES, SOP)
    assert ref.series().instance_uid is None
    assert parse_dicomweb("/data/seg.dcm") is None and parse_dicomweb(ref) is ref
    collapsed = str(Path(ref.uri))  # MONAI's LoadImage passes names through pathlib: "https://" -> "https:/"
    assert collapsed != ref.uri and DicomWebSeries.from_uri(collapsed) == ref


def test_server_and_secrets_stay_out_of_repr_uri_and_equality():
    server = DicomWebServer(ROOT, token="tok-123", retries=0)
    ref = DicomWebSeries(ROOT, STUDY, SERIES, server=server)
    text = repr(ref) + str(ref) + ref.uri + repr(server)
    assert "tok-123" not in text
    assert ref == DicomWebSeries(ROOT, STUDY, SERIES)
    basic = DicomWebServer(ROOT, username="u", password="pw-secret")
    assert "pw-secret" not in repr(basic)
    assert basic.scrub("x pw-secret y") == "x *** y"


@pytest.mark.parametrize("uri, match", [
    ("https://host/dicom-web/studies/1.2/series/1.3", "starts with 'dicomweb\\+'"),
    ("dicomweb+https://host/dicom-web/studies/1.2", "must end in /studies/"),
    ("dicomweb+https://host/dicom-web/studies/1.2/series/x.y", "must end in /studies/"),
    ("dicomweb+ftp://host/dicom-web/studies/1.2/series/1.3", "http\\(s\\) service root"),
    ("dicomweb+https://user:hunter2@host/dicom-web/studies/1.2/series/1.3", "must not contain credentials"),
], ids=["no-prefix", "no-series", "bad-uid", "ftp", "credentials"])
def test_bad_uris(uri, match):
    with pytest.raises(InputError, match=match) as info:
        DicomWebSeries.from_uri(uri)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"url": 5}, InputTypeError, "url must be a str"),
    ({"study_uid": 1}, InputTypeError, "study_uid must be a str"),
    ({"series_uid": "1..2"}, InputError, "series_uid must be a DICOM UID"),
    ({"instance_uid": "1." + "2" * 70}, InputError, "instance_uid must be a DICOM UID"),
    ({"url": "https://host/dicom-web?token=abc"}, InputError, "query or fragment"),
], ids=["url-type", "study-type", "series-value", "instance-long", "query"])
def test_bad_reference_fields(kwargs, error, match):
    fields = {"url": ROOT, "study_uid": STUDY, "series_uid": SERIES, **kwargs}
    with pytest.raises(error, match=match) as info:
        DicomWebSeries(**fields)
    assert "token=abc" not in str(info.value)


@pytest.mark.parametrize("kwargs, match", [
    ({"retries": -1}, "retries must be >= 0"),
    ({"backoff": -0.5}, "backoff must be >= 0"),
    ({"username": "u"}, "both username and password"),
], ids=["retries", "backoff", "half-basic"])
def test_bad_server_settings(kwargs, match):
    with pytest.raises(InputError, match=match):
        DicomWebServer(ROOT, **kwargs)


def test_redact_url():
    assert redact_url("https://u:p@host:1/x?token=1") == "https://***@host:1/x"


def test_server_down_is_a_connection_error_naming_url_and_uid(tmp_path):
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/dicom-web"
    requests = pytest.importorskip("requests")
    attempts = []

    class Counting(requests.Session):
        def request(self, method, url, *args, **kwargs):
            attempts.append(url)
            return super().request(method, url, *args, **kwargs)

    server = DicomWebServer(url, username="u", password="pw-secret", retries=1, backoff=0.01,
                            timeout=(2, 2), cache_dir=str(tmp_path), session=Counting())
    with pytest.raises(DicomWebConnectionError, match=rf"cannot reach .*127\.0\.0\.1.*UID {SERIES}") as info:
        materialize(DicomWebSeries(url, STUDY, SERIES, server=server))
    assert "pw-secret" not in str(info.value) and "2 attempt" in str(info.value)
    assert len(attempts) == 2  # retried once, then given up
    assert isinstance(info.value, (DicomWebError, ConnectionError, OSError))


# --------------------------------------------------------------------------- cache

def test_cache_verifies_on_read_and_refetches_corrupt_entries(tmp_path):
    cache = InstanceCache(tmp_path, max_bytes=10**6)
    path = cache.put(SOP, b"DICM" * 10)
    assert cache.get(SOP) == path
    with open(path, "r+b") as handle:  # same size, other bytes
        handle.write(b"XXXX")
    assert cache.get(SOP) is None and not os.path.exists(path)
    cache.put(SOP, b"abc")
    os.truncate(path, 1)
    assert cache.get(SOP) is None


def test_cache_evicts_least_recently_used_within_bound(tmp_path):
    cache = InstanceCache(tmp_path, max_bytes=250)
    for i in range(1, 4):
        cache.put(f"1.2.{i}", bytes(100))
        os.utime(cache.path(f"1.2.{i}"), (i, i))
    cache.get("1.2.1")  # a hit makes 1.2.1 the most recent
    assert cache.evict(keep=["1.2.3"]) == 1
    assert cache.get("1.2.2") is None and cache.get("1.2.1") and cache.get("1.2.3")
    assert cache.size() <= 250


@pytest.mark.parametrize("kwargs, match", [({"max_bytes": 0}, "max_bytes must be > 0")], ids=["zero"])
def test_cache_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(InputError, match=match):
        InstanceCache(tmp_path, **kwargs)
    with pytest.raises(InputError, match="SOPInstanceUID must be a DICOM UID"):
        InstanceCache(tmp_path).path("../../etc/passwd")


def _writer(root: str, worker: int) -> None:
    cache = InstanceCache(root)
    for round_ in range(30):
        with cache.lock("1.2.9"):
            cache.put("1.2.9", bytes([worker]) * (1000 + round_))
        cache.get("1.2.9")


def test_cache_is_safe_with_concurrent_processes(tmp_path):
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_writer, args=(str(tmp_path), w)) for w in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    cache = InstanceCache(tmp_path)
    path = cache.get("1.2.9")
    assert path is not None  # a complete, verified entry from one of the writers
    data = open(path, "rb").read()
    assert len(set(data)) == 1 and hashlib.sha256(data).hexdigest()
    assert not [p for p in (tmp_path / "instances").rglob(".tmp-*")]
