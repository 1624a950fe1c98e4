"""The collection driver's quiet console: one summary line, quiet collectors, Ray's auth mode."""

from __future__ import annotations

import os

import pytest

from sea_dist.cli.cluster import AUTH_MODE_ENV, explicit_token_auth
from sea_dist.collect.driver import QUIET_ACTOR_ENV
from sea_dist.collect.summary import CollectSummary


def test_summary_is_one_line_with_everything_lines_had() -> None:
    summary = CollectSummary(
        store_url="/runs/s.zarr",
        rows=10,
        shards=3,
        shards_collected=2,
        shards_skipped=1,
        shards_retried=1,
        actors_replaced=1,
        tokens=500,
        rows_collected=7,
        wall_seconds=2.0,
        store_bytes=2_000_000,
        num_actors=2,
    )
    line = summary.line()
    assert "\n" not in line and line.startswith("collect: 7 rows, 500 tokens in 2.0 s")
    for part in (
        "3.5 demos/s",
        "250 tokens/s",
        "with 2 actors",
        "2 collected",
        "1 already done",
        "1 retried",
        "1 actors replaced",
        "/runs/s.zarr: 10 rows in 3 shards, 2.0 MB",
    ):
        assert part in line, part


def test_collectors_run_without_progress_bars() -> None:
    # tqdm reads TQDM_* at import (a collector is a fresh process); the hub has its own switch
    assert QUIET_ACTOR_ENV == {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


@pytest.mark.parametrize("mode", ["disabled", "token"])
def test_auth_mode_the_user_chose_is_kept(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    # Only the "already set" case runs in-process: the unset case re-reads Ray's cached settings,
    # which would leak into later tests; tests/integration/test_console.py runs it in a
    # subprocess (no token-authentication warning, the run succeeds).
    monkeypatch.setenv(AUTH_MODE_ENV, mode)
    explicit_token_auth()
    assert os.environ[AUTH_MODE_ENV] == mode
