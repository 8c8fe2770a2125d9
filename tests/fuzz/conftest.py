"""Fuzz suite settings: small in CI, long by hand (``HYPOTHESIS_PROFILE=fuzz``); outcome report."""
from __future__ import annotations

import os
from typing import Any

LONG = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"
"""``HYPOTHESIS_PROFILE=fuzz`` runs the long profile (hundreds of cases per seed and mutation)."""


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from fuzz.harness import OUTCOMES

    if not OUTCOMES:
        return
    cases = sum(v for k, v in OUTCOMES.items() if not k.startswith("accessor "))
    terminalreporter.section(f"fuzz outcomes ({cases} cases, {'long' if LONG else 'CI'} profile)")
    for key, count in sorted(OUTCOMES.items(), key=lambda kv: (kv[0].startswith("accessor "), -kv[1], kv[0])):
        terminalreporter.write_line(f"{count:7d}  {key}")
