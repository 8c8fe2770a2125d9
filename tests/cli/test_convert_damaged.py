"""``convert`` of a damaged SEG refuses instead of copying its malformed values (issue 22).

``convert`` rebuilds the source images from the input SEG's references (or
reads them from ``--source``) and copies attributes of the input (Referenced
Series Sequence, Series Description, ...) into its output. A UID that breaks
PS3.5 9.1 (a leading zero component, letters) used to be copied as it was, so
the output failed dciodvfy. Every value the writer writes, copied or not, now
goes through :mod:`monai_dicomseg.codec.vr`: the command exits non-zero with
one line naming the attribute and the value, and leaves no output file.

The damaged inputs are valid SEGs (ours, and highdicom-written ones of the
generated corpus) edited with pydicom.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any
from collections.abc import Callable

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

import monai_dicomseg as hd
from monai_dicomseg import synthetic
from oracles import build_segmentation

pytestmark = pytest.mark.filterwarnings("ignore:.*VR UI")  # pydicom warns about the planted UIDs when reading

SHAPE = (6, 32, 40)


@pytest.fixture(scope="module")
def ct_seg_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid BINARY SEG of a synthetic CT series; slice 0 holds no segment (referenced, no frame)."""
    labels = synthetic.make_ellipsoid_labels(SHAPE, n_labels=2, seed=0)
    labels[0] = 0
    series = synthetic.make_ct_series(SHAPE, labels=labels, seed=0)
    seg = build_segmentation(hd, series, labels, "BINARY", n_segments=2)
    path = tmp_path_factory.mktemp("damaged") / "ct_seg.dcm"
    seg.save_as(path)
    return path


def _replace_uid(dataset: Dataset, old: str, new: str) -> int:
    """Replace every UI value ``old`` by ``new`` (nested sequences too); return how many were replaced."""
    count = 0
    for element in dataset:
        if element.VR == "SQ":
            count += sum(_replace_uid(item, old, new) for item in element.value)
        elif element.VR == "UI" and str(element.value) == old:
            element.value = new
            count += 1
    return count


def _damage(source: Path, target: Path, edit: Callable[[Dataset], Any]) -> Path:
    dataset = pydicom.dcmread(source)
    edit(dataset)
    dataset.save_as(target)
    return target


def _first_unreferenced_instance(seg: Dataset) -> Dataset:
    """The ReferencedInstanceSequence item of an instance no frame is derived from (copied, never rebuilt)."""
    derived = {str(source.ReferencedSOPInstanceUID) for frame in seg.PerFrameFunctionalGroupsSequence
               for derivation in frame.get("DerivationImageSequence", [])
               for source in derivation.SourceImageSequence}
    items = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    return next(item for item in items if str(item.ReferencedSOPInstanceUID) not in derived)


def _everywhere(keyword: str, new: str) -> Callable[[Dataset], Any]:
    """Damage the UID of ``keyword`` (top level) wherever that UID appears in the SEG."""
    def edit(seg: Dataset) -> None:
        assert _replace_uid(seg, str(seg[keyword].value), new) >= 1
    return edit


def _derived_instance(new: str) -> Callable[[Dataset], Any]:
    """Damage the first referenced source instance that a frame is derived from, wherever it appears."""
    def edit(seg: Dataset) -> None:
        frame = seg.PerFrameFunctionalGroupsSequence[0]
        old = str(frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        assert _replace_uid(seg, old, new) >= 2  # per-frame and Referenced Series Sequence
    return edit


def _set_series(new: str) -> Callable[[Dataset], Any]:
    def edit(seg: Dataset) -> None:
        seg.ReferencedSeriesSequence[0].SeriesInstanceUID = new
    return edit


def _unreferenced(keyword: str, new: str) -> Callable[[Dataset], Any]:
    def edit(seg: Dataset) -> None:
        setattr(_first_unreferenced_instance(seg), keyword, new)
    return edit


# (case id, edit, what the one-line error must name, the planted value)
CT_CASES = [
    ("study-leading-zero", _everywhere("StudyInstanceUID", "1.2.03.4"), "StudyInstanceUID", "1.2.03.4"),
    ("frame-of-reference-letters", _everywhere("FrameOfReferenceUID", "1.2.abc"), "FrameOfReferenceUID", "1.2.abc"),
    ("derived-instance-letters", _derived_instance("1.2.840.x1"), "SOPInstanceUID", "1.2.840.x1"),
    ("referenced-series-leading-zero", _set_series("1.02.3"), "SeriesInstanceUID", "1.02.3"),
    ("unreferenced-instance-class-leading-zero",
     _unreferenced("ReferencedSOPClassUID", "1.2.840.10008.5.1.4.1.1.02"),
     "ReferencedSeriesSequence[0].ReferencedInstanceSequence", "1.2.840.10008.5.1.4.1.1.02"),
    ("unreferenced-instance-letters", _unreferenced("ReferencedSOPInstanceUID", "1.2.3.abc"),
     "ReferencedSOPInstanceUID", "1.2.3.abc"),
]


def _assert_refused(status: int, stdout: str, stderr: str, out: Path, names: str, value: str) -> None:
    assert status != 0, stdout
    lines = [line for line in (stdout + stderr).strip().splitlines() if line]
    assert len(lines) == 1, lines
    assert lines[0].startswith("monai-dicomseg convert: error:"), lines[0]
    assert names in lines[0] and f"got {value!r}" in lines[0], lines[0]
    assert "must be digits separated by dots" in lines[0] or "root arc" in lines[0], lines[0]
    assert not out.exists()
    assert not list(out.parent.glob(".*.part")) and not list(out.parent.glob("*.part"))


def test_undamaged_seg_converts(ct_seg_path: Path, cli: Any, tmp_path: Path) -> None:
    """The boundary: the same SEG, not edited, is converted."""
    out = tmp_path / "out.dcm"
    status, stdout, stderr = cli("convert", ct_seg_path, out, "--type", "LABELMAP")
    assert status == 0, stderr
    assert out.exists()


@pytest.mark.parametrize("target", ["BINARY", "LABELMAP"])
@pytest.mark.parametrize("edit, names, value", [case[1:] for case in CT_CASES], ids=[case[0] for case in CT_CASES])
def test_damaged_ct_seg_is_refused(ct_seg_path: Path, cli: Any, tmp_path: Path, edit: Callable[[Dataset], Any],
                                   names: str, value: str, target: str) -> None:
    damaged = _damage(ct_seg_path, tmp_path / "damaged.dcm", edit)
    out = tmp_path / "out" / "converted.dcm"
    out.parent.mkdir()
    status, stdout, stderr = cli("convert", damaged, out, "--type", target)
    _assert_refused(status, stdout, stderr, out, names, value)


def test_control_character_copied_from_the_input_is_refused(ct_seg_path: Path, cli: Any, tmp_path: Path) -> None:
    """Text copied from the input (Series Description) is checked too (LO: no control characters)."""
    damaged = _damage(ct_seg_path, tmp_path / "damaged.dcm",
                      lambda seg: setattr(seg, "SeriesDescription", "liver\x85spleen"))
    out = tmp_path / "out" / "converted.dcm"
    out.parent.mkdir()
    status, stdout, stderr = cli("convert", damaged, out, "--type", "BINARY")
    assert status != 0
    lines = [line for line in (stdout + stderr).strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("monai-dicomseg convert: error:"), lines
    assert "(SeriesDescription): must not contain control characters" in lines[0], lines
    assert not out.exists()


def test_clean_series_description_is_copied(ct_seg_path: Path, cli: Any, tmp_path: Path) -> None:
    damaged = _damage(ct_seg_path, tmp_path / "described.dcm",
                      lambda seg: setattr(seg, "SeriesDescription", "liver\xa0spleen"))
    out = tmp_path / "converted.dcm"
    status, _, stderr = cli("convert", damaged, out, "--type", "BINARY")
    assert status == 0, stderr
    assert pydicom.dcmread(out).SeriesDescription == "liver\xa0spleen"


# --------------------------------------------------------------------------- highdicom-written SEGs (corpus)


def _referenced_instance(new: str) -> Callable[[Dataset], Any]:
    """Damage the (first) source instance the SEG references, wherever it appears."""
    def edit(seg: Dataset) -> None:
        old = str(seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID)
        assert _replace_uid(seg, old, new) >= 1
    return edit


@pytest.mark.parametrize("name, edit, names, value", [
    ("seg_image_cr_binary.dcm", _referenced_instance("1.2.0004.5"), "SOPInstanceUID", "1.2.0004.5"),
    ("seg_image_cr_binary.dcm", _everywhere("StudyInstanceUID", "1.2.840.abc"), "StudyInstanceUID", "1.2.840.abc"),
    ("seg_image_sm_dots.dcm", _referenced_instance("1.2.0004.5"), "SOPInstanceUID", "1.2.0004.5"),
    ("seg_image_sm_dots.dcm", _everywhere("FrameOfReferenceUID", "1.2.03"), "FrameOfReferenceUID", "1.2.03"),
], ids=["cr-instance", "cr-study", "slide-instance", "slide-frame-of-reference"])
def test_damaged_corpus_seg_is_refused(generated_corpus: Any, cli: Any, tmp_path: Path, name: str,
                                       edit: Callable[[Dataset], Any], names: str, value: str) -> None:
    damaged = _damage(generated_corpus.path(name), tmp_path / "damaged.dcm", edit)
    out = tmp_path / "out" / "converted.dcm"
    out.parent.mkdir()
    status, stdout, stderr = cli("convert", damaged, out, "--type", "LABELMAP")
    _assert_refused(status, stdout, stderr, out, names, value)


@pytest.mark.parametrize("name", ["seg_image_cr_binary.dcm", "seg_image_sm_dots.dcm"])
def test_undamaged_corpus_seg_converts(generated_corpus: Any, cli: Any, tmp_path: Path, name: str) -> None:
    out = tmp_path / "converted.dcm"
    status, _, stderr = cli("convert", generated_corpus.path(name), out, "--type", "LABELMAP")
    assert status == 0, stderr
    assert out.exists() and np.asarray(pydicom.dcmread(out).pixel_array).any()
