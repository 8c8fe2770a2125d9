"""Shared fixtures: source images, reference data folders, hypothesis profiles.

Helpers that are plain functions (validators, converters, the module under
test) live in :mod:`oracles` (``tests/oracles.py``, importable from every test
module because ``tests`` is on pytest's ``pythonpath``).

Set ``MDS_TEST_BACKEND=highdicom`` to run the SEG tests against highdicom
instead of ``monai_dicomseg`` (see :func:`oracles.backend`).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, settings

from monai_dicomseg import synthetic
from corpus import DATA_SOURCES, Corpus, shared_data_dir
from oracles import missing_requirement, BACKEND_NAME, backend

REPO_ROOT = Path(__file__).resolve().parents[1]

settings.register_profile(
    "dev", max_examples=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile(
    "ci", max_examples=25, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile(  # the long fuzz run by hand (tests/fuzz): HYPOTHESIS_PROFILE=fuzz
    "fuzz", max_examples=300, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_report_header(config: pytest.Config) -> str:
    return f"monai_dicomseg SEG backend under test: {BACKEND_NAME}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (skipped without one; -m gpu runs only these)")


# --------------------------------------------------------------------------- backend


@pytest.fixture(scope="session")
def hd():
    """The SEG implementation under test, used as ``hd`` in the guide's examples."""
    return backend()


# --------------------------------------------------------------------------- data folders


@pytest.fixture(scope="session")
def generated_corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """highdicom-written equivalents of highdicom's test files, generated once per session
    (per xdist worker) into a temporary folder; see :mod:`corpus`."""
    return Corpus(tmp_path_factory.mktemp("highdicom_corpus"))


@pytest.fixture(scope="session", params=DATA_SOURCES)
def highdicom_data_dir(request: pytest.FixtureRequest, generated_corpus: Corpus) -> Corpus | Path:
    """Where highdicom's test files come from: ``data_dir / name`` is a file path.

    Parametrised over :data:`corpus.DATA_SOURCES`: always the generated corpus
    ("generated"), plus ``../shared/data/highdicom`` ("shared") when present and
    ``MDS_SHARED_DATA`` is not ``off``.
    """
    if request.param == "shared":
        folder = shared_data_dir()
        assert folder is not None
        return folder
    return generated_corpus


def _testdata_file(name: str) -> str:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:
        missing_requirement(f"pydicom test file {name!r} not available (pip install pydicom-data)", "pydicom-data")
    return str(path)


# --------------------------------------------------------------------------- sources


SMALL_SHAPE = (6, 32, 40)


@pytest.fixture(scope="session")
def synthetic_labels() -> np.ndarray:
    """``(6, 32, 40) uint8`` label map with 3 ellipsoid organs (labels 1..3)."""
    return synthetic.make_ellipsoid_labels(SMALL_SHAPE, n_labels=3, seed=0)


@pytest.fixture(scope="session")
def synthetic_ct(synthetic_labels: np.ndarray) -> list[pydicom.Dataset]:
    """Small single-frame CT series (6 slices of 32 x 40), in spatial order.

    Session-scoped: tests must not modify the datasets (copy them first).
    """
    return synthetic.make_ct_series(SMALL_SHAPE, labels=synthetic_labels, seed=0)


@pytest.fixture
def synthetic_ct_folder(synthetic_ct: list[pydicom.Dataset], tmp_path: Path) -> list[Path]:
    """The synthetic CT series written to ``tmp_path/ct`` as ``0001.dcm ...``."""
    return synthetic.write_series(synthetic_ct, tmp_path / "ct")


@pytest.fixture(scope="session")
def synthetic_enhanced_ct(synthetic_labels: np.ndarray) -> pydicom.Dataset:
    """One multi-frame Enhanced CT dataset (6 frames of 32 x 40)."""
    return synthetic.make_enhanced_ct(SMALL_SHAPE, labels=synthetic_labels, seed=0)


@pytest.fixture(scope="session")
def ct_small() -> pydicom.Dataset:
    """pydicom's ``CT_small.dcm`` (one 128 x 128 CT slice)."""
    return pydicom.dcmread(_testdata_file("CT_small.dcm"))


@pytest.fixture(scope="session")
def ct2_series() -> list[pydicom.Dataset]:
    """pydicom's ``dicomdirtests/77654033/CT2/*`` series sorted along the slice normal."""
    from pydicom.data import get_testdata_files

    paths = get_testdata_files("dicomdirtests/77654033/CT2/*")
    if not paths:
        missing_requirement("pydicom test series dicomdirtests/77654033/CT2 not available", "pydicom-data")
    datasets = [pydicom.dcmread(path) for path in paths]
    return sort_by_slice_position(datasets)


@pytest.fixture(scope="session")
def ect_supplemental() -> pydicom.Dataset:
    """pydicom-data's ``eCT_Supplemental.dcm`` (Enhanced CT, 2 frames of 512 x 512)."""
    return pydicom.dcmread(_testdata_file("eCT_Supplemental.dcm"))


def sort_by_slice_position(datasets: list[pydicom.Dataset]) -> list[pydicom.Dataset]:
    """Sort single-frame datasets by their position along the slice normal."""
    cosines = np.asarray(datasets[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(cosines[:3], cosines[3:])
    return sorted(datasets,
                  key=lambda ds: float(np.asarray(ds.ImagePositionPatient, dtype=float) @ normal))


@pytest.fixture
def seg_path(tmp_path: Path) -> Iterator[Path]:
    """A path for a SEG file in the test's temporary folder."""
    yield tmp_path / "seg.dcm"


# --------------------------------------------------------------------------- `monai` marker
# Tests that need torch + MONAI carry the ``monai`` marker, so that the light
# install (no torch/MONAI, see ``make test-light``) runs the rest with
# ``-m "not monai"``. Marked automatically: every test under tests/io,
# tests/transforms and tests/data, and every module whose source imports torch
# or MONAI, or uses the MONAI layer of monai_dicomseg. Without torch/MONAI those
# modules are not even collected (their imports would fail) and any other
# ``monai`` test is skipped with the install command.

import re as _re  # noqa: E402  (kept with the hook it serves)

_MONAI_TEST_DIRS = ("io", "transforms", "data")
_MONAI_SOURCE = _re.compile(
    r"^\s*(?:import|from)\s+(?:torch|monai)\b"                      # import torch / from monai...
    r"|^\s*(?:import|from)\s+monai_dicomseg\.(?:transforms|data|io\.(?:reader|writer))\b"
    r"|\b(?:LoadDicomSegd?|SaveDicomSegd?|DicomSegReader|DicomSegWriter|LoadDicomSeriesd?"
    r"|DicomSegDataset|create_datalist|collate_skip_none|load_transforms|segments_from_meta)\("
    r"|monai\.bundle|end_to_end\.py",                                  # subprocesses that need MONAI
    _re.MULTILINE,
)
_MONAI_FILE_CACHE: dict[Path, bool] = {}


def _needs_monai(path: Path) -> bool:
    """Whether the test module at ``path`` needs torch/MONAI (folder rule or source scan)."""
    path = Path(path)
    if path not in _MONAI_FILE_CACHE:
        tests = Path(__file__).resolve().parent
        try:
            relative = path.resolve().relative_to(tests).parts
        except ValueError:
            relative = ()
        in_folder = len(relative) > 1 and relative[0] in _MONAI_TEST_DIRS
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            text = ""
        _MONAI_FILE_CACHE[path] = in_folder or bool(_MONAI_SOURCE.search(text))
    return _MONAI_FILE_CACHE[path]


def _monai_installed() -> bool:
    from monai_dicomseg.io import missing_monai_packages

    return not missing_monai_packages()


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Without torch/MONAI, do not import test modules that need them."""
    if collection_path.suffix == ".py" and collection_path.name.startswith("test_") \
            and not _monai_installed() and _needs_monai(collection_path):
        return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    installed = _monai_installed()
    for item in items:
        if _needs_monai(item.path) and item.get_closest_marker("monai") is None:
            item.add_marker(pytest.mark.monai)
        if not installed and item.get_closest_marker("monai") is not None:
            item.add_marker(pytest.mark.skip(
                reason='needs torch + MONAI: pip install "monai_dicomseg[monai]"'))
