"""One checker for the axis codes of a ``space=`` argument (RAS / LPS)."""
from __future__ import annotations

import pytest

from monai_dicomseg.errors import InputError
from monai_dicomseg.geometry.affine import LPS, RAS, SPACES, check_space


class _SpaceKey:  # MONAI's SpaceKeys members carry the code in .value
    value = "lps"


@pytest.mark.parametrize("given, expected", [("RAS", RAS), ("ras", RAS), ("LPS", LPS), (_SpaceKey(), LPS)])
def test_check_space_normalises(given, expected):
    assert check_space(given) == expected and expected in SPACES


@pytest.mark.parametrize("bad", ["RAI", "", None, 3])
def test_check_space_rejects(bad):
    with pytest.raises(InputError, match=r"space must be 'RAS' or 'LPS'; got"):
        check_space(bad)
    with pytest.raises(InputError, match=r"output_space must be 'RAS' or 'LPS'"):
        check_space(bad, "output_space")


def test_every_loader_uses_the_checker():
    from monai_dicomseg.transforms.load import LoadDicomSeg
    from monai_dicomseg.transforms.load_series import LoadDicomSeries

    for make in (LoadDicomSeg, LoadDicomSeries):
        with pytest.raises(InputError, match=r"space must be 'RAS' or 'LPS'; got 'RAI'"):
            make(space="RAI")
        assert make(space="lps").space == LPS
