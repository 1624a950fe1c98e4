"""The sea-dist command: help, one-line errors with exit code 2, validate-config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sea_dist.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]


def test_help_lists_commands_with_descriptions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "validate-config" in out and "check a YAML config" in out
    assert "demo-model" in out


def test_every_subcommand_has_help() -> None:
    parser = build_parser()
    actions = [a for a in parser._actions if a.dest == "command"]
    choices = actions[0].choices  # type: ignore[attr-defined]
    assert choices
    for name, sub in choices.items():
        assert sub.description or sub.format_help(), name
    helps = {c.dest: c.help for c in actions[0]._choices_actions}  # type: ignore[attr-defined]
    assert all(helps.values()), helps


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_unknown_argument_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["validate-config"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err


def test_validate_config_ok_and_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate-config", str(REPO / "jobs/configs/default.yaml")]) == 0
    assert capsys.readouterr().out.strip() == "OK"
    bad = tmp_path / "bad.yaml"
    bad.write_text("collect:\n  layers: middle\n  batch_size: 0\nfit:\n  svd: magic\n")
    assert main(["validate-config", str(bad)]) == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [
        "collect.layers: expected 'all', 'last-L', 'first-L' or a list of layer indices, "
        "found 'middle'",
        "collect.batch_size: expected a value > 0, found 0",
        "fit.svd: expected 'auto' or 'exact' or 'qr' or 'randomized', found 'magic'",
    ]


def test_sea_dist_error_becomes_one_line_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sea_dist.cli", "validate-config", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "found no file" in result.stdout + result.stderr
