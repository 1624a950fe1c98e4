"""The bad-input corpus: configs, demonstrations, CLI arguments, registry references, HTTP requests.

Every case is data, so the suite parametrizes over it and ``reliability_counts.py`` counts it. CLI
arguments may hold ``{ws}`` (the workspace folder of :mod:`reliability_workspace`); ``FILES``
holds the input files the cases read, written into ``{ws}/inputs`` before any snapshot is taken.

A case with ``bug`` set is a refusal sea-dist currently gets wrong; its test is a strict xfail
whose reason is the bug, so fixing the bug flips it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

MIB = 1 << 20


@dataclass(frozen=True)
class CliCase:
    """One bad input given to the ``sea-dist`` command: it must exit 2 with one line.

    Attributes:
        id: test id.
        category: ``config``, ``cli`` or ``registry``.
        argv: arguments (``{ws}`` is the workspace folder).
        expect: text the one-line message must contain.
        bug: why sea-dist currently fails this case (the test is then a strict xfail).
    """

    id: str
    category: str
    argv: tuple[str, ...]
    expect: str = ""
    bug: str = ""


@dataclass(frozen=True)
class DemoCase:
    """One malformed demonstrations file: ``load_demonstrations`` must raise one DataError line.

    Attributes:
        id: test id (also the file name stem under ``inputs/demos``).
        source: ``DataConfig.source``.
        path: file below ``{ws}/inputs`` (need not exist).
        expect: text the message must contain.
        columns: ``DataConfig.columns``.
    """

    id: str
    source: str
    path: str
    expect: str
    columns: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HttpCase:
    """One bad HTTP request: a 4xx answer with a JSON error body, registry unchanged.

    Attributes:
        id: test id.
        raw: the request line and headers, ``\\r\\n`` separated (the blank line is added).
        status: expected status.
        bug: why the server currently answers differently (strict xfail).
    """

    id: str
    raw: bytes
    status: int
    bug: str = ""


def _row(**fields: str) -> str:
    return json.dumps(fields) + "\n"


GOOD_ROW = {"id": "a", "prompt": "Q?", "positive": "yes", "negative": "no"}

# -- input files (relative to {ws}/inputs) ------------------------------------------------------

FILES: dict[str, bytes] = {
    # configs
    "configs/unknown-top-key.yaml": b"modle:\n  id: x\n",
    "configs/unknown-nested-key.yaml": b"collect:\n  layerz: all\n",
    "configs/wrong-type-int.yaml": b"collect:\n  batch_size: eight\n",
    "configs/wrong-type-bool.yaml": b"collect:\n  max_new_tokens: true\n",
    "configs/section-not-mapping.yaml": b"fit: 3\n",
    "configs/k-above-one.yaml": b"fit:\n  positive_energy: 1.5\n",
    "configs/k-zero.yaml": b"fit:\n  negative_energy: 0\n",
    "configs/k-nan.yaml": b"fit:\n  positive_energy: .nan\n",
    "configs/fixed-k-zero.yaml": b"fit:\n  fixed_k: 0\n",
    "configs/layers-unknown-spec.yaml": b"collect:\n  layers: middle\n",
    "configs/layers-negative.yaml": b"collect:\n  layers: [-1]\n",
    "configs/layers-duplicate.yaml": b"collect:\n  layers: [2, 2]\n",
    "configs/layers-empty.yaml": b"collect:\n  layers: []\n",
    "configs/site-unknown.yaml": b"collect:\n  site: ffn\n",
    "configs/site-template-no-layer.yaml": b"collect:\n  site_template: model.layers.mlp\n",
    "configs/a-list.yaml": b"- a\n- b\n",
    "configs/bad-syntax.yaml": b"fit: [unclosed\n",
    "configs/non-utf8.yaml": b"fit:\n  out: \xff\xfe\n",
    "configs/publish-bad-name.yaml": b"publish:\n  name: Bad Name\n",
    "configs/publish-alias-latest.yaml": b"publish:\n  aliases: [latest]\n",
    "configs/cron-bad.yaml": (
        b"schedule:\n  schedules:\n    - name: nightly\n      cron: every day\n"
        b"      job_config: x.yaml\n"
    ),
    "configs/no-schedules.yaml": b"fit: {}\n",
    "configs/scheduler-unknown.yaml": b"fit:\n  scheduler: mpi\n",
    "configs/device-unknown.yaml": b"model:\n  device: tpu\n",
    "configs/source-unknown.yaml": b"data:\n  source: xls\n",
    "configs/columns-unknown.yaml": (
        b"data:\n  source: jsonl\n  path: x.jsonl\n  columns:\n    answer: a\n"
    ),
    "configs/jsonl-without-path.yaml": b"data:\n  source: jsonl\n",
    "configs/task-unknown.yaml": b"evaluate:\n  tasks: [mmlu]\n",
    # demonstrations
    "demos/empty.jsonl": b"",
    "demos/empty.csv": b"",
    "demos/missing-column.jsonl": _row(id="a", prompt="Q?", positive="yes").encode(),
    "demos/missing-column.csv": b"id,prompt,positive\na,Q?,yes\n",
    "demos/non-utf8.jsonl": _row(**GOOD_ROW).encode() + b'{"id": "b", "prompt": "\xff"}\n',
    "demos/non-utf8.csv": b"id,prompt,positive,negative\na,Q\xe9?,yes,no\n",
    "demos/duplicate-ids.jsonl": (_row(**GOOD_ROW) + _row(**GOOD_ROW)).encode(),
    "demos/empty-positive.jsonl": _row(id="a", prompt="Q?", positive="", negative="no").encode(),
    "demos/blank-negative.csv": b"id,prompt,positive,negative\na,Q?,yes,   \n",
    "demos/one-mb-row.jsonl": _row(id="a", prompt="Q" * MIB, positive="y", negative="n").encode(),
    "demos/one-mb-row.csv": b"id,prompt,positive,negative\na," + b"Q" * MIB + b",yes,no\n",
    "demos/invalid-json.jsonl": b'{"id": "a", "prompt": \n',
    "demos/array-line.jsonl": b'["a", "Q?", "yes", "no"]\n',
    "demos/ragged.csv": b"id,prompt,positive,negative\na,Q?,yes\n",
    "demos/not-parquet.parquet": b"PAR1 this is not a parquet file",
    "demos/blank-lines.jsonl": b"\n\n   \n",
    "demos/non-text-value.jsonl": (
        json.dumps({"id": "a", "prompt": ["Q?"], "positive": "y", "negative": "n"}) + "\n"
    ).encode(),
    "demos/empty-id.jsonl": _row(id=" ", prompt="Q?", positive="y", negative="n").encode(),
    "demos/truthfulqa-columns.csv": b"Question,Best Answer\nWhy?,Because.\n",
    "demos/bbq-label.jsonl": (
        json.dumps(
            {
                "example_id": 1,
                "category": "Age",
                "context": "c",
                "question": "q",
                "ans0": "a",
                "ans1": "b",
                "ans2": "c",
                "label": 7,
            }
        )
        + "\n"
    ).encode(),
    "demos/halueval-empty-list.json": b"[]\n",
}

DEMO_CASES: tuple[DemoCase, ...] = (
    DemoCase("empty-jsonl", "jsonl", "demos/empty.jsonl", "empty file"),
    DemoCase("empty-csv", "csv", "demos/empty.csv", "empty file"),
    DemoCase("missing-column-jsonl", "jsonl", "demos/missing-column.jsonl", "'negative'"),
    DemoCase("missing-column-csv", "csv", "demos/missing-column.csv", "'negative'"),
    DemoCase("non-utf8-jsonl", "jsonl", "demos/non-utf8.jsonl", "0xff at line 2"),
    DemoCase("non-utf8-csv", "csv", "demos/non-utf8.csv", "0xe9 at line 2"),
    DemoCase("duplicate-ids", "jsonl", "demos/duplicate-ids.jsonl", "unique ids"),
    DemoCase("empty-positive", "jsonl", "demos/empty-positive.jsonl", "non-empty positive"),
    DemoCase("blank-negative", "csv", "demos/blank-negative.csv", "non-empty negative"),
    DemoCase("one-mb-row-jsonl", "jsonl", "demos/one-mb-row.jsonl", "1 MB"),
    DemoCase("one-mb-row-csv", "csv", "demos/one-mb-row.csv", "1 MB"),
    DemoCase("invalid-json", "jsonl", "demos/invalid-json.jsonl", "invalid JSON"),
    DemoCase("array-line", "jsonl", "demos/array-line.jsonl", "JSON object"),
    DemoCase("ragged-csv", "csv", "demos/ragged.csv", "cells like the header"),
    DemoCase("not-parquet", "parquet", "demos/not-parquet.parquet", "Parquet"),
    DemoCase("blank-lines-only", "jsonl", "demos/blank-lines.jsonl", "blank lines"),
    DemoCase("non-text-value", "jsonl", "demos/non-text-value.jsonl", "expected text"),
    DemoCase("empty-id", "jsonl", "demos/empty-id.jsonl", "non-empty id", {"id": "id"}),
    DemoCase("missing-file", "jsonl", "demos/absent.jsonl", "found nothing"),
    DemoCase("directory", "jsonl", "demos", "directory"),
    DemoCase(
        "unmapped-column", "jsonl", "demos/missing-column.jsonl", "'answer'", {"negative": "answer"}
    ),
    DemoCase("truthfulqa-columns", "truthfulqa", "demos/truthfulqa-columns.csv", "columns"),
    DemoCase("bbq-bad-label", "bbq", "demos/bbq-label.jsonl", "label"),
    DemoCase("halueval-empty", "halueval", "demos/halueval-empty-list.json", "empty list"),
)

# -- the command line -----------------------------------------------------------------------------

_C = "{ws}/inputs/configs/"
_STORE = "{ws}/stores/complete.zarr"
_REG = "--registry={ws}/registry"
_OUT = "--out={ws}/out/fit"


def _config(case_id: str, file: str, expect: str, command: str = "validate-config") -> CliCase:
    argv = {
        "validate-config": ("validate-config", _C + file),
        "run": ("run", _C + file, "--no-evaluate"),
        "fit": ("fit", _STORE, "--config", _C + file, _OUT),
        "schedule": ("schedule", "next", _C + file),
        "publish": ("publish", "{ws}/fits/good", "--config", _C + file, _REG),
    }[command]
    return CliCase(case_id, "config", argv, expect)


CLI_CASES: tuple[CliCase, ...] = (
    # configs
    _config("unknown-top-key", "unknown-top-key.yaml", "modle: unknown key"),
    _config("unknown-nested-key", "unknown-nested-key.yaml", "collect.layerz: unknown key", "run"),
    _config("wrong-type-int", "wrong-type-int.yaml", "collect.batch_size: expected int"),
    _config("wrong-type-bool", "wrong-type-bool.yaml", "max_new_tokens: expected int", "run"),
    _config("section-not-mapping", "section-not-mapping.yaml", "fit: expected a mapping", "fit"),
    _config("k-above-one", "k-above-one.yaml", "positive_energy: expected an energy thre", "fit"),
    _config("k-zero", "k-zero.yaml", "negative_energy: expected an energy threshold in (0, 1]"),
    _config("k-nan", "k-nan.yaml", "positive_energy: expected a finite number", "fit"),
    _config("fixed-k-zero", "fixed-k-zero.yaml", "fixed_k: expected a value > 0", "fit"),
    _config("layers-unknown-spec", "layers-unknown-spec.yaml", "collect.layers: expected 'all'"),
    _config("layers-negative", "layers-negative.yaml", "layer indices >= 0", "run"),
    _config("layers-duplicate", "layers-duplicate.yaml", "distinct layer indices"),
    _config("layers-empty", "layers-empty.yaml", "non-empty list of layer indices"),
    _config("site-unknown", "site-unknown.yaml", "collect.site: expected one of", "run"),
    _config("site-template-no-layer", "site-template-no-layer.yaml", "'{layer}'"),
    _config("config-is-a-list", "a-list.yaml", "config: expected a mapping"),
    _config("config-bad-syntax", "bad-syntax.yaml", "expected valid YAML", "run"),
    _config("config-non-utf8", "non-utf8.yaml", "expected valid YAML"),
    _config("config-missing", "absent.yaml", "found no file", "fit"),
    CliCase("config-is-a-folder", "config", ("validate-config", _C), "found no file"),
    _config("publish-bad-name", "publish-bad-name.yaml", "publish.name", "publish"),
    _config("publish-alias-latest", "publish-alias-latest.yaml", "publish.aliases", "publish"),
    _config("cron-bad", "cron-bad.yaml", "cron: expected 5 fields", "schedule"),
    _config("no-schedules", "no-schedules.yaml", "at least one schedule", "schedule"),
    _config("scheduler-unknown", "scheduler-unknown.yaml", "fit.scheduler", "fit"),
    _config("device-unknown", "device-unknown.yaml", "model.device", "run"),
    _config("source-unknown", "source-unknown.yaml", "data.source: expected"),
    _config("columns-unknown", "columns-unknown.yaml", "data.columns"),
    _config("jsonl-without-path", "jsonl-without-path.yaml", "data.path: expected a file path"),
    _config("task-unknown", "task-unknown.yaml", "evaluate.tasks[0]"),
    # command-line arguments
    CliCase("unknown-command", "cli", ("frobnicate",), "invalid choice"),
    CliCase("unknown-registry-action", "cli", ("registry", "frob"), "invalid choice"),
    CliCase("missing-positional", "cli", ("validate-config",), "required"),
    CliCase("keep-not-int", "cli", ("registry", "gc", "--keep", "abc", _REG), "invalid int"),
    CliCase("keep-zero", "cli", ("registry", "gc", "--keep", "0", _REG), "--keep"),
    CliCase(
        "positive-energy-not-float",
        "cli",
        ("fit", _STORE, "--positive-energy", "abc"),
        "invalid float",
    ),
    CliCase(
        "positive-energy-above-one",
        "cli",
        ("fit", _STORE, "--positive-energy", "1.01", _OUT),
        "positive_energy",
    ),
    CliCase(
        "negative-energy-negative",
        "cli",
        ("fit", _STORE, "--negative-energy=-0.5", _OUT),
        "negative_energy",
    ),
    CliCase("svd-unknown", "cli", ("fit", _STORE, "--svd", "magic"), "invalid choice"),
    CliCase("chunk-rows-zero", "cli", ("fit", _STORE, "--chunk-rows", "0", _OUT), "chunk_rows"),
    CliCase("oversample-negative", "cli", ("fit", _STORE, "--oversample=-1", _OUT), "oversample"),
    CliCase(
        "feature-map-scale-zero",
        "cli",
        ("fit", _STORE, "--feature-map-scale", "0", _OUT),
        "feature_map_scale",
    ),
    CliCase(
        "fixed-k-above-d",
        "cli",
        ("fit", _STORE, "--fixed-k", "99", "--svd", "exact", _OUT),
        "fixed_k",
    ),
    CliCase("svd-qr-with-n-ge-d", "cli", ("fit", _STORE, "--svd", "qr", _OUT), "svd 'qr'"),
    CliCase("store-missing", "cli", ("fit", "{ws}/stores/absent.zarr", _OUT), "found nothing"),
    CliCase("store-not-a-store", "cli", ("fit", "{ws}/registry", _OUT), "activation store"),
    CliCase("store-incomplete", "cli", ("fit", "{ws}/stores/partial.zarr", _OUT), "1 pending"),
    CliCase("fit-out-not-empty", "cli", ("fit", _STORE, "--out={ws}/fits/good"), "--overwrite"),
    CliCase(
        "fit-dir-missing", "cli", ("publish", "{ws}/fits/absent", "--name=x", _REG), "fit.json"
    ),
    CliCase(
        "fit-dir-is-a-file",
        "cli",
        ("publish", "{ws}/fits/good/fit.json", "--name=x", _REG),
        "a folder",
    ),
    CliCase("fit-json-invalid", "cli", ("publish", "{ws}/fits/bad-json", "--name=x", _REG), "JSON"),
    CliCase(
        "fit-projections-pickle",
        "cli",
        ("publish", "{ws}/fits/pickle", "--name=x", _REG),
        "pickle",
    ),
    CliCase(
        "publish-to-http",
        "cli",
        ("publish", "{ws}/fits/good", "--name=x", "--registry=http://127.0.0.1:9"),
        "read-only",
    ),
    CliCase("serve-remote-host", "cli", ("registry", "serve", "--host=0.0.0.0", _REG), "loopback"),
    CliCase(
        "serve-http-registry",
        "cli",
        ("registry", "serve", "--registry=http://127.0.0.1:9"),
        "read-only",
    ),
    CliCase(
        "serve-port-out-of-range",
        "cli",
        ("registry", "serve", "--port=70000", _REG),
        "port",
    ),
    CliCase(
        "registry-unknown-protocol", "cli", ("registry", "list", "--registry=nosuch://x"), "fsspec"
    ),
    CliCase(
        "registry-unreachable-http",
        "cli",
        ("registry", "list", "--registry=http://127.0.0.1:9"),
        "reachable",
    ),
    CliCase(
        "download-dest-is-a-file",
        "cli",
        ("registry", "download", "demo@1", "{ws}/fits/good/fit.json", _REG),
        "File exists",
    ),
    # registry references
    CliCase("ref-unknown-name", "registry", ("registry", "resolve", "ghost", _REG), "ghost"),
    CliCase("ref-unknown-version", "registry", ("registry", "resolve", "demo@99", _REG), "@99"),
    CliCase("ref-unknown-alias", "registry", ("registry", "show", "demo@nope", _REG), "alias"),
    CliCase("ref-uppercase", "registry", ("registry", "resolve", "Demo", _REG), "reference"),
    CliCase("ref-empty-selector", "registry", ("registry", "resolve", "demo@", _REG), "reference"),
    CliCase("ref-double-at", "registry", ("registry", "show", "demo@1@2", _REG), "reference"),
    CliCase("ref-version-zero", "registry", ("registry", "resolve", "demo@0", _REG), "reference"),
    CliCase("ref-version-negative", "registry", ("registry", "resolve", "demo@-1", _REG), "ref"),
    CliCase("ref-too-long", "registry", ("registry", "resolve", "a" * 301, _REG), "reference"),
    CliCase(
        "ref-traversal", "registry", ("registry", "resolve", "../../etc/passwd", _REG), "reference"
    ),
    CliCase(
        "ref-traversal-selector",
        "registry",
        ("registry", "show", "demo@../../x", _REG),
        "reference",
    ),
    CliCase(
        "ref-traversal-slash", "registry", ("registry", "resolve", "demo/../other", _REG), "ref"
    ),
    CliCase("ref-absolute-path", "registry", ("registry", "show", "/etc/passwd", _REG), "ref"),
    CliCase("ref-sha-not-hex", "registry", ("registry", "resolve", "sha256:zz", _REG), "hex"),
    CliCase(
        "ref-sha-unknown",
        "registry",
        ("registry", "resolve", "sha256:0000000000000000", _REG),
        "published content sha256",
    ),
    CliCase(
        "ref-sha-too-long", "registry", ("registry", "resolve", "sha256:" + "a" * 65, _REG), "hex"
    ),
    CliCase(
        "versions-traversal", "registry", ("registry", "versions", "../../x", _REG), "artifact name"
    ),
    CliCase(
        "versions-bad-time",
        "registry",
        ("registry", "versions", "demo", "--after=tomorrow", _REG),
        "ISO-8601",
    ),
    CliCase(
        "download-unknown-version",
        "registry",
        ("registry", "download", "demo@99", "{ws}/out/dl", _REG),
        "@99",
    ),
    CliCase("alias-latest", "registry", ("registry", "alias", "demo@1", "latest", _REG), "alias"),
    CliCase("alias-numeric", "registry", ("registry", "alias", "demo@1", "7", _REG), "alias"),
    CliCase("alias-traversal", "registry", ("registry", "alias", "demo@1", "../x", _REG), "alias"),
    CliCase("alias-unknown-version", "registry", ("registry", "alias", "demo@9", "x", _REG), "@9"),
    CliCase(
        "alias-history-traversal",
        "registry",
        ("registry", "aliases", "demo", "--history=../x", _REG),
        "alias",
    ),
    CliCase(
        "aliases-unknown-name",
        "registry",
        ("registry", "aliases", "ghost", _REG),
        "ghost",
    ),
    CliCase("diff-unknown", "registry", ("registry", "diff", "demo@1", "ghost@1", _REG), "ghost"),
    CliCase("reindex-bad-name", "registry", ("registry", "reindex", "Bad", _REG), "artifact name"),
    CliCase("gc-bad-name", "registry", ("registry", "gc", "--keep=1", "--name=../x", _REG), "name"),
    CliCase(
        "publish-name-traversal",
        "registry",
        ("publish", "{ws}/fits/good", "--name=../escape", _REG),
        "name",
    ),
    CliCase(
        "publish-name-uppercase",
        "registry",
        ("publish", "{ws}/fits/good", "--name=Bad Name", _REG),
        "name",
    ),
    CliCase(
        "publish-alias-latest",
        "registry",
        ("publish", "{ws}/fits/good", "--name=x", "--alias=latest", _REG),
        "aliases",
    ),
)

# -- HTTP requests ---------------------------------------------------------------------------------


def _case(
    case_id: str, path: str, status: int, *headers: str, method: str = "GET", bug: str = ""
) -> HttpCase:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return HttpCase(case_id, "\r\n".join(lines).encode("latin-1"), status, bug=bug)


HTTP_CASES: tuple[HttpCase, ...] = (
    _case("unknown-name", "/v1/names/ghost/versions", 404),
    _case("unknown-version", "/v1/resolve/demo@99", 404),
    _case("unknown-alias", "/v1/resolve/demo@nope", 404),
    _case("unknown-version-manifest", "/v1/artifacts/demo/42/manifest", 404),
    _case("unknown-file", "/v1/artifacts/demo/1/files/fit.json", 404),
    _case("index-file", "/v1/artifacts/demo/1/files/index.parquet", 404),
    _case("traversal-dots", "/v1/artifacts/../../etc/passwd/manifest", 400),
    _case("traversal-encoded-slash", "/v1/artifacts/demo/..%2F..%2Fetc/manifest", 400),
    _case("traversal-encoded-dots", "/v1/artifacts/%2e%2e/1/manifest", 400),
    _case("traversal-file", "/v1/artifacts/demo/1/files/..%2Fmanifest.json", 400),
    _case("traversal-backslash", "/v1/resolve/..%5c..%5cetc", 400),
    _case("traversal-resolve", "/v1/resolve/..%2F..%2Fetc", 400),
    _case("nul-byte", "/v1/resolve/demo%00", 400),
    _case("non-ascii-name", "/v1/resolve/d%C3%A9mo", 400),
    _case("invalid-utf8", "/v1/resolve/%ff%fe", 400),
    _case("ref-uppercase", "/v1/resolve/DEMO", 400),
    _case("ref-empty-selector", "/v1/resolve/demo@", 400),
    _case("ref-sha-not-hex", "/v1/resolve/sha256:zz", 400),
    _case("ref-sha-too-long", "/v1/resolve/sha256:" + "a" * 65, 400),
    _case("ref-version-zero", "/v1/artifacts/demo/0/manifest", 400),
    _case("bad-name", "/v1/names/Bad/versions", 400),
    _case("bad-time-filter", "/v1/names/demo/versions?after=tomorrow", 400),
    _case("diff-missing-b", "/v1/diff?a=demo@1", 400),
    _case("diff-traversal", "/v1/diff?a=demo@1&b=..%2Fx", 400),
    _case("alias-history-latest", "/v1/names/demo/aliases/latest/history", 400),
    _case("unknown-endpoint", "/v1/nothing", 404),
    _case("outside-api", "/etc/passwd", 404),
    _case("empty-segment", "/v1//names", 404),
    _case(
        "too-many-query-fields",
        "/v1/names/demo/versions?" + "&".join(f"q{i}=1" for i in range(30)),
        400,
    ),
    _case("url-over-limit", "/v1/" + "a" * 3000, 414),
    _case("body-on-get", "/v1/names", 413, "Content-Length: 10"),
    _case("chunked-body", "/v1/names", 413, "Transfer-Encoding: chunked"),
    _case("content-length-not-a-number", "/v1/names", 400, "Content-Length: abc"),
    _case("post", "/v1/names", 405, "Content-Length: 0", method="POST"),
    _case("put", "/v1/artifacts/demo/1/files/manifest.json", 405, method="PUT"),
    _case("delete", "/v1/artifacts/demo/1/manifest", 405, method="DELETE"),
    _case("patch", "/v1/names/demo/aliases", 405, method="PATCH"),
    _case("options", "/v1/names", 405, method="OPTIONS"),
    _case("request-line-over-64k", "/v1/" + "a" * 70_000, 414),
    _case("too-many-headers", "/v1/names", 431, *(f"X-{i}: y" for i in range(120))),
    _case("header-over-64k", "/v1/names", 431, "X-Big: " + "a" * 70_000),
    _case("unknown-method", "/v1/names", 405, method="BREW"),
    _case("aliases-unknown-name", "/v1/names/ghost/aliases", 404),
)
