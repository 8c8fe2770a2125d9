"""The SEG user guide's construction examples, run against this package.

Sections "Segments" through "Constructing Binary SEG Images with Multiple
Segments", "Representation of Fractional SEGs", "Implicit Conversion to
Fractional" and "Organization of Frames in SEGs" of
``shared/spec/seg-user-guide.rst``. Each example's code is verbatim except
that ``import highdicom as hd`` becomes ``hd = backend()`` at module level,
i.e. ``import monai_dicomseg as hd`` (``MDS_TEST_BACKEND=highdicom`` runs the
same code against highdicom). Where the guide says "we could straightforwardly
change this to ``"LABELMAP"``", the example is parametrized over both types.
Every constructed SEG is saved and validated with ``dciodvfy``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from oracles import backend, dciodvfy_errors, highdicom_pixels

hd = backend()  # the guide's `import highdicom as hd`, i.e. `import monai_dicomseg as hd`

pytestmark = pytest.mark.dciodvfy

BINARY_OR_LABELMAP = pytest.mark.parametrize("segmentation_type", ["BINARY", "LABELMAP"])


def _save_and_validate(seg: Any, tmp_path: Path) -> Path:
    """The guide's SEG is a pydicom Dataset that saves to a dciodvfy-clean file."""
    assert isinstance(seg, pydicom.Dataset)
    path = tmp_path / "seg.dcm"
    seg.save_as(path)
    assert dciodvfy_errors(path) == []
    return path


# --------------------------------------------------------------------------- Segment Descriptions


def test_segment_descriptions() -> None:
    from pydicom.sr.codedict import codes

    # Liver segment produced by a manual algorithm
    liver_description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label='liver',
        segmented_property_category=codes.SCT.Organ,
        segmented_property_type=codes.SCT.Liver,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )

    # For the next segment, we will describe the specific algorithm used to
    # create it
    algorithm_identification = hd.AlgorithmIdentificationSequence(
        name='Auto-Tumor',
        version='v1.0',
        family=codes.cid7162.ArtificialIntelligence
    )

    # Kidney tumor segment produced by the above algorithm
    tumor_description = hd.seg.SegmentDescription(
        segment_number=2,
        segment_label='kidney tumor',
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Tumor,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm_identification,
        anatomic_regions=[codes.SCT.Kidney]
    )

    # What the descriptions hold, as DICOM attributes (PS3.3 C.8.20.4)
    assert isinstance(liver_description, pydicom.Dataset)
    assert liver_description.SegmentNumber == 1
    assert liver_description.SegmentLabel == 'liver'
    assert liver_description.SegmentAlgorithmType == 'MANUAL'
    assert liver_description.SegmentedPropertyTypeCodeSequence[0].CodeValue == \
        codes.SCT.Liver.value
    assert tumor_description.SegmentAlgorithmType == 'AUTOMATIC'
    assert tumor_description.SegmentAlgorithmName == 'Auto-Tumor'
    assert tumor_description.AnatomicRegionSequence[0].CodeValue == codes.SCT.Kidney.value
    algorithm = tumor_description.SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == 'Auto-Tumor'
    assert algorithm.AlgorithmVersion == 'v1.0'


# --------------------------------------------------------------------------- Basic binary


@BINARY_OR_LABELMAP
def test_basic_binary_and_labelmap(segmentation_type: str, tmp_path: Path) -> None:
    import numpy as np

    from pydicom.sr.codedict import codes
    from pydicom.data import get_testdata_file

    # Load a CT image
    source_image = hd.imread(get_testdata_file('CT_small.dcm'))

    # Description of liver segment produced by a manual algorithm
    liver_description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label='liver',
        segmented_property_category=codes.SCT.Organ,
        segmented_property_type=codes.SCT.Liver,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )

    # Pixel array is an unsigned integer array with 0 and 1 values
    mask = np.zeros((128, 128), dtype=np.uint8)
    mask[10:20, 10:20] = 1

    # Construct the Segmentation Image
    seg = hd.seg.Segmentation(
        source_images=[source_image],
        pixel_array=mask,
        segmentation_type=getattr(hd.seg.SegmentationTypeValues, segmentation_type),
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

    path = _save_and_validate(seg, tmp_path)
    assert seg.SegmentationType == segmentation_type
    back = highdicom_pixels(path, [source_image])
    np.testing.assert_array_equal(back[0, :, :, 0], mask)


# --------------------------------------------------------------------------- Multiple frames


@BINARY_OR_LABELMAP
def test_multiple_frames(segmentation_type: str, tmp_path: Path) -> None:
    import numpy as np

    from pydicom.sr.codedict import codes
    from pydicom.data import get_testdata_files

    # Load a series of CT images as a list of pydicom.Datasets
    source_images = [
        hd.imread(f) for f in get_testdata_files('dicomdirtests/77654033/CT2/*')
    ]

    # Sort source frames spatially
    source_images = hd.spatial.sort_datasets(source_images)

    # Create a segmentation by thresholding the CT image at 1000 HU
    thresholded = [
        im.get_frame(1) > 1000
        for im in source_images
    ]

    # Stack segmentations of each frame down axis zero. Now we have an array
    # with shape (frames x height x width)
    mask = np.stack(thresholded, axis=0)

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
        segmentation_type=getattr(hd.seg.SegmentationTypeValues, segmentation_type),
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

    path = _save_and_validate(seg, tmp_path)
    assert mask.shape == (len(source_images), 16, 16) and mask.any()
    back = highdicom_pixels(path, source_images)
    np.testing.assert_array_equal(back[..., 0], mask)


# --------------------------------------------------------------------------- Multiframe source


@BINARY_OR_LABELMAP
def test_multiframe_source(segmentation_type: str, tmp_path: Path) -> None:
    from pydicom.sr.codedict import codes
    from pydicom.data import get_testdata_file

    # Load an enhanced (multiframe) CT image
    source_image = hd.imread(get_testdata_file('eCT_Supplemental.dcm'))

    # Get a stack of all the frames of the image
    image_array = source_image.get_frames()

    # Create a segmentation by thresholding the CT image at 0 HU
    mask = image_array > 0

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
        source_images=[source_image],
        pixel_array=mask,
        segmentation_type=getattr(hd.seg.SegmentationTypeValues, segmentation_type),
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

    path = _save_and_validate(seg, tmp_path)
    assert mask.shape == (2, 512, 512)
    back = highdicom_pixels(path, [source_image])
    np.testing.assert_array_equal(back[..., 0], mask)


# --------------------------------------------------------------------------- Multiple segments


def _ct2_two_segment_descriptions() -> list[Any]:
    """The guide's bone/liver descriptions (shared by both multi-segment forms)."""
    from pydicom.sr.codedict import codes

    # Description of bone segment produced by a manual algorithm
    bone_description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label='bone',
        segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Bone,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    # Description of liver segment produced by a manual algorithm
    liver_description = hd.seg.SegmentDescription(
        segment_number=2,
        segment_label='liver',
        segmented_property_category=codes.SCT.Organ,
        segmented_property_type=codes.SCT.Liver,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    segment_descriptions = [bone_description, liver_description]
    return segment_descriptions


def test_multiple_segments_stacked(tmp_path: Path) -> None:
    import numpy as np

    from pydicom.sr.codedict import codes
    from pydicom.data import get_testdata_files

    # Load a series of CT images as a list of pydicom.Datasets
    source_images = [
        hd.imread(f) for f in get_testdata_files('dicomdirtests/77654033/CT2/*')
    ]

    # Sort source frames spatially
    source_images = hd.spatial.sort_datasets(source_images)
    image_array = np.stack(
        [
            im.get_frame(1) for im in source_images
        ]
    )

    # Create a segmentation by thresholding the CT image at 1000 HU
    thresholded_0 = image_array > 1000

    # ...and a second below 500 HU
    thresholded_1 = image_array < 500

    # Stack the two segments down axis 3
    mask = np.stack([thresholded_0, thresholded_1], axis=3)

    # Description of bone segment produced by a manual algorithm
    bone_description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label='bone',
        segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Bone,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    # Description of liver segment produced by a manual algorithm
    liver_description = hd.seg.SegmentDescription(
        segment_number=2,
        segment_label='liver',
        segmented_property_category=codes.SCT.Organ,
        segmented_property_type=codes.SCT.Liver,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    segment_descriptions = [bone_description, liver_description]

    # Construct the Segmentation Image
    seg = hd.seg.Segmentation(
        source_images=source_images,
        pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segment_descriptions,
        series_instance_uid=hd.UID(),
        series_number=1,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer='Foo Corp.',
        manufacturer_model_name='Multi-Organ Segmentation Algorithm',
        software_versions='0.0.1',
        device_serial_number='1234567890',
    )

    path = _save_and_validate(seg, tmp_path)
    assert len(seg.SegmentSequence) == 2
    np.testing.assert_array_equal(highdicom_pixels(path, source_images), mask)


def test_multiple_segments_label_map(tmp_path: Path) -> None:
    import numpy as np

    from pydicom.data import get_testdata_files

    segment_descriptions = _ct2_two_segment_descriptions()

    # Load a series of CT images as a list of pydicom.Datasets
    source_images = [
        hd.imread(f) for f in get_testdata_files('dicomdirtests/77654033/CT2/*')
    ]

    # Sort source frames spatially
    source_images = hd.spatial.sort_datasets(source_images)
    image_array = np.stack(
        [
            im.get_frame(1) for im in source_images
        ]
    )

    # Create the same two segments as above as a label map
    mask = np.zeros_like(image_array, np.uint8)
    mask[image_array > 1000] = 1
    mask[image_array < 500] = 2

    # Construct the Segmentation Image
    seg = hd.seg.Segmentation(
        source_images=source_images,
        pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segment_descriptions,
        series_instance_uid=hd.UID(),
        series_number=1,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer='Foo Corp.',
        manufacturer_model_name='Multi-Organ Segmentation Algorithm',
        software_versions='0.0.1',
        device_serial_number='1234567890',
    )

    path = _save_and_validate(seg, tmp_path)
    # "produces an equivalent SEG image to the previous snippet"
    stacked = np.stack([mask == 1, mask == 2], axis=3)
    np.testing.assert_array_equal(highdicom_pixels(path, source_images), stacked)


@pytest.mark.parametrize("form", ["stacked", "label-map"])
@pytest.mark.parametrize("segmentation_type", ["BINARY", "LABELMAP"])
def test_input_form_and_storage_type_are_decoupled(form: str, segmentation_type: str,
                                                    tmp_path: Path) -> None:
    """Either input form can be stored as either type; all four give the same masks."""
    source_images, stacked = _ct2_two_segments()
    pixel_array = stacked if form == "stacked" else _to_label_map(stacked)
    seg = hd.seg.Segmentation(
        source_images=source_images,
        pixel_array=pixel_array,
        segmentation_type=segmentation_type,
        segment_descriptions=_ct2_two_segment_descriptions(),
        series_instance_uid=hd.UID(),
        series_number=1,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer='Foo Corp.',
        manufacturer_model_name='Multi-Organ Segmentation Algorithm',
        software_versions='0.0.1',
        device_serial_number='1234567890',
    )
    path = _save_and_validate(seg, tmp_path)
    assert seg.SegmentationType == segmentation_type
    np.testing.assert_array_equal(highdicom_pixels(path, source_images), stacked)


def _ct2_two_segments() -> tuple[list[Any], np.ndarray]:
    from pydicom.data import get_testdata_files

    source_images = hd.spatial.sort_datasets(
        [hd.imread(f) for f in get_testdata_files('dicomdirtests/77654033/CT2/*')])
    image_array = np.stack([im.get_frame(1) for im in source_images])
    return source_images, np.stack([image_array > 1000, image_array < 500], axis=3)


def _to_label_map(stacked: np.ndarray) -> np.ndarray:
    labels = np.zeros(stacked.shape[:3], np.uint8)
    for index in range(stacked.shape[3]):
        labels[stacked[..., index]] = index + 1
    return labels


# --------------------------------------------------------------------------- Fractional


def test_fractional(tmp_path: Path) -> None:
    import numpy as np

    from pydicom.sr.codedict import codes
    from pydicom.data import get_testdata_file

    # Load a CT image
    source_image = hd.imread(get_testdata_file('CT_small.dcm'))

    # Description of liver segment produced by a manual algorithm
    liver_description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label='liver',
        segmented_property_category=codes.SCT.Organ,
        segmented_property_type=codes.SCT.Liver,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )

    # Pixel array is an float array with values between 0 and 1
    mask = np.zeros((128, 128), dtype=float)
    mask[10:20, 10:20] = 0.5
    mask[30:40, 30:40] = 0.75

    # Construct the Segmentation Image
    seg = hd.seg.Segmentation(
        source_images=[source_image],
        pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.FRACTIONAL,
        fractional_type=hd.seg.SegmentationFractionalTypeValues.PROBABILITY,
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

    path = _save_and_validate(seg, tmp_path)
    # "quantized and scaled ... between 0 and the Maximum Fractional Value" (255 by default)
    assert seg.SegmentationFractionalType == 'PROBABILITY'
    assert seg.MaximumFractionalValue == 255
    assert seg.BitsAllocated == 8
    stored = pydicom.dcmread(path).pixel_array
    assert set(np.unique(stored)) == {0, round(0.5 * 255), round(0.75 * 255)}
    back = highdicom_pixels(path, [source_image])
    np.testing.assert_allclose(back[0, :, :, 0], mask, atol=1 / 255)


@pytest.mark.parametrize("max_fractional_value", [1, 100])
def test_implicit_conversion_to_fractional(max_fractional_value: int, tmp_path: Path) -> None:
    """Integer (binary or label map) input stored as FRACTIONAL: 1 -> max_fractional_value."""
    source_images, stacked = _ct2_two_segments()
    seg = hd.seg.Segmentation(
        source_images=source_images,
        pixel_array=_to_label_map(stacked),
        segmentation_type=hd.seg.SegmentationTypeValues.FRACTIONAL,
        segment_descriptions=_ct2_two_segment_descriptions(),
        series_instance_uid=hd.UID(),
        series_number=1,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer='Foo Corp.',
        manufacturer_model_name='Multi-Organ Segmentation Algorithm',
        software_versions='0.0.1',
        device_serial_number='1234567890',
        max_fractional_value=max_fractional_value,
    )
    path = _save_and_validate(seg, tmp_path)
    assert seg.MaximumFractionalValue == max_fractional_value
    stored = pydicom.dcmread(path).pixel_array
    assert set(np.unique(stored)) <= {0, max_fractional_value}
    assert stored.max() == max_fractional_value
    np.testing.assert_array_equal(highdicom_pixels(path, source_images), stacked)


# --------------------------------------------------------------------------- Frame organization


@pytest.mark.parametrize("omit_empty_frames", [True, False], ids=["omit", "keep"])
def test_organization_of_frames(omit_empty_frames: bool, tmp_path: Path) -> None:
    """Frames are described by the Dimension Index and Per-frame Functional Groups."""
    source_images, stacked = _ct2_two_segments()
    stacked = stacked.copy()
    stacked[0] = False  # first source frame empty for both segments
    seg = hd.seg.Segmentation(
        source_images=source_images,
        pixel_array=stacked,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=_ct2_two_segment_descriptions(),
        series_instance_uid=hd.UID(),
        series_number=1,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer='Foo Corp.',
        manufacturer_model_name='Multi-Organ Segmentation Algorithm',
        software_versions='0.0.1',
        device_serial_number='1234567890',
        omit_empty_frames=omit_empty_frames,
    )
    path = _save_and_validate(seg, tmp_path)
    non_empty = int(np.any(stacked, axis=(1, 2)).sum())
    expected_frames = non_empty if omit_empty_frames else stacked.shape[0] * stacked.shape[3]
    assert int(seg.NumberOfFrames) == expected_frames
    assert len(seg.PerFrameFunctionalGroupsSequence) == expected_frames
    assert seg.pixel_array.shape == (expected_frames, 16, 16)
    assert len(seg.DimensionIndexSequence) >= 1
    # Each frame names its segment; (segment, source) pairs are unique.
    pairs = set()
    for item in seg.PerFrameFunctionalGroupsSequence:
        number = item.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        source = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        pairs.add((number, source))
    assert len(pairs) == expected_frames
    np.testing.assert_array_equal(highdicom_pixels(path, source_images), stacked)
