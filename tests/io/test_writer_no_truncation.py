"""Issue 17: values users give are never truncated silently; an over-long one is an error naming it."""
from __future__ import annotations

import pytest

from monai_dicomseg.errors import InputError


@pytest.mark.parametrize("text, rule", [("x" * 65, "64 characters"), ("a\\b", "backslash|character")],
                         ids=["too-long", "backslash"])
def test_writer_series_description_is_checked_not_truncated(text, rule):
    from monai_dicomseg.io.writer import DicomSegWriter

    with pytest.raises(InputError, match=rf"series_description.*({rule})"):
        DicomSegWriter(series_description=text)


def test_writer_series_description_of_64_characters_is_kept():
    from monai_dicomseg.io.writer import DicomSegWriter

    assert DicomSegWriter(series_description="y" * 64).series_description == "y" * 64


def test_dcmqi_segment_description_is_checked_not_truncated():
    from monai_dicomseg.cli.dcmqi_meta import _add_extras
    from pydicom.dataset import Dataset

    description = Dataset()
    with pytest.raises(InputError, match=r"SegmentDescription.*64 characters"):
        _add_extras(description, {"SegmentDescription": "z" * 80}, "metadata segmentAttributes[0][0]")
    _add_extras(description, {"SegmentDescription": "short"}, "metadata")
    assert description.SegmentDescription == "short"
