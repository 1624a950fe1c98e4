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
from sea_dist.errors import ConfigError

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
