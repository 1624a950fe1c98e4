"""The counts in docs/reliability.md are the counts of this suite (recomputed by collection)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from reliability_counts import END, START

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_documented_counts_match_the_suite() -> None:
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("reliability_counts.py"))],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    computed = result.stdout[result.stdout.index(START) : result.stdout.index(END) + len(END)]
    doc = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
    documented = doc[doc.index(START) : doc.index(END) + len(END)]
    assert documented == computed, "run tests/reliability/reliability_counts.py, paste its block"
