"""Retention: the optional DAG deletes a category's old Thrive_Activity__c records through Bulk API 2.0
delete jobs, marks them purged in the event ledger, and no later sync sends them again; off until
configured, a dry run only counts, and it keeps the org's reserve."""

from __future__ import annotations

import psycopg
from test_allowance import run, set_api_requests

import dag_runs

RETENTION_DAG = "thrive_tracking_retention"
# `dags test` at this date runs the interval ending 2026-11-27 12:00 UTC (the DAG runs daily at noon):
# with 1 day kept, the cutoff is 2026-11-26 12:00, the middle of the synced day.
RETENTION_RUN_DATE = "2026-11-28"
CUTOFF = "2026-11-26T12:00:00Z"
CATEGORY = "message_activity"


def retention(days: str | None, conf: dict | None = None) -> str:
    env = {"THRIVE_SYNC_RETENTION_DAYS": days or ""}
    result = dag_runs.dags_test(conf or {}, env=env, run_date=RETENTION_RUN_DATE, dag_id=RETENTION_DAG)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout + result.stderr


def in_org(sf, where: str) -> int:
    return sf.query(f"SELECT COUNT() FROM Thrive_Activity__c WHERE {where}")["totalSize"]


def retention_runs(db: str) -> list[tuple]:
    with psycopg.connect(db) as conn:
        return conn.execute(
            "SELECT category, salesforce_conn_id, dry_run, found, deleted, failed, ledger_marked, failures"
            " FROM thrive_sync.retention_runs ORDER BY finished_at"
        ).fetchall()


def test_old_records_are_deleted_marked_purged_and_never_sent_again(wired, sf):
    run(dag_runs.RUN_DATE)
    old = f"Category__c = '{CATEGORY}' AND Activity_Date__c < {CUTOFF}"
    young = f"Category__c = '{CATEGORY}' AND Activity_Date__c >= {CUTOFF}"
    others = f"Category__c != '{CATEGORY}'"
    before = {q: in_org(sf, q) for q in (old, young, others)}
    assert before[old] > 100 and before[young] > 100

    retention(f"{CATEGORY}=1")
    [(category, conn_id, dry_run, found, deleted, failed, marked, failures)] = retention_runs(wired)
    assert (category, conn_id, dry_run, failed, failures) == (CATEGORY, "salesforce_default", False, 0, None)
    assert found == deleted == marked == before[old]
    assert {q: in_org(sf, q) for q in (old, young, others)} == {old: 0, young: before[young], others: before[others]}
    with psycopg.connect(wired) as conn:
        purged = conn.execute(
            "SELECT count(*), max(occurred_at) < %s::timestamptz FROM thrive_sync.event_ledger"
            " WHERE status = 'purged' AND category = %s",
            [CUTOFF, CATEGORY],
        ).fetchone()
    assert purged == (deleted, True)

    # The day again, asking for every row to be sent again: the purged ones stay out of the org.
    run(dag_runs.RUN_DATE, {"resend_unchanged": True})
    assert in_org(sf, old) == 0 and in_org(sf, young) == before[young]
    with psycopg.connect(wired) as conn:
        unchanged = conn.execute(
            "SELECT sum(unchanged) FROM thrive_sync.sync_runs WHERE dag_run_id = %s AND category = %s",
            [dag_runs.latest_run_id(wired), CATEGORY],
        ).fetchone()[0]
    assert unchanged == deleted  # counted as written before, not sent


def test_retention_is_off_until_configured_counts_in_a_dry_run_and_keeps_the_reserve(wired, sf, org):
    run(dag_runs.RUN_DATE)
    total = in_org(sf, "Id != null")
    old = in_org(sf, f"Activity_Date__c < {CUTOFF}")

    output = retention(None)
    assert retention_runs(wired) == [] and in_org(sf, "Id != null") == total
    assert "retention is off for message_activity: THRIVE_SYNC_RETENTION_DAYS gives it no days" in output

    retention("1", {"dry_run": True})
    runs = retention_runs(wired)
    assert sorted(r[0] for r in runs) == sorted(["message_activity", "recipient_details", "marketing_automation",
                                                 "social_crm", "surveys_events"])  # fmt: skip
    assert all(r[2] and r[4] == r[5] == r[6] == 0 for r in runs) and sum(r[3] for r in runs) == old
    assert in_org(sf, "Id != null") == total

    set_api_requests(org, 2_900)  # below the reserve (20% of 15,000)
    retention("1")
    latest = retention_runs(wired)[-5:]
    assert all(not r[2] and r[4] == 0 and "stopped at the reserve" in r[7] for r in latest), latest
    assert in_org(sf, "Id != null") == total


def test_records_the_org_will_not_delete_are_passed_over_and_the_next_run_deletes_them(wired, sf, org, monkeypatch):
    """A third of the deletes meet a locked row: those records are left out of the next rounds'
    queries (rounds of 300), the rest of the category goes, and the next run deletes what was left."""
    run(dag_runs.RUN_DATE)
    old = f"Category__c = '{CATEGORY}' AND Activity_Date__c < {CUTOFF}"
    before = in_org(sf, old)
    monkeypatch.setenv("THRIVE_SYNC_BULK_JOB_ROWS", "300")
    org.admin("PUT", "faults", json={"lock_row_share": 0.3})
    retention(f"{CATEGORY}=1")
    [(*_, found, deleted, failed, marked, failures)] = retention_runs(wired)
    assert found == before and deleted + failed == before and 0 < failed < before / 2, (found, deleted, failed)
    assert marked == deleted and in_org(sf, old) == failed and "UNABLE_TO_LOCK_ROW" in failures
    org.admin("PUT", "faults", json={"lock_row_share": 0})
    retention(f"{CATEGORY}=1")
    assert in_org(sf, old) == 0 and retention_runs(wired)[-1][3:6] == (failed, failed, 0)
