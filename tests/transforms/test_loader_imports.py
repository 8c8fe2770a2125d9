"""A loader built in the main process imports the whole SEG read path, so DataLoader workers forked from it
(new ones every epoch unless ``persistent_workers``) do not each import it on their first item: ~0.4 s per
worker and epoch, which made a training epoch ~20 % slower than with ``.nii.gz`` labels (issue 25)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from monai_cases import make_case

REPO = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import json, sys
    from monai_dicomseg import LoadDicomSeriesd, LoadDicomSegd
    from monai_dicomseg.io.reader import DicomSegReader
    series, seg, which = sys.argv[1:]
    image = LoadDicomSeriesd("image")({"image": series})
    if which == "transform":
        loader = LoadDicomSegd("label", ref_key="image")
        load = lambda: loader({"image": image["image"], "label": seg})
    elif which == "reader":
        reader = DicomSegReader()
        load = lambda: reader.get_data(reader.read(seg))
    else:  # the control: nothing built before the first read
        from monai_dicomseg.io.segload import load_seg_array
        load = lambda: load_seg_array(seg)
    before = set(sys.modules)
    load()
    print(json.dumps(sorted(name for name in set(sys.modules) - before
                            if name.startswith(("monai_dicomseg", "pydicom")))))
""")


def _new_modules(case, which: str) -> list:
    done = subprocess.run([sys.executable, "-c", CHILD, str(case.series_folder), str(case.seg_path), which],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return make_case(tmp_path_factory.mktemp("imports"))


@pytest.mark.parametrize("which", ["transform", "reader"])
def test_the_first_read_after_building_a_loader_imports_nothing(case, which):
    assert _new_modules(case, which) == []


def test_control_a_first_read_without_a_loader_imports_the_read_path(case):
    """Without the loader's import the first read imports dozens of modules (what a fresh worker paid)."""
    new = _new_modules(case, "function")
    assert "monai_dicomseg.seg.reader" in new and len(new) > 10, new
