"""A backfill with a real scheduler: `airflow standalone` (LocalExecutor) and `airflow backfill create`."""

from __future__ import annotations

import time
from datetime import date

import psycopg

from conftest import MEASUREMENTS, airflow_conn_for
from dag_runs import backfill, standalone
from thrive_dev.sample_data import SampleConfig, load
from thrive_dev.sandbox import seed_from_sample

DAYS = ("2026-11-23", "2026-11-24", "2026-11-25")


def test_backfill_three_days_with_a_scheduler(
    fresh_db, pg_server, org, salesforce_conn, airflow_metadata, tmp_path, monkeypatch
):
    load(fresh_db, SampleConfig(start=date(2026, 11, 23), days=3, events=3_000, recipients_per_account=40, seed=9))
    seed_from_sample(org, fresh_db)
    monkeypatch.setenv("AIRFLOW_CONN_THRIVE_DB", airflow_conn_for(pg_server, fresh_db))
    with psycopg.connect(pg_server.uri("airflow")) as meta:  # runs before this test's are not its business
        (first_run_row,) = meta.execute("SELECT coalesce(max(id), 0) + 1 FROM dag_run").fetchone()
    started = time.monotonic()
    with standalone(tmp_path / "standalone.log") as (env, _):
        states = backfill(env, DAYS[0], DAYS[-1])
    MEASUREMENTS["backfill of 3 days with `airflow standalone`"] = f"{time.monotonic() - started:.0f} s"
    assert list(states.values()) == ["success"] * 3, (tmp_path / "standalone.log").read_text()[-3000:]

    with psycopg.connect(fresh_db) as conn:
        want = {
            f"{a}:{c}:{e}"
            for a, c, e in conn.execute(
                "SELECT account_id, category, event_id FROM thrive_sample.expected_outcomes WHERE outcome = 'written'"
            )
        }
        windows = conn.execute(
            "SELECT DISTINCT window_start::date::text FROM thrive_sync.sync_runs"
            " WHERE dag_run_id LIKE 'backfill__%' ORDER BY 1"
        ).fetchall()
    # Tasks of the three runs ran side by side; none may have needed Airflow's retry to get there
    # (a retry hides a real fault, such as two tasks deadlocking on shared rows, behind a slow pass).
    with psycopg.connect(pg_server.uri("airflow")) as meta:
        retried = meta.execute(
            "SELECT t.run_id, t.task_id, t.try_number FROM task_instance t"
            " JOIN dag_run r ON r.dag_id = t.dag_id AND r.run_id = t.run_id"
            " WHERE t.dag_id = 'thrive_tracking_sync' AND t.run_id LIKE 'backfill__%%' AND t.try_number > 1"
            " AND r.id >= %s",
            [first_run_row],
        ).fetchall()
    assert retried == []
    keys = [r["Thrive_Event_Id__c"] for r in org_query(org, "SELECT Thrive_Event_Id__c FROM Thrive_Activity__c")]
    assert len(keys) == len(set(keys)) and set(keys) == want  # each day's events exactly once
    assert [w for (w,) in windows] == list(DAYS)


def org_query(org, soql: str) -> list[dict]:
    from simple_salesforce import Salesforce

    sf = Salesforce(session_id=org.token, instance_url=org.url, session=org.session())
    return sf.query_all(soql)["records"]
