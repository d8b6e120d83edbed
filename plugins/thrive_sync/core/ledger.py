"""The event ledger's rule: which source rows a run considers, and why (``docs/design.md``, The event ledger).

``extract/stage.sql`` applies it in PostgreSQL, so that rows needing nothing never leave the
database; :func:`consideration` says the same in Python, for the unit tests and for the system
test that holds the SQL to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from thrive_sync.core.reasons import REJECTED, RETRIES_EXHAUSTED, UNMATCHED_MEMBER_ID

# Failures that can heal with nothing changed in the source: the Contact or Lead may exist by now, an
# outage or a lock may have passed. Any other failure is retried only when the row's content changed
# (a member Id fixed heals MISSING_ and MALFORMED_MEMBER_ID; an activity code fixed, UNKNOWN_ACTIVITY).
HEALING_REASONS = (UNMATCHED_MEMBER_ID, RETRIES_EXHAUSTED)
# A record the org refused with one of these error codes may go through another day.
HEALING_ERROR_CODES = ("UNABLE_TO_LOCK_ROW", "API_TEMPORARILY_UNAVAILABLE")
OPEN_STATUSES = ("failed", "deferred")  # a deferred row was not sent (the org's allowance): always carried
PURGED = "purged"  # written, then deleted from the org by the retention DAG (thrive_sync.retention)


class Consideration(StrEnum):
    """Why a run stages a row (``staged_events.consideration``)."""

    NEW = "new"  # of the run's day, and not written with this content before
    LATE = "late"  # of a day before: the ledger lacks it (arrived late), or its content changed
    RETRIED = "retried"  # it failed before and may go through now
    UNCHANGED = "unchanged"  # of the run's day, written with this content before: counted, not sent
    STANDING = "standing"  # of the run's day, failed before and nothing could heal it: logged again, not sent


@dataclass(frozen=True)
class LedgerEntry:
    """What the ledger holds of a row: its latest outcome."""

    status: str  # written | failed | skipped | deferred | purged
    content_hash: str
    attempts: int
    reason_code: str | None = None
    error_code: str | None = None

    def heals(self) -> bool:
        """Whether this failure may go through with the row unchanged."""
        if self.status == "deferred" or self.reason_code in HEALING_REASONS:
            return True
        return self.reason_code == REJECTED and self.error_code in HEALING_ERROR_CODES


@dataclass(frozen=True)
class Horizon:
    """The days a run considers: its day ``[start, end)``, ``lookback_days`` and ``retry_days`` before it."""

    start: datetime
    end: datetime
    lookback_days: int
    retry_days: int
    resend_unchanged: bool = False
    max_attempts: int = 5

    @property
    def lookback_from(self) -> datetime:
        return self.start - timedelta(days=self.lookback_days)

    @property
    def retry_from(self) -> datetime:
        return self.start - timedelta(days=self.retry_days)


def consideration(occurred_at: datetime, content_hash: str, entry: LedgerEntry | None, horizon: Horizon) -> str | None:
    """Why the run stages a row of ``occurred_at`` with ``content_hash`` (``None``: it does not)."""
    if not horizon.lookback_from <= occurred_at < horizon.end and not horizon.retry_from <= occurred_at < horizon.end:
        return None
    if entry is not None and entry.status == PURGED:  # its record deleted by retention: never sent again
        return Consideration.UNCHANGED if occurred_at >= horizon.start else None
    changed = entry is not None and entry.content_hash != content_hash
    if occurred_at >= horizon.start:  # the run's day: every row
        if entry is None:
            return Consideration.NEW
        if entry.status in OPEN_STATUSES:
            may_heal = changed or horizon.resend_unchanged or (entry.heals() and entry.attempts < horizon.max_attempts)
            return Consideration.RETRIED if may_heal else Consideration.STANDING
        if entry.status == "written" and not changed and not horizon.resend_unchanged:
            return Consideration.UNCHANGED
        return Consideration.NEW
    in_lookback = occurred_at >= horizon.lookback_from
    if entry is None:
        return Consideration.LATE if in_lookback else None
    if entry.status == "written" and not changed:
        return None
    if (
        entry.status in OPEN_STATUSES
        and occurred_at >= horizon.retry_from
        and entry.attempts < horizon.max_attempts
        and (changed or entry.heals())
    ):
        return Consideration.RETRIED
    return Consideration.LATE if changed and in_lookback else None


def ledger_days(start: datetime, end: datetime, lookback_days: int, retry_days: int) -> tuple[date, date]:
    """The first and last UTC day whose ledger partition a run of ``[start, end)`` reads or writes."""
    first = start.astimezone(UTC) - timedelta(days=max(lookback_days, retry_days))
    last = end.astimezone(UTC) - timedelta(microseconds=1)
    return first.date(), last.date()
