"""Generic demonstration tables: JSON lines, CSV and Parquet with a column mapping.

``DataConfig.columns`` maps schema fields (id, prompt, positive, negative) to column names; a
field that is not mapped is looked up under its own name. When the id column is absent (and was
not mapped explicitly) the 0-based row index becomes the id. Other scalar columns are kept in
the metadata (e.g. ``category``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from sea_dist.data.schema import FIELDS, Demonstration, check_demonstrations, require_columns
from sea_dist.data.textfile import iter_jsonl, read_csv, require_file
from sea_dist.errors import DataError

Format = Literal["jsonl", "csv", "parquet"]
_SCALARS = (str, int, float, bool, type(None))


def _mapping(columns: Mapping[str, str]) -> dict[str, str]:
    unknown = set(columns) - set(FIELDS)
    if unknown:
        raise DataError(
            f"columns: expected keys among {', '.join(FIELDS)}, found "
            f"{sorted(unknown)}; fix data.columns"
        )
    return {name: columns.get(name, name) for name in FIELDS}


def _text(value: Any, where: str, column: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DataError(
                f"{where}: expected UTF-8 text in column {column!r}, found byte "
                f"0x{value[error.start]:02x} at byte offset {error.start}; "
                "re-encode that column as UTF-8"
            ) from None
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    raise DataError(
        f"{where}: expected text in column {column!r}, found "
        f"{type(value).__name__}; map data.columns to a text column"
    )


def _parquet_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(
            f"{path.name}: expected a Parquet file, found one pyarrow cannot read "
            f"({first}); rewrite it with pyarrow or pandas"
        ) from None
    if table.num_rows == 0:
        raise DataError(
            f"{path.name}: expected rows, found an empty Parquet table; "
            "regenerate or replace the file"
        )
    try:
        rows = table.to_pylist()
    except UnicodeDecodeError:
        # pyarrow does not validate UTF-8 on read; string cells with bad bytes come back as raw
        # bytes so that _text can name the row, the column and the offset.
        rows = [_row_as_bytes_where_invalid(table, index) for index in range(table.num_rows)]
    for index, row in enumerate(rows):
        yield f"{path.name} row {index}", row


def _row_as_bytes_where_invalid(table: Any, index: int) -> dict[str, Any]:
    import pyarrow as pa

    row: dict[str, Any] = {}
    for name in table.column_names:
        cell = table.column(name).slice(index, 1)
        try:
            row[name] = cell[0].as_py()
        except UnicodeDecodeError:
            row[name] = cell.cast(pa.binary())[0].as_py()
    return row


def _rows(path: Path, fmt: Format) -> Iterable[tuple[str, dict[str, Any]]]:
    if fmt == "jsonl":
        return ((f"{path.name} line {number}", row) for number, row in iter_jsonl(path))
    if fmt == "csv":
        return ((f"{path.name} line {number}", dict(row)) for number, row in read_csv(path))
    return _parquet_rows(path)


def load_table(
    path: str | Path,
    fmt: Format,
    columns: Mapping[str, str] | None = None,
    source: str | None = None,
) -> list[Demonstration]:
    """Read demonstrations from a JSONL, CSV or Parquet table.

    Args:
        path: The file.
        fmt: ``jsonl``, ``csv`` or ``parquet``.
        columns: Schema field -> column name; unmapped fields use their own name.
        source: Value of ``metadata["source"]`` (default: ``fmt``).

    Returns:
        Demonstrations in file order; metadata holds ``source``, ``row`` and the other scalar
        columns of the row.

    Raises:
        DataError: missing/empty file, missing columns (named, with the columns found), bad
            encoding (line and byte offset), bad JSON (line), non-text values, empty fields,
            rows over 1 MB, duplicate ids.
    """
    file = require_file(path, f"{fmt.upper()} demonstrations")
    mapping = _mapping(columns or {})
    explicit_id = "id" in (columns or {})
    needed = [mapping[name] for name in FIELDS if name != "id" or explicit_id]
    used = set(mapping.values())
    fix = (
        "map them with data.columns (schema field -> column name), e.g. "
        "{prompt: question, positive: correct, negative: wrong}"
    )
    demos = []
    for index, (where, row) in enumerate(_rows(file, fmt)):
        require_columns(where, row, needed, fix)
        has_id = mapping["id"] in row
        values = {
            name: _text(row[mapping[name]], where, mapping[name])
            for name in FIELDS
            if name != "id" or has_id
        }
        metadata = {
            key: value
            for key, value in row.items()
            if key not in used and isinstance(value, _SCALARS)
        }
        metadata.update(source=source or fmt, row=index)
        demos.append(
            Demonstration(
                id=values["id"].strip() if has_id else str(index),
                prompt=values["prompt"].strip(),
                positive=values["positive"].strip(),
                negative=values["negative"].strip(),
                metadata=metadata,
            )
        )
    return check_demonstrations(demos, file.name)
