"""LoadDicomSeg(d): selection, label_map harmonisation, DicomSegReader, and every bad input."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from monai.transforms import LoadImage
from pydicom.sr.codedict import codes

from monai_dicomseg import DicomSegReader, LoadDicomSeg, LoadDicomSegd
from monai_dicomseg.errors import DecodeError, GeometryError, InputError
from monai_dicomseg.io.segments import segments_from_meta
from monai_dicomseg.transforms.load_series import LoadDicomSeries
from monai_cases import make_case, truth_on_grid


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return make_case(tmp_path_factory.mktemp("case"))


@pytest.fixture(scope="module")
def image(case):
    return LoadDicomSeries()(str(case.series_folder))


def _truth(case, image):
    return truth_on_grid(case.labels, case.datasets, np.asarray(image.affine), tuple(image.shape[1:]))


def test_selection(case, image):
    truth = _truth(case, image)
    by_number = LoadDicomSeg(mode="stacked", segment_numbers=[3, 1])(str(case.seg_path), image)
    assert by_number.shape[0] == 2 and segments_from_meta(by_number.meta)["channel_segments"] == [[1], [3]]
    np.testing.assert_array_equal(np.asarray(by_number[1]), truth == 3)
    by_label = LoadDicomSeg(mode="stacked", segment_labels=["spleen"])(str(case.seg_path), image)
    np.testing.assert_array_equal(np.asarray(by_label[0]), truth == 2)
    by_code = LoadDicomSeg(mode="stacked", segmented_property_types=[codes.SCT.Kidney])(str(case.seg_path), image)
    np.testing.assert_array_equal(np.asarray(by_code[0]), truth == 3)
    table = segments_from_meta(by_code.meta)["segments"]
    assert table[0] == {"number": 1, "label": "liver", "category": {
        "value": "91772007", "scheme_designator": "SCT", "meaning": "Organ"}, "type": {
        "value": "10200004", "scheme_designator": "SCT", "meaning": "Liver"}, "modifier": None, "color": None,
        "tracking_id": None}
    assert by_code.meta["source_series_instance_uid"] == case.datasets[0].SeriesInstanceUID
    assert by_code.meta["filename_or_obj"] == str(case.seg_path)


def test_label_map_harmonises(case, image):
    truth = _truth(case, image)
    label_map = {"spleen": 1, "Liver": 2, "pancreas": 3}  # by label, by type meaning, absent
    labelmap = LoadDicomSeg(mode="labelmap", label_map=label_map)(str(case.seg_path), image)
    expected = np.select([truth == 2, truth == 1], [1, 2], 0)
    np.testing.assert_array_equal(np.asarray(labelmap[0]), expected)
    stacked = LoadDicomSeg(mode="stacked", label_map={codes.SCT.Kidney: 2, 1: 1, "pancreas": 3})(
        str(case.seg_path), image)
    assert stacked.shape[0] == 3 and segments_from_meta(stacked.meta)["channel_values"] == [1, 2, 3]
    np.testing.assert_array_equal(np.asarray(stacked[0]), truth == 1)
    np.testing.assert_array_equal(np.asarray(stacked[1]), truth == 3)
    assert not stacked[2].any()


def test_dicom_seg_reader(case, tmp_path):
    renamed = tmp_path / "segmentation.bin"
    shutil.copy(case.seg_path, renamed)
    reader = DicomSegReader(mode="labelmap")
    assert reader.verify_suffix(str(renamed))
    assert not reader.verify_suffix(str(case.series_folder / "0001.dcm"))
    assert not reader.verify_suffix(str(tmp_path / "missing.dcm"))
    label = LoadImage(reader=reader, image_only=True, ensure_channel_first=True)(str(renamed))
    direct = LoadDicomSeg(mode="labelmap")(str(case.seg_path))
    assert label.shape == direct.shape
    np.testing.assert_array_equal(np.asarray(label), np.asarray(direct))
    np.testing.assert_allclose(np.asarray(label.affine), np.asarray(direct.affine))
    with pytest.raises(TypeError, match="'colour'"):
        DicomSegReader(colour="red")


def test_bad_arguments(case):
    with pytest.raises(InputError, match="mode must be one of"):
        LoadDicomSeg(mode="onehot")
    with pytest.raises(InputError, match="on_error must be one of"):
        LoadDicomSeg(on_error="ignore")
    with pytest.raises(InputError, match="segment_numbers: 7 is not a segment"):
        LoadDicomSeg(segment_numbers=[7])(str(case.seg_path))
    with pytest.raises(InputError, match="no segment is labelled 'heart'"):
        LoadDicomSeg(segment_labels=["heart"])(str(case.seg_path))
    with pytest.raises(InputError, match="label_map cannot be combined"):
        LoadDicomSeg(label_map={"liver": 1}, segment_numbers=[1])(str(case.seg_path))
    with pytest.raises(InputError, match=r"label_map\['liver'\] must be an int >= 1"):
        LoadDicomSeg(label_map={"liver": 0})(str(case.seg_path))
    with pytest.raises(InputError, match="ref_key 'image' is not in the data dict"):
        LoadDicomSegd("label", ref_key="image")({"label": str(case.seg_path)})


def test_bad_files(case, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        LoadDicomSeg()(str(tmp_path / "nothing.dcm"))
    with pytest.raises(DecodeError, match="SOPClassUID must be"):
        LoadDicomSeg()(str(case.series_folder / "0001.dcm"))
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(b"not dicom at all" * 10)
    with pytest.raises(DecodeError):
        LoadDicomSeg()(str(garbage))
    with pytest.warns(UserWarning, match="skipped"):
        assert LoadDicomSeg(on_error="skip")(str(tmp_path / "nothing.dcm")) is None
    with pytest.warns(UserWarning, match="skipped"):
        assert LoadDicomSegd("label", on_error="skip")({"label": str(garbage)}) == []


def test_fractional_labelmap_mode_rejected(tmp_path):
    case = make_case(tmp_path, segmentation_type="FRACTIONAL")
    with pytest.raises(InputError, match=r"seg\.dcm.*needs a threshold: pass threshold="):
        LoadDicomSeg(mode="labelmap")(str(case.seg_path))
    raw = LoadDicomSeg(mode="stacked", rescale_fractional=False)(str(case.seg_path))
    assert float(raw.max()) == 255.0


def test_incompatible_references(case, image, tmp_path):
    # another series (different SeriesInstanceUID, same grid)
    other = make_case(tmp_path / "other", frame_of_reference_uid=case.datasets[0].FrameOfReferenceUID)
    other_image = LoadDicomSeries()(str(other.series_folder))
    with pytest.raises(GeometryError, match="references SeriesInstanceUID"):
        LoadDicomSeg()(str(case.seg_path), other_image)
    # another frame of reference
    foreign = make_case(tmp_path / "foreign")
    foreign_image = LoadDicomSeries()(str(foreign.series_folder))
    with pytest.raises(GeometryError, match="FrameOfReferenceUID of the SEG"):
        LoadDicomSeg()(str(case.seg_path), foreign_image)
    with pytest.warns(UserWarning, match="skipped"):
        assert LoadDicomSegd("label", ref_key="image", on_error="skip")(
            {"image": foreign_image, "label": str(case.seg_path)}) == []
    # a MONAI image without UIDs in its metadata: geometry alone must catch the mismatch
    bare = image.clone()
    bare.meta = {"affine": image.affine, "space": "RAS"}
    rotated = make_case(tmp_path / "rotated", orientation="oblique")
    with pytest.raises(GeometryError, match="orientation does not match"):
        LoadDicomSeg()(str(rotated.seg_path), bare)
    shifted = bare.clone()
    shifted.affine = bare.affine.clone()
    shifted.affine[:3, 3] += 0.3
    with pytest.raises(GeometryError, match="offset from the reference grid by a fraction"):
        LoadDicomSeg()(str(case.seg_path), shifted)
    cropped = bare[:, :, :, :3].clone()
    with pytest.raises(GeometryError, match="does not fit in the reference grid"):
        LoadDicomSeg()(str(case.seg_path), cropped)
    coarse = bare.clone()
    coarse.affine = bare.affine.clone()
    coarse.affine[:3, 0] *= 2
    with pytest.raises(GeometryError, match="spacing does not match"):
        LoadDicomSeg()(str(case.seg_path), coarse)
    with pytest.raises(GeometryError, match="must be 3D"):
        LoadDicomSeg()(str(case.seg_path), bare[0, 0])


def test_segment_selection_object_equals_keywords_in_every_loader(case, image, tmp_path):
    """One SegmentSelection, accepted by every loader, gives what the keywords give."""
    from monai_dicomseg.data.dataset import DicomSegDataset, load_transforms
    from monai_dicomseg.errors import InputTypeError
    from monai_dicomseg.io.segload import load_seg_array
    from monai_dicomseg.io.segments import SegmentSelection

    selection = SegmentSelection(segment_labels=["spleen"], segment_numbers=[3])
    keywords = {"segment_labels": ["spleen"], "segment_numbers": [3]}
    seg = str(case.seg_path)
    expected = load_seg_array(seg, mode="stacked", **keywords)
    assert segments_from_meta(expected.meta)["channel_segments"] == [[2], [3]]
    np.testing.assert_array_equal(load_seg_array(seg, mode="stacked", selection=selection).array, expected.array)
    np.testing.assert_array_equal(np.asarray(LoadDicomSeg(mode="stacked", selection=selection)(seg)), expected.array)
    reader = DicomSegReader(mode="stacked", selection=selection, find_series=False)  # the SEG grid, as `expected`
    np.testing.assert_array_equal(reader.get_data(reader.read(seg))[0], expected.array)
    on_grid = LoadDicomSegd("label", ref_key="image", mode="stacked", selection=selection)(
        {"label": seg, "image": image})["label"]
    np.testing.assert_array_equal(
        np.asarray(on_grid), np.asarray(LoadDicomSeg(mode="stacked", **keywords)(seg, image)))
    assert load_transforms(mode="stacked", selection=selection) is not None
    item = DicomSegDataset([{"image": str(case.series_folder), "label": seg}], mode="stacked",
                           selection=selection)[0]
    np.testing.assert_array_equal(np.asarray(item["label"]), np.asarray(on_grid))
    with pytest.raises(InputError, match=r"selection= cannot be combined with \['segment_numbers'\]"):
        LoadDicomSeg(selection=selection, segment_numbers=[1])
    with pytest.raises(InputTypeError, match="selection must be a SegmentSelection; got dict"):
        load_seg_array(seg, selection=keywords)
    with pytest.raises(TypeError, match="did you mean 'segment_labels'"):
        load_seg_array(seg, segment_label=["spleen"])


def test_meta_keys_are_declared_once_and_agree_with_monai(case):
    """Every metadata key a loader writes is a MetaKey constant; MONAI's own keys keep MONAI's names."""
    from monai.utils import ImageMetaKey, MetaKeys

    from monai_dicomseg.io.segload import META_KEYS, SERIES_META_KEYS, MetaKey

    for name in ("AFFINE", "ORIGINAL_AFFINE", "SPATIAL_SHAPE", "SPACE", "ORIGINAL_CHANNEL_DIM", "SAVED_TO"):
        assert getattr(MetaKey, name) == getattr(MetaKeys, name)
    assert MetaKey.FILENAME_OR_OBJ == ImageMetaKey.FILENAME_OR_OBJ
    declared = {value for name, value in vars(MetaKey).items() if name.isupper()}
    assert set(META_KEYS) <= declared and set(SERIES_META_KEYS) <= declared
    label = LoadDicomSeg()(str(case.seg_path))
    assert set(label.meta) - {"affine"} <= set(META_KEYS)
    image = LoadDicomSeries()(str(case.series_folder))
    assert image.meta[MetaKey.SLICE_ORDER] == MetaKey.SLICE_ORDER_BY_POSITION
