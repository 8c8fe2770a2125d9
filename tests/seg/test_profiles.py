"""Consumer profiles (monai_dicomseg.seg.profiles): resolution, conflicts, constraints, and the consumers themselves.

The OHIF column is measured in tests/seg/test_ohif_consumer.py (OHIF's
``createFromDICOMSegBuffer`` under node, harness in tests/consumers/ohif).
The Slicer column (dcmqi's ``segimage2itkimage``) is re-measured below
whenever dcmqi is installed.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from monai_dicomseg import synthetic
from monai_dicomseg.codec.transfer_syntax import TRANSFER_SYNTAXES, by_name
from monai_dicomseg.errors import InputError
from monai_dicomseg.seg.profiles import (
    PROFILES, ConsumerWarning, apply_profile, consumer_problems, get_profile, profile_table, resolve_profile,
    warn_consumer_problems,
)
from oracles import find_tool

EXPLICIT = "1.2.840.10008.1.2.1"


@pytest.mark.parametrize("name, kind, compression", [
    ("ohif", "BINARY", "none"), ("slicer", "BINARY", "deflate"), ("highdicom", "BINARY", "none"),
    ("archive", "BINARY", "deflate")])
def test_profile_defaults(name: str, kind: str, compression: str) -> None:
    resolved = resolve_profile(name)
    assert (resolved.segmentation_type, resolved.compression) == (kind, compression)
    assert resolved.transfer_syntax_uid == by_name(compression).uid


def test_explicit_arguments_kept_when_read() -> None:
    assert resolve_profile("ohif", "LABELMAP").compression == "rle"  # OHIF >= 3.11 stores LABELMAP as RLE
    assert resolve_profile("slicer", "FRACTIONAL", "rle").compression == "rle"
    assert resolve_profile("slicer", transfer_syntax_uid=EXPLICIT).compression == "none"


@pytest.mark.parametrize("name, kwargs, match", [
    ("slicer", {"segmentation_type": "LABELMAP"}, r"profile='slicer'.*segmentation_type='LABELMAP'"),
    ("ohif", {"segmentation_type": "FRACTIONAL"}, r"profile='ohif'.*segmentation_type='FRACTIONAL'"),
    ("ohif", {"compression": "jpeg2000"}, r"profile='ohif'.*compression='jpeg2000'"),
    ("slicer", {"segmentation_type": "FRACTIONAL", "compression": "jpegls"}, r"profile='slicer'.*'jpegls'"),
    ("slicer", {"transfer_syntax_uid": "1.2.840.10008.1.2.4.90"}, r"transfer_syntax_uid='1.2.840.10008.1.2.4.90'"),
])
def test_conflicting_explicit_argument(name: str, kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        resolve_profile(name, **kwargs)


def test_unknown_profile() -> None:
    with pytest.raises(InputError, match=r"profile must be one of \['ohif', 'slicer', 'highdicom', 'archive'\]"):
        get_profile("osirix")


def test_apply_profile_without_profile_keeps_the_defaults() -> None:
    assert apply_profile(None, None, None, None) == ("BINARY", EXPLICIT)
    assert apply_profile(None, "LABELMAP", "rle", None) == ("LABELMAP", EXPLICIT)  # the writer applies compression
    assert apply_profile("slicer", None, None, None) == ("BINARY", by_name("deflate").uid)


def test_every_fact_names_its_source_and_every_syntax_is_written() -> None:
    written = {row.name for row in TRANSFER_SYNTAXES.values() if row.writable}
    for row in profile_table():
        assert row["facts"], row["name"]
        assert all(fact["source"] and fact["detail"] for fact in row["facts"])
        for names in row["syntaxes"].values():
            assert set(names) <= written


@pytest.mark.parametrize("rows, columns, flagged", [(32, 40, False), (33, 35, True), (31, 8, False), (7, 9, True)])
def test_ohif_binary_frame_size_boundary(rows: int, columns: int, flagged: bool) -> None:
    problems = consumer_problems("ohif", "BINARY", EXPLICIT, rows, columns)
    assert bool(problems) is flagged
    assert not consumer_problems("ohif", "LABELMAP", EXPLICIT, rows, columns)  # 8-bit frames: byte aligned
    assert not consumer_problems("slicer", "BINARY", EXPLICIT, rows, columns)


def test_fractional_and_labelmap_verdicts() -> None:
    assert consumer_problems("ohif", "FRACTIONAL", EXPLICIT, 32, 32)  # graded: not displayed
    assert consumer_problems("ohif", "FRACTIONAL", EXPLICIT, 32, 32, graded_fractional=True)
    assert not consumer_problems("ohif", "FRACTIONAL", EXPLICIT, 32, 32, graded_fractional=False)  # 0/max only
    assert any("LABELMAP is not displayed" in p for p in consumer_problems("slicer", "LABELMAP", EXPLICIT, 32, 32))
    assert consumer_problems("slicer", "BINARY", by_name("jpeg2000").uid, 32, 32)
    assert not consumer_problems("highdicom", "LABELMAP", by_name("jpegls").uid, 32, 32)


def test_warn_consumer_problems() -> None:
    with pytest.warns(ConsumerWarning, match=r"profile='ohif'.*33x35 pixels \(1155, not a multiple of 8\)"):
        warn_consumer_problems("ohif", "BINARY", EXPLICIT, 33, 35)
    warn_consumer_problems(None, "BINARY", EXPLICIT, 33, 35)  # no profile: silent


# --------------------------------------------------------------------------- written with each profile


def _labels_and_series(tmp_path: Path, shape: tuple[int, int, int]) -> tuple[Path, Path]:
    import nibabel

    from monai_dicomseg.io.source_series import monai_affine_from_lps, to_monai_array

    labels = synthetic.make_ellipsoid_labels(shape, n_labels=2, seed=3)
    series = synthetic.make_ct_series(shape, labels=labels, seed=3)
    synthetic.write_series(series, tmp_path / "ct")
    from monai_dicomseg.io.source_series import load_source_geometry

    source = load_source_geometry(tmp_path / "ct")
    order = {str(ds.SOPInstanceUID): k for k, ds in enumerate(series)}
    sorted_labels = labels[[order[str(ds.SOPInstanceUID)] for ds in source.datasets]]
    image = nibabel.Nifti1Image(np.asfortranarray(to_monai_array(sorted_labels)).astype(np.int16),
                                monai_affine_from_lps(source.geometry.affine, sorted_labels.shape[0]))
    nibabel.save(image, str(tmp_path / "labels.nii.gz"))
    return tmp_path / "labels.nii.gz", tmp_path / "ct"


@pytest.mark.parametrize("name", list(PROFILES))
def test_written_with_each_profile_meets_its_consumer(name: str, tmp_path: Path) -> None:
    from monai_dicomseg.cli.check import check_file
    from monai_dicomseg.cli.from_nifti import nifti_to_seg

    labels, series = _labels_and_series(tmp_path, (4, 32, 40))
    out = tmp_path / "seg.dcm"
    info = nifti_to_seg(str(labels), str(series), str(out), labels=["liver", "spleen"], profile=name)
    assert not info["warnings"]
    report = check_file(out, profiles=[name])
    assert report["status"] == "ok", report
    assert report["consumers"][name] == {"reads": True, "problems": [], "required": True}
    assert report["compression"] == resolve_profile(name).compression


def test_from_nifti_profile_conflict_and_odd_frames(tmp_path: Path) -> None:
    from monai_dicomseg.cli.from_nifti import nifti_to_seg

    labels, series = _labels_and_series(tmp_path, (4, 33, 35))
    with pytest.raises(InputError, match=r"profile='slicer'.*segmentation_type='LABELMAP'"):
        nifti_to_seg(str(labels), str(series), str(tmp_path / "a.dcm"), labels=["liver", "spleen"],
                     segmentation_type="LABELMAP", profile="slicer")
    info = nifti_to_seg(str(labels), str(series), str(tmp_path / "b.dcm"), labels=["liver", "spleen"], profile="ohif")
    assert any("not a multiple of 8" in note for note in info["warnings"])


@pytest.mark.dcmqi
@pytest.mark.parametrize("kind", ["BINARY", "FRACTIONAL"])
def test_slicer_profile_output_read_by_dcmqi(kind: str, tmp_path: Path) -> None:
    """The Slicer column, measured: dcmqi's segimage2itkimage converts what profile='slicer' writes."""
    tool = find_tool("segimage2itkimage")
    if tool is None:
        pytest.skip("dcmqi segimage2itkimage not available (pip install dcmqi)")
    from monai_dicomseg.cli.from_nifti import nifti_to_seg

    labels, series = _labels_and_series(tmp_path, (4, 32, 40))
    out = tmp_path / "seg.dcm"
    nifti_to_seg(str(labels), str(series), str(out), labels=["liver", "spleen"], segmentation_type=kind,
                 profile="slicer")
    (tmp_path / "nrrd").mkdir()
    result = subprocess.run([str(tool), "--inputDICOM", str(out), "--outputDirectory", str(tmp_path / "nrrd")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-500:]
    assert len(list((tmp_path / "nrrd").glob("*.nrrd"))) == 2


@pytest.mark.dcmqi
def test_dcmqi_refuses_what_slicer_profile_rules_out(tmp_path: Path) -> None:
    """jpeg2000 is outside the slicer profile because dcmqi refuses it (measured)."""
    tool = find_tool("segimage2itkimage")
    if tool is None:
        pytest.skip("dcmqi segimage2itkimage not available (pip install dcmqi)")
    pytest.importorskip("openjpeg")
    from monai_dicomseg.cli.from_nifti import nifti_to_seg

    labels, series = _labels_and_series(tmp_path, (4, 32, 40))
    out = tmp_path / "seg.dcm"
    nifti_to_seg(str(labels), str(series), str(out), labels=["liver", "spleen"], compress="jpeg2000")
    result = subprocess.run([str(tool), "--inputDICOM", str(out), "--outputDirectory", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert consumer_problems("slicer", "BINARY", by_name("jpeg2000").uid, 32, 40)


def test_monai_writer_profile_option() -> None:
    pytest.importorskip("monai")
    from monai_dicomseg.io.writer import DicomSegWriter
    from monai_dicomseg.transforms.save import SaveDicomSeg

    writer = DicomSegWriter(profile="slicer")
    assert writer.segmentation_type == "BINARY"
    assert writer.encoder_options["transfer_syntax_uid"] == by_name("deflate").uid
    assert DicomSegWriter(profile="ohif", segmentation_type="LABELMAP").encoder_options[
        "transfer_syntax_uid"] == by_name("rle").uid
    assert DicomSegWriter().encoder_options["transfer_syntax_uid"] == EXPLICIT  # no profile: as before
    with pytest.raises(InputError, match=r"profile='slicer'.*segmentation_type='LABELMAP'"):
        DicomSegWriter(profile="slicer", segmentation_type="LABELMAP")
    with pytest.raises(InputError, match=r"profile='ohif'.*compression='jpeg2000'"):
        SaveDicomSeg(profile="ohif", compression="jpeg2000")
    with pytest.raises(InputError, match=r"profile must be one of"):
        SaveDicomSeg(profile="osirix")


def _binary_seg(tmp_path, rows: int, columns: int, frames: int):
    """A BINARY SEG of ``frames`` source slices of ``rows x columns`` written by us (every frame kept)."""
    import numpy as np
    from pydicom.sr.codedict import codes

    import monai_dicomseg as hd
    from monai_dicomseg.synthetic import make_ct_series

    series = make_ct_series(shape=(frames, rows, columns))
    mask = np.zeros((frames, rows, columns), dtype=bool)
    mask[:, 1:-1, 2:-2] = True
    seg = hd.seg.Segmentation(
        source_images=series, pixel_array=mask, segmentation_type="BINARY", omit_empty_frames=False,
        segment_descriptions=[hd.seg.SegmentDescription(
            segment_number=1, segment_label="a", segmented_property_category=codes.SCT.Organ,
            segmented_property_type=codes.SCT.Liver, algorithm_type="MANUAL")],
        series_instance_uid=hd.UID(), series_number=1, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="x", manufacturer_model_name="x", software_versions="0", device_serial_number="0")
    path = tmp_path / f"binary_{rows}x{columns}x{frames}.dcm"
    seg.save_as(path)
    return path


def test_check_and_writer_name_the_frame_layout_ohif_misreads(tmp_path) -> None:
    """2 frames of 33x35 (OHIF guesses the 1-bit layout from the padded length and misreads it; measured in
    tests/seg/test_ohif_consumer.py) are flagged by `check`; 4 frames of 33x35 are not flagged for that reason."""
    from monai_dicomseg.cli.check import check_file
    from monai_dicomseg.seg.profiles import binary_length_misread, dataset_problems

    import pydicom

    misread = _binary_seg(tmp_path, 33, 35, 2)
    fine = _binary_seg(tmp_path, 33, 35, 4)
    assert binary_length_misread(33, 35, 2) == "misread" and binary_length_misread(33, 35, 4) is None
    length_rule = [p for p in dataset_problems("ohif", pydicom.dcmread(misread)) if "length" in p.lower()]
    assert length_rule, dataset_problems("ohif", pydicom.dcmread(misread))
    assert not [p for p in dataset_problems("ohif", pydicom.dcmread(fine)) if "length" in p.lower()]
    report = check_file(misread, profiles=["ohif"])
    assert report["status"] == "consumer-problems"
    assert any("length" in p.lower() for p in report["consumers"]["ohif"]["problems"])
