"""One front door (issue 22): each CLI command gives what its torch-free Python twin gives for the same input.

``info`` vs the segment table (``io.segments.segment_table``); ``to-nifti`` vs
``io.segload.load_seg_array`` (the loaders' one decode path); ``from-nifti``
vs ``io.segwrite.build_segmentation`` (the MONAI writer's planner + writer);
``convert`` vs a ``Segmentation`` re-encode; ``batch`` vs the single
commands and ``io.series_lookup``. Arrays, affines, SEG Pixel Data and error
classes are compared. The MONAI twins (LoadDicomSeg, DicomSegWriter) are in
``test_front_door_parity_monai.py``.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest

from monai_dicomseg.errors import DecodeError, InputError, OverlapError
from monai_dicomseg.io.segload import load_seg_array
from monai_dicomseg.io.segments import segment_table
from monai_dicomseg.io.source_series import load_source_geometry, monai_affine_from_lps, to_monai_array
from monai_dicomseg.seg.segmentation import segread

DATA = Path(__file__).resolve().parents[2] / "data"
CASES = [(case, kind) for case in ("ct1", "ct2") for kind in ("binary", "labelmap")]
ENCODER = {"series_number": 300, "manufacturer": "monai_dicomseg", "manufacturer_model_name": "test",
           "software_versions": "0", "device_serial_number": "0"}


def _nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    image = nibabel.load(str(path))
    return np.asarray(image.dataobj), np.asarray(image.affine)


def _subprocess(*argv: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monai_dicomseg", *map(str, argv)], capture_output=True, text=True)


# --------------------------------------------------------------------------- info


@pytest.mark.parametrize("case, kind", [*CASES, ("ct1", "fractional")], ids=lambda v: str(v))
def test_info_segments_are_the_segment_table(cli, case, kind):
    seg_file = DATA / case / f"seg_{kind}.dcm"
    status, stdout, stderr = cli("info", seg_file, "--json")
    assert status == 0, stderr
    described = json.loads(stdout)
    table = segment_table(segread(seg_file))
    assert [(s["number"], s["label"], s["category"], s["color"]) for s in described["segments"]] == \
        [(t["number"], t["label"], t["category"]["meaning"], t["color"]) for t in table]
    assert described["segmentation_type"] == kind.upper()
    result = _subprocess("info", seg_file, "--json")
    assert result.returncode == 0 and json.loads(result.stdout) == described


@pytest.mark.parametrize("kind", ["not-seg", "not-dicom", "missing"])
def test_info_same_error_class_as_the_loaders(tmp_path, kind):
    from monai_dicomseg.cli.info import describe_seg

    path = {"not-seg": next((DATA / "ct1" / "series").iterdir()), "missing": tmp_path / "none.dcm",
            "not-dicom": tmp_path / "junk.dcm"}[kind]
    if kind == "not-dicom":
        path.write_bytes(b"no dicom here")
    expected = InputError if kind == "missing" else DecodeError
    with pytest.raises(expected) as from_loader:
        load_seg_array(str(path))
    with pytest.raises(expected) as from_cli:
        describe_seg(str(path))
    assert type(from_cli.value) is type(from_loader.value)


# --------------------------------------------------------------------------- to-nifti


@pytest.mark.parametrize("case, kind", CASES, ids=lambda v: str(v))
@pytest.mark.parametrize("layout", ["label-map", "stack"])
def test_to_nifti_is_load_seg_array(cli, tmp_path, case, kind, layout):
    seg_file = DATA / case / f"seg_{kind}.dcm"
    out = tmp_path / "out.nii.gz"
    status, _, stderr = cli("to-nifti", seg_file, out, f"--{layout}", "--source", DATA / case / "series")
    assert status == 0, stderr
    array, affine = _nifti(out)
    series = load_source_geometry(DATA / case / "series")
    from monai_dicomseg.io.segload import ReferenceGrid

    reference = ReferenceGrid(series.monai_affine("RAS"), tuple(series.geometry.spatial_shape[::-1]), "RAS",
                              series.frame_of_reference_uid, series.series_instance_uid)
    twin = load_seg_array(str(seg_file), mode="labelmap" if layout == "label-map" else "stacked",
                          reference=reference)
    expected = twin.array[0] if layout == "label-map" else np.moveaxis(twin.array, 0, -1)
    np.testing.assert_array_equal(array, expected)
    np.testing.assert_allclose(affine, twin.meta["affine"], atol=1e-5)
    assert array.dtype == expected.dtype


@pytest.mark.parametrize("fractional", ["float", "raw"])
def test_to_nifti_fractional_is_load_seg_array(cli, tmp_path, fractional):
    seg_file = DATA / "ct1" / "seg_fractional.dcm"
    out = tmp_path / "out.nii.gz"
    status, _, stderr = cli("to-nifti", seg_file, out, "--stack", "--fractional", fractional)
    assert status == 0, stderr
    array, affine = _nifti(out)
    twin = load_seg_array(str(seg_file), mode="stacked", rescale_fractional=fractional == "float")
    np.testing.assert_array_equal(array, np.moveaxis(twin.array, 0, -1))
    np.testing.assert_allclose(affine, twin.meta["affine"], atol=1e-5)


def test_to_nifti_threshold_is_load_seg_array(cli, tmp_path):
    seg_file = DATA / "ct1" / "seg_fractional.dcm"
    out = tmp_path / "out.nii.gz"
    status, _, stderr = cli("to-nifti", seg_file, out, "--threshold", "0.5")
    assert status == 0, stderr
    twin = load_seg_array(str(seg_file), mode="labelmap", threshold=0.5)
    np.testing.assert_array_equal(_nifti(out)[0], twin.array[0])


def test_to_nifti_subprocess_gives_the_same_bytes(cli, tmp_path):
    seg_file = DATA / "ct2" / "seg_binary.dcm"
    status, _, stderr = cli("to-nifti", seg_file, tmp_path / "a.nii.gz")
    assert status == 0, stderr
    result = _subprocess("to-nifti", seg_file, tmp_path / "b.nii.gz")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "a.nii.gz").read_bytes() == (tmp_path / "b.nii.gz").read_bytes()


def _overlapping_seg(case, path: Path) -> Path:
    """A BINARY SEG of ``case`` whose two segments share voxels."""
    from monai_dicomseg.io.segwrite import build_segmentation

    truth = to_monai_array(case.truth)
    first, second = (truth == 1), (truth == 1) | (truth == 2)
    channels = np.stack([first, second]).astype(np.uint8)
    built = build_segmentation(channels, monai_affine_from_lps(case.affine, case.truth.shape[0]),
                               load_source_geometry(case.folder), labels=["liver", "spleen"],
                               background=False, input_kind="onehot", encoder_options=ENCODER)
    built.seg.save_as(path)
    return path


def test_overlap_is_an_overlap_error_through_both_doors(axial_case, cli, tmp_path):
    from monai_dicomseg.cli.to_nifti import seg_to_nifti

    seg_file = _overlapping_seg(axial_case, tmp_path / "overlap.dcm")
    with pytest.raises(OverlapError):
        load_seg_array(str(seg_file), mode="labelmap")
    with pytest.raises(OverlapError, match="overlap"):
        seg_to_nifti(str(seg_file), str(tmp_path / "x.nii.gz"))
    status, _, stderr = cli("to-nifti", seg_file, tmp_path / "y.nii.gz", "--debug")
    assert status == 1 and "OverlapError" in stderr
    status, _, stderr = cli("to-nifti", seg_file, tmp_path / "z.nii.gz", "--stack")  # one mask each: fine
    assert status == 0, stderr


def test_fractional_threshold_overlap_is_an_overlap_error_through_both_doors(tmp_path):
    from monai_dicomseg.cli.to_nifti import seg_to_nifti

    seg_file = DATA / "ct1" / "seg_fractional.dcm"
    with pytest.raises(OverlapError, match="more than one segment"):
        load_seg_array(str(seg_file), mode="labelmap", threshold=0.004)
    with pytest.raises(OverlapError, match="more than one segment"):
        seg_to_nifti(str(seg_file), str(tmp_path / "x.nii.gz"), threshold=0.004)


@pytest.mark.parametrize("threshold", [0.0, 1.5, float("nan")], ids=["zero", "above-one", "nan"])
def test_threshold_rule_is_the_loaders(tmp_path, threshold):
    from monai_dicomseg.cli.to_nifti import seg_to_nifti

    seg_file = str(DATA / "ct1" / "seg_fractional.dcm")
    with pytest.raises(InputError, match=r"threshold must be in \(0, 1\]"):
        load_seg_array(seg_file, mode="labelmap", threshold=threshold)
    with pytest.raises(InputError, match=r"--threshold must be in \(0, 1\]"):
        seg_to_nifti(seg_file, str(tmp_path / "x.nii.gz"), threshold=threshold)


def test_to_nifti_other_series_needs_allow_other_series(cli, tmp_path):
    """Like LoadDicomSegd(ref_key=...): a series the SEG does not reference (same Frame of Reference) is
    refused unless allowed."""
    series = tmp_path / "series"
    series.mkdir()
    uid = pydicom.uid.generate_uid()
    for file in (DATA / "ct1" / "series").iterdir():
        ds = pydicom.dcmread(file)
        ds.SeriesInstanceUID = uid
        ds.save_as(series / file.name)
    seg_file = DATA / "ct1" / "seg_binary.dcm"
    status, _, stderr = cli("to-nifti", seg_file, tmp_path / "a.nii.gz", "--source", series)
    assert status == 1 and "allow_other_series" in stderr
    status, _, stderr = cli("to-nifti", seg_file, tmp_path / "b.nii.gz", "--source", series, "--allow-other-series")
    assert status == 0, stderr
    status, _, stderr = cli("to-nifti", seg_file, tmp_path / "c.nii.gz", "--source", DATA / "ct1" / "series")
    assert status == 0, stderr
    np.testing.assert_array_equal(_nifti(tmp_path / "b.nii.gz")[0], _nifti(tmp_path / "c.nii.gz")[0])


# --------------------------------------------------------------------------- from-nifti


def _pixel_data(path: Path) -> bytes:
    return pydicom.dcmread(path).PixelData


def _from_nifti_twin(nifti: Path, folder: Path, segmentation_type: str, names: list[str],
                     interpolation: str = "auto") -> bytes:
    """What the writer core makes of the NIfTI, built here without the CLI's code."""
    from monai_dicomseg.cli.dcmqi_meta import descriptions_from_names
    from monai_dicomseg.io.segwrite import build_segmentation

    image = nibabel.load(str(nifti))
    array = np.asarray(image.dataobj)
    fractional = segmentation_type == "FRACTIONAL"
    channels = array[None] if array.ndim == 3 else np.moveaxis(array, 3, 0)
    built = build_segmentation(channels, np.asarray(image.affine), load_source_geometry(folder),
                               segmentation_type=segmentation_type, labels=descriptions_from_names(names)[0],
                               background=False if fractional else None,
                               input_kind="probabilities" if fractional else "labels", interpolation=interpolation,
                               encoder_options={**ENCODER, "fractional_type": "PROBABILITY"})
    return built.seg.PixelData


@pytest.mark.parametrize("segmentation_type", ["BINARY", "LABELMAP"])
def test_from_nifti_is_the_writer_core(axial_case, cli, tmp_path, segmentation_type):
    nifti = axial_case.nifti(tmp_path / "labels.nii.gz")
    out = tmp_path / "seg.dcm"
    names = ["liver", "spleen", "kidney_left"]
    status, _, stderr = cli("from-nifti", nifti, axial_case.folder, out, "--type", segmentation_type,
                            "--labels", ",".join(names))
    assert status == 0, stderr
    assert _pixel_data(out) == _from_nifti_twin(nifti, axial_case.folder, segmentation_type, names)
    result = _subprocess("from-nifti", nifti, axial_case.folder, tmp_path / "sub.dcm", "--type", segmentation_type,
                         "--labels", ",".join(names))
    assert result.returncode == 0, result.stderr
    assert _pixel_data(tmp_path / "sub.dcm") == _pixel_data(out)


def _coarse_probabilities(case, path: Path) -> Path:
    """A FRACTIONAL map on a grid twice as coarse in-plane (so the writer resamples it)."""
    truth = to_monai_array(case.truth).astype(np.float32)
    coarse = (truth[::2, ::2, :] == 1).astype(np.float32) * 0.8
    affine = monai_affine_from_lps(case.affine, case.truth.shape[0]).copy()
    affine[:3, 0] *= 2
    affine[:3, 1] *= 2
    nibabel.save(nibabel.Nifti1Image(coarse, affine), str(path))
    return path


@pytest.mark.parametrize("interpolation", [None, "nearest", "linear"], ids=["default", "nearest", "linear"])
def test_from_nifti_fractional_interpolation_is_the_writers(axial_case, cli, tmp_path, interpolation):
    nifti = _coarse_probabilities(axial_case, tmp_path / "prob.nii.gz")
    out = tmp_path / "seg.dcm"
    extra = [] if interpolation is None else ["--interpolation", interpolation]
    status, stdout, stderr = cli("from-nifti", nifti, axial_case.folder, out, "--type", "FRACTIONAL",
                                 "--labels", "liver", *extra)
    assert status == 0, stderr
    assert "(resampled)" in stdout
    twin = _from_nifti_twin(nifti, axial_case.folder, "FRACTIONAL", ["liver"], interpolation or "auto")
    assert _pixel_data(out) == twin
    if interpolation is None:  # default: linear, as the MONAI writer (was nearest in from-nifti)
        assert twin == _from_nifti_twin(nifti, axial_case.folder, "FRACTIONAL", ["liver"], "linear")
        assert twin != _from_nifti_twin(nifti, axial_case.folder, "FRACTIONAL", ["liver"], "nearest")


# --------------------------------------------------------------------------- convert


@pytest.mark.parametrize("case, kind", CASES, ids=lambda v: str(v))
def test_convert_is_a_segmentation_re_encode(cli, tmp_path, case, kind):
    from monai_dicomseg.seg.segmentation import Segmentation

    seg_file = DATA / case / f"seg_{kind}.dcm"
    target = "LABELMAP" if kind == "binary" else "BINARY"
    out = tmp_path / "out.dcm"
    status, _, stderr = cli("convert", seg_file, out, "--type", target, "--source", DATA / case / "series")
    assert status == 0, stderr
    seg = segread(seg_file)
    series = load_source_geometry(DATA / case / "series")
    volume = seg.get_volume(combine_segments=target == "LABELMAP").match_geometry(series.geometry)
    twin = Segmentation(
        source_images=series.datasets, pixel_array=volume.array, segmentation_type=target,
        segment_descriptions=[seg.get_segment_description(int(n)) for n in seg.segment_numbers],
        series_instance_uid=pydicom.uid.generate_uid(), series_number=1, sop_instance_uid=pydicom.uid.generate_uid(),
        instance_number=1, manufacturer="x", manufacturer_model_name="x", software_versions="x",
        device_serial_number="0")
    assert _pixel_data(out) == twin.PixelData


def test_convert_overlap_is_an_overlap_error_through_both_doors(axial_case, tmp_path):
    from monai_dicomseg.cli.convert import convert_seg

    seg_file = _overlapping_seg(axial_case, tmp_path / "overlap.dcm")
    with pytest.raises(OverlapError):
        segread(seg_file).get_volume(combine_segments=True)
    with pytest.raises(OverlapError, match="a LABELMAP cannot hold them"):
        convert_seg(str(seg_file), str(tmp_path / "out.dcm"), segmentation_type="LABELMAP")
    assert not (tmp_path / "out.dcm").exists()


# --------------------------------------------------------------------------- batch


def test_batch_to_nifti_is_to_nifti_and_pairs_as_series_lookup(cli, tmp_path):
    from monai_dicomseg.io.series_lookup import match_series, scan_series

    inputs = tmp_path / "in"
    for case in ("ct1", "ct2"):
        (inputs / case).mkdir(parents=True)
        shutil.copy(DATA / case / "seg_labelmap.dcm", inputs / case / "seg.dcm")
    status, stdout, stderr = cli("batch", "to-nifti", inputs, tmp_path / "out", "--recursive", "--source-root", DATA)
    assert status == 0, stdout + stderr
    index = scan_series(DATA)
    for case in ("ct1", "ct2"):
        uid = match_series(index, pydicom.dcmread(DATA / case / "seg_labelmap.dcm", stop_before_pixels=True))
        assert uid is not None and Path(index.files[uid][0]).parent == DATA / case / "series"
        single = tmp_path / f"{case}.nii.gz"
        status, _, stderr = cli("to-nifti", DATA / case / "seg_labelmap.dcm", single, "--source",
                                DATA / case / "series")
        assert status == 0, stderr
        batch_array, batch_affine = _nifti(tmp_path / "out" / case / "seg.nii.gz")
        single_array, single_affine = _nifti(single)
        np.testing.assert_array_equal(batch_array, single_array)
        np.testing.assert_array_equal(batch_affine, single_affine)


def test_batch_convert_and_info_are_the_single_commands(cli, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(DATA / "ct2" / "seg_binary.dcm", inputs / "a.dcm")
    status, stdout, stderr = cli("batch", "convert", inputs, tmp_path / "out", "--type", "LABELMAP")
    assert status == 0, stdout + stderr
    status, _, stderr = cli("convert", inputs / "a.dcm", tmp_path / "single.dcm", "--type", "LABELMAP")
    assert status == 0, stderr
    assert _pixel_data(tmp_path / "out" / "a.dcm") == _pixel_data(tmp_path / "single.dcm")
    status, stdout, stderr = cli("batch", "info", inputs, "--json")
    assert status == 0, stderr
    status, single, _ = cli("info", inputs / "a.dcm", "--json")
    assert json.loads(stdout.strip().splitlines()[0]) == json.loads(single)


def test_batch_does_not_load_the_datalist_module_by_path():
    source = (Path(__file__).resolve().parents[2] / "monai_dicomseg" / "cli" / "batch.py").read_text()
    assert "spec_from_file_location" not in source and "datalist.py" not in source
