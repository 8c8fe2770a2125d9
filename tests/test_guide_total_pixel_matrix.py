"""The SEG user guide's "Reconstructing Total Pixel Matrices from Tiled
Segmentations" examples, verbatim except ``import monai_dicomseg as hd`` and the
``data/test_files/`` path, which points at ``../shared/data/highdicom``.
"""
from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "highdicom"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="shared/data/highdicom not found")


def test_full_total_pixel_matrix() -> None:
    import monai_dicomseg as hd

    # Read in the segmentation using highdicom
    seg = hd.seg.segread(str(DATA / 'seg_image_sm_control.dcm'))

    # Get the full total pixel matrix
    mask = seg.get_total_pixel_matrix()

    expected_shape = (
        seg.TotalPixelMatrixRows,
        seg.TotalPixelMatrixColumns,
        seg.number_of_segments,
    )
    assert mask.shape == expected_shape

    # Combine the segments into a single array
    mask = seg.get_total_pixel_matrix(combine_segments=True)

    assert mask.shape == (seg.TotalPixelMatrixRows, seg.TotalPixelMatrixColumns)


def test_region_of_total_pixel_matrix() -> None:
    import monai_dicomseg as hd

    # Read in the segmentation using highdicom
    seg = hd.seg.segread(str(DATA / 'seg_image_sm_control.dcm'))

    # Get a region of the total pixel matrix
    mask = seg.get_total_pixel_matrix(
        combine_segments=True,
        row_start=20,
        row_end=40,
        column_start=10,
        column_end=20,
    )

    assert mask.shape == (20, 10)

    # A further example using negative indices. Since row_end is not provided,
    # the default behavior is to include the last row in the total pixel matrix.
    mask = seg.get_total_pixel_matrix(
        combine_segments=True,
        row_start=21,
        column_start=-30,
        column_end=-25,
    )

    assert mask.shape == (30, 5)
