"""The OHIF column of the consumer profiles (monai_dicomseg.seg.profiles), measured with OHIF's own SEG loader.

Our SEGs of every type x written syntax (plus odd-sized BINARY frames and
several frame counts, FRACTIONAL graded and 0/max-valued, overlapping BINARY
segments, 16-bit LABELMAP, single-frame encapsulated files, and what each
profile writes) are loaded by ``tests/consumers/ohif/decode.mjs``:
``@cornerstonejs/adapters``' ``createFromDICOMSegBuffer`` under node (dcmjs
parses the file, the adapter decodes the frames and paints each into the
labelmap of its source image, described by a metadata provider). One node
process loads every file of the session and prints one JSON line per file:
refused (the error) or the labelmaps per source image.

Asserted: where the profile table (``consumer_problems("ohif", ...)``)
says OHIF displays a file, the labelmaps equal our segment masks voxel for
voxel; where it says OHIF does not (leaving out the rule about OHIF's other,
per-frame DICOMweb path, documented from source), the loader refuses or
misreads the file; and every OHIF fact marked measured holds for the files
it is about. A wrong row in the table fails here.

Needs node + npm and ``npm ci`` in ``tests/consumers/ohif``
(``bash .ci/install-services`` does both). Without them the module is
skipped, except in CI (``CI=true``), where it fails.
"""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

import monai_dicomseg as hd
from monai_dicomseg import synthetic
from monai_dicomseg.codec.transfer_syntax import by_name, writable_syntaxes
from monai_dicomseg.seg.profiles import (
    IMAGE_ID_PATH, PROFILES, binary_length_misread, consumer_problems, get_profile, resolve_profile,
)
from oracles import missing_requirement, build_segmentation

HARNESS = Path(__file__).resolve().parents[1] / "consumers" / "ohif"
INSTALL_HINT = ("the OHIF harness needs node and npm and `npm ci --no-audit --no-fund` in tests/consumers/ohif: "
                "run `bash .ci/install-services`")
THIS_MODULE = "tests/seg/test_ohif_consumer.py"
MAX_FRACTIONAL_VALUE = 255


@dataclass(frozen=True)
class Case:
    """One SEG file: type, compression, (slices, rows, columns) and what its segments hold."""

    kind: str
    compression: str
    shape: tuple[int, int, int]
    variant: str = "plain"  # plain | graded | zero-max | overlap | wide | one-segment
    profile: "str | None" = None

    @property
    def id(self) -> str:
        size = "x".join(map(str, self.shape))
        prefix = f"profile-{self.profile}-" if self.profile else ""
        return f"{prefix}{self.kind.lower()}-{self.compression}-{self.variant}-{size}"


ALIGNED = (2, 32, 40)  # 1280 pixels per frame: byte aligned; JPEG 2000 needs >= 32 x 32


def _cases() -> list[Case]:
    cases = [Case(kind, row.name, ALIGNED, variant) for kind in ("BINARY", "FRACTIONAL", "LABELMAP")
             for row in writable_syntaxes(kind)
             for variant in (("graded", "zero-max") if kind == "FRACTIONAL" else ("plain",))]
    for name in ("none", "deflate"):
        cases += [Case("BINARY", name, (slices, 33, 35)) for slices in (1, 2, 3)]  # 2, 4, 6 frames of 1155 pixels
        cases += [Case("BINARY", name, (slices, 31, 8), "one-segment") for slices in (1, 2)]  # 31 bytes a frame
        cases += [Case("BINARY", name, (1, 7, 9))]  # 2 frames of 63 pixels: 16 bytes either way
        cases += [Case("LABELMAP", name, ALIGNED, "wide")]
    cases += [Case("LABELMAP", "rle", ALIGNED, "wide"), Case("BINARY", "none", ALIGNED, "overlap")]
    cases += [Case("LABELMAP", row.name, (1, 32, 40)) for row in writable_syntaxes("LABELMAP") if row.encapsulated]
    for profile in PROFILES.values():
        for kind in profile.types:
            resolved = resolve_profile(profile.name, kind)
            cases.append(Case(kind, resolved.compression, ALIGNED, "graded" if kind == "FRACTIONAL" else "plain",
                              profile.name))
    return cases


CASES = _cases()


# --------------------------------------------------------------------------- inputs and truth


def _labels(shape: tuple[int, int, int], variant: str) -> np.ndarray:
    """``(F, R, C)`` labels 0..2 (0..1 for one segment); every slice holds every segment."""
    labels = np.random.default_rng(sum(shape)).integers(0, 2 if variant == "one-segment" else 3, size=shape)
    labels[:, 0, 0], labels[:, -1, -1] = 1, (1 if variant == "one-segment" else 2)
    return labels.astype(np.uint8)


def _segment_masks(case: Case, labels: np.ndarray) -> dict[int, np.ndarray]:
    """Segment number -> ``(F, R, C) bool``: what a viewer must show."""
    if case.variant == "overlap":
        return {1: labels >= 1, 2: labels == 2}
    numbers = (7, 299) if case.variant == "wide" else (1,) if case.variant == "one-segment" else (1, 2)
    return {number: labels == value for value, number in enumerate(numbers, start=1)}


def _pixel_array(case: Case, labels: np.ndarray, masks: dict[int, np.ndarray]) -> tuple[np.ndarray, int]:
    """Writer input and its number of segments."""
    if case.variant == "wide":  # label map values 7 and 299 of 299 segments: 16-bit LABELMAP
        values = np.zeros(labels.shape, np.uint16)
        for number, mask in masks.items():
            values[mask] = number
        return values, 299
    stacked = np.stack([masks[number] for number in sorted(masks)], axis=-1)
    if case.kind == "LABELMAP":
        return labels, len(masks)
    if case.kind == "FRACTIONAL":
        return stacked.astype(np.float32) * (np.float32(0.5) if case.variant == "graded" else 1), len(masks)
    return stacked, len(masks)


def _source_description(dataset: pydicom.Dataset) -> dict[str, Any]:
    return {"image_id": f"source:{dataset.SOPInstanceUID}", "sop_instance_uid": str(dataset.SOPInstanceUID),
            "series_instance_uid": str(dataset.SeriesInstanceUID),
            "frame_of_reference_uid": str(dataset.FrameOfReferenceUID), "rows": int(dataset.Rows),
            "columns": int(dataset.Columns), "position": [float(v) for v in dataset.ImagePositionPatient],
            "orientation": [float(v) for v in dataset.ImageOrientationPatient],
            "spacing": [float(v) for v in dataset.PixelSpacing]}


def _write_case(case: Case, folder: Path) -> dict[str, Any]:
    """Write ``case``'s SEG; its manifest entry, truth masks and header values."""
    series = synthetic.make_ct_series(case.shape, labels=np.zeros(case.shape, np.uint8), seed=1)
    labels = _labels(case.shape, case.variant)
    masks = _segment_masks(case, labels)
    pixel_array, n_segments = _pixel_array(case, labels, masks)
    extra = {"max_fractional_value": MAX_FRACTIONAL_VALUE} if case.kind == "FRACTIONAL" else {}
    seg = build_segmentation(hd, series, pixel_array, case.kind, n_segments,
                             transfer_syntax_uid=by_name(case.compression).uid, **extra)
    path = folder / f"{case.id}.dcm"
    seg.save_as(path)
    header = pydicom.dcmread(path, stop_before_pixels=True)
    sources = [_source_description(dataset) for dataset in series]
    return {"entry": {"id": case.id, "path": str(path), "sources": sources}, "masks": masks,
            "image_ids": [source["image_id"] for source in sources],
            "frames": int(header.NumberOfFrames), "rows": int(header.Rows), "columns": int(header.Columns),
            "transfer_syntax_uid": str(header.file_meta.TransferSyntaxUID),
            "max_segment_number": max(int(item.SegmentNumber) for item in header.SegmentSequence)}


# --------------------------------------------------------------------------- one node run per session


def _harness_missing() -> "str | None":
    if shutil.which("node") is None:
        return "node is not installed"
    if not (HARNESS / "node_modules" / "@cornerstonejs" / "adapters").is_dir():
        return f"{HARNESS / 'node_modules'} is not installed"
    return None


def _run_harness(manifest: Path) -> dict[str, dict[str, Any]]:
    """One node process over every case: id -> its JSON line."""
    result = subprocess.run(["node", str(HARNESS / "decode.mjs"), str(manifest)], cwd=HARNESS,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"the OHIF harness failed ({result.returncode}): {result.stderr[-2000:]}"
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"id"')]
    return {line["id"]: line for line in lines}


@pytest.fixture(scope="session")
def ohif(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Case id -> {the written file's truth and header values, "result": the harness's line}."""
    missing = _harness_missing()
    if missing is not None:
        missing_requirement(f"{missing}: {INSTALL_HINT}", "the OHIF consumer check")
    folder = tmp_path_factory.mktemp("ohif")
    written = {case.id: _write_case(case, folder) for case in CASES}
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps({"cases": [item["entry"] for item in written.values()]}))
    results = _run_harness(manifest)
    assert sorted(results) == sorted(written), "the harness did not print one line per SEG"
    return {key: {**item, "result": results[key]} for key, item in written.items()}


# --------------------------------------------------------------------------- verdicts


def _shown(item: dict[str, Any]) -> dict[int, np.ndarray]:
    """Segment number -> ``(F, R, C) bool`` as OHIF painted it (any labelmap layer, in source order)."""
    shape = item["masks"][next(iter(item["masks"]))].shape
    shown: dict[int, np.ndarray] = {}
    for layer in item["result"]["layers"]:
        for index, image_id in enumerate(item["image_ids"]):
            if image_id not in layer:
                continue
            values = np.frombuffer(base64.b64decode(layer[image_id]), np.uint8).reshape(shape[1:])
            for number in np.unique(values[values > 0]):
                shown.setdefault(int(number), np.zeros(shape, bool))[index] |= values == number
    return shown


def _mismatch(item: dict[str, Any]) -> "str | None":
    """Why OHIF's labelmaps differ from our masks (``None``: equal voxel for voxel; refused: the error)."""
    result = item["result"]
    if not result["ok"]:
        return f"refused: {result['error']}"
    shown, truth = _shown(item), item["masks"]
    for number in sorted(set(shown) | set(truth)):
        expected = truth.get(number, np.zeros_like(next(iter(truth.values()))))
        got = shown.get(number, np.zeros_like(expected))
        if not np.array_equal(got, expected):
            return f"segment {number}: {int(got.sum())} voxels shown, {int(expected.sum())} expected, " \
                   f"{int((got != expected).sum())} differ"
    return None


def _table_problems(case: Case, item: dict[str, Any]) -> list[str]:
    """The profile table's reasons OHIF's file loader would not display ``case`` (image-ID path left out)."""
    problems = consumer_problems("ohif", case.kind, item["transfer_syntax_uid"], item["rows"], item["columns"],
                                 graded_fractional=case.variant == "graded", frames=item["frames"],
                                 max_segment_number=item["max_segment_number"])
    return [problem for problem in problems if IMAGE_ID_PATH not in problem]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_ohif_displays_what_the_table_says(case: Case, ohif: dict[str, dict[str, Any]]) -> None:
    item = ohif[case.id]
    problems, mismatch = _table_problems(case, item), _mismatch(item)
    if not problems:
        assert mismatch is None, f"the ohif profile says OHIF displays {case.id}; measured: {mismatch}"
    else:
        assert mismatch is not None, f"the ohif profile says {problems}; measured: OHIF displays {case.id} equal"


# --------------------------------------------------------------------------- the measured facts


def _clean(case: Case, item: dict[str, Any]) -> bool:
    """No frame-layout, segment-number or graded-value condition applies (the fact is about type/syntax only)."""
    pixels = item["rows"] * item["columns"]
    return case.variant in ("plain", "overlap", "zero-max", "one-segment") and (
        case.kind != "BINARY" or (pixels % 8 == 0 and binary_length_misread(item["rows"], item["columns"],
                                                                          item["frames"]) is None))


def _fact_cases(what: str, ohif: dict[str, dict[str, Any]]) -> "list[tuple[Case, bool]] | None":
    """The cases a measured fact is about, each with whether OHIF must display it (``None``: unknown fact)."""
    by_case = [(case, ohif[case.id]) for case in CASES]
    if what.count("/") == 1:
        kind, name = what.split("/")
        return [(case, None) for case, item in by_case if case.compression == name and kind in ("*", case.kind)
                and _clean(case, item)]
    if what == "FRACTIONAL":
        return [(case, case.variant == "zero-max" and case.compression in ("none", "deflate", "rle"))
                for case, _ in by_case if case.kind == "FRACTIONAL"]
    if what == "LABELMAP segment numbers":
        return [(case, False) for case, _ in by_case if case.kind == "LABELMAP" and case.variant == "wide"
                and case.compression in ("none", "deflate", "rle")]
    if what == "BINARY Pixel Data length":
        return [(case, False) for case, item in by_case if case.kind == "BINARY" and case.compression in
                ("none", "deflate") and binary_length_misread(item["rows"], item["columns"], item["frames"])]
    return None


def _measured_ohif_facts() -> list[Any]:
    return [fact for fact in get_profile("ohif").facts if fact.measured]


@pytest.mark.parametrize("fact", _measured_ohif_facts(), ids=lambda fact: fact.what)
def test_measured_ohif_fact_holds(fact: Any, ohif: dict[str, dict[str, Any]]) -> None:
    assert THIS_MODULE in fact.source, f"measured fact {fact.what!r} does not name {THIS_MODULE}"
    cases = _fact_cases(fact.what, ohif)
    assert cases is not None, f"measured OHIF fact {fact.what!r} is not re-measured by {THIS_MODULE}"
    assert cases, f"no SEG written here is about measured OHIF fact {fact.what!r}"
    for case, displayed in cases:
        displayed = fact.reads if displayed is None else displayed
        mismatch = _mismatch(ohif[case.id])
        assert (mismatch is None) is displayed, f"{fact.what!r} ({fact.detail}) vs {case.id}: {mismatch or 'equal'}"


def test_binary_length_failures_are_the_ones_measured(ohif: dict[str, dict[str, Any]]) -> None:
    """Refused: the adapter's length error; misread: decoded without error but wrong (the silent case)."""
    seen = set()
    for case in CASES:
        item = ohif[case.id]
        failure = binary_length_misread(item["rows"], item["columns"], item["frames"])
        if case.kind != "BINARY" or case.compression not in ("none", "deflate") or failure is None:
            continue
        seen.add(failure)
        result = item["result"]
        if failure == "refused":
            assert not result["ok"] and "Unexpected 1-bit SEG PixelData length" in result["error"], case.id
        else:
            assert result["ok"] and _mismatch(item) is not None, case.id
    assert seen == {"refused", "misread"}


@pytest.mark.parametrize("rows, columns, frames, failure", [
    (32, 40, 1, None), (32, 40, 3, None), (31, 8, 1, "refused"), (31, 8, 2, None), (33, 35, 1, "refused"),
    (33, 35, 2, "misread"), (33, 35, 3, None), (33, 35, 4, None), (33, 35, 6, "refused"), (7, 9, 1, None),
    (7, 9, 2, "misread")])
def test_binary_length_misread_rule(rows: int, columns: int, frames: int, failure: "str | None") -> None:
    """Both sides of each boundary of the rule (the harness cases above measure the same sizes)."""
    assert binary_length_misread(rows, columns, frames) == failure
    problems = consumer_problems("ohif", "BINARY", by_name("none").uid, rows, columns, frames=frames)
    assert any("guessed from that length" in problem for problem in problems) is (failure is not None)
    assert not consumer_problems("slicer", "BINARY", by_name("none").uid, rows, columns, frames=frames)


def test_labelmap_segment_number_boundary() -> None:
    uid = by_name("rle").uid
    assert not consumer_problems("ohif", "LABELMAP", uid, 32, 40, max_segment_number=255)
    assert consumer_problems("ohif", "LABELMAP", uid, 32, 40, max_segment_number=256) == [
        "LABELMAP segment number 256 is above 255: shown as 0 (the labelmap holds 8 bits)"]
    assert not consumer_problems("highdicom", "LABELMAP", uid, 32, 40, max_segment_number=299)
