"""TruthfulQA CSV: multiple-choice items and demonstrations.

The CSV (Lin et al. 2022) has columns Type, Category, Question, Best Answer, Correct Answers,
Incorrect Answers, Source; answers are ';'-separated and the first header cell may carry a UTF-8
BOM. The two-fold split files (TruthfulQA-1.csv, TruthfulQA-2.csv) have the same layout, and a
question's id is derived from its text so it is the same in the full file and in either fold.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from sea_dist.data.schema import (
    Demonstration,
    TruthfulQAItem,
    check_demonstrations,
    require_columns,
)
from sea_dist.data.textfile import read_csv, require_file
from sea_dist.errors import DataError

COLUMNS = ("Question", "Best Answer", "Correct Answers", "Incorrect Answers", "Category")


def truthfulqa_id(question: str) -> str:
    """Stable id of a TruthfulQA question: ``tqa-`` + 12 hex digits of sha256(NFC question)."""
    text = unicodedata.normalize("NFC", question.strip())
    return "tqa-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _split(cell: str) -> tuple[str, ...]:
    return tuple(piece.strip() for piece in cell.split(";") if piece.strip())


def load_truthfulqa_items(path: str | Path) -> list[TruthfulQAItem]:
    """Read every question of a TruthfulQA CSV (the full file or a fold).

    Args:
        path: CSV file.

    Returns:
        One item per row, in file order.

    Raises:
        DataError: missing file or columns, bad encoding, a row without a question, best answer
            or incorrect answer, or a question that appears twice.
    """
    file = require_file(path, "TruthfulQA CSV")
    items: list[TruthfulQAItem] = []
    seen: dict[str, int] = {}
    for number, row in read_csv(file):
        if not items:
            require_columns(
                f"{file.name} header",
                row,
                COLUMNS,
                "use the TruthfulQA CSV (or a fold of it) with its original header",
            )
        where = f"{file.name} line {number}"
        question = row["Question"].strip()
        best = row["Best Answer"].strip()
        correct = _split(row["Correct Answers"])
        incorrect = _split(row["Incorrect Answers"])
        for name, value in (
            ("Question", question),
            ("Best Answer", best),
            ("Incorrect Answers", incorrect),
        ):
            if not value:
                raise DataError(
                    f"{where}: expected a non-empty {name!r}, found ''; fill it in or drop the row"
                )
        item_id = truthfulqa_id(question)
        if item_id in seen:
            raise DataError(
                f"{where}: expected each question once, found {question!r} again "
                f"(first on line {seen[item_id]}); drop the duplicate row"
            )
        seen[item_id] = number
        items.append(
            TruthfulQAItem(
                id=item_id,
                question=question,
                best_answer=best,
                correct_answers=correct or (best,),
                incorrect_answers=incorrect,
                category=row["Category"].strip(),
            )
        )
    return items


def truthfulqa_demonstrations(
    path: str | Path, positive: str = "best", negative: str = "first"
) -> list[Demonstration]:
    """One demonstration per TruthfulQA question.

    Args:
        path: CSV file (full file or a fold).
        positive: ``best`` (Best Answer) or ``first`` (first Correct Answer).
        negative: ``first`` or ``last`` Incorrect Answer.

    Returns:
        Demonstrations in file order; metadata holds ``category`` and the 0-based ``row``.

    Raises:
        DataError: as :func:`load_truthfulqa_items`, or an unknown ``positive``/``negative``.
    """
    return demonstrations_from_items(
        load_truthfulqa_items(path), positive, negative, Path(path).name
    )


def demonstrations_from_items(
    items: Sequence[TruthfulQAItem],
    positive: str = "best",
    negative: str = "first",
    where: str = "TruthfulQA items",
) -> list[Demonstration]:
    """One demonstration per item (see :func:`truthfulqa_demonstrations` for the choices)."""
    if positive not in ("best", "first") or negative not in ("first", "last"):
        raise DataError(
            f"truthfulqa: expected positive in best/first and negative in first/last, "
            f"found {positive!r}/{negative!r}; fix data.positive/data.negative"
        )
    demos = (
        Demonstration(
            id=item.id,
            prompt=item.question,
            positive=item.best_answer if positive == "best" else item.correct_answers[0],
            negative=item.incorrect_answers[0 if negative == "first" else -1],
            metadata={"source": "truthfulqa", "category": item.category, "row": row},
        )
        for row, item in enumerate(items)
    )
    return check_demonstrations(demos, where)
