"""The contract every Ray job entrypoint in ``jobs/`` keeps.

A job logs what it does, ends with one machine-readable line ``SEA_DIST_RESULT {json}`` (status
``ok`` plus what it produced, or ``error`` plus the one-line message) and exits 0 on success, 2 for
bad input (:class:`SeaDistError`) and 1 for anything else.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from sea_dist.errors import SeaDistError

RESULT_PREFIX = "SEA_DIST_RESULT "


def print_result(payload: Mapping[str, Any]) -> None:
    """Print the final result line."""
    print(RESULT_PREFIX + json.dumps(dict(payload), default=str), flush=True)


def run_job(name: str, body: Callable[[], Mapping[str, Any]]) -> int:
    """Run ``body`` (returns the success payload) under the job contract; return the exit code."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        payload = body()
    except SeaDistError as error:
        print_result({"status": "error", "job": name, "error": str(error)})
        return 2
    except Exception as error:  # a job must always end with its result line
        logging.getLogger(f"jobs.{name}").exception("%s failed", name)
        print_result({"status": "error", "job": name, "error": f"{type(error).__name__}: {error}"})
        return 1
    print_result({"status": "ok", "job": name, **payload})
    return 0


def parse_result(output: str) -> dict[str, Any] | None:
    """The payload of the last result line in a job's output, or None."""
    for line in reversed(output.splitlines()):
        if line.startswith(RESULT_PREFIX):
            parsed: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return parsed
    return None
