"""evaluate.truthfulqa_file / bbq_file: score a fold or any file, looked up like the others."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sea_dist.config import SeaConfig, config_from_dict
from sea_dist.errors import ConfigError
from sea_dist.evaluate.runner import task_file

TQA_HEADER = "Type,Category,Question,Best Answer,Correct Answers,Incorrect Answers,Source\n"


def _config(**evaluate: object) -> SeaConfig:
    return config_from_dict({"evaluate": evaluate}, SeaConfig)


def _data_dir(root: Path) -> Path:
    folder = root / "data" / "truthfulqa"
    folder.mkdir(parents=True)
    for name in ("TruthfulQA.csv", "TruthfulQA-2.csv"):
        (folder / name).write_text(TQA_HEADER + f"A,B,{name}?,yes,yes,no,s\n")
    return root / "data"


def test_a_fold_name_is_found_in_the_data_locations(
    tmp_path: Path, no_benchmark_data: None
) -> None:
    data = _data_dir(tmp_path)
    notes: list[str] = []
    config = _config(data_dir=str(data), truthfulqa_file="TruthfulQA-2.csv")
    assert task_file(config, "truthfulqa", "x", notes) == data / "truthfulqa" / "TruthfulQA-2.csv"
    default = _config(data_dir=str(data))
    assert task_file(default, "truthfulqa", "x", notes) == data / "truthfulqa" / "TruthfulQA.csv"
    assert notes == []


def test_a_path_is_used_as_given(tmp_path: Path, no_benchmark_data: None) -> None:
    data = _data_dir(tmp_path)
    mine = tmp_path / "elsewhere" / "my-questions.csv"
    mine.parent.mkdir()
    shutil.copy(data / "truthfulqa" / "TruthfulQA-2.csv", mine)
    notes: list[str] = []
    assert task_file(_config(truthfulqa_file=str(mine)), "truthfulqa", "x", notes) == mine


def test_a_missing_file_is_said_with_the_fix(tmp_path: Path, no_benchmark_data: None) -> None:
    notes: list[str] = []
    fold1 = _config(truthfulqa_file="TruthfulQA-1.csv")
    assert task_file(fold1, "truthfulqa", "skip", notes) is None
    assert "truthfulqa/TruthfulQA-1.csv" in notes[0] and "sea-dist data fetch" in notes[0]
    notes.clear()
    absent = str(tmp_path / "nowhere" / "q.csv")
    assert task_file(_config(bbq_file=absent), "bbq", "skip", notes) is None
    assert notes == [f"skip: evaluate.bbq_file: expected a file, found no file at {absent!r}"]


def test_an_empty_file_setting_is_refused() -> None:
    with pytest.raises(ConfigError, match="evaluate.truthfulqa_file: expected a file name"):
        _config(truthfulqa_file=" ")
