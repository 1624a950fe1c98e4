"""Round two, class 5: the registry stays consistent under races, hand edits and forged caches.

What failed: ``registry gc --keep 1`` racing ``registry alias NAME@3 prod`` deleted the aliased
version (1 in 40), leaving a dangling alias; a version folder deleted by hand made ``versions``
and ``reindex`` fail with a suggestion (``registry gc``) that fixed nothing; ``registry download``
overwrote a non-empty folder; a refused ``resolve sha256:ffff`` wrote ``index.parquet``; forged
rows of ``index.parquet`` were shown by ``versions`` as true.

Held now, each in several places:

- gc retires a version (its marker moves to ``retired/``) before it re-reads the aliases, and an
  alias move checks its target after writing the pointer, so one of them always sees the other:
  every interleaving is forced deterministically (a storage that runs the other actor's step at
  an exact point of gc: the race cannot be scheduled otherwise), then raced for real (threads,
  and CLI processes), and a gc killed midway is finished by the next one;
- damaged versions (folder, manifest or tensors deleted, manifest edited or emptied) are
  listed as damaged, never a failure, and every fix a message suggests is run and must fix;
- ``download`` refuses a non-empty DEST unless ``--overwrite``, and even then anything but an
  earlier download (or a registry's own version folder);
- no query writes: every read-only command on a registry without, with a stale and with a forged
  index leaves it byte-identical;
- ``index.parquet`` rows are checked against the markers (which pin each row's digest) or the
  manifests, so forged rows are never shown.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_outcome import is_log_or_progress, refusal_problems, run_cli
from synthetic_fit import write_synthetic_fit
from tree_snapshot import changes, tree_digest

from sea_dist.errors import RegistryError, SeaDistError
from sea_dist.format.anchors import marker_bytes
from sea_dist.format.manifest import manifest_from_json
from sea_dist.registry import aliases as alias_ops
from sea_dist.registry.client import HttpRegistry
from sea_dist.registry.filesystem import Registry
from sea_dist.registry.index import INDEX_FILE, row_from_manifest
from sea_dist.registry.refs import NotFoundError
from sea_dist.registry.storage import Storage

NAME = "demo"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``demo`` versions 1..4 (created in 2026-01..04), prod -> 1 and stable -> 4 (ungated)."""
    root = tmp_path_factory.mktemp("template")
    registry = Registry(str(root / "registry"))
    for version in range(1, 5):
        fit = write_synthetic_fit(root / f"fit{version}", seed=version)
        registry.publish(fit, NAME, created_at=f"2026-0{version}-01T00:00:00+00:00")
    registry.set_alias(NAME, "prod", 1)
    registry.set_alias(NAME, "stable", 4)
    return root / "registry"


def _copy(template: Path, where: Path) -> Registry:
    shutil.copytree(template, where)
    return Registry(str(where))


def _assert_consistent(registry: Registry) -> None:
    """Every alias of demo resolves to a complete version whose files load and verify."""
    fresh = Registry(registry.url)
    complete = fresh.complete_versions(NAME)
    for alias, version in fresh.aliases(NAME).items():
        assert version in complete, f"alias {alias} points to removed {NAME}@{version}"
        assert fresh.load(f"{NAME}@{alias}").manifest.version == version
    assert not list((Path(registry.url) / NAME / "retired").glob("*.json"))


# -- gc racing an alias move: every interleaving, forced ------------------------------------------


class Killed(Exception):
    """A process killed at this point (the files are left exactly as they are)."""


Point = tuple[str, tuple[str, ...], str]
"""``(operation, path parts, "before" | "after")``: an exact step of the registry protocol."""


class Scripted(Storage):
    """Registry storage that runs scripted steps (once each) at exact points of its operations.

    A race between two processes cannot be scheduled; this forces each interleaving of gc and
    an alias move at the boundary where they meet (the storage), with real file operations.
    """

    def __init__(self, url: str, steps: Mapping[Point, Callable[[], object]]) -> None:
        super().__init__(url)
        self.steps = dict(steps)

    def _at(self, op: str, parts: tuple[str, ...], when: str) -> None:
        step = self.steps.pop((op, parts, when), None)
        if step is not None:
            step()

    def move(self, source: tuple[str, ...], target: tuple[str, ...]) -> None:
        self._at("move", source, "before")
        super().move(source, target)
        self._at("move", source, "after")

    def remove(self, *parts: str, recursive: bool = False) -> None:
        self._at("remove", parts, "before")
        super().remove(*parts, recursive=recursive)
        self._at("remove", parts, "after")

    def write_bytes(self, data: bytes, *parts: str) -> None:
        self._at("write", parts, "before")
        super().write_bytes(data, *parts)
        self._at("write", parts, "after")


RETIRE = ("move", (NAME, "complete", "3.json"))
REMOVE_FILES = ("remove", (NAME, "versions", "3", "manifest.json"))
POINTER = ("write", (NAME, "aliases", "current", "stable.json"), "before")


class AliasMover:
    """``set_alias(demo, stable, 3)`` in a thread that pauses right before writing the pointer."""

    def __init__(self, url: str) -> None:
        self.ready, self.go = threading.Event(), threading.Event()
        self.error: BaseException | None = None
        self.registry = Registry(url)
        self.registry.storage = Scripted(url, {POINTER: self._pause})
        self.thread = threading.Thread(target=self._run)

    def _pause(self) -> None:
        self.ready.set()
        assert self.go.wait(30)

    def _run(self) -> None:
        try:
            self.registry.set_alias(NAME, "stable", 3)
        except BaseException as error:  # noqa: BLE001 - reported to the test
            self.error = error

    def start_until_ready(self) -> None:
        self.thread.start()
        assert self.ready.wait(30)

    def write_pointer(self, url: str) -> None:
        """Let it write the pointer; return once the pointer names version 3."""
        self.go.set()
        deadline = time.monotonic() + 30
        while alias_ops.read_alias(Storage(url), NAME, "stable") != 3 and self.thread.is_alive():
            assert time.monotonic() < deadline
            time.sleep(0.005)

    def join(self) -> BaseException | None:
        self.go.set()
        self.thread.join(60)
        assert not self.thread.is_alive()
        return self.error


def _gc_with(registry: Registry, steps: Mapping[Point, Callable[[], object]]) -> Any:
    registry.storage = Scripted(registry.url, steps)
    return registry.gc(keep=1)


@pytest.mark.fault
def test_alias_moved_before_gc_retires_the_version(template: Path, tmp_path: Path) -> None:
    """gc listed the aliases (3 unprotected); the alias moves to 3; gc's re-check keeps 3."""
    registry = _copy(template, tmp_path / "registry")
    mover = Registry(registry.url)
    removed = _gc_with(registry, {(*RETIRE, "before"): lambda: mover.set_alias(NAME, "stable", 3)})
    assert [e.target for e in removed] == [f"{NAME}@2"]
    assert Registry(registry.url).resolve(f"{NAME}@stable").version == 3
    _assert_consistent(registry)


@pytest.mark.fault
def test_alias_written_while_the_version_is_retired(template: Path, tmp_path: Path) -> None:
    """The pointer lands between gc's retire and its re-check: gc puts the marker back and the
    mover, which waited for gc's decision, succeeds."""
    registry = _copy(template, tmp_path / "registry")
    alias = AliasMover(registry.url)
    steps: dict[Point, Callable[[], object]] = {
        (*RETIRE, "before"): alias.start_until_ready,  # its check saw the marker
        (*RETIRE, "after"): lambda: alias.write_pointer(registry.url),  # lands while retired
    }
    registry.storage = Scripted(registry.url, steps)
    removed = registry.gc(keep=1)
    assert alias.join() is None
    assert [e.target for e in removed] == [f"{NAME}@2"]
    assert Registry(registry.url).resolve(f"{NAME}@stable").version == 3
    _assert_consistent(registry)


@pytest.mark.fault
def test_alias_written_after_gc_rechecked_is_undone(template: Path, tmp_path: Path) -> None:
    """The mover checked the version before gc retired it, but writes the pointer only after
    gc's re-check: the version goes, the mover sees it gone, restores stable -> 4, and fails
    with one line; the history records the move and its revert."""
    registry = _copy(template, tmp_path / "registry")
    alias = AliasMover(registry.url)
    steps: dict[Point, Callable[[], object]] = {
        (*RETIRE, "before"): alias.start_until_ready,
        (*REMOVE_FILES, "before"): alias.go.set,  # the mover writes while gc removes the files
    }
    registry.storage = Scripted(registry.url, steps)
    removed = registry.gc(keep=1)
    error = alias.join()
    assert {e.target for e in removed} == {f"{NAME}@2", f"{NAME}@3"}
    assert isinstance(error, NotFoundError), error
    assert "\n" not in str(error) and "removed by a concurrent 'registry gc'" in str(error)
    assert Registry(registry.url).aliases(NAME)["stable"] == 4
    history = Registry(registry.url).alias_history(NAME, "stable")
    assert [h["version"] for h in history[-2:]] == [3, 4] and history[-1]["reverted"] is True
    _assert_consistent(registry)


@pytest.mark.fault
def test_alias_attempted_while_retired_is_refused(template: Path, tmp_path: Path) -> None:
    registry = _copy(template, tmp_path / "registry")
    outcome: list[BaseException] = []

    def attempt() -> None:
        try:
            Registry(registry.url).set_alias(NAME, "stable", 3)
        except SeaDistError as error:
            outcome.append(error)

    _gc_with(registry, {(*RETIRE, "after"): attempt})
    assert len(outcome) == 1 and isinstance(outcome[0], NotFoundError)
    assert Registry(registry.url).aliases(NAME)["stable"] == 4
    _assert_consistent(registry)


@pytest.mark.fault
@pytest.mark.parametrize(
    "point",
    [RETIRE + ("after",), REMOVE_FILES + ("after",)],
    ids=["killed-after-retire", "killed-between-file-removals"],
)
@pytest.mark.parametrize("aliased_meanwhile", [False, True])
def test_a_gc_killed_midway_is_finished_by_the_next(
    point: tuple[Any, ...], aliased_meanwhile: bool, template: Path, tmp_path: Path
) -> None:
    registry = _copy(template, tmp_path / "registry")

    def kill() -> None:
        raise Killed

    with pytest.raises(Killed):
        _gc_with(registry, {point: kill})
    fresh = Registry(registry.url)
    assert 3 not in fresh.complete_versions(NAME)  # out of view, never half-visible
    assert [r["version"] for r in fresh.versions(NAME)] == [1, 4]  # 2 went; 3 retired
    if aliased_meanwhile:  # e.g. a pointer written by an older sea-dist
        record = {"alias": "legacy", "version": 3}
        fresh.storage.write_bytes(
            json.dumps(record).encode(), NAME, "aliases", "current", "legacy.json"
        )
    removed = Registry(registry.url).gc(keep=1)
    fresh = Registry(registry.url)
    if aliased_meanwhile and point[1] == RETIRE[1]:
        assert fresh.resolve(f"{NAME}@legacy").version == 3  # restored: files were intact
        _assert_consistent(registry)
    elif aliased_meanwhile:
        # Its manifest was already gone: restored, and listed as damaged with a fix.
        assert 3 in fresh.complete_versions(NAME)
        assert [e.kind for e in fresh.gc(keep=None, damaged=True)] == ["kept"]
    else:
        assert f"{NAME}@3" in {e.target for e in removed}
        assert fresh.complete_versions(NAME) == [1, 4]
        _assert_consistent(registry)


# -- gc racing an alias move: for real -------------------------------------------------------------


def _race_once(url: str) -> list[BaseException]:
    """``gc(keep=1)`` and ``set_alias(demo, stable, 3)`` in two threads released together."""
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def gc() -> None:
        barrier.wait()
        Registry(url).gc(keep=1)

    def alias() -> None:
        barrier.wait()
        try:
            Registry(url).set_alias(NAME, "stable", 3)
        except NotFoundError as error:
            errors.append(error)

    threads = [threading.Thread(target=gc), threading.Thread(target=alias)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


@pytest.mark.fault
def test_gc_racing_alias_moves_never_leaves_a_dangling_alias(
    template: Path, tmp_path: Path
) -> None:
    trials, outcomes = 40, {"moved": 0, "refused": 0}
    for trial in range(trials):
        registry = _copy(template, tmp_path / f"r{trial}")
        errors = _race_once(registry.url)
        _assert_consistent(registry)
        stable = Registry(registry.url).aliases(NAME)["stable"]
        if errors:
            assert stable == 4 and "\n" not in str(errors[0])
            outcomes["refused"] += 1
        else:
            assert stable == 3
            outcomes["moved"] += 1
    assert sum(outcomes.values()) == trials, outcomes


_RACE = r"""
"$PY" -m sea_dist.cli registry gc --keep 1 --registry "$REG" >"$W/gc.out" 2>"$W/gc.err" &
"$PY" -m sea_dist.cli registry alias demo@3 prod --force --reason race --registry "$REG" \
  >"$W/alias.out" 2>"$W/alias.err" &
wait
"""


@pytest.mark.integration
@pytest.mark.fault
def test_gc_and_alias_commands_racing(template: Path, tmp_path: Path) -> None:
    """The reported probe: ``registry gc --keep 1`` and ``registry alias demo@3 prod`` as two
    processes started together, several times; no trial may leave a dangling alias."""
    for trial in range(6):
        work = tmp_path / f"t{trial}"
        work.mkdir()
        registry = _copy(template, work / "registry")
        env = {"PY": sys.executable, "REG": registry.url, "W": str(work), "PATH": "/usr/bin:/bin"}
        subprocess.run(["sh", "-c", _RACE], env=env, timeout=120, check=True)
        for process in ("gc", "alias"):
            err = (work / f"{process}.err").read_text()
            lines = [line for line in err.splitlines() if not is_log_or_progress(line)]
            assert "Traceback" not in err and len(lines) <= 1, err
        _assert_consistent(registry)


# -- damaged versions: listed, never fatal; every suggested fix fixes -----------------------------


def _delete_folder(v: Path) -> None:
    shutil.rmtree(v)


def _edit_manifest(v: Path) -> None:
    data = json.loads((v / "manifest.json").read_text())
    (v / "manifest.json").write_text(json.dumps({**data, "model_id": "edited"}))


DAMAGE: dict[str, Callable[[Path], object]] = {
    "folder-deleted": _delete_folder,
    "manifest-deleted": lambda v: (v / "manifest.json").unlink(),
    "projections-deleted": lambda v: (v / "projections.safetensors").unlink(),
    "manifest-edited": _edit_manifest,
    "manifest-emptied": lambda v: (v / "manifest.json").write_bytes(b""),
}


def _fix_commands(text: str) -> list[list[str]]:
    """The ``'sea-dist ...'`` commands a message suggests, as argv lists."""
    commands = []
    for chunk in text.split("'sea-dist ")[1:]:
        commands.append(shlex.split(chunk.split("'", 1)[0]))
    return commands


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.fault
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_version_never_breaks_listing_and_its_fix_works(
    damage: str,
    template: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = _copy(template, tmp_path / "registry")
    reg = f"--registry={registry.url}"
    DAMAGE[damage](Path(registry.url) / NAME / "versions" / "2")

    files_gone = damage in ("folder-deleted", "manifest-deleted", "projections-deleted")
    caplog.clear()
    outcome = run_cli(["registry", "versions", NAME, reg], capsys)
    assert outcome.code == 0 and outcome.escaped is None, outcome
    listed = [line.split()[0] for line in outcome.out.splitlines()[1:]]
    assert "latest" in outcome.out.splitlines()[-1]
    warned = [w for w in _warnings(caplog) if f"{NAME}@2 is damaged" in w]
    if files_gone:  # one walk of versions/ shows it
        assert listed == ["1", "3", "4"] and len(warned) == 1, _warnings(caplog)
    else:  # the row its marker pins is the published truth; loads and reindex read the file
        assert listed == ["1", "2", "3", "4"] and warned == [], _warnings(caplog)

    caplog.clear()
    outcome = run_cli(["registry", "reindex", NAME, reg], capsys)
    assert outcome.code == 0 and outcome.out.strip() == f"{NAME}: 3 version(s) indexed"
    warned = [w for w in _warnings(caplog) if f"{NAME}@2 is damaged" in w]
    assert len(warned) == 1, _warnings(caplog)
    fixes = _fix_commands(warned[0])
    assert fixes and fixes[0][:2] == ["registry", "gc"], warned[0]

    # A load of the damaged version is one line, and its fix is the same command.
    loaded = run_cli(["registry", "download", f"{NAME}@2", str(tmp_path / "dl"), reg], capsys)
    if files_gone:
        assert refusal_problems(loaded, "damaged") == []
    else:
        assert refusal_problems(loaded, "modified after publication") == []
    assert _fix_commands(loaded.text)[0] == fixes[0], loaded.text

    for fix in fixes:
        done = run_cli([*fix, reg], capsys)
        assert done.code == 0 and f"removed damaged {NAME}@2" in done.out, done
    caplog.clear()
    for argv in (["versions", NAME], ["reindex", NAME], ["gc", "--damaged"]):
        again = run_cli(["registry", *argv, reg], capsys)
        assert again.code == 0 and again.escaped is None, again
    assert _warnings(caplog) == []
    assert Registry(registry.url).complete_versions(NAME) == [1, 3, 4]
    gone = run_cli(["registry", "resolve", f"{NAME}@2", reg], capsys)
    assert refusal_problems(gone, f"{NAME}@2") == [] and "damaged" not in gone.text
    _assert_consistent(registry)


@pytest.mark.fault
def test_a_damaged_aliased_version_names_the_alias_first(
    template: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = _copy(template, tmp_path / "registry")
    reg = f"--registry={registry.url}"
    shutil.rmtree(Path(registry.url) / NAME / "versions" / "4")  # stable -> 4
    caplog.clear()
    assert run_cli(["registry", "versions", NAME, reg], capsys).code == 0
    (warned,) = [w for w in _warnings(caplog) if "is damaged" in w]
    fixes = _fix_commands(warned)
    assert [f[:2] for f in fixes] == [["registry", "alias"], ["registry", "gc"]], warned
    # gc alone keeps it (it would orphan the alias) and says so.
    kept = run_cli(["registry", "gc", "--damaged", reg], capsys)
    assert kept.code == 0 and f"kept {NAME}@4" in kept.out and "stable" in kept.out
    assert 4 in Registry(registry.url).complete_versions(NAME)
    alias_fix = [a.replace("@N", "@3") for a in fixes[0]]
    for fix in (alias_fix, fixes[1]):
        assert run_cli([*fix, reg], capsys).code == 0
    assert Registry(registry.url).complete_versions(NAME) == [1, 2, 3]
    _assert_consistent(registry)


@pytest.mark.integration
@pytest.mark.fault
def test_the_cli_prints_the_damage_warning_and_exits_0(template: Path, tmp_path: Path) -> None:
    registry = _copy(template, tmp_path / "registry")
    shutil.rmtree(Path(registry.url) / NAME / "versions" / "3")
    for action in (["versions", NAME], ["reindex"]):
        result = subprocess.run(
            [sys.executable, "-m", "sea_dist.cli", "registry", *action, "--registry", registry.url],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "gc --damaged --name demo" in lines[0], result.stderr


# -- aliases that point to a removed version ------------------------------------------------------


def _dangle(registry: Registry, alias: str, version: int) -> None:
    """Leave ``alias`` pointing to ``version``, then remove the version as an older gc did."""
    registry.set_alias(NAME, alias, version)
    root = Path(registry.url) / NAME
    (root / "complete" / f"{version}.json").unlink()
    shutil.rmtree(root / "versions" / str(version))


@pytest.mark.bad_input
@pytest.mark.parametrize("alias", ["stable", "prod"])
def test_an_alias_to_a_removed_version_is_named_with_a_working_fix(
    alias: str,
    template: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = _copy(template, tmp_path / "registry")
    reg = f"--registry={registry.url}"
    _dangle(registry, alias, 2)
    caplog.clear()
    listed = run_cli(["registry", "versions", NAME, reg], capsys)
    assert listed.code == 0
    assert any(f"alias {NAME}@{alias}" in w for w in _warnings(caplog))
    for argv in (["resolve", f"{NAME}@{alias}"], ["show", f"{NAME}@{alias}"]):
        outcome = run_cli(["registry", *argv, reg], capsys)
        assert refusal_problems(outcome, f"{NAME}@2, which is not published") == []
    (fix,) = _fix_commands(outcome.text)
    gated = alias == "prod"  # gated: the message says a forced move needs a reason
    assert "--force --reason" in outcome.text
    extra = ["--force", "--reason", "repair a dangling alias"] if gated else []
    moved = run_cli([*fix, *extra, reg], capsys)
    assert moved.code == 0, moved
    assert Registry(registry.url).resolve(f"{NAME}@{alias}").version == 4
    assert run_cli(["registry", "gc", "--keep", "1", reg], capsys).code == 0
    _assert_consistent(registry)


# -- download never overwrites silently ------------------------------------------------------------


def _earlier_download(registry: Registry, dest: Path) -> None:
    registry.download(f"{NAME}@1", dest)


def _folder_with(entry: str, kind: str = "file") -> Callable[[Registry, Path], None]:
    def make(registry: Registry, dest: Path) -> None:
        dest.mkdir(exist_ok=True)
        if kind == "folder":
            (dest / entry).mkdir()
        else:
            (dest / entry).write_bytes(b"{")

    return make


def _earlier_download_and(entry: str) -> Callable[[Registry, Path], None]:
    def make(registry: Registry, dest: Path) -> None:
        _earlier_download(registry, dest)
        (dest / entry).write_text("mine")

    return make


DESTS: dict[str, tuple[Callable[[Registry, Path], None], bool]] = {
    # layout -> (make it, may --overwrite replace it)
    "a-foreign-file": (_folder_with("a.txt"), False),
    "a-hidden-file": (_folder_with(".keep"), False),
    "a-subfolder": (_folder_with("sub", "folder"), False),
    "an-earlier-download-plus-a-file": (_earlier_download_and("notes.md"), False),
    "an-earlier-download": (_earlier_download, True),
    "a-killed-download": (_folder_with(f".manifest.json.{'a' * 32}"), True),
}


@pytest.mark.bad_input
@pytest.mark.parametrize("layout", sorted(DESTS))
@pytest.mark.parametrize(
    "how", ["cli", "python", pytest.param("http", marks=pytest.mark.integration)]
)
def test_download_refuses_a_non_empty_destination(
    layout: str,
    how: str,
    template: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry = _copy(template, tmp_path / "registry")
    dest = tmp_path / "dest"
    make, replaceable = DESTS[layout]
    make(registry, dest)
    before = tree_digest(tmp_path)
    with _reader(how, registry) as download:
        for overwrite in (False, True):
            message = download(dest, overwrite, capsys)
            if overwrite and replaceable:
                assert message is None
                break
            assert message is not None and "registry download DEST" in message, message
            assert ("pass --overwrite" in message) is (not overwrite), message
            assert changes(before, tree_digest(tmp_path)) == [], (layout, overwrite)
    if replaceable:
        copy = Registry(registry.url).load(f"{NAME}@latest")
        from sea_dist.registry import load_artifact

        assert load_artifact(str(dest)).manifest.sha256 == copy.manifest.sha256
        assert sorted(p.name for p in dest.iterdir()) == [
            "manifest.json",
            "manifest.sha256",
            "projections.safetensors",
        ]


Download = Callable[[Path, bool, Any], "str | None"]


class _reader:
    """A context giving ``download(dest, overwrite, capsys) -> refusal line or None``."""

    def __init__(self, how: str, registry: Registry) -> None:
        self.how, self.registry = how, registry

    def __enter__(self) -> Download:
        if self.how == "cli":
            return self._cli
        if self.how == "http":
            from sea_dist.serve.server import make_server

            self.server = make_server(self.registry, "127.0.0.1", 0)
            self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
            self.thread.start()
            client = HttpRegistry(f"http://127.0.0.1:{self.server.server_address[1]}")
            return lambda d, o, _: self._call(lambda: client.download(f"{NAME}@4", d, overwrite=o))
        return lambda d, o, _: self._call(
            lambda: self.registry.download(f"{NAME}@4", d, overwrite=o)
        )

    def __exit__(self, *exc: object) -> None:
        if self.how == "http":
            self.server.shutdown()
            self.server.server_close()

    def _call(self, fn: Callable[[], object]) -> str | None:
        try:
            fn()
        except RegistryError as error:
            return str(error)
        return None

    def _cli(self, dest: Path, overwrite: bool, capsys: Any) -> str | None:
        argv = ["registry", "download", f"{NAME}@4", str(dest), f"--registry={self.registry.url}"]
        outcome = run_cli(argv + (["--overwrite"] if overwrite else []), capsys)
        if outcome.code == 0:
            return None
        assert refusal_problems(outcome, "registry download DEST") == []
        return outcome.text


@pytest.mark.bad_input
def test_download_into_a_registry_version_folder_is_refused_even_with_overwrite(
    template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = _copy(template, tmp_path / "registry")
    target = Path(registry.url) / NAME / "versions" / "1"
    before = tree_digest(Path(registry.url))
    argv = ["registry", "download", f"{NAME}@4", str(target), f"--registry={registry.url}"]
    outcome = run_cli([*argv, "--overwrite"], capsys)
    assert refusal_problems(outcome, "a published version's folder") == []
    assert changes(before, tree_digest(Path(registry.url))) == []


def test_download_into_an_empty_folder_is_fine(template: Path, tmp_path: Path) -> None:
    registry = _copy(template, tmp_path / "registry")
    (tmp_path / "empty").mkdir()
    assert registry.download(f"{NAME}@2", tmp_path / "empty").is_dir()
    assert registry.download(f"{NAME}@2", tmp_path / "new" / "nested").is_dir()


# -- reads never write ----------------------------------------------------------------------------


def _no_index(registry: Registry) -> None:
    (Path(registry.url) / NAME / INDEX_FILE).unlink()


def _stale_index(registry: Registry) -> None:
    path = Path(registry.url) / NAME / INDEX_FILE
    table = pq.read_table(path)
    pq.write_table(table.slice(0, 2), path)  # lacks versions 3 and 4


def _forged_index(registry: Registry) -> None:
    _forge(registry, lambda rows: rows[0].update(model_id="forged"))


INDEX_STATES: dict[str, Callable[[Registry], None]] = {
    "no-index": _no_index,
    "stale-index": _stale_index,
    "forged-index": _forged_index,
}


def _read_commands(registry: Registry, tmp_path: Path) -> dict[str, list[str]]:
    shas = [Registry(registry.url).resolve(f"{NAME}@{v}").sha256 for v in range(1, 5)]
    absent = next(p for p in ("ffff", "0000", "1234") if not any(s.startswith(p) for s in shas))
    return {
        "list": ["list"],
        "versions": ["versions", NAME],
        "versions-json-filtered": ["versions", NAME, "--json", "--model-id", "tiny-random-llama"],
        "show": ["show", f"{NAME}@prod"],
        "resolve-latest": ["resolve", f"{NAME}@latest"],
        "resolve-sha": ["resolve", f"sha256:{shas[1][:12]}"],
        "resolve-absent-sha (refused)": ["resolve", f"sha256:{absent}"],
        "resolve-unknown-version (refused)": ["resolve", f"{NAME}@99"],
        "aliases": ["aliases", NAME],
        "alias-history": ["aliases", NAME, "--history", "prod"],
        "diff": ["diff", f"{NAME}@1", f"{NAME}@2"],
        "download": ["download", f"{NAME}@3", str(tmp_path / "dl")],
    }


@pytest.mark.bad_input
@pytest.mark.parametrize("state", sorted(INDEX_STATES))
def test_no_query_writes_the_registry(
    state: str, template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = _copy(template, tmp_path / "registry")
    INDEX_STATES[state](registry)
    before = tree_digest(Path(registry.url))
    for label, argv in _read_commands(registry, tmp_path).items():
        outcome = run_cli(["registry", *argv, f"--registry={registry.url}"], capsys)
        if "refused" in label:
            assert refusal_problems(outcome) == [], label
        else:
            assert outcome.code == 0 and outcome.escaped is None, (label, outcome)
        assert changes(before, tree_digest(Path(registry.url))) == [], label


@pytest.mark.integration
@pytest.mark.bad_input
def test_no_http_query_writes_the_registry(template: Path, tmp_path: Path) -> None:
    from sea_dist.serve.server import make_server

    registry = _copy(template, tmp_path / "registry")
    _no_index(registry)
    before = tree_digest(Path(registry.url))
    server = make_server(Registry(registry.url), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = HttpRegistry(f"http://127.0.0.1:{server.server_address[1]}")
        assert [r["version"] for r in client.versions(NAME)] == [1, 2, 3, 4]
        with pytest.raises(NotFoundError):
            client.resolve("sha256:" + "f" * 64)
        assert client.load(f"{NAME}@prod").manifest.version == 1
    finally:
        server.shutdown()
        server.server_close()
    assert changes(before, tree_digest(Path(registry.url))) == []


# -- forged index rows are never shown -------------------------------------------------------------


def _forge(registry: Registry, change: Callable[[list[dict[str, Any]]], object]) -> None:
    path = Path(registry.url) / NAME / INDEX_FILE
    table = pq.read_table(path)
    rows = table.to_pylist()
    change(rows)
    forged = pa.Table.from_pylist(rows, schema=table.schema)
    pq.write_table(forged.replace_schema_metadata(table.schema.metadata), path)


def _without_summaries(registry: Registry) -> None:
    """Markers as older sea-dist wrote them (no index-row digest)."""
    for marker in (Path(registry.url) / NAME / "complete").glob("*.json"):
        data = json.loads(marker.read_text())
        marker.write_bytes(
            marker_bytes(
                data["version"], data["sha256"], data["manifest_sha256"], data["completed_at"]
            )
        )


def _old_markers_and_a_forged_row(registry: Registry) -> None:
    _without_summaries(registry)
    _forge(registry, lambda rows: rows[0].update(site="forged-site"))


def _index_is_a_folder(registry: Registry) -> None:
    _no_index(registry)
    (Path(registry.url) / NAME / INDEX_FILE).mkdir()


FORGERIES: dict[str, Callable[[Registry], object]] = {
    "model-id": lambda r: _forge(r, lambda rows: rows[0].update(model_id="forged")),
    "gate-says-pass": lambda r: _forge(r, lambda rows: rows[1].update(gate="pass", effect=9.0)),
    "sha256": lambda r: _forge(r, lambda rows: rows[2].update(sha256="f" * 64)),
    "k-and-layers": lambda r: _forge(r, lambda rows: rows[3].update(k_pos=[9, 9], layers=[0, 2])),
    "row-for-a-version-never-published": lambda r: _forge(
        r, lambda rows: rows.append({**rows[0], "version": 99})
    ),
    "duplicated-row": lambda r: _forge(
        r, lambda rows: rows.insert(1, {**rows[1], "model_id": "twin"})
    ),
    "old-markers-and-a-forged-row": _old_markers_and_a_forged_row,
    "index-is-a-folder": _index_is_a_folder,
}


def _truth(registry: Registry) -> list[dict[str, Any]]:
    """The rows the manifests say, read without the index."""
    rows = []
    for folder in sorted(
        (Path(registry.url) / NAME / "versions").iterdir(), key=lambda p: int(p.name)
    ):
        raw = (folder / "manifest.json").read_bytes()
        rows.append(row_from_manifest(manifest_from_json(raw, str(folder))))
    return rows


@pytest.mark.bad_input
@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_forged_index_rows_are_never_shown(
    forgery: str,
    template: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = _copy(template, tmp_path / "registry")
    FORGERIES[forgery](registry)
    truth = _truth(registry)
    keys = ("version", "sha256", "model_id", "site", "layers", "k_pos", "gate", "effect")

    def shown() -> list[dict[str, Any]]:
        rows = Registry(registry.url).versions(NAME)
        return [{k: r[k] for k in keys} for r in rows]

    assert shown() == [{k: r[k] for k in keys} for r in truth]
    outcome = run_cli(
        ["registry", "versions", NAME, "--json", f"--registry={registry.url}"], capsys
    )
    assert outcome.code == 0
    listed = json.loads(outcome.out)["versions"]
    assert [(r["version"], r["model_id"], r["gate"]) for r in listed] == [
        (r["version"], r["model_id"], r["gate"]) for r in truth
    ]
    with pytest.raises(NotFoundError):
        Registry(registry.url).resolve("sha256:" + "f" * 64)
    # The fix the warning names (reindex) rewrites the cache; then nothing is replaced.
    caplog.clear()
    assert run_cli(["registry", "reindex", NAME, f"--registry={registry.url}"], capsys).code == 0
    caplog.clear()
    assert shown() == [{k: r[k] for k in keys} for r in truth]
    assert _warnings(caplog) == []


@pytest.mark.bad_input
def test_a_replaced_row_is_reported_with_reindex_as_the_fix(
    template: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = _copy(template, tmp_path / "registry")
    FORGERIES["model-id"](registry)
    caplog.clear()
    Registry(registry.url).versions(NAME)
    (warned,) = _warnings(caplog)
    assert "did not match" in warned and "'sea-dist registry reindex demo'" in warned


@pytest.fixture
def _fast_wait(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(alias_ops, "RETIRED_WAIT_S", 0.2)
    yield


@pytest.mark.fault
def test_a_move_to_a_version_left_retired_is_undone(
    template: Path, tmp_path: Path, _fast_wait: None
) -> None:
    """A gc killed after retiring 3 and an alias move that passed its check before: the move
    waits (bounded) for a decision that never comes, then undoes itself; the next gc finishes."""
    registry = _copy(template, tmp_path / "registry")
    root = Path(registry.url) / NAME
    alias = AliasMover(registry.url)
    alias.start_until_ready()
    (root / "retired").mkdir(exist_ok=True)
    (root / "complete" / "3.json").rename(root / "retired" / "3.json")  # the killed gc's state
    error = alias.join()
    assert isinstance(error, NotFoundError)
    assert Registry(registry.url).aliases(NAME)["stable"] == 4
    Registry(registry.url).gc(keep=1)
    _assert_consistent(registry)
