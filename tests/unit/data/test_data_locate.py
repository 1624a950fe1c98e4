"""Benchmark file lookup order, the missing-data hint, and the pins against ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from sea_dist.cli.environment import apply_environment
from sea_dist.config import DataConfig, SeaConfig
from sea_dist.data import locate
from sea_dist.data.fetch import file_sha256
from sea_dist.data.locate import (
    data_locations,
    find_benchmark_file,
    locate_benchmark_file,
    missing_data_hint,
)
from sea_dist.data.sources import SOURCES

RELATIVE = "truthfulqa/TruthfulQA-1.csv"


@pytest.fixture
def four_places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The file in all four places: config, $SEA_DIST_DATA_DIR, the cache, ../shared/data."""
    places = {
        "evaluate.data_dir": tmp_path / "config-dir",
        "$SEA_DIST_DATA_DIR": tmp_path / "env-dir",
        "data cache": tmp_path / "cache",
        "../shared/data": tmp_path / "work" / "shared" / "data",
    }
    for folder in places.values():
        (folder / "truthfulqa").mkdir(parents=True)
        (folder / RELATIVE).write_text(str(folder))
    (tmp_path / "work" / "project").mkdir()
    monkeypatch.chdir(tmp_path / "work" / "project")
    monkeypatch.setattr(locate, "REPO_ROOT", tmp_path / "elsewhere" / "checkout")
    return places


def _data(places: dict[str, Path], *, data_dir: bool = True) -> DataConfig:
    """data.data_dir (what $SEA_DIST_DATA_DIR fills) and data.cache_dir, passed explicitly."""
    folder = str(places["$SEA_DIST_DATA_DIR"]) if data_dir else None
    return DataConfig(data_dir=folder, cache_dir=str(places["data cache"]))


def test_each_location_wins_over_the_later_ones(four_places: dict[str, Path]) -> None:
    config_dir = four_places["evaluate.data_dir"]
    data = _data(four_places)
    assert [loc.origin for loc in data_locations(config_dir, data=data)] == list(four_places)
    for origin, folder in four_places.items():
        found = locate_benchmark_file(RELATIVE, config_dir, data=data)
        assert found is not None
        assert found[0].origin == origin and found[1] == folder / RELATIVE
        (folder / RELATIVE).unlink()  # the next place takes over
    assert find_benchmark_file(RELATIVE, config_dir, data=data) is None


def test_the_environment_fills_the_same_places(
    four_places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """$SEA_DIST_DATA_DIR and $SEA_DIST_DATA_CACHE reach the lookup through the entry layer."""
    monkeypatch.setenv("SEA_DIST_DATA_DIR", str(four_places["$SEA_DIST_DATA_DIR"]))
    monkeypatch.setenv("SEA_DIST_DATA_CACHE", str(four_places["data cache"]))
    data = apply_environment(SeaConfig()).data
    config_dir = four_places["evaluate.data_dir"]
    assert data_locations(config_dir, data=data) == data_locations(
        config_dir, data=_data(four_places)
    )
    given = str(four_places["evaluate.data_dir"])  # the config's value wins over the variable
    assert apply_environment(SeaConfig(data=DataConfig(data_dir=given))).data.data_dir == given


def test_a_folder_without_the_file_falls_through(four_places: dict[str, Path]) -> None:
    empty = four_places["evaluate.data_dir"].parent / "empty"
    empty.mkdir()
    found = find_benchmark_file(RELATIVE, empty, data=_data(four_places))
    assert found == four_places["$SEA_DIST_DATA_DIR"] / RELATIVE


def test_without_config_or_env_the_cache_comes_first(four_places: dict[str, Path]) -> None:
    data = _data(four_places, data_dir=False)
    assert [loc.origin for loc in data_locations(None, data=data)] == [
        "data cache",
        "../shared/data",
    ]
    assert find_benchmark_file(RELATIVE, data=data) == four_places["data cache"] / RELATIVE


def test_hint_names_the_file_the_places_and_the_command(
    four_places: dict[str, Path],
) -> None:
    hint = missing_data_hint("truthfulqa/TruthfulQA.csv", data=_data(four_places))
    assert hint.startswith("truthfulqa/TruthfulQA.csv: expected it in evaluate.data_dir, ")
    assert str(four_places["data cache"]) in hint and "\n" not in hint
    assert hint.endswith("; fix: sea-dist data fetch truthfulqa")
    assert missing_data_hint("bbq").endswith("fix: sea-dist data fetch bbq")
    assert "bbq/bbq-validation-disambig.jsonl" in missing_data_hint("bbq")
    assert "fix: put it below" in missing_data_hint("halueval/qa_data.json")


def test_pins_are_well_formed_and_match_the_reader_layout() -> None:
    relative = [f.relative_path for s in SOURCES.values() for f in s.files]
    for default in locate.DEFAULT_FILES.values():
        assert default.as_posix() in relative
    for source in SOURCES.values():
        commit = source.base_url.rsplit("/", 1)[-1]  # pinned by a full commit, not a branch
        assert len(commit) == 40 and int(commit, 16) >= 0
        for pinned in source.files:
            assert len(pinned.sha256) == 64 and int(pinned.sha256, 16) >= 0
            assert pinned.size > 0 and pinned.url(source.base_url).startswith("https://")


def test_pins_match_the_shared_copies() -> None:
    shared = locate.REPO_ROOT.parent / "shared" / "data"
    if not shared.is_dir():
        pytest.skip(f"no shared data folder at {shared}")
    for source in SOURCES.values():
        for pinned in source.files:
            path = shared / pinned.relative_path
            assert path.stat().st_size == pinned.size, pinned.relative_path
            assert file_sha256(path) == pinned.sha256, pinned.relative_path
