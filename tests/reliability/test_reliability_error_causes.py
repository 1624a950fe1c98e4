"""Errors name their real cause; a reader that closes stdout early is not an error at all.

Round two found every ``OSError`` of a registry command reported as "registry storage: ... check
the URL, bucket and credentials": a broken pipe (``sea-dist registry versions NAME | head -1``
exited 2), a port already in use, ``registry serve --host ::1`` (the server was IPv4 only) and
an unwritable download destination. Now:

- standard output is guarded in ``sea_dist.cli.main``: a closed pipe ends the command quietly
  with exit 0 (``_GuardedStdout`` turns it into a non-``OSError`` the storage wrapper never sees);
- ``registry serve`` names the port in use, an address that is not local, a name that does not
  resolve, and serves IPv6 loopback (``::1``) with a bracketed URL in its banner;
- ``registry download`` names the destination and its error (not a directory, read-only file
  system, no space left), while a registry that cannot be read is still reported as storage.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_outcome import refusal_problems, run_cli
from reliability_workspace import Workspace
from tree_snapshot import changes, tree_digest

from sea_dist.cli import main

STORAGE_BLAME = ("credentials", "registry storage")
"""Words of the generic storage message: a precise error must not use them."""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SEA_DIST_REGISTRY"}
    return {**env, "PYTHONWARNINGS": "ignore"}


def _cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "sea_dist.cli", *argv]


def _precise(text: str, expect: str) -> None:
    assert expect in text, text
    assert not any(word in text for word in STORAGE_BLAME), text


# -- a closed standard output ----------------------------------------------------------------------

CLOSED_PIPE = {
    "versions": ("registry", "versions", "demo"),
    "versions-json": ("registry", "versions", "demo", "--json"),
    "list": ("registry", "list"),
    "show": ("registry", "show", "demo@1"),
    "diff": ("registry", "diff", "demo@1", "demo@2", "--json"),
    "aliases": ("registry", "aliases", "demo"),
    "help": ("--help",),
    "registry-help": ("registry", "--help"),
}


@pytest.mark.integration
@pytest.mark.fault
@pytest.mark.parametrize("command", list(CLOSED_PIPE))
def test_closed_stdout_exits_0_quietly(command: str, workspace: Workspace) -> None:
    argv = list(CLOSED_PIPE[command])
    if argv[0] == "registry" and argv[-1] != "--help":
        argv.append(f"--registry={workspace.registry}")
    before = tree_digest(workspace.registry)
    process = subprocess.Popen(
        _cli(*argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=workspace.cwd,
        env=_env(),
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before the first byte is written
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0, stderr
    assert stderr == ""
    assert changes(before, tree_digest(workspace.registry)) == []


@pytest.mark.integration
@pytest.mark.fault
def test_versions_piped_into_head_exits_0(workspace: Workspace) -> None:
    command = " ".join(_cli("registry", "versions", "demo", f"--registry={workspace.registry}"))
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{command} | head -1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=workspace.cwd,
        env=_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("VERSION") and result.stdout.count("\n") == 1
    assert result.stderr == ""


class _ClosedPipe:
    """A standard output whose reader has gone: every write and flush raises EPIPE."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.fault
@pytest.mark.parametrize("command", ["versions", "list", "show", "help"])
def test_closed_stdout_in_process_is_not_a_storage_error(
    command: str, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = _ClosedPipe()
    monkeypatch.setattr(sys, "stdout", closed)
    argv = list(CLOSED_PIPE[command])
    if argv[0] == "registry":
        argv.append(f"--registry={workspace.registry}")
    try:
        code = main(argv)
    except SystemExit as exit_:  # --help exits through argparse
        code = exit_.code  # type: ignore[assignment]
    assert code == 0
    assert sys.stdout is closed  # the guard is removed again


# -- registry serve: port, host, IPv6 -----------------------------------------------------------


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        yield taken.getsockname()[1]


@pytest.mark.fault
def test_port_in_use_is_named(
    busy_port: int, workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["registry", "serve", f"--port={busy_port}", f"--registry={workspace.registry}"]
    outcome = run_cli(argv, capsys)
    assert refusal_problems(outcome, f"127.0.0.1:{busy_port} already in use") == []
    _precise(outcome.text, "0 picks a free one")


@pytest.mark.fault
@pytest.mark.parametrize(
    ("host", "expect"),
    [
        ("no-such-host.invalid", "a name that resolves"),
        ("203.0.113.7", "an address of this machine"),
    ],
)
def test_bad_bind_host_is_named(
    host: str, expect: str, workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["registry", "serve", f"--host={host}", "--allow-remote", "--port=0"]
    outcome = run_cli([*argv, f"--registry={workspace.registry}"], capsys)
    assert refusal_problems(outcome, expect) == []
    _precise(outcome.text, host)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.integration
@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_serve_on_ipv6_loopback(workspace: Workspace) -> None:
    process = subprocess.Popen(
        _cli("registry", "serve", "--host", "::1", "--port", "0")
        + [f"--registry={workspace.registry}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=workspace.cwd,
        env=_env(),
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert " at http://[::1]:" in banner, banner + (
            process.stderr.read() if process.stderr else ""
        )
        url = banner.split(" at ")[1].split()[0]
        with urllib.request.urlopen(f"{url}/v1/names", timeout=30) as response:  # noqa: S310
            assert json.loads(response.read())["names"] == ["demo", "other"]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


# -- registry download: the destination, not the registry ---------------------------------------


@pytest.mark.fault
@pytest.mark.parametrize(
    ("layout", "expect"),
    [("below-a-file", "Not a directory"), ("is-a-file", "File exists")],
)
def test_download_destination_error_names_the_destination(
    layout: str,
    expect: str,
    workspace: Workspace,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    dest = blocker / "dl" if layout == "below-a-file" else blocker
    before = tree_digest(tmp_path)
    argv = ["registry", "download", "demo@1", str(dest), f"--registry={workspace.registry}"]
    outcome = run_cli(argv, capsys)
    assert refusal_problems(outcome, "registry download DEST") == []
    _precise(outcome.text, expect)
    assert changes(before, tree_digest(tmp_path)) == []


@pytest.mark.fault
def test_a_damaged_registry_is_not_blamed_on_the_destination(
    workspace: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = tmp_path / "registry"
    shutil.copytree(workspace.registry, registry)
    damaged = registry / "demo" / "versions" / "1" / "projections.safetensors"
    damaged.unlink()
    damaged.mkdir()  # reading it fails in the registry, not at the destination
    argv = ["registry", "download", "demo@1", str(tmp_path / "dl"), f"--registry={registry}"]
    outcome = run_cli(argv, capsys)
    assert refusal_problems(outcome, "demo@1") == []
    assert "registry download DEST" not in outcome.text


def _namespace() -> list[str] | None:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return None
    for flags in (["-rm"], ["-m"]):
        command = ["unshare", *flags, "--propagation", "private"]
        probe = [*command, "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"]
        if subprocess.run(probe, capture_output=True, check=False, timeout=30).returncode == 0:
            return command
    return None


_MOUNTED_DOWNLOADS = r"""
set -u
mkdir -p "$W/ro" "$W/full"
mount --bind "$W/ro" "$W/ro" && mount -o remount,bind,ro "$W/ro"
mount -t tmpfs -o size=16k tmpfs "$W/full"
dd if=/dev/zero of="$W/full/filler" bs=4k count=64 2>/dev/null || true
for case in ro full; do
  "$PY" -m sea_dist.cli registry download demo@1 "$W/$case/dl" --registry "$REG" \
    >"$W/$case.out" 2>"$W/$case.err"
  echo $? >"$W/$case.code"
  ls -A "$W/$case" >"$W/$case.ls"
done
umount -l "$W/full"; umount -l "$W/ro"
"""


@pytest.mark.integration
@pytest.mark.fault
def test_download_to_read_only_and_full_destinations(workspace: Workspace, tmp_path: Path) -> None:
    command = _namespace()
    if command is None:
        pytest.skip("no private mount namespace here (unshare/mount unavailable or not permitted)")
    env = {**_env(), "W": str(tmp_path), "PY": sys.executable, "REG": str(workspace.registry)}
    result = subprocess.run(
        [*command, "sh", "-c", _MOUNTED_DOWNLOADS],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=workspace.cwd,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for case, expect in (("ro", "Read-only file system"), ("full", "No space left on device")):
        code = (tmp_path / f"{case}.code").read_text().strip()
        err = (tmp_path / f"{case}.err").read_text()
        assert code == "2", err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in err, err
        _precise(lines[0], "registry download DEST")
        assert expect in lines[0], lines[0]
    # Nothing half-downloaded is left on the full disk (each file goes via temp + rename).
    leftovers = (tmp_path / "full.ls").read_text().split()
    assert [name for name in leftovers if name.startswith(".")] == [], leftovers
