"""The encode options are declared once: ``EncodeOptions`` fields == ``Segmentation``'s option parameters."""
from __future__ import annotations

import dataclasses
import inspect
import typing

import pytest

from monai_dicomseg.errors import InputError
from monai_dicomseg.seg.encode import ENCODE_OPTION_NAMES, EncodeOptions, encode_segmentation
from monai_dicomseg.seg.segmentation import Segmentation

DATA = {"self", "source_images", "pixel_array", "segment_descriptions", "kwargs"}


def test_fields_are_the_constructor_options_with_the_same_types():
    parameters = inspect.signature(Segmentation.__init__).parameters
    assert set(ENCODE_OPTION_NAMES) == set(parameters) - DATA
    hints = typing.get_type_hints(EncodeOptions)
    init_hints = typing.get_type_hints(Segmentation.__init__)
    assert init_hints["dimension_organization_type"] == hints["dimension_organization_type"]
    assert list(inspect.signature(encode_segmentation).parameters) == [
        "dataset", "source_images", "pixel_array", "segment_descriptions", "options"]


def test_options_are_frozen_and_normalised_once():
    parameters = inspect.signature(Segmentation.__init__).parameters
    defaults = {name: parameters[name].default for name in ENCODE_OPTION_NAMES
                if parameters[name].default is not inspect.Parameter.empty}
    options = EncodeOptions(segmentation_type="BINARY", series_instance_uid="1.2", series_number=1,
                            sop_instance_uid="1.2.3", instance_number=1, manufacturer="x",
                            manufacturer_model_name="x", software_versions="0", device_serial_number="0",
                            **{**defaults, "fractional_type": None})
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.workers = 2  # type: ignore[misc]
    normalised = options.normalised()
    assert normalised.segmentation_type.value == "BINARY" and normalised.fractional_type.value == "PROBABILITY"
    assert normalised.normalised() == normalised
    with pytest.raises(InputError, match=r"max_fractional_value must be in \[1, 255\]; got 0"):
        dataclasses.replace(options, max_fractional_value=0).normalised()
