"""CLI: ``sea-dist publish`` and ``sea-dist registry list|versions|show|resolve|diff|download|alias|
aliases|serve|gc|reindex``.

``--registry`` defaults to ``$SEA_DIST_REGISTRY`` or ``sea-runs/registry``; it may be a folder, an
fsspec URL (``s3://bucket/prefix``; endpoint and credentials from the usual AWS environment
variables) or, for the read-only queries, the ``http://`` address of ``sea-dist registry serve``.
``--json`` prints the same JSON documents the HTTP API returns.

``registry alias`` moves gated aliases (``production``, ``prod``, the config's
``publish.gated_aliases``, ``--gated``) only through the promotion gate
(:mod:`sea_dist.registry.gate`): a refusal is one line and exit 2 unless ``--force --reason``.
``publish --alias`` publishes the version in any case and reports a refused gated alias as one
``gate: ...`` line (exit 0), as ``sea-dist run`` does.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from sea_dist.cli.registry_handlers import (
    run_alias,
    run_aliases,
    run_diff,
    run_download,
    run_gc,
    run_list,
    run_publish,
    run_reindex,
    run_resolve,
    run_serve,
    run_show,
    run_versions,
)
from sea_dist.errors import RegistryError


def _add_registry(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry",
        default=None,
        help="registry folder, fsspec URL or http:// server "
        "(default $SEA_DIST_REGISTRY or sea-runs/registry)",
    )


def register(subparsers: Any) -> None:
    """Add ``publish`` and ``registry`` to the ``sea-dist`` parser."""
    p = subparsers.add_parser(
        "publish",
        help="publish a fit output as the next immutable version of a name",
        description="Verify a fit-output folder, hash it and publish it atomically as version "
        "N+1 of NAME (with the folder's recipe.json and evaluation.json, if any), then move the "
        "given aliases to it; gated aliases move only when the evaluation passes the gate.",
    )
    p.add_argument("fit_dir", metavar="FIT_DIR", help="fit output folder or fsspec URL")
    p.add_argument("--name", default=None, help="artifact name (default: config publish.name)")
    _add_registry(p)
    p.add_argument("--alias", action="append", default=[], help="alias to move (repeatable)")
    p.add_argument("--config", default=None, help="YAML config recorded in the manifest")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_storage_errors(run_publish))

    reg = subparsers.add_parser(
        "registry",
        help="query, serve and clean an artifact registry",
        description="Query, serve and clean an artifact registry.",
    )
    sub = reg.add_subparsers(dest="registry_command", metavar="ACTION", parser_class=type(reg))
    reg.set_defaults(handler=lambda args: _usage(reg))

    def add(name: str, help_text: str, handler: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            name, help=help_text, description=help_text
        )
        _add_registry(parser)
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(handler=_storage_errors(handler))
        return parser

    add("list", "list artifact names", run_list)
    p = add("versions", "list the versions of a name (filterable)", run_versions)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--model-id", default=None, help="only versions fitted on this model id")
    p.add_argument("--dataset", default=None, help="demonstrations fingerprint (prefix)")
    p.add_argument("--after", default=None, help="created at or after (ISO-8601)")
    p.add_argument("--before", default=None, help="created before (ISO-8601)")
    p = add("show", "summarise a version: model, recipe, gate verdict (--json: manifest)", run_show)
    p.add_argument("ref", metavar="REF", help="name[@latest|@alias|@N] or sha256:PREFIX")
    p = add("resolve", "resolve a reference to name@version and sha256", run_resolve)
    p.add_argument("ref", metavar="REF")
    p = add("diff", "compare two versions (k, energy, subspace similarity)", run_diff)
    p.add_argument("a", metavar="REF_A")
    p.add_argument("b", metavar="REF_B")
    p = add("download", "download a version to a folder, verifying its checksum", run_download)
    p.add_argument("ref", metavar="REF")
    p.add_argument("dest", metavar="DEST", help="local folder (new or empty)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier download in DEST (a folder holding other files is refused)",
    )
    p = add(
        "alias",
        "point ALIAS at the version REF resolves to (history is kept; gated aliases such as "
        "production move only when the version's evaluation passes the gate)",
        run_alias,
    )
    p.add_argument("ref", metavar="REF", help="e.g. sea-demo@7 or sea-demo@latest")
    p.add_argument("alias", metavar="ALIAS")
    p.add_argument(
        "--gated", action="store_true", help="gate this alias (it stays gated from now on)"
    )
    p.add_argument(
        "--force", action="store_true", help="move even if the gate refuses (needs --reason)"
    )
    p.add_argument("--reason", default=None, metavar="TEXT", help="why; kept in the history")
    p.add_argument("--config", default=None, help="YAML config whose publish.gated_aliases to use")
    p = add("aliases", "list the aliases of a name, or the history of one", run_aliases)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--history", metavar="ALIAS", default=None, help="print this alias's moves")
    p = add("serve", "serve the read-only HTTP API", run_serve)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8765, help="port 0..65535 (default 8765, 0 = any)")
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (the API has no authentication)",
    )
    p = add(
        "gc",
        "remove old versions, keeping N newest and every aliased one; --damaged also retires "
        "versions whose files are gone",
        run_gc,
    )
    p.add_argument("--keep", type=int, default=None, metavar="N", help="versions to keep per name")
    p.add_argument(
        "--damaged",
        action="store_true",
        help="retire versions whose manifest.json or projections.safetensors is gone "
        "(never one an alias points to)",
    )
    p.add_argument("--name", default=None, help="only this name")
    p.add_argument("--dry-run", action="store_true", help="list what would be removed")
    p = add("reindex", "rebuild the listing index from the manifests", run_reindex)
    p.add_argument("name", metavar="NAME", nargs="?", default=None)


def _port(text: str) -> int:
    """An argparse type: a TCP port number 0..65535 (a bad one is a one-line usage error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a port number 0..65535, found {text!r}"
        ) from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535, found {value}")
    return value


def _storage_errors(handler: Any) -> Any:
    """Report storage failures (missing bucket, permissions, network) as one line, exit 2."""

    def wrapped(args: argparse.Namespace) -> int:
        if not getattr(args, "verbose", False):  # credential/endpoint chatter only with -v
            for noisy in ("botocore", "aiobotocore", "s3fs", "fsspec"):
                logging.getLogger(noisy).setLevel(logging.WARNING)

        try:
            return int(handler(args))
        except OSError as error:
            detail = " ".join(str(error).split()) or type(error).__name__
            raise RegistryError(
                f"registry storage: expected a reachable, writable location, found "
                f"{type(error).__name__}: {detail}; check the URL, bucket and credentials"
            ) from None

    return wrapped


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2
