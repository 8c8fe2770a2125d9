"""Issue 22: the package's vocabulary is declared once (SEG SOP classes, ...), and used everywhere else."""
from __future__ import annotations

import re
from pathlib import Path

import pydicom
import pytest

from monai_dicomseg.enums import SEG_SOP_CLASS_UIDS, SegmentationTypeValues, SegSOPClass, is_seg_sop_class

PACKAGE = Path(__file__).resolve().parents[1] / "monai_dicomseg"
SOP_CLASS_HOME = PACKAGE / "enums.py"
_SEG_UID = re.compile(r"1\.2\.840\.10008\.5\.1\.4\.1\.1\.66\.[0-9]")


def test_seg_sop_class_uids_are_spelled_only_in_enums():
    offenders = {str(path.relative_to(PACKAGE)): [n for n, line in enumerate(path.read_text("utf-8").splitlines(), 1)
                                                  if _SEG_UID.search(line)]
                 for path in sorted(PACKAGE.rglob("*.py")) if path != SOP_CLASS_HOME}
    offenders = {name: lines for name, lines in offenders.items() if lines}
    assert not offenders, f"SEG SOP Class UIDs spelled outside enums.SegSOPClass: {offenders}"
    assert _SEG_UID.search(SOP_CLASS_HOME.read_text("utf-8")), "the scan no longer finds the declaration"


def test_seg_sop_class_values_match_pydicom_and_names():
    # pydicom's UID dictionary is an independent spelling of PS3.6 / PS3.4 B.5 (older pydicom lacks 66.7)
    assert pydicom.uid.UID(SegSOPClass.SEGMENTATION.value).name == "Segmentation Storage"
    for member in SegSOPClass:
        known = pydicom.uid.UID(member.value).name
        assert known in (member.value, member.storage_name)
        assert isinstance(member, str) and str(member) == member.value and f"{member}" == member.value
    assert SEG_SOP_CLASS_UIDS == {m.value for m in SegSOPClass}
    assert SegSOPClass.for_type(SegmentationTypeValues.LABELMAP) is SegSOPClass.LABEL_MAP_SEGMENTATION
    assert SegSOPClass.for_type(SegmentationTypeValues.BINARY) is SegSOPClass.SEGMENTATION
    assert SegSOPClass.for_type(SegmentationTypeValues.FRACTIONAL) is SegSOPClass.SEGMENTATION


@pytest.mark.parametrize("uid, expected", [
    (pydicom.uid.UID("1.2.840.10008.5.1.4.1.1.66.4"), True),
    ("1.2.840.10008.5.1.4.1.1.66.7", True),
    ("1.2.840.10008.5.1.4.1.1.66.5", False),  # Surface Segmentation: not ours
    ("1.2.840.10008.5.1.4.1.1.2", False),  # CT Image Storage
    (None, False),
    ("", False),
])
def test_is_seg_sop_class_both_sides(uid, expected):
    assert is_seg_sop_class(uid) is expected


def test_modes_and_on_error_are_enums_accepting_their_strings():
    pytest.importorskip("monai")
    from monai_dicomseg.enums import LoadMode, OnError
    from monai_dicomseg.errors import InputError
    from monai_dicomseg.io.reader import DicomSegReader
    from monai_dicomseg.io.segload import DEFAULT_MODE, MODES
    from monai_dicomseg.transforms.load import ON_ERROR, LoadDicomSeg
    from monai_dicomseg.transforms.load_series import LoadDicomSeries

    assert MODES == ("stacked", "labelmap") and ON_ERROR == ("raise", "skip") and DEFAULT_MODE == "labelmap"
    loader = LoadDicomSeg(mode="stacked", on_error="skip")
    assert loader.mode is LoadMode.STACKED and loader.on_error is OnError.SKIP and loader.mode == "stacked"
    assert LoadDicomSeg(mode=LoadMode.LABELMAP).mode is LoadMode.LABELMAP
    assert DicomSegReader("labelmap").mode is LoadMode.LABELMAP
    assert LoadDicomSeries(on_error="skip").on_error is OnError.SKIP
    with pytest.raises(InputError, match="mode must be one of 'stacked', 'labelmap'; got 'Stacked'"):
        LoadDicomSeg(mode="Stacked")
    with pytest.raises(InputError, match="DicomSegReader: mode must be one of"):
        DicomSegReader("label_map")
    with pytest.raises(InputError, match="on_error must be one of 'raise', 'skip'; got 'ignore'"):
        LoadDicomSeg(on_error="ignore")
    with pytest.raises(InputError, match="on_error must be one of 'raise', 'skip'; got 'ignore'"):
        LoadDicomSeries(on_error="ignore")
