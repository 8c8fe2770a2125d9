"""``convert`` without ``--type`` keeps the input's type; FRACTIONAL SEGs recompress losslessly (issue 21).

The input is the committed FRACTIONAL SEG of ``data/ct1``; every output is
read back by our reader and by highdicom (stored values, not rescaled) and
compared with the input read the same way.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from monai_dicomseg.cli.convert import convert_seg
from monai_dicomseg.errors import InputError, UnsupportedError
from monai_dicomseg.seg import segread

DATA = Path(__file__).resolve().parents[2] / "data" / "ct1"
FRACTIONAL = DATA / "seg_fractional.dcm"
SYNTAXES = {"none": "1.2.840.10008.1.2.1", "rle": "1.2.840.10008.1.2.5", "jpegls": "1.2.840.10008.1.2.4.80",
            "jpeg2000": "1.2.840.10008.1.2.4.90"}


def _stored(path: Path) -> np.ndarray:
    """Our reader: ``(F, R, C, S)`` stored FRACTIONAL values (not rescaled)."""
    return segread(path).get_volume(combine_segments=False, rescale_fractional=False).array


def _highdicom_stored(path: Path) -> np.ndarray:
    import highdicom

    return highdicom.seg.segread(str(path)).get_volume(combine_segments=False, rescale_fractional=False).array


@pytest.mark.highdicom
@pytest.mark.parametrize("compress", sorted(SYNTAXES))
def test_fractional_recompression_keeps_type_and_values(cli, tmp_path, compress):
    out = tmp_path / f"{compress}.dcm"
    status, stdout, stderr = cli("convert", FRACTIONAL, out, "--compress", compress)
    assert status == 0, stderr
    assert "FRACTIONAL SEG" in stdout
    written, original = pydicom.dcmread(out), pydicom.dcmread(FRACTIONAL)
    assert written.file_meta.TransferSyntaxUID == SYNTAXES[compress]
    assert written.SegmentationType == "FRACTIONAL"
    for keyword in ("SegmentationFractionalType", "MaximumFractionalValue", "NumberOfFrames"):
        assert written[keyword].value == original[keyword].value, keyword
    stored = _stored(out)
    assert stored.max() > 1 and len(np.unique(stored)) > 2  # real fractions, not masks
    np.testing.assert_array_equal(stored, _stored(FRACTIONAL))
    np.testing.assert_array_equal(_highdicom_stored(out), _highdicom_stored(FRACTIONAL))
    np.testing.assert_array_equal(_highdicom_stored(out), stored)


def test_fractional_with_explicit_type_fractional(tmp_path):
    out = tmp_path / "out.dcm"
    info = convert_seg(str(FRACTIONAL), str(out), segmentation_type="fractional", compress="rle")
    assert info["segmentation_type"] == "FRACTIONAL"
    np.testing.assert_array_equal(_stored(out), _stored(FRACTIONAL))


def test_occupancy_and_another_maximum_are_kept(tmp_path):
    """A FRACTIONAL SEG with OCCUPANCY and MaximumFractionalValue 100 keeps both, and its stored values."""
    from monai_dicomseg.io.source_series import load_source_geometry
    from monai_dicomseg.seg import Segmentation

    seg = segread(FRACTIONAL)
    fractions = seg.get_volume(combine_segments=False, rescale_fractional=True, dtype="float32")
    geometry = load_source_geometry(DATA / "series")
    array = fractions.match_geometry(geometry.geometry).array
    numbers = [int(n) for n in seg.segment_numbers]
    occupancy = Segmentation(
        geometry.datasets, array, "FRACTIONAL", [seg.get_segment_description(n) for n in numbers],
        series_instance_uid=pydicom.uid.generate_uid(), series_number=9, sop_instance_uid=pydicom.uid.generate_uid(),
        instance_number=1, manufacturer="t", manufacturer_model_name="t", software_versions="0",
        device_serial_number="0", fractional_type="OCCUPANCY", max_fractional_value=100)
    source = tmp_path / "occupancy.dcm"
    occupancy.save_as(source)
    out = tmp_path / "out.dcm"
    convert_seg(str(source), str(out), compress="jpegls")
    written = pydicom.dcmread(out, stop_before_pixels=True)
    assert (written.SegmentationFractionalType, int(written.MaximumFractionalValue)) == ("OCCUPANCY", 100)
    np.testing.assert_array_equal(_stored(out), _stored(source))
    assert _stored(out).max() <= 100


@pytest.mark.parametrize("name, kind", [("seg_binary.dcm", "BINARY"), ("seg_labelmap.dcm", "LABELMAP")])
def test_without_type_binary_and_labelmap_keep_theirs(tmp_path, name, kind):
    out = tmp_path / "out.dcm"
    info = convert_seg(str(DATA / name), str(out), compress="jpeg2000")
    assert info["segmentation_type"] == kind
    assert pydicom.dcmread(out, stop_before_pixels=True).SegmentationType == kind
    before = segread(DATA / name).get_volume(combine_segments=True).array
    np.testing.assert_array_equal(segread(out).get_volume(combine_segments=True).array, before)


def test_fractional_still_needs_threshold_for_binary(cli, tmp_path):
    status, _, stderr = cli("convert", FRACTIONAL, tmp_path / "o.dcm", "--type", "BINARY")
    assert status == 1 and "needs --threshold" in stderr
    assert not (tmp_path / "o.dcm").exists()
    status, _, stderr = cli("convert", FRACTIONAL, tmp_path / "o.dcm", "--type", "BINARY", "--threshold", "0.5")
    assert status == 0, stderr
    assert pydicom.dcmread(tmp_path / "o.dcm", stop_before_pixels=True).SegmentationType == "BINARY"


def test_fractional_output_from_binary_is_refused(tmp_path):
    with pytest.raises(UnsupportedError, match="is a BINARY SEG: --type FRACTIONAL rewrites FRACTIONAL SEGs only"):
        convert_seg(str(DATA / "seg_binary.dcm"), str(tmp_path / "o.dcm"), segmentation_type="FRACTIONAL")
    assert not (tmp_path / "o.dcm").exists()


@pytest.mark.parametrize("segmentation_type", [None, "FRACTIONAL"])
def test_threshold_with_fractional_output_is_refused(tmp_path, segmentation_type):
    """A threshold that would be ignored (the output keeps the fractions) is an error, not a silent no-op."""
    with pytest.raises(InputError, match="--threshold 0.5 makes masks, but the output is FRACTIONAL"):
        convert_seg(str(FRACTIONAL), str(tmp_path / "o.dcm"), segmentation_type=segmentation_type, threshold=0.5)


@pytest.mark.parametrize("value", ["BINARI", "", 3])
def test_bad_type_is_refused(tmp_path, value):
    with pytest.raises(InputError, match=r"--type must be one of BINARY, LABELMAP, FRACTIONAL .*got"):
        convert_seg(str(FRACTIONAL), str(tmp_path / "o.dcm"), segmentation_type=value)


def test_batch_convert_without_type_keeps_each_type(cli, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("seg_binary.dcm", "seg_fractional.dcm", "seg_labelmap.dcm"):
        shutil.copy(DATA / name, inputs / name)
    status, stdout, stderr = cli("batch", "convert", inputs, tmp_path / "out", "--compress", "jpeg2000")
    assert status == 0, stdout + stderr
    for name in ("seg_binary.dcm", "seg_fractional.dcm", "seg_labelmap.dcm"):
        original = pydicom.dcmread(inputs / name, stop_before_pixels=True)
        written = pydicom.dcmread(tmp_path / "out" / name, stop_before_pixels=True)
        assert written.SegmentationType == original.SegmentationType
        assert written.file_meta.TransferSyntaxUID == SYNTAXES["jpeg2000"]
    np.testing.assert_array_equal(_stored(tmp_path / "out" / "seg_fractional.dcm"), _stored(FRACTIONAL))
