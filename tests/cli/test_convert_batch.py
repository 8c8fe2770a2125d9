"""``convert`` (type/compression, lossless) and ``batch`` over folders."""
from __future__ import annotations

import shutil

import nibabel
import numpy as np
import pytest

from oracles import dciodvfy_errors, highdicom_pixels, one_hot


def _seg(case, cli, folder, segmentation_type="BINARY", name="seg.dcm"):
    out = folder / name
    status, _, stderr = cli("from-nifti", case.nifti(folder / "labels.nii.gz"), case.folder, out,
                            "--labels", "liver,spleen,kidney", "--type", segmentation_type)
    assert status == 0, stderr
    return out


@pytest.mark.dciodvfy
@pytest.mark.highdicom
@pytest.mark.parametrize(
    "start, target, compress, with_source",
    [("BINARY", "LABELMAP", "rle", False), ("LABELMAP", "BINARY", "none", False),
     ("BINARY", "LABELMAP", "jpegls", True), ("LABELMAP", "LABELMAP", "jpeg2000", False)],
    ids=["binary-to-labelmap-rle", "labelmap-to-binary", "with-source-jpegls", "recompress-jpeg2000"],
)
def test_convert_lossless(axial_case, cli, tmp_path, start, target, compress, with_source):
    import highdicom

    seg = _seg(axial_case, cli, tmp_path, start)
    out = tmp_path / "converted.dcm"
    argv = ["convert", seg, out, "--type", target, "--compress", compress]
    if with_source:
        argv += ["--source", axial_case.folder]
    status, _, stderr = cli(*argv)
    assert status == 0, stderr
    np.testing.assert_array_equal(highdicom_pixels(str(out), axial_case.datasets).astype(bool),
                                  one_hot(axial_case.truth, 3))
    converted, original = highdicom.seg.segread(str(out)), highdicom.seg.segread(str(seg))
    assert converted.segmentation_type.value == target
    assert [converted.get_segment_description(n).segment_label for n in (1, 2, 3)] == ["liver", "spleen", "kidney"]
    assert ({uid for _, _, uid in converted.get_source_image_uids()}
            == {uid for _, _, uid in original.get_source_image_uids()})
    assert dciodvfy_errors(out) == []


def test_batch_to_nifti_recursive_with_workers(axial_case, cli, tmp_path):
    inputs = tmp_path / "in"
    (inputs / "a").mkdir(parents=True)
    (inputs / "b").mkdir()
    work = tmp_path / "work"
    work.mkdir()
    seg = _seg(axial_case, cli, work)
    shutil.copy(seg, inputs / "a" / "case1.dcm")
    shutil.copy(seg, inputs / "b" / "case2.dcm")
    shutil.copy(axial_case.folder / "0001.dcm", inputs / "a" / "ct.dcm")  # not a SEG: skipped
    status, stdout, stderr = cli("batch", "to-nifti", inputs, tmp_path / "out", "--recursive", "--workers", "2")
    assert status == 0, stderr
    assert "2 succeeded, 0 failed" in stdout
    for name in ("a/case1", "b/case2"):
        image = nibabel.load(str(tmp_path / "out" / f"{name}.nii.gz"))
        assert (tmp_path / "out" / f"{name}.json").is_file()
        assert sorted(np.unique(np.asarray(image.dataobj))) == [0, 1, 2, 3]
    status, stdout, _ = cli("batch", "to-nifti", inputs, tmp_path / "out2")
    assert status == 1  # nothing directly in INPUT_DIR without --recursive
    status, stdout, stderr = cli("batch", "info", inputs, "-r")
    assert status == 0 and stdout.count("liver") == 2


def test_batch_from_nifti_reports_each_failure(make_series, cli, tmp_path):
    series_root = tmp_path / "series"
    case = make_series("series/case1")
    inputs = tmp_path / "labels"
    inputs.mkdir()
    case.nifti(inputs / "case1.nii.gz")
    case.nifti(inputs / "case2.nii.gz")  # no series folder for case2
    (inputs / "case3.nii.gz").write_bytes(b"broken")
    status, stdout, stderr = cli("batch", "from-nifti", inputs, series_root, tmp_path / "out", "--labels", "a,b,c")
    assert status == 1
    failures = [line for line in stderr.splitlines() if line.startswith("FAILED ")]
    assert len(failures) == 2
    assert "case2.nii.gz" in failures[0] and "does not exist" in failures[0]
    assert "case3.nii.gz" in failures[1] and "not a readable NIfTI" in failures[1]
    assert "1 succeeded, 2 failed (of 3)" in stdout
    np.testing.assert_array_equal(
        highdicom_pixels(str(tmp_path / "out" / "case1.dcm"), case.datasets).astype(bool), one_hot(case.truth, 3))
