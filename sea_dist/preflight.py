"""Preflight: refuse, before any work starts, a run whose later stages are sure to fail.

Above config and store in the layering: it checks a validated config against the places the run
will write (publish registry kind, fsspec protocols, local folders, the store URL), which the
config package itself must not reach into.
"""

from __future__ import annotations

from pathlib import Path

from sea_dist.config import SeaConfig
from sea_dist.errors import ConfigError, excerpt
from sea_dist.store.target import check_store_target


def check_run_preconditions(
    config: SeaConfig, evaluate: bool = True, overwrite_store: bool = False
) -> None:
    """Refuse, before any work starts, a run whose later stages are sure to fail.

    ``sea-dist run`` (and ``run_pipeline``) call this first: collection and fitting take minutes
    to hours, and a publish target that cannot be written must not be found out after them.
    Checks that the publish registry is a writable kind of location (a folder or an fsspec URL,
    not the read-only ``http://`` API), that every fsspec protocol is known, that no local
    output location is a file or lies below one, and that the store URL holds a store or
    nothing (:func:`~sea_dist.store.target.check_store_target`).

    Args:
        config: the run's validated config.
        evaluate: the run will evaluate (``evaluate.out`` is written).
        overwrite_store: the run may replace an existing store (``--overwrite-store``).

    Raises:
        ConfigError: one line per problem, naming the field and the fix.
        StoreError: the store URL holds something that is not a store.
    """
    problems = []
    registry = config.publish.registry
    if registry.startswith(("http://", "https://")):
        problems.append(
            f"publish.registry: expected a folder or fsspec URL to publish into, found "
            f"{excerpt(registry)}; the HTTP API of 'sea-dist registry serve' is read-only, "
            "give the registry's storage folder or URL (e.g. s3://bucket/registry)"
        )
    outputs = [
        ("store.url", config.store.url),
        ("fit.out", config.fit.out),
        ("publish.registry", registry),
    ]
    if evaluate:
        outputs.append(("evaluate.out", config.evaluate.out))
    for label, url in outputs:
        problems += _location_problems(label, url)
    # Written as local folders (atomically, by rename): a URL would become a local "s3:/..."
    for label, url in (("fit.out", config.fit.out), ("evaluate.out", config.evaluate.out)):
        if "://" in url and (label == "fit.out" or evaluate):
            problems.append(
                f"{label}: expected a local folder, found the URL {excerpt(url)}; the fit and "
                "the report are written locally: publish to a registry on object storage"
            )
    if problems:
        raise ConfigError(problems)
    check_store_target(config.store.url, overwrite_store or config.store.overwrite)


def _location_problems(label: str, url: str) -> list[str]:
    """Why ``url`` cannot become a folder that a run writes (empty list when it can)."""
    if url.startswith(("http://", "https://")):
        return []  # reported above for the registry; other http outputs fail in fsspec
    if "://" in url:
        import fsspec  # here: the edit module imports config without fsspec

        protocol = url.split("://", 1)[0]
        try:
            fsspec.get_filesystem_class(protocol)
        except (ValueError, ImportError) as error:
            return [
                f"{label}: expected a folder or a known fsspec URL, found {excerpt(url)} "
                f"({' '.join(str(error).split())[:120]}); fix the URL or install its package"
            ]
        return []
    path = Path(url).expanduser()
    if path.exists() and not path.is_dir():
        return [
            f"{label}: expected a folder, found the file {excerpt(str(path))}; "
            "choose another location"
        ]
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                return [
                    f"{label}: expected a location that can become a folder, found "
                    f"{excerpt(str(path))} below the file {excerpt(str(parent))}; "
                    "choose another location"
                ]
            break
    return []
