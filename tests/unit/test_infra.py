"""infra/: every manifest parses, has its required fields, and only names things that exist.

"Things that exist": every ``jobs/<name>.py`` entrypoint, every ``--config`` file (which must also
be a valid sea-dist config), every ``sea-dist`` subcommand (parsed by the real CLI parser), every
file a manifest mounts from a ConfigMap, and every COPY source of the Dockerfile. The cluster
launcher config is validated against Ray's own JSON schema.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from sea_dist.cli import build_parser
from sea_dist.config import SeaConfig, config_from_dict, load_config
from sea_dist.cron import CronExpression

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MANIFESTS = sorted(INFRA.rglob("*.yaml"))
K8S = sorted((INFRA / "k8s").glob("*.yaml"))
DOCS = [REPO / "docs" / "cluster.md", INFRA / "README.md"]
IMAGE_RE = re.compile(r"^registry\.example\.com/sea-dist:[\w.-]+$")
REQUIRED = {  # top-level fields each kind needs besides apiVersion, kind, metadata
    "PersistentVolumeClaim": ["spec"],
    "RayCluster": ["spec"],
    "RayJob": ["spec"],
    "CronJob": ["spec"],
    "Deployment": ["spec"],
    "ConfigMap": ["data"],
    "ServiceAccount": [],
    "Role": ["rules"],
    "RoleBinding": ["roleRef", "subjects"],
}
API_VERSIONS = {
    "RayCluster": "ray.io/v1",
    "RayJob": "ray.io/v1",
    "CronJob": "batch/v1",
    "Deployment": "apps/v1",
    "ConfigMap": "v1",
    "ServiceAccount": "v1",
    "PersistentVolumeClaim": "v1",
    "Role": "rbac.authorization.k8s.io/v1",
    "RoleBinding": "rbac.authorization.k8s.io/v1",
}


def documents(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    assert docs, f"{path}: no YAML documents"
    assert all(isinstance(d, dict) for d in docs), path
    return docs


def all_k8s() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in K8S for doc in documents(path)]


def embedded(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """YAML documents nested in ConfigMap data (``*.yaml`` keys) or in ``runtimeEnvYAML``."""
    if doc.get("kind") == "ConfigMap":
        for key, value in doc["data"].items():
            if key.endswith((".yaml", ".yml")):
                for inner in yaml.safe_load_all(value):
                    yield inner
                    yield from embedded(inner)


def strings(value: Any) -> Iterator[str]:
    """Every string inside ``value``; a list of strings also as one command line."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        if value and all(isinstance(v, str) for v in value):
            yield shlex.join(value)
        for item in value:
            yield from strings(item)


def config_mounts(docs: list[dict[str, Any]]) -> set[str]:
    """Container paths of files that ConfigMaps in ``docs`` provide through volume mounts."""
    maps = {d["metadata"]["name"]: d["data"] for d in docs if d.get("kind") == "ConfigMap"}
    provided: set[str] = set()
    for doc in docs:
        for pod in pod_specs(doc):
            volumes = {
                v["name"]: v["configMap"]["name"]
                for v in pod.get("volumes", [])
                if "configMap" in v
            }
            for container in pod["containers"]:
                for mount in container.get("volumeMounts", []):
                    if mount["name"] in volumes:
                        data = maps[volumes[mount["name"]]]  # KeyError: ConfigMap not defined
                        provided.update(f"{mount['mountPath']}/{key}" for key in data)
    return provided


def pod_specs(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = doc.get("spec", {})
    kind = doc.get("kind")
    if kind == "RayCluster":
        yield spec["headGroupSpec"]["template"]["spec"]
        for group in spec.get("workerGroupSpecs", []):
            yield group["template"]["spec"]
    elif kind == "Deployment":
        yield spec["template"]["spec"]
    elif kind == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]


def check_config_path(path: str, provided: set[str]) -> None:
    if path in provided:
        return
    assert not PurePosixPath(path).is_absolute(), f"{path}: not in the repo nor mounted"
    assert (REPO / path).is_file(), f"config {path} does not exist in the repository"
    load_config(REPO / path)  # and it is a valid sea-dist config


def check_commands(text: str, provided: set[str], where: str) -> int:
    """Check every entrypoint, --config path and sea-dist command in ``text``; count checks."""
    checked = 0
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for match in re.finditer(r"(?<![\w./-])jobs/[\w.-]+\.py", text):
        assert (REPO / match.group()).is_file(), f"{where}: {match.group()} does not exist"
        checked += 1
    for match in re.finditer(r"--config[= ]+['\"]?([^\s'\"]+)", text):
        if "<" not in match.group(1) and "$" not in match.group(1):
            check_config_path(match.group(1), provided)
            checked += 1
    for line in re.findall(r"(?:^|[\s;&|(\"'`])(sea-dist [^\n;&|#`]*)", text):
        argv = shlex.split(line.replace("\\", " "))[1:]
        if not argv or argv[0].startswith("<"):
            continue
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # --help / --version print
                args = build_parser().parse_args(argv)
        except SystemExit as exit_:
            assert exit_.code == 0, f"{where}: 'sea-dist {shlex.join(argv)}' is not a valid command"
            continue
        config = getattr(args, "config", None)
        if isinstance(config, str) and argv[0] == "schedule":
            check_config_path(config, provided)
        checked += 1
    return checked


def shell_blocks(markdown: str) -> list[str]:
    """Bodies of fenced ``bash``/``sh``/``yaml`` code blocks (indented fences included)."""
    blocks: list[str] = []
    language: str | None = None
    lines: list[str] = []
    for line in markdown.splitlines():
        fence = line.strip()
        if language is None and fence.startswith("```"):
            language, lines = fence[3:].strip(), []
        elif language is not None and fence == "```":
            if language in ("bash", "sh", "yaml"):
                blocks.append("\n".join(lines) + "\n")
            language = None
        elif language is not None:
            lines.append(line)
    assert language is None, "unclosed code block"
    return blocks


def test_every_yaml_parses() -> None:
    assert {p.relative_to(INFRA).as_posix() for p in MANIFESTS} >= {
        "runtime_env.yaml",
        "ray/cluster.yaml",
        "k8s/raycluster.yaml",
        "k8s/rayjob-pipeline.yaml",
        "k8s/cronjob-refit.yaml",
    }
    for path in MANIFESTS:
        documents(path)


@pytest.mark.parametrize("path", K8S, ids=lambda p: p.name)
def test_k8s_required_fields(path: Path) -> None:
    for doc in documents(path):
        kind = doc.get("kind")
        assert kind in REQUIRED, f"{path.name}: unexpected kind {kind!r}"
        assert doc.get("apiVersion") == API_VERSIONS[kind], (path.name, kind)
        metadata = doc.get("metadata") or {}
        assert metadata.get("name") or metadata.get("generateName"), (path.name, kind)
        for field in REQUIRED[kind]:
            assert doc.get(field), f"{path.name}: {kind} without {field}"
        for pod in pod_specs(doc):
            volumes = {v["name"] for v in pod.get("volumes", [])}
            for container in pod["containers"]:
                assert container["name"] and container["image"], (path.name, kind)
                for mount in container.get("volumeMounts", []):
                    assert mount["name"] in volumes, f"{path.name}: mount of unknown volume"
                if container["image"].startswith("registry.example.com"):
                    assert IMAGE_RE.match(container["image"]), container["image"]
                    assert container.get("workingDir") == "/app", "jobs resolve paths from /app"


def test_raycluster_groups() -> None:
    import ray

    [cluster] = [doc for _, doc in all_k8s() if doc["kind"] == "RayCluster"]
    spec = cluster["spec"]
    assert spec["rayVersion"] == ray.__version__, "rayVersion must match the image's Ray"
    assert spec["enableInTreeAutoscaling"] is True
    params = [spec["headGroupSpec"]["rayStartParams"]]
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert set(groups) == {"collect-gpu", "fit-cpu"}
    for group in groups.values():
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        params.append(group["rayStartParams"])
    assert all(isinstance(v, str) for p in params for v in p.values()), "KubeRay wants strings"
    gpu = groups["collect-gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert str(gpu["nvidia.com/gpu"]) == "1" and groups["collect-gpu"]["maxReplicas"] > 0
    fit = groups["fit-cpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert "nvidia.com/gpu" not in fit
    claims = {
        doc["metadata"]["name"] for _, doc in all_k8s() if doc["kind"] == "PersistentVolumeClaim"
    }
    for pod in pod_specs(cluster):
        for volume in pod.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims


def test_rayjobs_target_the_cluster_and_run_the_pipeline() -> None:
    from ray.runtime_env import RuntimeEnv

    cluster_names = {d["metadata"]["name"] for _, d in all_k8s() if d["kind"] == "RayCluster"}
    rayjobs = [d for _, d in all_k8s() if d["kind"] == "RayJob"]
    rayjobs += [e for _, d in all_k8s() for e in embedded(d) if e.get("kind") == "RayJob"]
    assert len(rayjobs) >= 2  # the one-off pipeline run and the CronJob's template
    for job in rayjobs:
        spec = job["spec"]
        assert spec["entrypoint"] == "python jobs/pipeline.py --config jobs/configs/default.yaml"
        assert spec["clusterSelector"]["ray.io/cluster"] in cluster_names
        RuntimeEnv(**yaml.safe_load(spec["runtimeEnvYAML"]))  # Ray accepts it


def test_cronjob_refit() -> None:
    docs = documents(INFRA / "k8s" / "cronjob-refit.yaml")
    [cron] = [d for d in docs if d["kind"] == "CronJob"]
    spec = cron["spec"]
    CronExpression.parse(spec["schedule"], spec["timeZone"])  # 5 fields, known zone
    assert spec["concurrencyPolicy"] == "Forbid"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
    assert pod["serviceAccountName"] in accounts and pod["restartPolicy"] == "Never"
    [role] = [d for d in docs if d["kind"] == "Role"]
    assert {"create", "list", "delete"} <= set(role["rules"][0]["verbs"])
    [binding] = [d for d in docs if d["kind"] == "RoleBinding"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    provided = config_mounts(docs)
    for command in strings(pod["containers"][0]["command"]):
        for path in re.findall(r"/etc/sea-dist/[\w.-]+", command):
            assert path in provided, f"{path} is not provided by the ConfigMap"
    [config_map] = [d for d in docs if d["kind"] == "ConfigMap"]
    script = config_map["data"]["submit.sh"]
    for path in re.findall(r"/etc/sea-dist/[\w.-]+", script):
        assert path in provided
    [template] = list(embedded(config_map))
    assert template["metadata"]["generateName"] and "name" not in template["metadata"]
    assert template["metadata"]["labels"]["sea-dist/refit"] == "true"
    assert "sea-dist/refit=true" in script


def test_scheduler_deployment_config() -> None:
    docs = documents(INFRA / "k8s" / "scheduler.yaml")
    [config_map] = [d for d in docs if d["kind"] == "ConfigMap"]
    config = config_from_dict(yaml.safe_load(config_map["data"]["schedule.yaml"]), SeaConfig)
    [cluster] = [d for _, d in all_k8s() if d["kind"] == "RayCluster"]
    for entry in config.schedule.schedules:
        check_config_path(entry.job_config, set())
        assert entry.address == f"http://{cluster['metadata']['name']}-head-svc:8265"
        CronExpression.parse(entry.cron, entry.timezone)
    assert config.schedule.history.startswith("sea-runs/"), "history must be on the shared volume"
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    labels = spec["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items())


def test_every_command_names_real_entrypoints_and_configs() -> None:
    checked = 0
    for path in MANIFESTS:
        docs = documents(path)
        provided = config_mounts(docs) if path.parent.name == "k8s" else set()
        for doc in docs:
            for inner in [doc, *embedded(doc)]:
                for text in strings(inner):
                    checked += check_commands(text, provided, str(path.relative_to(REPO)))
    dockerfile = (INFRA / "Dockerfile").read_text(encoding="utf-8")
    checked += check_commands(dockerfile, set(), "infra/Dockerfile")
    for doc_path in DOCS:
        for block in shell_blocks(doc_path.read_text(encoding="utf-8")):
            joined = block.replace("\\\n", " ")
            checked += check_commands(joined, set(), str(doc_path.relative_to(REPO)))
    # collect, fit, publish, evaluate and pipeline (docs) + the manifests' commands.
    assert checked >= 15


def test_cluster_launcher_config() -> None:
    import ray
    from jsonschema import validate

    config = documents(INFRA / "ray" / "cluster.yaml")[0]
    schema_path = Path(ray.__file__).parent / "autoscaler" / "ray-schema.json"
    validate(config, json.loads(schema_path.read_text()))
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    assert {"collect-gpu", "fit-cpu"} <= set(types)
    for name, node in types.items():
        if name != config["head_node_type"]:
            assert 0 <= node["min_workers"] <= node["max_workers"] <= config["max_workers"]
    assert types[config["head_node_type"]]["resources"] == {"CPU": 0}
    assert "gpu" not in types["fit-cpu"]["node_config"]["InstanceType"]
    assert IMAGE_RE.match(config["docker"]["image"])
    setup = " ".join(config["setup_commands"])
    assert "pip install" in setup and "-c constraints.txt" in setup and '".[all]"' in setup
    assert (REPO / "constraints.txt").is_file()
    assert any("ray start --head" in c for c in config["head_start_ray_commands"])
    assert any("$RAY_HEAD_IP" in c for c in config["worker_start_ray_commands"])
    assert config["file_mounts"]["/home/ray/sea-dist"] == "."


def test_runtime_env() -> None:
    from ray.runtime_env import RuntimeEnv

    data = documents(INFRA / "runtime_env.yaml")[0]
    RuntimeEnv(**data)
    assert data["working_dir"] == "."
    assert {".venv", ".git", "sea-runs"} <= set(data["excludes"])
    assert all(isinstance(v, str) for v in data["env_vars"].values()), "Ray wants str values"


def test_dockerfile_installs_with_constraints() -> None:
    text = (INFRA / "Dockerfile").read_text(encoding="utf-8")
    joined = text.replace("\\\n", " ")
    instructions = [line.strip() for line in joined.splitlines() if line.strip()]
    instructions = [line for line in instructions if not line.startswith("#")]
    assert instructions[0] == "FROM python:3.11-slim"
    runs = [line for line in instructions if line.startswith("RUN ")]
    # the image runs every stage: the full install, not the edit-only base
    assert any('pip install -c constraints.txt ".[all]"' in run for run in runs)
    assert any("--index-url" in run and "^torch==" in run for run in runs)
    assert re.search(r"^torch==", (REPO / "constraints.txt").read_text(), re.M)
    copies = [line.split()[1:] for line in instructions if line.startswith("COPY ")]
    for parts in copies:
        sources = [p for p in parts if not p.startswith("--")][:-1]
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: missing from the repository"
    assert any("constraints.txt" in parts for parts in copies)
    assert "WORKDIR /app" in instructions
    ignore = (INFRA / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", ".git", "sea-runs"} <= set(ignore)


@pytest.mark.parametrize(
    "text, message",
    [
        ("python jobs/nope.py --config jobs/configs/default.yaml", "jobs/nope.py does not exist"),
        ("python jobs/fit.py --config jobs/configs/absent.yaml", "does not exist in the repo"),
        ("python jobs/fit.py --config=/etc/x.yaml", "not in the repo nor mounted"),
        ("sea-dist schedule runn jobs/configs/schedule.yaml", "not a valid command"),
        ("x && sea-dist schedule run jobs/configs/absent.yaml --once", "does not exist"),
    ],
)
def test_command_checker_rejects(text: str, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_commands(text, set(), "test")


def test_command_checker_accepts_mounted_configs() -> None:
    text = "sea-dist schedule run /etc/sea-dist/schedule.yaml --poll-seconds 60"
    assert check_commands(text, {"/etc/sea-dist/schedule.yaml"}, "test") == 1
    assert check_commands("sea-dist --version", set(), "test") == 0
