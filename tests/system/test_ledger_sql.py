"""The event ledger in PostgreSQL: ``extract/stage.sql`` decides as ``core.ledger.consideration`` does.

Every kind of ledger entry on every day around the run's day, staged by the real extract, and each
row's consideration compared with the Python rule (which has its own unit tests).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from conftest import airflow_conn_for
from dag_runs import stage
from thrive_dev.schema import apply_schema
from thrive_sync.core.ledger import Horizon, LedgerEntry, consideration

DAY = datetime(2026, 11, 26, tzinfo=UTC)
ACCOUNT, CATEGORY = "acct-l", "message_activity"
ENTRIES = [
    None,
    LedgerEntry("written", "same", 1),
    LedgerEntry("written", "old", 1),
    LedgerEntry("failed", "same", 1, "UNMATCHED_MEMBER_ID"),
    LedgerEntry("failed", "same", 5, "UNMATCHED_MEMBER_ID"),
    LedgerEntry("failed", "same", 1, "MISSING_MEMBER_ID"),
    LedgerEntry("failed", "old", 1, "MISSING_MEMBER_ID"),
    LedgerEntry("failed", "same", 2, "REJECTED", "UNABLE_TO_LOCK_ROW"),
    LedgerEntry("failed", "same", 1, "REJECTED", "STRING_TOO_LONG"),
    LedgerEntry("failed", "same", 1, "RETRIES_EXHAUSTED"),
    LedgerEntry("deferred", "same", 1, "DEFERRED_QUOTA"),
    LedgerEntry("skipped", "same", 1, "tracking_disabled"),
    LedgerEntry("skipped", "old", 1, "tracking_disabled"),
]
OFFSETS = range(-9, 2)  # days from the run's day: beyond retry_days, inside it, the lookback, the day, after


@pytest.fixture
def ledger_db(fresh_db, pg_server, monkeypatch):
    """Source rows for every (day, entry) pair, their content digests, and the ledger's partitions."""
    with psycopg.connect(fresh_db) as conn:
        apply_schema(conn)
        conn.execute("INSERT INTO thrive.recipients (account_id, recipient_id, custom_member_id) VALUES (%s, 1, %s)",
                     [ACCOUNT, "003000000000001AAA"])  # fmt: skip
        conn.execute("INSERT INTO thrive.messages (account_id, message_id, name) VALUES (%s, 1, 'News')", [ACCOUNT])
        events = [(ACCOUNT, n, DAY + timedelta(days=d, hours=12)) for n, (d, _) in enumerate(pairs())]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO thrive.message_activity (account_id, event_id, recipient_id, activity_code,"
                " activity_subcode, occurred_at, message_id) VALUES (%s, %s, 1, 'Opened', 'Opened', %s, 1)",
                events,
            )
        conn.execute("SELECT thrive_sync.ensure_ledger_partitions(%s, %s)", [date(2026, 11, 10), date(2026, 11, 30)])
    monkeypatch.setenv("AIRFLOW_CONN_THRIVE_DB", airflow_conn_for(pg_server, fresh_db))
    return fresh_db


def pairs() -> list[tuple[int, LedgerEntry | None]]:
    return [(d, entry) for d in OFFSETS for entry in ENTRIES]


def staged(db: str, run_id: str) -> dict[int, tuple[str, str]]:
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT event_id, consideration, content_hash FROM thrive_sync.staged_events WHERE dag_run_id = %s",
            [run_id],
        ).fetchall()
    return {event_id: (why, digest) for event_id, why, digest in rows}


@pytest.mark.parametrize("resend_unchanged", [False, True])
def test_the_extract_considers_rows_as_the_rule_says(ledger_db, resend_unchanged):
    stage(CATEGORY, "probe", DAY, lookback_days=30)  # every row staged, with its content digest
    digests = {event_id: digest for event_id, (_, digest) in staged(ledger_db, "probe").items()}
    entries = {}
    with psycopg.connect(ledger_db) as conn:
        for n, (d, entry) in enumerate(pairs()):
            if entry is None:
                continue
            same = digests.get(n, "after the day: never staged")
            entries[n] = replace(entry, content_hash=same if entry.content_hash == "same" else "old")
            e = entries[n]
            conn.execute(
                "INSERT INTO thrive_sync.event_ledger (account_id, category, event_id, occurred_at, status,"
                " reason_code, error_code, content_hash, first_dag_run_id, last_dag_run_id, attempts,"
                " last_attempt_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'r', 'r', %s, now())",
                [ACCOUNT, CATEGORY, n, DAY + timedelta(days=d, hours=12), e.status, e.reason_code, e.error_code,
                 e.content_hash, e.attempts],
            )  # fmt: skip
    stage(CATEGORY, "judge", DAY, resend_unchanged=resend_unchanged)
    got = {event_id: why for event_id, (why, _) in staged(ledger_db, "judge").items()}
    horizon = Horizon(DAY, DAY + timedelta(days=1), lookback_days=2, retry_days=7, resend_unchanged=resend_unchanged)
    want = {}
    for n, (d, _) in enumerate(pairs()):
        digest = digests.get(n, "after the day: never staged")
        why = consideration(DAY + timedelta(days=d, hours=12), digest, entries.get(n), horizon)
        if why is not None:
            want[n] = str(why)
    assert got == want
    assert {"new", "late", "retried", "unchanged" if not resend_unchanged else "new"} <= set(got.values())
