"""Submitting scheduled jobs to a Ray cluster through the Jobs SDK, and polling their status.

The scheduler talks to :class:`JobSubmitter`; :class:`RayJobSubmitter` implements it with
``ray.job_submission.JobSubmissionClient`` (HTTP to the cluster's dashboard, port 8265).
Submission ids are deterministic per (history file, schedule, due time): when a scheduler crashes
after submitting but before recording it, the restarted scheduler re-submits the same id, Ray
answers "already exists", and the job is recorded once instead of running twice.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shlex
import sys
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlparse

from sea_dist.config import ScheduleEntry
from sea_dist.schedule.history import ScheduleError

logger = logging.getLogger(__name__)

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})


class JobSubmitter(Protocol):
    """What the scheduler needs from a job system."""

    def submit(self, entry: ScheduleEntry, submission_id: str) -> str:
        """Submit ``entry``'s job under ``submission_id``; return the job id.

        Raises:
            ScheduleError: the job system refused the job or cannot be reached.
        """
        ...

    def status(self, entry: ScheduleEntry, job_id: str) -> str:
        """Current status: PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED, or LOST (unknown id).

        Raises:
            ScheduleError: the job system cannot be reached.
        """
        ...


def submission_id(history_key: str, schedule: str, due_time: Any) -> str:
    """Deterministic Ray submission id, e.g. ``sea-nightly-20260501T0300Z-1a2b3c``.

    Args:
        history_key: identifies the history file (two deployments never share ids).
        schedule: schedule name (characters outside ``[A-Za-z0-9._-]`` become ``-``).
        due_time: the aware due time.
    """
    name = re.sub(r"[^A-Za-z0-9._-]", "-", schedule)
    digest = hashlib.sha256(history_key.encode("utf-8")).hexdigest()[:6]
    return f"sea-{name}-{due_time.strftime('%Y%m%dT%H%MZ')}-{digest}"


def is_local_address(address: str) -> bool:
    """Whether a dashboard address points at this machine (a local test or dev cluster)."""
    host = urlparse(address if "://" in address else f"http://{address}").hostname
    return host in LOCAL_HOSTS


def default_entrypoint(
    entry: ScheduleEntry, python: str = "python", workdir: str | None = None
) -> str:
    """``python jobs/<job>.py --config <job_config>``, optionally run from ``workdir``.

    Args:
        entry: the schedule (``job`` and ``job_config`` are used).
        python: interpreter; on a local cluster the venv's absolute path, because a Ray job's
            entrypoint runs in a shell that has not activated the scheduler's venv.
        workdir: folder to ``cd`` into first (the repository on a local cluster, so relative
            outputs such as ``sea-runs/`` land where ``make run`` puts them).
    """
    command = f"{shlex.quote(python)} jobs/{entry.job}.py --config {shlex.quote(entry.job_config)}"
    return f"cd {shlex.quote(workdir)} && {command}" if workdir else command


def local_entrypoint(workdir: str | None) -> Callable[[ScheduleEntry], str]:
    """Entrypoint builder for the CLI: on a local cluster this interpreter (the venv's, by
    absolute path) run from ``workdir``; on any other cluster plain ``python`` (the image's)."""

    def build(entry: ScheduleEntry) -> str:
        if is_local_address(entry.address):
            return default_entrypoint(entry, sys.executable, workdir)
        return default_entrypoint(entry)

    return build


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # Ray's HTTP errors carry a server traceback; its last meaningful line says what went wrong.
    text = next((line for line in reversed(lines) if line not in (".",)), type(error).__name__)
    return text[:300]


class RayJobSubmitter:
    """A :class:`JobSubmitter` over ``ray.job_submission.JobSubmissionClient``.

    Args:
        runtime_env: passed to ``submit_job`` as is (``working_dir``, ``env_vars``, ``pip`` ...);
            None submits without one (the job runs where the cluster was started).
        entrypoint: builds the shell command of a schedule's job; default
            :func:`default_entrypoint`.
    """

    def __init__(
        self,
        runtime_env: Mapping[str, Any] | None = None,
        entrypoint: Callable[[ScheduleEntry], str] = default_entrypoint,
    ) -> None:
        self.runtime_env = dict(runtime_env) if runtime_env else None
        self.entrypoint = entrypoint
        self._clients: dict[str, Any] = {}

    def _client(self, address: str) -> Any:
        if address not in self._clients:
            from ray.job_submission import JobSubmissionClient

            try:
                self._clients[address] = JobSubmissionClient(address)
            except Exception as error:  # connection refused, DNS, auth: all "cannot reach"
                raise ScheduleError(
                    f"ray cluster at {address}: expected a reachable Ray dashboard, found "
                    f"{type(error).__name__}: {_one_line(error)}; start the cluster or fix "
                    "the schedule's address"
                ) from error
        return self._clients[address]

    def submit(self, entry: ScheduleEntry, submission_id: str) -> str:
        """Submit the job; an id Ray already knows counts as submitted (see module doc)."""
        client = self._client(entry.address)
        command = self.entrypoint(entry)
        try:
            job_id = client.submit_job(
                entrypoint=command,
                submission_id=submission_id,
                runtime_env=self.runtime_env,
                metadata={"sea_dist_schedule": entry.name, "job_config": entry.job_config},
            )
        except Exception as error:  # the SDK raises RuntimeError/ConnectionError subclasses
            if "already exists" in str(error):
                logger.warning("job %s was already submitted; recording it", submission_id)
                return submission_id
            self._clients.pop(entry.address, None)
            raise ScheduleError(
                f"submit {entry.name} to {entry.address}: expected the job to be accepted, "
                f"found {type(error).__name__}: {_one_line(error)}"
            ) from error
        logger.info("submitted %s: %s", job_id, command)
        return str(job_id)

    def status(self, entry: ScheduleEntry, job_id: str) -> str:
        """The job's status name; ``LOST`` when the cluster does not know the id."""
        client = self._client(entry.address)
        try:
            return str(client.get_job_status(job_id).value)
        except Exception as error:  # 404 for an unknown id, connection errors otherwise
            if "does not exist" in str(error):
                return "LOST"
            self._clients.pop(entry.address, None)
            raise ScheduleError(
                f"status of {job_id} at {entry.address}: expected a reachable Ray dashboard, "
                f"found {type(error).__name__}: {_one_line(error)}"
            ) from error
