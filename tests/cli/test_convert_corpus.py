"""``convert`` over every SEG of the test corpus and every source geometry: valid files or a typed refusal.

Issue 17: ``convert`` of valid oblique SEGs used to write ImageOrientationPatient
values longer than DS allows. Every SEG that ``convert`` writes here must pass
``dciodvfy -allpffgitems`` with no ``Error -`` line; a SEG it cannot convert
(slide SEGs need their multi-frame source, overlapping segments have no label
map, FRACTIONAL needs ``--threshold``) must be refused with a one-line error
and leave no file behind.
"""
from __future__ import annotations

import pytest

from corpus import SEG_NAMES
from monai_dicomseg import synthetic
from oracles import dciodvfy_errors

pytestmark = pytest.mark.dciodvfy


def _convert(cli, seg, out, target, extra=()):
    status, stdout, stderr = cli("convert", seg, out, "--type", target, *extra)
    return status, stdout + stderr


@pytest.mark.parametrize("target", ["BINARY", "LABELMAP"])
@pytest.mark.parametrize("name", SEG_NAMES)
def test_convert_corpus_file(generated_corpus, cli, tmp_path, name, target):
    extra = ("--threshold", "0.5") if "fractional" in name else ()
    out = tmp_path / "converted.dcm"
    status, output = _convert(cli, generated_corpus.path(name), out, target, extra)
    if status != 0:
        # A typed refusal: one clear line, no file, no partial temporaries.
        assert output.strip().startswith("monai-dicomseg") or "error" in output.lower(), output
        assert "Traceback" not in output
        assert not out.exists()
        assert not list(tmp_path.glob(".*.part"))
        return
    assert out.exists()
    assert dciodvfy_errors(out) == []


@pytest.mark.parametrize("orientation", ["axial", "coronal", "sagittal", "oblique"])
@pytest.mark.parametrize("target", ["BINARY", "LABELMAP"])
def test_convert_every_geometry(cli, tmp_path, orientation, target):
    labels = synthetic.make_ellipsoid_labels((5, 24, 28), n_labels=3, seed=1)
    series = synthetic.make_ct_series((5, 24, 28), orientation=orientation, labels=labels, seed=1)
    folder = tmp_path / "ct"
    synthetic.write_series(series, folder)
    seg = tmp_path / "seg.dcm"
    source = "LABELMAP" if target == "BINARY" else "BINARY"
    status, _, stderr = cli("from-nifti", _nifti(series, labels, tmp_path), folder, seg,
                            "--labels", "liver,spleen,kidney", "--type", source)
    assert status == 0, stderr
    out = tmp_path / "converted.dcm"
    status, output = _convert(cli, seg, out, target)
    assert status == 0, output
    assert dciodvfy_errors(out) == []


def _nifti(series, labels, folder):
    import nibabel
    import numpy as np

    from monai_dicomseg.io.series import load_source_geometry, monai_affine_from_lps, to_monai_array

    ct = folder / "ct"
    source = load_source_geometry(ct)
    generation = {str(ds.SOPInstanceUID): k for k, ds in enumerate(series)}
    order = [generation[str(ds.SOPInstanceUID)] for ds in source.datasets]
    truth = labels[order]
    image = nibabel.Nifti1Image(np.asfortranarray(to_monai_array(truth)),
                                monai_affine_from_lps(source.geometry.affine, truth.shape[0]))
    path = folder / "labels.nii.gz"
    nibabel.save(image, str(path))
    return path
