"""Checked reading of text data files: UTF-8 with exact error positions, size limits, JSON, CSV.

Every loader goes through these readers so that a broken file gives the same kind of one-line
:class:`~sea_dist.errors.DataError` whatever its format: which file, which line or byte, what was
expected and how to fix it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sea_dist.data.schema import MAX_ROW_BYTES
from sea_dist.errors import DataError

BOM = "\ufeff"


def require_file(path: str | Path, what: str) -> Path:
    """Return ``path`` as a Path if it is a non-empty file.

    Args:
        path: File to check.
        what: What the file should hold (e.g. ``"TruthfulQA CSV"``), for the message.

    Raises:
        DataError: the file does not exist, is a directory, or is empty.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"{what}: expected a file, found nothing at {str(path)!r}; check "
            "data.path or set SEA_DIST_DATA_DIR to the benchmark data folder"
        )
    if not path.is_file():
        raise DataError(
            f"{what}: expected a file, found a directory at {str(path)!r}; "
            "point data.path at the file itself"
        )
    if path.stat().st_size == 0:
        raise DataError(
            f"{what}: expected rows, found an empty file at {str(path)!r}; "
            "regenerate or replace the file"
        )
    return path


def _decode(raw: bytes, path: Path, line: int, offset: int) -> str:
    """Decode one line (or a whole file when ``line`` is 0) as UTF-8, reporting the bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        bad_line = line or raw[: error.start].count(b"\n") + 1
        position = offset + error.start
        raise DataError(
            f"{path.name}: expected UTF-8 text, found byte "
            f"0x{raw[error.start]:02x} at line {bad_line} (byte offset {position}); "
            "re-save the file as UTF-8"
        ) from None


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each line, UTF-8 decoded, BOM stripped from line 1.

    Reads one line at a time (UTF-8 never uses byte 0x0A inside a character, so per-line decoding
    is exact) and never holds more than 1 MiB of a line, so a huge file without newlines fails
    fast instead of filling memory.

    Raises:
        DataError: a non-UTF-8 byte (line and byte offset named) or a line over 1 MiB.
    """
    offset = 0
    with path.open("rb") as handle:
        number = 0
        while True:
            raw = handle.readline(MAX_ROW_BYTES + 2)
            if not raw:
                return
            number += 1
            if len(raw) > MAX_ROW_BYTES:
                raise DataError(
                    f"{path.name} line {number}: expected at most 1 MB per row, "
                    f"found a longer line; shorten or drop that row"
                )
            text = _decode(raw, path, number, offset)
            offset += len(raw)
            if number == 1 and text.startswith(BOM):
                text = text[1:]
            yield number, text


def read_text(path: Path) -> str:
    """Read a whole file as UTF-8 (BOM stripped), reporting the line of a bad byte."""
    text = _decode(path.read_bytes(), path, 0, 0)
    return text[1:] if text.startswith(BOM) else text


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON-lines file.

    Raises:
        DataError: invalid JSON (line and column named), a line that is not a JSON object, or no
            object at all.
    """
    found = False
    for number, text in iter_lines(path):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(
                f"{path.name} line {number}: expected one JSON object per line, "
                f"found invalid JSON ({error.msg} at column {error.colno}); "
                "fix that line"
            ) from None
        if not isinstance(value, dict):
            raise DataError(
                f"{path.name} line {number}: expected a JSON object, found "
                f"{type(value).__name__}; write one object per line"
            )
        found = True
        yield number, value
    if not found:
        raise DataError(
            f"{path.name}: expected at least one JSON object, found only blank "
            "lines; regenerate or replace the file"
        )


def read_json(path: Path) -> Any:
    """Parse a whole JSON document.

    Raises:
        DataError: invalid JSON, with its line and column.
    """
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise DataError(
            f"{path.name} line {error.lineno}: expected valid JSON, found "
            f"{error.msg} at column {error.colno}; fix the file"
        ) from None


def read_csv(path: Path) -> list[tuple[int, dict[str, str]]]:
    """Read every record of a CSV file with a header line.

    Returns:
        ``(line_number, row)`` per record, where ``line_number`` is the line the record starts on
        (records may span lines inside quotes) and ``row`` maps header cell to value. Blank lines
        are skipped. Each record's raw size is checked against the 1 MiB limit.

    Raises:
        DataError: bad UTF-8, a record over 1 MiB, a record whose cell count differs from the
            header, a header without rows, or malformed CSV.
    """
    # csv's field limit is process-wide; raise it to our row limit for this read only (the
    # records are materialised inside the try so the old limit is back before we return).
    previous_limit = csv.field_size_limit(MAX_ROW_BYTES)
    try:
        records = list(_iter_csv(path))
    finally:
        csv.field_size_limit(previous_limit)
    return records


def _iter_csv(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    consumed = [0]
    last_line = [0]

    def counted() -> Iterator[str]:
        for number, text in iter_lines(path):
            consumed[0] += len(text.encode("utf-8"))
            last_line[0] = number
            yield text

    reader = csv.reader(counted())
    header: list[str] | None = None
    start = 1
    rows = 0
    try:
        for cells in reader:
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                start = last_line[0] + 1
                consumed[0] = 0
                continue
            if consumed[0] > MAX_ROW_BYTES:
                raise DataError(
                    f"{path.name} line {start}: expected at most 1 MB per row, "
                    f"found {consumed[0] / 1e6:.1f} MB; shorten or drop that row "
                    "(or look for an unclosed quote)"
                )
            if header is None:
                header = [cell.strip() for cell in cells]
            elif len(cells) != len(header):
                raise DataError(
                    f"{path.name} line {start}: expected {len(header)} cells "
                    f"like the header, found {len(cells)}; check the quoting "
                    "of that row"
                )
            else:
                rows += 1
                yield start, dict(zip(header, cells))
            start = last_line[0] + 1
            consumed[0] = 0
    except csv.Error as error:
        message = str(error)
        if "field larger than field limit" in message:
            message = "a field over 1 MB (shorten it, or look for an unclosed quote)"
        raise DataError(
            f"{path.name} line {start}: expected well-formed CSV, found {message}; fix that row"
        ) from None
    if header is None:
        raise DataError(
            f"{path.name}: expected a CSV header and rows, found only blank lines; "
            "regenerate or replace the file"
        )
    if rows == 0:
        raise DataError(
            f"{path.name}: expected rows after the CSV header, found none; "
            "add rows or point data.path at another file"
        )
