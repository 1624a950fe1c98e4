"""BBQ JSON lines: multiple-choice items and demonstrations.

Each BBQ row (Parrish et al. 2022) has a context, a question, three answers ``ans0..ans2``, the
correct ``label`` and ``answer_info``, which tags each answer with a group; the tag ``unknown``
marks the "cannot be determined" answer. In a disambiguated context the correct answer is one of
the two people, so a demonstration takes it as positive and the *other person* as negative (the
unknown answer is neither truthful nor biased).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sea_dist.data.schema import BBQItem, Demonstration, check_demonstrations, require_columns
from sea_dist.data.textfile import iter_jsonl, require_file
from sea_dist.errors import DataError

FIELDS = ("context", "question", "ans0", "ans1", "ans2", "label", "answer_info", "category")


def _unknown_index(info: Any, where: str) -> int:
    """Index of the answer whose answer_info group is ``unknown``."""
    if not isinstance(info, Mapping):
        raise DataError(
            f"{where}: expected answer_info to be an object like "
            f"{{'ans0': [text, group], ...}}, found {type(info).__name__}; "
            "use the original BBQ rows"
        )
    unknown = []
    for index in range(3):
        entry = info.get(f"ans{index}")
        if (
            isinstance(entry, list | tuple)
            and len(entry) >= 2
            and str(entry[1]).strip().lower() == "unknown"
        ):
            unknown.append(index)
    if len(unknown) != 1:
        raise DataError(
            f"{where}: expected exactly one answer tagged 'unknown' in answer_info, "
            f"found {len(unknown)}; use the original BBQ rows"
        )
    return unknown[0]


def _item(row: Mapping[str, Any], where: str, index: int) -> BBQItem:
    answers = tuple(row[f"ans{i}"] for i in range(3))
    for name, value in [("context", row["context"]), ("question", row["question"])] + [
        (f"ans{i}", answer) for i, answer in enumerate(answers)
    ]:
        if not isinstance(value, str) or not value.strip():
            raise DataError(
                f"{where}: expected a non-empty text {name}, found {value!r}; fix or drop the row"
            )
    label = row["label"]
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label <= 2:
        raise DataError(f"{where}: expected label 0, 1 or 2, found {label!r}; fix the row")
    category = str(row["category"])
    example = row.get("example_id")
    return BBQItem(
        id=f"bbq-{category}-{example}" if example is not None else f"bbq-row-{index}",
        context=row["context"].strip(),
        question=row["question"].strip(),
        answers=(answers[0].strip(), answers[1].strip(), answers[2].strip()),
        label=label,
        category=category,
        unknown_index=_unknown_index(row["answer_info"], where),
        question_polarity=str(row.get("question_polarity", "")),
        context_condition=str(row.get("context_condition", "")),
    )


def _read(path: str | Path) -> list[tuple[int, BBQItem]]:
    file = require_file(path, "BBQ JSONL")
    items: list[tuple[int, BBQItem]] = []
    seen: dict[str, int] = {}
    for number, row in iter_jsonl(file):
        where = f"{file.name} line {number}"
        require_columns(
            where, row, FIELDS, "use the BBQ JSON-lines rows with their original fields"
        )
        item = _item(row, where, len(items))
        if item.id in seen:
            raise DataError(
                f"{where}: expected unique (category, example_id), found id "
                f"{item.id!r} again (first on line {seen[item.id]}); drop the "
                "duplicate row"
            )
        seen[item.id] = number
        items.append((number, item))
    return items


def load_bbq_items(path: str | Path) -> list[BBQItem]:
    """Read every row of a BBQ JSON-lines file (ambiguous or disambiguated contexts).

    Args:
        path: JSONL file.

    Returns:
        One item per row, in file order; ids are ``bbq-<category>-<example_id>``.

    Raises:
        DataError: missing file or fields, bad JSON or encoding, a label outside 0..2, or
            answer_info without exactly one ``unknown`` answer.
    """
    return [item for _number, item in _read(path)]


def bbq_demonstrations(path: str | Path) -> list[Demonstration]:
    """One demonstration per disambiguated BBQ row.

    The prompt is ``context + " " + question``; positive is the labelled answer and negative the
    remaining answer that is not the unknown one.

    Raises:
        DataError: as :func:`load_bbq_items`, or a row whose label is the unknown answer
            (an ambiguous context has no single biased answer to use as negative).
    """
    name = Path(path).name
    demos = [
        bbq_demonstration(item, row, f"{name} line {number}")
        for row, (number, item) in enumerate(_read(path))
    ]
    return check_demonstrations(demos, name)


def bbq_demonstration(item: BBQItem, row: int = 0, where: str = "BBQ item") -> Demonstration:
    """The demonstration of one disambiguated item: labelled answer +, the other person -.

    Raises:
        DataError: the item's label is the unknown answer (an ambiguous context).
    """
    if item.label == item.unknown_index:
        raise DataError(
            f"{where}: expected a disambiguated row whose answer is "
            f"a person, found label {item.label} = unknown answer "
            f"{item.answers[item.label]!r}; use the disambig split or filter out "
            "ambiguous rows"
        )
    (other,) = {0, 1, 2} - {item.label, item.unknown_index}
    return Demonstration(
        id=item.id,
        prompt=f"{item.context} {item.question}",
        positive=item.answers[item.label],
        negative=item.answers[other],
        metadata={
            "source": "bbq",
            "category": item.category,
            "row": row,
            "question_polarity": item.question_polarity,
        },
    )
