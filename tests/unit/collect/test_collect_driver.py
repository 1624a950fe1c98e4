"""Pure parts of the driver: actor layout, store identity, summary, URL handling, CLI overrides."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from sea_dist.cli import build_parser, main
from sea_dist.cli.collect import config_with_overrides
from sea_dist.collect.actor import CollectorInfo
from sea_dist.collect.driver import normalise_url, store_spec
from sea_dist.collect.layout import plan_actors
from sea_dist.collect.summary import CollectSummary
from sea_dist.config import CollectConfig, SeaConfig, config_from_dict
from sea_dist.errors import ConfigError

CPU2 = [{"CPU": 2.0}]


def test_cpu_layout_one_actor_per_cpu_by_default() -> None:
    layout = plan_actors(CollectConfig(), "cpu", CPU2)
    assert (layout.num_actors, layout.num_cpus, layout.num_gpus, layout.torch_threads) == (
        2,
        1.0,
        0.0,
        1,
    )


def test_cpu_layout_one_actor_gets_the_node() -> None:
    layout = plan_actors(CollectConfig(num_actors=1), "cpu", CPU2)
    assert (layout.num_cpus, layout.torch_threads) == (2.0, 2)


def test_cpu_layout_capped_by_largest_node() -> None:
    layout = plan_actors(CollectConfig(num_actors=1), "cpu", [{"CPU": 8.0}, {"CPU": 8.0}])
    assert layout.num_cpus == 8.0


def test_more_actors_than_cpus_share_fractionally() -> None:
    # Whole CPUs per actor would leave some actors unschedulable and the run would hang.
    layout = plan_actors(CollectConfig(num_actors=4), "cpu", CPU2)
    assert layout.num_cpus == 0.5 and layout.torch_threads == 1


def test_gpu_layout() -> None:
    nodes = [{"CPU": 16.0, "GPU": 4.0}, {"CPU": 16.0, "GPU": 4.0}]
    layout = plan_actors(CollectConfig(), "auto", nodes)
    assert (layout.num_actors, layout.num_gpus, layout.device) == (8, 1.0, "cuda")
    layout = plan_actors(CollectConfig(num_gpus_per_actor=2.0), "cuda:3", nodes)
    assert (layout.num_actors, layout.num_gpus, layout.device) == (4, 2.0, "cuda")
    # model.device: cpu keeps a GPU cluster's collectors on CPUs
    assert plan_actors(CollectConfig(), "cpu", nodes).num_gpus == 0.0


def test_gpu_layout_errors() -> None:
    with pytest.raises(ConfigError, match="without GPUs"):
        plan_actors(CollectConfig(num_gpus_per_actor=1.0), "auto", CPU2)
    with pytest.raises(ConfigError, match="model.device"):
        plan_actors(CollectConfig(num_gpus_per_actor=1.0), "cpu", [{"CPU": 4.0, "GPU": 1.0}])


def _info() -> CollectorInfo:
    return CollectorInfo(
        model_id="m",
        model_revision="r",
        architecture="llama",
        d_model=32,
        n_model_layers=3,
        tokenizer_fingerprint="t",
        layers=(0, 2),
        demonstrations_fingerprint="d",
        n_rows=10,
        host="h",
    )


def test_store_spec_from_config_and_collector() -> None:
    config: SeaConfig = config_from_dict(
        {
            "collect": {"site": "mlp", "token": "mean", "neutral": "prompt", "rows_per_shard": 4},
            "store": {"dtype": "float16", "codec": "blosc"},
        }
    )
    spec = store_spec(config, _info())
    assert (spec.site, spec.token, spec.neutral, spec.layers) == ("mlp", "mean", "prompt", (0, 2))
    assert (spec.dtype, spec.codec, spec.n_rows, spec.n_shards) == ("float16", "blosc", 10, 3)
    assert spec.to_attrs()["model_revision"] == "r"


def test_summary_lines() -> None:
    summary = CollectSummary(
        store_url="s",
        rows=10,
        shards=3,
        shards_collected=2,
        shards_skipped=1,
        shards_retried=1,
        tokens=500,
        rows_collected=7,
        wall_seconds=2.0,
        store_bytes=2_000_000,
        num_actors=2,
    )
    text = "\n".join(summary.lines())
    assert "10 rows in 3 shards, 2.0 MB" in text
    assert "250 tokens/s" in text and "1 retried" in text


def test_normalise_url() -> None:
    assert normalise_url("s3://bucket/x.zarr") == "s3://bucket/x.zarr"
    assert normalise_url("runs/x.zarr") == os.path.join(os.getcwd(), "runs/x.zarr")


def test_cli_overrides() -> None:
    parser = build_parser()
    args = parser.parse_args(
        [
            "collect",
            "cfg.yaml",
            "--store",
            "/tmp/s.zarr",
            "--num-actors",
            "3",
            "--limit",
            "5",
            "--address",
            "auto",
            "--overwrite",
        ]
    )
    assert args.overwrite and args.config == "cfg.yaml"
    config = config_with_overrides(SeaConfig(), args)
    assert config.store.url == "/tmp/s.zarr"
    assert (config.collect.num_actors, config.collect.ray_address) == (3, "auto")
    assert config.data.limit == 5
    unchanged = argparse.Namespace(store=None, num_actors=None, address=None, limit=None)
    assert config_with_overrides(config, unchanged) is config


def test_cli_refuses_bad_limit() -> None:
    args = build_parser().parse_args(["collect", "cfg.yaml", "--limit", "0"])
    with pytest.raises(ConfigError, match="limit"):
        config_with_overrides(SeaConfig(), args)


def test_cli_missing_config_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["collect", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected a YAML file" in err[0]
