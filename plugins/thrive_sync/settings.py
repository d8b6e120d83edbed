"""The names others rely on (DAG id, connection ids, paths) and the deployment settings.

Deployment settings come from the environment and are read when the DAG file is parsed: cheap (no
database, no network), and a value that cannot be used stops the parse with a message naming the
variable (the DAG then shows as an import error in the UI).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from thrive_sync.core.deadline import parse_time_of_day
from thrive_sync.errors import ConfigurationError

DAG_ID = "thrive_tracking_sync"
SETUP_DAG_ID = "thrive_tracking_sync_setup"  # creates the package's tables in a new deployment
RETENTION_DAG_ID = "thrive_tracking_retention"  # deletes old records from the orgs, once configured
THRIVE_DB_CONN_ID = "thrive_db"  # PostgreSQL: the thrive source tables and the package's thrive_sync tables
THRIVE_DB_PURPOSE = "the PostgreSQL database with the thrive tables"
DEFAULT_SALESFORCE_CONN_ID = "salesforce_default"  # for accounts that name none

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = PROJECT_ROOT / "include" / "sql"
DEFAULT_MAPPING = PROJECT_ROOT / "include" / "mapping" / "thrive_activity.yaml"
N = TypeVar("N", int, float)
FLAG_WORDS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


@dataclass(frozen=True)
class WriterOptions:
    """How records are sent (see ``SalesforceWriter``): Bulk API 2.0 from ``bulk_threshold`` records
    of one org in a task, sObject Collections below; Bulk jobs of ``bulk_job_rows`` records, looked
    at every ``poll_seconds`` at most while they run, and aborted (the task fails, to be retried)
    when one has not ended after ``job_timeout_seconds``: waiting for the org is outside the retry
    budget of a call, so it has a limit of its own, generous because a busy org queues jobs for
    many minutes. ``group_by_parent``: records go ordered by the Contact or Lead they look up, and a
    job ends only where that changes, so jobs running at once never wait for each other's parent
    locks (``UNABLE_TO_LOCK_ROW``; why: docs/design.md, Lock-aware loading)."""

    bulk_threshold: int = 2_000
    bulk_job_rows: int = 25_000
    poll_seconds: float = 2.0
    job_timeout_seconds: float = 3_600.0
    group_by_parent: bool = True


@dataclass(frozen=True)
class Deployment:
    """The ``THRIVE_SYNC_*`` environment variables, with their defaults."""

    timezone: str = "UTC"
    delay_minutes: int = 120
    retry_delay_seconds: float = 120.0
    mapping_path: str | None = None  # None: DEFAULT_MAPPING
    bulk_threshold: int = WriterOptions.bulk_threshold
    bulk_job_rows: int = WriterOptions.bulk_job_rows
    poll_seconds: float = WriterOptions.poll_seconds
    job_timeout_seconds: float = WriterOptions.job_timeout_seconds
    group_by_parent: bool = WriterOptions.group_by_parent
    ledger_retention_days: int = 400  # the event ledger keeps a year and a month of days
    shard_rows: int = 100_000  # an org's day of more rows than this is split into shards written side by side
    max_shards: int = 8
    deadline: str | None = None  # "06:00": the day's tracking is in Salesforce by then (the sync's time zone)

    @property
    def deadline_after_day(self) -> timedelta | None:
        """How long after its day ends a run must have succeeded (``None``: no deadline)."""
        return parse_time_of_day(self.deadline) if self.deadline else None

    @classmethod
    def from_environ(cls, env: Mapping[str, str] = os.environ) -> Deployment:
        return cls(
            timezone=env.get("THRIVE_SYNC_TIMEZONE") or cls.timezone,
            delay_minutes=_number(env, "THRIVE_SYNC_DELAY_MINUTES", int, cls.delay_minutes),
            retry_delay_seconds=_number(env, "THRIVE_SYNC_RETRY_DELAY_SECONDS", float, cls.retry_delay_seconds),
            mapping_path=env.get("THRIVE_SYNC_MAPPING") or None,
            bulk_threshold=_number(env, "THRIVE_SYNC_BULK_THRESHOLD", int, cls.bulk_threshold),
            # A job of no rows, a wait of no time and a timeout at once cannot work: refused at parse.
            bulk_job_rows=_number(env, "THRIVE_SYNC_BULK_JOB_ROWS", int, cls.bulk_job_rows, positive=True),
            poll_seconds=_number(env, "THRIVE_SYNC_POLL_SECONDS", float, cls.poll_seconds, positive=True),
            job_timeout_seconds=_number(
                env, "THRIVE_SYNC_JOB_TIMEOUT_SECONDS", float, cls.job_timeout_seconds, positive=True
            ),
            group_by_parent=_flag(env, "THRIVE_SYNC_GROUP_BY_PARENT", cls.group_by_parent),
            ledger_retention_days=_number(
                env, "THRIVE_SYNC_LEDGER_RETENTION_DAYS", int, cls.ledger_retention_days, positive=True
            ),
            shard_rows=_number(env, "THRIVE_SYNC_SHARD_ROWS", int, cls.shard_rows, positive=True),
            max_shards=_number(env, "THRIVE_SYNC_MAX_SHARDS", int, cls.max_shards, positive=True),
            deadline=_time_of_day(env, "THRIVE_SYNC_DEADLINE"),
        )


def _time_of_day(env: Mapping[str, str], name: str) -> str | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    try:
        parse_time_of_day(raw)
    except ValueError as err:
        raise ConfigurationError(f"{name}: {err}") from None
    return raw


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in FLAG_WORDS:
        raise ConfigurationError(f"{name}={env[name]!r} is not one of {', '.join(sorted(FLAG_WORDS))}")
    return FLAG_WORDS[raw]


def _number(env: Mapping[str, str], name: str, kind: Callable[[str], N], default: N, *, positive: bool = False) -> N:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a{'n integer' if kind is int else ' number'}") from None
    if not math.isfinite(value):  # float() takes "nan" and "inf"
        raise ConfigurationError(f"{name}={raw!r} is not a finite number")
    if positive and value <= 0:
        raise ConfigurationError(f"{name}={raw!r} must be more than 0")
    if value < 0:
        raise ConfigurationError(f"{name}={raw!r} must not be negative")
    return value
