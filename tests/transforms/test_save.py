"""SaveDicomSeg(d): model outputs on MONAI grids -> SEG on the source series grid.

Oracles: highdicom reads the files back onto the source instances; dciodvfy
validates them. Truth is the label map drawn into the synthetic series, in
spatial (sorted) order.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Orientation, Spacing

from monai_dicomseg import synthetic
from monai_dicomseg.errors import GeometryError, InputError
from monai_dicomseg.geometry.sorting import get_dataset_sort_index
from monai_dicomseg.io.source_series import load_source_geometry, to_monai_array
from monai_dicomseg.errors import OutputExistsError
from monai_dicomseg.transforms.save import SaveDicomSeg, SaveDicomSegd, safe_file_stem
from oracles import dciodvfy_errors

hd = pytest.importorskip("highdicom")
NAMES = ["liver", "spleen", "kidney_left"]
SHAPE = (10, 40, 40)
GEOMETRIES = {
    "axial": dict(orientation="axial"),
    "oblique": dict(orientation="oblique"),
    "reversed": dict(orientation="axial", reverse_order=True, flip_rows=True),
}


def make_case(folder: Path, geometry: str, seed: int = 3):
    """Write a series; return (folder, truth (F, R, C) in sorted order, SourceSeries)."""
    labels = synthetic.make_ellipsoid_labels(SHAPE, n_labels=3, seed=seed)
    datasets = synthetic.make_ct_series(SHAPE, spacing=(2.5, 0.8, 0.7), labels=labels, seed=seed,
                                        **GEOMETRIES[geometry])
    synthetic.write_series(datasets, folder)
    truth = labels[get_dataset_sort_index(datasets)]
    return folder, truth, load_source_geometry(folder)


def labels_tensor(truth: np.ndarray, source, folder: Path) -> MetaTensor:
    """The truth as MONAI loads it from the series: (1, C, R, S) with the RAS affine."""
    array = np.ascontiguousarray(to_monai_array(truth))[None].astype(np.float32)
    return MetaTensor(torch.from_numpy(array), affine=torch.as_tensor(source.monai_affine()),
                      meta={"filename_or_obj": str(folder), "space": "RAS"})


def softmax_like(label: MetaTensor, n: int = 3) -> MetaTensor:
    """Soft probabilities (background + n channels) whose argmax is ``label``."""
    onehot = torch.nn.functional.one_hot(label[0].long(), n + 1).permute(3, 0, 1, 2).float()
    probs = torch.softmax(onehot * 4.0, dim=0)
    return MetaTensor(probs, affine=label.affine, meta=dict(label.meta))


def read_back(path: str, source) -> np.ndarray:
    seg = hd.seg.segread(path)
    uids = [str(ds.SOPInstanceUID) for ds in source.datasets]
    return np.asarray(seg.get_pixels_by_source_instance(uids, combine_segments=seg.segmentation_type.value != "FRACTIONAL",
                                                       rescale_fractional=True))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.sum(a & b) / max(1, np.sum(a) + np.sum(b))


@pytest.mark.parametrize("geometry", list(GEOMETRIES), ids=list(GEOMETRIES))
@pytest.mark.parametrize("segmentation_type", ["BINARY", "LABELMAP"])
def test_ras_reorientation_is_exact(tmp_path, geometry, segmentation_type):
    folder, truth, source = make_case(tmp_path / "ct", geometry)
    prediction = Orientation(axcodes="RAS", labels=None)(labels_tensor(truth, source, folder))
    SaveDicomSeg(output_dir=tmp_path / "out", segmentation_type=segmentation_type, labels=NAMES)(prediction)
    path = prediction.meta["saved_to"]
    assert Path(path).parent == (tmp_path / "out").resolve()
    np.testing.assert_array_equal(read_back(path, source), truth)


@pytest.mark.parametrize("geometry", list(GEOMETRIES), ids=list(GEOMETRIES))
@pytest.mark.parametrize("kind", ["labels", "softmax"])
def test_spacing_resampled_back(tmp_path, geometry, kind):
    folder, truth, source = make_case(tmp_path / "ct", geometry)
    label = Orientation(axcodes="RAS", labels=None)(labels_tensor(truth, source, folder))
    if kind == "labels":
        prediction = Spacing(pixdim=(1.1, 1.2, 2.0), mode="nearest")(label)
    else:
        prediction = Spacing(pixdim=(1.1, 1.2, 2.0), mode="bilinear")(softmax_like(label))
    SaveDicomSeg(output_dir=tmp_path, segmentation_type="BINARY", labels=NAMES)(prediction)
    result = read_back(prediction.meta["saved_to"], source)
    for value in (1, 2, 3):
        assert dice(result == value, truth == value) >= 0.85, value


@pytest.mark.parametrize("geometry", list(GEOMETRIES), ids=list(GEOMETRIES))
def test_nearest_matches_monai_inverse(tmp_path, geometry):
    """Labels written from a Spacingd grid equal MONAI's own nearest resampling back to the source grid."""
    from monai.transforms import SpatialResample

    from monai_dicomseg.io.source_series import from_monai_array

    folder, truth, source = make_case(tmp_path / "ct", geometry)
    original = labels_tensor(truth, source, folder)
    prediction = Spacing(pixdim=(1.1, 1.2, 2.0), mode="nearest")(Orientation(axcodes="RAS", labels=None)(original))
    SaveDicomSeg(output_dir=tmp_path, labels=NAMES)(prediction)
    back = SpatialResample(mode="nearest")(prediction, dst_affine=original.affine, spatial_size=original.shape[1:])
    expected = np.rint(from_monai_array(np.asarray(back[0]))).astype(np.uint8)
    np.testing.assert_array_equal(read_back(prediction.meta["saved_to"], source), expected)


def test_fractional_from_softmax(tmp_path):
    folder, truth, source = make_case(tmp_path / "ct", "oblique")
    label = Orientation(axcodes="RAS", labels=None)(labels_tensor(truth, source, folder))
    probs = softmax_like(label)
    SaveDicomSeg(output_dir=tmp_path, segmentation_type="FRACTIONAL", labels=NAMES)(probs)
    result = read_back(probs.meta["saved_to"], source)  # (F, R, C, 3) in [0, 1]
    expected = np.moveaxis(np.asarray(torch.softmax(
        torch.nn.functional.one_hot(torch.as_tensor(truth).long(), 4).float() * 4.0, dim=-1))[..., 1:], -1, -1)
    np.testing.assert_allclose(result, expected, atol=1 / 255 + 1e-6)
    assert not dciodvfy_errors(probs.meta["saved_to"])


@pytest.mark.parametrize("segmentation_type", ["BINARY", "LABELMAP", "FRACTIONAL"])
def test_dciodvfy_and_metadata(tmp_path, segmentation_type):
    folder, truth, source = make_case(tmp_path / "ct", "axial")
    prediction = softmax_like(labels_tensor(truth, source, folder))
    SaveDicomSeg(output_dir=tmp_path, segmentation_type=segmentation_type, labels=NAMES,
                 algorithm_name="TinyUNet", algorithm_version="1.2")(prediction)
    path = prediction.meta["saved_to"]
    assert dciodvfy_errors(path) == []
    seg = pydicom.dcmread(path)
    ct = source.datasets[0]
    assert seg.PatientID == ct.PatientID and seg.StudyInstanceUID == ct.StudyInstanceUID
    assert seg.SeriesInstanceUID != ct.SeriesInstanceUID
    assert seg.FrameOfReferenceUID == ct.FrameOfReferenceUID
    item = seg.SegmentSequence[0]
    assert item.SegmentedPropertyTypeCodeSequence[0].CodeValue == "10200004"  # liver
    assert item.SegmentAlgorithmName == "TinyUNet"
    assert item.SegmentationAlgorithmIdentificationSequence[0].AlgorithmVersion == "1.2"
    assert len(item.RecommendedDisplayCIELabValue) == 3
    frame = seg.PerFrameFunctionalGroupsSequence[0]
    assert frame.DerivationImageSequence[0].SourceImageSequence[0].SpatialLocationsPreserved == "YES"


def test_empty_prediction_is_valid(tmp_path):
    folder, truth, source = make_case(tmp_path / "ct", "axial")
    empty = labels_tensor(np.zeros_like(truth), source, folder)
    SaveDicomSeg(output_dir=tmp_path, labels=NAMES)(empty)
    assert dciodvfy_errors(empty.meta["saved_to"]) == []
    assert not read_back(empty.meta["saved_to"], source).any()


def test_dict_transform_with_ref_key(tmp_path):
    from monai_dicomseg.transforms.load_series import LoadDicomSeriesd

    folder, truth, source = make_case(tmp_path / "ct", "reversed")
    data = LoadDicomSeriesd(keys="image")({"image": str(folder)})
    pred = Orientation(axcodes="RAS", labels=None)(softmax_like(labels_tensor(truth, source, folder)))
    pred.meta.pop("filename_or_obj")  # the source comes from ref_key
    data["pred"] = pred
    out = SaveDicomSegd(keys="pred", ref_key="image", output_dir=tmp_path / "o", output_postfix="_ai",
                        segmentation_type="LABELMAP", labels={1: "liver", 2: "spleen", 3: "kidney_left"})(data)
    path = Path(out["pred"].meta["saved_to"])
    assert path.name == f"{source.series_instance_uid}_ai.dcm"
    np.testing.assert_array_equal(read_back(str(path), source), truth)


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def case(tmp_path):
    folder, truth, source = make_case(tmp_path / "ct", "axial")
    return folder, truth, source, labels_tensor(truth, source, folder)


def _no_seg_written(folder: Path) -> None:
    assert not [p for p in folder.rglob("*") if p.is_file() and "ct" not in p.parts]


def test_unreachable_source(tmp_path, case):
    *_, label = case
    label.meta["filename_or_obj"] = str(tmp_path / "missing")
    with pytest.raises(InputError, match="source DICOM series is not reachable"):
        SaveDicomSeg(output_dir=tmp_path / "o", labels=NAMES)(label)
    _no_seg_written(tmp_path)


def test_channel_count_mismatch(tmp_path, case):
    *_, label = case
    probs = softmax_like(label)  # 4 channels
    with pytest.raises(InputError, match="channels"):
        SaveDicomSeg(output_dir=tmp_path / "o", labels=["liver"])(probs)
    _no_seg_written(tmp_path)


@pytest.mark.parametrize("bad", [1.5, -0.2, float("nan")], ids=["above1", "negative", "nan"])
def test_probabilities_out_of_range(tmp_path, case, bad):
    *_, label = case
    probs = softmax_like(label)
    probs[1, 0, 0, 0] = bad
    with pytest.raises(InputError, match=r"\[0, 1\]|NaN"):
        SaveDicomSeg(output_dir=tmp_path / "o", labels=NAMES)(probs)
    _no_seg_written(tmp_path)


def test_other_frame_of_reference(tmp_path, case):
    *_, label = case
    label.meta["FrameOfReferenceUID"] = "1.2.3.4"
    with pytest.raises(GeometryError, match="another Frame of Reference"):
        SaveDicomSeg(output_dir=tmp_path / "o", labels=NAMES)(label)


def test_grid_outside_source(tmp_path, case):
    *_, label = case
    label.affine[:3, 3] += 1000.0
    with pytest.raises(GeometryError, match="does not overlap"):
        SaveDicomSeg(output_dir=tmp_path / "o", labels=NAMES)(label)


def test_output_dir_not_writable(tmp_path, case):
    *_, label = case
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot be created|not a writable"):
        SaveDicomSeg(output_dir=blocker / "sub", labels=NAMES)(label)


def test_no_silent_overwrite(tmp_path, case):
    *_, label = case
    saver = SaveDicomSeg(output_dir=tmp_path / "o", labels=NAMES)
    saver(label)
    first = Path(label.meta["saved_to"]).read_bytes()
    with pytest.raises(OutputExistsError, match="exists"):
        saver(label)
    assert Path(label.meta["saved_to"]).read_bytes() == first
    SaveDicomSeg(output_dir=tmp_path / "o", labels=NAMES, overwrite=True)(label)


def test_untrusted_uid_cannot_escape(tmp_path):
    labels = synthetic.make_ellipsoid_labels(SHAPE, n_labels=3, seed=3)
    datasets = synthetic.make_ct_series(SHAPE, labels=labels)
    for ds in datasets:
        ds.SeriesInstanceUID = "../../evil/../x"
    out = tmp_path / "o"
    truth = labels[get_dataset_sort_index(datasets)]
    from monai_dicomseg.io.source_series import load_source_series

    source = load_source_series(datasets)
    label = labels_tensor(truth, source, tmp_path)
    before = set(tmp_path.rglob("*"))
    # The writer refuses the malformed UID (it would be copied into the SEG's references, issue 22): nothing
    # is written, inside output_dir or outside it; the file stem made of it is sanitised all the same.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError, match=r"SeriesInstanceUID: must be digits separated by dots"):
            SaveDicomSeg(output_dir=out, labels=NAMES)(label, source=datasets)
    assert not [p for p in tmp_path.rglob("*") if p not in before and p.is_file()]
    assert "saved_to" not in label.meta
    stem = safe_file_stem("../../evil/../x")
    assert "/" not in stem and ".." not in stem and not stem.startswith(".")


def test_unknown_label_value(tmp_path, case):
    *_, label = case
    with pytest.raises(InputError, match="no entry in labels"):
        SaveDicomSeg(output_dir=tmp_path / "o", labels=["liver", "spleen"])(label)


def test_bad_options():
    with pytest.raises(InputError, match="segmentation_type"):
        SaveDicomSeg(segmentation_type="MASK")
    with pytest.raises(InputError, match="output_name"):
        SaveDicomSeg(output_name="patient")


# --------------------------------------------------------------------------- labels contract end to end

CHANNEL_DEF = {"0": "background", "1": "liver", "2": "spleen", "3": "kidney_left"}


def _labels_by_name(path: str, source) -> dict[str, np.ndarray]:
    seg = hd.seg.segread(path)
    uids = [str(ds.SOPInstanceUID) for ds in source.datasets]
    stacked = np.asarray(seg.get_pixels_by_source_instance(uids, rescale_fractional=True))
    return {seg.get_segment_description(n).segment_label: stacked[..., i]
            for i, n in enumerate(seg.segment_numbers)}


@pytest.mark.parametrize("kind", ["argmax", "softmax", "onehot"])
@pytest.mark.parametrize("labels", [CHANNEL_DEF, ["background", "liver", "spleen", "kidney_left"],
                                    {int(k): v for k, v in CHANNEL_DEF.items()}],
                         ids=["channel_def", "list_with_background", "int_keys"])
def test_bundle_channel_def_every_output_kind(tmp_path, case, kind, labels):
    """A bundle's channel_def (string keys) works on every output kind; background is never a segment."""
    folder, truth, source, label = case
    if kind == "argmax":
        prediction = label
    elif kind == "softmax":
        prediction = softmax_like(label)
    else:
        onehot = torch.nn.functional.one_hot(label[0].long(), 4).permute(3, 0, 1, 2).float()
        prediction = MetaTensor(onehot, affine=label.affine, meta=dict(label.meta))
    data = SaveDicomSegd(keys="pred", output_dir=tmp_path / "o", labels=labels)({"pred": prediction})
    segments = _labels_by_name(data["pred"].meta["saved_to"], source)
    assert sorted(segments) == ["kidney_left", "liver", "spleen"]
    for value, name in ((1, "liver"), (2, "spleen"), (3, "kidney_left")):
        np.testing.assert_array_equal(segments[name] > 0, truth == value)


def test_softmax_names_without_background_is_an_error(tmp_path, case):
    *_, label = case
    with pytest.raises(InputError, match="sum to 1"):
        SaveDicomSeg(output_dir=tmp_path / "o", labels=["pancreas", "liver", "spleen", "kidney_left"])(
            softmax_like(label))
    _no_seg_written(tmp_path)


def test_sigmoid_multilabel_every_channel(tmp_path, case):
    folder, truth, source, label = case
    masks = torch.stack([torch.as_tensor(np.ascontiguousarray(to_monai_array(truth == v))) for v in (1, 2, 3)]).float() * 0.9
    prediction = MetaTensor(masks, affine=label.affine, meta=dict(label.meta))
    SaveDicomSeg(output_dir=tmp_path / "o", labels=NAMES)(prediction)
    segments = _labels_by_name(prediction.meta["saved_to"], source)
    for value, name in enumerate(NAMES, start=1):
        np.testing.assert_array_equal(segments[name] > 0, truth == value)


# --------------------------------------------------------------------------- strict options


def test_save_typos_are_type_errors():
    with pytest.raises(TypeError, match=r"SaveDicomSeg .*'segmentaton_type'.*did you mean 'segmentation_type'"):
        SaveDicomSeg(segmentaton_type="LABELMAP")
    with pytest.raises(TypeError, match=r"SaveDicomSeg .*'output_postfx'.*did you mean 'output_postfix'"):
        SaveDicomSeg(output_postfx="_ai")
    with pytest.raises(TypeError, match=r"SaveDicomSegd .*'lables'.*did you mean 'labels'"):
        SaveDicomSegd(keys="pred", segmentation_type="LABELMAP", lables=["liver"])
    with pytest.raises(TypeError, match=r"SaveDicomSegd .*'ref_keys'.*did you mean 'ref_key'"):
        SaveDicomSegd(keys="pred", ref_keys="image")
    # every real option still passes through
    SaveDicomSegd(keys="pred", ref_key="image", output_dir="o", overwrite=True, segmentation_type="LABELMAP",
                  labels={"0": "background", "1": "liver"}, threshold=0.4, omit_empty_frames=False)


# --------------------------------------------------------------------------- errors name the files and the key


def test_errors_name_source_output_and_key(tmp_path, case):
    folder, truth, source, label = case
    out = tmp_path / "o"
    with pytest.raises(InputError) as raised:
        SaveDicomSegd(keys="pred", output_dir=out, labels=["liver", "spleen"])({"pred": label})
    message = str(raised.value)
    assert "key 'pred'" in message
    assert f"source series folder {str(folder)!r}" in message
    assert str(out.resolve() / f"{source.series_instance_uid}_seg.dcm") in message
    assert "label values 1..3 but labels names 2" in message
    _no_seg_written(tmp_path)


def test_error_names_unreachable_source(tmp_path, case):
    *_, label = case
    label.meta["filename_or_obj"] = str(tmp_path / "missing_series")
    with pytest.raises(InputError, match="missing_series"):
        SaveDicomSegd(keys="pred", output_dir=tmp_path / "o")({"pred": label})


def test_existing_output_error_keeps_its_class_and_names_the_file(tmp_path, case):
    *_, label = case
    SaveDicomSeg(output_dir=tmp_path / "o", labels=NAMES)(label)
    with pytest.raises(OutputExistsError, match=r"DicomSegWriter source series folder .*_seg\.dcm"):
        SaveDicomSeg(output_dir=tmp_path / "o", labels=NAMES)(label)


def test_meta_keys_and_postfix_follow_monai(tmp_path, case):
    """A plain-array output's metadata comes from ``meta_keys`` / ``meta_key_postfix`` (MONAI's SaveImaged)."""
    folder, truth, source, label = case
    array, meta = label.as_tensor(), dict(label.meta, affine=label.affine)
    for options, meta_key in (({}, "pred_meta_dict"), ({"meta_key_postfix": "props"}, "pred_props"),
                              ({"meta_keys": "pred_info"}, "pred_info")):
        out_dir = tmp_path / meta_key
        SaveDicomSegd(keys="pred", output_dir=out_dir, labels=NAMES, **options)({"pred": array, meta_key: meta})
        (written,) = out_dir.glob("*.dcm")
        np.testing.assert_array_equal(read_back(str(written), source), truth)
    with pytest.raises(InputError, match=r"meta_keys must give one key per key \(1\); got 2"):
        SaveDicomSegd(keys="pred", meta_keys=("a", "b"))


def test_filename_without_source_is_an_error_not_an_assert(tmp_path):
    from monai_dicomseg.io.writer import DicomSegWriter

    with pytest.raises(InputError, match="no source series yet"):
        SaveDicomSeg(output_dir=tmp_path).filename(DicomSegWriter())
