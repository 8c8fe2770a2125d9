"""The example dataset in ``data/``: present, small, readable, and reproduced by its generator.

``data/make_data.py`` is re-run into a temporary folder; every committed file
must have the same pixel data and key attributes (and the generator must be
deterministic: two runs give byte-identical files).
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA = REPO_ROOT / "data"

SEG_KINDS = ("binary", "fractional", "labelmap")
EXPECTED = {
    "ct1": {"slices": 16, "rows": 64, "columns": 64, "segments": ["liver", "spleen", "left kidney"]},
    "ct2": {"slices": 12, "rows": 48, "columns": 56, "segments": ["liver", "spleen"]},
}
KEY_ATTRIBUTES = (
    "SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID",
    "Rows", "Columns", "NumberOfFrames", "BitsAllocated", "SegmentationType",
    "ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing", "InstanceNumber",
    "ContentDate", "ContentTime",
)


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_data", DATA / "make_data.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules.setdefault("make_data", module)  # dataclasses look their module up
    spec.loader.exec_module(sys.modules["make_data"])
    module = sys.modules["make_data"]
    return module


def _data_files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*")
                  if p.is_file() and p.parent.name != "__pycache__"
                  and p.suffix in (".dcm", ".gz", ".json"))


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data")
    _load_generator().main(["make_data.py", str(out)])
    return out


def test_layout_and_size():
    assert (DATA / "README.md").is_file()
    for case, expected in EXPECTED.items():
        series = sorted((DATA / case / "series").glob("*.dcm"))
        assert len(series) == expected["slices"], case
        for kind in SEG_KINDS:
            assert (DATA / case / f"seg_{kind}.dcm").is_file()
    assert (DATA / "ct1" / "labels.nii.gz").is_file()
    assert (DATA / "ct1" / "labels.json").is_file()
    total = sum((DATA / p).stat().st_size for p in _data_files(DATA))
    assert total < 3_000_000, f"data/ is {total:,} bytes; keep it under 3 MB"


def test_readme_names_every_file():
    text = (DATA / "README.md").read_text()
    for case in EXPECTED:
        for kind in SEG_KINDS:
            assert f"seg_{kind}.dcm" in text
        assert f"{case}/series" in text
    assert "labels.nii.gz" in text and "labels.json" in text and "make_data.py" in text


def test_generator_reproduces_committed_files(regenerated: Path):
    assert _data_files(regenerated) == _data_files(DATA)
    for relative in _data_files(DATA):
        committed, fresh = DATA / relative, regenerated / relative
        if relative.suffix == ".dcm":
            a, b = pydicom.dcmread(committed), pydicom.dcmread(fresh)
            for keyword in KEY_ATTRIBUTES:
                assert a.get(keyword) == b.get(keyword), f"{relative}: {keyword}"
            assert a.PixelData == b.PixelData, f"{relative}: PixelData"
            if "SegmentSequence" in a:
                assert [s.SegmentLabel for s in a.SegmentSequence] == [
                    s.SegmentLabel for s in b.SegmentSequence], relative
        elif relative.suffix == ".gz":
            a, b = nibabel.load(committed), nibabel.load(fresh)
            np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
            np.testing.assert_allclose(a.affine, b.affine)
        else:
            assert json.loads(committed.read_text()) == json.loads(fresh.read_text()), relative


def test_generator_is_byte_deterministic(regenerated: Path, tmp_path: Path):
    _load_generator().main(["make_data.py", str(tmp_path)])
    for relative in _data_files(regenerated):
        assert (tmp_path / relative).read_bytes() == (regenerated / relative).read_bytes(), relative


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_segs_read_back_on_their_series(case: str):
    """Each SEG references its own series and decodes to the same label map."""
    import monai_dicomseg as hd

    expected = EXPECTED[case]
    series = [pydicom.dcmread(p) for p in sorted((DATA / case / "series").glob("*.dcm"))]
    uids = [ds.SOPInstanceUID for ds in series]
    label_maps = []
    for kind in SEG_KINDS:
        seg = hd.seg.segread(DATA / case / f"seg_{kind}.dcm")
        assert [d.SegmentLabel for d in seg.SegmentSequence] == expected["segments"]
        pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids)
        assert pixels.shape == (expected["slices"], expected["rows"], expected["columns"],
                                len(expected["segments"]))
        if kind == "fractional":
            pixels = pixels >= 0.5  # 1.0 inside the organ, 0.4 on the rim
        label_maps.append((pixels * np.arange(1, pixels.shape[-1] + 1)).max(axis=-1))
    for other in label_maps[1:]:
        np.testing.assert_array_equal(other, label_maps[0])
    assert set(np.unique(label_maps[0])) == set(range(len(expected["segments"]) + 1))


def test_nifti_matches_labelmap_seg():
    import monai_dicomseg as hd

    seg = hd.seg.segread(DATA / "ct1" / "seg_labelmap.dcm")
    series = [pydicom.dcmread(p) for p in sorted((DATA / "ct1" / "series").glob("*.dcm"))]
    labels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[ds.SOPInstanceUID for ds in series], combine_segments=True)
    nifti = np.asarray(nibabel.load(DATA / "ct1" / "labels.nii.gz").dataobj)
    # NIfTI is (x=column, y=row, z=slice); the series is (slice, row, column)
    np.testing.assert_array_equal(np.transpose(nifti, (2, 1, 0)), labels)
