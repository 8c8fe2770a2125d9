"""Issue 22: the package's vocabulary is declared once (SEG SOP classes, ...), and used everywhere else."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
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


@pytest.mark.parametrize("enum_name, values", [
    ("InputKind", ("auto", "labels", "onehot", "probabilities")),
    ("Interpolation", ("auto", "nearest", "linear")),
    ("Discretize", ("auto", "argmax", "threshold")),
])
def test_writer_choices_are_enums_accepting_their_strings_in_any_case(enum_name, values):
    import monai_dicomseg.enums as enums
    from monai_dicomseg.enums import to_enum
    from monai_dicomseg.errors import InputError

    enum_type = getattr(enums, enum_name)
    assert tuple(member.value for member in enum_type) == values
    for value in values:
        member = to_enum(enum_type, value, "choice")
        assert member == value and to_enum(enum_type, value.upper(), "choice") is member
        assert to_enum(enum_type, member, "choice") is member and f"{member}" == value
    with pytest.raises(InputError, match=r"choice must be one of 'auto', .*; got 'bicubic'"):
        to_enum(enum_type, "bicubic", "choice")


def test_prediction_choices_are_derived_and_auto_is_decided_once():
    from monai_dicomseg.enums import Discretize, InputKind, Interpolation
    from monai_dicomseg.errors import InputError
    from monai_dicomseg.io.prediction import (
        DISCRETIZE,
        INPUT_KINDS,
        INTERPOLATION,
        classify_input,
        resolve_discretize,
        resolve_interpolation,
    )
    from monai_dicomseg.io.segwrite import SEGMENTATION_TYPES

    assert INPUT_KINDS == tuple(InputKind) and INTERPOLATION == tuple(Interpolation)
    assert DISCRETIZE == tuple(Discretize)
    assert SEGMENTATION_TYPES == tuple(kind.value for kind in SegmentationTypeValues)
    # auto: nearest for one-hot, linear for probabilities; an explicit choice is kept (any case)
    assert resolve_interpolation("auto", "onehot") is Interpolation.NEAREST
    assert resolve_interpolation("AUTO", InputKind.PROBABILITIES) is Interpolation.LINEAR
    assert resolve_interpolation("Linear", InputKind.ONEHOT) is Interpolation.LINEAR
    assert resolve_discretize("auto", 0) is Discretize.ARGMAX
    assert resolve_discretize("auto", None) is Discretize.THRESHOLD
    assert resolve_discretize("threshold", 0) is Discretize.THRESHOLD
    with pytest.raises(InputError, match="interpolation must be one of 'auto', 'nearest', 'linear'; got 'cubic'"):
        resolve_interpolation("cubic", "onehot")
    with pytest.raises(InputError, match="discretize must be one of 'auto', 'argmax', 'threshold'; got 'max'"):
        resolve_discretize("max", None)
    # classify_input converts input_kind once and answers with members
    assert classify_input(np.zeros((1, 2, 2, 2), np.uint8)) is InputKind.LABELS
    assert classify_input(np.zeros((2, 2, 2, 2), np.uint8), "OneHot") is InputKind.ONEHOT
    assert classify_input(np.full((2, 2, 2, 2), 0.5, np.float32)) is InputKind.PROBABILITIES
    with pytest.raises(InputError, match="input_kind must be one of 'auto', 'labels', 'onehot', 'probabilities'"):
        classify_input(np.zeros((1, 2, 2, 2), np.uint8), "mask")


def test_series_options_are_derived_from_the_signature():
    pytest.importorskip("monai")
    import inspect

    from monai_dicomseg.transforms.load_series import SERIES_OPTIONS, LoadDicomSeries

    parameters = inspect.signature(LoadDicomSeries.__init__).parameters
    assert SERIES_OPTIONS == tuple(name for name, p in parameters.items()
                                   if p.default is not inspect.Parameter.empty)
    assert "irregular_slices" in SERIES_OPTIONS and "volume" in SERIES_OPTIONS


def test_segmentation_types_are_spelled_only_in_the_vocabulary():
    """SegmentationType values appear as string constants only where they are declared (enums.py), in the
    transfer-syntax table (stdlib-only by its own rule), and in seg/profiles.py's consumer tables (data keyed by
    type); everywhere else code compares with enums.BINARY / FRACTIONAL / LABELMAP or SegmentationTypeValues.
    Docstrings are prose and may name them."""
    import ast

    allowed = {"enums.py", "codec/transfer_syntax.py", "seg/profiles.py"}
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in allowed:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)
                      and isinstance(node.body[0].value, ast.Constant)}
        hits = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Constant)
                and node.value in ("BINARY", "FRACTIONAL", "LABELMAP") and id(node) not in docstrings]
        if hits:
            offenders[relative] = hits
    assert not offenders, f"SegmentationType spelled outside the vocabulary: {offenders}"
