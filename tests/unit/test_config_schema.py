"""`sea-dist config schema`: the JSON Schema of a run config, for editors completing YAML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sea_dist.cli import main
from sea_dist.config import config_to_dict, load_config, read_config_document
from sea_dist.config.schema import config_schema

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "jobs" / "configs" / "default.yaml"
SECTIONS = {"model", "data", "collect", "store", "fit", "publish", "evaluate", "schedule"}
RUN_CONFIGS = [
    path
    for path in sorted((REPO / "jobs" / "configs").glob("*.yaml"))
    if set(read_config_document(path) or {}) <= SECTIONS  # study configs add tune/twofold
]


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """The node itself, or what its ``$ref`` (``#/$defs/Name``) points to."""
    ref = node.get("$ref")
    return schema["$defs"][ref.rsplit("/", 1)[-1]] if ref else node


def _missing_keys(schema: dict[str, Any], node: dict[str, Any], data: Any, path: str) -> list[str]:
    """Keys of ``data`` (recursively, through mappings) that the schema has no property for."""
    node = _resolve(schema, node)
    if not isinstance(data, dict) or "properties" not in node:
        return []
    missing = []
    for key, value in data.items():
        if key not in node["properties"]:
            missing.append(f"{path}{key}")
        else:
            missing += _missing_keys(schema, node["properties"][key], value, f"{path}{key}.")
    return missing


def test_schema_describes_every_section_and_field() -> None:
    schema = config_schema()
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert set(schema["properties"]) == SECTIONS
    fit = _resolve(schema, schema["properties"]["fit"])
    assert fit["additionalProperties"] is False  # an editor flags a misspelt key
    assert fit["properties"]["svd"]["enum"] == ["auto", "exact", "qr", "randomized"]
    assert fit["properties"]["centre"]["type"] == "boolean"
    assert fit["properties"]["chunk_rows"] == {
        "default": 4096,
        "description": "Rows per block of the statistics pass.",
        "title": "Chunk Rows",
        "type": "integer",
    }
    # descriptions come from the attribute docstrings, on every field of every section
    for section in SECTIONS:
        node = _resolve(schema, schema["properties"][section])
        assert node["description"]
        undocumented = [k for k, v in node["properties"].items() if not v.get("description")]
        assert undocumented == [], section
    json.dumps(schema)  # plain JSON data


def test_every_key_of_the_default_config_is_in_the_schema() -> None:
    schema = config_schema()
    data = read_config_document(DEFAULT)
    assert isinstance(data, dict) and data  # the check below walks something
    assert _missing_keys(schema, schema, data, "") == []
    # and every field of a full dump (defaults included), nested sections too
    full = config_to_dict(load_config(DEFAULT))
    assert _missing_keys(schema, schema, full, "") == []


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: p.name)
def test_schema_validates_the_example_configs(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert [e.message for e in validator.iter_errors(read_config_document(path))] == []
    assert [e.message for e in validator.iter_errors(config_to_dict(load_config(path)))] == []
    # and it refuses what validate-config refuses for its type
    wrong = {"fit": {"svd": "magic", "centre": 1}, "collect": {"bogus": 1}}
    assert len(list(validator.iter_errors(wrong))) == 3


def test_default_config_is_a_run_config() -> None:
    assert DEFAULT in RUN_CONFIGS


def test_config_schema_command_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == config_schema()


def test_config_schema_help_explains_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["config", "schema", "--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "JSON Schema" in out and "yaml-language-server" in out and "validate-config" in out
    assert main(["config"]) == 2  # no action: the usage, on stderr
    assert "schema" in capsys.readouterr().err
