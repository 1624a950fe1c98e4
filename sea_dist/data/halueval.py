"""HaluEval QA: knowledge + question, the right answer and a hallucinated answer.

The QA subset of HaluEval (Li et al. 2023) ships as JSON lines (``qa_data.json``), and re-hosted
copies are often one JSON list; both are accepted. Rows have no id, so ids are ``halueval-<row>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sea_dist.data.schema import Demonstration, check_demonstrations, require_columns
from sea_dist.data.textfile import iter_jsonl, iter_lines, read_json, require_file
from sea_dist.errors import DataError

FIELDS = ("knowledge", "question", "right_answer", "hallucinated_answer")


def _is_json_list(path: Path) -> bool:
    for _number, text in iter_lines(path):
        stripped = text.lstrip()
        if stripped:
            return stripped.startswith("[")
    return False


def _rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    if not _is_json_list(path):
        for number, row in iter_jsonl(path):
            yield f"{path.name} line {number}", row
        return
    data = read_json(path)
    if not isinstance(data, list) or not data:
        raise DataError(
            f"{path.name}: expected a non-empty JSON list of objects, found "
            f"{'an empty list' if data == [] else type(data).__name__}; "
            "regenerate or replace the file"
        )
    for index, row in enumerate(data):
        if not isinstance(row, dict):
            raise DataError(
                f"{path.name} item {index}: expected a JSON object, found "
                f"{type(row).__name__}; fix that item"
            )
        yield f"{path.name} item {index}", row


def _text(row: dict[str, Any], name: str, where: str) -> str:
    value = row[name]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(
            f"{where}: expected text in {name!r}, found {type(value).__name__}; fix that row"
        )
    return value.strip()


def halueval_demonstrations(path: str | Path) -> list[Demonstration]:
    """One demonstration per HaluEval QA row.

    The prompt is ``knowledge + " " + question`` (just the question when knowledge is empty);
    positive is ``right_answer`` and negative ``hallucinated_answer``.

    Args:
        path: HaluEval QA file, JSON lines or a JSON list.

    Raises:
        DataError: missing file or fields, bad JSON (line named) or encoding, empty answers.
    """
    file = require_file(path, "HaluEval QA JSON")
    demos = []
    for index, (where, row) in enumerate(_rows(file)):
        require_columns(where, row, FIELDS, "use HaluEval's qa_data.json rows")
        knowledge = _text(row, "knowledge", where)
        question = _text(row, "question", where)
        demos.append(
            Demonstration(
                id=f"halueval-{index}",
                prompt=f"{knowledge} {question}" if knowledge else question,
                positive=_text(row, "right_answer", where),
                negative=_text(row, "hallucinated_answer", where),
                metadata={"source": "halueval", "row": index},
            )
        )
    return check_demonstrations(demos, file.name)
