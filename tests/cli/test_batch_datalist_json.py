"""``batch to-nifti DATALIST.json OUTPUT_DIR`` and the batch input readers of cli/batch_inputs.py (issue 27).

The datalist is written by ``create_datalist`` over a copy of the committed
``data/`` folder; the truth of each output is the single-file ``to-nifti`` with
``--source`` = the item's image.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel
import numpy as np
import pytest
from archive_cases import copy_data_cases

from monai_dicomseg.cli.batch_inputs import (
    BatchItem,
    read_datalist,
    read_uri_list,
    uri_key,
)
from monai_dicomseg.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
SEGS = ("seg_binary.dcm", "seg_labelmap.dcm")
URI = "dicomweb+http://pacs/dicom-web/studies/1.2/series/1.3"


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    return copy_data_cases(tmp_path / "data", SEGS)


def _datalist(root: Path, relative: bool) -> list[dict]:
    from monai_dicomseg.data.datalist import create_datalist

    items = create_datalist(root)
    if relative:  # MONAI's convention: paths relative to the JSON file's folder
        for item in items:
            item["label"] = os.path.relpath(item["label"], root)
            item["image"] = os.path.relpath(item["image"], root)
    return items


def _read(path: Path) -> np.ndarray:
    return np.asarray(nibabel.load(str(path)).dataobj)


@pytest.mark.parametrize("relative", [False, True])
def test_to_nifti_from_a_datalist_on_each_image_grid(cli, tmp_path, data_copy, relative):
    path = data_copy / "datalist.json"
    path.write_text(json.dumps({"training": _datalist(data_copy, relative)}))
    out, manifest = tmp_path / "out", tmp_path / "m.jsonl"
    status, stdout, stderr = cli("batch", "to-nifti", path, out, "--manifest", manifest, "--no-sidecar")
    assert status == 0, stderr
    assert "4 done, 0 skipped" in stdout
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.nii.gz")) == \
        sorted(f"{case}/{name.replace('.dcm', '.nii.gz')}" for case in ("ct1", "ct2") for name in SEGS)
    for case in ("ct1", "ct2"):
        for name in SEGS:
            truth = tmp_path / "truth.nii.gz"
            assert cli("to-nifti", data_copy / case / name, truth, "--source", data_copy / case / "series",
                       "--no-sidecar", "--overwrite")[0] == 0
            written = _read(out / case / name.replace(".dcm", ".nii.gz"))
            np.testing.assert_array_equal(written, _read(truth))
    assert _read(out / "ct1" / "seg_labelmap.nii.gz").shape[2] == 16  # the image's grid, not the SEG's 9 frames
    status, stdout, _ = cli("batch", "to-nifti", path, out, "--manifest", manifest, "--no-sidecar")
    assert status == 0 and "0 done, 4 skipped" in stdout


def test_datalist_sharded_covers_everything(cli, tmp_path, data_copy):
    path = tmp_path / "lists" / "datalist.json"  # not above the SEGs: keys are their absolute paths without '/'
    path.parent.mkdir()
    path.write_text(json.dumps(_datalist(data_copy, False)))
    out, manifest = tmp_path / "out", tmp_path / "m.jsonl"
    for index in range(3):
        status, _, stderr = cli("batch", "to-nifti", path, out, "--shard", f"{index}/3", "--manifest", manifest)
        assert status == 0, stderr
    done = sorted(json.loads(line)["input"] for line in manifest.read_text().splitlines()
                  if json.loads(line)["status"] == "done")
    assert done == sorted(str(data_copy / case / name).lstrip("/") for case in ("ct1", "ct2") for name in SEGS)
    assert len(list(out.rglob("*.nii.gz"))) == 4


def test_datalist_item_problems(cli, tmp_path, data_copy):
    items = _datalist(data_copy, False)
    path = tmp_path / "d.json"
    path.write_text(json.dumps([items[0], {"image": items[1]["image"]}]))
    status, _, stderr = cli("batch", "to-nifti", path, tmp_path / "out")
    assert status == 1 and "item [1] has no 'label' string" in stderr
    path.write_text(json.dumps([{"image": URI, "label": URI}]))
    status, _, stderr = cli("batch", "to-nifti", path, tmp_path / "out")
    assert status == 1 and "is a DICOMweb URI: use batch pull" in stderr
    path.write_text(json.dumps([{**items[0], "volume": '{"StackID": "2"}'}, items[1]]))
    status, stdout, stderr = cli("batch", "to-nifti", path, tmp_path / "out")
    # the item's volume is passed on (issue 24): a selector naming no volume of the series fails that item only
    assert status == 1 and "1 done" in stdout and "volume={'StackID': '2'} matches none" in stderr
    status, _, stderr = cli("batch", "to-nifti", path, tmp_path / "out2", "--source-root", data_copy)
    assert status == 1 and "--source-root is for a folder input" in stderr


def test_read_datalist_refuses(tmp_path):
    path = tmp_path / "d.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match="is not readable JSON"):
        read_datalist(path)
    path.write_text('"text"')
    with pytest.raises(InputError, match="must hold a JSON list of items or an object of lists; got str"):
        read_datalist(path)
    path.write_text("[]")
    with pytest.raises(InputError, match="holds no item"):
        read_datalist(path)
    path.write_text(json.dumps([{"label": "a/seg.dcm", "image": "a/ct"}, {"label": "a/seg.dcm", "image": "b/ct"}]))
    with pytest.raises(InputError, match="two inputs have the same key 'a/seg.dcm'"):
        read_datalist(path)
    path.write_text(json.dumps([{"label": "seg.dcm"}]))
    with pytest.raises(InputError, match="a local path: use batch to-nifti"):
        read_datalist(path, remote=True)


def test_read_datalist_keys_and_repeats(tmp_path):
    path = tmp_path / "d.json"
    entry = {"seg": "a/seg.dcm", "ct": ["a/ct/1.dcm", "a/ct/2.dcm"]}
    path.write_text(json.dumps({"training": [entry], "validation": [entry, {"seg": URI, "ct": URI}], "n": 3}))
    items = read_datalist(path, image_key="ct", label_key="seg")
    assert items == [BatchItem("1.2/1.3", URI, URI),
                     BatchItem("a/seg.dcm", str(tmp_path / "a/seg.dcm"),
                               (str(tmp_path / "a/ct/1.dcm"), str(tmp_path / "a/ct/2.dcm")))]


def test_read_uri_list(tmp_path):
    path = tmp_path / "uris.txt"
    path.write_text(f"# comment\n\n  {URI}/instances/1.4  \n{URI}\n{URI}\n")
    assert [item.key for item in read_uri_list(path)] == ["1.2/1.3", "1.2/1.3/1.4"]
    with pytest.raises(InputError, match="does not exist"):
        read_uri_list(tmp_path / "missing.txt")
    assert uri_key(URI.replace("pacs", "other")) == "1.2/1.3"
