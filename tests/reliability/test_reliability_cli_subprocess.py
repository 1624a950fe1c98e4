"""A sample of the corpus as real ``sea-dist`` processes: exit code 2, one line, no traceback.

The in-process corpus (test_reliability_cli_corpus.py) covers every case; these prove that what
a shell user sees matches it (the interpreter prints no traceback and exits 2), for each kind of
input. They re-run corpus inputs, so they are not counted again as bad inputs.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from reliability_corpus import CLI_CASES
from reliability_workspace import Workspace
from tree_snapshot import changes, tree_digest

pytestmark = pytest.mark.integration

SAMPLE = (  # one per kind: config, argument, reference, planted pickle, an argparse range check
    "unknown-top-key",
    "positive-energy-above-one",
    "ref-traversal",
    "fit-projections-pickle",
    "serve-port-out-of-range",
)
CASES = {case.id: case for case in CLI_CASES}


def _param(case_id: str) -> object:
    bug = CASES[case_id].bug
    marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
    return pytest.param(case_id, id=case_id, marks=marks)


@pytest.mark.parametrize("case_id", [_param(c) for c in SAMPLE])
def test_process_exits_2_with_one_line(case_id: str, workspace: Workspace) -> None:
    case = CASES[case_id]
    before = tree_digest(workspace.root)
    result = subprocess.run(
        [sys.executable, "-m", "sea_dist.cli", *workspace.expand(case.argv)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=workspace.cwd,
        env={**_clean_env(), "PYTHONWARNINGS": "ignore"},
        check=False,
    )
    text = (result.stdout + result.stderr).strip()
    assert "Traceback" not in text, text
    assert result.returncode == 2, text
    assert len(text.splitlines()) == 1 and case.expect in text, text
    assert changes(before, tree_digest(workspace.root)) == []
    assert not workspace.canary.exists()


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "SEA_DIST_REGISTRY"}
