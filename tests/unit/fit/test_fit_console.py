"""What ``fit_store`` prints: one progress bar (the pass's tasks, then the layers) and one line."""

from __future__ import annotations

import logging

import pytest

from sea_dist.config import FitConfig
from sea_dist.fit import fit_store


def test_one_bar_and_one_summary_line(
    make_store, tmp_path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store(40, 8, layers=(1, 3))
    caplog.set_level(logging.INFO, logger="sea_dist.fit")
    out = tmp_path / "fit"
    fit_store(store.url, FitConfig(positive_energy=0.9), out=out, progress=True)

    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one bar, rewritten in place with \r, closed once
    final = err.rstrip("\n").split("\r")[-1]
    assert final.startswith("fit: 100%|") and "SVD layer 3" in final
    assert "SVD:" not in err and "% Completed" not in err  # no second bar, no Dask bar
    infos = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len(infos) == 1, infos
    assert infos[0].startswith("fit: 2 layer(s), ") and infos[0].endswith(f"-> {out}")
    assert "k+ " in infos[0] and "statistics pass" in infos[0]


def test_no_bar_without_progress(make_store, capsys: pytest.CaptureFixture[str]) -> None:
    store = make_store(40, 8, layers=(1, 3))
    fit_store(store.url, FitConfig(positive_energy=0.9))
    assert capsys.readouterr().err == ""
