"""DESIGN.md's one-way layering: the SEG system works without torch or MONAI loaded."""
from __future__ import annotations

import subprocess
import sys

import pytest

CODE = """
import sys
import numpy as np
import monai_dicomseg as hd
import monai_dicomseg.codec.compression, monai_dicomseg.codec.decode, monai_dicomseg.codec.frame_index
import monai_dicomseg.geometry.volume, monai_dicomseg.geometry.series
import monai_dicomseg.seg.encode, monai_dicomseg.seg.reader, monai_dicomseg.seg.pyramid
from monai_dicomseg.synthetic import make_ct_series
from pydicom.sr.codedict import codes
series = make_ct_series(shape=(3, 16, 16))
seg = hd.seg.Segmentation(
    source_images=series, pixel_array=np.ones((3, 16, 16), np.uint8), segmentation_type="LABELMAP",
    segment_descriptions=[hd.seg.SegmentDescription(
        segment_number=1, segment_label="a", segmented_property_category=codes.SCT.Organ,
        segmented_property_type=codes.SCT.Liver, algorithm_type="MANUAL")],
    series_instance_uid=hd.UID(), series_number=1, sop_instance_uid=hd.UID(), instance_number=1,
    manufacturer="x", manufacturer_model_name="x", software_versions="0", device_serial_number="0")
assert seg.get_volume(combine_segments=True).array.sum() == 3 * 16 * 16
loaded = sorted(name for name in ("torch", "monai", "highdicom", "nibabel") if name in sys.modules)
print(",".join(loaded))
"""


def test_seg_system_loads_without_torch_or_monai():
    result = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"imported heavy/optional packages: {result.stdout.strip()}"


@pytest.mark.parametrize("package", ["codec", "geometry"])
def test_low_layers_do_not_import_upper_layers(package):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "monai_dicomseg" / package
    forbidden = ("import torch", "from torch", "import monai\n", "from monai ", "from monai.",
                 "monai_dicomseg.seg", "monai_dicomseg.io", "monai_dicomseg.transforms",
                 "monai_dicomseg.data")
    for source in root.glob("*.py"):
        text = source.read_text()
        for needle in forbidden:
            assert needle not in text, f"{source.name} contains {needle!r}"
