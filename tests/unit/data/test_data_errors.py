"""Every malformed input gives one DataError line that says what was expected, found and how
to fix it (the assertions check the message names the line, row, column or id)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sea_dist.config import DataConfig
from sea_dist.data import (
    MAX_ROW_BYTES,
    bbq_demonstrations,
    halueval_demonstrations,
    load_bbq_items,
    load_demonstrations,
    load_table,
    load_truthfulqa_items,
    make_template,
)
from sea_dist.errors import DataError

GOOD = {"id": "a", "prompt": "Q?", "positive": "yes", "negative": "no"}
TQA_HEADER = "Type,Category,Question,Best Answer,Correct Answers,Incorrect Answers,Source"


def _error(call: Callable[..., object], *args: object, **kwargs: object) -> str:
    with pytest.raises(DataError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "expected" in message
    return message


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_missing_file_and_directory(tmp_path: Path) -> None:
    message = _error(
        load_demonstrations, DataConfig(source="truthfulqa", path=str(tmp_path / "nope.csv"))
    )
    assert "found nothing at" in message and "nope.csv" in message
    assert "SEA_DIST_DATA_DIR" in message
    message = _error(load_table, tmp_path, "jsonl")
    assert "directory" in message


def test_missing_default_data_names_the_file_and_the_fix(no_benchmark_data: None) -> None:
    message = _error(load_demonstrations, DataConfig(source="bbq"))
    assert "bbq/bbq-validation-disambig.jsonl" in message
    assert "sea-dist data fetch bbq" in message and "data.path" in message


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_empty_file(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"empty.{fmt}"
    path.write_bytes(b"")
    assert "empty file" in _error(load_table, path, fmt)


def test_blank_and_header_only_files(tmp_path: Path) -> None:
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n  \n", encoding="utf-8")
    assert "only blank lines" in _error(load_table, blank, "jsonl")
    header = tmp_path / "header.csv"
    header.write_text("id,prompt,positive,negative\n", encoding="utf-8")
    assert "rows after the CSV header, found none" in _error(load_table, header, "csv")
    empty_parquet = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"prompt": pa.array([], pa.string())}), empty_parquet)
    assert "empty Parquet table" in _error(load_table, empty_parquet, "parquet")
    empty_list = tmp_path / "halu.json"
    empty_list.write_text("[]", encoding="utf-8")
    assert "empty list" in _error(halueval_demonstrations, empty_list)


def test_missing_columns_are_named_with_the_columns_found(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"question": "Q?", "positive": "a", "negative": "b"}])
    message = _error(load_table, path, "jsonl")
    assert "line 1" in message and "'prompt'" in message and "'question'" in message
    assert "data.columns" in message

    csv_path = tmp_path / "d.csv"
    csv_path.write_text("q,good,bad\nQ?,a,b\n", encoding="utf-8")
    message = _error(load_table, csv_path, "csv", {"prompt": "q"})
    assert "'positive', 'negative'" in message and "'q', 'good', 'bad'" in message

    parquet_path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"prompt": ["Q?"], "positive": ["a"], "neg": ["b"]}), parquet_path)
    message = _error(load_table, parquet_path, "parquet", {"id": "uid"})
    assert "'uid'" in message and "'negative'" in message and "'neg'" in message

    tqa = tmp_path / "tqa.csv"
    tqa.write_text(
        "Type,Category,Question,Correct Answers,Incorrect Answers\nA,B,Q?,yes,no\n",
        encoding="utf-8",
    )
    message = _error(load_truthfulqa_items, tqa)
    assert "'Best Answer'" in message and "'Question'" in message

    bbq = _jsonl(tmp_path / "bbq.jsonl", [{"context": "c", "question": "q"}])
    message = _error(load_bbq_items, bbq)
    assert "'ans0'" in message and "'answer_info'" in message and "'context'" in message

    halu = _jsonl(tmp_path / "halu.json", [{"question": "q", "right_answer": "r"}])
    assert "'hallucinated_answer'" in _error(halueval_demonstrations, halu)


def test_non_utf8_bytes_name_line_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    line1 = json.dumps(GOOD).encode() + b"\n"
    line2 = b'{"id": "b", "prompt": "caf\xe9", "positive": "x", "negative": "y"}\n'
    path.write_bytes(line1 + line2)
    message = _error(load_table, path, "jsonl")
    offset = len(line1) + line2.index(b"\xe9")
    assert "line 2" in message and f"byte offset {offset}" in message and "0xe9" in message
    assert "UTF-8" in message

    csv_path = tmp_path / "bad.csv"
    data = b"id,prompt,positive,negative\na,Q?,yes,no\nb,\xff?,yes,no\n"
    csv_path.write_bytes(data)
    message = _error(load_table, csv_path, "csv")
    bad_at = data.index(b"\xff")
    assert "line 3" in message and f"byte offset {bad_at}" in message

    halu = tmp_path / "halu.json"
    halu.write_bytes(b'[\n {"knowledge": "k",\n  "question": "\xc3("}\n]')
    assert "line 3" in _error(halueval_demonstrations, halu)

    # pyarrow stores string cells without validating them, so bad bytes surface on conversion.
    parquet_path = tmp_path / "bad.parquet"
    prompts = pa.array([b"ok", b"caf\xe9"], pa.binary()).view(pa.string())
    pq.write_table(
        pa.table({"prompt": prompts, "positive": ["a", "b"], "negative": ["c", "d"]}), parquet_path
    )
    message = _error(load_table, parquet_path, "parquet")
    assert "row 1" in message and "'prompt'" in message and "byte offset 3" in message


def test_duplicate_ids_name_the_id(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [GOOD, {**GOOD, "id": "b"}, GOOD])
    message = _error(load_table, path, "jsonl")
    assert "'a'" in message and "rows 0 and 2" in message

    tqa = tmp_path / "tqa.csv"
    tqa.write_text(f"{TQA_HEADER}\nA,C,Same?,b,c,i,s\nA,C,Same?,b,c,i,s\n", encoding="utf-8")
    assert "line 3" in _error(load_truthfulqa_items, tqa)


@pytest.mark.parametrize("field", ["prompt", "positive", "negative"])
def test_empty_prompt_or_answer_names_the_row(tmp_path: Path, field: str) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [GOOD, {**GOOD, "id": "b", field: "  "}])
    message = _error(load_table, path, "jsonl")
    assert "row 1" in message and "'b'" in message and f"non-empty {field}" in message


def test_empty_truthfulqa_cells(tmp_path: Path) -> None:
    tqa = tmp_path / "tqa.csv"
    tqa.write_text(f"{TQA_HEADER}\nA,C,Q?,best,c,i,s\nA,C,Q2?,b,c,; ,s\n", encoding="utf-8")
    message = _error(load_truthfulqa_items, tqa)
    assert "line 3" in message and "'Incorrect Answers'" in message


def test_rows_over_one_megabyte_are_refused(tmp_path: Path) -> None:
    big = "x" * (MAX_ROW_BYTES + 10)
    path = _jsonl(tmp_path / "d.jsonl", [GOOD, {**GOOD, "id": "b", "prompt": big}])
    message = _error(load_table, path, "jsonl")
    assert "line 2" in message and "1 MB" in message

    csv_path = tmp_path / "d.csv"
    csv_path.write_text(f'id,prompt,positive,negative\na,Q?,y,n\nb,"{big}",y,n\n', encoding="utf-8")
    message = _error(load_table, csv_path, "csv")
    assert "line 3" in message and "1 MB" in message

    # A row under the per-line limit in each cell but over 1 MB in total (Parquet has no lines).
    half = "y" * (MAX_ROW_BYTES // 2 + 10)
    parquet_path = tmp_path / "d.parquet"
    pq.write_table(
        pa.table({"prompt": ["Q?", half], "positive": ["y", half], "negative": ["n", "n"]}),
        parquet_path,
    )
    message = _error(load_table, parquet_path, "parquet")
    assert "row 1" in message and "1 MB" in message


def test_json_syntax_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(GOOD) + '\n{"id": "b", prompt: 1}\n', encoding="utf-8")
    message = _error(load_table, path, "jsonl")
    assert "line 2" in message and "invalid JSON" in message

    halu = tmp_path / "halu.json"
    halu.write_text(
        '[\n {"knowledge": "k", "question": "q",\n'
        '  "right_answer": "r", "hallucinated_answer": "h"},\n'
        ' {"knowledge": "k" "question": "q"}\n]',
        encoding="utf-8",
    )
    assert "line 4" in _error(halueval_demonstrations, halu)

    not_object = tmp_path / "list.jsonl"
    not_object.write_text("[1, 2]\n", encoding="utf-8")
    assert "line 1" in _error(load_table, not_object, "jsonl")


def test_csv_row_with_wrong_cell_count(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(
        "id,prompt,positive,negative\na,Q?,yes,no\nb,Q, two?,yes,no\n", encoding="utf-8"
    )
    message = _error(load_table, path, "csv")
    assert "line 3" in message and "expected 4 cells" in message and "found 5" in message


def test_non_text_value(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{**GOOD, "positive": ["a", "b"]}])
    message = _error(load_table, path, "jsonl")
    assert "line 1" in message and "'positive'" in message and "list" in message


def _bbq_row(**overrides: object) -> dict[str, Any]:
    row = {
        "example_id": 1,
        "category": "Age",
        "context": "Two people talked.",
        "question": "Who forgot?",
        "ans0": "The old man",
        "ans1": "Unknown",
        "ans2": "The young man",
        "label": 2,
        "answer_info": {
            "ans0": ["old", "old"],
            "ans1": ["Unknown", "unknown"],
            "ans2": ["young", "nonOld"],
        },
    }
    row.update(overrides)
    return row


def test_bbq_row_errors(tmp_path: Path) -> None:
    ok = _jsonl(tmp_path / "ok.jsonl", [_bbq_row()])
    assert bbq_demonstrations(ok)[0].negative == "The old man"

    ambiguous = _jsonl(tmp_path / "ambig.jsonl", [_bbq_row(), _bbq_row(example_id=2, label=1)])
    message = _error(bbq_demonstrations, ambiguous)
    assert "line 2" in message and "unknown" in message and "disambig" in message
    assert len(load_bbq_items(ambiguous)) == 2  # evaluation items may be ambiguous

    no_unknown = _jsonl(
        tmp_path / "nounk.jsonl",
        [
            _bbq_row(
                answer_info={
                    "ans0": ["old", "old"],
                    "ans1": ["x", "x"],
                    "ans2": ["young", "nonOld"],
                }
            )
        ],
    )
    assert "exactly one answer tagged 'unknown'" in _error(load_bbq_items, no_unknown)

    bad_label = _jsonl(tmp_path / "label.jsonl", [_bbq_row(label=3)])
    assert "label 0, 1 or 2" in _error(load_bbq_items, bad_label)

    duplicate = _jsonl(tmp_path / "dup.jsonl", [_bbq_row(), _bbq_row()])
    assert "'bbq-Age-1'" in _error(load_bbq_items, duplicate)


def test_chat_template_needs_a_tokenizer() -> None:
    message = _error(make_template, DataConfig(template="chat"))
    assert "chat template" in message and "no tokenizer" in message


def test_unreadable_parquet(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    path.write_bytes(b"not a parquet file at all")
    assert "expected a Parquet file" in _error(load_table, path, "parquet")
