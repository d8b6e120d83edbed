"""A backfill with a real scheduler: `airflow standalone` (LocalExecutor) and `airflow backfill create`."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import psycopg

from conftest import MEASUREMENTS, airflow_conn_for
from thrive_dev.sample_data import SampleConfig, load
from thrive_dev.sandbox import seed_from_sample

AIRFLOW = str(Path(sys.executable).parent / "airflow")
DAYS = ("2026-11-23", "2026-11-24", "2026-11-25")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def airflow(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result.stdout


def json_out(text: str) -> list[dict]:
    """The JSON document in a CLI's output (Airflow may print warnings before it)."""
    start = re.search(r"^\[\s*[{\]]", text, re.M)
    return json.loads(text[start.start() :]) if start else []


def test_backfill_three_days_with_a_scheduler(fresh_db, pg_server, org, salesforce_conn, airflow_metadata, tmp_path):
    load(fresh_db, SampleConfig(start=date(2026, 11, 23), days=3, events=3_000, recipients_per_account=40, seed=9))
    seed_from_sample(org, fresh_db)
    api_port = free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # standalone runs `airflow`
        "AIRFLOW_CONN_THRIVE_DB": airflow_conn_for(pg_server, fresh_db),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    }
    log = (tmp_path / "standalone.log").open("w")
    started = time.monotonic()
    scheduler = subprocess.Popen(
        [AIRFLOW, "standalone"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 180
        while "thrive_tracking_sync" not in airflow("dags", "list", "-o", "plain", env=env):
            assert time.monotonic() < deadline, "the DAG processor did not serialize the DAG"
            time.sleep(3)
        airflow("dags", "unpause", "thrive_tracking_sync", env=env)
        airflow(
            "backfill",
            "create",
            "--dag-id",
            "thrive_tracking_sync",
            "--from-date",
            DAYS[0],
            "--to-date",
            DAYS[-1],
            "--reprocess-behavior",
            "completed",
            env=env,
        )
        deadline = time.monotonic() + 600
        while True:
            runs = json_out(airflow("dags", "list-runs", "thrive_tracking_sync", "-o", "json", env=env))
            backfills = {r["logical_date"][:10]: r["state"] for r in runs if r["run_id"].startswith("backfill__")}
            if set(DAYS) <= set(backfills) and all(backfills[d] in ("success", "failed") for d in DAYS):
                break
            assert time.monotonic() < deadline, f"backfill runs did not finish: {backfills}"
            time.sleep(5)
        MEASUREMENTS["backfill of 3 days with `airflow standalone`"] = f"{time.monotonic() - started:.0f} s"
        assert [backfills[d] for d in DAYS] == ["success"] * 3, (tmp_path / "standalone.log").read_text()[-3000:]
    finally:
        stop_tree(scheduler)
        log.close()

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
            "SELECT run_id, task_id, try_number FROM task_instance WHERE dag_id = 'thrive_tracking_sync'"
            " AND run_id LIKE 'backfill__%' AND try_number > 1"
        ).fetchall()
    assert retried == []
    keys = [r["Thrive_Event_Id__c"] for r in org_query(org, "SELECT Thrive_Event_Id__c FROM Thrive_Activity__c")]
    assert len(keys) == len(set(keys)) and set(keys) == want  # each day's events exactly once
    assert [w for (w,) in windows] == list(DAYS)


def stop_tree(process: subprocess.Popen) -> None:
    """Stop `airflow standalone` and every process it started (some start sessions of their own)."""
    import psutil

    family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    for p in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(family, timeout=30)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    process.wait(timeout=10)


def org_query(org, soql: str) -> list[dict]:
    from simple_salesforce import Salesforce

    sf = Salesforce(session_id=org.token, instance_url=org.url, session=org.session())
    return sf.query_all(soql)["records"]
