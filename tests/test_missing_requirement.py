"""``oracles.missing_requirement``: a missing test dependency skips locally and fails under ``CI=true``."""
from __future__ import annotations

import pytest
from _pytest.outcomes import Failed, Skipped
from oracles import missing_requirement


@pytest.mark.parametrize("ci", ["", "false", "0"])
def test_skips_outside_ci(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(Skipped, match="dcmqi not installed"):
        missing_requirement("dcmqi not installed", "dcmqi")


@pytest.mark.parametrize("ci", ["true", "TRUE"])
def test_fails_in_ci(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(Failed, match=r"dcmqi not installed \(CI=true: dcmqi is required\)"):
        missing_requirement("dcmqi not installed", "dcmqi")
