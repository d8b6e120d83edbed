"""Each org's sync health, and the alerts that speak once: on a change for the worse, and on recovery.

An on-call rotation reads an alert as "something changed": the same failure every day must not page
every day, and a fixed one must say so. So each org has a state (ok, warning, critical) kept between
runs; a run's report works out the org's level from its figures, and an alert goes only when the level
is worse than the state, or ok again after it was not. Nothing is said while it stays the same, and a
critical org that only improves to warning stays quiet until it is ok (a half-fixed org is not news).

Levels:

* **critical**: a task of the org failed for good (one of its sync instances, or a task every org
  needs: the extract, the account check), or its failure share passed the run's ``failure_threshold``;
* **warning**: its failure share passed ``warning_share``, or a category's written count fell under
  ``volume_share`` of its median over the last ``volume_days`` days (a broken export looks like a
  quiet day, not like an error); judged once ``min_history`` of those days have a count;
* **ok**: otherwise.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum


class Level(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class HealthRules:
    """The thresholds (the Variable ``thrive_sync_alerts`` may set all but ``failure_threshold``, a param)."""

    failure_threshold: float = 0.5
    warning_share: float = 0.1
    volume_share: float = 0.5
    volume_days: int = 7
    min_history: int = 3

    def __post_init__(self) -> None:
        for name in ("failure_threshold", "warning_share", "volume_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a share between 0 and 1, not {getattr(self, name)!r}")
        if not 1 <= self.min_history <= self.volume_days:
            raise ValueError(f"min_history must be 1..volume_days ({self.volume_days}), not {self.min_history!r}")


@dataclass(frozen=True)
class OrgDay:
    """One org's figures for the run's day.

    ``failed_tasks``: the run's tasks that failed for good and concern the org; ``past_gates`` and
    ``failed``: its rows past the account gates and of those the failures (deferred ones left out, as
    in the report's failure share); ``written``: per category the run assessed, the records its day's
    runs wrote; ``history``: per category, the written counts of the days before (newest first).
    """

    conn_id: str
    failed_tasks: Sequence[str] = ()
    past_gates: int = 0
    failed: int = 0
    written: Mapping[str, int] = field(default_factory=dict)
    history: Mapping[str, Sequence[int]] = field(default_factory=dict)

    @property
    def failure_share(self) -> float:
        return self.failed / self.past_gates if self.past_gates else 0.0


@dataclass(frozen=True)
class Health:
    level: Level
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Alert:
    """What to say about an org: ``kind`` is ``worse`` or ``recovered``."""

    conn_id: str
    kind: str
    level: Level
    previous: Level
    reasons: tuple[str, ...]

    @property
    def subject(self) -> str:
        if self.kind == "recovered":
            return f"[OK] org {self.conn_id} recovered (was {self.previous.label})"
        return f"[{self.level.name}] org {self.conn_id}: {self.reasons[0] if self.reasons else self.level.label}"

    @property
    def message(self) -> str:
        if self.kind == "recovered":
            return f"org {self.conn_id} is ok again after {self.previous.label}; no further alert while it stays ok."
        lines = [f"org {self.conn_id} is {self.level.label} (was {self.previous.label}):", *self.reasons]
        return "\n".join([*lines, "No further alert while it stays so; one when it is ok again."])


def assess(day: OrgDay, rules: HealthRules) -> Health:
    """The org's level for the day, with every reason for it (worst first)."""
    critical, warning = [], []
    if day.failed_tasks:
        critical.append(f"failed for good: {', '.join(day.failed_tasks)}")
    share = day.failure_share
    if share > rules.failure_threshold:
        critical.append(
            f"{share:.1%} of {day.past_gates:,} rows failed, past failure_threshold {rules.failure_threshold:.0%}"
        )
    elif share > rules.warning_share:
        warning.append(f"{share:.1%} of {day.past_gates:,} rows failed, past warning_share {rules.warning_share:.0%}")
    warning += volume_drops(day, rules)
    if critical:
        return Health(Level.CRITICAL, (*critical, *warning))
    return Health(Level.WARNING, tuple(warning)) if warning else Health(Level.OK)


def volume_drops(day: OrgDay, rules: HealthRules) -> list[str]:
    """The categories whose written count fell under ``volume_share`` of their recent median."""
    drops = []
    for category, written in sorted(day.written.items()):
        history = list(day.history.get(category, ()))[: rules.volume_days]
        if len(history) < rules.min_history:
            continue
        median = statistics.median(history)
        if median > 0 and written < rules.volume_share * median:
            drops.append(
                f"{category}: {written:,} records written, under {rules.volume_share:.0%} of the median "
                f"{median:,.0f} of the last {len(history)} days"
            )
    return drops


def transition(conn_id: str, previous: Level | None, health: Health) -> Alert | None:
    """The alert a change from ``previous`` calls for, if any: the level the alerts last announced
    (``None``: nothing announced yet, taken as ok)."""
    before = Level.OK if previous is None else previous
    if health.level > before:
        return Alert(conn_id, "worse", health.level, before, health.reasons)
    if health.level == Level.OK and before > Level.OK:
        return Alert(conn_id, "recovered", health.level, before, ())
    return None


def org_of_task(task_name: str) -> str | None:
    """The org a failed task concerns: a sync instance's part (``validate_and_map_x[org 2/3]``), or
    ``None`` for a task every org of the run needs."""
    if "[" not in task_name or not task_name.endswith("]"):
        return None
    part = task_name[task_name.index("[") + 1 : -1]
    return part.split(" ")[0] if not part.isdigit() else None
