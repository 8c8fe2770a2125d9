"""Big inputs without big memory (issue 15): tiled writing from on-disk matrices, tile-only region reads."""
from __future__ import annotations

import io

import numpy as np
import pytest

import monai_dicomseg
from monai_dicomseg import synthetic
from monai_dicomseg.errors import InputError, InputTypeError
from monai_dicomseg.seg.tiling import TileView, cut_tiles
from oracles import deterministic_bytes

TOTAL = (50, 70)
TILE = (16, 16)


class SliceOnly:
    """A minimal array-like (shape, dtype, slicing) that records what is read."""

    def __init__(self, array: np.ndarray) -> None:
        self._array = array
        self.shape = array.shape
        self.dtype = array.dtype
        self.largest = 0

    def __getitem__(self, key):
        value = np.array(self._array[key])
        self.largest = max(self.largest, value.size)
        return value


@pytest.fixture(scope="module")
def slide():
    return synthetic.make_slide_image(TOTAL, TILE, seed=3)


def descriptions(count: int):
    category = monai_dicomseg.sr.CodedConcept("91723000", "SCT", "Anatomical Structure")
    kind = monai_dicomseg.sr.CodedConcept("84640000", "SCT", "Nucleus")
    return [monai_dicomseg.seg.SegmentDescription(
        segment_number=n, segment_label=f"Segment {n}", segmented_property_category=category,
        segmented_property_type=kind, algorithm_type="MANUAL") for n in range(1, count + 1)]


def write(slide, matrix, segmentation_type, count=3, **options) -> bytes:
    seg = monai_dicomseg.seg.Segmentation(
        source_images=[slide], pixel_array=matrix, segmentation_type=segmentation_type,
        segment_descriptions=descriptions(count), series_instance_uid="1.2.3.4", series_number=1,
        sop_instance_uid="1.2.3.5", instance_number=1, manufacturer="x", manufacturer_model_name="x",
        software_versions="1", device_serial_number="1", tile_pixel_array=True, **options)
    return deterministic_bytes(seg)


def labels() -> np.ndarray:
    matrix = np.zeros(TOTAL, dtype=np.uint8)
    matrix[5:20, 3:30] = 1
    matrix[30:50, 40:70] = 2  # touches the padded bottom/right tiles
    matrix[22:26, 60:66] = 3
    return matrix


def test_tile_view_equals_cut_tiles():
    matrix = labels()
    tiles, positions = cut_tiles(matrix, *TILE)
    view = TileView(SliceOnly(matrix), *TILE)
    assert view.shape == tiles.shape
    np.testing.assert_array_equal(view[:], tiles)
    np.testing.assert_array_equal(view[-1], tiles[-1])
    np.testing.assert_array_equal(view.positions, positions)
    stacked = np.stack([matrix == n for n in (1, 2, 3)], axis=-1)
    np.testing.assert_array_equal(TileView(stacked, *TILE)[2:5], cut_tiles(stacked, *TILE)[0][2:5])


@pytest.mark.parametrize("bad,error,match", [
    (lambda view: view[100], IndexError, "out of range"),
    (lambda view: view[[0, 1]], InputTypeError, "integer and slice"),
    (lambda view: TileView(labels(), 0, 4), InputError, "positive"),
], ids=["index", "fancy", "size"])
def test_tile_view_bad_access(bad, error, match):
    with pytest.raises(error, match=match):
        bad(TileView(labels(), *TILE))


@pytest.mark.parametrize("segmentation_type,options", [
    ("LABELMAP", {}), ("LABELMAP", {"transfer_syntax_uid": "1.2.840.10008.1.2.5"}),
    ("LABELMAP", {"dimension_organization_type": "TILED_FULL", "omit_empty_frames": False}), ("BINARY", {}),
], ids=["labelmap", "labelmap-rle", "labelmap-tiled-full", "binary"])
@pytest.mark.parametrize("form", ["memmap", "array-like", "array-like-1RC"])
def test_tiled_from_disk_equals_in_memory(tmp_path, slide, segmentation_type, options, form):
    matrix = labels()
    expected = write(slide, matrix, segmentation_type, **options)
    if form == "memmap":
        mapped = np.memmap(tmp_path / "m.dat", dtype=np.uint8, mode="w+", shape=TOTAL)
        mapped[:] = matrix
        given = mapped
    elif form == "array-like":
        given = SliceOnly(matrix)
    else:
        given = SliceOnly(matrix[None])
    assert write(slide, given, segmentation_type, **options) == expected
    if form == "array-like":  # read a tile (or a slab of tiles) at a time, never the whole matrix
        assert given.largest <= TILE[0] * TILE[1]


def test_tiled_stacked_array_like_equals_in_memory(slide):
    stacked = np.stack([labels() == n for n in (1, 2, 3)], axis=-1).astype(np.uint8)
    assert write(slide, SliceOnly(stacked[None]), "BINARY") == write(slide, stacked[None], "BINARY")


def test_tiled_array_like_values_checked(slide):
    with pytest.raises(InputError, match="label value 3"):
        write(slide, SliceOnly(labels()), "LABELMAP", count=2)


def test_region_read_decodes_only_touched_tiles(monkeypatch, slide):
    from monai_dicomseg.codec import tiled_region

    seg = monai_dicomseg.seg.segread(io.BytesIO(write(slide, labels(), "LABELMAP")))
    decoded: list[int] = []
    original = tiled_region.decode_frames

    def counting(dataset, indices, layout=None):
        decoded.extend(int(i) for i in indices)
        return original(dataset, indices, layout)

    monkeypatch.setattr(tiled_region, "decode_frames", counting)
    region = seg.get_total_pixel_matrix(row_start=1, row_end=17, column_start=17, column_end=33,
                                        combine_segments=True)
    np.testing.assert_array_equal(region, labels()[0:16, 16:32])
    assert len(decoded) == 1  # the single 16 x 16 tile at (1, 17)
    decoded.clear()
    seg.get_total_pixel_matrix(row_start=10, row_end=20, column_start=10, column_end=20)
    assert len(decoded) <= 4 < int(seg.NumberOfFrames)
