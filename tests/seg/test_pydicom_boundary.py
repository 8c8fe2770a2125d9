"""Issue 22: public pydicom API only at the pydicom boundary (no ``_dict``, no ``__class__`` swap, no ``locals()``)."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import monai_dicomseg.seg.segmentation as segmentation_module
from monai_dicomseg.seg.encode import ENCODE_OPTION_NAMES

PACKAGE = Path(__file__).resolve().parents[2] / "monai_dicomseg"
CLEANED = ["seg/segmentation.py", "io/segload.py", "io/segments.py"]


@pytest.mark.parametrize("name", CLEANED)
def test_no_private_pydicom_attribute_class_swap_or_locals(name):
    tree = ast.parse((PACKAGE / name).read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "_dict":
            found.append(f"line {node.lineno}: ._dict")
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr == "__class__"
                                                for t in node.targets):
            found.append(f"line {node.lineno}: __class__ assignment")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "locals":
            found.append(f"line {node.lineno}: locals()")
    assert not found, f"{name}: {found}"


def test_segmentation_forwards_every_option_by_name(monkeypatch):
    """Each Segmentation parameter that is an option reaches EncodeOptions unchanged (no default swallows it)."""
    captured = {}

    def fake_encode(dataset, *, source_images, pixel_array, segment_descriptions, options):
        captured["options"] = options

    monkeypatch.setattr(segmentation_module, "encode_segmentation", fake_encode)
    values = {name: object() for name in ENCODE_OPTION_NAMES}  # a distinct sentinel per option
    segmentation_module.Segmentation(source_images=[], pixel_array=None, segment_descriptions=[], **values)
    options = captured["options"]
    assert {name: getattr(options, name) for name in ENCODE_OPTION_NAMES} == values
    parameters = set(inspect.signature(segmentation_module.Segmentation.__init__).parameters)
    assert set(ENCODE_OPTION_NAMES) <= parameters


def test_header_segment_table_keeps_the_dataset_class():
    import pydicom

    from monai_dicomseg.io.segments import header_segment_table, segment_table
    from monai_dicomseg.seg.segmentation import segread

    path = Path(__file__).resolve().parents[2] / "data" / "ct1" / "seg_binary.dcm"
    header = pydicom.dcmread(path, stop_before_pixels=True)
    table = header_segment_table(header)
    assert type(header) is pydicom.dataset.FileDataset  # not turned into a Segmentation
    assert table == segment_table(segread(path)) and len(table) >= 1
