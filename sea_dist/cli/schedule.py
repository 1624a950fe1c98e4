"""``sea-dist schedule``: run the scheduler, show its history and the next fire times."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from typing import Any

from sea_dist.cli.environment import apply_environment
from sea_dist.config import load_config
from sea_dist.errors import ConfigError, expected_found


def register(subparsers: Any) -> None:
    """Add ``schedule run|history|next`` to the ``sea-dist`` parser."""
    parser = subparsers.add_parser(
        "schedule",
        help="cron-scheduled refits submitted as Ray jobs, skipped when inputs are unchanged",
        description="Scheduled refits. CONFIG is a sea-dist YAML file with a 'schedule' section "
        "(see jobs/configs/schedule.yaml): each schedule has a cron expression, a time zone, a "
        "job (pipeline, collect, fit, publish, evaluate), a job config and a Ray dashboard "
        "address. History is kept in the Parquet file 'schedule.history'.",
    )
    commands = parser.add_subparsers(dest="schedule_command", metavar="SUBCOMMAND")

    run = commands.add_parser(
        "run",
        help="evaluate the schedules and submit due jobs (forever, or once with --once)",
        description="At each due time submit 'python jobs/<job>.py --config <job_config>' "
        "through the Ray Jobs SDK, unless the input fingerprint equals that of the latest "
        "published version of the target name, or the schedule's previous job still runs. "
        "After downtime, missed due times are coalesced into one run. On a local cluster the "
        "job runs with this interpreter in the current folder; elsewhere with 'python' in the "
        "cluster's working folder or the runtime env's working_dir.",
    )
    run.add_argument("config", help="YAML config with a 'schedule' section")
    run.add_argument("--once", action="store_true", help="tick once and exit")
    run.add_argument(
        "--poll-seconds", type=float, default=30.0, help="seconds between status polls (default 30)"
    )
    run.add_argument(
        "--runtime-env",
        default=None,
        metavar="YAML",
        help="Ray runtime_env file for the jobs, e.g. infra/runtime_env.yaml",
    )
    run.set_defaults(handler=_run)

    history = commands.add_parser(
        "history",
        help="print the trigger history (time, decision, reason, job id, final status)",
        description="Print the schedule history table: one row per due time with the decision "
        "(submit, skip-unchanged, skip-running, missed (coalesced), error), its reason, the Ray "
        "job id and the job's last known status. Times are UTC.",
    )
    history.add_argument("config", help="YAML config with a 'schedule' section")
    history.add_argument("--schedule", default=None, metavar="NAME", help="only this schedule")
    history.add_argument("--limit", type=int, default=None, metavar="N", help="last N rows")
    history.add_argument("--json", action="store_true", help="one JSON object per line")
    history.set_defaults(handler=_history)

    upcoming = commands.add_parser(
        "next",
        help="print the next fire times of every schedule",
        description="Print the next fire times of every schedule, in UTC and in its time zone.",
    )
    upcoming.add_argument("config", help="YAML config with a 'schedule' section")
    upcoming.add_argument(
        "--count", type=int, default=3, metavar="N", help="fire times per schedule (default 3)"
    )
    upcoming.set_defaults(handler=_next)
    parser.set_defaults(handler=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _now() -> Any:
    return dt.datetime.now(dt.UTC)


def _schedule_config(path: str) -> Any:
    config = load_config(path).schedule
    if not config.schedules:
        raise ConfigError(
            expected_found(
                "schedule.schedules",
                "at least one schedule",
                [],
                f"add one to {path} (see jobs/configs/schedule.yaml)",
            )
        )
    return config


def _run(args: argparse.Namespace) -> int:
    import yaml

    from sea_dist.schedule.fingerprint import compute_input_fingerprint
    from sea_dist.schedule.scheduler import Scheduler
    from sea_dist.schedule.submitter import RayJobSubmitter, local_entrypoint

    config = _schedule_config(args.config)
    runtime_env = None
    if args.runtime_env:
        try:
            with open(args.runtime_env, encoding="utf-8") as handle:
                runtime_env = yaml.safe_load(handle)
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(
                expected_found(
                    "--runtime-env", "a readable YAML file", args.runtime_env, type(error).__name__
                )
            ) from None
        if not isinstance(runtime_env, dict):
            raise ConfigError(expected_found("--runtime-env", "a YAML mapping", runtime_env))
    # An uploaded working_dir is the job's folder; otherwise a local job runs from here.
    workdir = None if runtime_env and "working_dir" in runtime_env else os.getcwd()
    submitter = RayJobSubmitter(runtime_env, local_entrypoint(workdir))
    # The job configs' demonstrations are fingerprinted here, so the environment's data
    # settings ($SEA_DIST_DATA_DIR, the data cache) apply as they do in the submitted job.
    scheduler = Scheduler(
        config,
        _now,
        submitter,
        fingerprinter=lambda job: compute_input_fingerprint(apply_environment(job)),
    )
    if args.once:
        rows = scheduler.tick()
        for row in rows:
            print(f"{row.schedule} {row.due_time.isoformat()} {row.decision}: {row.reason}")
        if not rows:
            print("nothing due")
        return 0
    for name, times in scheduler.next_fires(1).items():
        print(f"{name}: next at {times[0].isoformat()}", flush=True)
    scheduler.run_forever(args.poll_seconds)
    return 0


def _history(args: argparse.Namespace) -> int:
    from sea_dist.schedule.history import HistoryStore, format_table, query

    config = _schedule_config(args.config)
    rows = query(HistoryStore(config.history).load().rows, args.schedule, args.limit)
    if args.json:
        for row in rows:
            print(json.dumps(row.to_dict(), sort_keys=True))
    elif rows:
        print(format_table(rows))
    else:
        print(f"no history yet in {config.history}")
    return 0


def _next(args: argparse.Namespace) -> int:
    from sea_dist.cron import CronExpression

    config = _schedule_config(args.config)
    now = _now()
    for entry in config.schedules:
        cron = CronExpression.parse(entry.cron, entry.timezone)
        current = now
        for _ in range(max(args.count, 1)):
            current = cron.next_fire(current)
            local = current.astimezone(cron.zone)
            print(
                f"{entry.name}  {current.strftime('%Y-%m-%d %H:%M')}Z  "
                f"({local.strftime('%Y-%m-%d %H:%M %Z')})  {entry.job} {entry.job_config}"
            )
    return 0
