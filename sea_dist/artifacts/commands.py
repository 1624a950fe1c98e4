"""CLI: ``sea-dist publish`` and ``sea-dist registry list|versions|show|resolve|diff|download|alias|
aliases|serve|gc|reindex``.

``--registry`` defaults to ``$SEA_DIST_REGISTRY`` or ``sea-runs/registry``; it may be a folder, an
fsspec URL (``s3://bucket/prefix``; endpoint and credentials from the usual AWS environment
variables) or, for the read-only queries, the ``http://`` address of ``sea-dist registry serve``.
``--json`` prints the same JSON documents the HTTP API returns.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def _default_registry() -> str:
    from sea_dist.config import PublishConfig

    return os.environ.get("SEA_DIST_REGISTRY") or PublishConfig().registry


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
        "N+1 of NAME, then move the given aliases to it.",
    )
    p.add_argument("fit_dir", metavar="FIT_DIR", help="fit output folder or fsspec URL")
    p.add_argument("--name", default=None, help="artifact name (default: config publish.name)")
    _add_registry(p)
    p.add_argument("--alias", action="append", default=[], help="alias to move (repeatable)")
    p.add_argument("--config", default=None, help="YAML config recorded in the manifest")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_storage_errors(_publish))

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

    add("list", "list artifact names", _list)
    p = add("versions", "list the versions of a name (filterable)", _versions)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--model-id", default=None, help="only versions fitted on this model id")
    p.add_argument("--dataset", default=None, help="demonstrations fingerprint (prefix)")
    p.add_argument("--after", default=None, help="created at or after (ISO-8601)")
    p.add_argument("--before", default=None, help="created before (ISO-8601)")
    p = add("show", "print the manifest of a reference", _show)
    p.add_argument("ref", metavar="REF", help="name[@latest|@alias|@N] or sha256:PREFIX")
    p = add("resolve", "resolve a reference to name@version and sha256", _resolve)
    p.add_argument("ref", metavar="REF")
    p = add("diff", "compare two versions (k, energy, subspace similarity)", _diff)
    p.add_argument("a", metavar="REF_A")
    p.add_argument("b", metavar="REF_B")
    p = add("download", "download a version to a folder, verifying its checksum", _download)
    p.add_argument("ref", metavar="REF")
    p.add_argument("dest", metavar="DEST", help="local folder")
    p = add("alias", "point ALIAS at the version REF resolves to (history is kept)", _alias)
    p.add_argument("ref", metavar="REF", help="e.g. sea-demo@7 or sea-demo@latest")
    p.add_argument("alias", metavar="ALIAS")
    p = add("aliases", "list the aliases of a name, or the history of one", _aliases)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--history", metavar="ALIAS", default=None, help="print this alias's moves")
    p = add("serve", "serve the read-only HTTP API", _serve)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8765, help="port 0..65535 (default 8765, 0 = any)")
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (the API has no authentication)",
    )
    p = add("gc", "remove old versions, keeping N newest and every aliased one", _gc)
    p.add_argument("--keep", type=int, required=True, metavar="N")
    p.add_argument("--name", default=None, help="only this name")
    p.add_argument("--dry-run", action="store_true", help="list what would be removed")
    p = add("reindex", "rebuild the listing index from the manifests", _reindex)
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
        import logging

        from sea_dist.errors import RegistryError

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


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def _reader(args: argparse.Namespace) -> Any:
    from sea_dist.artifacts.registry import open_registry

    return open_registry(args.registry or _default_registry())


def _writer(args: argparse.Namespace) -> Any:
    from sea_dist.artifacts.registry import Registry
    from sea_dist.errors import RegistryError

    url = args.registry or _default_registry()
    if url.startswith(("http://", "https://")):
        raise RegistryError(
            f"registry: expected a folder or fsspec URL for a write, found {url!r}"
            "; the HTTP API is read-only, use the storage URL"
        )
    return Registry(url)


def _publish(args: argparse.Namespace) -> int:
    from sea_dist.artifacts.publish import publish_run

    if args.registry and args.registry.startswith(("http://", "https://")):
        _writer(args)  # raises the read-only error
    # Precedence: --registry, $SEA_DIST_REGISTRY, the config's publish.registry, the default.
    registry = args.registry or os.environ.get("SEA_DIST_REGISTRY") or None
    resolved = publish_run(
        args.fit_dir,
        name=args.name,
        registry=registry,
        aliases=tuple(args.alias),
        config_path=args.config,
    )
    if args.json:
        _print_json(resolved.to_dict())
    else:
        print(f"{resolved.ref} sha256:{resolved.sha256}")
    return 0


def _list(args: argparse.Namespace) -> int:
    names = _reader(args).names()
    if args.json:
        _print_json({"names": names})
    else:
        print("\n".join(names) if names else "(no artifacts)")
    return 0


def _versions(args: argparse.Namespace) -> int:
    rows = _reader(args).versions(
        args.name,
        model_id=args.model_id,
        dataset=args.dataset,
        after=args.after,
        before=args.before,
    )
    if args.json:
        _print_json({"name": args.name, "versions": rows})
        return 0
    header = ("VERSION", "CREATED", "MODEL", "SITE", "LAYERS", "K+", "K-", "SHA256", "ALIASES")
    table = [header] + [
        (
            str(r["version"]),
            r["created_at"][:19],
            r["model_id"],
            r["site"],
            ",".join(map(str, r["layers"])),
            ",".join(map(str, r["k_pos"])),
            ",".join(map(str, r["k_neg"])),
            r["sha256"][:12],
            ",".join(r["aliases"]),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def _show(args: argparse.Namespace) -> int:
    _print_json(_reader(args).manifest(args.ref).to_dict())
    return 0


def _resolve(args: argparse.Namespace) -> int:
    resolved = _reader(args).resolve(args.ref)
    if args.json:
        _print_json(resolved.to_dict())
    else:
        print(f"{resolved.ref} sha256:{resolved.sha256}")
    return 0


def _diff(args: argparse.Namespace) -> int:
    result = _reader(args).diff(args.a, args.b)
    if args.json:
        _print_json(result)
        return 0
    print(
        f"{result['a']} vs {result['b']}: "
        f"{'identical content' if result['identical'] else 'different content'}"
    )
    for key, pair in result["fields"].items():
        print(f"  {key}: {pair['a']!r} -> {pair['b']!r}")

    def fmt(value: Any, digits: int = 3) -> str:
        return (
            "-"
            if value is None
            else f"{value:.{digits}f}"
            if isinstance(value, float)
            else str(value)
        )

    print("  LAYER  K+ (a->b)  K- (a->b)  ENERGY+ (a->b)   ENERGY- (a->b)   SIM+   SIM-")
    for e in result["layers"]:
        print(
            f"  {e['layer']:<5}  {fmt(e['k_pos']['a'])}->{fmt(e['k_pos']['b']):<6} "
            f"{fmt(e['k_neg']['a'])}->{fmt(e['k_neg']['b']):<6} "
            f"{fmt(e['energy_pos']['a'])}->{fmt(e['energy_pos']['b']):<8} "
            f"{fmt(e['energy_neg']['a'])}->{fmt(e['energy_neg']['b']):<8} "
            f"{fmt(e['similarity_pos']):<6} {fmt(e['similarity_neg'])}"
        )
    return 0


def _download(args: argparse.Namespace) -> int:
    reader = _reader(args)
    resolved = reader.resolve(args.ref)
    folder = reader.download(resolved.ref, args.dest)
    if args.json:
        _print_json({**resolved.to_dict(), "path": str(folder)})
    else:
        print(f"{resolved.ref} sha256:{resolved.sha256} verified -> {folder}")
    return 0


def _alias(args: argparse.Namespace) -> int:
    registry = _writer(args)
    resolved = registry.resolve(args.ref)
    record = registry.set_alias(resolved.name, args.alias, resolved.version)
    if args.json:
        _print_json(record)
    else:
        previous = record["previous"]
        moved = f" (was {resolved.name}@{previous})" if previous is not None else ""
        print(f"{resolved.name}@{args.alias} -> {resolved.ref}{moved}")
    return 0


def _aliases(args: argparse.Namespace) -> int:
    reader = _reader(args)
    if args.history:
        history = reader.alias_history(args.name, args.history)
        if args.json:
            _print_json({"name": args.name, "alias": args.history, "history": history})
        for move in [] if args.json else history:
            print(
                f"{move['moved_at']}  {args.name}@{args.history} -> {move['version']}"
                f"  (was {move['previous']})"
            )
        return 0
    aliases = reader.aliases(args.name)
    if args.json:
        _print_json({"name": args.name, "aliases": aliases})
    else:
        for alias, version in aliases.items():
            print(f"{alias} -> {args.name}@{version}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from sea_dist.artifacts.http import check_bind_host, make_server

    host = check_bind_host(args.host, args.allow_remote)
    server = make_server(_writer(args), host, args.port)
    bound_host, port = server.server_address[:2]
    print(
        f"serving {args.registry or _default_registry()} read-only at "
        f"http://{bound_host!s}:{port} (Ctrl-C stops)",
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def _gc(args: argparse.Namespace) -> int:
    entries = _writer(args).gc(args.keep, name=args.name, dry_run=args.dry_run)
    if args.json:
        _print_json({"dry_run": args.dry_run, "removed": [e.to_dict() for e in entries]})
        return 0
    verb = "would remove" if args.dry_run else "removed"
    for entry in entries:
        print(f"{verb} {entry.kind} {entry.target}")
    print(f"{verb} {len(entries)} item(s)")
    return 0


def _reindex(args: argparse.Namespace) -> int:
    counts = _writer(args).reindex(args.name)
    if args.json:
        _print_json(counts)
    else:
        for name, count in counts.items():
            print(f"{name}: {count} version(s) indexed")
    return 0
