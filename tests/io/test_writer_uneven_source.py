"""Writing on a source whose spacing is uneven but not whole missing slices: the error says what helps (issue 24)."""
from __future__ import annotations

import numpy as np
import pytest

from monai_dicomseg import segment_descriptions_from_names, synthetic
from monai_dicomseg.errors import GeometryError
from monai_dicomseg.io.source_series import load_source_geometry
from monai_dicomseg.seg.segmentation import Segmentation
from monai_dicomseg.uid import UID

SHAPE = (8, 20, 24)


def _series(folder, move: float, drop: bool = False):
    """A regular series with slice 4 moved by ``move`` mm along the normal (uneven when not a whole slice), or
    without slice 4 (``drop``: a gap of one whole slice)."""
    labels = synthetic.make_ellipsoid_labels(SHAPE, n_labels=2, seed=3)
    datasets = synthetic.make_ct_series(shape=SHAPE, spacing=(2.5, 0.8, 0.7), labels=labels, seed=3)
    position = np.asarray(datasets[4].ImagePositionPatient, float)
    datasets[4].ImagePositionPatient = [f"{v:.6f}" for v in position + [0.0, 0.0, move]]
    synthetic.write_series([ds for k, ds in enumerate(datasets) if not (drop and k == 4)], folder)
    return datasets


def _save(folder, tmp_path):
    from monai_dicomseg import SaveDicomSegd
    from monai_dicomseg.transforms.load_series import LoadDicomSeriesd

    image = LoadDicomSeriesd("image", irregular_slices="resample")({"image": str(folder)})["image"]
    label = (image > image.mean()).to(dtype=image.dtype)
    return SaveDicomSegd("label", ref_key="image", output_dir=tmp_path / "out", labels=["a"])(
        {"image": image, "label": label})


def test_uneven_source_error_says_what_helps(tmp_path):
    _series(tmp_path / "series", move=0.9)
    with pytest.raises(GeometryError, match=r"irregularly spaced.*a SEG is written on the source slices, at their "
                       r"own positions.*irregular_slices='resample' changes only the grid an image is loaded on: "
                       r"it does not help here.*Segmentation\(source_images="):
        _save(tmp_path / "series", tmp_path)


def test_what_the_error_suggests_writes(tmp_path):
    """The suggested way out: labels already on the source slices, one frame each, sorted along the normal."""
    import highdicom as hd

    _series(tmp_path / "series", move=0.9)
    series = load_source_geometry(str(tmp_path / "series"), irregular_slices="resample")
    labels = np.zeros((len(series.planes), *SHAPE[1:]), dtype=np.uint8)
    labels[:, 5:9, 6:12] = 1
    seg = Segmentation(source_images=[p for p in series.planes], pixel_array=labels, segmentation_type="BINARY",
                       segment_descriptions=segment_descriptions_from_names(["liver"]),
                       series_instance_uid=UID(), series_number=3, sop_instance_uid=UID(), instance_number=1,
                       manufacturer="t", manufacturer_model_name="t", software_versions="1",
                       device_serial_number="1")
    path = tmp_path / "seg.dcm"
    seg.save_as(path)
    read = hd.seg.segread(path)
    uids = [str(p.SOPInstanceUID) for p in series.planes]
    pixels = read.get_pixels_by_source_instance(uids, combine_segments=True)
    np.testing.assert_array_equal(pixels, labels)


def test_whole_missing_slices_still_write(tmp_path):
    """Boundary: a gap of whole slices is written on the filled grid (no error)."""
    _series(tmp_path / "series", move=0.0, drop=True)
    out = _save(tmp_path / "series", tmp_path)
    assert out["label"].meta["saved_to"]
