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
    LedgerEntry("purged", "same", 1),  # its record deleted by the retention DAG
    LedgerEntry("purged", "old", 1),
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


@pytest.mark.parametrize(("resend_unchanged", "seen"), [(False, False), (True, False), (False, True)])
def test_the_extract_considers_rows_as_the_rule_says(ledger_db, resend_unchanged, seen):
    """``seen``: a run has looked at every day in full since the source rows were written (its
    snapshot is saved), so the extract takes the ledger's word for rows unchanged since and looks up
    only its failures by key: it must still decide every row the ledger can vouch for as the rule does."""
    from thrive_sync.core.mapping import mapping_digest

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
        if seen:
            conn.execute(
                "INSERT INTO thrive_sync.considered_days (category, day, source_snapshot, mapping_digest, dag_run_id)"
                " SELECT %s, d::date, pg_current_snapshot(), %s, 'r'"
                " FROM generate_series(%s::date, %s::date, '1 day') d",
                [CATEGORY, mapping_digest(), (DAY + timedelta(days=OFFSETS[0])).date(), DAY.date()],
            )
    tallies = stage(CATEGORY, "judge", DAY, resend_unchanged=resend_unchanged)
    got = {event_id: why for event_id, (why, _) in staged(ledger_db, "judge").items()}
    horizon = Horizon(DAY, DAY + timedelta(days=1), lookback_days=2, retry_days=7, resend_unchanged=resend_unchanged)
    want = {}
    for n, (d, _) in enumerate(pairs()):
        digest = digests.get(n, "after the day: never staged")
        why = consideration(DAY + timedelta(days=d, hours=12), digest, entries.get(n), horizon)
        if why is not None:
            want[n] = str(why)
    if seen:  # only rows the ledger holds with the content the snapshot saw: any other is a row changed since
        vouched = {n for n, e in entries.items() if e.content_hash == digests.get(n)}
        got = {n: why for n, why in got.items() if n in vouched}
        want = {n: why for n, why in want.items() if n in vouched}
    unchanged = sorted(n for n, why in want.items() if why == "unchanged")  # counted, never staged
    assert got == {n: why for n, why in want.items() if why != "unchanged"}
    if not seen:
        assert [(account, count) for account, _, count, *_ in tallies] == [(ACCOUNT, len(unchanged))]
    # The day's written row with the same content (unless resend_unchanged) and its purged ones (of which
    # a seen day vouches only for the one whose content the snapshot saw).
    assert len(unchanged) == (0 if resend_unchanged else 1) + (1 if seen else 2)
    kinds = (
        {"retried", "standing"}
        if seen
        else {"new", "late", "retried"} | ({"standing"} if not resend_unchanged else set())
    )
    assert kinds <= set(got.values())


def test_a_saved_snapshot_passes_over_the_rows_that_have_not_changed_since(ledger_db):
    """Once a run has saved the snapshot it read its days under, the next extract looks only at rows
    written since: an event edited in place, a late one, a new one of the day. A row untouched since
    is left to the ledger, even one whose ledger digest is wrong on purpose here; under another
    mapping every row is compared again."""
    from thrive_sync.core.mapping import mapping_digest

    stage(CATEGORY, "first", DAY, lookback_days=30)
    before = DAY - timedelta(days=1) + timedelta(hours=12)
    with psycopg.connect(ledger_db) as conn:
        conn.execute("TRUNCATE thrive_sync.event_ledger")  # as a run leaves it: every staged row written
        conn.execute(
            "INSERT INTO thrive_sync.event_ledger (account_id, category, event_id, occurred_at, status, content_hash,"
            " first_dag_run_id, last_dag_run_id, attempts, last_attempt_at, written_at)"
            " SELECT account_id, category, event_id, occurred_at, 'written', content_hash, 'r', 'r', 1, now(), now()"
            " FROM thrive_sync.staged_events WHERE dag_run_id = 'first'"
        )
        conn.commit()
        with psycopg.connect(ledger_db) as run:  # a run's extract: its snapshot taken, no xid yet
            run.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            run.execute("SELECT pg_current_snapshot()")
            conn.execute(  # a loader commits right after: its xid is the snapshot's xmax, the edge case
                "INSERT INTO thrive.message_activity (account_id, event_id, recipient_id, activity_code,"
                " activity_subcode, occurred_at, message_id) VALUES (%s, 9001, 1, 'Opened', 'Opened', %s, 1)",
                [ACCOUNT, before],
            )
            conn.commit()
            run.execute(
                "INSERT INTO thrive_sync.considered_days (category, day, source_snapshot, mapping_digest, dag_run_id)"
                " SELECT %s, d::date, pg_current_snapshot(), %s, 'r'"
                " FROM generate_series(%s::date - 2, %s::date, interval '1 day') d",
                [CATEGORY, mapping_digest(), DAY.date(), DAY.date()],
            )
            run.commit()
        edited, stale = conn.execute(
            "SELECT min(event_id), max(event_id) FROM thrive.message_activity WHERE occurred_at = %s", [before]
        ).fetchone()
        conn.execute("UPDATE thrive.message_activity SET link_url = 'https://example.org/new' WHERE event_id = %s",
                     [edited])  # fmt: skip
        conn.execute("UPDATE thrive_sync.event_ledger SET content_hash = 'stale' WHERE event_id = %s", [stale])
        conn.execute(
            "INSERT INTO thrive.message_activity (account_id, event_id, recipient_id, activity_code,"
            " activity_subcode, occurred_at, message_id) VALUES (%s, 9002, 1, 'Opened', 'Opened', %s, 1)",
            [ACCOUNT, DAY + timedelta(hours=13)],
        )
    day_rows = len([d for d, _ in pairs() if d == 0])

    tallies = stage(CATEGORY, "second", DAY)
    got = {event_id: why for event_id, (why, _) in staged(ledger_db, "second").items()}
    assert got == {edited: "late", 9001: "late", 9002: "new"}
    assert [t[:3] for t in tallies] == [(ACCOUNT, day_rows + 1 + 2, day_rows)]

    with psycopg.connect(ledger_db) as conn:
        conn.execute("UPDATE thrive_sync.considered_days SET mapping_digest = 'another mapping'")
    stage(CATEGORY, "third", DAY)
    got = {event_id: why for event_id, (why, _) in staged(ledger_db, "third").items()}
    assert got == {edited: "late", stale: "late", 9001: "late", 9002: "new"}
