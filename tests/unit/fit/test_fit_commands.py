"""``sea-dist fit`` (sea_dist/cli/fit.py) and the Ray job entrypoint jobs/fit.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sea_dist.cli import main
from sea_dist.fit import FitResult

ROOT = Path(__file__).resolve().parents[3]


def test_cli_fit_with_flags(make_store, tmp_path: Path, capsys) -> None:
    store = make_store(n=80, d=16)
    out = tmp_path / "fit"
    code = main(
        [
            "fit",
            store.url,
            "--out",
            str(out),
            "--no-centre",
            "--positive-energy",
            "0.9",
            "--negative-energy",
            "0.8",
            "--svd",
            "exact",
            "--feature-map",
            "elu",
            "--feature-map-scale",
            "2",
            "--scheduler",
            "synchronous",
            "--seed",
            "3",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "layer" in printed and str(out) in printed
    loaded = FitResult.load(out)
    assert loaded.config.centre is False and loaded.config.positive_energy == 0.9
    assert loaded.config.negative_energy == 0.8 and loaded.config.seed == 3
    assert loaded.feature_map.to_dict() == {"name": "elu", "scale": 2.0}


def test_cli_fit_from_config(make_store, tmp_path: Path) -> None:
    store = make_store(n=40, d=16)
    out = tmp_path / "from-config"
    config = tmp_path / "cfg.yaml"
    config.write_text(
        f"store:\n  url: {store.url}\nfit:\n  out: {out}\n  fixed_k: 2\n  centre: false\n"
    )
    assert main(["fit", "--config", str(config), "--centre"]) == 0  # a flag beats the file
    loaded = FitResult.load(out)
    assert loaded.config.fixed_k == 2 and loaded.config.centre is True
    assert all(p.k_pos == 2 for p in loaded.layers)


def test_cli_errors_are_one_line_exit_2(make_store, tmp_path: Path, capsys) -> None:
    store = make_store(n=64, d=8, complete=False)
    assert main(["fit", store.url, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sea-dist: error: store") and err.count("\n") == 1
    complete = make_store(n=16, d=8)
    assert main(["fit", complete.url, "--out", str(tmp_path / "y"), "--positive-energy", "2"]) == 2
    assert "positive_energy" in capsys.readouterr().err
    assert main(["fit", complete.url, "--out", str(tmp_path / "z"), "--scheduler", "nope"]) == 2


def test_the_old_flag_names_still_work_with_a_warning(
    make_store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """--k-pos / --k-neg set the thresholds, as before; a warning names the new flags."""
    store = make_store(n=40, d=16)
    out = tmp_path / "old-flags"
    with caplog.at_level("WARNING"):
        code = main(["fit", store.url, "--out", str(out), "--k-pos", "0.9", "--k-neg", "0.8"])
    assert code == 0
    loaded = FitResult.load(out)
    assert (loaded.config.positive_energy, loaded.config.negative_energy) == (0.9, 0.8)
    assert "--k-pos is deprecated" in caplog.text and "--positive-energy" in caplog.text
    clash = ["fit", store.url, "--out", str(tmp_path / "x"), "--k-pos", "0.9"]
    assert main([*clash, "--positive-energy", "0.8"]) == 2  # two values for one setting


def run_job(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, str(ROOT / "jobs" / "fit.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_job_entrypoint_prints_the_result_line(make_store, tmp_path: Path) -> None:
    store = make_store(n=40, d=12)
    out = tmp_path / "job-fit"
    done = run_job(store.url, "--out", str(out), "--positive-energy", "0.9")
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("SEA_DIST_RESULT ")
    payload = json.loads(last.removeprefix("SEA_DIST_RESULT "))
    assert payload["status"] == "ok" and payload["fit_dir"] == str(out)
    assert set(payload["layers"]) == {"1", "3"}
    assert (out / "fit.json").is_file()

    failed = run_job(store.url, "--out", str(out))  # non-empty out, no --overwrite
    assert failed.returncode == 2
    payload = json.loads(failed.stdout.strip().splitlines()[-1].removeprefix("SEA_DIST_RESULT "))
    assert payload["status"] == "error" and "--overwrite" in payload["error"]
