"""Security: no pickle on any load path, a read-only loopback HTTP API, names confined to the root.

- A static scan (ast) of the package and the job entry points refuses every way to execute or
  unpickle data: ``pickle``/``dill``/``shelve``/``marshal`` imports, ``torch.load``,
  ``numpy.load(allow_pickle=True)``, ``yaml.load``/``unsafe_load`` without ``SafeLoader``,
  ``eval``/``exec``, ``trust_remote_code=True``, ``shell=True``. The scanner is itself tested on
  a file holding each pattern.
- At run time, a valid artifact is loaded through every public loader with ``pickle`` and
  ``torch.load`` booby-trapped, and a pickle-bearing artifact is refused by each of them.
- The HTTP API answers only GET/HEAD, binds 127.0.0.1 unless told otherwise, bounds the request.
- No name, alias or reference, whatever its text, addresses a path outside the registry root.
"""

from __future__ import annotations

import ast
import pickle
import socket
from pathlib import Path
from typing import Any

import pytest
from http_raw import send_raw
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_workspace import Workspace, tripwire_pickle
from synthetic_fit import write_synthetic_fit
from tree_snapshot import changes, tree_digest

from sea_dist.cli import build_parser
from sea_dist.config import NAME_RE
from sea_dist.edit import load_edit
from sea_dist.errors import RegistryError, SeaDistError
from sea_dist.registry import load_artifact
from sea_dist.registry.filesystem import Registry
from sea_dist.registry.refs import parse_ref
from sea_dist.registry.storage import Storage
from sea_dist.serve.guard import MAX_URL
from sea_dist.serve.server import make_server

REPO = Path(__file__).resolve().parents[2]
SCANNED = sorted([*REPO.joinpath("sea_dist").rglob("*.py"), *REPO.joinpath("jobs").glob("*.py")])
UNSAFE_MODULES = {
    "pickle",
    "cPickle",
    "_pickle",
    "dill",
    "cloudpickle",
    "shelve",
    "marshal",
    "joblib",
}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_calls(source: str, filename: str) -> list[str]:
    """Every unsafe import or call in ``source`` as ``file:line: what``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [f"{where}: import {a.name}" for a in node.names if a.name in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "") in UNSAFE_MODULES:
            found.append(f"{where}: from {node.module} import")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            short = name.rsplit(".", 1)[-1]
            if name in ("eval", "exec", "builtins.eval", "builtins.exec", "__import__"):
                found.append(f"{where}: {name}()")
            elif name.endswith("torch.load") or name in (
                "torch.jit.load",
                "load_state_dict_from_url",
            ):
                found.append(f"{where}: {name}()")
            elif (
                short == "load"
                and name.split(".")[0] in ("np", "numpy")
                and _is_true(_keyword(node, "allow_pickle"))
            ):
                found.append(f"{where}: {name}(allow_pickle=True)")
            elif name in ("yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "yaml.load"):
                loader = _dotted(_keyword(node, "Loader") or ast.Constant(None))
                if name in ("yaml.unsafe_load", "yaml.full_load") or not loader.endswith(
                    ("SafeLoader", "CSafeLoader")
                ):
                    found.append(f"{where}: {name}() without SafeLoader")
            if _is_true(_keyword(node, "trust_remote_code")):
                found.append(f"{where}: trust_remote_code=True")
            if _is_true(_keyword(node, "shell")):
                found.append(f"{where}: shell=True")
            weights_only = _keyword(node, "weights_only")
            if isinstance(weights_only, ast.Constant) and weights_only.value is False:
                found.append(f"{where}: weights_only=False")
    return found


def test_the_scan_covers_the_package() -> None:
    names = {p.relative_to(REPO).as_posix() for p in SCANNED}
    assert {"sea_dist/registry/loader.py", "sea_dist/edit/projections.py"} <= names
    assert len(SCANNED) > 40


def test_no_unsafe_deserialisation_or_execution_in_the_package() -> None:
    found = [hit for path in SCANNED for hit in unsafe_calls(path.read_text("utf-8"), str(path))]
    assert found == []


def test_the_scanner_finds_every_pattern() -> None:
    planted = """
import pickle
from dill import loads
import torch, numpy as np, yaml, subprocess
torch.load("x.pt")
np.load("x.npy", allow_pickle=True)
yaml.load(text)
yaml.load(text, Loader=yaml.Loader)
yaml.unsafe_load(text)
eval("1 + 1")
exec("x = 1")
model = AutoModel.from_pretrained("m", trust_remote_code=True)
subprocess.run("ls", shell=True)
torch.load("y.pt", weights_only=False)
"""
    safe = (
        "yaml.safe_load(t)\nyaml.load(t, Loader=yaml.SafeLoader)\nmodel.eval()\nnp.load('a.npy')\n"
    )
    assert len(unsafe_calls(planted, "planted.py")) == 13
    assert unsafe_calls(safe, "safe.py") == []


# -- load paths at run time ---------------------------------------------------------------------


def _loaders(registry: Registry, folder: Path) -> dict[str, Any]:
    return {
        "load_artifact(folder)": lambda: load_artifact(str(folder)),
        "load_artifact(ref)": lambda: load_artifact("art@1", registry=registry.url),
        "Registry.load": lambda: registry.load("art@1"),
        "load_edit(folder)": lambda: load_edit(folder),
        "load_edit(ref)": lambda: load_edit("art@1", registry=registry.url),
    }


def test_loading_never_touches_pickle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    registry = Registry(str(tmp_path / "registry"))
    registry.publish(write_synthetic_fit(tmp_path / "fit"), "art")
    folder = tmp_path / "registry" / "art" / "versions" / "1"

    def trap(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle or torch.load used on a load path")

    for module, names in ((pickle, ("load", "loads", "Unpickler")), (torch, ("load",))):
        for name in names:
            monkeypatch.setattr(module, name, trap)
    for label, load in _loaders(registry, folder).items():
        assert load() is not None, label


@pytest.mark.parametrize("planted", ["pickle", "torch-zip"])
def test_pickle_bearing_artifact_is_refused_by_every_loader(planted: str, tmp_path: Path) -> None:
    import io

    import torch

    registry = Registry(str(tmp_path / "registry"))
    registry.publish(write_synthetic_fit(tmp_path / "fit"), "art")
    folder = tmp_path / "registry" / "art" / "versions" / "1"
    canary = tmp_path / "CANARY"
    if planted == "pickle":
        payload = tripwire_pickle(canary)
    else:
        buffer = io.BytesIO()
        torch.save({"layers.1.U_pos": torch.zeros(16, 3)}, buffer)
        payload = buffer.getvalue()
    (folder / "projections.safetensors").write_bytes(payload)
    for label, load in _loaders(registry, folder).items():
        with pytest.raises(SeaDistError, match="pickle|zip") as info:
            load()
        assert "\n" not in str(info.value), label
    assert not canary.exists()


# -- the HTTP API ------------------------------------------------------------------------------


@pytest.mark.integration
def test_serve_binds_loopback_by_default(served: Any) -> None:
    assert served.url.startswith("http://127.0.0.1:")
    assert "read-only" in served.banner
    parser = build_parser()
    args = parser.parse_args(["registry", "serve"])
    assert args.host == "127.0.0.1" and not args.allow_remote
    port = int(served.url.rsplit(":", 1)[1])
    others = {
        str(info[4][0])
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
        if not str(info[4][0]).startswith("127.")
    }
    for address in others:  # the port is closed on every non-loopback address of this host
        with pytest.raises(OSError):
            socket.create_connection((address, port), timeout=2).close()


def test_make_server_defaults_to_loopback(tmp_path: Path) -> None:
    server = make_server(Registry(str(tmp_path / "registry")), port=0)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


@pytest.mark.integration
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
@pytest.mark.parametrize(
    "path",
    [
        "/v1/names",
        "/v1/names/demo/aliases",
        "/v1/artifacts/demo/1/files/projections.safetensors",
        "/v1/artifacts/demo/2/manifest",
        "/v1/resolve/demo@latest",
    ],
)
def test_api_is_read_only(method: str, path: str, served: Any, workspace: Workspace) -> None:
    before = tree_digest(workspace.registry)
    body = b'{"version": 1}'
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}".encode()
    response = send_raw(served.url, head, body)
    assert response.status == 405 and response.headers["allow"] == "GET, HEAD"
    assert response.json()["error"]["status"] == 405
    assert changes(before, tree_digest(workspace.registry)) == []


@pytest.mark.integration
def test_request_size_is_bounded(served: Any) -> None:
    room = MAX_URL - len("/v1/resolve/")
    at_limit = send_raw(served.url, f"GET /v1/resolve/{'a' * room} HTTP/1.1".encode())
    assert at_limit.status == 400  # read (and refused as a malformed reference), not 414
    over = send_raw(served.url, f"GET /v1/resolve/{'a' * (room + 1)} HTTP/1.1".encode())
    assert over.status == 414 and over.json()["error"]["status"] == 414
    body = send_raw(served.url, b"GET /v1/names HTTP/1.1\r\nContent-Length: 1000000", b"x" * 1000)
    assert body.status == 413


# -- names confined to the registry root -------------------------------------------------------

ANY_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["..", ".", "/", "../x", "a/../../b", "/etc/passwd", "~", "a\\..\\b", "\x00"]),
    st.lists(st.sampled_from(["..", "/", "a", ".", "\\", "%2e", "@", ":"]), max_size=8).map(
        "".join
    ),
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(segment=ANY_TEXT)
def test_no_segment_escapes_the_root(segment: str) -> None:
    root = Path("/tmp/sea-dist-registry-root")
    storage = Storage(str(root))
    try:
        path = Path(storage.path("name", segment))
    except RegistryError:
        return
    resolved = Path(str(path).replace("//", "/")).resolve()
    assert resolved.is_relative_to(root / "name") and resolved != root / "name"


@settings(max_examples=200, deadline=None, derandomize=True)
@given(text=ANY_TEXT)
def test_every_reference_is_refused_or_names_a_plain_name(text: str) -> None:
    try:
        ref = parse_ref(text)
    except RegistryError as error:
        assert "\n" not in str(error)
        return
    for part in (ref.name, ref.alias):
        if part is not None:  # a single plain path segment: no separator, never "." or ".."
            assert NAME_RE.fullmatch(part) and "/" not in part and part not in (".", "..")
