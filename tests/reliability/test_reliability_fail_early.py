"""Fail early, fail bounded: what can be checked before any work is; every wait has a limit.

Round two found ``sea-dist run`` with an ``http://`` publish registry running collect and fit and
only then failing with a traceback, and ``collect --address`` at an unreachable cluster retrying
for more than two minutes without a word. Now ``sea-dist run`` calls
:func:`sea_dist.preflight.check_run_preconditions` before anything starts (publish registry kind,
fsspec protocols, outputs that are files or below files, the store location), and
:func:`sea_dist.cli.cluster.init_ray` resolves the head's address the way Ray does, probes it
over TCP until a deadline (30 s, ``$SEA_DIST_RAY_CONNECT_TIMEOUT_S`` here) and interrupts a
``ray.init`` that does not return by then; each refusal is one line.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_outcome import refusal_problems, run_cli
from tree_snapshot import changes, tree_digest

from sea_dist.cli.cluster import CONNECT_TIMEOUT_S, TIMEOUT_ENV, connect_timeout
from sea_dist.config import SeaConfig, with_overrides
from sea_dist.errors import ClusterError, ConfigError
from sea_dist.preflight import check_run_preconditions


def _config(tmp_path: Path, **sections: dict[str, str]) -> Path:
    data = {
        "model": {"id": "tiny-model-never-loaded"},
        "collect": {"neutral": "prompt"},
        "store": {"url": str(tmp_path / "store.zarr")},
        "fit": {"out": str(tmp_path / "fit")},
        "publish": {"registry": str(tmp_path / "registry")},
        "evaluate": {"out": str(tmp_path / "eval")},
    }
    for section, values in sections.items():
        data[section].update(values)
    lines = []
    for section, values in data.items():
        lines.append(f"{section}:")
        lines += [f"  {key}: {value}" for key, value in values.items()]
    path = tmp_path / "config.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("x")
    return path


RUN_CASES = {
    "http-registry": ({"publish": {"registry": "http://127.0.0.1:8765"}}, "publish.registry"),
    "https-registry": ({"publish": {"registry": "https://reg.example/x"}}, "read-only"),
    "fit-out-below-a-file": ({"fit": {"out": "{file}/fit"}}, "fit.out: expected a location"),
    "store-is-a-file": ({"store": {"url": "{file}"}}, "store.url: expected a folder"),
    "registry-below-a-file": ({"publish": {"registry": "{file}/r"}}, "publish.registry"),
    "eval-out-is-a-file": ({"evaluate": {"out": "{file}"}}, "evaluate.out"),
    "store-unknown-protocol": ({"store": {"url": "nosuch://bucket/s"}}, "store.url"),
    "registry-unknown-protocol": ({"publish": {"registry": "nosuch://r"}}, "known fsspec URL"),
    "fit-out-a-url": ({"fit": {"out": "memory://bucket/fit"}}, "fit.out: expected a local folder"),
}


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("case", "no_evaluate"),
    [(case, False) for case in RUN_CASES]
    # evaluate.out is not written with --no-evaluate, so it is not checked then
    + [(case, True) for case in RUN_CASES if case != "eval-out-is-a-file"],
    ids=lambda value: {True: "no-evaluate", False: ""}.get(value, value),
)
def test_run_refuses_before_any_work(
    case: str,
    no_evaluate: bool,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ray

    sections, expect = RUN_CASES[case]
    file = _a_file(tmp_path)
    filled = {
        section: {k: v.format(file=file) for k, v in values.items()}
        for section, values in sections.items()
    }
    config = _config(tmp_path, **filled)
    monkeypatch.chdir(tmp_path)
    ray_was_running = ray.is_initialized()
    before = tree_digest(tmp_path)
    argv = ["run", str(config), "--no-progress"] + (["--no-evaluate"] if no_evaluate else [])
    outcome = run_cli(argv, capsys)
    assert refusal_problems(outcome, expect) == []
    assert changes(before, tree_digest(tmp_path)) == []  # no store, fit, registry or report
    assert ray.is_initialized() == ray_was_running  # collection never started


def test_every_problem_is_reported_in_one_round(tmp_path: Path) -> None:
    file = _a_file(tmp_path)
    config = with_overrides(
        SeaConfig(),
        publish={"registry": "http://127.0.0.1:8765"},
        fit={"out": f"{file}/fit"},
        store={"url": "nosuch://x"},
    )
    with pytest.raises(ConfigError) as caught:
        check_run_preconditions(config)
    fields = [problem.split(":")[0] for problem in caught.value.problems]
    assert fields == ["publish.registry", "store.url", "fit.out"]


def test_a_writable_config_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    check_run_preconditions(SeaConfig())
    check_run_preconditions(with_overrides(SeaConfig(), publish={"registry": "memory://reg"}))
    assert list(tmp_path.iterdir()) == []  # the check itself writes nothing


@pytest.mark.bad_input
@pytest.mark.parametrize("via", ["config", "env", "flag"])
@pytest.mark.parametrize("url", ["http://127.0.0.1:1", "https://registry.example/r"])
def test_publish_into_the_http_api_is_refused_first(
    via: str,
    url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Wherever the http:// registry comes from, publish refuses it before touching anything."""
    from synthetic_fit import write_synthetic_fit

    fit = tmp_path / "fit"
    write_synthetic_fit(fit)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEA_DIST_REGISTRY", raising=False)
    argv = ["publish", str(fit), "--name", "demo"]
    if via == "config":
        argv += ["--config", str(_config(tmp_path, publish={"registry": url}))]
    elif via == "env":
        monkeypatch.setenv("SEA_DIST_REGISTRY", url)
    else:
        argv += ["--registry", url]
    before = tree_digest(tmp_path)
    outcome = run_cli(argv, capsys)
    assert refusal_problems(outcome, "read-only") == []
    assert changes(before, tree_digest(tmp_path)) == []


# -- joining a cluster is bounded --------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("0.0.0.0", 0))  # noqa: S104 - nothing listens; Ray may map 127.0.0.1 to the node IP
        return int(probe.getsockname()[1])


ADDRESS_CASES = {
    "refused": ("127.0.0.1:{closed}", "accepts connections within 2 s, found connection refused"),
    "ray-client-refused": ("ray://127.0.0.1:{closed}", "connection refused"),
    "unresolvable": ("no-such-head.invalid:6379", "a host name that resolves"),
    "no-port": ("10.0.0.5", "host:port"),
    "bad-port": ("10.0.0.5:99999", "found no valid port"),
}


@pytest.mark.fault
@pytest.mark.parametrize("via", ["flag", "env"])
@pytest.mark.parametrize("case", list(ADDRESS_CASES))
def test_collect_at_an_unreachable_cluster_gives_up(
    case: str,
    via: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ray

    if ray.is_initialized():
        pytest.skip("Ray already runs in this process (init_ray would reuse it)")
    address, expect = ADDRESS_CASES[case]
    address = address.format(closed=_closed_port())
    monkeypatch.setenv(TIMEOUT_ENV, "2")
    monkeypatch.chdir(tmp_path)
    config = _config(tmp_path)
    argv = ["collect", str(config)]
    if via == "flag":
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
        argv += ["--address", address]
    else:
        monkeypatch.setenv("RAY_ADDRESS", address)
    before = tree_digest(tmp_path)
    outcome = run_cli(argv, capsys)
    assert refusal_problems(outcome, expect) == []
    assert "ray" in outcome.text.lower() and "--address" in outcome.text
    assert changes(before, tree_digest(tmp_path)) == []
    assert not ray.is_initialized()


def test_the_default_wait_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    assert connect_timeout() == CONNECT_TIMEOUT_S == 30.0
    monkeypatch.setenv(TIMEOUT_ENV, "7.5")
    assert connect_timeout() == 7.5


@pytest.mark.bad_input
@pytest.mark.parametrize("value", ["abc", "0", "-3", "1e9", "nan"])
def test_a_bad_timeout_setting_is_one_line(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TIMEOUT_ENV, value)
    with pytest.raises(ClusterError, match=f"\\${TIMEOUT_ENV}: expected seconds"):
        connect_timeout()


@pytest.fixture
def not_a_ray_head() -> Iterator[int]:
    """A port that accepts connections and answers HTTP/1.1 404: something else than Ray."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", 0))  # noqa: S104 - Ray maps 127.0.0.1 to the node's address
    server.listen(16)
    stop = threading.Event()

    def answer() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            with connection:
                try:
                    connection.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.fault
def test_collect_at_a_port_that_is_not_ray_gives_up(not_a_ray_head: int, tmp_path: Path) -> None:
    config = _config(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env[TIMEOUT_ENV] = "3"
    before = tree_digest(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "sea_dist.cli", "collect", str(config)]
        + ["--address", f"127.0.0.1:{not_a_ray_head}", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=240,  # a hang is a failure, not a stuck suite
        cwd=tmp_path,
        env=env,
        check=False,
    )
    text = result.stdout + result.stderr
    assert result.returncode == 2, text[-2000:]
    assert "Traceback" not in text, text[-2000:]
    errors = [line for line in text.splitlines() if line.startswith("sea-dist: error:")]
    assert len(errors) == 1 and "no Ray cluster behind it" in errors[0], text[-2000:]
    assert changes(before, tree_digest(tmp_path)) == []
