"""Hostile writer arguments: each is refused with a documented error, or written as a valid file.

Random text (any Unicode, control characters, backslashes, any length),
integers far outside the IS/US ranges and random UID-like strings go into the
arguments that become DICOM values. The writer must either raise a
:class:`~monai_dicomseg.errors.DicomSegError` or write a file that
``dciodvfy -allpffgitems`` accepts with no ``Error - `` line.
"""
from __future__ import annotations

import io
import os
import tempfile
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.sr.codedict import codes

import monai_dicomseg as hd
from fuzz.conftest import LONG
from fuzz.harness import OUTCOMES, time_guard
from fuzz.hostile_files import source_series
from monai_dicomseg.errors import DicomSegError
from oracles import dciodvfy_errors, find_tool

EXAMPLES = int(os.environ.get("MDS_FUZZ_WRITER_EXAMPLES", 200 if LONG else 8))
WRITER_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=not LONG, database=None,
                           suppress_health_check=list(HealthCheck))

_TEXT = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=70),
    st.sampled_from(["", " ", "\\", "a\\b", "\n", "\x00", "x" * 64, "x" * 65, "liver", "LIVER", "é" * 10]),
)
_ROOT = "1.2.826.0.1.3680043.8.498."  # a registered root: dciodvfy also checks roots against its arc registry
_UID = st.one_of(
    st.from_regex(r"\A[0-9.]{0,70}\Z", fullmatch=True).map(lambda suffix: _ROOT + suffix),
    st.from_regex(r"\A[0-9.]{0,70}\Z", fullmatch=True).filter(lambda uid: not uid[:2].isdigit()
                                                                 or uid[:2] not in ("1.", "2.")),
    st.sampled_from(["", "0", "0.0", "1.02.3", "1..2", "1.2.", "3.4", "1.40", _ROOT[:-1], _ROOT + "0" * 40]),
)


def _write(**overrides: Any) -> str:
    """Build and write a SEG; return the outcome class (raises on a foreign exception or invalid file)."""
    labels, sources = source_series()
    description = {"segment_label": "organ 1"}
    description.update(overrides.pop("description", {}))
    arguments: dict[str, Any] = {
        "source_images": list(sources),
        "pixel_array": labels == 1,
        "segmentation_type": "BINARY",
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
    with time_guard():
        try:
            arguments["segment_descriptions"] = [hd.seg.SegmentDescription(
                segment_number=1, segmented_property_category=codes.SCT.Organ,
                segmented_property_type=codes.SCT.Liver, algorithm_type="MANUAL", **description)]
            seg = hd.seg.Segmentation(**arguments)
            buffer = io.BytesIO()
            seg.save_as(buffer)
        except DicomSegError as error:
            OUTCOMES[f"writer refused:{type(error).__name__}"] += 1
            return "refused"
    if find_tool("dciodvfy") is not None:
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "seg.dcm")
            with open(path, "wb") as handle:
                handle.write(buffer.getvalue())
            errors = dciodvfy_errors(path)
        assert errors == [], (overrides, description, errors)
    OUTCOMES["writer wrote a valid file"] += 1
    return "written"


@pytest.mark.dciodvfy
@WRITER_SETTINGS
@given(label=_TEXT, tracking_id=st.one_of(st.none(), _TEXT))
def test_segment_text(label: str, tracking_id: str | None) -> None:
    extra = {} if tracking_id is None else {"tracking_id": tracking_id, "tracking_uid": hd.UID()}
    _write(description={"segment_label": label, **extra})


@pytest.mark.dciodvfy
@WRITER_SETTINGS
@given(
    manufacturer=_TEXT, model=_TEXT, serial=_TEXT,
    content_label=st.one_of(st.none(), _TEXT),
    content_description=st.one_of(st.none(), _TEXT),
    creator=st.one_of(st.none(), _TEXT),
)
def test_equipment_and_content_text(manufacturer: str, model: str, serial: str, content_label: str | None,
                                    content_description: str | None, creator: str | None) -> None:
    _write(manufacturer=manufacturer, manufacturer_model_name=model, device_serial_number=serial,
           content_label=content_label, content_description=content_description, content_creator_name=creator)


@pytest.mark.dciodvfy
@WRITER_SETTINGS
@given(series_uid=_UID, sop_uid=_UID,
       series_number=st.integers(-(2**40), 2**40), instance_number=st.integers(-(2**40), 2**40))
def test_uids_and_numbers(series_uid: str, sop_uid: str, series_number: int, instance_number: int) -> None:
    _write(series_instance_uid=series_uid, sop_instance_uid=sop_uid, series_number=series_number,
           instance_number=instance_number)


def test_outcomes_are_classified() -> None:
    assert _write() == "written"
    assert _write(series_number=2**31) == "refused"
