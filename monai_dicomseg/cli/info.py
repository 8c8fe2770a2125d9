"""Describe a DICOM SEG: type, SOP class, frames, geometry and its segments.

Prints a summary and a table with one row per segment (number, label,
property category/type, algorithm, colour, frame count); ``--json`` prints
the same as a JSON object. Pixel data is not decoded.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from monai_dicomseg.cli._common import read_seg, strict_keywords
from monai_dicomseg.enums import SegSOPClass
from monai_dicomseg.enums import LABELMAP as _LABELMAP

__all__ = ["add_arguments", "add_options", "run", "describe_seg", "format_description"]

_SOP_CLASSES = {sop_class.value: sop_class.storage_name for sop_class in SegSOPClass}


def add_options(parser: argparse.ArgumentParser, batch: bool = False) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of text")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("seg", metavar="SEG", help="DICOM Segmentation file")
    add_options(parser)


def run(args: argparse.Namespace) -> int:
    description = describe_seg(args.seg)
    print(json.dumps(description, indent=2) if args.json else format_description(description))
    return 0


def _geometry(seg: Any, index: Any) -> dict[str, Any] | None:
    """Plane count, spacing, orientation and origin of the SEG's frames (None if not a volume)."""
    import numpy as np

    from monai_dicomseg.seg.stacking import volume_positions

    if index.image_positions is None or index.image_orientation is None or index.pixel_spacing is None:
        return None
    result: dict[str, Any] = {
        "rows": int(seg.Rows), "columns": int(seg.Columns),
        "pixel_spacing": [float(v) for v in index.pixel_spacing],
        "orientation": [round(float(v), 6) for v in index.image_orientation],
    }
    try:
        spacing, positions = volume_positions(index.image_positions, index.image_orientation,
                                              spacing_hint=index.spacing_between_slices)
    except Exception:  # noqa: BLE001 - irregular frames: report what is known
        result["planes"] = int(len(np.unique(np.round(index.image_positions, 3), axis=0)))
        return result
    first = index.image_positions[int(np.flatnonzero(positions == 0)[0])]
    result["planes"] = int(positions.max()) + 1
    result["slice_spacing"] = float(spacing)
    result["origin"] = [round(float(v), 4) for v in first]
    return result


def _type_text(description: Any) -> str:
    """Segmented property type meaning, with its modifier (e.g. laterality) in parentheses."""
    text = str(description.segmented_property_type.meaning)
    modifiers = description.SegmentedPropertyTypeCodeSequence[0].get("SegmentedPropertyTypeModifierCodeSequence")
    if modifiers:
        text += f" ({', '.join(str(m.get('CodeMeaning', '')) for m in modifiers)})"
    return text


@strict_keywords
def describe_seg(path: str) -> dict[str, Any]:
    """Summary of a SEG file as a JSON-serialisable dict (no pixel decoded).

    The SEG is read as the loaders read it
    (:func:`monai_dicomseg.io.segload.read_segmentation`, so the same bad
    file gives the same error class), and each segment's number, label,
    category and colour are those of
    :func:`monai_dicomseg.io.segments.segment_table` (the loaders'
    ``meta["segments"]``).
    """
    import numpy as np

    from monai_dicomseg.io.segments import segment_table

    seg = read_seg(path)
    index = seg.get_frame_index()
    segmentation_type = seg.segmentation_type.value
    frame_counts = np.bincount(index.segment_numbers.astype(np.int64), minlength=1) \
        if index.number_of_frames else np.zeros(1, dtype=np.int64)
    segments = []
    for entry in segment_table(seg):  # the loaders' segment table (meta["segments"])
        number = entry["number"]
        description = seg.get_segment_description(number)
        algorithm = description.algorithm_type.value
        identification = description.algorithm_identification
        if identification is not None:
            algorithm = f"{algorithm} ({identification.name})"
        segments.append({
            "number": number,
            "label": entry["label"],
            "category": entry["category"]["meaning"],
            "type": _type_text(description),
            "algorithm": algorithm,
            "color": entry["color"],
            "frames": None if segmentation_type == _LABELMAP
            else int(frame_counts[number]) if number < len(frame_counts) else 0,
        })
    sop_class = str(seg.SOPClassUID)
    source_instances = seg.get_source_image_uids()  # first: malformed references are typed errors
    result: dict[str, Any] = {
        "file": str(path),
        "sop_class": f"{_SOP_CLASSES.get(sop_class, 'unknown')} ({sop_class})",
        "segmentation_type": segmentation_type,
        "transfer_syntax": str(seg.file_meta.TransferSyntaxUID.name) if "file_meta" in dir(seg)
        and seg.file_meta.get("TransferSyntaxUID") else None,
        "frames": int(index.number_of_frames),
        "series_description": str(seg.get("SeriesDescription", "")),
        "frame_of_reference_uid": str(seg.get("FrameOfReferenceUID", "")) or None,
        "source_series": sorted({str(item.get("SeriesInstanceUID", ""))
                                 for item in seg.get("ReferencedSeriesSequence", [])}),
        "source_instances": len(source_instances),
        "geometry": _geometry(seg, index),
        "segments": segments,
    }
    if seg.segmentation_fractional_type is not None:
        result["fractional_type"] = seg.segmentation_fractional_type.value
        result["max_fractional_value"] = int(seg.get("MaximumFractionalValue") or 0)
    return result


def format_description(info: dict[str, Any]) -> str:
    """The text ``info`` prints for :func:`describe_seg`'s dict."""
    lines = [
        f"File:             {info['file']}",
        f"SOP class:        {info['sop_class']}",
        f"Type:             {info['segmentation_type']}"
        + (f" ({info['fractional_type']}, max {info['max_fractional_value']})" if "fractional_type" in info
           else ""),
        f"Transfer syntax:  {info['transfer_syntax']}",
        f"Frames:           {info['frames']}",
        f"Description:      {info['series_description']}",
        f"Frame of ref.:    {info['frame_of_reference_uid']}",
        f"Source:           {info['source_instances']} instance(s) of series "
        f"{', '.join(info['source_series']) or '?'}",
    ]
    geometry = info["geometry"]
    if geometry:
        text = f"{geometry.get('planes', '?')} plane(s) x {geometry['rows']} x {geometry['columns']}; " \
               f"pixel spacing {geometry['pixel_spacing']}"
        if "slice_spacing" in geometry:
            text += f", slice spacing {geometry['slice_spacing']:.4g}; origin (LPS) {geometry['origin']}"
        lines.append(f"Geometry:         {text}")
        lines.append(f"Orientation:      {geometry['orientation']}")
    lines.append(f"Segments:         {len(info['segments'])}")
    header = ("#", "Label", "Category", "Type", "Algorithm", "Colour", "Frames")
    rows = [header] + [
        (str(s["number"]), s["label"], s["category"], s["type"], s["algorithm"],
         "-" if s["color"] is None else "#{:02x}{:02x}{:02x}".format(*s["color"]),
         "-" if s["frames"] is None else str(s["frames"]))
        for s in info["segments"]
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return "\n".join(lines)
