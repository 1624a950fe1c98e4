"""The demonstration schema and the multiple-choice benchmark items, plus row validation.

A :class:`Demonstration` is one (prompt, positive completion, negative completion) triple, the
unit SEA records three activations for. :class:`TruthfulQAItem` and :class:`BBQItem` keep every
answer of a benchmark question, for the multiple-choice evaluation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sea_dist.errors import DataError

MAX_ROW_BYTES = 1 << 20
"""A row (prompt + both answers, or one raw line/record) over 1 MiB is refused: demonstrations
are short texts, and a giant row is nearly always a broken quote or a wrong column."""

FIELDS = ("id", "prompt", "positive", "negative")
"""Schema fields of a demonstration, in the order the fingerprint hashes them."""


@dataclass(frozen=True)
class Demonstration:
    """One demonstration: a prompt with a positive and a negative completion.

    Attributes:
        id: Stable, unique identifier (the activation store keeps it as ``row_ids``).
        prompt: The question or context, without any template around it.
        positive: The desired completion (truthful, unbiased, ...), without a leading space.
        negative: The undesired completion (hallucinated, biased, ...).
        metadata: JSON-serialisable extras (category, source row, ...); not part of the
            fingerprint, because it never reaches the model.
    """

    id: str
    prompt: str
    positive: str
    negative: str
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class TruthfulQAItem:
    """One TruthfulQA question with all of its reference answers.

    Attributes:
        id: ``tqa-`` + 12 hex digits of the sha256 of the NFC question, so the same question has
            the same id in the full file and in either fold.
        question: The question text.
        best_answer: The "Best Answer" column.
        correct_answers: The ';'-separated "Correct Answers", stripped, empty pieces dropped
            (``(best_answer,)`` when the cell is empty).
        incorrect_answers: The ';'-separated "Incorrect Answers", same treatment.
        category: The "Category" column (e.g. ``Misconceptions``).
    """

    id: str
    question: str
    best_answer: str
    correct_answers: tuple[str, ...]
    incorrect_answers: tuple[str, ...]
    category: str


@dataclass(frozen=True)
class BBQItem:
    """One BBQ question with its three answers.

    Attributes:
        id: ``bbq-<category>-<example_id>`` (example ids repeat across categories).
        context: The context passage.
        question: The question.
        answers: ``(ans0, ans1, ans2)``.
        label: Index of the correct answer.
        category: Bias category (e.g. ``Age``).
        unknown_index: Index of the "unknown" / "cannot be determined" answer, from answer_info.
        question_polarity: ``neg`` or ``nonneg`` (empty when the file lacks it).
        context_condition: ``ambig`` or ``disambig`` (empty when the file lacks it).
    """

    id: str
    context: str
    question: str
    answers: tuple[str, str, str]
    label: int
    category: str
    unknown_index: int
    question_polarity: str = ""
    context_condition: str = ""


def check_demonstrations(demos: Iterable[Demonstration], source: str) -> list[Demonstration]:
    """Validate demonstrations: non-empty fields, rows within 1 MiB, unique ids.

    Args:
        demos: Demonstrations in file order.
        source: Name of the file or source, used in error messages.

    Returns:
        The demonstrations as a list, unchanged.

    Raises:
        DataError: on the first empty field, oversized row or duplicate id, naming the row.
    """
    seen: dict[str, int] = {}
    out: list[Demonstration] = []
    for index, demo in enumerate(demos):
        where = f"{source} row {index} (id {demo.id!r})"
        if not demo.id.strip():
            raise DataError(
                f"{source} row {index}: expected a non-empty id, found ''; fill the id "
                "column or drop the id mapping so row numbers are used"
            )
        for name in ("prompt", "positive", "negative"):
            if not getattr(demo, name).strip():
                raise DataError(
                    f"{where}: expected a non-empty {name}, found "
                    f"{getattr(demo, name)!r}; fill it in or drop the row"
                )
        size = sum(len(getattr(demo, name).encode("utf-8")) for name in FIELDS)
        if size > MAX_ROW_BYTES:
            raise DataError(
                f"{where}: expected at most 1 MB of text per row, found "
                f"{size / 1e6:.1f} MB; shorten or drop that row"
            )
        if demo.id in seen:
            raise DataError(
                f"{source}: expected unique ids, found id {demo.id!r} in rows "
                f"{seen[demo.id]} and {index}; make the ids unique or drop the "
                "id column mapping to use row numbers"
            )
        seen[demo.id] = index
        out.append(demo)
    if not out:
        raise DataError(
            f"{source}: expected at least one demonstration, found none; "
            "check the file and data.limit"
        )
    return out


def require_columns(where: str, found: Iterable[str], needed: Iterable[str], fix: str) -> None:
    """Raise a DataError naming the missing columns and the columns found.

    Args:
        where: File (and line) the row came from.
        found: Column names present.
        needed: Column names required.
        fix: How to fix it, appended to the message.
    """
    present = list(found)
    missing = [name for name in needed if name not in present]
    if missing:
        raise DataError(
            f"{where}: expected columns {', '.join(map(repr, missing))}, found "
            f"columns {', '.join(map(repr, present)) or 'none'}; {fix}"
        )
