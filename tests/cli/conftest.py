"""Fixtures of the command-line tests: synthetic series on disk with their truth on the sorted grid."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest

from monai_dicomseg import synthetic
from monai_dicomseg.io.source_series import load_source_geometry, monai_affine_from_lps, to_monai_array


@dataclass
class SeriesCase:
    """A series folder, its sorted datasets and the label map on the sorted ``(F, R, C)`` grid."""

    folder: Path
    datasets: list[pydicom.Dataset]
    truth: np.ndarray
    affine: np.ndarray  # (F, R, C) -> LPS

    def nifti(self, path: Path, layout: str = "itk") -> Path:
        """Write the truth as NIfTI: ITK order ``(C, R, S)`` or our ``(F, R, C)`` order."""
        if layout == "itk":
            image = nibabel.Nifti1Image(np.asfortranarray(to_monai_array(self.truth)),
                                        monai_affine_from_lps(self.affine, self.truth.shape[0]))
        else:
            ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ self.affine
            image = nibabel.Nifti1Image(self.truth, ras)
        nibabel.save(image, str(path))
        return path


def make_case(folder: Path, shape=(6, 32, 40), orientation="axial", reverse_order=False,
              n_labels=3, seed=0) -> SeriesCase:
    labels = synthetic.make_ellipsoid_labels(shape, n_labels=n_labels, seed=seed)
    series = synthetic.make_ct_series(shape, orientation=orientation, reverse_order=reverse_order,
                                      labels=labels, seed=seed)
    synthetic.write_series(series, folder)
    source = load_source_geometry(folder)
    generation = {str(ds.SOPInstanceUID): k for k, ds in enumerate(series)}
    order = [generation[str(ds.SOPInstanceUID)] for ds in source.datasets]
    datasets = [pydicom.dcmread(path) for path in source.filenames]
    return SeriesCase(folder, datasets, labels[order], source.geometry.affine)


@pytest.fixture
def axial_case(tmp_path: Path) -> SeriesCase:
    return make_case(tmp_path / "ct")


@pytest.fixture
def make_series(tmp_path: Path):
    """``make_series(name, **make_case options)`` -> SeriesCase in ``tmp_path/name``."""
    return lambda name, **options: make_case(tmp_path / name, **options)


@pytest.fixture
def cli(capsys):
    """Run ``main(argv)``; return ``(exit status, stdout, stderr)``."""
    from monai_dicomseg.cli.main import main

    def run(*argv: object) -> tuple[int, str, str]:
        status = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run
