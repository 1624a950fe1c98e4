"""Demonstration fingerprints: deterministic, sensitive to rows, order and template, blind to
metadata and Unicode composition, and equal in a fresh process with another hash seed."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

from sea_dist.config import DataConfig
from sea_dist.data import (
    Demonstration,
    PromptTemplate,
    demonstrations_fingerprint,
    load_builtin_demonstrations,
    make_template,
)

DEMOS = [
    Demonstration("a", "Is the caf\u00e9 open?", "Yes", "No", {"category": "x"}),
    Demonstration("b", "What is 2 + 2?", "4", "5"),
]
QA = PromptTemplate()


def test_deterministic_hex_digest() -> None:
    first = demonstrations_fingerprint(DEMOS, QA)
    assert first == demonstrations_fingerprint(list(DEMOS), PromptTemplate())
    assert len(first) == 64 and int(first, 16) >= 0


def test_changes_with_rows_order_and_template() -> None:
    base = demonstrations_fingerprint(DEMOS, QA)
    changed = [
        [DEMOS[0], dataclasses.replace(DEMOS[1], negative="6")],
        [DEMOS[0], dataclasses.replace(DEMOS[1], id="c")],
        [DEMOS[0], dataclasses.replace(DEMOS[1], prompt="What is 2 + 3?")],
        [DEMOS[0]],
        DEMOS[::-1],
        # Moving text between fields must not collide.
        [DEMOS[0], Demonstration("b", "What is 2 + 2?4", "", "5")],
    ]
    digests = {demonstrations_fingerprint(rows, QA) for rows in changed}
    assert base not in digests and len(digests) == len(changed)
    for config in (DataConfig(few_shot=True), DataConfig(system_prompt="Be truthful.")):
        assert demonstrations_fingerprint(DEMOS, make_template(config)) != base


def test_ignores_metadata_and_unicode_composition() -> None:
    base = demonstrations_fingerprint(DEMOS, QA)
    other_metadata = [dataclasses.replace(DEMOS[0], metadata={"row": 7}), DEMOS[1]]
    decomposed = [dataclasses.replace(DEMOS[0], prompt="Is the cafe\u0301 open?"), DEMOS[1]]
    assert demonstrations_fingerprint(other_metadata, QA) == base
    assert demonstrations_fingerprint(decomposed, QA) == base


def test_identical_in_a_subprocess_with_another_hash_seed() -> None:
    demos = load_builtin_demonstrations()
    template = make_template(DataConfig(few_shot=True))
    here = demonstrations_fingerprint(demos, template)
    code = (
        "from sea_dist.config import DataConfig\n"
        "from sea_dist.data import demonstrations_fingerprint, load_builtin_demonstrations, "
        "make_template\n"
        "print(demonstrations_fingerprint(load_builtin_demonstrations(), "
        "make_template(DataConfig(few_shot=True))))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    assert result.stdout.strip() == here
