"""``info``, error reporting, ``--help`` and the entry points."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _seg(case, cli, tmp_path, names="liver,spleen,kidney_left"):
    out = tmp_path / "seg.dcm"
    status, _, stderr = cli("from-nifti", case.nifti(tmp_path / "labels.nii.gz"), case.folder, out,
                            "--labels", names)
    assert status == 0, stderr
    return out


def test_info_names_every_segment(axial_case, cli, tmp_path):
    seg = _seg(axial_case, cli, tmp_path)
    status, stdout, stderr = cli("info", seg)
    assert status == 0, stderr
    assert "BINARY" in stdout and "Segmentation Storage" in stdout
    for label in ("liver", "spleen", "kidney_left", "Kidney (Left)"):
        assert label in stdout
    status, stdout, _ = cli("info", seg, "--json")
    described = json.loads(stdout)
    assert [s["label"] for s in described["segments"]] == ["liver", "spleen", "kidney_left"]
    assert sum(s["frames"] for s in described["segments"]) == described["frames"]
    assert described["source_instances"] == len(axial_case.datasets)


@pytest.mark.parametrize("command", [["info"], ["to-nifti", "{out}"], ["convert", "{out}", "--type", "LABELMAP"]],
                         ids=["info", "to-nifti", "convert"])
@pytest.mark.parametrize("kind", ["missing", "not-seg", "not-dicom"])
def test_bad_seg_input_one_line_error(axial_case, cli, tmp_path, command, kind):
    path = {"missing": tmp_path / "nothing.dcm", "not-seg": axial_case.folder / "0001.dcm",
            "not-dicom": tmp_path / "junk.dcm"}[kind]
    if kind == "not-dicom":
        path.write_bytes(b"not a dicom file at all")
    out = str(tmp_path / ("out.nii.gz" if command[0] == "to-nifti" else "out.dcm"))
    argv = [command[0], path, *[a.format(out=out) for a in command[1:]]]
    status, stdout, stderr = cli(*argv)
    assert status == 1
    assert stderr.startswith(f"monai-dicomseg {command[0]}: error: ")
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    expected = {"missing": "does not exist", "not-seg": "not a", "not-dicom": "not a"}[kind]
    assert expected in stderr


def test_debug_prints_traceback(cli, tmp_path):
    status, _, stderr = cli("--debug", "info", tmp_path / "nothing.dcm")
    assert status == 1 and "Traceback" in stderr
    status, _, stderr = cli("info", tmp_path / "nothing.dcm", "--debug")
    assert status == 1 and "Traceback" in stderr


def test_usage_error_exits_2(cli):
    with pytest.raises(SystemExit) as raised:
        cli("from-nifti", "only-one-argument")
    assert raised.value.code == 2


def test_help_does_not_import_heavy_libraries():
    code = ("import sys; from monai_dicomseg.cli.main import build_parser; build_parser(); "
            "print(sorted(m for m in ('nibabel', 'torch', 'monai') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_python_m_and_console_script(tmp_path):
    result = subprocess.run([sys.executable, "-m", "monai_dicomseg", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("info", "to-nifti", "from-nifti", "convert", "batch"):
        assert command in result.stdout
    result = subprocess.run([sys.executable, "-m", "monai_dicomseg", "info", str(tmp_path / "x.dcm")],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == f"monai-dicomseg info: error: SEG file '{tmp_path / 'x.dcm'}' does not exist"
