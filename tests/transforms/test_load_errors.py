"""Errors of the loading layer name the case (SEG path, source series, dict key); strict options; hints.

Each error is re-raised once, at the transform/reader boundary, with the same
class and the context prepended, so a failure inside a ``DataLoader`` worker
says which of many cases broke.
"""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from monai.data import DataLoader
from monai.transforms import Compose, LoadImage, LoadImaged
from pydicom.sr.codedict import codes

import monai_dicomseg as mds
from monai_dicomseg import synthetic
from monai_dicomseg.errors import DecodeError, GeometryError, InputError, InputTypeError, OverlapError
from monai_cases import COMMON, make_case

SHAPE = (8, 16, 16)


def _overlapping_seg(folder, seg_type: str = "BINARY"):
    """A SEG whose segments 1 and 2 overlap (FRACTIONAL: both 0.8 on the overlap)."""
    labels = synthetic.make_ellipsoid_labels(SHAPE, n_labels=2, seed=5)
    datasets = synthetic.make_ct_series(shape=SHAPE, labels=labels, seed=5)
    synthetic.write_series(datasets, folder / "series")
    first = labels > 0
    second = labels == 2
    pixels = np.stack([first, second], axis=-1)
    if seg_type == "FRACTIONAL":
        pixels = pixels.astype(np.float32) * 0.8
    descriptions = [
        mds.seg.SegmentDescription(
            segment_number=n, segment_label=name, segmented_property_category=codes.SCT.Organ,
            segmented_property_type=code, algorithm_type=mds.seg.SegmentAlgorithmTypeValues.MANUAL)
        for n, (name, code) in enumerate([("liver", codes.SCT.Liver), ("spleen", codes.SCT.Spleen)], start=1)
    ]
    seg = mds.seg.Segmentation(
        source_images=datasets, pixel_array=pixels, segmentation_type=seg_type,
        segment_descriptions=descriptions, series_instance_uid=mds.UID(), sop_instance_uid=mds.UID(), **COMMON)
    path = folder / f"overlap_{seg_type.lower()}.dcm"
    seg.save_as(path)
    return folder / "series", path


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("errors")
    good = make_case(root / "good", shape=SHAPE)
    fractional = make_case(root / "fractional", shape=SHAPE, segmentation_type="FRACTIONAL", seed=1)
    other = make_case(root / "other", shape=SHAPE, seed=2)
    overlap_series, overlap = _overlapping_seg(root / "overlap")
    return {"good": good, "fractional": fractional, "other": other, "overlap": overlap,
            "overlap_series": overlap_series, "root": root}


def _d(image, label) -> dict:
    return {"image": str(image), "label": str(label)}


def _bad_items(cases) -> dict:
    good, fractional, other = cases["good"], cases["fractional"], cases["other"]
    return {
        "fractional_labelmap": (_d(fractional.series_folder, fractional.seg_path), InputError,
                                fractional.seg_path.name),
        "overlap": (_d(cases["overlap_series"], cases["overlap"]), OverlapError, cases["overlap"].name),
        "other_series": (_d(good.series_folder, other.seg_path), GeometryError, other.seg_path.parent.name),
        "not_a_seg": (_d(good.series_folder, good.series_folder / "0001.dcm"), DecodeError, "0001.dcm"),
        "missing": (_d(good.series_folder, cases["root"] / "gone.dcm"), InputError, "gone.dcm"),
    }


BAD = ["fractional_labelmap", "overlap", "other_series", "not_a_seg", "missing"]


@pytest.mark.parametrize("name", BAD)
def test_dict_transform_names_key_seg_and_series(cases, name):
    data, error, file_name = _bad_items(cases)[name]
    pipeline = Compose([mds.LoadDicomSeriesd("image"), mds.LoadDicomSegd("label", ref_key="image")],
                       map_items=False)
    with pytest.raises(error, match=re.escape(file_name)) as info:
        pipeline.transforms[1](pipeline.transforms[0](data))
    message = str(info.value)
    assert "LoadDicomSegd[key 'label']" in message
    assert f"source series {data['image']!r}" in message
    assert isinstance(info.value.__cause__, error)  # raise ... from the original error


@pytest.mark.parametrize("name", BAD)
def test_array_transform_names_seg(cases, name):
    data, error, file_name = _bad_items(cases)[name]
    with pytest.raises(error, match=rf"LoadDicomSeg SEG '.*{re.escape(file_name)}"):
        mds.LoadDicomSeg()(data["label"], mds.LoadDicomSeries()(data["image"]))


@pytest.mark.parametrize("name", ["fractional_labelmap", "overlap", "not_a_seg", "missing"])
def test_reader_names_seg(cases, name):
    data, error, file_name = _bad_items(cases)[name]
    with pytest.raises(error, match=rf"DicomSegReader SEG '.*{re.escape(file_name)}"):
        mds.DicomSegReader().get_data(mds.DicomSegReader().read(data["label"]))
    if name in ("fractional_labelmap", "overlap"):
        with pytest.raises(Exception, match=re.escape(file_name)):
            LoadImage(reader=mds.DicomSegReader(), image_only=True)(data["label"])


def test_bad_reference_names_seg(cases):
    good = cases["good"]
    image = mds.LoadDicomSeries()(str(good.series_folder))
    with pytest.raises(GeometryError, match=rf"{good.seg_path.name}'.*must be 3D"):
        mds.LoadDicomSegd("label", ref_key="image")({"image": image[0, 0], "label": str(good.seg_path)})
    with pytest.raises(InputError, match="must be a loaded image"):
        mds.LoadDicomSegd("label", ref_key="image")({"image": np.zeros(SHAPE), "label": str(good.seg_path)})
    # MONAI's meta-dict convention for a plain array reference
    plain = {"image": np.asarray(image), "img_meta": {"affine": image.affine, "space": "RAS"},
             "label": str(good.seg_path)}
    out = mds.LoadDicomSegd("label", ref_key="image", ref_meta_key="img_meta")(plain)
    assert out["label"].shape == image.shape
    postfix = {"image": np.asarray(image), "image_meta": {"affine": image.affine}, "label": str(good.seg_path)}
    assert mds.LoadDicomSegd("label", ref_key="image", meta_key_postfix="meta")(postfix)["label"].shape == image.shape


def test_series_loader_names_key_and_folder(cases):
    missing = cases["root"] / "no_series"
    with pytest.raises(InputError, match=r"LoadDicomSeriesd\[key 'image'\] series '.*no_series'"):
        mds.LoadDicomSeriesd("image")({"image": str(missing)})
    with pytest.raises(InputError, match=r"LoadDicomSeries series '.*no_series'"):
        mds.LoadDicomSeries()(str(missing))


@pytest.mark.parametrize("name", ["fractional_labelmap", "other_series", "missing"])
def test_error_in_dataloader_worker_names_file(cases, name):
    data, _, file_name = _bad_items(cases)[name]
    good = cases["good"]
    datalist = [_d(good.series_folder, good.seg_path), data]
    loader = DataLoader(mds.DicomSegDataset(datalist), batch_size=1, num_workers=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception, match=re.escape(file_name)) as info:
            list(loader)
    assert "key 'label'" in str(info.value)


def test_alignment_hint_for_pydicom_reader(tmp_path):
    case = make_case(tmp_path, shape=SHAPE, shuffle_instance_numbers=True, seed=3)
    data = {"image": str(case.series_folder), "label": str(case.seg_path)}
    pydicom_image = LoadImaged("image", reader="PydicomReader", ensure_channel_first=True, image_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = pydicom_image(data)
    with pytest.raises(GeometryError, match=r"orders slices by InstanceNumber.*LoadDicomSeriesd") as info:
        mds.LoadDicomSegd("label", ref_key="image")(loaded)
    assert case.seg_path.name in str(info.value)
    # sorted by position, the same series aligns; no hint on other geometry errors of our own loader
    ours = mds.LoadDicomSegd("label", ref_key="image")(mds.LoadDicomSeriesd("image")(data))
    assert ours["label"].shape == ours["image"].shape
    shifted = mds.LoadDicomSeriesd("image")(data)
    shifted["image"].affine[:3, 3] += 0.3
    with pytest.raises(GeometryError, match="fraction of a voxel") as info:
        mds.LoadDicomSegd("label", ref_key="image")(shifted)
    assert "InstanceNumber" not in str(info.value)


TYPOS = [
    (lambda: mds.LoadDicomSeg(segment_number=[1]), "LoadDicomSeg", "segment_numbers"),
    (lambda: mds.LoadDicomSeg(treshold=0.5), "LoadDicomSeg", "threshold"),
    (lambda: mds.LoadDicomSegd("label", ref_key="image", on_eror="skip"), "LoadDicomSegd", "on_error"),
    (lambda: mds.LoadDicomSegd("label", lable_map={"liver": 1}), "LoadDicomSegd", "label_map"),
    (lambda: mds.LoadDicomSeries(spce="LPS"), "LoadDicomSeries", "space"),
    (lambda: mds.LoadDicomSeriesd("image", dtpye=np.int16), "LoadDicomSeriesd", "dtype"),
    (lambda: mds.DicomSegReader(mode="labelmap", segment_lables=["liver"]), "DicomSegReader", "segment_labels"),
    (lambda: mds.DicomSegDataset([], rescale_fractionals=False), "DicomSegDataset", "rescale_fractional"),
    (lambda: mds.DicomSegDataset([], image_reder="PydicomReader"), "DicomSegDataset", "image_reader"),
    (lambda: mds.load_transforms(skip_overlap_check=True), "load_transforms", "skip_overlap_checks"),
    (lambda: mds.create_datalist(".", recursve=False), "create_datalist", "recursive"),
]


@pytest.mark.parametrize("make, where, meant", TYPOS, ids=[f"{w}-{m}" for _, w, m in TYPOS])
def test_unknown_option_names_closest(make, where, meant):
    with pytest.raises(TypeError, match=rf"{where} got unexpected keyword argument .*did you mean '{meant}'"):
        make()
    with pytest.raises(InputTypeError):
        make()
