"""Build hostile SEG files at test time from valid ones written by our writer (and highdicom).

Nothing here is read from disk: every file starts as a valid SEG written from
the small synthetic CT series of :mod:`monai_dicomseg.synthetic`, then is
changed byte-wise or attribute-wise. The byte helpers understand only what our
writer (and highdicom) produce at the top level of a data set: explicit VR
little endian elements with defined lengths after the File Meta Information
(PS3.5 7.1.2, PS3.10 7.1).
"""
from __future__ import annotations

import copy
import functools
import io
import struct
from typing import Any
from collections.abc import Callable

import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset

__all__ = [
    "SHAPE",
    "source_series",
    "valid_seg",
    "valid_seg_bytes",
    "valid_tiled_seg_bytes",
    "to_bytes",
    "mutated",
    "set_raw_value",
    "top_level_elements",
    "replace_top_level_value",
    "insert_top_level",
    "nested_sequence",
    "empty_items_sequence",
]

SHAPE = (6, 32, 40)
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_UNDEFINED = 0xFFFFFFFF


@functools.lru_cache(maxsize=1)
def source_series() -> tuple[np.ndarray, tuple[Dataset, ...]]:
    """``(6, 32, 40) uint8`` labels 0..3 and the matching single-frame CT series."""
    from monai_dicomseg import synthetic

    labels = synthetic.make_ellipsoid_labels(SHAPE, n_labels=3, seed=0)
    return labels, tuple(synthetic.make_ct_series(SHAPE, labels=labels, seed=0))


def _descriptions(module: Any, n: int) -> list[Any]:
    from pydicom.sr.codedict import codes

    return [
        module.seg.SegmentDescription(
            segment_number=k,
            segment_label=f"organ {k}",
            segmented_property_category=codes.SCT.Organ,
            segmented_property_type=codes.SCT.Liver,
            algorithm_type=module.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for k in range(1, n + 1)
    ]


@functools.cache
def valid_seg_bytes(
    segmentation_type: str = "BINARY", producer: str = "ours", transfer_syntax: str | None = None
) -> bytes:
    """A valid SEG of the synthetic series, as Part 10 bytes.

    Parameters
    ----------
    segmentation_type
        ``"BINARY"``, ``"FRACTIONAL"`` or ``"LABELMAP"``.
    producer
        ``"ours"`` (monai_dicomseg) or ``"highdicom"``.
    transfer_syntax
        Transfer Syntax UID (default: explicit VR little endian).
    """
    if producer == "ours":
        import monai_dicomseg as module
    else:
        import highdicom as module  # type: ignore[no-redef]
    labels, sources = source_series()
    n = int(labels.max())
    if segmentation_type == "FRACTIONAL":
        array = (labels[..., None] == np.arange(1, n + 1)).astype(np.float32) * 0.5
    else:
        array = labels
    kwargs: dict[str, Any] = {}
    if transfer_syntax is not None:
        kwargs["transfer_syntax_uid"] = transfer_syntax
    seg = module.seg.Segmentation(
        source_images=list(sources),
        pixel_array=array,
        segmentation_type=segmentation_type,
        segment_descriptions=_descriptions(module, n),
        series_instance_uid=module.UID(),
        series_number=1,
        sop_instance_uid=module.UID(),
        instance_number=1,
        manufacturer="Manufacturer",
        manufacturer_model_name="Model",
        software_versions="1",
        device_serial_number="1",
        **kwargs,
    )
    return to_bytes(seg)


def valid_seg(segmentation_type: str = "BINARY", producer: str = "ours", transfer_syntax: str | None = None) -> Dataset:
    """A fresh, fully parsed copy of :func:`valid_seg_bytes` as a ``pydicom.Dataset``."""
    ds = pydicom.dcmread(io.BytesIO(valid_seg_bytes(segmentation_type, producer, transfer_syntax)))
    for _ in ds.iterall():  # parse every deferred sequence now
        pass
    return ds


def to_bytes(ds: Dataset) -> bytes:
    """Part 10 bytes of ``ds`` (written as stored, without validation)."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True) if hasattr(ds, "file_meta") else ds.save_as(buffer)
    return buffer.getvalue()


def mutated(change: Callable[[Dataset], None], segmentation_type: str = "BINARY", producer: str = "ours") -> bytes:
    """Bytes of a valid SEG after ``change(dataset)``."""
    ds = copy.deepcopy(valid_seg(segmentation_type, producer))
    change(ds)
    return to_bytes(ds)


def set_raw_value(dataset: Dataset, keyword: str, value: str) -> None:
    """Store ``value`` for ``keyword`` as is, bypassing pydicom's value validation.

    Used for text VRs (IS, DS, UI, ...) whose hostile values ("inf", "1e400")
    pydicom refuses to assign.
    """
    if keyword not in dataset:
        dataset.add_new(keyword, dictionary_VR(keyword), None)
    dataset[keyword]._value = value


def top_level_elements(raw: bytes) -> list[tuple[int, int, int, int]]:
    """``(tag, element_start, value_start, value_end)`` of each top-level data set element.

    Only explicit VR little endian with defined lengths (what our writer
    produces) is understood; the walk stops at the first element it cannot
    follow.
    """
    assert raw[128:132] == b"DICM"
    pos = 132
    out = []
    while pos + 8 <= len(raw):
        group, element = struct.unpack_from("<HH", raw, pos)
        vr = raw[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            length = struct.unpack_from("<I", raw, pos + 8)[0]
            value_start = pos + 12
        else:
            length = struct.unpack_from("<H", raw, pos + 6)[0]
            value_start = pos + 8
        if length == _UNDEFINED or value_start + length > len(raw):
            break
        out.append(((group << 16) | element, pos, value_start, value_start + length))
        pos = value_start + length
    return out


def _element(tag: int, vr: bytes, value: bytes, *, undefined: bool = False) -> bytes:
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr
    length = _UNDEFINED if undefined else len(value)
    if vr in _LONG_VRS:
        return head + b"\x00\x00" + struct.pack("<I", length) + value
    return head + struct.pack("<H", length) + value


def replace_top_level_value(raw: bytes, keyword: str, value: bytes, vr: bytes | None = None) -> bytes:
    """Replace the value (and length) of a top-level element, e.g. ``Rows`` with 3 bytes."""
    tag = tag_for_keyword(keyword)
    for found, start, _value_start, end in top_level_elements(raw):
        if found == tag:
            element_vr = vr or raw[start + 4 : start + 6]
            return raw[:start] + _element(tag, element_vr, value) + raw[end:]
    raise KeyError(keyword)


def insert_top_level(raw: bytes, tag: int, element: bytes) -> bytes:
    """Insert encoded ``element`` (with tag ``tag``) in ascending tag order at the top level."""
    for found, start, _, _ in top_level_elements(raw):
        if found > (0x0002FFFF) and found >= tag:
            return raw[:start] + element + raw[start:]
    return raw + element


_ITEM = struct.pack("<HHI", 0xFFFE, 0xE000, _UNDEFINED)
_ITEM_END = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
_SEQ_END = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def nested_sequence(keyword: str, depth: int) -> tuple[int, bytes]:
    """``(tag, bytes)`` of a sequence whose single items nest ``depth`` levels (undefined lengths)."""
    tag = tag_for_keyword(keyword)
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + b"SQ\x00\x00" + struct.pack("<I", _UNDEFINED)
    return tag, (head + _ITEM) * depth + head + _SEQ_END + (_ITEM_END + _SEQ_END) * depth


def empty_items_sequence(keyword: str, count: int) -> tuple[int, bytes]:
    """``(tag, bytes)`` of a sequence of ``count`` empty items (defined length)."""
    tag = tag_for_keyword(keyword)
    value = struct.pack("<HHI", 0xFFFE, 0xE000, 0) * count
    return tag, _element(tag, b"SQ", value)


@functools.cache
def valid_tiled_seg_bytes(
    segmentation_type: str = "BINARY", organization: str = "TILED_SPARSE", producer: str = "ours"
) -> bytes:
    """A valid tiled SEG (``tile_pixel_array=True``) of a synthetic 50 x 50 slide with 10 x 10 tiles."""
    from monai_dicomseg import synthetic

    if producer == "ours":
        import monai_dicomseg as module
    else:
        import highdicom as module  # type: ignore[no-redef]
    source = synthetic.make_slide_image((50, 50), (10, 10))
    labels = np.zeros((1, 50, 50), np.uint8)
    labels[0, 5:25, 5:30] = 1
    labels[0, 30:45, 20:48] = 2
    seg = module.seg.Segmentation(
        source_images=[source],
        pixel_array=labels,
        segmentation_type=segmentation_type,
        segment_descriptions=_descriptions(module, 2),
        series_instance_uid=module.UID(),
        series_number=1,
        sop_instance_uid=module.UID(),
        instance_number=1,
        manufacturer="Manufacturer",
        manufacturer_model_name="Model",
        software_versions="1",
        device_serial_number="1",
        tile_pixel_array=True,
        omit_empty_frames=organization == "TILED_SPARSE",
        dimension_organization_type=organization,
    )
    return to_bytes(seg)
