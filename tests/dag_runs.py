"""Running the DAG in tests and reading back what a run left: shared by the reliability tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg

AIRFLOW = str(Path(sys.executable).parent / "airflow")
DAY = date(2026, 11, 26)  # the generated day the reliability tests run
RUN_DATE = "2026-11-27"  # `dags test D` processes the day before D
TA = "Thrive_Activity__c"
FIELDS = (
    "Thrive_Event_Id__c",
    "Activity_Group__c",
    "Activity__c",
    "Activity_Date__c",
    "Contact__c",
    "Lead__c",
    "Category__c",
    "Thrive_Account_Id__c",
    "Message_Id__c",
    "Message_Name__c",
    "Detail__c",
)


@dataclass
class Snapshot:
    """What a run left behind: Salesforce's records, and the run's counts and tracking log."""

    records: dict[str, tuple]
    record_count: int
    counts: dict[tuple[str, str], tuple[int, int, int, int]]
    log: set[tuple[str, str, int, str]]


def salesforce_conn_json(org, **extra: object) -> str:
    """The sandbox connection with a test-sized retry budget (production keeps the defaults)."""
    conn = json.loads(org.salesforce_conn())
    conn["extra"].update(
        http_backoff=0.01, retry_initial_seconds=0.2, retry_max_seconds=1.0, retry_budget_seconds=60, **extra
    )
    return json.dumps(conn)


def dags_test(conf: dict | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    args = [AIRFLOW, "dags", "test", "thrive_tracking_sync", RUN_DATE, "-c", json.dumps(conf or {"delay_minutes": 0})]
    return subprocess.run(args, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=900)


def latest_run_id(db: str) -> str:
    with psycopg.connect(db) as conn:
        return conn.execute(
            "SELECT dag_run_id FROM thrive_sync.sync_runs GROUP BY 1 ORDER BY max(finished_at) DESC LIMIT 1"
        ).fetchone()[0]


def snapshot(db: str, sf, run_id: str) -> Snapshot:
    rows = sf.query_all(f"SELECT {', '.join(FIELDS)} FROM {TA}")["records"]
    records = {r["Thrive_Event_Id__c"]: tuple(r[f] for f in FIELDS) for r in rows}
    with psycopg.connect(db) as conn:
        counts = {
            (a, c): (x, w, f, s)
            for a, c, x, w, f, s in conn.execute(
                "SELECT account_id, category, extracted, written, failed, skipped FROM thrive_sync.sync_runs"
                " WHERE dag_run_id = %s",
                [run_id],
            )
        }
        log = set(
            conn.execute(
                "SELECT account_id, category, event_id, reason_code FROM thrive_sync.tracking_log"
                " WHERE dag_run_id = %s",
                [run_id],
            ).fetchall()
        )
    return Snapshot(records, len(rows), counts, log)


def task_states(pg_server, run_id: str) -> dict[str, tuple[int, str]]:
    """``{task_id: (try_number, state)}`` of one run, from Airflow's metadata database."""
    with psycopg.connect(pg_server.uri("airflow")) as meta:
        return {
            task: (tries, state)
            for task, tries, state in meta.execute(
                "SELECT task_id, try_number, state FROM task_instance WHERE dag_id = 'thrive_tracking_sync'"
                " AND run_id = %s",
                [run_id],
            )
        }


def failure_message(output: str) -> str:
    """The first line naming why a task failed, as a user would look for it in the output."""
    for marker in ("AirflowFailException: ", "ConservationError: ", "SalesforceUnavailable: ", "Error: "):
        for line in output.splitlines():
            if marker in line:
                return line[line.index(marker) :][:200]
    return "(no error line found)"


def airflow_run_id(pg_server) -> str:
    with psycopg.connect(pg_server.uri("airflow")) as meta:
        return meta.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = 'thrive_tracking_sync' ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
