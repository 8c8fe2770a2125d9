"""``--volume`` and ``--irregular-slices`` of ``to-nifti --source``, ``from-nifti`` and ``batch``; the
``irregular_slices=`` option of ``DicomSegReader`` (issue 24)."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest

from archive_cases import write_two_phase_series
from monai_dicomseg import synthetic
from monai_dicomseg.errors import InputError
from monai_dicomseg.io.source_series import (
    from_monai_array,
    load_source_series,
    monai_affine_from_lps,
    to_monai_array,
)

SHAPE = (6, 20, 24)


def _nifti(path: Path, labels_fcr: np.ndarray, series: list) -> Path:
    """The ``(F, R, C)`` labels of ``series``' sorted grid as a NIfTI in ITK order."""
    loaded = load_source_series(series)
    image = nibabel.Nifti1Image(np.asfortranarray(to_monai_array(labels_fcr)),
                                monai_affine_from_lps(loaded.geometry.affine, labels_fcr.shape[0]))
    nibabel.save(image, str(path))
    return path


def _referenced(seg_path: Path) -> set[str]:
    seg = pydicom.dcmread(seg_path)
    return {str(item.ReferencedSOPInstanceUID) for series in seg.ReferencedSeriesSequence
            for item in series.ReferencedInstanceSequence}


@pytest.fixture
def phases(tmp_path):
    folder = tmp_path / "series"
    first, second = write_two_phase_series(folder, SHAPE)
    mask = (synthetic.make_ellipsoid_labels(SHAPE, 3, 1) == 1).astype(np.uint8)
    return folder, first, second, mask


def test_from_nifti_volume_option(cli, tmp_path, phases):
    folder, first, second, mask = phases
    labels = _nifti(tmp_path / "labels.nii.gz", mask, second)
    status, _, stderr = cli("from-nifti", labels, folder, tmp_path / "none.dcm", "--labels", "liver")
    assert status == 1
    assert "2 volumes (told apart by TemporalPositionIndex" in stderr and "--volume JSON|INDEX" in stderr
    out = tmp_path / "seg.dcm"
    status, _, stderr = cli("from-nifti", labels, folder, out, "--labels", "liver",
                            "--volume", '{"TemporalPositionIndex": 2}')
    assert status == 0, stderr
    assert _referenced(out) == {str(ds.SOPInstanceUID) for ds in second}
    status, _, stderr = cli("from-nifti", labels, folder, tmp_path / "bad.dcm", "--labels", "liver",
                            "--volume", "{not json")
    assert status == 1 and "volume selector must be JSON" in stderr
    status, _, stderr = cli("from-nifti", labels, folder, tmp_path / "three.dcm", "--labels", "liver",
                            "--volume", "3")
    assert status == 1 and "volume=3 is out of range" in stderr


def test_to_nifti_source_picks_the_seg_volume_or_the_given_one(cli, tmp_path, phases):
    folder, first, second, mask = phases
    seg = tmp_path / "seg.dcm"
    status, _, stderr = cli("from-nifti", _nifti(tmp_path / "labels.nii.gz", mask, second), folder, seg,
                            "--labels", "liver", "--volume", "1")
    assert status == 0, stderr
    out = tmp_path / "out.nii.gz"
    status, _, stderr = cli("to-nifti", seg, out, "--source", folder, "--no-sidecar")  # the SEG's own volume
    assert status == 0, stderr
    np.testing.assert_array_equal(from_monai_array(np.asarray(nibabel.load(str(out)).dataobj)), mask)
    status, _, stderr = cli("to-nifti", seg, tmp_path / "two.nii.gz", "--source", folder, "--no-sidecar",
                            "--volume", '{"TemporalPositionIndex": 2}')
    assert status == 0, stderr
    status, _, stderr = cli("to-nifti", seg, tmp_path / "one.nii.gz", "--source", folder, "--no-sidecar",
                            "--volume", '{"TemporalPositionIndex": 1}')  # the grid is the same: the frames are not
    assert status == 1 and 'the image is volume {"TemporalPositionIndex": 1}' in stderr
    assert 'the SEG is on volume {"TemporalPositionIndex": 2}' in stderr


def _gap_series(folder: Path) -> tuple[list, list, np.ndarray]:
    """A series with slice 3 of 8 missing; (all datasets, kept datasets, labels of all)."""
    shape = (8, 20, 24)
    labels = synthetic.make_ellipsoid_labels(shape, n_labels=2, seed=2)
    datasets = synthetic.make_ct_series(shape=shape, spacing=(2.5, 0.8, 0.7), labels=labels, seed=2)
    kept = [ds for k, ds in enumerate(datasets) if k != 3]
    synthetic.write_series(kept, folder)
    return datasets, kept, labels


def test_from_nifti_and_to_nifti_on_a_filled_grid(cli, tmp_path):
    folder = tmp_path / "series"
    _, kept, labels = _gap_series(folder)
    filled = load_source_series(str(folder), irregular_slices="fill")
    (missing,) = filled.filled_slices
    truth = synthetic.make_ellipsoid_labels(filled.volume.array.shape, n_labels=2, seed=5)
    truth[missing, 5:10, 5:10] = 1  # a label on the filled slice: no source image, no frame
    image = nibabel.Nifti1Image(np.asfortranarray(to_monai_array(truth)),
                                monai_affine_from_lps(filled.geometry.affine, truth.shape[0]))
    nifti = tmp_path / "labels.nii.gz"
    nibabel.save(image, str(nifti))
    seg = tmp_path / "seg.dcm"
    status, _, stderr = cli("from-nifti", nifti, folder, seg)
    assert status == 1 and "gap at z" in stderr and "--irregular-slices fill|resample" in stderr
    status, _, stderr = cli("from-nifti", nifti, folder, seg, "--irregular-slices", "fill")
    assert status == 0, stderr
    assert _referenced(seg) <= {str(ds.SOPInstanceUID) for ds in kept}
    out = tmp_path / "out.nii.gz"
    status, _, stderr = cli("to-nifti", seg, out, "--source", folder, "--irregular-slices", "fill", "--no-sidecar")
    assert status == 0, stderr
    back = from_monai_array(np.asarray(nibabel.load(str(out)).dataobj))
    expected = truth.copy()
    expected[missing] = 0  # no source image there: no SEG frame
    np.testing.assert_array_equal(back, expected)
    status, _, stderr = cli("to-nifti", seg, out, "--source", folder, "--no-sidecar", "-f")
    assert status == 1 and "--irregular-slices" in stderr


def test_batch_from_nifti_and_datalist_to_nifti_take_the_volume(cli, tmp_path, phases):
    folder, first, second, mask = phases
    inputs = tmp_path / "in"
    inputs.mkdir()
    _nifti(inputs / "series.nii.gz", mask, second)
    out = tmp_path / "out"
    status, stdout, stderr = cli("batch", "from-nifti", inputs, tmp_path, out, "--labels", "liver",
                                 "--volume", '{"TemporalPositionIndex": 2}')
    assert status == 0, stdout + stderr
    assert _referenced(out / "series.dcm") == {str(ds.SOPInstanceUID) for ds in second}
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": [{"image": str(folder), "label": str(out / "series.dcm"),
                                                  "volume": '{"TemporalPositionIndex": 2}'}]}))
    status, stdout, stderr = cli("batch", "to-nifti", datalist, tmp_path / "nifti", "--no-sidecar")
    assert status == 0, stdout + stderr
    (written,) = sorted((tmp_path / "nifti").rglob("*.nii.gz"))
    np.testing.assert_array_equal(from_monai_array(np.asarray(nibabel.load(str(written)).dataobj)), mask)


def test_reader_irregular_slices(tmp_path):
    import warnings

    import highdicom as hd

    from monai_dicomseg.io.reader import READER_OPTIONS, DicomSegReader
    from monai_cases import descriptions

    assert "irregular_slices" in READER_OPTIONS
    folder = tmp_path / "series"
    _, kept, labels = _gap_series(folder)
    kept_labels = np.delete(labels, 3, axis=0)
    stacked = kept_labels[..., None] == np.arange(1, 3, dtype=labels.dtype)
    seg = hd.seg.Segmentation(
        source_images=kept, pixel_array=stacked, segmentation_type="BINARY",
        segment_descriptions=descriptions(hd)[:2], series_instance_uid=hd.UID(), sop_instance_uid=hd.UID(),
        series_number=20, instance_number=1, manufacturer="t", manufacturer_model_name="t",
        software_versions="0", device_serial_number="0")
    seg_path = tmp_path / "seg.dcm"
    seg.save_as(seg_path)
    with pytest.warns(UserWarning, match="gap at z"):
        label, meta = DicomSegReader().get_data(DicomSegReader().read(str(seg_path)))
    assert meta["grid"] == "seg"
    reader = DicomSegReader(irregular_slices="fill", source_root=str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        label, meta = reader.get_data(reader.read(str(seg_path)))
    assert meta["grid"] == "source_series" and label.shape[1:] == (24, 20, 8)
    filled = load_source_series(str(folder), irregular_slices="fill")
    np.testing.assert_allclose(meta["affine"], filled.monai_affine(), atol=1e-6)
    with pytest.raises(InputError, match="DicomSegReader: irregular_slices must be one of"):
        DicomSegReader(irregular_slices="guess")
    with pytest.raises(TypeError, match="irregular_slices"):
        DicomSegReader(irregular_slice="fill")
