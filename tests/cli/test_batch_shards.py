"""``batch --shard K/N --manifest FILE --retry-failed`` (issue 27): partition, environments, resume, kills, recipes."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pydicom
import pytest

from monai_dicomseg.cli.jobs import (
    COUNT_ENV, SHARD_ENV, Manifest, Shard, ShardError, parse_shard, select_shard, shard_from_env, shard_of,
)

REPO = Path(__file__).resolve().parents[2]


def _seg(case, cli, folder: Path) -> Path:
    out = folder / "seg.dcm"
    status, _, stderr = cli("from-nifti", case.nifti(folder / "labels.nii.gz"), case.folder, out,
                            "--labels", "liver,spleen,kidney")
    assert status == 0, stderr
    return out


@pytest.fixture
def seg_tree(axial_case, cli, tmp_path):
    """``tmp_path/in`` with 12 copies of one SEG in two sub-folders; returns ``(in, [relative keys])``."""
    work = tmp_path / "work"
    work.mkdir()
    seg = _seg(axial_case, cli, work)
    root = tmp_path / "in"
    keys = []
    for index in range(12):
        relative = Path("a" if index % 2 else "b") / f"case{index:02d}.dcm"
        (root / relative.parent).mkdir(parents=True, exist_ok=True)
        shutil.copy(seg, root / relative)
        keys.append(relative.as_posix())
    return root, sorted(keys)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------- shards


def test_parse_shard():
    assert parse_shard("0/1") == Shard(0, 1)
    assert parse_shard(" 3 / 4 ") == Shard(3, 4)
    assert str(parse_shard("2/5")) == "2/5"


@pytest.mark.parametrize("text, match", [
    ("4/4", r"index must be in 0\.\.3 \(0-based\); got 4"), ("-1/4", "index must be in"),
    ("1/0", "count must be >= 1"), ("1", "must be K/N"), ("1/2/3", "must be K/N"), ("a/2", "K must be an integer"),
])
def test_parse_shard_refuses(text, match):
    with pytest.raises(ShardError, match=match):
        parse_shard(text)


@pytest.mark.parametrize("env, expected", [
    ({SHARD_ENV: "2/3"}, (2, 3)),
    ({SHARD_ENV: "0/2", "SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "8"}, (0, 2)),  # explicit wins
    ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "4"}, (0, 4)),
    ({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"}, (3, 4)),  # 1-4
    ({"SLURM_ARRAY_TASK_ID": "14", "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_ARRAY_TASK_MIN": "0",
      "SLURM_ARRAY_TASK_STEP": "2"}, (7, 8)),  # --array=0-14:2
    ({"JOB_COMPLETION_INDEX": "6", COUNT_ENV: "7"}, (6, 7)),
    ({"AWS_BATCH_JOB_ARRAY_INDEX": "0", COUNT_ENV: "2"}, (0, 2)),
    ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}, (1, 2)),
])
def test_shard_from_env(env, expected):
    shard = shard_from_env(env)
    assert (shard.index, shard.count) == expected


@pytest.mark.parametrize("env, match", [
    ({}, "no job-array environment found"),
    ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2", "RANK": "0", "WORLD_SIZE": "2"}, "ambiguous"),
    ({"SLURM_ARRAY_TASK_ID": "1"}, "SLURM_ARRAY_TASK_COUNT is not"),
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "3"}, r"index must be in 0\.\.2"),
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_STEP": "2"}, "not SLURM_ARRAY"),
    ({"JOB_COMPLETION_INDEX": "0"}, f"{COUNT_ENV} .* is not"),
    ({"RANK": "0"}, "WORLD_SIZE is not"),
    ({"RANK": "x", "WORLD_SIZE": "2"}, "RANK must be an integer"),
    ({SHARD_ENV: "2/2"}, SHARD_ENV),
])
def test_shard_from_env_refuses(env, match):
    with pytest.raises(ShardError, match=match):
        shard_from_env(env)


def test_partition_is_complete_disjoint_and_per_path(tmp_path):
    keys = [f"{folder}/case{i}.dcm" for folder in ("a", "b", "c") for i in range(40)]
    paths = [tmp_path / key for key in keys]
    for count in (1, 2, 3, 7):
        shards = [select_shard(paths, tmp_path, Shard(k, count)) for k in range(count)]
        flat = [p for shard in shards for p in shard]
        assert sorted(flat) == sorted(paths) and len(set(flat)) == len(flat)
        assert all(shard == sorted(shard) for shard in shards)
        # a file's shard depends on its own path only: a listing with fewer/other files agrees
        subset = paths[::3]
        for k in range(count):
            assert select_shard(subset, tmp_path, Shard(k, count)) == [p for p in shards[k] if p in subset]
    assert {shard_of(k, 1) for k in keys} == {0}


# --------------------------------------------------------------------------- manifest and resume


def test_manifest_records_and_verified_rerun(seg_tree, cli, tmp_path):
    root, keys = seg_tree
    out, manifest = tmp_path / "out", tmp_path / "manifest.jsonl"
    status, stdout, stderr = cli("batch", "convert", root, out, "-r", "--manifest", manifest)
    assert status == 0, stderr
    assert f"{len(keys)} done, 0 skipped" in stdout
    records = _records(manifest)
    assert Counter(r["status"] for r in records) == {"started": len(keys), "done": len(keys)}
    done = {r["input"]: r for r in records if r["status"] == "done"}
    assert sorted(done) == keys
    record = done[keys[0]]
    assert record["output"] == keys[0] and record["error"] is None and record["seconds"] >= 0
    assert record["outputs"][0]["path"] == keys[0]
    assert record["outputs"][0]["sha256"] == __import__("hashlib").sha256((out / keys[0]).read_bytes()).hexdigest()
    assert record["input_sha256"] and record["input_bytes"] == (root / keys[0]).stat().st_size
    # re-run: nothing to do
    status, stdout, _ = cli("batch", "convert", root, out, "-r", "--manifest", manifest)
    assert status == 0 and f"0 done, {len(keys)} skipped" in stdout
    assert len(_records(manifest)) == len(records)
    # an output changed behind our back and an input replaced: exactly those two run again (replacing their outputs)
    (out / keys[1]).write_bytes(b"damaged")
    shutil.copy(root / keys[3], tmp_path / "copy.dcm")
    ds = pydicom.dcmread(tmp_path / "copy.dcm")
    ds.SeriesDescription = "edited"
    ds.save_as(root / keys[2])
    status, stdout, stderr = cli("batch", "convert", root, out, "-r", "--manifest", manifest)
    assert status == 0, stderr
    assert f"2 done, {len(keys) - 2} skipped" in stdout
    assert pydicom.dcmread(out / keys[1]).Modality == "SEG"


def _broken(path: Path, good: Path) -> None:
    """A SEG cut in the middle of its Pixel Data: found as a SEG (header intact), fails to convert."""
    data = good.read_bytes()
    path.write_bytes(data[: len(data) - 200])


def test_failed_items_retry_and_exit_codes(seg_tree, cli, tmp_path):
    root, keys = seg_tree
    good = root / keys[0]
    _broken(root / "b" / "zz_broken.dcm", good)
    out, manifest = tmp_path / "out", tmp_path / "m.jsonl"
    status, stdout, stderr = cli("batch", "convert", root, out, "-r", "--manifest", manifest)
    assert status == 1
    assert "FAILED b/zz_broken.dcm:" in stderr and f"{len(keys)} done, 0 skipped (done and verified earlier), 1 failed," in stdout
    # re-run without --retry-failed: nothing runs, the failure still counts
    status, stdout, stderr = cli("batch", "convert", root, out, "-r", "--manifest", manifest)
    assert status == 1 and "0 done" in stdout and "1 failed earlier (not retried)" in stdout
    assert "FAILED earlier b/zz_broken.dcm" in stderr and "--retry-failed" in stderr
    # fixed input + --retry-failed: done, exit 0
    shutil.copy(good, root / "b" / "zz_broken.dcm")
    status, stdout, stderr = cli("batch", "convert", root, out, "-r", "--manifest", manifest, "--retry-failed")
    assert status == 0, stderr
    assert f"1 done, {len(keys)} skipped (done and verified earlier), 0 failed, 0 failed earlier" in stdout


def test_usage_errors_exit_2(seg_tree, cli, tmp_path, monkeypatch):
    root, _ = seg_tree
    for name in (SHARD_ENV, "SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX", "RANK"):
        monkeypatch.delenv(name, raising=False)
    status, _, stderr = cli("batch", "convert", root, tmp_path / "o", "-r", "--retry-failed")
    assert status == 2 and "--retry-failed needs --manifest" in stderr
    status, _, stderr = cli("batch", "convert", root, tmp_path / "o", "-r", "--shard", "auto")
    assert status == 2 and "no job-array environment" in stderr
    status, _, stderr = cli("batch", "convert", root, tmp_path / "o", "-r", "--manifest", tmp_path / "no" / "m.jsonl")
    assert status == 2 and "does not exist" in stderr
    with pytest.raises(SystemExit) as exit_info:
        cli("batch", "convert", root, tmp_path / "o", "-r", "--shard", "2/2")
    assert exit_info.value.code == 2
    assert not (tmp_path / "o").exists()


def test_torn_manifest_line_is_skipped(tmp_path):
    manifest = Manifest(tmp_path / "m.jsonl")
    manifest.append({"command": "convert", "input": "a.dcm", "status": "done"})
    with open(manifest.path, "ab") as handle:
        handle.write(b'{"command": "convert", "input": "b.dc')  # a killed append
    with pytest.warns(UserWarning, match="1 unreadable line"):
        assert list(manifest.latest("convert")) == ["a.dcm"]


def test_env_shards_cover_everything_in_process(seg_tree, cli, tmp_path, monkeypatch):
    root, keys = seg_tree
    out, manifest = tmp_path / "out", tmp_path / "m.jsonl"
    for name in ("SLURM_ARRAY_TASK_ID", "AWS_BATCH_JOB_ARRAY_INDEX", "RANK", SHARD_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(COUNT_ENV, "3")
    for index in range(3):
        monkeypatch.setenv("JOB_COMPLETION_INDEX", str(index))
        status, stdout, stderr = cli("batch", "to-nifti", root, out, "-r", "--shard", "auto", "--manifest", manifest)
        assert status == 0, stderr
        assert f"shard {index}/3 (JOB_COMPLETION_INDEX)" in stdout
    done = [r["input"] for r in _records(manifest) if r["status"] == "done"]
    assert sorted(done) == keys
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.nii.gz")) == \
        sorted(k.replace(".dcm", ".nii.gz") for k in keys)


# --------------------------------------------------------------------------- N processes, one killed

_KILL_ON_SECOND_RENAME = """
import os, signal, sys
seen = []
def dying(real):
    def rename(src, dst, *args, **kwargs):
        if str(src).endswith('.part'):
            seen.append(dst)
            if len(seen) == 2:  # the second output is complete in its temporary, not yet in place: die
                os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst, *args, **kwargs)
    return rename
os.replace, os.link = dying(os.replace), dying(os.link)  # atomic_write renames (overwrite) or links (not)
from monai_dicomseg.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (SHARD_ENV, COUNT_ENV, "RANK", "WORLD_SIZE")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _check_union(root: Path, out: Path, manifest_paths: list[Path], keys: list[str]) -> None:
    done = [r["input"] for m in manifest_paths for r in _records(m) if r["status"] == "done"]
    assert sorted(done) == keys, "every input done exactly once"
    outputs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert outputs == keys, "one output per input, no partial or temporary file"
    for key in keys:
        assert pydicom.dcmread(out / key).Modality == "SEG"


def test_three_shards_one_killed_and_rerun(seg_tree, tmp_path):
    root, keys = seg_tree
    out, manifest = tmp_path / "out", tmp_path / "manifest.jsonl"
    sizes = Counter(shard_of(k, 3) for k in keys)
    victim = max(range(3), key=lambda k: sizes[k])
    assert sizes[victim] >= 2
    argv = ["batch", "convert", str(root), str(out), "-r", "--manifest", str(manifest)]
    processes = []
    for index in range(3):
        script = _KILL_ON_SECOND_RENAME if index == victim else \
            "import sys; from monai_dicomseg.cli.main import main; sys.exit(main(sys.argv[1:]))"
        processes.append(subprocess.Popen([sys.executable, "-c", script, *argv, "--shard", f"{index}/3"],
                                          env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=600) for p in processes]
    results = [(p.returncode, *o) for p, o in zip(processes, outputs)]
    for index, (code, _, stderr) in enumerate(results):
        assert code == (-9 if index == victim else 0), stderr
    records = _records(manifest)
    started = {r["input"] for r in records if r["status"] == "started"}
    done = {r["input"] for r in records if r["status"] == "done"}
    interrupted = started - done
    assert len(interrupted) == 1 and shard_of(next(iter(interrupted)), 3) == victim
    victim_key = next(iter(interrupted))
    assert not (out / victim_key).exists()
    assert [p.name for p in (out / victim_key).parent.glob(f".{Path(victim_key).name}.*.part")]
    # the engine re-runs the failed array task: it finishes the shard, redoing only the interrupted item
    rerun = subprocess.run([sys.executable, "-m", "monai_dicomseg", *argv, "--shard", f"{victim}/3"],
                           env=_env(), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    # one item was done before the kill (skipped now, verified); the interrupted one and the rest run
    assert f"{sizes[victim] - 1} done, 1 skipped (done and verified earlier), 0 failed" in rerun.stdout
    _check_union(root, out, [manifest], keys)


# --------------------------------------------------------------------------- the recipes of examples/


def _nifti_outputs(keys: list[str]) -> list[str]:
    return sorted([k.replace(".dcm", ".nii.gz") for k in keys] + [k.replace(".dcm", ".json") for k in keys])


def _check_nifti_union(out: Path, manifests: list[Path], keys: list[str]) -> None:
    import nibabel

    done = [r["input"] for m in manifests for r in _records(m) if r["status"] == "done"]
    assert sorted(done) == keys, "every input done exactly once"
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.suffix != ".jsonl")
    assert files == _nifti_outputs(keys), "the outputs of every input, no partial or temporary file"
    for key in keys:
        assert nibabel.load(out / key.replace(".dcm", ".nii.gz")).get_fdata().max() > 0
        json.loads((out / key.replace(".dcm", ".json")).read_text())


def test_slurm_recipe_three_tasks_one_killed_and_requeued(seg_tree, tmp_path):
    root, keys = seg_tree
    out = tmp_path / "out"
    killer = tmp_path / "killing_main.py"
    killer.write_text(_KILL_ON_SECOND_RENAME)
    sizes = Counter(shard_of(k, 3) for k in keys)
    victim = max(range(3), key=lambda k: sizes[k])

    def task(index: int, command: str) -> subprocess.Popen:
        env = {**_env(), "INPUT_DIR": str(root), "OUTPUT_DIR": str(out), "MONAI_DICOMSEG": command,
               "SLURM_ARRAY_TASK_ID": str(index + 1), "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "3",
               "SLURM_ARRAY_TASK_STEP": "1", "SLURM_CPUS_PER_TASK": "1"}
        return subprocess.Popen(["bash", str(REPO / "examples" / "slurm_array.sh")], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    normal = f"{sys.executable} -m monai_dicomseg"
    processes = [task(k, f"{sys.executable} {killer}" if k == victim else normal) for k in range(3)]
    outputs = [p.communicate(timeout=600) for p in processes]
    assert [p.returncode for p in processes] == [-9 if k == victim else 0 for k in range(3)], outputs
    requeued = task(victim, normal)
    stdout, stderr = requeued.communicate(timeout=600)
    assert requeued.returncode == 0, stderr
    assert f"shard {victim}/3 (SLURM_ARRAY_TASK_ID)" in stdout
    _check_nifti_union(out, sorted((out / "manifests").glob("task-*.jsonl")), keys)


def _yaml_command(name: str) -> list[str]:
    """The container command of an example manifest (one JSON-style flow sequence line; no YAML parser needed)."""
    for line in (REPO / "examples" / name).read_text().splitlines():
        if line.strip().startswith("command: ["):
            return json.loads(line.split("command:", 1)[1])
    raise AssertionError(f"no command line in {name}")


@pytest.mark.parametrize("recipe", ["k8s_indexed_job.yaml", "argo_workflow.yaml"])
def test_kubernetes_and_argo_recipes(seg_tree, tmp_path, recipe):
    root, keys = seg_tree
    out = tmp_path / "out"
    out.mkdir()
    command = _yaml_command(recipe)
    assert command[:2] == ["monai-dicomseg", "batch"]
    processes = []
    for index in range(3):
        argv = [a.replace("/data/in", str(root)).replace("/data/out", str(out))
                .replace("$(JOB_COMPLETION_INDEX)", str(index))
                .replace("{{inputs.parameters.index}}/8", f"{index}/3")
                .replace("{{inputs.parameters.index}}", str(index)) for a in command[1:]]
        env = {**_env(), "JOB_COMPLETION_INDEX": str(index), COUNT_ENV: "3"} if recipe.startswith("k8s") else _env()
        processes.append(subprocess.Popen([sys.executable, "-m", "monai_dicomseg", *argv], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=600) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], outputs
    _check_nifti_union(out, sorted(out.glob("manifest-*.jsonl")), keys)


@pytest.mark.monai  # needs torch's torchrun: deselected by `make test-light`, run by `make test`
def test_torchrun_recipe(seg_tree, tmp_path):
    root, keys = seg_tree
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not installed (pip install torch)")
    out = tmp_path / "out"
    env = {**_env(), "INPUT_DIR": str(root), "OUTPUT_DIR": str(out), "NPROC": "2", "TORCHRUN": str(torchrun),
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run(["bash", str(REPO / "examples" / "torchrun_batch.sh")], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "shard 0/2 (RANK)" in result.stdout and "shard 1/2 (RANK)" in result.stdout
    _check_nifti_union(out, [out / "manifest.jsonl"], keys)


@pytest.mark.parametrize("name, owner", [
    ("case1.nii.gz", "case1"), ("case1.json", "case1"), ("case1_2.nii.gz", "case1_2"), ("case1_3.nii.gz", "case1"),
    ("case10.json", "case10"), ("case100.json", None), ("other.json", None),
])
def test_temporary_owner_is_the_longest_stem(name, owner):
    from monai_dicomseg.cli.jobs import _owner

    assert _owner(name, ["case1", "case10", "case1_2"]) == owner
