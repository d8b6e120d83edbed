"""The event ledger's rule: which rows a run considers, and why (``core.ledger.consideration``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from thrive_sync.core.ledger import Horizon, LedgerEntry, consideration, ledger_days

DAY = datetime(2026, 11, 26, tzinfo=UTC)
HORIZON = Horizon(start=DAY, end=DAY + timedelta(days=1), lookback_days=2, retry_days=7, max_attempts=5)


def days_before(n: float) -> datetime:
    return DAY - timedelta(days=n) + timedelta(hours=12)


def written(content: str = "h") -> LedgerEntry:
    return LedgerEntry("written", content, attempts=1)


def failed(reason: str, content: str = "h", attempts: int = 1, error_code: str | None = None) -> LedgerEntry:
    return LedgerEntry("failed", content, attempts, reason, error_code)


@pytest.mark.parametrize(
    ("when", "entry", "expected"),
    [
        (days_before(0), None, "new"),
        (days_before(0), written(), "unchanged"),
        (days_before(0), written("old"), "new"),  # the day's row changed: sent again
        (days_before(0), failed("UNKNOWN_ACTIVITY"), "standing"),  # a rerun logs it again, sends nothing
        (days_before(0), failed("UNKNOWN_ACTIVITY", content="old"), "retried"),  # its code was fixed
        (days_before(0), failed("UNMATCHED_MEMBER_ID"), "retried"),  # the Contact may exist by now
        (days_before(0), failed("UNMATCHED_MEMBER_ID", attempts=5), "standing"),
        (days_before(1), None, "late"),
        (days_before(2), None, "late"),
        (days_before(3), None, None),  # beyond the lookback: another day's business
        (days_before(1), written(), None),
        (days_before(1), written("old"), "late"),  # changed since its day ran
        (days_before(5), written("old"), None),  # changed, but beyond the lookback
        (days_before(5), failed("UNMATCHED_MEMBER_ID"), "retried"),  # the Contact may exist by now
        (days_before(5), failed("RETRIES_EXHAUSTED"), "retried"),  # the outage may be over
        (days_before(5), failed("REJECTED", error_code="UNABLE_TO_LOCK_ROW"), "retried"),
        (days_before(5), failed("REJECTED", error_code="STRING_TOO_LONG"), None),  # the same again
        (days_before(5), failed("MISSING_MEMBER_ID"), None),  # nothing changed: it would fail the same way
        (days_before(5), failed("MISSING_MEMBER_ID", content="old"), "retried"),  # the member Id was fixed
        (days_before(5), failed("UNMATCHED_MEMBER_ID", attempts=5), None),  # out of attempts
        (days_before(1), failed("UNKNOWN_ACTIVITY", content="old", attempts=5), "late"),  # changed wins
        (days_before(5), LedgerEntry("deferred", "h", 1, "DEFERRED_QUOTA"), "retried"),
        (days_before(8), failed("UNMATCHED_MEMBER_ID"), None),  # beyond retry_days
        (days_before(1), LedgerEntry("skipped", "h", 1, "tracking_disabled"), None),
        (DAY + timedelta(days=1), None, None),  # after the day: the next run's
        (days_before(0), LedgerEntry("purged", "h", 1), "unchanged"),  # deleted by retention: counted, not sent
        (days_before(0), LedgerEntry("purged", "old", 1), "unchanged"),  # changed or not
        (days_before(1), LedgerEntry("purged", "old", 1), None),
    ],
)
def test_what_a_run_considers(when, entry, expected):
    assert consideration(when, "h", entry, HORIZON) == expected


def test_resend_unchanged_sends_the_days_written_rows_only():
    horizon = Horizon(DAY, DAY + timedelta(days=1), 2, 7, resend_unchanged=True)
    assert consideration(days_before(0), "h", written(), horizon) == "new"
    assert consideration(days_before(0), "h", failed("REJECTED", error_code="STRING_TOO_LONG"), horizon) == "retried"
    assert consideration(days_before(1), "h", written(), horizon) is None
    assert consideration(days_before(0), "h", LedgerEntry("purged", "h", 1), horizon) == "unchanged"  # never again


def test_the_ledger_days_of_a_run_are_utc_days():
    start = datetime(2026, 11, 26, 5, tzinfo=UTC)  # a New York day: 05:00Z to 05:00Z
    assert ledger_days(start, start + timedelta(days=1), 2, 7) == (date(2026, 11, 19), date(2026, 11, 27))
    assert ledger_days(DAY, DAY + timedelta(days=1), 0, 0) == (date(2026, 11, 26), date(2026, 11, 26))
