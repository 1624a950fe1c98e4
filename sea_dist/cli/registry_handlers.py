"""The handlers of ``sea-dist publish`` and ``sea-dist registry ...`` (the parser is
:mod:`sea_dist.cli.registry`).

Each ``run_*`` takes the parsed arguments and returns the exit status. Imports are deferred to
the handler that needs them, so building the ``sea-dist`` parser loads none of the registry
(nor fsspec, pyarrow, httpx, fastapi or uvicorn).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import socket
from typing import Any

from sea_dist.cli.environment import (
    anchored_from_environment,
    output_base_from_environment,
    registry_from_environment,
)
from sea_dist.config import PublishConfig, load_config
from sea_dist.errors import RegistryError


def _default_registry() -> str:
    return registry_from_environment() or PublishConfig().registry


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def _reader(args: argparse.Namespace) -> Any:
    from sea_dist.registry.access import open_registry

    return open_registry(
        anchored_from_environment(args.registry or _default_registry(), "--registry")
    )


def _writer(args: argparse.Namespace) -> Any:
    from sea_dist.registry.filesystem import Registry  # refuses the read-only http:// API

    return Registry(anchored_from_environment(args.registry or _default_registry(), "--registry"))


def run_publish(args: argparse.Namespace) -> int:
    from sea_dist.registry.publish_run import publish_run

    # Precedence: --registry, $SEA_DIST_REGISTRY, the config's publish.registry, the default.
    registry = args.registry or registry_from_environment() or None
    outcome = publish_run(
        args.fit_dir,
        name=args.name,
        registry=registry,
        aliases=tuple(args.alias),
        config_path=args.config,
        output_base=output_base_from_environment(),
    )
    if args.json:
        _print_json(outcome.to_dict())
    else:
        print(f"{outcome.ref} sha256:{outcome.sha256} (registry {outcome.registry})")
        for promotion in outcome.promotions:
            print(promotion.line())
    return 0


def run_list(args: argparse.Namespace) -> int:
    names = _reader(args).names()
    if args.json:
        _print_json({"names": names})
    else:
        print("\n".join(names) if names else "(no artifacts)")
    return 0


def run_versions(args: argparse.Namespace) -> int:
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
    header = "VERSION CREATED MODEL SITE LAYERS K+ K- SHA256 GATE ALIASES".split()
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
            r.get("gate") or "unevaluated",
            ",".join(r["aliases"]),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def run_show(args: argparse.Namespace) -> int:
    from sea_dist.registry.show import describe

    reader = _reader(args)
    manifest = reader.manifest(args.ref)
    if args.json:
        _print_json(manifest.to_dict())
        return 0
    aliases = [a for a, v in reader.aliases(manifest.name).items() if v == manifest.version]
    print(describe(manifest, aliases))
    return 0


def run_resolve(args: argparse.Namespace) -> int:
    resolved = _reader(args).resolve(args.ref)
    if args.json:
        _print_json(resolved.to_dict())
    else:
        print(f"{resolved.ref} sha256:{resolved.sha256}")
    return 0


def run_diff(args: argparse.Namespace) -> int:
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


def run_download(args: argparse.Namespace) -> int:
    reader = _reader(args)
    resolved = reader.resolve(args.ref)
    try:
        folder = reader.download(resolved.ref, args.dest, overwrite=args.overwrite)
    except OSError as error:
        if not _about_destination(error, args.dest):
            raise  # a registry storage problem: reported as such by _storage_errors
        raise RegistryError(
            f"registry download DEST: expected a folder this user can write, found "
            f"{args.dest!r}: {error.strerror or type(error).__name__}"
            f"{f' ({error.filename})' if error.filename else ''}; choose another DEST "
            "or free space"
        ) from None
    if args.json:
        _print_json({**resolved.to_dict(), "path": str(folder)})
    else:
        print(f"{resolved.ref} sha256:{resolved.sha256} verified -> {folder}")
    return 0


def _about_destination(error: OSError, dest: str) -> bool:
    """Whether a download's OSError is about the local destination, not the registry."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return True  # reading a registry never fills or needs a writable disk
    if not error.filename:
        return False
    target = os.path.abspath(dest)
    named = os.path.abspath(str(error.filename))
    # The destination, a file inside it, or a parent that mkdir tried to create.
    inside = named.startswith(target + os.sep) or target.startswith(named + os.sep)
    return named == target or inside


def run_alias(args: argparse.Namespace) -> int:
    from sea_dist.registry.gate import promote, require_moved
    from sea_dist.registry.refs import check_alias

    registry = _writer(args)
    check_alias(args.alias)
    gated_aliases = None
    if args.config:
        gated_aliases = load_config(args.config).publish.gated_aliases
    resolved = registry.resolve(args.ref)
    result = require_moved(
        promote(
            registry,
            resolved.name,
            resolved.version,
            args.alias,
            force=args.force,
            reason=args.reason,
            gated=args.gated,
            gated_aliases=gated_aliases,
        )
    )
    if args.json:
        _print_json(result.history)
    else:
        print(result.line())
    return 0


def run_aliases(args: argparse.Namespace) -> int:
    from sea_dist.registry.show import history_note

    reader = _reader(args)
    if args.history:
        history = reader.alias_history(args.name, args.history)
        if args.json:
            _print_json({"name": args.name, "alias": args.history, "history": history})
        for move in [] if args.json else history:
            print(
                f"{move['moved_at']}  {args.name}@{args.history} -> {move['version']}"
                f"  (was {move['previous']}){history_note(move)}"
            )
        return 0
    aliases = reader.aliases(args.name)
    if args.json:
        _print_json({"name": args.name, "aliases": aliases})
    else:
        for alias, version in aliases.items():
            print(f"{alias} -> {args.name}@{version}")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from sea_dist.serve.server import check_bind_host, make_server

    host = check_bind_host(args.host, args.allow_remote)
    registry = _writer(args)
    try:
        server = make_server(registry, host, args.port)
    except OSError as error:  # not a storage problem: say what is wrong with host or port
        raise RegistryError(_bind_problem(host, args.port, error)) from None
    bound_host, port = server.server_address[:2]
    bound = bound_host.decode() if isinstance(bound_host, bytes) else str(bound_host)
    shown = f"[{bound}]" if ":" in bound else bound
    print(
        f"serving {args.registry or _default_registry()} read-only at "
        f"http://{shown}:{port} (Ctrl-C stops)",
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def _bind_problem(host: str, port: int, error: OSError) -> str:
    """One line naming why ``serve`` cannot listen on ``host:port``."""
    where = f"{host}:{port}"
    if isinstance(error, socket.gaierror):
        return (
            f"registry serve --host: expected an address or a name that resolves, found "
            f"{host!r} ({error.strerror or error}); use 127.0.0.1 or ::1"
        )
    if error.errno == errno.EADDRINUSE:
        return (
            f"registry serve --port: expected a free port, found {where} already in use by "
            "another process; stop it, or pass another --port (0 picks a free one)"
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return (
            f"registry serve --host: expected an address of this machine, found {host!r} "
            "(cannot assign it); use 127.0.0.1, ::1 or an address of a local interface"
        )
    if error.errno == errno.EACCES:
        return (
            f"registry serve --port: expected a port this user may bind, found {port} "
            "(permission denied; ports below 1024 need privileges); use e.g. --port 8765"
        )
    if error.errno == errno.EAFNOSUPPORT:
        return (
            f"registry serve --host: expected an address family this machine supports, found "
            f"{host!r} ({error.strerror}); use 127.0.0.1"
        )
    return (
        f"registry serve: expected to listen on {where}, found {type(error).__name__}: "
        f"{error.strerror or error}; check --host and --port"
    )


def run_gc(args: argparse.Namespace) -> int:
    from sea_dist.registry.retention import collect_garbage

    if args.keep is None and not args.damaged:
        raise RegistryError(
            "registry gc: expected --keep N (versions to keep per name) or --damaged, found "
            "neither; e.g. 'sea-dist registry gc --keep 5'"
        )
    entries = collect_garbage(
        _writer(args), args.keep, name=args.name, dry_run=args.dry_run, damaged=args.damaged
    )
    removed = [e for e in entries if e.kind != "kept"]
    if args.json:
        _print_json(
            {
                "dry_run": args.dry_run,
                "removed": [e.to_dict() for e in removed],
                "kept": [e.to_dict() for e in entries if e.kind == "kept"],
            }
        )
        return 0
    verb = "would remove" if args.dry_run else "removed"
    for entry in entries:
        if entry.kind == "kept":
            print(f"kept {entry.target}: {entry.note}")
        else:
            print(f"{verb} {entry.kind} {entry.target}")
    print(f"{verb} {len(removed)} item(s)")
    return 0


def run_reindex(args: argparse.Namespace) -> int:
    counts = _writer(args).reindex(args.name)
    if args.json:
        _print_json(counts)
    else:
        for name, count in counts.items():
            print(f"{name}: {count} version(s) indexed")
    return 0
