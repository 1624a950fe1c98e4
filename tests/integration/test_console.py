"""What ``sea-dist run`` prints: a quiet console, checked on the real CLI in a subprocess.

The run is the whole pipeline (collect -> fit -> evaluate -> publish) on the smallest config:
a tiny random qwen2 written as a GGUF file (so the model must be converted), 16 built-in
demonstrations recorded by 2 collectors on a fresh local Ray cluster, the gate evaluation on 8
questions, every path inside ``tmp_path``. The subprocess runs without ``RAY_AUTH_MODE`` (which
conftest sets for in-process clusters), as a user's shell would, with ``HOME`` and the model cache
inside ``tmp_path`` so Ray's token file and the conversion are the test's own.

What a quiet console means here:

- no token-authentication warning from Ray (the local cluster asks for token mode explicitly);
- the model is converted once, by the driver: one ``converting GGUF`` line, none from a collector;
- no collector line is repeated (Ray's deduplication, progress bars off in collectors);
- each stage prints one progress bar (one physical line: tqdm rewrites it with ``\\r``) and one
  summary line, and no other bar (Dask's, transformers' weight loading, a per-layer SVD bar).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUN_TIMEOUT_S = 540  # 2 shared cores: the run takes about a minute
ACTOR_LINE = re.compile(r"^\((?:ShardCollector|CollectorActor)[^)]*\)\s?(.*)$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (?:DEBUG|INFO|WARNING|ERROR) (\S+): (.*)$")
STAGE_SUMMARIES = {
    "collect": ("sea_dist.collect.driver", "collect: "),
    "fit": ("sea_dist.fit.pipeline", "fit: "),
    "evaluate": ("sea_dist.cli.pipeline", "evaluate: gate record: "),
    "publish": ("sea_dist.registry.publish", "published console@1 "),
}


def console_config(root: Path, model: Path) -> dict[str, object]:
    """The smallest four-stage config, every path absolute under ``root``."""
    return {
        "model": {"id": str(model), "device": "cpu", "dtype": "float32"},
        "data": {"source": "builtin", "limit": 16},
        "collect": {
            "layers": [0, 2],
            "neutral": "prompt",
            "batch_size": 4,
            "rows_per_shard": 8,
            "num_actors": 2,
        },
        "store": {"url": str(root / "store.zarr")},
        "fit": {"out": str(root / "fit")},
        "publish": {"registry": str(root / "registry"), "name": "console"},
        "evaluate": {"tasks": ["builtin"], "limit": 8, "out": str(root / "eval")},
    }


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The lines ``sea-dist run`` printed (stdout and stderr together, ANSI colours removed)."""
    from tiny_models import save_tiny_gguf

    root = tmp_path_factory.mktemp("console")
    model = save_tiny_gguf(root / "src" / "tiny.gguf")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(console_config(root, model)))
    (root / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    env.update(HOME=str(root / "home"), SEA_DIST_CACHE=str(root / "cache"))
    sea_dist = Path(sys.executable).with_name("sea-dist")
    finished = subprocess.run(
        [str(sea_dist), "run", str(config)],
        cwd=root,
        env=env,
        capture_output=True,  # bytes: text mode would turn a bar's \r into new lines
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    output = ANSI.sub("", (finished.stdout + finished.stderr).decode("utf-8", "replace"))
    print(output)  # the evidence, shown with -s or on failure
    assert finished.returncode == 0, output[-4000:]
    return output.split("\n")  # not splitlines(): a bar rewrites its line with \r


def logged(lines: list[str], logger: str, prefix: str) -> list[str]:
    """Messages logged by ``logger`` that start with ``prefix``."""
    found = []
    for line in lines:
        match = LOG_LINE.match(line.split("\r")[-1])
        if match and match.group(1) == logger and match.group(2).startswith(prefix):
            found.append(match.group(2))
    return found


def bars(lines: list[str]) -> Counter[str]:
    """Physical lines per progress-bar name (``name:  40%|####  | 2/5 ...``)."""
    names: Counter[str] = Counter()
    for line in lines:
        match = re.search(r"(?:^|\r)([^\r:]+?):\s+\d+%\|", line)
        if match:
            names[match.group(1)] += 1
    return names


def test_no_token_authentication_warning(console: list[str]) -> None:
    assert not [line for line in console if "Token authentication" in line]
    assert not [line for line in console if "RAY_AUTH_MODE" in line]


def test_model_converted_once_by_the_driver(console: list[str]) -> None:
    conversions = [line for line in console if "converting GGUF" in line]
    assert len(conversions) == 1, conversions
    assert logged(console, "sea_dist.provision", "converting GGUF tiny.gguf")
    actor_lines = [m.group(1) for line in console if (m := ACTOR_LINE.match(line))]
    assert not [line for line in actor_lines if "GGUF" in line or "convert" in line]


def test_no_repeated_actor_lines(console: list[str]) -> None:
    actor_lines = [m.group(1) for line in console if (m := ACTOR_LINE.match(line))]
    repeated = {text: n for text, n in Counter(actor_lines).items() if n > 1}
    assert not repeated, repeated
    # progress bars stay off in collectors: their updates would arrive one line each
    assert not [line for line in actor_lines if re.search(r"\d+%\|", line)]


def test_one_summary_line_per_stage(console: list[str]) -> None:
    for stage, (logger, prefix) in STAGE_SUMMARIES.items():
        found = logged(console, logger, prefix)
        assert len(found) == 1, (stage, found)
    # the per-stage details now log at DEBUG (sea-dist -v shows them)
    assert not logged(console, "sea_dist.fit.pipeline", "layer ")
    assert not logged(console, "sea_dist.evaluate.gate_record", "gate ")
    assert not logged(console, "sea_dist.collect.driver", "shards: ")


def test_one_progress_bar_per_stage(console: list[str]) -> None:
    names = bars(console)
    for stage in ("collect", "fit", "gate"):
        assert names[stage] == 1, names
    # no bar but the stages' own (and the conversion's, printed once by the driver)
    assert set(names) <= {"collect", "fit", "gate", "Converting and de-quantizing GGUF tensors..."}
    assert not [line for line in console if "% Completed" in line]  # Dask's own bar
