"""``batch --source-root`` finds each SEG's series as ``create_datalist`` pairs them (issue 21).

Layouts are built from a copy of the committed ``data/`` folder: the
``create_datalist`` tree itself (``ct1/seg_*.dcm`` beside ``ct1/series/``),
one flat folder holding two series and their SEGs, and the mirrored layout
``--source-root`` understood before (``SERIES_ROOT/a/case/`` for
``INPUT_DIR/a/case.dcm``). The truth of each output is the single-file
command with an explicit ``--source``.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest
from archive_cases import copy_data_cases

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
SEGS = ("seg_binary.dcm", "seg_fractional.dcm", "seg_labelmap.dcm")
HIDE_TORCH = "import sys; sys.modules['torch'] = None; sys.modules['monai'] = None; "


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    return copy_data_cases(tmp_path / "data", SEGS)


def _truth(cli, tmp_path: Path, seg: Path, series: Path) -> np.ndarray:
    out = tmp_path / "truth" / f"{seg.parent.name}_{seg.stem}.nii.gz"
    out.parent.mkdir(exist_ok=True)
    status, _, stderr = cli("to-nifti", seg, out, "--source", series, "--overwrite")
    assert status == 0, stderr
    return np.asarray(nibabel.load(str(out)).dataobj)


def _read(path: Path) -> np.ndarray:
    return np.asarray(nibabel.load(str(path)).dataobj)


def test_to_nifti_in_the_create_datalist_layout(cli, tmp_path, data_copy):
    status, stdout, stderr = cli("batch", "to-nifti", data_copy, tmp_path / "out", "--recursive",
                                 "--source-root", data_copy)
    assert status == 0, stdout + stderr
    assert "6 succeeded, 0 failed" in stdout
    for case, shape in (("ct1", (64, 64, 16)), ("ct2", None)):
        for name in SEGS:
            written = _read(tmp_path / "out" / case / name.replace(".dcm", ".nii.gz"))
            truth = _truth(cli, tmp_path, data_copy / case / name, data_copy / case / "series")
            np.testing.assert_array_equal(written, truth)
            if shape is not None:
                assert written.shape[:3] == shape  # the source grid: all 16 slices, not the SEG's 9


def test_without_source_root_the_seg_extent_is_kept(cli, tmp_path, data_copy):
    """The other side: no --source-root, no pairing (the SEG's own stored extent, as before)."""
    status, stdout, stderr = cli("batch", "to-nifti", data_copy / "ct1", tmp_path / "out")
    assert status == 0, stdout + stderr
    assert _read(tmp_path / "out" / "seg_labelmap.nii.gz").shape[2] < 16


def test_to_nifti_in_one_flat_folder_of_two_series(cli, tmp_path, data_copy):
    """Two image series and six SEGs in one folder: each SEG gets the files of its own series."""
    flat = tmp_path / "flat"
    flat.mkdir()
    for case in ("ct1", "ct2"):
        for file in (data_copy / case / "series").iterdir():
            shutil.copy(file, flat / f"{case}_{file.name}")
        for name in SEGS:
            shutil.copy(data_copy / case / name, flat / f"{case}_{name}")
    status, stdout, stderr = cli("batch", "to-nifti", flat, tmp_path / "out", "--source-root", flat)
    assert status == 0, stdout + stderr
    for case in ("ct1", "ct2"):
        for name in SEGS:
            truth = _truth(cli, tmp_path, data_copy / case / name, data_copy / case / "series")
            np.testing.assert_array_equal(_read(tmp_path / "out" / f"{case}_{name.replace('.dcm', '.nii.gz')}"),
                                          truth)


def test_mirrored_layout_still_works(cli, tmp_path, data_copy):
    inputs, series_root = tmp_path / "in", tmp_path / "series"
    for case in ("ct1", "ct2"):
        (inputs / case).mkdir(parents=True)
        shutil.copy(data_copy / case / "seg_labelmap.dcm", inputs / case / "scan.dcm")
        shutil.copytree(data_copy / case / "series", series_root / case / "scan")
    status, stdout, stderr = cli("batch", "to-nifti", inputs, tmp_path / "out", "--recursive",
                                 "--source-root", series_root)
    assert status == 0, stdout + stderr
    for case in ("ct1", "ct2"):
        truth = _truth(cli, tmp_path, data_copy / case / "seg_labelmap.dcm", data_copy / case / "series")
        np.testing.assert_array_equal(_read(tmp_path / "out" / case / "scan.nii.gz"), truth)


def test_mirrored_folder_used_when_the_referenced_series_is_elsewhere(cli, tmp_path, data_copy):
    """A mirrored folder whose series has another SeriesInstanceUID (same grid, e.g. re-exported) still works."""
    inputs, series_root = tmp_path / "in", tmp_path / "series"
    inputs.mkdir()
    shutil.copy(data_copy / "ct1" / "seg_binary.dcm", inputs / "case.dcm")
    (series_root / "case").mkdir(parents=True)
    new_uid = pydicom.uid.generate_uid()
    for file in (data_copy / "ct1" / "series").iterdir():
        ds = pydicom.dcmread(file)
        ds.SeriesInstanceUID = new_uid
        ds.save_as(series_root / "case" / file.name)
    status, stdout, stderr = cli("batch", "to-nifti", inputs, tmp_path / "out", "--source-root", series_root)
    assert status == 0, stdout + stderr
    truth = _truth(cli, tmp_path, data_copy / "ct1" / "seg_binary.dcm", data_copy / "ct1" / "series")
    np.testing.assert_array_equal(_read(tmp_path / "out" / "case.nii.gz"), truth)


def test_seg_whose_series_is_nowhere_fails_on_its_own_line(cli, tmp_path, data_copy):
    shutil.rmtree(data_copy / "ct2" / "series")
    status, stdout, stderr = cli("batch", "to-nifti", data_copy, tmp_path / "out", "--recursive",
                                 "--source-root", data_copy)
    assert status == 1
    assert "3 succeeded, 3 failed" in stdout
    failed = [line for line in stderr.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 3 and all("ct2" in line for line in failed)
    assert all("the series the SEG references (" in line and "is not under --source-root" in line
               for line in failed)
    assert not (tmp_path / "out" / "ct2" / "seg_binary.nii.gz").exists()


def _drop_references(path: Path) -> None:
    ds = pydicom.dcmread(path)
    del ds.ReferencedSeriesSequence
    ds.save_as(path)


def test_seg_without_references_pairs_by_its_frame_of_reference(cli, tmp_path, data_copy):
    _drop_references(data_copy / "ct1" / "seg_labelmap.dcm")
    status, stdout, stderr = cli("batch", "to-nifti", data_copy / "ct1", tmp_path / "out",
                                 "--source-root", data_copy)
    assert status == 0, stdout + stderr
    truth = _truth(cli, tmp_path, DATA / "ct1" / "seg_labelmap.dcm", data_copy / "ct1" / "series")
    np.testing.assert_array_equal(_read(tmp_path / "out" / "seg_labelmap.nii.gz"), truth)


def test_seg_without_references_and_two_series_of_its_frame_of_reference_fails(cli, tmp_path, data_copy):
    """The other side of the Frame of Reference rule: two candidates are reported, not guessed."""
    _drop_references(data_copy / "ct1" / "seg_labelmap.dcm")
    second = data_copy / "ct1" / "phase2"
    second.mkdir()
    uid = pydicom.uid.generate_uid()
    for file in (data_copy / "ct1" / "series").iterdir():
        ds = pydicom.dcmread(file)
        ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, pydicom.uid.generate_uid()
        ds.save_as(second / file.name)
    status, stdout, stderr = cli("batch", "to-nifti", data_copy / "ct1", tmp_path / "out",
                                 "--source-root", data_copy)
    assert status == 1
    assert "FAILED" in stderr and "seg_labelmap.dcm" in stderr
    assert "no ReferencedSeriesSequence and 2 series under --source-root" in stderr
    assert "2 succeeded, 1 failed" in stdout


def test_convert_in_the_create_datalist_layout(cli, tmp_path, data_copy):
    status, stdout, stderr = cli("batch", "convert", data_copy, tmp_path / "out", "--recursive",
                                 "--source-root", data_copy, "--compress", "jpeg2000")
    assert status == 0, stdout + stderr
    for case in ("ct1", "ct2"):
        series_uid = pydicom.dcmread(next((data_copy / case / "series").iterdir())).SeriesInstanceUID
        for name in SEGS:
            written = pydicom.dcmread(tmp_path / "out" / case / name, stop_before_pixels=True)
            assert written.SegmentationType == pydicom.dcmread(DATA / case / name).SegmentationType
            assert [str(s.SeriesInstanceUID) for s in written.ReferencedSeriesSequence] == [series_uid]


def test_source_root_must_be_a_folder(cli, tmp_path, data_copy):
    status, _, stderr = cli("batch", "to-nifti", data_copy, tmp_path / "out", "--recursive",
                            "--source-root", tmp_path / "missing")
    assert status == 1
    assert "--source-root" in stderr and "must be an existing folder" in stderr


def test_light_install_pairs_without_torch(tmp_path, data_copy):
    """With torch/MONAI hidden, batch --source-root runs and never imports the MONAI layer."""
    code = HIDE_TORCH + (
        "from monai_dicomseg.cli.main import main; status = main(sys.argv[1:]); "
        "assert 'monai_dicomseg.data' not in sys.modules, 'imported the MONAI layer'; sys.exit(status)")
    result = subprocess.run([sys.executable, "-c", code, "batch", "to-nifti", str(data_copy), str(tmp_path / "out"),
                             "--recursive", "--source-root", str(data_copy)],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _read(tmp_path / "out" / "ct1" / "seg_binary.nii.gz").shape[:3] == (64, 64, 16)
