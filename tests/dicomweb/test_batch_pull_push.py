"""``batch pull`` / ``batch push`` sharded and resumable against the live Orthanc (issue 27).

N shards run as N processes sharing one manifest and one instance cache; one
is SIGKILLed mid-item and re-run. The union is complete, each input is done
once, no partial or temporary file is left, and (push) every SEG is stored
with exactly one STOW-RS request (counted by the loopback proxy of
``tests/dicomweb_proxy.py``), the killed item included.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import requests
from dicomweb_proxy import CountingProxy
from pacs_studies import upload_studies, write_studies

from monai_dicomseg.cli.jobs import COUNT_ENV, SHARD_ENV, shard_of
from monai_dicomseg.cli.main import main
from monai_dicomseg.dicomweb import (
    DicomWebSeries,
    create_datalist_from_server,
    store,
    unregister_server,
)

nibabel = pytest.importorskip("nibabel")
REPO = Path(__file__).resolve().parents[2]
PULL_PATIENT, PUSH_PATIENT, STUDIES = "H23-BATCH-PULL", "H23-BATCH-PUSH", 6

# A main() that SIGKILLs itself at a chosen moment, set by the environment:
#   KILL_AT_RENAME=n: when the n-th output temporary is about to be renamed into place (complete, not yet there);
#   KILL_AFTER_STORE=n: after the n-th STOW-RS was acknowledged and read back, before the manifest's done record.
_KILLING_MAIN = """
import os, signal, sys
renames, stores = [], []
def dying(real):
    def rename(src, dst, *args, **kwargs):
        if str(src).endswith('.part'):
            renames.append(dst)
            if len(renames) == int(os.environ.get('KILL_AT_RENAME', 0)):
                os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst, *args, **kwargs)
    return rename
os.replace, os.link = dying(os.replace), dying(os.link)
import monai_dicomseg.dicomweb.store
store_module = sys.modules['monai_dicomseg.dicomweb.store']  # the package re-exports the function store()
real_verify = store_module._verify_stored
def verify(*args, **kwargs):
    real_verify(*args, **kwargs)
    stores.append(1)
    if len(stores) == int(os.environ.get('KILL_AFTER_STORE', 0)):
        os.kill(os.getpid(), signal.SIGKILL)
store_module._verify_stored = verify
from monai_dicomseg.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def _env(orthanc, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (SHARD_ENV, COUNT_ENV, "RANK", "WORLD_SIZE")}
    tests = str(REPO / "tests")
    env.update(PYTHONPATH=os.pathsep.join([str(REPO), tests, env.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1",
               MONAI_DICOMSEG_DICOMWEB_USERNAME=orthanc.username, MONAI_DICOMSEG_DICOMWEB_PASSWORD=orthanc.password,
               **extra)
    return env


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _shards(argv: list[str], orthanc, victim: int, kill: dict[str, str], count: int = 3) -> list[tuple]:
    processes = []
    for index in range(count):
        script = _KILLING_MAIN if index == victim else \
            "import sys; from monai_dicomseg.cli.main import main; sys.exit(main(sys.argv[1:]))"
        env = _env(orthanc, **(kill if index == victim else {}))
        processes.append(subprocess.Popen([sys.executable, "-c", script, *argv, "--shard", f"{index}/{count}"],
                                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=600) for p in processes]
    return [(p.returncode, *output) for p, output in zip(processes, outputs)]


def _rerun(argv: list[str], orthanc, shard: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monai_dicomseg", *argv, "--shard", shard], env=_env(orthanc),
                          capture_output=True, text=True, timeout=600)


# --------------------------------------------------------------------------- pull


@pytest.fixture(scope="module")
def on_server(orthanc, tmp_path_factory):
    root = tmp_path_factory.mktemp("batch-pull")
    studies = write_studies(root / "studies", STUDIES, PULL_PATIENT, seed=230)
    upload_studies(orthanc.server(cache_dir=str(root / "upload-cache")), studies)
    for study in studies:
        study["uri"] = DicomWebSeries(orthanc.url, study["study_uid"], study["seg_series_uid"], study["seg_uid"]).uri
        study["key"] = f"{study['study_uid']}/{study['seg_series_uid']}/{study['seg_uid']}"
    return studies


@pytest.fixture
def credentials(orthanc, monkeypatch, tmp_path):
    monkeypatch.setenv("MONAI_DICOMSEG_DICOMWEB_USERNAME", orthanc.username)
    monkeypatch.setenv("MONAI_DICOMSEG_DICOMWEB_PASSWORD", orthanc.password)
    yield ["--cache", str(tmp_path / "cache"), "--retries", "0"]
    unregister_server(orthanc.url)


def _pulled(out: Path, studies: list[dict], grid: "tuple[int, int, int] | None" = None) -> None:
    """Every SEG's NIfTI and sidecar, nothing else; the label voxels as stored."""
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.suffix != ".jsonl")
    assert files == sorted([f"{s['key']}.nii.gz" for s in studies] + [f"{s['key']}.json" for s in studies])
    for study in studies:
        data = np.asarray(nibabel.load(out / f"{study['key']}.nii.gz").dataobj)
        assert int((data > 0).sum()) == study["voxels"]
        if grid is not None:
            assert data.shape == grid
        json.loads((out / f"{study['key']}.json").read_text())


def test_pull_uri_list_three_shards_one_killed_and_rerun(on_server, orthanc, tmp_path):
    uris = tmp_path / "segs.txt"
    uris.write_text("# the SEGs to pull\n\n" + "\n".join(s["uri"] for s in reversed(on_server)) + "\n")
    out, manifest, cache = tmp_path / "out", tmp_path / "manifest.jsonl", tmp_path / "cache"
    keys = sorted(s["key"] for s in on_server)
    sizes = Counter(shard_of(k, 3) for k in keys)
    victim = max(range(3), key=lambda k: sizes[k])
    assert sizes[victim] >= 2
    argv = ["batch", "pull", str(uris), str(out), "--manifest", str(manifest), "--cache", str(cache),
            "--retries", "0"]
    # each item writes a NIfTI then its sidecar: the 3rd rename is the second item's NIfTI
    results = _shards(argv, orthanc, victim, {"KILL_AT_RENAME": "3"})
    assert [code for code, _, _ in results] == [-9 if k == victim else 0 for k in range(3)], results
    records = _records(manifest)
    interrupted = {r["input"] for r in records if r["status"] == "started"} - \
        {r["input"] for r in records if r["status"] == "done"}
    assert len(interrupted) == 1 and shard_of(next(iter(interrupted)), 3) == victim
    assert list(out.rglob(".*.part")), "the killed write left its temporary"
    rerun = _rerun(argv, orthanc, f"{victim}/3")
    assert rerun.returncode == 0, rerun.stderr
    assert f"{sizes[victim] - 1} done, 1 skipped (done and verified earlier), 0 failed" in rerun.stdout
    done = [r for r in _records(manifest) if r["status"] == "done"]
    assert sorted(r["input"] for r in done) == keys, "every SEG done exactly once"
    assert all(r["source"] in {s["uri"] for s in on_server} and r["input_sha256"] is None for r in done)
    _pulled(out, on_server)


def test_pull_from_the_server_and_from_its_datalist(on_server, orthanc, credentials, tmp_path, capsys):
    out = tmp_path / "from-server"
    status = main(["batch", "pull", orthanc.url, str(out), "--patient-id", PULL_PATIENT, "--max-workers", "3",
                   *credentials])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert f"{STUDIES} done, 0 skipped" in captured.out
    _pulled(out, on_server, grid=(8, 8, 3))  # the paired CT's grid (X, Y, Z)
    # the same through a datalist written by create_datalist_from_server, resumable with a manifest
    datalist = create_datalist_from_server(orthanc.server(cache_dir=str(tmp_path / "c2")), patient_id=PULL_PATIENT)
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"training": datalist[:4], "validation": datalist[4:]}))
    again, manifest = tmp_path / "from-datalist", tmp_path / "m.jsonl"
    argv = ["batch", "pull", str(path), str(again), "--manifest", str(manifest), *credentials]
    assert main(argv) == 0
    _pulled(again, on_server, grid=(8, 8, 3))
    for study in on_server:
        np.testing.assert_array_equal(nibabel.load(again / f"{study['key']}.nii.gz").dataobj,
                                      nibabel.load(out / f"{study['key']}.nii.gz").dataobj)
    capsys.readouterr()
    assert main(argv) == 0
    assert f"0 done, {STUDIES} skipped (done and verified earlier)" in capsys.readouterr().out
    # an output damaged behind our back is pulled again (from the cache)
    (again / f"{on_server[0]['key']}.json").write_text("{}")
    assert main(argv) == 0
    assert f"1 done, {STUDIES - 1} skipped" in capsys.readouterr().out


def test_pull_unpaired_seg_fails_its_item_only(on_server, orthanc, credentials, tmp_path, capsys):
    """A SEG whose referenced series is not on the server is a failed item naming why (not silently left out)."""
    import pydicom
    from pacs_studies import _segmentation

    from monai_dicomseg import synthetic

    labels = synthetic.make_ellipsoid_labels((3, 8, 8), n_labels=2, seed=5)
    ct = synthetic.make_ct_series((3, 8, 8), labels=labels, seed=5)
    for ds in ct:
        ds.PatientID = "H23-UNPAIRED"
    seg = _segmentation(ct, labels)
    seg.save_as(tmp_path / "orphan.dcm")
    store(tmp_path / "orphan.dcm", orthanc.server(cache_dir=str(tmp_path / "c")))  # its CT is not stored
    status = main(["batch", "pull", orthanc.url, str(tmp_path / "out"), "--patient-id", "H23-UNPAIRED",
                   *credentials])
    captured = capsys.readouterr()
    assert status == 1
    assert "0 done, 0 skipped (done and verified earlier), 1 failed" in captured.out
    assert "paired no image series" in captured.err and str(pydicom.dcmread(tmp_path / "orphan.dcm").SOPInstanceUID) \
        in captured.err


@pytest.mark.parametrize("content, match", [
    ("dicomweb+http://h/dicom-web/studies/1.2/series/1.3\nnot-a-uri\n", "line 2: a DICOMweb URI starts with"),
    ("# nothing\n\n", "names no SEG URI"),
])
def test_pull_bad_uri_list(tmp_path, capsys, content, match):
    path = tmp_path / "uris.txt"
    path.write_text(content)
    assert main(["batch", "pull", str(path), str(tmp_path / "out")]) == 1
    assert match in capsys.readouterr().err


def test_pull_filters_need_a_server(tmp_path, capsys):
    path = tmp_path / "uris.txt"
    path.write_text("dicomweb+http://h/dicom-web/studies/1.2/series/1.3\n")
    assert main(["batch", "pull", str(path), str(tmp_path / "out"), "--study", "1.2"]) == 1
    assert "--study / --patient-id filter a server INPUT" in capsys.readouterr().err


# --------------------------------------------------------------------------- push


@pytest.fixture
def to_push(orthanc, tmp_path):
    """SEG files in ``tmp_path/segs/<case>.dcm`` whose CTs are on the server, the SEGs not yet."""
    studies = write_studies(tmp_path / "studies", STUDIES, PUSH_PATIENT, seed=2300)
    server = orthanc.server(cache_dir=str(tmp_path / "upload-cache"))
    store([f for study in studies for f in study["ct_files"]], server, verify=False)
    folder = tmp_path / "segs"
    folder.mkdir()
    for index, study in enumerate(studies):
        study["key"] = f"case{index}.dcm"
        os.replace(study["seg"], folder / study["key"])
    return folder, studies


def _held(orthanc, study: dict) -> bool:
    found = orthanc.server().client().search_for_instances(
        study_instance_uid=study["study_uid"], series_instance_uid=study["seg_series_uid"],
        search_filters={"SOPInstanceUID": study["seg_uid"]})
    return bool(found)


def test_push_three_shards_one_killed_after_its_stow_no_duplicate(to_push, orthanc, tmp_path):
    folder, studies = to_push
    keys = sorted(s["key"] for s in studies)
    sizes = Counter(shard_of(k, 3) for k in keys)
    victim = max(range(3), key=lambda k: sizes[k])
    assert sizes[victim] >= 2
    manifest = tmp_path / "push.jsonl"
    with CountingProxy(orthanc.url) as proxy:
        argv = ["batch", "push", proxy.url, str(folder), "--manifest", str(manifest), "--retries", "0",
                "--cache", str(tmp_path / "cache")]
        # killed after its 2nd SEG was stored and read back, before the manifest says so
        results = _shards(argv, orthanc, victim, {"KILL_AFTER_STORE": "2"})
        assert [code for code, _, _ in results] == [-9 if k == victim else 0 for k in range(3)], results
        assert proxy.count("/studies", "POST") == sum(sizes[k] for k in range(3) if k != victim) + 2
        rerun = _rerun(argv, orthanc, f"{victim}/3")
        assert rerun.returncode == 0, rerun.stderr
        assert f"{sizes[victim] - 1} done, 1 skipped (done and verified earlier), 0 failed" in rerun.stdout
        assert proxy.count("/studies", "POST") == len(studies), "one STOW-RS per SEG, the interrupted one included"
        done = [r for r in _records(manifest) if r["status"] == "done"]
        assert sorted(r["input"] for r in done) == keys, "every SEG done exactly once"
        assert sum(1 for r in done if r["stored"].get("found_on_server")) == 1
        by_key = {s["key"]: s for s in studies}
        for record in done:
            assert record["stored"]["sop_instance_uid"] == by_key[record["input"]]["seg_uid"]
        assert all(_held(orthanc, study) for study in studies)
        # a full re-run stores nothing: one QIDO-RS check per SEG
        proxy.reset()
        again = subprocess.run([sys.executable, "-m", "monai_dicomseg", *argv], env=_env(orthanc),
                               capture_output=True, text=True, timeout=600)
        assert again.returncode == 0 and f"0 done, {len(studies)} skipped" in again.stdout, again.stderr
        assert proxy.count("/studies", "POST") == 0 and proxy.count("/instances") == len(studies)
        # the server lost one: exactly that one is stored again
        lost = studies[0]
        found = requests.post(f"{orthanc.rest}/tools/lookup", data=lost["seg_uid"],
                              auth=(orthanc.username, orthanc.password), timeout=30).json()
        requests.delete(f"{orthanc.rest}/instances/{found[0]['ID']}", auth=(orthanc.username, orthanc.password),
                        timeout=30).raise_for_status()
        assert not _held(orthanc, lost)
        proxy.reset()
        again = subprocess.run([sys.executable, "-m", "monai_dicomseg", *argv], env=_env(orthanc),
                               capture_output=True, text=True, timeout=600)
        assert again.returncode == 0 and f"1 done, {len(studies) - 1} skipped" in again.stdout, again.stderr
        assert proxy.count("/studies", "POST") == 1 and _held(orthanc, lost)


def test_push_refused_fails_and_is_kept_until_retried(orthanc, credentials, tmp_path, capsys):
    """A store the server refuses (Orthanc's filter drops LABELMAP SEGs) fails its item; not retried without
    --retry-failed."""
    from oracles import build_segmentation

    import monai_dicomseg as mds
    from monai_dicomseg import synthetic

    labels = synthetic.make_ellipsoid_labels((3, 8, 8), n_labels=2, seed=8)
    ct = synthetic.make_ct_series((3, 8, 8), labels=labels, seed=8)
    folder = tmp_path / "segs"
    folder.mkdir()
    build_segmentation(mds, ct, labels, "LABELMAP").save_as(folder / "labelmap.dcm")
    manifest, spool = tmp_path / "m.jsonl", tmp_path / "spool"
    argv = ["batch", "push", orthanc.url, str(folder), "--manifest", str(manifest), "--spool", str(spool),
            *credentials]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "1 failed" in captured.out and "FAILED labelmap.dcm:" in captured.err and str(spool) in captured.err
    assert main(argv) == 1
    assert "1 failed earlier (not retried)" in capsys.readouterr().out
    assert main([*argv, "--retry-failed"]) == 1
    assert "0 done, 0 skipped (done and verified earlier), 1 failed, 0 failed earlier" in capsys.readouterr().out
