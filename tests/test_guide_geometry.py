"""The SEG user guide's geometry examples, run against this package.

Sections "Segmentations from Volumes", "Segmentations with Arbitrary
Geometries" and "Per-Frame Derivation Image Sequences" of
``shared/spec/seg-user-guide.rst`` (the last section has no code of its own;
its three derivation cases are what the assertions after each example check).
Each example's code is verbatim except that ``import highdicom as hd`` becomes
``hd = backend()`` at module level, i.e. ``import monai_dicomseg as hd``
(``MDS_TEST_BACKEND=highdicom`` runs the same code against highdicom). Every
constructed SEG is saved and validated with ``dciodvfy``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from oracles import backend, dciodvfy_errors

hd = backend()  # the guide's `import highdicom as hd`, i.e. `import monai_dicomseg as hd`

pytestmark = [pytest.mark.dciodvfy, pytest.mark.filterwarnings("ignore::UserWarning")]


def _require_ct2() -> None:
    from pydicom.data import get_testdata_files

    if len(get_testdata_files('dicomdirtests/77654033/CT2/*')) != 4:
        pytest.skip("pydicom test series dicomdirtests/77654033/CT2 not available")


def _save_and_validate(seg: Any, tmp_path: Path) -> pydicom.Dataset:
    """The guide's SEG is a pydicom Dataset that saves to a dciodvfy-clean file."""
    assert isinstance(seg, pydicom.Dataset)
    path = tmp_path / "seg.dcm"
    seg.save_as(path)
    assert dciodvfy_errors(path) == []
    return pydicom.dcmread(path)


def _derivations(seg: pydicom.Dataset) -> list[list[tuple[str, str]]]:
    """Per frame, ``(ReferencedSOPInstanceUID, SpatialLocationsPreserved)`` of each source item."""
    out = []
    for frame in seg.PerFrameFunctionalGroupsSequence:
        items = []
        for derivation in frame.get("DerivationImageSequence", []):
            for source in derivation.get("SourceImageSequence", []):
                items.append((source.ReferencedSOPInstanceUID,
                              source.get("SpatialLocationsPreserved")))
        out.append(items)
    return out


# --------------------------------------------------------------------------- Segmentations from Volumes


def test_segmentation_from_volume(tmp_path: Path) -> None:
    _require_ct2()

    import numpy as np

    from pydicom.sr.codedict import codes
    from pydicom.data import get_testdata_files

    # Load a series of CT images
    source_images = [
        hd.imread(f)
        for f in get_testdata_files('dicomdirtests/77654033/CT2/*')
    ]

    # Now the shape and size of the mask does not have to match the source
    # images
    mask = np.zeros((2, 100, 100), np.uint8)
    mask[0, 50:60, 50:60] = 1

    volume = hd.Volume.from_components(
        array=mask,
        spacing=[1.25, 1.25, 5.0],
        direction=np.eye(3),
        position=[10.0, 20.0, 30.0],
        frame_of_reference_uid=source_images[0].FrameOfReferenceUID,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
    )

    # Description of liver segment produced by a manual algorithm
    liver_description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label='liver',
        segmented_property_category=codes.SCT.Organ,
        segmented_property_type=codes.SCT.Liver,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )

    # Construct the Segmentation Image
    seg = hd.seg.Segmentation(
        source_images=source_images,
        pixel_array=volume,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[liver_description],
        series_instance_uid=hd.UID(),
        series_number=1,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer='Foo Corp.',
        manufacturer_model_name='Liver Segmentation Algorithm',
        software_versions='0.0.1',
        device_serial_number='1234567890',
    )

    written = _save_and_validate(seg, tmp_path)
    # One non-empty plane (the empty one is omitted); direction eye(3) puts the
    # slice axis along x, i.e. sagittal planes: out-of-plane w.r.t. the axial
    # CT, so the Derivation Image Sequence is empty (third case of the guide).
    assert written.NumberOfFrames == 1
    frame = written.PerFrameFunctionalGroupsSequence[0]
    assert [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient] == \
        pytest.approx([10.0, 20.0, 30.0])
    assert _derivations(written) == [[]]
    orientation = written.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0]
    assert [float(v) for v in orientation.ImageOrientationPatient] == \
        pytest.approx([0.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    measures = written.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert [float(v) for v in measures.PixelSpacing] == pytest.approx([1.25, 5.0])


def test_segmentation_from_volume_match_geometry(tmp_path: Path) -> None:
    _require_ct2()

    from pydicom.sr.codedict import codes
    from pydicom.data import get_testdata_file


    # Load a series of CT images
    ct_series = [
        get_testdata_file('dicomdirtests/77654033/CT2/17136', read=True),
        get_testdata_file('dicomdirtests/77654033/CT2/17196', read=True),
        get_testdata_file('dicomdirtests/77654033/CT2/17166', read=True),
    ]
    source_volume = hd.get_volume_from_series(ct_series)
    original_source_geometry = source_volume.get_geometry()

    # Some simple preprocessing operations applied to the source volume
    source_volume = (
        source_volume
        .to_patient_orientation('RAH')
        .crop_to_spatial_shape((10, 10, 3))
    )

    # Simulate a really simple segmentation model that just thresholds the source
    # image at its mean, and places it into a segmentation with the same geometry
    # as the (preprocessed) source volume
    seg_volume = source_volume.with_array(
        source_volume.array > source_volume.array.mean()
    )

    # Use match_geometry to automatically match the segmentation back to the
    # original geometry of the source volume. This will ensure that the frames have
    # the same "layout" in the segmentation as they did in the original series.
    seg_volume = seg_volume.match_geometry(original_source_geometry)

    # Description of liver segment produced by a manual algorithm
    liver_description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label='liver',
        segmented_property_category=codes.SCT.Organ,
        segmented_property_type=codes.SCT.Liver,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )

    # Construct the Segmentation Image
    seg = hd.seg.Segmentation(
        source_images=ct_series,
        pixel_array=seg_volume,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[liver_description],
        series_instance_uid=hd.UID(),
        series_number=1,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer='Foo Corp.',
        manufacturer_model_name='Liver Segmentation Algorithm',
        software_versions='0.0.1',
        device_serial_number='1234567890',
    )

    written = _save_and_validate(seg, tmp_path)
    # Matched back to the source geometry: every frame references exactly one
    # source image with Spatial Locations Preserved YES, at the source's position.
    by_uid = {ds.SOPInstanceUID: ds for ds in ct_series}
    assert written.NumberOfFrames >= 1
    for frame, items in zip(written.PerFrameFunctionalGroupsSequence, _derivations(written)):
        assert len(items) == 1
        uid, preserved = items[0]
        assert preserved == "YES"
        assert [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient] == \
            pytest.approx([float(v) for v in by_uid[uid].ImagePositionPatient], abs=1e-4)
    # The threshold mask is non-empty, and lies within the 10 x 10 x 3 crop.
    assert np.asarray(seg_volume.array).sum() > 0
    assert np.asarray(seg_volume.array).sum() <= 10 * 10 * 3


# --------------------------------------------------------------------------- Arbitrary Geometries


def test_segmentation_with_arbitrary_geometry(tmp_path: Path) -> None:
    _require_ct2()

    import numpy as np

    from pydicom.sr.codedict import codes
    from pydicom.data import get_testdata_files

    # Load a CT image
    source_images = [
        hd.imread(f)
        for f in get_testdata_files('dicomdirtests/77654033/CT2/*')
    ]

    # Sort source frames spatially
    source_images = hd.spatial.sort_datasets(source_images)

    # Now the shape and size of the mask does not have to match the source
    # images
    mask = np.zeros((2, 100, 100), np.uint8)
    mask[0, 50:60, 50:60] = 1

    # Define custom positions for each frame
    positions = [
        hd.PlanePositionSequence(
            hd.CoordinateSystemNames.PATIENT,
            [100.0, 50.0, -50.0]
        ),
        hd.PlanePositionSequence(
            hd.CoordinateSystemNames.PATIENT,
            [100.0, 50.0, -48.0]
        ),
    ]

    # Define a custom orientation and spacing for the segmentation mask
    orientation = hd.PlaneOrientationSequence(
        hd.CoordinateSystemNames.PATIENT,
        [0.0, 1.0, 0.0, -1.0, 0.0, 0.0]
    )
    spacings = hd.PixelMeasuresSequence(
        slice_thickness=2.0,
        pixel_spacing=[2.0, 2.0]
    )

    # Description of liver segment produced by a manual algorithm
    # Note that now there are multiple frames but still only a single segment
    liver_description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label='liver',
        segmented_property_category=codes.SCT.Organ,
        segmented_property_type=codes.SCT.Liver,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )

    # Construct the Segmentation Image
    seg = hd.seg.Segmentation(
        source_images=source_images,
        pixel_array=mask,
        plane_positions=positions,
        plane_orientation=orientation,
        pixel_measures=spacings,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[liver_description],
        series_instance_uid=hd.UID(),
        series_number=1,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer='Foo Corp.',
        manufacturer_model_name='Liver Segmentation Algorithm',
        software_versions='0.0.1',
        device_serial_number='1234567890',
    )

    written = _save_and_validate(seg, tmp_path)
    # The sort put the CT slices in spatial order, the same order as highdicom's
    # (which runs against the slice normal here: z decreasing).
    import highdicom

    z = [float(ds.ImagePositionPatient[2]) for ds in source_images]
    assert z == sorted(z, reverse=True)
    reference = highdicom.spatial.sort_datasets(
        [pydicom.dcmread(f) for f in get_testdata_files('dicomdirtests/77654033/CT2/*')])
    assert [ds.SOPInstanceUID for ds in source_images] == \
        [ds.SOPInstanceUID for ds in reference]
    # One non-empty frame at the first custom position, rotated in-plane w.r.t.
    # the CT, at z = -50 mm where there is no CT slice (CT2 lies at z ≈ -99..106,
    # not -50): no frame-by-frame correspondence, so no derivation items.
    assert written.NumberOfFrames == 1
    frame = written.PerFrameFunctionalGroupsSequence[0]
    assert [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient] == \
        pytest.approx([100.0, 50.0, -50.0])
    assert _derivations(written) == [[]]
    shared = written.SharedFunctionalGroupsSequence[0]
    assert [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient] == \
        pytest.approx([0.0, 1.0, 0.0, -1.0, 0.0, 0.0])
    assert [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing] == \
        pytest.approx([2.0, 2.0])
    assert float(shared.PixelMeasuresSequence[0].SliceThickness) == pytest.approx(2.0)
