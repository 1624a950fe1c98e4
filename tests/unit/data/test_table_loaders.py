"""Generic JSONL / CSV / Parquet loaders with column mapping, and HaluEval QA JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sea_dist.config import DataConfig
from sea_dist.data import Demonstration, halueval_demonstrations, load_demonstrations, load_table

ROWS = [
    {"question": "What is 2 + 2?", "good": "4", "bad": "5", "topic": "math"},
    {"question": "Capital of Italy?", "good": "Rome", "bad": "Milan", "topic": "geo"},
    {
        "question": "Colour of the sky on a clear day?",
        "good": "Blue",
        "bad": "Green",
        "topic": "sky",
    },
]
MAPPING = {"prompt": "question", "positive": "good", "negative": "bad"}


def _check(demos: list[Demonstration], ids: list[str]) -> None:
    assert [d.id for d in demos] == ids
    assert [(d.prompt, d.positive, d.negative) for d in demos] == [
        (r["question"], r["good"], r["bad"]) for r in ROWS
    ]
    assert [d.metadata["topic"] for d in demos] == ["math", "geo", "sky"]
    assert [d.metadata["row"] for d in demos] == [0, 1, 2]


def test_jsonl_with_mapping_and_row_index_ids(tmp_path: Path) -> None:
    path = tmp_path / "demos.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n\n", encoding="utf-8")
    demos = load_demonstrations(DataConfig(source="jsonl", path=str(path), columns=MAPPING))
    _check(demos, ["0", "1", "2"])
    assert demos[0].metadata["source"] == "jsonl"


def test_jsonl_default_column_names(tmp_path: Path) -> None:
    path = tmp_path / "demos.jsonl"
    rows = [
        {
            "id": f"q{i}",
            "prompt": r["question"],
            "positive": r["good"],
            "negative": r["bad"],
            "topic": r["topic"],
        }
        for i, r in enumerate(ROWS)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    demos = load_table(path, "jsonl")
    assert [d.id for d in demos] == ["q0", "q1", "q2"]
    assert demos[1].positive == "Rome"


def test_csv_with_bom_quotes_and_id_mapping(tmp_path: Path) -> None:
    path = tmp_path / "demos.csv"
    lines = ["\ufeffqid,question,good,bad,topic"]
    for i, r in enumerate(ROWS):
        lines.append(f'k{i},"{r["question"]}",{r["good"]},{r["bad"]},{r["topic"]}')
    lines.append('k3,"A prompt, with a comma\nand a newline",yes,no,multi')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = DataConfig(source="csv", path=str(path), columns={**MAPPING, "id": "qid"})
    demos = load_demonstrations(config)
    _check(demos[:3], ["k0", "k1", "k2"])
    assert demos[3].prompt == "A prompt, with a comma\nand a newline"
    assert (
        load_demonstrations(
            DataConfig(source="csv", path=str(path), columns={**MAPPING, "id": "qid"}, limit=2)
        )[-1].id
        == "k1"
    )


def test_parquet_with_integer_ids(tmp_path: Path) -> None:
    path = tmp_path / "demos.parquet"
    table = pa.table(
        {
            "row_id": [10, 11, 12],
            "question": [r["question"] for r in ROWS],
            "good": [r["good"] for r in ROWS],
            "bad": [r["bad"] for r in ROWS],
            "topic": [r["topic"] for r in ROWS],
        }
    )
    pq.write_table(table, path)
    config = DataConfig(source="parquet", path=str(path), columns={**MAPPING, "id": "row_id"})
    _check(load_demonstrations(config), ["10", "11", "12"])


HALU = [
    {
        "knowledge": "Paris is the capital of France.",
        "question": "What is the capital of France?",
        "right_answer": "Paris",
        "hallucinated_answer": "Marseille",
    },
    {
        "knowledge": "",
        "question": "How many legs does a cat have?",
        "right_answer": "Four",
        "hallucinated_answer": "Three",
    },
]


@pytest.mark.parametrize("layout", ["list", "lines"])
def test_halueval_list_and_json_lines(tmp_path: Path, layout: str) -> None:
    path = tmp_path / "qa_data.json"
    if layout == "list":
        path.write_text(json.dumps(HALU, indent=2), encoding="utf-8")
    else:
        path.write_text("\n".join(json.dumps(r) for r in HALU), encoding="utf-8")
    demos = halueval_demonstrations(path)
    assert [d.id for d in demos] == ["halueval-0", "halueval-1"]
    assert demos[0].prompt == "Paris is the capital of France. What is the capital of France?"
    assert demos[1].prompt == "How many legs does a cat have?"
    assert (demos[0].positive, demos[0].negative) == ("Paris", "Marseille")
    via_config = load_demonstrations(DataConfig(source="halueval", path=str(path)))
    assert via_config == demos


def test_csv_with_windows_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "crlf.csv"
    path.write_bytes(b'id,prompt,positive,negative\r\na,"Two\r\nlines?",yes,no\r\nb,Q?,y,n\r\n')
    demos = load_table(path, "csv")
    assert [(d.id, d.prompt, d.positive, d.negative) for d in demos] == [
        ("a", "Two\r\nlines?", "yes", "no"),
        ("b", "Q?", "y", "n"),
    ]
