"""How many collector actors to start and what each one holds (CPUs, GPUs, threads, device).

Pure: takes the alive nodes' resources (``ray.nodes()``) and the config, so every layout rule is
unit-tested without a cluster.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from sea_dist.config import CollectConfig
from sea_dist.errors import ConfigError, expected_found

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActorLayout:
    """How many collectors run and what each one holds.

    Attributes:
        num_actors: collectors started.
        num_cpus: Ray CPUs per collector (fractional when there are more actors than CPUs).
        num_gpus: Ray GPUs per collector (0 on CPU-only clusters).
        torch_threads: intra-op threads inside each collector.
        device: ``model.device`` used inside the collectors.
    """

    num_actors: int
    num_cpus: float
    num_gpus: float
    torch_threads: int
    device: str


def plan_actors(
    collect: CollectConfig, model_device: str, nodes: Sequence[dict[str, float]]
) -> ActorLayout:
    """Choose the collector layout for a cluster.

    GPUs are used when the cluster has them and ``model.device`` is not ``cpu``, or when
    ``collect.num_gpus_per_actor > 0``: one collector per ``num_gpus_per_actor`` (default 1)
    GPUs. Otherwise one collector per CPU, or ``num_actors`` collectors sharing the CPUs evenly
    (each one's share, capped at the largest node, sets its torch threads).

    Args:
        collect: ``num_actors``, ``num_gpus_per_actor``.
        model_device: the configured ``model.device``.
        nodes: resources of the alive nodes (``ray.nodes()[i]["Resources"]``).

    Raises:
        ConfigError: GPUs asked for on a cluster without any, or with ``model.device: cpu``.
    """
    total_cpus = sum(float(n.get("CPU", 0.0)) for n in nodes)
    total_gpus = sum(float(n.get("GPU", 0.0)) for n in nodes)
    node_cpus = max((float(n.get("CPU", 0.0)) for n in nodes), default=0.0)
    if collect.num_gpus_per_actor > 0 or (total_gpus > 0 and model_device != "cpu"):
        if total_gpus == 0:
            raise ConfigError(
                expected_found(
                    "collect.num_gpus_per_actor",
                    "0 on a cluster without GPUs",
                    collect.num_gpus_per_actor,
                    "set it to 0 to collect on CPUs",
                )
            )
        if model_device == "cpu":
            raise ConfigError(
                expected_found(
                    "model.device",
                    "cuda or auto when collect.num_gpus_per_actor > 0",
                    model_device,
                    "set model.device: auto",
                )
            )
        per_actor = collect.num_gpus_per_actor or 1.0
        count = collect.num_actors or max(1, int(total_gpus // per_actor))
        if count * per_actor > total_gpus:
            log.warning(
                "%d collectors x %.2g GPUs exceed the cluster's %.0f GPUs: some wait for "
                "GPUs (an autoscaler may add them)",
                count,
                per_actor,
                total_gpus,
            )
        device = model_device if model_device.startswith("cuda") else "cuda"
        # Ray exposes only the actor's GPUs, so an explicit index would point at the wrong one.
        return ActorLayout(count, 1.0, per_actor, 1, "cuda" if ":" in device else device)
    if total_cpus < 1:
        raise ConfigError(expected_found("cluster", "at least one CPU", total_cpus))
    count = collect.num_actors or max(1, int(total_cpus))
    share = min(node_cpus, total_cpus / count)
    cpus = float(math.floor(share)) if share >= 1 else round(share, 4)
    return ActorLayout(count, cpus, 0.0, max(1, int(cpus)), model_device)
