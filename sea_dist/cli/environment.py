"""The environment variables sea-dist reads, read in one place (the entry layer's job).

The library takes every setting as an argument or a config field; the ``sea-dist`` commands and
the Ray jobs (``jobs/*.py``) call these functions to fill them from the environment:

==============================  ==========================  ====================================
variable                        fills                       when the variable is unset too
==============================  ==========================  ====================================
``SEA_DIST_CACHE``              ``model.cache_dir``         ``~/.cache/sea-dist``
``SEA_DIST_DATA_DIR``           ``data.data_dir``           no second data folder
``SEA_DIST_DATA_CACHE``         ``data.cache_dir``          ``$SEA_DIST_CACHE/data``, else
                                                            ``~/.cache/sea-dist/data``
``SEA_DIST_DATA_FETCH``         ``data.fetch``              fetch (``never``/``0``/``off``/``no``
                                                            turn it off)
``SEA_DIST_DATA_SOURCE_URL``    ``data.source_url``         the pinned source revision
``SEA_DIST_OUTPUT_BASE``        the ``base`` of             the working directory
                                :mod:`sea_dist.outputs`
``SEA_DIST_REGISTRY``           the registry of commands    ``publish.registry`` of the config
                                given none (``--registry``)
==============================  ==========================  ====================================

Precedence: a value the config file sets wins over the variable (as ``model.cache_dir`` always
did over ``$SEA_DIST_CACHE``); a command-line flag wins over both. The filled config travels to
Ray actors with the run, so collectors see the same values as the driver without reading their
own environment. Empty variables count as unset.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from sea_dist.config import SeaConfig, with_overrides
from sea_dist.data.fetch import CACHE_ENV as DATA_CACHE_ENV
from sea_dist.data.locate import DATA_DIR_ENV, FETCH_ENV, FETCH_OFF
from sea_dist.data.sources import SOURCE_URL_ENV
from sea_dist.outputs import OUTPUT_BASE_ENV, anchor_outputs, anchored, output_base

MODEL_CACHE_ENV = "SEA_DIST_CACHE"
"""The model cache root (:func:`sea_dist.provision.cache_root`); its ``data`` folder is the
default data cache."""

REGISTRY_ENV = "SEA_DIST_REGISTRY"
"""The registry the registry commands, ``export``, ``jobs/publish.py`` and the Ray Serve app use
when none is given on the command line."""

__all__ = [
    "DATA_CACHE_ENV",
    "DATA_DIR_ENV",
    "FETCH_ENV",
    "MODEL_CACHE_ENV",
    "OUTPUT_BASE_ENV",
    "REGISTRY_ENV",
    "SOURCE_URL_ENV",
    "anchor_outputs_from_environment",
    "anchored_from_environment",
    "apply_environment",
    "data_cache_from_environment",
    "model_cache_from_environment",
    "output_base_from_environment",
    "registry_from_environment",
]


def _get(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = (os.environ if environ is None else environ).get(name, "").strip()
    return value or None


def model_cache_from_environment(environ: Mapping[str, str] | None = None) -> str | None:
    """``$SEA_DIST_CACHE`` (the model cache root), or None when unset."""
    return _get(MODEL_CACHE_ENV, environ)


def data_cache_from_environment(environ: Mapping[str, str] | None = None) -> str | None:
    """``$SEA_DIST_DATA_CACHE``, else ``$SEA_DIST_CACHE/data``, else None."""
    explicit = _get(DATA_CACHE_ENV, environ)
    if explicit:
        return explicit
    models = model_cache_from_environment(environ)
    return None if models is None else os.path.join(models, "data")


def fetch_from_environment(environ: Mapping[str, str] | None = None) -> bool | None:
    """``$SEA_DIST_DATA_FETCH``: False for never/0/off/no, True for anything else, None unset."""
    value = _get(FETCH_ENV, environ)
    return None if value is None else value.lower() not in FETCH_OFF


def output_base_from_environment(environ: Mapping[str, str] | None = None) -> str | None:
    """``$SEA_DIST_OUTPUT_BASE``, checked (:func:`sea_dist.outputs.output_base`); None unset.

    Raises:
        ConfigError: the base is a relative path.
    """
    return output_base(_get(OUTPUT_BASE_ENV, environ))


def registry_from_environment(environ: Mapping[str, str] | None = None) -> str | None:
    """``$SEA_DIST_REGISTRY``, or None when unset or empty."""
    return _get(REGISTRY_ENV, environ)


def apply_environment(config: SeaConfig, environ: Mapping[str, str] | None = None) -> SeaConfig:
    """``config`` with the fields it leaves unset filled from the environment (module table).

    Args:
        config: a loaded config.
        environ: the variables (default ``os.environ``).

    Returns:
        The same config when nothing is filled, else a copy (validated again).
    """
    sections: dict[str, dict[str, Any]] = {}
    cache = model_cache_from_environment(environ)
    if config.model.cache_dir is None and cache is not None:
        sections["model"] = {"cache_dir": cache}
    data = {
        "data_dir": _get(DATA_DIR_ENV, environ),
        "cache_dir": data_cache_from_environment(environ),
        "fetch": fetch_from_environment(environ),
        "source_url": _get(SOURCE_URL_ENV, environ),
    }
    unset = {k: v for k, v in data.items() if v is not None and getattr(config.data, k) is None}
    if unset:
        sections["data"] = unset
    return with_overrides(config, **sections) if sections else config


def anchor_outputs_from_environment(
    config: SeaConfig, environ: Mapping[str, str] | None = None
) -> SeaConfig:
    """:func:`sea_dist.outputs.anchor_outputs` against ``$SEA_DIST_OUTPUT_BASE``."""
    return anchor_outputs(config, base=output_base_from_environment(environ))


def anchored_from_environment(
    location: str, label: str, environ: Mapping[str, str] | None = None
) -> str:
    """:func:`sea_dist.outputs.anchored` against ``$SEA_DIST_OUTPUT_BASE``."""
    return anchored(location, label, base=output_base_from_environment(environ))
