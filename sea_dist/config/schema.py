"""The JSON Schema of a run config, for editors that complete and check YAML.

Made by pydantic from the section classes: field types, defaults and allowed values, with each
field's docstring as its description. The cross-field checks (ranges, layer specs, cron fields)
are not in it; ``sea-dist validate-config`` runs those.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from sea_dist.config.sea_config import SeaConfig

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def config_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of :class:`~sea_dist.config.SeaConfig`, as JSON data."""
    schema = TypeAdapter(SeaConfig).json_schema(mode="validation")
    return {"$schema": SCHEMA_DIALECT, **schema}
