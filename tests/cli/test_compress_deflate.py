"""``--compress deflate`` (Deflated Explicit VR Little Endian, PS3.5 A.5) in from-nifti, convert and batch."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from monai_dicomseg.codec.transfer_syntax import DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN
from monai_dicomseg.seg.segmentation import segread


def _assert_deflated(path: Path) -> None:
    assert pydicom.filereader.read_file_meta_info(path).TransferSyntaxUID == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN


@pytest.mark.highdicom
def test_cli_compress_deflate(tmp_path: Path, cli: Any, axial_case: Any) -> None:
    """``--compress deflate`` in from-nifti, convert and batch convert: deflated, read equal to the truth."""
    nifti = axial_case.nifti(tmp_path / "labels.nii.gz")
    made = tmp_path / "seg.dcm"
    status, _, stderr = cli("from-nifti", nifti, axial_case.folder, made, "--labels", "a,b,c",
                            "--type", "LABELMAP", "--compress", "deflate")
    assert status == 0, stderr
    converted = tmp_path / "binary.dcm"
    status, _, stderr = cli("convert", made, converted, "--type", "BINARY", "--compress", "deflate")
    assert status == 0, stderr
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    (inputs / "case.dcm").write_bytes(made.read_bytes())
    status, _, stderr = cli("batch", "convert", inputs, outputs, "--type", "BINARY", "--compress", "deflate")
    assert status == 0, stderr
    for path in (made, converted, outputs / "case.dcm"):
        _assert_deflated(path)
        labels = segread(path).get_pixels_by_source_instance(
            [ds.SOPInstanceUID for ds in axial_case.datasets], combine_segments=True, skip_overlap_checks=True)
        np.testing.assert_array_equal(labels, axial_case.truth)
