"""Fixtures of the reliability suite and its markers (registered in pyproject.toml).

- ``fault``: the test injects a fault (a killed process, a full or read-only disk, a failing
  write, a corrupted file) and checks that it is survived with no data lost.
- ``bad_input``: the test feeds one bad input and checks that it is refused cleanly.

``reliability_counts.py`` counts the collected tests with each marker for docs/reliability.md.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (synthetic_fit)

from reliability_workspace import Workspace, build_workspace  # noqa: E402


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of this suite is in the ``reliability`` tier (not run by a bare ``pytest``)."""
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A populated workspace (see reliability_workspace), shared by a module's tests."""
    return build_workspace(tmp_path_factory.mktemp("workspace"))


@pytest.fixture
def in_workspace(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """The workspace, with the working directory in it and no registry from the environment."""
    monkeypatch.chdir(workspace.cwd)
    monkeypatch.delenv("SEA_DIST_REGISTRY", raising=False)
    yield workspace
    assert not workspace.canary.exists(), "a pickle was loaded"


@dataclass(frozen=True)
class Served:
    """A ``sea-dist registry serve`` process and what it printed when it started."""

    url: str
    banner: str
    process: subprocess.Popen[str]
    log: Path


@pytest.fixture(scope="module")
def served(workspace: Workspace) -> Iterator[Served]:
    """The workspace registry served by the real CLI on 127.0.0.1 (default host), any free port."""
    log = workspace.root / "serve.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "sea_dist.cli", "registry", "serve"]
            + ["--registry", str(workspace.registry), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=workspace.cwd,
        )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert " at http://" in banner, log.read_text()
        yield Served(banner.split(" at ")[1].split()[0], banner, process, log)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)
    assert "Traceback" not in log.read_text(), log.read_text()
