"""Runtime checks are exceptions, never ``assert`` (asserts vanish under ``python -O``)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from monai_dicomseg.errors import EncodeError, InputError

ROOT = Path(__file__).resolve().parents[1] / "monai_dicomseg"


@pytest.mark.parametrize("path", sorted(ROOT.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_assert_statements_in_the_package(path):
    lines = [node.lineno for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Assert)]
    assert not lines, f"{path.relative_to(ROOT)}: assert at lines {lines}; raise an error from monai_dicomseg.errors"


def test_compression_worker_without_frame_source_raises():
    from monai_dicomseg.codec import compression

    with pytest.raises(EncodeError, match="without a frame source"):
        compression._encode_range((0, 1), "1.2.840.10008.1.2.5", 8)


def test_dicomweb_reference_without_server_raises():
    from monai_dicomseg.dicomweb import retrieve
    from monai_dicomseg.dicomweb.reference import DicomWebSeries

    ref = DicomWebSeries(url="https://pacs.invalid/dicom-web", study_uid="1.2", series_uid="1.2.3")
    if ref.server is None:
        with pytest.raises(InputError, match="has no server; pass server="):
            retrieve._server(ref)
