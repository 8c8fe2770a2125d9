"""``monai-dicomseg check``: validity and consumer verdicts on ours, highdicom's and dcmqi's SEGs."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from monai_dicomseg.cli.check import EXIT_CONSUMER, EXIT_INVALID, REPORT_KEYS, check_file
from monai_dicomseg.cli.from_nifti import nifti_to_seg
from monai_dicomseg.seg.profiles import profile_names
from oracles import find_tool

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _ours(case, tmp_path: Path, name: str = "seg.dcm", **options) -> Path:
    out = tmp_path / name
    nifti_to_seg(str(case.nifti(tmp_path / f"{name}.nii.gz")), str(case.folder), str(out),
                 labels=["liver", "spleen", "kidney"], **options)
    return out


def test_ours_valid_every_consumer(axial_case, tmp_path: Path, cli) -> None:
    path = _ours(axial_case, tmp_path)  # 32 x 40 frames, BINARY, native
    report = check_file(path)
    assert report["status"] == "ok" and report["valid"] and not report["errors"]
    assert all(verdict["reads"] for verdict in report["consumers"].values())
    status, out, _ = cli("check", path, "--profile", "ohif", "--profile", "slicer")
    assert status == 0 and "valid" in out and "ohif (required): reads it" in out


def test_json_schema(axial_case, tmp_path: Path, cli) -> None:
    path = _ours(axial_case, tmp_path, segmentation_type="LABELMAP", compress="rle")
    status, out, _ = cli("check", "--json", path, path)
    lines = out.strip().splitlines()
    assert status == 0 and len(lines) == 2
    report = json.loads(lines[0])
    assert tuple(report) == REPORT_KEYS
    assert set(report["consumers"]) == set(profile_names())
    for verdict in report["consumers"].values():
        assert set(verdict) == {"reads", "problems", "required"}
    assert (report["segmentation_type"], report["compression"], report["frames"]) == ("LABELMAP", "rle",
                                                                                    report["frames"])
    assert report["consumers"]["slicer"]["reads"] is False  # a LABELMAP: Slicer flagged
    assert any("LABELMAP" in p for p in report["consumers"]["slicer"]["problems"])


def test_odd_sized_binary_valid_ohif_flagged(make_series, tmp_path: Path, cli) -> None:
    case = make_series("odd", shape=(4, 33, 35))
    path = _ours(case, tmp_path)
    report = check_file(path)
    assert report["valid"] and report["status"] == "ok"  # nothing required
    assert not report["consumers"]["ohif"]["reads"]
    assert "not a multiple of 8" in report["consumers"]["ohif"]["problems"][0]
    assert report["consumers"]["slicer"]["reads"]
    status, out, _ = cli("check", path, "--profile", "ohif")
    assert status == EXIT_CONSUMER and "ohif (required): cannot read it" in out
    assert cli("check", path, "--profile", "slicer")[0] == 0


def test_graded_fractional_flagged_for_ohif(axial_case, tmp_path: Path) -> None:
    import nibabel

    from monai_dicomseg.io.source_series import monai_affine_from_lps, to_monai_array

    probabilities = (axial_case.truth == 1).astype(np.float32) * 0.5
    image = nibabel.Nifti1Image(np.asfortranarray(to_monai_array(probabilities)),
                                monai_affine_from_lps(axial_case.affine, probabilities.shape[0]))
    nibabel.save(image, str(tmp_path / "p.nii.gz"))
    out = tmp_path / "fractional.dcm"
    nifti_to_seg(str(tmp_path / "p.nii.gz"), str(axial_case.folder), str(out), labels=["liver"],
                 segmentation_type="FRACTIONAL")
    report = check_file(out)
    assert report["valid"] and not report["consumers"]["ohif"]["reads"]
    assert report["consumers"]["slicer"]["reads"]


def test_truncated_file_invalid(axial_case, tmp_path: Path, cli) -> None:
    path = _ours(axial_case, tmp_path)
    data = path.read_bytes()
    damaged = tmp_path / "damaged.dcm"
    damaged.write_bytes(data[: len(data) - 300])
    report = check_file(damaged)
    assert report["status"] == "invalid" and report["errors"]
    status, out, _ = cli("check", path, damaged)
    assert status == EXIT_INVALID and "INVALID" in out


def test_frame_count_and_vr_errors(axial_case, tmp_path: Path) -> None:
    path = _ours(axial_case, tmp_path)
    ds = pydicom.dcmread(path)
    frames = int(ds.NumberOfFrames)
    ds.NumberOfFrames = frames - 1  # Pixel Data now longer than the header says; per-frame items disagree too
    ds.save_as(tmp_path / "frames.dcm")
    report = check_file(tmp_path / "frames.dcm")
    assert not report["valid"]
    assert any("PerFrameFunctionalGroupsSequence" in e or "PixelData" in e for e in report["errors"])
    ds = pydicom.dcmread(path)
    ds.SeriesDescription = "bad\x01text"  # a control character: the writer's VR rules refuse it
    ds.save_as(tmp_path / "vr.dcm")
    report = check_file(tmp_path / "vr.dcm")
    assert not report["valid"] and any(e.startswith("value:") for e in report["errors"])


def test_not_a_file_and_not_a_seg(tmp_path: Path, axial_case) -> None:
    report = check_file(tmp_path / "missing.dcm")
    assert report["status"] == "invalid" and "is not a file" in report["errors"][0]
    report = check_file(axial_case.folder / sorted(p.name for p in axial_case.folder.iterdir())[0])
    assert not report["valid"]


@pytest.mark.parametrize("name", ["seg_image_ct_binary.dcm", "seg_image_ct_true_fractional.dcm",
                                  "seg_image_ct_binary_overlap.dcm", "seg_image_sm_control_labelmap.dcm",
                                  "seg_image_sm_dots_tiled_full.dcm"])
def test_highdicom_corpus_valid(generated_corpus, name: str) -> None:
    report = check_file(generated_corpus.path(name))
    assert report["valid"], report["errors"]
    assert report["consumers"]["highdicom"]["reads"]
    if name == "seg_image_ct_true_fractional.dcm":
        assert not report["consumers"]["ohif"]["reads"]


@pytest.mark.dcmqi
def test_dcmqi_output_valid(axial_case, tmp_path: Path) -> None:
    tool = find_tool("itkimage2segimage")
    if tool is None:
        pytest.skip("dcmqi itkimage2segimage not available (pip install dcmqi)")
    nifti = axial_case.nifti(tmp_path / "labels.nii.gz")
    meta = {"ContentCreatorName": "Reader1", "ClinicalTrialSeriesID": "1", "ClinicalTrialTimePointID": "1",
            "SeriesDescription": "Segmentation", "SeriesNumber": "300", "InstanceNumber": "1",
            "segmentAttributes": [[{
                "labelID": i, "SegmentLabel": f"organ {i}", "SegmentAlgorithmType": "MANUAL",
                "SegmentedPropertyCategoryCodeSequence": {"CodeValue": "123037004", "CodingSchemeDesignator": "SCT",
                                                          "CodeMeaning": "Anatomical Structure"},
                "SegmentedPropertyTypeCodeSequence": {"CodeValue": "10200004", "CodingSchemeDesignator": "SCT",
                                                      "CodeMeaning": "Liver"}} for i in (1, 2, 3)]]}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    out = tmp_path / "dcmqi.dcm"
    result = subprocess.run([str(tool), "--inputImageList", str(nifti), "--inputDICOMDirectory",
                             str(axial_case.folder), "--outputDICOM", str(out), "--inputMetadata",
                             str(tmp_path / "meta.json")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and out.exists(), result.stderr[-500:]
    report = check_file(out)
    assert report["valid"], report["errors"]
    assert report["consumers"]["slicer"]["reads"]
