"""Scheduled refits: cron triggers that submit Ray jobs, idempotent by input fingerprint.

- :mod:`~sea_dist.cron`: five-field cron expressions with time zones;
- :mod:`~sea_dist.schedule.fingerprint`: the input fingerprint of a run;
- :mod:`~sea_dist.schedule.history`: the history table (Parquet) and scheduler state;
- :mod:`~sea_dist.schedule.submitter`: Ray Jobs SDK submission and status polling;
- :mod:`~sea_dist.schedule.scheduler`: the decisions (submit, skip-unchanged, skip-running,
  missed (coalesced), error) and the polling loop.

Importing this package does not import ray, pyarrow or transformers.
"""

from sea_dist.cron import CronExpression
from sea_dist.schedule.fingerprint import compute_input_fingerprint, input_fingerprint
from sea_dist.schedule.history import HistoryRow, HistoryStore, ScheduleError
from sea_dist.schedule.scheduler import Published, Scheduler, registry_latest
from sea_dist.schedule.submitter import JobSubmitter, RayJobSubmitter, default_entrypoint

__all__ = [
    "CronExpression",
    "HistoryRow",
    "HistoryStore",
    "JobSubmitter",
    "Published",
    "RayJobSubmitter",
    "ScheduleError",
    "Scheduler",
    "compute_input_fingerprint",
    "default_entrypoint",
    "input_fingerprint",
    "registry_latest",
]
