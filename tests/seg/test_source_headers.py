"""Source headers read from files (pydicom's raw, not yet converted elements) are read without pydicom's value
conversion (issue 15: a 1,000-slice series); the result must equal the converted reading byte for byte, and a
disagreement or a malformed value must still be reported as before."""
from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from oracles import build_segmentation, deterministic_bytes

import monai_dicomseg
from monai_dicomseg import synthetic
from monai_dicomseg.errors import GeometryError, InputError

SHAPE = (5, 16, 12)


def from_files(series, tmp_path, edit=None):
    """The series as pydicom reads it from disk: header elements stay raw until accessed."""
    paths = []
    for index, dataset in enumerate(series):
        if edit is not None:
            edit(index, dataset)
        path = tmp_path / f"{index}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return [pydicom.dcmread(path, stop_before_pixels=True) for path in paths]


@pytest.mark.parametrize("segmentation_type", ["BINARY", "LABELMAP"])
def test_raw_headers_give_the_bytes_of_converted_headers(tmp_path, segmentation_type):
    series = synthetic.make_ct_series(SHAPE, seed=2)
    labels = np.random.default_rng(0).integers(0, 3, SHAPE).astype(np.uint8)
    raw = from_files(series, tmp_path)
    (tmp_path / "c").mkdir()
    converted = from_files(series, tmp_path / "c")
    for dataset in converted:  # touch every element: pydicom converts and caches the values
        for _ in dataset:
            pass
    made = [deterministic_bytes(build_segmentation(monai_dicomseg, sources, labels, segmentation_type, 2,
                                                   series_instance_uid="1.2.3.4", sop_instance_uid="1.2.3.5"))
            for sources in (raw, converted, series)]
    assert made[0] == made[1] == made[2]
    seg = pydicom.dcmread(io.BytesIO(made[0]))
    assert [str(item.ReferencedSOPInstanceUID) for item in seg.SourceImageSequence] == \
        [str(ds.SOPInstanceUID) for ds in series]


def test_raw_headers_that_disagree_are_reported(tmp_path):
    series = synthetic.make_ct_series(SHAPE, seed=2)

    def other_rows(index, dataset):
        if index == 3:
            dataset.Rows = 17

    with pytest.raises(InputError, match=r"share Rows: source_images\[0\] has 16, source_images\[3\] has 17"):
        build_segmentation(monai_dicomseg, from_files(series, tmp_path, other_rows),
                           np.zeros(SHAPE, np.uint8), "BINARY", 1)


def test_raw_position_with_a_wrong_count_is_reported(tmp_path):
    series = synthetic.make_ct_series(SHAPE, seed=2)

    def two_values(index, dataset):
        if index == 2:
            dataset.ImagePositionPatient = [1.0, 2.0]

    with pytest.raises(GeometryError, match=r"ImagePositionPatient must have 3 values; got 2"):
        build_segmentation(monai_dicomseg, from_files(series, tmp_path, two_values),
                           np.zeros(SHAPE, np.uint8), "BINARY", 1)
