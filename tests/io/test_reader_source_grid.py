"""``DicomSegReader`` returns the label on the referenced series' full grid (issue 21).

``LoadImage(reader=DicomSegReader())`` used to return the SEG's stored extent
(9 of the 16 slices of ``data/ct1``): a label that does not overlay its image.
The reader now finds the source series (beside the SEG, under ``source_root``,
through ``series_resolver``, on the SEG's DICOMweb server) and places the label
on its grid, exactly as ``LoadDicomSegd(ref_key="image")`` after
``LoadDicomSeriesd("image")``; when it cannot, it warns once per file and says
so in ``meta["grid"]``.
"""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from monai.transforms import Compose, LoadImage, LoadImaged

import monai_dicomseg as mds
from monai_dicomseg.errors import GeometryError, InputError, InputTypeError
from monai_dicomseg.io import series_lookup
from monai_dicomseg.io.segload import GRID_REFERENCE, GRID_SEG, GRID_SOURCE_SERIES, META_KEYS, MetaKey

DATA = Path(__file__).resolve().parents[2] / "data"
SEG_FILES = ("seg_binary.dcm", "seg_fractional.dcm", "seg_labelmap.dcm")
THRESHOLD = 0.5
NOT_FOUND = "stored extent only"


@pytest.fixture(autouse=True)
def _fresh_cache():
    series_lookup.clear_series_cache()
    yield
    series_lookup.clear_series_cache()


@pytest.fixture
def ct1(tmp_path: Path) -> Path:
    """A copy of data/ct1 (SEGs beside series/)."""
    return Path(shutil.copytree(DATA / "ct1", tmp_path / "ct1"))


def _expected(case: Path, seg: Path, **options):
    """The label as the training pattern loads it: LoadDicomSeriesd then LoadDicomSegd(ref_key)."""
    return _expected_from(case / "series", seg, **options)


def _expected_from(series: Path, seg: Path, **options):
    """The same, with the series folder given (its space is the one the label gets)."""
    image = mds.LoadDicomSeriesd("image", space=options.get("space", "RAS"))
    load = Compose([image, mds.LoadDicomSegd("label", ref_key="image", **options)])
    return load({"image": str(series), "label": str(seg)})["label"]


def _read(path: Path, **options):
    return LoadImage(reader=mds.DicomSegReader(**options), image_only=True, dtype=None)(str(path))


def _assert_same(label, expected) -> None:
    assert tuple(label.shape) == tuple(expected.shape)
    assert label.dtype == expected.dtype
    np.testing.assert_array_equal(label.numpy(), expected.numpy())
    np.testing.assert_array_equal(label.affine.numpy(), expected.affine.numpy())


def _no_warning(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    ours = [w for w in caught if "DicomSegReader" in str(w.message)]
    assert not ours, [str(w.message) for w in ours]
    return result


# --------------------------------------------------------------------------- the committed data/ layouts


@pytest.mark.parametrize("case", ["ct1", "ct2"])
@pytest.mark.parametrize("name", SEG_FILES)
def test_load_image_equals_load_dicom_segd_on_the_image(case: str, name: str):
    folder = DATA / case
    expected = _expected(folder, folder / name, threshold=THRESHOLD)
    label = _no_warning(lambda: _read(folder / name, threshold=THRESHOLD))
    _assert_same(label, expected)
    image = mds.LoadDicomSeries()(str(folder / "series"))
    assert tuple(label.shape[1:]) == tuple(image.shape[1:])
    assert label.meta[MetaKey.GRID] == GRID_SOURCE_SERIES
    assert expected.meta[MetaKey.GRID] == GRID_REFERENCE


@pytest.mark.parametrize("case", ["ct1", "ct2"])
@pytest.mark.parametrize("name", SEG_FILES)
def test_load_imaged_equals_load_dicom_segd_on_the_image(case: str, name: str):
    folder = DATA / case
    expected = _expected(folder, folder / name, threshold=THRESHOLD)
    load = Compose([mds.LoadDicomSeriesd("image"),
                    LoadImaged(keys="label", reader=mds.DicomSegReader(threshold=THRESHOLD), dtype=None)])
    item = _no_warning(lambda: load({"image": str(folder / "series"), "label": str(folder / name)}))
    _assert_same(item["label"], expected)
    assert item["label"].meta[MetaKey.GRID] == GRID_SOURCE_SERIES
    assert tuple(item["label"].shape[1:]) == tuple(item["image"].shape[1:])


def test_fractional_stacked_and_lps_on_the_source_grid():
    folder = DATA / "ct1"
    for options in ({"mode": "stacked"}, {"mode": "stacked", "space": "LPS"}):
        _assert_same(_read(folder / "seg_fractional.dcm", **options),
                     _expected(folder, folder / "seg_fractional.dcm", **options))


# --------------------------------------------------------------------------- where the series is found


def test_series_beside_the_seg(ct1: Path):
    label = _no_warning(lambda: _read(ct1 / "seg_labelmap.dcm"))
    assert tuple(label.shape) == (1, 64, 64, 16)
    assert label.meta[MetaKey.GRID] == GRID_SOURCE_SERIES
    _assert_same(label, _expected(ct1, ct1 / "seg_labelmap.dcm"))


def test_series_elsewhere_needs_source_root(tmp_path: Path, ct1: Path):
    labels, images = tmp_path / "labels", tmp_path / "images" / "patient" / "ct"
    labels.mkdir()
    seg = Path(shutil.move(str(ct1 / "seg_binary.dcm"), labels / "case1.dcm"))
    shutil.move(str(ct1 / "series"), images)
    with pytest.warns(UserWarning, match=NOT_FOUND):
        alone = _read(seg)
    assert alone.meta[MetaKey.GRID] == GRID_SEG and tuple(alone.shape) == (1, 64, 64, 9)
    label = _no_warning(lambda: _read(seg, source_root=str(tmp_path / "images")))
    assert label.meta[MetaKey.GRID] == GRID_SOURCE_SERIES
    _assert_same(label, _expected_from(images, seg))


def test_series_resolver_folder_and_file_list(tmp_path: Path, ct1: Path):
    seg = Path(shutil.move(str(ct1 / "seg_labelmap.dcm"), tmp_path / "seg.dcm"))
    series = tmp_path / "elsewhere"
    shutil.move(str(ct1 / "series"), series)
    asked: list[pydicom.Dataset] = []

    def resolver(header: pydicom.Dataset):
        asked.append(header)
        return str(series)

    label = _no_warning(lambda: _read(seg, series_resolver=resolver))
    assert asked and str(asked[0].SOPInstanceUID) == label.meta[MetaKey.SOP_INSTANCE_UID]
    assert label.meta[MetaKey.GRID] == GRID_SOURCE_SERIES
    _assert_same(label, _expected_from(series, seg))
    files = sorted(str(p) for p in series.glob("*.dcm"))[::-1]
    _assert_same(_read(seg, series_resolver=lambda header: files), _expected_from(series, seg))


def test_resolver_none_falls_back_to_the_search_then_warns(tmp_path: Path, ct1: Path):
    label = _no_warning(lambda: _read(ct1 / "seg_binary.dcm", series_resolver=lambda header: None))
    assert label.meta[MetaKey.GRID] == GRID_SOURCE_SERIES  # found beside after the resolver's None
    (tmp_path / "alone").mkdir()
    seg = Path(shutil.copy(ct1 / "seg_binary.dcm", tmp_path / "alone" / "seg.dcm"))
    with pytest.warns(UserWarning, match=r"series_resolver \(returned None\)"):
        assert _read(seg, series_resolver=lambda header: None).meta[MetaKey.GRID] == GRID_SEG


def test_no_series_warns_once_per_file_and_says_so_in_meta(tmp_path: Path):
    seg = Path(shutil.copy(DATA / "ct1" / "seg_binary.dcm", tmp_path / "seg.dcm"))
    reader = mds.DicomSegReader()
    load = LoadImage(reader=reader, image_only=True)
    with pytest.warns(UserWarning) as record:
        first = load(str(seg))
    messages = [str(w.message) for w in record if "DicomSegReader" in str(w.message)]
    assert len(messages) == 1
    assert str(seg) in messages[0] and NOT_FOUND in messages[0]
    assert "source_root=" in messages[0] and "LoadDicomSegd(keys='label', ref_key='image')" in messages[0]
    assert first.meta[MetaKey.GRID] == GRID_SEG
    assert tuple(first.shape) == (1, 64, 64, 9)
    second = _no_warning(lambda: load(str(seg)))  # once per file (per reader)
    assert second.meta[MetaKey.GRID] == GRID_SEG
    other = Path(shutil.copy(seg, tmp_path / "other.dcm"))
    with pytest.warns(UserWarning, match=rf"{other.name}.*{NOT_FOUND}"):
        load(str(other))


def test_find_series_false_is_the_seg_grid_without_a_word():
    label = _no_warning(lambda: _read(DATA / "ct1" / "seg_binary.dcm", find_series=False))
    assert label.meta[MetaKey.GRID] == GRID_SEG and tuple(label.shape) == (1, 64, 64, 9)


def test_resolver_returning_another_frame_of_reference_is_an_error(ct1: Path):
    with pytest.raises(GeometryError, match=r"seg_binary\.dcm.*FrameOfReferenceUID"):
        _read(ct1 / "seg_binary.dcm", series_resolver=lambda header: str(DATA / "ct2" / "series"))
    with pytest.raises(GeometryError, match="FrameOfReferenceUID"):
        _read(ct1 / "seg_binary.dcm", series_resolver=lambda header: str(DATA / "ct2" / "series"),
              allow_other_series=True)


def test_resolver_returning_a_missing_folder_is_an_error(ct1: Path):
    with pytest.raises(InputError, match=r"seg_binary\.dcm.*does not exist"):
        _read(ct1 / "seg_binary.dcm", series_resolver=lambda header: str(ct1 / "nowhere"))


def test_bad_reader_options():
    with pytest.raises(InputTypeError, match="series_resolver must be a callable"):
        mds.DicomSegReader(series_resolver="data/ct1/series")
    with pytest.raises(InputError, match="source_root must be an existing folder"):
        mds.DicomSegReader(source_root="/no/such/folder")
    with pytest.raises(TypeError, match="source_root"):
        mds.DicomSegReader(source_rot="data")


def test_beside_search_is_bounded(ct1: Path, monkeypatch: pytest.MonkeyPatch):
    deep = ct1 / "a" / "b"
    deep.mkdir(parents=True)
    shutil.move(str(ct1 / "series"), deep / "series")  # three levels below the SEG's folder
    assert _no_warning(lambda: _read(ct1 / "seg_binary.dcm")).meta[MetaKey.GRID] == GRID_SOURCE_SERIES
    series_lookup.clear_series_cache()
    monkeypatch.setattr(series_lookup, "BESIDE_MAX_DEPTH", 2)
    with pytest.warns(UserWarning, match=r"stopped at .* 2 folder levels"):
        assert _read(ct1 / "seg_binary.dcm").meta[MetaKey.GRID] == GRID_SEG
    series_lookup.clear_series_cache()
    monkeypatch.setattr(series_lookup, "BESIDE_MAX_DEPTH", 3)
    monkeypatch.setattr(series_lookup, "BESIDE_MAX_FILES", 3)  # the 3 SEGs; the series comes after them
    with pytest.warns(UserWarning, match=r"stopped at 3 files"):
        assert _read(ct1 / "seg_binary.dcm").meta[MetaKey.GRID] == GRID_SEG


def test_found_series_with_unusable_geometry_warns(ct1: Path):
    (ct1 / "series" / "0008.dcm").unlink()  # a gap: not one regular volume
    with pytest.warns(UserWarning, match=rf"found but its geometry is unusable.*{NOT_FOUND}"):
        label = _read(ct1 / "seg_binary.dcm")
    assert label.meta[MetaKey.GRID] == GRID_SEG


def test_seg_without_referenced_series_is_matched_by_frame_of_reference(ct1: Path, tmp_path: Path):
    ds = pydicom.dcmread(ct1 / "seg_binary.dcm")
    del ds.ReferencedSeriesSequence
    ds.save_as(ct1 / "seg_binary.dcm")
    _assert_same(_no_warning(lambda: _read(ct1 / "seg_binary.dcm")), _expected(ct1, ct1 / "seg_binary.dcm"))
    series_lookup.clear_series_cache()
    twin = ct1 / "twin"  # a second series of the same Frame of Reference: ambiguous, not guessed
    twin.mkdir()
    for path in sorted((ct1 / "series").glob("*.dcm")):
        image = pydicom.dcmread(path)
        image.SeriesInstanceUID = "1.2.3.4.5"
        image.SOPInstanceUID = image.file_meta.MediaStorageSOPInstanceUID = f"1.2.3.4.5.{image.InstanceNumber}"
        image.save_as(twin / path.name)
    with pytest.warns(UserWarning, match=NOT_FOUND):
        assert _read(ct1 / "seg_binary.dcm").meta[MetaKey.GRID] == GRID_SEG


def test_dicomweb_seg_uses_the_referenced_series_on_its_server(monkeypatch: pytest.MonkeyPatch):
    """A SEG given as a DICOMweb reference: one series-metadata request on the same server, no pixels."""
    from monai_dicomseg.dicomweb import retrieve

    folder = DATA / "ct1"
    seg = pydicom.dcmread(folder / "seg_labelmap.dcm")
    series_uid = str(seg.ReferencedSeriesSequence[0].SeriesInstanceUID)
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted((folder / "series").glob("*.dcm"))]
    asked: list[str] = []

    def fake_series_metadata(ref):
        asked.append(ref.series_uid)
        if ref.series_uid != series_uid:
            from monai_dicomseg.errors import DicomWebNotFoundError
            raise DicomWebNotFoundError("not here")
        return [h.to_json_dict() for h in headers]

    monkeypatch.setattr(retrieve, "series_metadata", fake_series_metadata)
    uri = (f"dicomweb+http://127.0.0.1:1/dicom-web/studies/{seg.StudyInstanceUID}/series/{seg.SeriesInstanceUID}"
           f"/instances/{seg.SOPInstanceUID}")
    reader = mds.DicomSegReader()
    array, meta = _no_warning(lambda: reader.get_data((mds.seg.segread(folder / "seg_labelmap.dcm"), uri)))
    expected = _expected(folder, folder / "seg_labelmap.dcm")
    np.testing.assert_array_equal(array, expected.numpy())
    np.testing.assert_array_equal(meta[MetaKey.AFFINE], expected.affine.numpy())
    assert meta[MetaKey.GRID] == GRID_SOURCE_SERIES and asked == [series_uid]


def test_grid_key_is_declared_and_collates():
    assert MetaKey.GRID in META_KEYS
    for value in (GRID_SOURCE_SERIES, GRID_REFERENCE, GRID_SEG):
        assert isinstance(value, str)
    assert mds.LoadDicomSeg()(str(DATA / "ct1" / "seg_binary.dcm")).meta[MetaKey.GRID] == GRID_SEG


# --------------------------------------------------------------------------- MONAI's spleen tutorial


def _organ_hu() -> np.ndarray:
    from monai_dicomseg import synthetic

    return np.asarray(synthetic.ORGAN_HU, dtype=np.float64)


@pytest.mark.parametrize("name", ["seg_labelmap.dcm", "seg_binary.dcm"])
def test_spleen_tutorial_crops_lie_on_the_organ(name: str):
    """The 3D spleen tutorial's train transforms, the label read by LoadImaged(reader=DicomSegReader()).

    data/ct1's pixels encode the organs (synthetic.labels_to_hounsfield: label
    v has HU ORGAN_HU[v - 1] +- 3 of texture; body 20 +- 3; air -1000): in every
    crop, a voxel is labelled v exactly where its (nearest-resampled) HU is
    organ v's.
    """
    from monai.transforms import (
        CopyItemsd, CropForegroundd, Orientationd, RandCropByPosNegLabeld, ScaleIntensityRanged, Spacingd)

    keys = ["image", "hu", "label"]
    transforms = Compose([
        mds.LoadDicomSeriesd("image"),
        LoadImaged(keys="label", reader=mds.DicomSegReader()),
        CopyItemsd(keys="image", names="hu"),
        ScaleIntensityRanged(keys=["image"], a_min=-57, a_max=164, b_min=0.0, b_max=1.0, clip=True),
        CropForegroundd(keys=keys, source_key="image"),
        Orientationd(keys=keys, axcodes="RAS"),
        Spacingd(keys=keys, pixdim=(1.5, 1.5, 2.0), mode=("bilinear", "nearest", "nearest")),
        RandCropByPosNegLabeld(keys=keys, label_key="label", spatial_size=(24, 24, 8), pos=1, neg=1,
                               num_samples=4, image_key="image", image_threshold=0),
    ]).set_random_state(seed=0)
    organ_hu = _organ_hu()
    labelled = 0
    for item in transforms({"image": str(DATA / "ct1" / "series"), "label": str(DATA / "ct1" / name)}):
        label = item["label"].numpy()[0].astype(int)
        hu = item["hu"].numpy()[0]
        organ = np.zeros(label.shape, dtype=int)
        for value, centre in enumerate(organ_hu[:3], start=1):
            organ[np.abs(hu - centre) <= 3] = value
        np.testing.assert_array_equal(label, organ)  # 100 %: each labelled voxel on its organ, and only there
        labelled += int(np.count_nonzero(label))
    assert labelled > 0
