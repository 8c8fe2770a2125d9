"""Atomic writes: normal permissions under the umask, stale temporaries cleaned up."""
from __future__ import annotations

import os
import stat
import time

import pytest

from monai_dicomseg import atomic
from monai_dicomseg.atomic import atomic_write, current_umask, file_mode, remove_stale_temporaries

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")


@pytest.fixture
def umask():
    """Set the process umask for one test, restored afterwards."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_file_has_umask_permissions(tmp_path, umask, mask, expected):
    umask(mask)
    assert current_umask() == mask and file_mode() == expected
    for overwrite in (True, False):
        path = atomic_write(tmp_path / f"out{overwrite}.dcm", lambda stream: stream.write(b"x"), overwrite=overwrite)
        assert stat.S_IMODE(path.stat().st_mode) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outFalse.dcm", "outTrue.dcm"]


def test_seg_nifti_and_sidecar_permissions(tmp_path, umask):
    """Every file type written by the package: SEG (writer), NIfTI and JSON (CLI)."""
    import nibabel
    import numpy as np

    from monai_dicomseg.cli._common import save_json, save_nifti

    umask(0o022)
    image = nibabel.Nifti1Image(np.arange(8, dtype=np.uint8).reshape(2, 2, 2), np.eye(4))
    save_nifti(image, tmp_path / "a.nii.gz", overwrite=False)
    save_nifti(image, tmp_path / "b.nii", overwrite=False)
    save_json({"a": 1}, tmp_path / "a.json", overwrite=False)
    for name in ("a.nii.gz", "b.nii", "a.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    for name in ("a.nii.gz", "b.nii"):
        np.testing.assert_array_equal(np.asarray(nibabel.load(tmp_path / name).dataobj), image.get_fdata())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.nii.gz", "b.nii"]


def test_seg_file_permissions(tmp_path, umask):
    from monai_dicomseg import synthetic
    from monai_dicomseg.io.source_series import load_source_series
    from monai_dicomseg.seg.segmentation import Segmentation
    from monai_dicomseg.uid import UID

    umask(0o022)
    labels = synthetic.make_ellipsoid_labels((3, 8, 8), n_labels=1, seed=1)
    datasets = synthetic.make_ct_series((3, 8, 8), labels=labels, seed=1)
    source = load_source_series(datasets)
    from monai_dicomseg.anatomy import segment_descriptions_from_names
    from monai_dicomseg.seg.content import AlgorithmIdentificationSequence
    from monai_dicomseg.sr.coding import CodedConcept

    algorithm = AlgorithmIdentificationSequence(name="t", family=CodedConcept("123110", "DCM", "AI"), version="1")
    seg = Segmentation(source_images=source.datasets, pixel_array=labels, segmentation_type="BINARY",
                       segment_descriptions=segment_descriptions_from_names(["liver"], algorithm),
                       series_instance_uid=UID(), series_number=1, sop_instance_uid=UID(), instance_number=1,
                       manufacturer="m", manufacturer_model_name="m", software_versions="1",
                       device_serial_number="0")
    seg.save_as(tmp_path / "seg.dcm")
    assert stat.S_IMODE((tmp_path / "seg.dcm").stat().st_mode) == 0o644


def _age(path, seconds):
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_stale_temporaries_are_removed_by_the_next_write(tmp_path):
    stale = tmp_path / ".seg.dcm.abc123_z.part"
    fresh = tmp_path / ".seg.dcm.zzzzzzzz.part"
    not_ours = [tmp_path / ".seg.dcm.ABCDEFGH.part", tmp_path / "seg.dcm.abc123_z.part",
                tmp_path / ".seg.dcm.abc.part", tmp_path / "notes.txt"]
    for path in (stale, fresh, *not_ours):
        path.write_bytes(b"partial")
        _age(path, 2 * atomic.STALE_AFTER_S)
    _age(fresh, 10)
    atomic_write(tmp_path / "out.dcm", lambda stream: stream.write(b"x"))
    assert not stale.exists()
    assert fresh.exists() and all(path.exists() for path in not_ours)


def test_remove_stale_temporaries_age_and_folders(tmp_path):
    (tmp_path / "sub").mkdir()
    inner = tmp_path / "sub" / ".x.dcm.aaaaaaaa.part"
    inner.write_bytes(b"")
    folder_named_like_temp = tmp_path / ".y.dcm.bbbbbbbb.part"
    folder_named_like_temp.mkdir()
    mine = tmp_path / ".z.nii.gz.cccccccc.part"
    mine.write_bytes(b"")
    now = time.time() + 2 * atomic.STALE_AFTER_S
    assert remove_stale_temporaries(tmp_path, now=now) == [mine]
    assert inner.exists() and folder_named_like_temp.is_dir()
    assert remove_stale_temporaries(tmp_path / "missing", now=now) == []


def test_temporary_name_matches_the_cleanup_pattern(tmp_path):
    seen = []

    def write(stream):
        seen.extend(p.name for p in tmp_path.iterdir())
        stream.write(b"x")

    atomic_write(tmp_path / "a.b.dcm", write)
    assert atomic.TEMPORARY_PATTERN.match(seen[0]) and seen[0].startswith(".a.b.dcm.")


def test_failed_write_leaves_nothing(tmp_path):
    def write(stream):
        stream.write(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "out.dcm", write)
    assert list(tmp_path.iterdir()) == []
