"""The functions behind the subcommands refuse unknown keywords, naming the closest option."""
from __future__ import annotations

import pytest

from monai_dicomseg.cli.convert import convert_seg
from monai_dicomseg.cli.from_nifti import nifti_to_seg
from monai_dicomseg.cli.info import describe_seg
from monai_dicomseg.cli.to_nifti import seg_to_nifti
from monai_dicomseg.errors import InputTypeError


@pytest.mark.parametrize("call, typo, meant", [
    (lambda **kw: nifti_to_seg("a.nii.gz", "series", "out.dcm", **kw), "segmentaton_type", "segmentation_type"),
    (lambda **kw: nifti_to_seg("a.nii.gz", "series", "out.dcm", **kw), "lables", "labels"),
    (lambda **kw: convert_seg("a.dcm", "out.dcm", segmentation_type="BINARY", **kw), "overwite", "overwrite"),
    (lambda **kw: seg_to_nifti("a.dcm", "out.nii.gz", **kw), "per_segmnt", "per_segment"),
    (lambda **kw: describe_seg("a.dcm", **kw), "pth", "path"),
], ids=["from_nifti_type", "from_nifti_labels", "convert", "to_nifti", "info"])
def test_cli_function_typo(tmp_path, monkeypatch, call, typo, meant):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputTypeError, match=f"'{typo}' \\(did you mean '{meant}'\\?\\)"):
        call(**{typo: True})
    assert not list(tmp_path.iterdir())
