"""Reader oracles: our arrays equal highdicom's for the same calls.

Files: highdicom's test files (``../shared/data/highdicom``), SEGs written by
highdicom with seeded random options, SEGs written by dcmqi's
``itkimage2segimage`` and pydicom-data's ``liver.dcm``.
"""
from __future__ import annotations

import io
import json
import random
import subprocess
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pydicom
import pytest

import highdicom
from monai_dicomseg import synthetic
from monai_dicomseg.seg.reader import segread
from oracles import COMMON_SEG_ARGUMENTS, find_tool, one_hot

pytestmark = pytest.mark.highdicom
warnings.filterwarnings("ignore", module="highdicom")


def _data_dir() -> Path | None:
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "data" / "highdicom"
        if candidate.is_dir():
            return candidate
    return None


DATA = _data_dir()
SEG_FILES = sorted(p.name for p in DATA.glob("seg*.dcm")) if DATA else []


# --------------------------------------------------------------------------- comparison


def _call(seg: Any, method: str, args: tuple, kwargs: dict) -> tuple[Any, BaseException | None]:
    try:
        return getattr(seg, method)(*args, **kwargs), None
    except Exception as exc:  # noqa: BLE001 - compared below
        return None, exc


class _Reader:
    """A highdicom segmentation, re-read only after a call raised.

    highdicom keeps temporary sqlite tables when a query raises, which makes
    the next call on the same object fail with "table is locked".
    """

    def __init__(self, read: Callable[[], Any]) -> None:
        self._read = read
        self._seg: Any = None

    def __call__(self) -> Any:
        if self._seg is None:
            self._seg = self._read()
        return self._seg

    def invalidate(self) -> None:
        self._seg = None


def compare(ours: Any, reread_hd: Callable[[], Any], method: str, *args: Any, **kwargs: Any) -> None:
    """Call ``method`` on both; equal arrays/dtypes/affines, or both raise."""
    if not isinstance(reread_hd, _Reader):
        reread_hd = _Reader(reread_hd)
    theirs = reread_hd()
    expected, hd_error = _call(theirs, method, args, kwargs)
    if hd_error is not None:
        reread_hd.invalidate()
    got, our_error = _call(ours, method, args, kwargs)
    if hd_error is not None:
        assert our_error is not None, f"highdicom raised {hd_error!r}, we returned {type(got)}"
        return
    assert our_error is None, f"we raised {our_error!r}, highdicom did not"
    if method == "get_volume":
        assert got.array.shape == expected.array.shape
        assert got.array.dtype == expected.array.dtype
        np.testing.assert_array_equal(got.array, expected.array)
        np.testing.assert_allclose(got.affine, expected.affine, atol=1e-4)
        return
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def _option_sets(segment_numbers: list[int], labelmap: bool) -> list[dict[str, Any]]:
    options: list[dict[str, Any]] = [
        {},
        {"combine_segments": True},
        {"combine_segments": True, "relabel": True},
        {"rescale_fractional": False},
        {"segment_numbers": segment_numbers[::-1]},
        {"combine_segments": True, "skip_overlap_checks": True},
    ]
    if len(segment_numbers) >= 3:
        subset = segment_numbers[::-2][:3]
        options.append({"segment_numbers": subset, "combine_segments": True, "relabel": True})
        # highdicom 0.28 leaves one unrequested LABELMAP segment in place when
        # combining without relabel (its need_remap test is "> 1"), so only
        # request subsets that leave out two or more segments there
        if not labelmap or len(segment_numbers) - len(subset) >= 2:
            options.append({"segment_numbers": subset, "combine_segments": True})
    return options


def _check_all(ours: Any, read: Callable[[], Any], uids_order: list[str] | None = None) -> None:
    reread = _Reader(read)
    theirs = reread()
    segs = list(theirs.segment_numbers)
    assert list(ours.segment_numbers) == segs
    assert [tuple(u) for u in ours.get_source_image_uids()] == [tuple(u) for u in theirs.get_source_image_uids()]
    uids = [u[2] for u in theirs.get_source_image_uids()]
    if uids_order is not None:
        uids = uids_order
    labelmap = ours.SegmentationType == "LABELMAP"
    is_patient = "ImageOrientationSlide" not in ours
    for options in _option_sets(segs, labelmap):
        if is_patient:
            compare(ours, reread, "get_pixels_by_source_instance", uids, **options)
            compare(ours, reread, "get_volume", **options)
        elif len(uids) == 1 and not ours.get("DimensionOrganizationType") == "TILED_FULL":
            compare(ours, reread, "get_pixels_by_source_frame", uids[0], **options)
            compare(ours, reread, "get_pixels_by_source_frame", uids[0], source_frame_numbers=[3, 1, 2],
                    **options)


# --------------------------------------------------------------------------- highdicom's test files


@pytest.mark.skipif(DATA is None, reason="shared/data/highdicom not found")
@pytest.mark.parametrize("name", SEG_FILES, ids=SEG_FILES)
def test_highdicom_test_files(name: str) -> None:
    path = DATA / name
    ours = segread(path)
    _check_all(ours, lambda: highdicom.seg.segread(path))
    assert ours.number_of_segments == len(list(ours.segment_numbers))


@pytest.mark.skipif(DATA is None, reason="shared/data/highdicom not found")
def test_dimension_index_values_match_highdicom() -> None:
    path = DATA / "seg_image_sm_numbers.dcm"
    ours = segread(path)
    index = ours._get_frame_index()
    pointers = [p for p in index.dimension_index_pointers if p != "ReferencedSegmentNumber"][:2]
    columns = [index.dimension_index_pointers.index(p) for p in pointers]
    values = sorted({tuple(r) for r in index.dimension_index_values[:, columns].tolist()})[:4]
    tags = [pydicom.datadict.tag_for_keyword(p) for p in pointers]
    hd_seg = _Reader(lambda: highdicom.seg.segread(path))
    compare(ours, hd_seg, "get_pixels_by_dimension_index_values",
            values, dimension_index_pointers=tags)
    compare(ours, hd_seg, "get_pixels_by_dimension_index_values",
            values, dimension_index_pointers=tags, combine_segments=True)


def test_liver_pydicom_data() -> None:
    from pydicom.data import get_testdata_file

    path = get_testdata_file("liver.dcm")
    if path is None:
        pytest.skip("pydicom-data not installed")
    ours = segread(path)
    reread = _Reader(lambda: highdicom.seg.segread(path))
    uids = [u[2] for u in reread().get_source_image_uids()]
    # liver.dcm lacks SpatialLocationsPreserved: both refuse unless told to ignore it
    compare(ours, reread, "get_pixels_by_source_instance", uids)
    for options in ({}, {"combine_segments": True}):
        compare(ours, reread, "get_pixels_by_source_instance", uids, ignore_spatial_locations=True, **options)
        compare(ours, reread, "get_volume", **options)


# --------------------------------------------------------------------------- random highdicom SEGs

_SYNTAXES = [
    pydicom.uid.ExplicitVRLittleEndian,
    pydicom.uid.RLELossless,
    pydicom.uid.JPEG2000Lossless,
    pydicom.uid.JPEGLSLossless,
]


def _random_case(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    return {
        "seed": seed,
        "shape": (rng.randint(2, 6), rng.choice([8, 13, 16]), rng.choice([8, 11, 20])),
        "large": rng.random() < 0.3,
        "n_segments": rng.randint(1, 12),
        "type": rng.choice(["BINARY", "FRACTIONAL", "LABELMAP"]),
        "syntax": rng.choice(_SYNTAXES),
        "omit": rng.random() < 0.7,
        "scramble": rng.random() < 0.5,
        "orientation": rng.choice(["axial", "coronal", "oblique"]),
        "reverse": rng.random() < 0.5,
    }


CASES = [_random_case(seed) for seed in range(14)]


def _write_highdicom_seg(case: dict[str, Any]) -> tuple[bytes, list[str]]:
    shape = case["shape"]
    if case["syntax"] == pydicom.uid.JPEG2000Lossless or case["large"]:
        shape = (shape[0], 32, 40)  # highdicom's JPEG 2000 encoder needs >= 32 pixels
    labels = synthetic.make_ellipsoid_labels(shape, n_labels=case["n_segments"], seed=case["seed"])
    sources = synthetic.make_ct_series(shape, orientation=case["orientation"], labels=labels,
                                       seed=case["seed"], reverse_order=case["reverse"])
    order = list(range(shape[0]))
    if case["scramble"]:
        random.Random(case["seed"]).shuffle(order)
    sources = [sources[i] for i in order]
    labels = labels[order]
    n = case["n_segments"]
    descriptions = [
        highdicom.seg.SegmentDescription(
            segment_number=i, segment_label=f"organ {i}",
            segmented_property_category=pydicom.sr.codedict.codes.SCT.Organ,
            segmented_property_type=pydicom.sr.codedict.codes.SCT.Liver,
            algorithm_type=highdicom.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for i in range(1, n + 1)
    ]
    if case["type"] == "LABELMAP":
        pixels = labels
    elif case["type"] == "FRACTIONAL":
        pixels = one_hot(labels, n).astype(np.float32) * 0.5
        pixels[..., 0] = one_hot(labels, n)[..., 0]
    else:
        pixels = one_hot(labels, n).astype(np.uint8)
    seg = highdicom.seg.Segmentation(
        source_images=sources, pixel_array=pixels, segmentation_type=case["type"],
        segment_descriptions=descriptions, series_instance_uid=highdicom.UID(),
        sop_instance_uid=highdicom.UID(), transfer_syntax_uid=case["syntax"],
        omit_empty_frames=case["omit"], max_fractional_value=200, **COMMON_SEG_ARGUMENTS,
    )
    buffer = io.BytesIO()
    seg.save_as(buffer)
    return buffer.getvalue(), [str(s.SOPInstanceUID) for s in sources]


@pytest.mark.parametrize("case", CASES, ids=lambda c: (
    f"s{c['seed']}-{c['type']}-{c['n_segments']}seg-{c['syntax'].name.split()[0]}"
    f"{'-omit' if c['omit'] else ''}{'-scrambled' if c['scramble'] else ''}-{c['orientation']}"
))
def test_random_highdicom_written(case: dict[str, Any]) -> None:
    try:
        data, uids = _write_highdicom_seg(case)
    except (ValueError, NotImplementedError, ImportError, RuntimeError) as exc:
        pytest.skip(f"highdicom cannot write this combination: {exc}")
    ours = segread(io.BytesIO(data))
    reread = lambda: highdicom.seg.segread(io.BytesIO(data))  # noqa: E731
    rng = random.Random(case["seed"])
    shuffled = uids[:]
    rng.shuffle(shuffled)
    _check_all(ours, reread, uids_order=shuffled[: max(1, len(shuffled) - 1)])


def test_overlapping_segments() -> None:
    shape = (3, 8, 8)
    sources = synthetic.make_ct_series(shape, seed=2)
    pixels = np.zeros((*shape, 2), np.uint8)
    pixels[:, 2:6, 2:6, 0] = 1
    pixels[:, 4:8, 4:8, 1] = 1
    descriptions = [
        highdicom.seg.SegmentDescription(
            segment_number=i, segment_label=f"s{i}",
            segmented_property_category=pydicom.sr.codedict.codes.SCT.Organ,
            segmented_property_type=pydicom.sr.codedict.codes.SCT.Liver,
            algorithm_type=highdicom.seg.SegmentAlgorithmTypeValues.MANUAL,
        ) for i in (1, 2)
    ]
    seg = highdicom.seg.Segmentation(
        source_images=sources, pixel_array=pixels, segmentation_type="BINARY",
        segment_descriptions=descriptions, series_instance_uid=highdicom.UID(),
        sop_instance_uid=highdicom.UID(), **COMMON_SEG_ARGUMENTS,
    )
    buffer = io.BytesIO()
    seg.save_as(buffer)
    ours = segread(io.BytesIO(buffer.getvalue()))
    from monai_dicomseg.errors import OverlapError

    with pytest.raises(OverlapError, match="overlap"):
        ours.get_volume(combine_segments=True)
    for relabel in (False, True):
        for order in ([1, 2], [2, 1]):
            compare(ours, lambda: highdicom.seg.segread(io.BytesIO(buffer.getvalue())), "get_volume",
                    combine_segments=True, skip_overlap_checks=True, relabel=relabel, segment_numbers=order)


# --------------------------------------------------------------------------- dcmqi


def _write_nifti(labels: np.ndarray, affine_lps: np.ndarray, path: Path) -> None:
    import nibabel

    # NIfTI voxel axes (i, j, k) = (column, row, frame); affine in RAS
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_lps[:, [2, 1, 0, 3]]
    nibabel.save(nibabel.Nifti1Image(np.ascontiguousarray(labels.transpose(2, 1, 0)).astype(np.int16), affine), path)


def _dcmqi_metadata(n_labels: int) -> dict[str, Any]:
    return {
        "ContentCreatorName": "Reader1", "ClinicalTrialSeriesID": "Session1",
        "ClinicalTrialTimePointID": "1", "SeriesDescription": "Segmentation",
        "SeriesNumber": "300", "InstanceNumber": "1", "BodyPartExamined": "",
        "segmentAttributes": [[
            {
                "labelID": i, "SegmentLabel": f"organ {i}", "SegmentDescription": f"organ {i}",
                "SegmentAlgorithmType": "MANUAL",
                "SegmentedPropertyCategoryCodeSequence": {
                    "CodeValue": "123037004", "CodingSchemeDesignator": "SCT",
                    "CodeMeaning": "Anatomical Structure"},
                "SegmentedPropertyTypeCodeSequence": {
                    "CodeValue": "10200004", "CodingSchemeDesignator": "SCT", "CodeMeaning": "Liver"},
            } for i in range(1, n_labels + 1)
        ]],
        "ContentLabel": "SEGMENTATION", "ContentDescription": "Image segmentation",
        "ClinicalTrialCoordinatingCenterName": "dcmqi",
    }


@pytest.mark.dcmqi
@pytest.mark.parametrize("segmentation_type", ["binary", "labelmap"])
def test_dcmqi_written(segmentation_type: str, tmp_path: Path) -> None:
    tool = find_tool("itkimage2segimage")
    if tool is None:
        pytest.skip("dcmqi itkimage2segimage not available")
    shape = (6, 16, 20)
    labels = synthetic.make_ellipsoid_labels(shape, n_labels=3, seed=5)
    labels[0] = 0  # an empty slice: dcmqi omits it
    sources = synthetic.make_ct_series(shape, labels=labels, seed=5)
    synthetic.write_series(sources, tmp_path / "ct")
    first = sources[0]
    iop = np.asarray(first.ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    positions = np.asarray([s.ImagePositionPatient for s in sources], float)
    step = positions[1] - positions[0]
    spacing = [float(v) for v in first.PixelSpacing]
    affine = np.eye(4)
    affine[:3, 0] = step
    affine[:3, 1] = iop[3:] * spacing[0]
    affine[:3, 2] = iop[:3] * spacing[1]
    affine[:3, 3] = positions[0]
    assert abs(abs(step @ normal) - np.linalg.norm(step)) < 1e-6
    _write_nifti(labels, affine, tmp_path / "labels.nii.gz")
    (tmp_path / "meta.json").write_text(json.dumps(_dcmqi_metadata(3)))
    out = tmp_path / "seg.dcm"
    result = subprocess.run(
        [str(tool), "--inputImageList", str(tmp_path / "labels.nii.gz"),
         "--inputDICOMDirectory", str(tmp_path / "ct"), "--outputDICOM", str(out),
         "--inputMetadata", str(tmp_path / "meta.json"), "--segmentationType", segmentation_type],
        capture_output=True, text=True, timeout=120,
    )
    if result.returncode != 0 or not out.exists():
        pytest.skip(f"itkimage2segimage failed: {result.stderr[-500:]}")
    ours = segread(out)
    reread = _Reader(lambda: highdicom.seg.segread(out))
    uids = [str(s.SOPInstanceUID) for s in sources]
    for options in ({}, {"combine_segments": True}, {"segment_numbers": [3, 1]}):
        compare(ours, reread, "get_volume", **options)
        compare(ours, reread, "get_pixels_by_source_instance", uids, ignore_spatial_locations=True,
                assert_missing_frames_are_empty=True, **options)
    # independent of highdicom: the volume holds the labels we wrote (empty first slice omitted)
    volume = ours.get_volume(combine_segments=True)
    got = np.zeros(shape, np.uint8)
    frame_positions = positions @ volume.affine[:3, 0] / (volume.affine[:3, 0] @ volume.affine[:3, 0])
    origin_index = volume.affine[:3, 3] @ volume.affine[:3, 0] / (volume.affine[:3, 0] @ volume.affine[:3, 0])
    for f, p in enumerate(np.round(frame_positions - origin_index).astype(int)):
        if 0 <= p < volume.array.shape[0]:
            got[f] = volume.array[p]
    np.testing.assert_array_equal(got, labels)


def test_undefined_length_and_raw_parse_agree() -> None:
    """segread's raw scan and pydicom's parsed sequence give the same index."""
    case = {**CASES[0], "syntax": pydicom.uid.ExplicitVRLittleEndian}
    data, _ = _write_highdicom_seg(case)
    ours = segread(io.BytesIO(data))
    raw_index = ours._get_frame_index()
    parsed = pydicom.dcmread(io.BytesIO(data))
    parsed.PerFrameFunctionalGroupsSequence  # force parsing
    from monai_dicomseg.codec.frame_index import build_frame_index

    parsed_index = build_frame_index(parsed)
    np.testing.assert_array_equal(raw_index.segment_numbers, parsed_index.segment_numbers)
    np.testing.assert_array_equal(raw_index.dimension_index_values, parsed_index.dimension_index_values)
    np.testing.assert_allclose(raw_index.image_positions, parsed_index.image_positions)
    assert raw_index.ref_sop_instance_uid.tolist() == parsed_index.ref_sop_instance_uid.tolist()


