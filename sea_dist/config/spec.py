"""The light part of the configuration: names, patterns, limits and the pure value checks.

Nothing here imports a third-party library: the base install (``sea_dist.edit``) imports
:data:`LayerSpec`, :data:`SITES` and :data:`LAYER_SPEC_RE` through :mod:`sea_dist.config`
without pydantic, PyYAML or fsspec.
"""

from __future__ import annotations

import re

DEMO_MODEL_ID = "smollm2-135m-instruct"
SITES = ("residual", "mlp", "attn")
LAYER_SPEC_RE = re.compile(r"^(all|(last|first)-[1-9][0-9]*|(last|first)-([1-9][0-9]?|100)%)$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
CRON_FIELD_RE = re.compile(r"^[0-9*/,\-]+$")
DEVICE_RE = re.compile(r"^(cpu|auto|cuda(:[0-9]+)?|mps)$")
FIT_DEVICE_RE = re.compile(r"^(cpu|auto|cuda(:[0-9]+)?)$")

LayerSpec = str | tuple[int, ...]
"""``"all"``, ``"last-L"``, ``"first-L"`` or an explicit tuple of 0-based decoder layer indices."""

# Upper bounds of the sizes and counts in a config; each is far beyond any sensible run.
MAX_ROWS_PER_SHARD = 65_536
"""One chunk holds rows_per_shard x d values (65536 x 8192 float32 = 2 GiB)."""
MAX_BATCH = 4_096
MAX_NEW_TOKENS = 32_768
MAX_COUNT = 1_000_000_000
"""Demonstration and question limits."""
INT_LIMIT = 2**63 - 1
"""No config integer is larger (it would overflow int64 in numpy, zarr and Ray)."""
FLOAT_LIMIT = 1e300


def check_layers(name: str, value: LayerSpec) -> list[str]:
    """Problems of a layer spec (empty when it is valid)."""
    if isinstance(value, str):
        if not LAYER_SPEC_RE.match(value):
            return [
                f"{name}: expected 'all', 'last-L', 'first-L' or a list of layer indices, "
                f"found {value!r}"
            ]
        return []
    if not value:
        return [f"{name}: expected a non-empty list of layer indices, found []"]
    bad = [i for i in value if i < 0]
    if bad:
        return [f"{name}: expected layer indices >= 0, found {bad}"]
    if len(set(value)) != len(value):
        return [f"{name}: expected distinct layer indices, found {list(value)}"]
    return []


def positive(name: str, value: float | int | None) -> list[str]:
    """``name: expected a value > 0`` when ``value`` is set and not positive."""
    if value is not None and value <= 0:
        return [f"{name}: expected a value > 0, found {value!r}"]
    return []


def at_most(name: str, value: float | int | None, high: float | int, why: str) -> list[str]:
    """Upper bounds: a value past them is a typo, and would exhaust memory or time later."""
    if value is not None and value > high:
        return [f"{name}: expected at most {high} ({why}), found {value!r}"]
    return []


def at_least_zero(name: str, value: float | int) -> list[str]:
    """``name: expected >= 0`` when ``value`` is negative."""
    return [f"{name}: expected >= 0, found {value}"] if value < 0 else []
