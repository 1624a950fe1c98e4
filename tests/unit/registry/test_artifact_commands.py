"""CLI (`sea-dist publish`, `sea-dist registry ...`) and jobs/publish.py, run for real."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sea_dist.cli import main

REPO = Path(__file__).resolve().parents[3]

FitFactory = Callable[..., Path]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_publish_and_query_through_the_cli(
    tmp_path: Path,
    make_fit: FitFactory,
    make_record: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    reg = str(tmp_path / "reg")
    code, out, _ = run(capsys, "publish", str(make_fit(seed=1)), "--name", "cli", "--registry", reg)
    assert code == 0 and out.startswith("cli@1 sha256:")
    evaluated = make_fit(seed=2, k_pos=4)  # its evaluation passes: production may move to it
    (evaluated / "evaluation.json").write_text(json.dumps(make_record().to_dict()))
    code, out, _ = run(
        capsys,
        "publish",
        str(evaluated),
        "--name",
        "cli",
        "--registry",
        reg,
        "--alias",
        "production",
        "--json",
    )
    assert code == 0 and json.loads(out)["ref"] == "cli@2"
    assert json.loads(out)["promotions"][0]["moved"] is True

    assert run(capsys, "registry", "list", "--registry", reg)[1].strip() == "cli"
    code, out, _ = run(capsys, "registry", "versions", "cli", "--registry", reg)
    lines = out.strip().splitlines()
    assert lines[0].split()[:3] == ["VERSION", "CREATED", "MODEL"] and len(lines) == 3
    assert "latest,production" in lines[2]
    assert lines[0].split()[-2:] == ["GATE", "ALIASES"]
    assert lines[1].split()[-1] == "unevaluated" and " pass " in lines[2]
    code, out, _ = run(
        capsys,
        "registry",
        "versions",
        "cli",
        "--registry",
        reg,
        "--json",
        "--model-id",
        "tiny-random-llama",
        "--after",
        "2000-01-01",
    )
    assert [v["version"] for v in json.loads(out)["versions"]] == [1, 2]

    code, out, _ = run(capsys, "registry", "show", "cli@production", "--registry", reg, "--json")
    assert json.loads(out)["version"] == 2 and json.loads(out)["evaluation"]["passed"] is True
    code, out, _ = run(capsys, "registry", "show", "cli@production", "--registry", reg)
    assert code == 0 and out.startswith("cli@2  sha256:")
    assert "\ngate: pass\n" in out and "recipe: none" in out and "aliases: production" in out
    code, out, _ = run(capsys, "registry", "resolve", "cli@1", "--registry", reg, "--json")
    sha = json.loads(out)["sha256"]
    assert run(capsys, "registry", "resolve", f"sha256:{sha[:8]}", "--registry", reg)[1].startswith(
        "cli@1 "
    )
    code, out, _ = run(capsys, "registry", "diff", "cli@1", "cli@2", "--registry", reg)
    assert code == 0 and "cli@1 vs cli@2" in out and "SIM+" in out
    code, out, _ = run(capsys, "registry", "diff", "cli@1", "cli@2", "--registry", reg, "--json")
    assert json.loads(out)["layers"][0]["k_pos"] == {"a": 3, "b": 4}

    dest = tmp_path / "dl"
    code, out, _ = run(capsys, "registry", "download", "cli", str(dest), "--registry", reg)
    assert code == 0 and "verified" in out and (dest / "projections.safetensors").exists()

    code, out, err = run(capsys, "registry", "alias", "cli@1", "production", "--registry", reg)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "gate: production not moved to cli@1: no evaluation record" in err
    code, out, _ = run(
        capsys,
        "registry",
        "alias",
        "cli@1",
        "production",
        "--registry",
        reg,
        "--force",
        "--reason",
        "rollback: v2 breaks the chat template",
    )
    assert code == 0 and out.startswith("cli@production -> cli@1 (was cli@2); gate overridden")
    code, out, _ = run(capsys, "registry", "aliases", "cli", "--registry", reg, "--json")
    assert json.loads(out)["aliases"] == {"production": 1}
    code, out, _ = run(
        capsys, "registry", "aliases", "cli", "--history", "production", "--registry", reg
    )
    assert len(out.strip().splitlines()) == 2
    assert "FORCED past the gate" in out.strip().splitlines()[1] and "rollback" in out

    code, out, _ = run(capsys, "registry", "gc", "--keep", "1", "--dry-run", "--registry", reg)
    assert out.strip().splitlines()[-1] == "would remove 0 item(s)"  # 1 aliased, 2 newest
    code, out, _ = run(capsys, "registry", "reindex", "--registry", reg)
    assert out.strip() == "cli: 2 version(s) indexed"


def test_default_registry_from_environment(
    tmp_path: Path,
    make_fit: FitFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SEA_DIST_REGISTRY", str(tmp_path / "env-reg"))
    assert run(capsys, "publish", str(make_fit()), "--name", "env")[0] == 0
    assert (tmp_path / "env-reg" / "env" / "complete" / "1.json").exists()
    assert run(capsys, "registry", "list")[1].strip() == "env"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["registry", "resolve", "../../etc/passwd"], "reference: expected"),
        (["registry", "resolve", "nothing@3"], "version nothing@3: expected a published version"),
        (["registry", "versions", "BAD"], "artifact name: expected"),
        (["registry", "versions", "x", "--after", "soon"], None),
        (["registry", "gc", "--keep", "0"], "gc --keep: expected an integer >= 1"),
        (["registry", "alias", "x@1", "latest"], "alias: expected"),
        (["publish", "/nonexistent/fit", "--name", "ok"], "fit output /nonexistent/fit"),
        (["publish", "x", "--name", "ok", "--registry", "http://127.0.0.1:1"], "read-only"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str | None,
    make_fit: FitFactory,
) -> None:
    reg = str(tmp_path / "reg")
    main(["publish", str(make_fit()), "--name", "x", "--registry", reg])
    capsys.readouterr()
    if "--registry" not in argv:
        argv = [*argv, "--registry", reg]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("sea-dist: error: ")
    if message:
        assert message in err


def test_publish_job_entrypoint(tmp_path: Path, make_fit: FitFactory) -> None:
    reg = tmp_path / "reg"
    command = [
        sys.executable,
        str(REPO / "jobs" / "publish.py"),
        "--fit-dir",
        str(make_fit()),
        "--name",
        "job",
        "--registry",
        str(reg),
        "--alias",
        "production",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("SEA_DIST_RESULT ")
    result = json.loads(last.removeprefix("SEA_DIST_RESULT "))
    assert result["status"] == "ok" and result["artifact"] == "job@1"

    bad = subprocess.run(
        [*command[:3], str(tmp_path / "missing"), *command[4:]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2
    failure = json.loads(bad.stdout.strip().splitlines()[-1].removeprefix("SEA_DIST_RESULT "))
    assert failure["status"] == "error" and "fit output" in failure["error"]


@pytest.mark.parametrize("port", ["70000", "-5", "http"])
def test_serve_refuses_a_port_outside_0_to_65535(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], port: str
) -> None:
    with pytest.raises(SystemExit) as exit_:  # argparse usage errors exit from the parser
        main(["registry", "serve", f"--port={port}", f"--registry={tmp_path}"])
    out, err = capsys.readouterr()
    assert exit_.value.code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "--port: expected a port number 0..65535" in err


def test_aliases_of_an_unknown_name_exit_2(
    tmp_path: Path, make_fit: FitFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = str(tmp_path / "reg")
    main(["publish", str(make_fit()), "--name", "known", "--registry", reg])
    capsys.readouterr()
    for argv in (["aliases", "ghost"], ["aliases", "ghost", "--history", "prod"]):
        code, out, err = run(capsys, "registry", *argv, "--registry", reg)
        assert code == 2 and out == ""
        assert err.startswith("sea-dist: error: artifact name: expected a published name")
    assert run(capsys, "registry", "aliases", "known", "--registry", reg)[0] == 0
