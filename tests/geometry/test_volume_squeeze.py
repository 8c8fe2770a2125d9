"""``Volume.squeeze_channel`` (highdicom's Volume API, kept for the guide's vocabulary)."""
from __future__ import annotations

import numpy as np

from monai_dicomseg.geometry.volume import Volume


def test_squeeze_channel_drops_only_singleton_channel_axes():
    array = np.arange(2 * 3 * 4 * 1 * 2, dtype=np.uint8).reshape(2, 3, 4, 1, 2)
    volume = Volume(array, np.eye(4), coordinate_system="PATIENT",
                    channels={"SegmentNumber": [1], "OpticalPathIdentifier": ["x", "y"]})
    squeezed = volume.squeeze_channel()
    assert squeezed.shape == (2, 3, 4, 2)
    np.testing.assert_array_equal(squeezed.array, array[:, :, :, 0, :])
    np.testing.assert_array_equal(squeezed.affine, volume.affine)
    assert squeezed.squeeze_channel().shape == (2, 3, 4, 2)
