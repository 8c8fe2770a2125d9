"""Hostile writer input (issue 17): shapes before values, every written value valid for its VR.

Each invalid value class is refused with an :class:`InputError` that names the
argument and the rule (PS3.5 6.2); the boundary values just inside each rule
are written, and every written file goes through ``dciodvfy -allpffgitems``
with no ``Error - `` line.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

import monai_dicomseg as hd
from fuzz.hostile_files import source_series
from monai_dicomseg import synthetic
from monai_dicomseg.codec.raw import ds_value
from monai_dicomseg.codec.vr import check_value
from monai_dicomseg.errors import EncodeError, InputError
from oracles import dciodvfy_errors


def _labels_and_sources() -> tuple[np.ndarray, list[pydicom.Dataset]]:
    labels, sources = source_series()
    return labels, list(sources)


def _description(label: str = "organ 1", number: int = 1, **kwargs: Any) -> Any:
    return hd.seg.SegmentDescription(
        segment_number=number, segment_label=label,
        segmented_property_category=codes.SCT.Organ, segmented_property_type=codes.SCT.Liver,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL, **kwargs,
    )


def _build(sources: list[pydicom.Dataset] | None = None, pixel_array: Any = None, **overrides: Any) -> Any:
    labels, default_sources = _labels_and_sources()
    arguments: dict[str, Any] = {
        "source_images": default_sources if sources is None else sources,
        "pixel_array": (labels == 1) if pixel_array is None else pixel_array,
        "segmentation_type": "BINARY",
        "segment_descriptions": [_description()],
        "series_instance_uid": hd.UID(),
        "series_number": 1,
        "sop_instance_uid": hd.UID(),
        "instance_number": 1,
        "manufacturer": "Manufacturer",
        "manufacturer_model_name": "Model",
        "software_versions": "1",
        "device_serial_number": "1",
    }
    arguments.update(overrides)
    return hd.seg.Segmentation(**arguments)


# --------------------------------------------------------------------------- shapes before values


def test_broadcast_array_fails_on_shape_before_any_value_is_read() -> None:
    """A (6, 65535, 65535) broadcast view with 32 x 40 sources: refused from its shape alone."""
    huge = np.broadcast_to(np.ones((1, 1, 1), np.uint8), (6, 65535, 65535))
    with pytest.raises(InputError, match=r"pixel_array frames are 65535x65535 but the source_images are 32x40"):
        _build(pixel_array=huge)
    stacked = np.broadcast_to(np.ones((1, 1, 1, 1), np.float32), (6, 65535, 65535, 1))
    with pytest.raises(InputError, match=r"65535x65535"):
        _build(pixel_array=stacked, segmentation_type="FRACTIONAL")
    wrong_frames = np.broadcast_to(np.ones((1, 1, 1), np.uint8), (600, 32, 40))
    with pytest.raises(InputError, match=r"pixel_array has 600 frames"):
        _build(pixel_array=wrong_frames)


def test_shape_checked_before_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """prepare_pixels (which scans values) is not reached when the shape is wrong."""
    import monai_dicomseg.seg.encode as encode

    def no_scan(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("values scanned before the shape was checked")

    monkeypatch.setattr(encode, "prepare_pixels", no_scan)
    with pytest.raises(InputError, match="frames"):
        _build(pixel_array=np.zeros((6, 33, 40), np.uint8))


# --------------------------------------------------------------------------- invalid values


INVALID = [
    ("label-65", {"segment_descriptions": lambda: [_description("x" * 65)]},
     r"segment_descriptions\[0\]\.segment_label \(SegmentLabel\): must have at most 64 characters"),
    ("label-10000", {"segment_descriptions": lambda: [_description("x" * 10000)]},
     r"segment_label \(SegmentLabel\): must have at most 64 characters, not 10000"),
    ("label-backslash", {"segment_descriptions": lambda: [_description("liver\\spleen")]},
     r"segment_label \(SegmentLabel\): must be a single value \(VM 1\); a backslash"),
    ("label-newline", {"segment_descriptions": lambda: [_description("liver\nspleen")]},
     r"segment_label \(SegmentLabel\): must not contain control characters"),
    ("label-nul", {"segment_descriptions": lambda: [_description("liver\x00")]},
     r"segment_label \(SegmentLabel\): must not contain control characters"),
    ("label-empty", {"segment_descriptions": lambda: [_description("")]},
     r"segment_label \(SegmentLabel\): must not be empty"),
    ("label-not-latin1", {"segment_descriptions": lambda: [_description("肝臓")]},
     r"segment_label \(SegmentLabel\): holds characters that SpecificCharacterSet"),
    ("tracking-id-empty", {"segment_descriptions": lambda: [_description(tracking_id="", tracking_uid=hd.UID())]},
     r"segment_descriptions\[0\]\.tracking_id \(TrackingID\): must not be empty"),
    ("series-uid-empty", {"series_instance_uid": ""},
     r"series_instance_uid \(SeriesInstanceUID\): must not be empty"),
    ("series-uid-65", {"series_instance_uid": "1." + "2" * 63},
     r"series_instance_uid \(SeriesInstanceUID\): must have at most 64 characters"),
    ("series-uid-leading-zero", {"series_instance_uid": "1.02.3"},
     r"series_instance_uid \(SeriesInstanceUID\): must be digits separated by dots"),
    ("sop-uid-letters", {"sop_instance_uid": "1.2.abc"},
     r"sop_instance_uid \(SOPInstanceUID\): must be digits separated by dots"),
    ("manufacturer-65", {"manufacturer": "m" * 65},
     r"manufacturer \(Manufacturer\): must have at most 64 characters"),
    ("model-backslash", {"manufacturer_model_name": "a\\b"},
     r"manufacturer_model_name \(ManufacturerModelName\): must be a single value \(VM 1\); a backslash"),
    ("serial-65", {"device_serial_number": "1" * 65},
     r"device_serial_number \(DeviceSerialNumber\): must have at most 64 characters"),
    ("software-65", {"software_versions": "v" * 65},
     r"software_versions \(SoftwareVersions\): must have at most 64 characters"),
    ("content-description-65", {"content_description": "d" * 65},
     r"content_description \(ContentDescription\): must have at most 64 characters"),
    ("creator-name-65", {"content_creator_name": "n" * 65},
     r"content_creator_name \(ContentCreatorName\): must have at most 3 component groups of at most 64"),
    ("content-label-lowercase", {"content_label": "liver"},
     r"content_label \(ContentLabel\): may hold only upper-case letters, digits, space and underscore"),
    ("content-label-17", {"content_label": "L" * 17},
     r"content_label \(ContentLabel\): must have at most 16 characters"),
    ("series-number-2**31", {"series_number": 2**31},
     r"series_number \(SeriesNumber\): must be an integer in \[-2147483648, 2147483647\]"),
    ("instance-number-2**31", {"instance_number": 2**31},
     r"instance_number \(InstanceNumber\): must be an integer in"),
]


@pytest.mark.parametrize("overrides, message", [(o, m) for _, o, m in INVALID], ids=[i for i, _, _ in INVALID])
def test_invalid_value_is_refused_naming_the_argument(overrides: dict[str, Any], message: str, tmp_path: Path) -> None:
    arguments = {k: v() if callable(v) else v for k, v in overrides.items()}
    with pytest.raises(InputError, match=message):
        _build(**arguments)


def test_zero_pixel_spacing_from_sources_is_refused() -> None:
    labels, sources = _labels_and_sources()
    sources = [copy.deepcopy(ds) for ds in sources]
    for ds in sources:
        ds.PixelSpacing = ["0", "0.7"]
    with pytest.raises(InputError, match=r"PixelSpacing \(from source_images or pixel_measures\) must be two positive"):
        _build(sources=sources)


# --------------------------------------------------------------------------- the boundary is written and valid


@pytest.mark.dciodvfy
def test_values_at_the_limits_are_written_and_valid(tmp_path: Path) -> None:
    seg = _build(
        segment_descriptions=[_description("x" * 64)],
        series_instance_uid="1.2.826.0.1.3680043.8.498." + "1" * 38,
        series_number=2**31 - 1,
        instance_number=2**31 - 1,
        manufacturer="m" * 64,
        manufacturer_model_name="n" * 64,
        device_serial_number="1" * 64,
        software_versions="v" * 64,
        content_description="d" * 64,
        content_creator_name="Doe^Jane",
        content_label="LIVER_SEG 01",
    )
    path = tmp_path / "limits.dcm"
    seg.save_as(path)
    assert dciodvfy_errors(path) == []
    back = pydicom.dcmread(path)
    assert back.SegmentSequence[0].SegmentLabel == "x" * 64  # not truncated
    assert back.SeriesNumber == 2**31 - 1


@pytest.mark.dciodvfy
@pytest.mark.parametrize("orientation", ["axial", "coronal", "sagittal", "oblique"])
@pytest.mark.parametrize("target", ["BINARY", "LABELMAP"])
def test_convert_writes_valid_ds_for_every_geometry(orientation: str, target: str, tmp_path: Path) -> None:
    """`monai-dicomseg convert` of valid oblique SEGs wrote ImageOrientationPatient of 18-19 characters."""
    from monai_dicomseg.cli.convert import convert_seg

    labels = synthetic.make_ellipsoid_labels((6, 32, 40), n_labels=3, seed=0)
    sources = synthetic.make_ct_series((6, 32, 40), labels=labels, seed=0, orientation=orientation)
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=labels, segmentation_type="BINARY",
        segment_descriptions=[_description(f"organ {n}", n) for n in (1, 2, 3)],
        series_instance_uid=hd.UID(), series_number=1, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="m", manufacturer_model_name="m", software_versions="1", device_serial_number="1",
    )
    original = tmp_path / "seg.dcm"
    seg.save_as(original)
    output = tmp_path / "converted.dcm"
    convert_seg(str(original), str(output), segmentation_type=target)
    assert dciodvfy_errors(output) == []
    for item in pydicom.dcmread(output).SharedFunctionalGroupsSequence:
        for value in item.PlaneOrientationSequence[0]["ImageOrientationPatient"].value:
            assert len(str(value)) <= 16


@pytest.mark.parametrize("value, expected", [
    (0.9659258492011171, "0.965925849201"),
    ("0.9659258492011171", "0.965925849201"),
    ("-0.24321011437821718", "-0.243210114378"),
    ("1.5", "1.5"),
    (" 2 ", " 2 "),
    (1e-30, "1e-30"),
    (-123456789012.5, "-123456789012.5"),
])
def test_ds_value_fits_sixteen_characters(value: Any, expected: str) -> None:
    text = ds_value(value)
    assert len(text) <= 16
    assert text == expected or float(text) == pytest.approx(float(expected))


@pytest.mark.parametrize("value", ["abc", float("inf"), "nan", float("nan")], ids=repr)
def test_ds_value_refuses_non_numbers(value: Any) -> None:
    with pytest.raises(EncodeError, match="must be a"):
        ds_value(value, "ImagePositionPatient")


@pytest.mark.parametrize("keyword, vr, value, rule", [
    ("SegmentNumber", "US", 65536, r"must be an integer in \[0, 65535\]"),
    ("SomeLong", "UL", -1, r"must be an integer in \[0, 4294967295\]"),
    ("SomeSigned", "SL", 2**31, r"must be an integer in \[-2147483648, 2147483647\]"),
    ("SomeShort", "SH", "s" * 17, r"must have at most 16 characters"),
    ("SomeText", "ST", "ok\x00", r"must not contain control characters other than TAB"),
    ("SomeCode", "CS", "A-B", r"may hold only upper-case letters"),
])
def test_check_value_rules(keyword: str, vr: str, value: Any, rule: str) -> None:
    with pytest.raises(InputError, match=rule):
        check_value(keyword, vr, value, where="argument")


def test_check_value_accepts_valid_values() -> None:
    assert check_value("SegmentLabel", "LO", "Liver (left)", where="x") == "Liver (left)"
    assert check_value("SeriesInstanceUID", "UI", "1.2.840.10008.1.2", where="x") == "1.2.840.10008.1.2"
    assert check_value("PatientName", "PN", "Doe^Jane=Ideographic=Phonetic", where="x")
    assert check_value("SomeText", "LT", "line 1\r\nline 2\ttab", where="x")
    assert check_value("ImageOrientationPatient", "DS", ["0.9659258492011171", "1"], where="x") == [
        "0.965925849201", "1"]
