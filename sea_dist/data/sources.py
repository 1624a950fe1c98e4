"""The pinned public sources of the benchmark files (TruthfulQA and its folds, BBQ).

Each file is pinned by a commit in its URL, its size and its sha256, so a download is accepted
only when it is byte for byte the file the evaluation was designed on. The pins were checked
against a snapshot of the source repository (``git ls-tree -l`` for the size, ``git show
<commit>:<path> | sha256sum`` for the digest) and against the copies in ``../shared/data``.

Provenance: the four files are those published with the SEA paper's reference code,
github.com/yfqiu-nlp/sea-llm (MIT), under ``data/``. Identical blobs at its first commit
(840d671a) and at the pinned one. The data keep their own licences: TruthfulQA (Lin et al. 2022)
Apache-2.0, BBQ (Parrish et al. 2022) CC-BY-4.0. ``TruthfulQA.csv`` there starts with a UTF-8
BOM, so it is not byte-identical to github.com/sylinrl/TruthfulQA's file, which is why it is
pinned from sea-llm; the folds ``TruthfulQA-1.csv`` / ``-2.csv`` are that repository's disjoint
409/408 split, and ``bbq-validation-disambig.jsonl`` is its
``data/BBQ/disambig/All-validation-disambig.jsonl`` (4000 rows, all nine categories).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from sea_dist.errors import DataError, expected_found

SOURCE_URL_ENV = "SEA_DIST_DATA_SOURCE_URL"
"""The variable the entry layer (:mod:`sea_dist.cli.environment`) reads into ``data.source_url``:
it replaces every source's base URL (a mirror, or a loopback server in tests). Named here for
messages; this module never reads the environment."""

SEA_LLM_COMMIT = "482a0a0182218982ba614ff24bf5121804be0e18"
SEA_LLM_BASE_URL = f"https://raw.githubusercontent.com/yfqiu-nlp/sea-llm/{SEA_LLM_COMMIT}"


@dataclass(frozen=True)
class SourceFile:
    """One pinned file.

    Attributes:
        relative_path: where it lives below a data folder (``truthfulqa/TruthfulQA.csv``); the
            layout every reader expects, with ``/`` separators.
        url_path: its path below the source's base URL.
        sha256: lowercase hex digest of the exact bytes.
        size: its length in bytes; a download is refused past it and short of it.
    """

    relative_path: str
    url_path: str
    sha256: str
    size: int

    def url(self, base_url: str) -> str:
        """The file's URL below ``base_url`` (a trailing ``/`` on it is ignored)."""
        return f"{base_url.rstrip('/')}/{self.url_path.lstrip('/')}"


@dataclass(frozen=True)
class DataSource:
    """A named set of pinned files, fetched together by ``sea-dist data fetch NAME``.

    Attributes:
        name: the command's argument (``truthfulqa``, ``bbq``).
        base_url: the pinned location; ``data.source_url`` (``$SEA_DIST_DATA_SOURCE_URL``)
            replaces it.
        files: the files, in the order they are fetched.
        license: the data's licence, shown by ``data fetch``.
    """

    name: str
    base_url: str
    files: tuple[SourceFile, ...]
    license: str

    def resolved_base_url(self, override: str | None = None) -> str:
        """``override`` (a mirror: ``--source-url`` or ``data.source_url``), else the pinned
        base URL."""
        return override or self.base_url


SOURCES: dict[str, DataSource] = {
    "truthfulqa": DataSource(
        name="truthfulqa",
        base_url=SEA_LLM_BASE_URL,
        license="Apache-2.0 (TruthfulQA, Lin et al. 2022)",
        files=(
            SourceFile(
                relative_path="truthfulqa/TruthfulQA.csv",
                url_path="data/truthfulqa/TruthfulQA.csv",
                sha256="f9bd9e859cc102cb1f647f1064da7e009be752c416845cf9fa56e6eaae403a7d",
                size=476230,
            ),
            SourceFile(
                relative_path="truthfulqa/TruthfulQA-1.csv",
                url_path="data/truthfulqa/TruthfulQA-1.csv",
                sha256="e522a323cddd51cb0c5ee3b42783425aa0baf4116a9eec53054b7c69f7a49df9",
                size=236928,
            ),
            SourceFile(
                relative_path="truthfulqa/TruthfulQA-2.csv",
                url_path="data/truthfulqa/TruthfulQA-2.csv",
                sha256="0e12354045e98af3260c1f4dbf7f5faa173ddbb150b8018de45ce3a174bbab41",
                size=239375,
            ),
        ),
    ),
    "bbq": DataSource(
        name="bbq",
        base_url=SEA_LLM_BASE_URL,
        license="CC-BY-4.0 (BBQ, Parrish et al. 2022)",
        files=(
            SourceFile(
                relative_path="bbq/bbq-validation-disambig.jsonl",
                url_path="data/BBQ/disambig/All-validation-disambig.jsonl",
                sha256="5cc19a46c64d1ec6af07daba9896a8543a56371dd24a36c942db2f6e4f46c314",
                size=3837554,
            ),
        ),
    ),
}
"""Every fetchable source by name. Read at call time, so tests may replace entries."""


def get_source(name: str, sources: Mapping[str, DataSource] | None = None) -> DataSource:
    """The source called ``name``.

    Raises:
        DataError: no such source.
    """
    table = SOURCES if sources is None else sources
    if name not in table:
        raise DataError(expected_found("data source", f"one of {', '.join(sorted(table))}", name))
    return table[name]


def source_of(relative_path: str, sources: Mapping[str, DataSource] | None = None) -> str | None:
    """Name of the source that provides ``relative_path`` (``truthfulqa/TruthfulQA.csv``)."""
    wanted = relative_path.replace(os.sep, "/").strip("/")
    table = SOURCES if sources is None else sources
    for source in table.values():
        if any(f.relative_path == wanted for f in source.files):
            return source.name
    return None
