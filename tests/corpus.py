"""The generated SEG test corpus, and the one place that decides where test data comes from.

highdicom's own test files (``data/test_files`` upstream; ``../shared/data/highdicom``
next to our CI checkout) are an independent producer's output, but a fresh clone
does not have them. :class:`Corpus` writes files *with the same names* at test
time, produced by highdicom itself (a test dependency) from sources the tests
build (:mod:`corpus_sources`):

==============================================  =============================================
file                                            content
==============================================  =============================================
``ct_image.dcm``                                one CT slice (32 x 32)
``seg_image_ct_binary.dcm``                     BINARY, 1 segment, 4-slice CT with a gap after
                                                the first slice, which is empty (3 frames)
``seg_image_ct_binary_fractional.dcm``          the same mask stored as FRACTIONAL (0.0 / 1.0)
``seg_image_ct_true_fractional.dcm``            FRACTIONAL with values 0, 64/255, 128/255
``seg_image_ct_binary_overlap.dcm``             BINARY, 2 overlapping segments (8 frames)
``seg_image_ct_binary_single_frame.dcm``        BINARY of ``ct_image.dcm`` (1 frame)
``seg_image_cr_binary.dcm``                     BINARY of a CR image (no patient geometry)
``sm_image*.dcm``                               slide microscopy sources, 25 tiles of 10 x 10
``seg_image_sm_numbers.dcm``                    BINARY, 20 segments, one tile each (segment 2
                                                empty, 19 in two tiles), TILED_SPARSE, frame refs
``seg_image_sm_control.dcm``                    the same layout with other shapes
``seg_image_sm_dots.dcm``                       BINARY, 50 segments of 2 x 2 dots, some across
                                                tile borders, TILED_SPARSE
``seg_image_sm_dots_tiled_full.dcm``            the dots as TILED_FULL (1250 frames)
``seg_image_sm_control_labelmap.dcm``           LABELMAP of ``_control`` (20 labels)
``..._labelmap_palette_color.dcm``              the same with a PALETTE COLOR LUT
==============================================  =============================================

Where the data comes from is decided here only: the generated corpus is always
used; ``../shared/data/highdicom`` is an *extra* source when it exists and the
environment variable ``MDS_SHARED_DATA`` is not ``off`` (``MDS_SHARED_DATA=off``
simulates a fresh clone).
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any
from collections.abc import Callable

import numpy as np
import pydicom
from pydicom.sr.codedict import codes

import corpus_sources

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "highdicom"

SOURCE_NAMES = [
    "ct_image.dcm", "sm_image.dcm", "sm_image_control.dcm", "sm_image_dots.dcm",
    "sm_image_grayscale.dcm", "sm_image_jpegls.dcm", "sm_image_numbers.dcm",
]
SEG_NAMES = [
    "seg_image_cr_binary.dcm",
    "seg_image_ct_binary.dcm",
    "seg_image_ct_binary_fractional.dcm",
    "seg_image_ct_binary_overlap.dcm",
    "seg_image_ct_binary_single_frame.dcm",
    "seg_image_ct_true_fractional.dcm",
    "seg_image_sm_control.dcm",
    "seg_image_sm_control_labelmap.dcm",
    "seg_image_sm_control_labelmap_palette_color.dcm",
    "seg_image_sm_dots.dcm",
    "seg_image_sm_dots_tiled_full.dcm",
    "seg_image_sm_numbers.dcm",
]
TILED_SEG_NAMES = [name for name in SEG_NAMES if name.startswith("seg_image_sm_")]
NAMES = SOURCE_NAMES + SEG_NAMES


def shared_data_dir() -> Path | None:
    """``../shared/data/highdicom`` when present and not switched off (``MDS_SHARED_DATA=off``)."""
    if os.environ.get("MDS_SHARED_DATA", "").strip().lower() == "off":
        return None
    return SHARED_DATA if SHARED_DATA.is_dir() else None


def shared_spec_file(name: str) -> Path | None:
    """``../shared/spec/<name>`` (e.g. the SEG user guide) under the same rule as :func:`shared_data_dir`."""
    if os.environ.get("MDS_SHARED_DATA", "").strip().lower() == "off":
        return None
    path = REPO_ROOT.parent / "shared" / "spec" / name
    return path if path.is_file() else None


#: Data sources the file-parametrised tests run on: always "generated", plus "shared" when available.
DATA_SOURCES: list[str] = ["generated"] + (["shared"] if shared_data_dir() is not None else [])


# --------------------------------------------------------------------------- highdicom writers


def _highdicom() -> Any:
    import highdicom

    return highdicom


def _algorithm() -> Any:
    hd = _highdicom()
    return hd.AlgorithmIdentificationSequence(
        name="test", family=codes.DCM.ArtificialIntelligence, version="v1.0")


def _description(number: int, label: str, category: Any, kind: Any, *, automatic: bool = False,
                 tracking_id: str | None = None) -> Any:
    hd = _highdicom()
    kwargs: dict[str, Any] = {}
    if tracking_id is not None:
        kwargs = {"tracking_id": tracking_id, "tracking_uid": hd.UID()}
    return hd.seg.SegmentDescription(
        segment_number=number, segment_label=label, segmented_property_category=category,
        segmented_property_type=kind,
        algorithm_type=(hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC if automatic
                        else hd.seg.SegmentAlgorithmTypeValues.MANUAL),
        algorithm_identification=_algorithm() if automatic else None, **kwargs)


def _slide_descriptions(count: int) -> list[Any]:
    return [_description(i, f"Segment #{i}", codes.SCT.Tissue, codes.SCT.ConnectiveTissue)
            for i in range(1, count + 1)]


COMMON = dict(series_number=2, instance_number=1, manufacturer="Manufacturer",
              manufacturer_model_name="Model", software_versions="v1", device_serial_number="Device XYZ")


def _segmentation(sources: list[Any], pixels: np.ndarray, seg_type: str, descriptions: list[Any],
                  **kwargs: Any) -> pydicom.Dataset:
    hd = _highdicom()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hd.seg.Segmentation(
            source_images=sources, pixel_array=pixels, segmentation_type=seg_type,
            segment_descriptions=descriptions, series_instance_uid=hd.UID(), sop_instance_uid=hd.UID(),
            **{**COMMON, **kwargs})


def _ct_mask() -> np.ndarray:
    """``(4, 16, 16)`` mask: the first (isolated) slice empty, the others not."""
    mask = np.zeros(corpus_sources.CT_SHAPE, np.uint8)
    mask[1, 4:12, 3:13] = 1
    mask[2, 2:14, 2:14] = 1
    mask[3, 5:10, 6:15] = 1
    return mask


def _tile_masks(seed: int, n_segments: int = 20) -> np.ndarray:
    """``(25, 10, 10, n)`` per-tile masks: segment ``s`` fills one tile; 2 is empty, 19 has two tiles."""
    rng = np.random.default_rng(seed)
    tiles = rng.permutation(25)
    pixels = np.zeros((25, 10, 10, n_segments), np.uint8)
    owners = [s for s in range(1, n_segments + 1) if s != 2] + [19]
    for tile, segment in zip(tiles, owners):
        shape = np.zeros((10, 10), np.uint8)
        if seed % 2:  # "control": filled discs
            yy, xx = np.mgrid[0:10, 0:10]
            shape[(yy - 4.5) ** 2 + (xx - 4.5) ** 2 <= rng.integers(6, 20)] = 1
        else:  # "numbers": outlines of random boxes
            r0, c0 = rng.integers(0, 4, 2)
            r1, c1 = rng.integers(6, 10, 2)
            shape[r0:r1 + 1, c0:c1 + 1] = 1
            shape[r0 + 1:r1, c0 + 1:c1] = 0
        pixels[tile, :, :, segment - 1] = shape
    return pixels


def _dots() -> np.ndarray:
    """``(50, 50, 50)`` total-pixel-matrix masks of 50 non-overlapping 2 x 2 dots (some across tiles)."""
    rng = np.random.default_rng(11)
    cells = rng.permutation(100)[:50]
    masks = np.zeros((50, 50, 50), np.uint8)
    for segment, cell in enumerate(cells):
        row, column = divmod(int(cell), 10)
        dr, dc = rng.integers(0, 5, 2)  # an offset of 4 reaches into the next cell (and tile)
        region = (slice(row * 5 + dr, row * 5 + dr + 2), slice(column * 5 + dc, column * 5 + dc + 2))
        if masks[region].any():
            region = (slice(row * 5 + 1, row * 5 + 3), slice(column * 5 + 1, column * 5 + 3))
        masks[(*region, segment)] = 1
    return masks


def _to_tiles(matrix: np.ndarray) -> np.ndarray:
    """``(50, 50, ...)`` total pixel matrix -> ``(25, 10, 10, ...)`` tiles in TILED_FULL order."""
    rest = matrix.shape[2:]
    tiles = matrix.reshape(5, 10, 5, 10, *rest).swapaxes(1, 2)
    return tiles.reshape(25, 10, 10, *rest)


def _palette(count: int) -> Any:
    hd = _highdicom()
    rng = np.random.default_rng(5)
    colors = ["black"] + ["#" + "".join(f"{v:02x}" for v in rng.integers(0, 256, 3)) for _ in range(count)]
    return hd.PaletteColorLUTTransformation.from_colors(colors)


# --------------------------------------------------------------------------- the corpus


class Corpus:
    """Generated corpus in ``folder``; files are written on first request and then reused.

    Parameters
    ----------
    folder
        Destination folder (created if missing), e.g. a session ``tmp_path_factory`` folder.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._sources: dict[str, Any] = {}
        self._builders: dict[str, Callable[[], pydicom.Dataset]] = {
            "ct_image.dcm": lambda: self._source("ct_image"),
            "seg_image_ct_binary.dcm": lambda: self._ct_seg("BINARY", _ct_mask()),
            "seg_image_ct_binary_fractional.dcm": lambda: self._ct_seg(
                "FRACTIONAL", _ct_mask().astype(np.float32)),
            "seg_image_ct_true_fractional.dcm": self._true_fractional,
            "seg_image_ct_binary_overlap.dcm": self._overlap,
            "seg_image_ct_binary_single_frame.dcm": self._single_frame,
            "seg_image_cr_binary.dcm": self._cr,
            "seg_image_sm_numbers.dcm": lambda: self._tiles("sm_image_numbers.dcm", seed=2),
            "seg_image_sm_control.dcm": lambda: self._tiles("sm_image_control.dcm", seed=3),
            "seg_image_sm_control_labelmap.dcm": lambda: self._labelmap(palette=False),
            "seg_image_sm_control_labelmap_palette_color.dcm": lambda: self._labelmap(palette=True),
            "seg_image_sm_dots.dcm": lambda: self._dots("TILED_SPARSE"),
            "seg_image_sm_dots_tiled_full.dcm": lambda: self._dots("TILED_FULL"),
        }
        for name in SOURCE_NAMES:
            if name.startswith("sm_image"):
                self._builders[name] = lambda name=name: self._source("slides")[name]

    def path(self, name: str) -> Path:
        """Path of the generated file ``name`` (one of :data:`NAMES`), writing it if needed."""
        target = self.folder / name
        if not target.exists():
            if name not in self._builders:
                raise KeyError(f"no generated corpus file named {name!r}; expected one of {NAMES}")
            dataset = self._builders[name]()
            partial = target.with_suffix(f".{os.getpid()}.part")
            dataset.save_as(partial, enforce_file_format=True)
            partial.replace(target)
        return target

    __truediv__ = path

    # ---------------------------------------------------------------- sources

    def _source(self, key: str) -> Any:
        if key not in self._sources:
            self._sources[key] = {
                "ct_series": corpus_sources.ct_series_with_gap,
                "ct_image": corpus_sources.single_ct_slice,
                "cr_image": corpus_sources.cr_image,
                "slides": corpus_sources.slide_images,
            }[key]()
        return self._sources[key]

    def _slide(self, name: str) -> Any:
        """A slide source as read back from its file (highdicom wants the file's form)."""
        return _highdicom().imread(self.path(name))

    # ---------------------------------------------------------------- CT / CR

    def _ct_descriptions(self, count: int = 1) -> list[Any]:
        specs = [("first segment", codes.SCT.Bone), ("second segment", codes.SCT.Spine)][:count]
        return [_description(i, label, codes.SCT.Tissue, kind, automatic=True,
                             tracking_id="test segmentation of computed tomography image")
                for i, (label, kind) in enumerate(specs, start=1)]

    def _ct_seg(self, seg_type: str, pixels: np.ndarray, **kwargs: Any) -> pydicom.Dataset:
        return _segmentation(self._source("ct_series"), pixels, seg_type, self._ct_descriptions(),
                             transfer_syntax_uid=pydicom.uid.ImplicitVRLittleEndian, **kwargs)

    def _true_fractional(self) -> pydicom.Dataset:
        mask = _ct_mask().astype(np.float32)
        values = mask * np.float32(128 / 255)
        values[:, :8] *= 0.5  # 64 / 255 in the upper half
        return self._ct_seg("FRACTIONAL", values, max_fractional_value=255)

    def _overlap(self) -> pydicom.Dataset:
        pixels = np.zeros((*corpus_sources.CT_SHAPE, 2), np.uint8)
        pixels[:, 4:8, 4:8, 0] = 1
        pixels[:, 6:8, 6:8, 1] = 1  # inside segment 1
        return _segmentation(self._source("ct_series"), pixels, "BINARY", self._ct_descriptions(2),
                             transfer_syntax_uid=pydicom.uid.ImplicitVRLittleEndian)

    def _single_frame(self) -> pydicom.Dataset:
        source = pydicom.dcmread(self.path("ct_image.dcm"))
        mask = np.zeros((1, source.Rows, source.Columns), np.uint8)
        mask[0, 8:20, 10:24] = 1
        return _segmentation([source], mask, "BINARY", self._ct_descriptions(),
                             transfer_syntax_uid=pydicom.uid.ImplicitVRLittleEndian)

    def _cr(self) -> pydicom.Dataset:
        source = self._source("cr_image")
        mask = np.zeros((1, source.Rows, source.Columns), np.uint8)
        mask[0, 3:12, 5:14] = 1
        description = _description(1, "first segment", codes.SCT.Tissue, codes.SCT.ConnectiveTissue,
                                   automatic=True, tracking_id="test segmentation of radiograph")
        return _segmentation([source], mask, "BINARY", [description], content_label="CR_SEG")

    # ---------------------------------------------------------------- slide microscopy

    def _tiles(self, source_name: str, seed: int) -> pydicom.Dataset:
        pixels = _tile_masks(seed)
        return _segmentation([self._slide(source_name)], pixels, "BINARY", _slide_descriptions(20),
                             transfer_syntax_uid=pydicom.uid.ImplicitVRLittleEndian)

    def _labelmap(self, palette: bool) -> pydicom.Dataset:
        masks = _tile_masks(3)
        labels = np.zeros(masks.shape[:3], np.uint8)
        for segment in range(masks.shape[-1]):
            labels[masks[..., segment] > 0] = segment + 1
        kwargs: dict[str, Any] = {}
        if palette:
            kwargs["palette_color_lut_transformation"] = _palette(20)
        return _segmentation([self._slide("sm_image_control.dcm")], labels, "LABELMAP",
                             _slide_descriptions(20), **kwargs)

    def _dots(self, organization: str) -> pydicom.Dataset:
        tiles = _to_tiles(_dots())
        return _segmentation([self._slide("sm_image_dots.dcm")], tiles, "BINARY", _slide_descriptions(50),
                             dimension_organization_type=organization,
                             omit_empty_frames=organization == "TILED_SPARSE")


def dataset_bytes(dataset: pydicom.Dataset) -> bytes:
    """``dataset`` as DICOM Part 10 bytes."""
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
