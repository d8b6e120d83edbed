"""The org's daily allowance against the sandbox's /limits: the reserve is kept, rows that do not fit
are deferred (not sent, not failures), and the next run writes them."""

from __future__ import annotations

import re

import psycopg

import dag_runs
from conftest import wire
from thrive_dev.sample_data import SampleConfig, load

RESERVE = 3_000  # 20% of the 15,000 the tests set as the daily maximum
ROOM_CALLS = 15  # above the reserve: room for part of the category's rows of two days
SHORT = "message_activity"


def set_api_requests(org, remaining: int) -> None:
    org.admin("PUT", "limits", json={"DailyApiRequests": {"Max": 15_000, "Remaining": remaining}})


def _limits(org) -> dict:
    return org.admin("PUT", "limits", json={}).json()  # an empty body changes nothing and answers them


def run(run_date: str, conf: dict | None = None) -> str:
    result = dag_runs.dags_test({"delay_minutes": 0, "lookback_days": 0, **(conf or {})}, run_date=run_date)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout + result.stderr


def run_totals(db: str, run_id: str) -> dict[str, int]:
    with psycopg.connect(db) as conn:
        row = conn.execute(
            "SELECT sum(extracted), sum(written), sum(failed), sum(skipped), sum(deferred), sum(retried)"
            " FROM thrive_sync.sync_runs WHERE dag_run_id = %s",
            [run_id],
        ).fetchone()
        logged = conn.execute(
            "SELECT count(*) FROM thrive_sync.tracking_log WHERE dag_run_id = %s AND reason_code = 'DEFERRED_QUOTA'",
            [run_id],
        ).fetchone()[0]
    return {**dict(zip(("extracted", "written", "failed", "skipped", "deferred", "retried"), row, strict=True)),
            "logged_deferred": logged}  # fmt: skip


def ledger_statuses(db: str) -> dict[str, int]:
    with psycopg.connect(db) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM thrive_sync.event_ledger GROUP BY 1").fetchall())


def test_an_allowance_below_the_reserve_defers_every_row_and_the_next_run_writes_them(wired, org, sf):
    set_api_requests(org, RESERVE - 100)
    received = org.admin("GET", "stats").json().get("records.received", 0)
    output = run(dag_runs.RUN_DATE)
    first = run_totals(wired, dag_runs.latest_run_id(wired))

    assert org.admin("GET", "stats").json().get("records.received", 0) == received  # nothing was sent
    assert first["written"] == 0 and first["deferred"] > 0
    assert first["deferred"] == first["failed"] == first["logged_deferred"] == first["extracted"] - first["skipped"]
    assert "deferred" in ledger_statuses(wired) and "written" not in ledger_statuses(wired)
    assert "failure share 0.0% of rows past the gates" in output  # deferred rows are not failures
    assert re.search(
        r"org salesforce_default: API requests \d+ spent, 2,\d{3} of 15,000 left; Bulk batches 0 spent, 15,000 of"
        r" 15,000 left \(DailyApiRequests at or below the reserve \(20% kept for the org's other integrations\)\)",
        output,
    )

    set_api_requests(org, 15_000)
    run("2026-11-28")  # the next day: nothing of its own, the 26th's deferred rows carried forward
    second = run_totals(wired, dag_runs.latest_run_id(wired))
    assert second["retried"] == first["deferred"] and second["deferred"] == 0
    with psycopg.connect(wired) as conn:
        expected = {
            f"{a}:{c}:{e}"
            for a, c, e in conn.execute(
                "SELECT account_id, category, event_id FROM thrive_sample.expected_outcomes WHERE outcome = 'written'"
            )
        }
    records = sf.query_all("SELECT Thrive_Event_Id__c FROM Thrive_Activity__c")["records"]
    in_org = {r["Thrive_Event_Id__c"] for r in records}
    assert in_org == expected
    assert "deferred" not in ledger_statuses(wired)
    with psycopg.connect(wired) as conn:
        stale = conn.execute(
            "SELECT count(*) FROM thrive_sync.event_ledger WHERE last_dag_run_id = %(run)s AND last_attempt_at <"
            " (SELECT min(started_at) FROM thrive_sync.sync_runs WHERE dag_run_id = %(run)s)",
            {"run": dag_runs.latest_run_id(wired)},
        ).fetchone()[0]
    assert stale == 0  # each row the second run acted on carries its time


def test_a_run_leaves_the_reserve_and_defers_what_does_not_fit(wired, org):
    set_api_requests(org, RESERVE + 12)  # room for the preflight and a few Collections calls, not the day
    output = run(dag_runs.RUN_DATE)
    totals = run_totals(wired, dag_runs.latest_run_id(wired))
    with psycopg.connect(wired) as conn:
        usage = conn.execute(
            "SELECT category, api_before, api_after, rows_to_send, room, deferred FROM thrive_sync.org_usage"
            " WHERE dag_run_id = %s ORDER BY api_before DESC",
            [dag_runs.latest_run_id(wired)],
        ).fetchall()
    assert totals["written"] > 0 and totals["deferred"] > 0, (totals, usage)
    assert sum(u[5] for u in usage) == totals["deferred"]
    assert all(u[4] + u[5] <= u[3] for u in usage)  # what was let through and what was deferred
    left = _limits(org)["DailyApiRequests"]["Remaining"]
    # Each task pays its preflight and member lookups before its room is known, and its last /limits read
    # after: the reserve gives way by at most those (a few calls a task), never by the rows' writing.
    assert left >= RESERVE - 5 * 6, (left, usage)
    assert "org salesforce_default: API requests" in output


def test_rows_carried_from_earlier_runs_go_first_when_the_room_is_short(fresh_db, pg_server, org, monkeypatch,
                                                                         airflow_metadata):  # fmt: skip
    """The 26th deferred whole; the 27th's run has room for part of its rows: the 26th's go first."""
    load(fresh_db, SampleConfig(start=dag_runs.DAY, days=2, events=3_000, recipients_per_account=60, seed=5))
    wire(fresh_db, pg_server, org, monkeypatch)
    set_api_requests(org, RESERVE - 100)
    run(dag_runs.RUN_DATE)
    set_api_requests(org, RESERVE + ROOM_CALLS)
    run("2026-11-28", {"categories": [SHORT], "lookback_days": 1})
    run_id = dag_runs.latest_run_id(fresh_db)
    with psycopg.connect(fresh_db) as conn:
        usage = conn.execute(
            "SELECT category, rows_to_send, room, deferred FROM thrive_sync.org_usage WHERE dag_run_id = %s",
            [run_id],
        ).fetchall()
        by_day = dict(conn.execute(
            "SELECT l.occurred_at < '2026-11-27', array_agg(DISTINCT l.status) FROM thrive_sync.event_ledger l"
            " WHERE l.category = %s AND l.last_dag_run_id = %s GROUP BY 1",
            [SHORT, run_id],
        ).fetchall())  # fmt: skip
    short = next(u for u in usage if u[0] == SHORT)
    assert 0 < short[2] < short[1], usage  # room for part of the category's rows
    assert "deferred" not in by_day[True], by_day  # the 26th's carried rows were all sent
    assert "deferred" in by_day[False], by_day  # the 27th's own rows waited
