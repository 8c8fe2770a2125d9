"""Issue 22: option lists are derived from signatures (options.options_of), not hand-copied."""
from __future__ import annotations

import pytest

from monai_dicomseg.errors import InputTypeError
from monai_dicomseg.options import check_options, options_of


def _function(data, /, source, mode="a", *args, threshold=None, dtype=None, **kwargs):
    return None


class _Transform:
    def __init__(self, keys, mode="labelmap", *, on_error="raise", **options):
        pass


def test_options_are_keyword_parameters_with_defaults():
    assert options_of(_function) == ("mode", "threshold", "dtype")  # not data (positional-only), source, *args
    assert options_of(_Transform) == ("mode", "on_error")  # a class: its __init__ without self and keys
    assert options_of(_Transform, ("label_map", "mode"), exclude=("mode",)) == ("on_error", "label_map")


def test_derived_lists_are_what_the_entry_points_accept():
    pytest.importorskip("monai")
    from monai_dicomseg.io.reader import READER_OPTIONS, DicomSegReader
    from monai_dicomseg.io.segments import SELECTION_OPTIONS
    from monai_dicomseg.transforms.load import LOAD_OPTIONS, LoadDicomSeg

    assert set(LOAD_OPTIONS) == {"mode", "selection", "rescale_fractional", "skip_overlap_checks", "space", "dtype",
                                 "threshold", "on_error", "allow_other_series", *SELECTION_OPTIONS}
    assert set(READER_OPTIONS) == {"selection", "rescale_fractional", "skip_overlap_checks", "space", "dtype",
                                   "threshold", "allow_other_series", "source_root", "series_resolver",
                                   "find_series", "irregular_slices", *SELECTION_OPTIONS}
    with pytest.raises(InputTypeError, match="did you mean 'threshold'"):
        LoadDicomSeg(treshold=0.5)
    with pytest.raises(InputTypeError, match="did you mean 'find_series'"):
        DicomSegReader(find_serie=True)


def test_check_options_behaviour_kept():
    check_options({"mode": 1}, options_of(_Transform), "T")
    with pytest.raises(InputTypeError, match=r"T got unexpected keyword argument 'moda' \(did you mean 'mode'\?\)"):
        check_options({"moda": 1}, options_of(_Transform), "T")
