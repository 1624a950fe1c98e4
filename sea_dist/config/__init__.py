"""Frozen, typed configuration: YAML in, validated on construction, dumped back for provenance.

Every section is a frozen pydantic dataclass (:mod:`sea_dist.config.sections`,
:mod:`sea_dist.config.sea_config`). :func:`config_from_dict` converts plain data (from YAML)
into them, collecting *every* problem as ``field.path: expected ..., found ...`` before raising
one :class:`~sea_dist.errors.ConfigError`, so a user fixes a file in one round.

This module itself loads no third-party library: the section classes (and pydantic) load on
first use, so the base install (``sea_dist.edit``) imports :data:`LayerSpec` and the other
names of :mod:`sea_dist.config.spec` from here without pydantic, PyYAML or fsspec.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

from sea_dist.config.spec import (
    CRON_FIELD_RE,
    DEMO_MODEL_ID,
    FLOAT_LIMIT,
    INT_LIMIT,
    LAYER_SPEC_RE,
    MAX_BATCH,
    MAX_COUNT,
    MAX_NEW_TOKENS,
    MAX_ROWS_PER_SHARD,
    NAME_RE,
    SITES,
    LayerSpec,
)
from sea_dist.errors import ConfigError, excerpt

if TYPE_CHECKING:
    from sea_dist.config.sea_config import (
        EvaluateConfig,
        PublishConfig,
        ScheduleConfig,
        ScheduleEntry,
        SeaConfig,
    )
    from sea_dist.config.sections import (
        CollectConfig,
        DataConfig,
        FitConfig,
        ModelConfig,
        StoreConfig,
    )

__all__ = [
    "CRON_FIELD_RE",
    "DEMO_MODEL_ID",
    "FLOAT_LIMIT",
    "INT_LIMIT",
    "LAYER_SPEC_RE",
    "MAX_BATCH",
    "MAX_COUNT",
    "MAX_NEW_TOKENS",
    "MAX_ROWS_PER_SHARD",
    "NAME_RE",
    "SITES",
    "CollectConfig",
    "DataConfig",
    "EvaluateConfig",
    "FitConfig",
    "LayerSpec",
    "ModelConfig",
    "PublishConfig",
    "ScheduleConfig",
    "ScheduleEntry",
    "SeaConfig",
    "StoreConfig",
    "check_run_preconditions",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "read_config_document",
    "with_overrides",
]

# The section classes, loaded (with pydantic) when first named: `from sea_dist.config import X`.
_SECTIONS = {
    "ModelConfig": "sea_dist.config.sections",
    "DataConfig": "sea_dist.config.sections",
    "CollectConfig": "sea_dist.config.sections",
    "StoreConfig": "sea_dist.config.sections",
    "FitConfig": "sea_dist.config.sections",
    "PublishConfig": "sea_dist.config.sea_config",
    "EvaluateConfig": "sea_dist.config.sea_config",
    "ScheduleEntry": "sea_dist.config.sea_config",
    "ScheduleConfig": "sea_dist.config.sea_config",
    "SeaConfig": "sea_dist.config.sea_config",
}

T = TypeVar("T")


def __getattr__(name: str) -> Any:
    module = _SECTIONS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


@overload
def config_from_dict(data: Any) -> SeaConfig: ...
@overload
def config_from_dict(data: Any, cls: type[T]) -> T: ...
def config_from_dict(data: Any, cls: Any = None) -> Any:
    """Build a config of type ``cls`` (default :class:`SeaConfig`) from plain data.

    Raises:
        ConfigError: one line per problem (``field.path: expected X, found Y``), all of them.
    """
    from sea_dist.config.checked import validate
    from sea_dist.config.sea_config import SeaConfig

    return validate(SeaConfig if cls is None else cls, data)


def load_config(path: str | Path) -> SeaConfig:
    """Read and validate a YAML config file.

    Raises:
        ConfigError: the file is missing, is not YAML, or holds invalid values.
    """
    return config_from_dict(read_config_document(path))


def read_config_document(path: str | Path) -> Any:
    """The parsed YAML document of a config file, not yet validated.

    Study commands read their own sections (``tune``, ``twofold``) from the same file.

    Raises:
        ConfigError: the file is missing or is not YAML, is over the size, depth or alias
            expansion limits, or gives a key twice (see :mod:`sea_dist.config_yaml`).
    """
    # Here, not at module level: the edit module imports config without PyYAML.
    from sea_dist.config_yaml import read_yaml_file

    return read_yaml_file(path)


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
    from sea_dist.store.target import check_store_target

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


def config_to_dict(config: Any) -> dict[str, Any]:
    """Dump a config to plain JSON/YAML-able data (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return typing.cast(dict[str, Any], plain(dataclasses.asdict(config)))


def with_overrides(config: SeaConfig, **sections: dict[str, Any]) -> SeaConfig:
    """Return a copy of ``config`` with fields of some sections replaced, validated again.

    Example: ``with_overrides(cfg, fit={"centre": False})``.
    """
    data = config_to_dict(config)
    for section, values in sections.items():
        if section not in data:
            raise ConfigError(f"{section}: unknown section; expected one of {', '.join(data)}")
        data[section].update(values)
    return config_from_dict(data)
