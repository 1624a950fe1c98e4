"""default_data_dir: data.data_dir ($SEA_DIST_DATA_DIR through the entry layer), then
../shared/data from the cwd or the repo root."""

from __future__ import annotations

from pathlib import Path

import pytest

from sea_dist.cli.environment import apply_environment
from sea_dist.config import SeaConfig
from sea_dist.data import default_data_dir, locate


def test_a_given_folder_wins(tmp_path: Path) -> None:
    assert default_data_dir(tmp_path / "mine") == tmp_path / "mine"


def test_environment_variable_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEA_DIST_DATA_DIR", str(tmp_path / "mine"))
    data = apply_environment(SeaConfig()).data
    assert default_data_dir(data.data_dir) == tmp_path / "mine"


def test_relative_to_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEA_DIST_DATA_DIR", raising=False)
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    assert default_data_dir() == (tmp_path / "shared" / "data").resolve()


def test_none_when_nothing_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEA_DIST_DATA_DIR", raising=False)
    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a" / "b")
    # Stand-in for an installed package far from any checkout.
    monkeypatch.setattr(locate, "REPO_ROOT", tmp_path / "a" / "b")
    assert default_data_dir() is None


def test_relative_to_the_repository_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEA_DIST_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    expected = locate.REPO_ROOT.parent / "shared" / "data"
    if not expected.is_dir():
        pytest.skip(f"no shared data folder next to the checkout at {expected}")
    assert default_data_dir() == expected.resolve()
