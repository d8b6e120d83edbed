"""Running the DAG in tests and reading back what a run left: shared by the reliability tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import psycopg

from thrive_dev.airflow_ui import wait_for_api

AIRFLOW = str(Path(sys.executable).parent / "airflow")
DAG_ID = "thrive_tracking_sync"
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
    return with_test_budget(org.salesforce_conn(), **extra)


def with_test_budget(conn_json: str, **extra: object) -> str:
    """A connection (JSON form) with a test-sized retry budget and ``extra`` added to its extras."""
    conn = json.loads(conn_json)
    conn["extra"].update(
        http_backoff=0.01, retry_initial_seconds=0.2, retry_max_seconds=1.0, retry_budget_seconds=60, **extra
    )
    return json.dumps(conn)


def dags_test(
    conf: dict | None = None, env: dict[str, str] | None = None, run_date: str = RUN_DATE, dag_id: str = DAG_ID
) -> subprocess.CompletedProcess:
    """`airflow dags test DAG_ID RUN_DATE -c CONF` as a user runs it (the tests' one way to run a DAG)."""
    args = [AIRFLOW, "dags", "test", dag_id, run_date, "-c", json.dumps(conf or {"delay_minutes": 0})]
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
            (a, c): (x, w, f, s)  # written: sent now, or before with the same content (unchanged)
            for a, c, x, w, f, s in conn.execute(
                "SELECT account_id, category, extracted, written + coalesce(unchanged, 0), failed, skipped"
                " FROM thrive_sync.sync_runs WHERE dag_run_id = %s",
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


def stage(category: str, run_id: str, start: datetime, **params: object) -> list[tuple]:
    """The DAG's extract of ``category`` for the day from ``start``, rendered and run as its task runs it
    (through ``thrive_db``); the per-account counts it staged (``staged_tallies``: events, unchanged,
    late, retried, standing). ``params``: the DAG params it reads."""
    import jinja2
    from airflow.providers.common.sql.hooks.handlers import fetch_all_handler

    from thrive_sync.core.ledger import HEALING_ERROR_CODES, HEALING_REASONS
    from thrive_sync.core.mapping import mapping_digest
    from thrive_sync.hooks.thrive_store import ThriveStoreHook
    from thrive_sync.settings import SQL_DIR, Deployment

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(SQL_DIR), autoescape=False)  # noqa: S701 - SQL
    sql = env.get_template(f"extract/{category}.sql").render()
    values = {"lookback_days": 2, "retry_days": 7, "resend_unchanged": False, "max_attempts": 5, **params}
    values.update(run_id=run_id, window_start=start, window_end=start + timedelta(days=1))
    values.update(mapping_digest=mapping_digest(), healing_reasons=list(HEALING_REASONS))
    values.update(healing_error_codes=list(HEALING_ERROR_CODES), default_conn_id="salesforce_default")
    values.update(shard_rows=Deployment.shard_rows, max_shards=Deployment.max_shards)
    store = ThriveStoreHook()
    store.run(sql, parameters=values, split_statements=True, return_last=True, handler=fetch_all_handler)
    return store.get_records(
        "SELECT account_id, events, unchanged, late, retried, standing FROM thrive_sync.staged_tallies"
        " WHERE dag_run_id = %s AND category = %s ORDER BY account_id",
        parameters=[run_id, category],
    )


def forget_ledger(db: str) -> None:
    """Empty the event ledger (and what retention did, and each org's health): an org emptied or reset
    must not be taken for one holding the day."""
    with psycopg.connect(db) as conn:
        conn.execute("TRUNCATE thrive_sync.event_ledger, thrive_sync.retention_runs, thrive_sync.org_health")


def task_states(pg_server, run_id: str) -> dict[str, tuple[int, str]]:
    """``{task_id: (try_number, state)}`` of one run, from Airflow's metadata database. A task mapped
    into more than one instance (a sync task over several orgs or shards) has one key per instance,
    ``task_id[name]`` (its rendered map index); one of a single instance is keyed by its task id."""
    with psycopg.connect(pg_server.uri("airflow")) as meta:
        rows = meta.execute(
            "SELECT task_id, map_index, rendered_map_index, try_number, state,"
            " count(*) OVER (PARTITION BY task_id) FROM task_instance WHERE dag_id = 'thrive_tracking_sync'"
            " AND run_id = %s",
            [run_id],
        ).fetchall()
    return {
        task if instances == 1 else f"{task}[{name or index}]": (tries, state)
        for task, index, name, tries, state, instances in rows
    }


def failure_message(output: str) -> str:
    """The first line naming why a task failed, as a user would look for it in the output."""
    for marker in (  # the cause first: a failed sync also fails the report (UpstreamFailed)
        "ThresholdBreached: ",
        "DailyLimitReached: ",
        "LoginRefused: ",
        "CredentialsRefused: ",
        "BulkJobRefused: ",
        "BulkJobFailed: ",
        "MappingError: ",
        "ConfigurationError: ",
        "AirflowFailException: ",
        "ConservationError: ",
        "SalesforceUnavailable: ",
        "UpstreamFailed: ",
        "Error: ",
    ):
        for line in output.splitlines():
            if marker in line:
                return line[line.index(marker) :][:200]
    return "(no error line found)"


def airflow_run_id(pg_server, logical_date: str | None = None) -> str:
    """The newest run's id, or that of the run with ``logical_date`` (ISO 8601, with its offset)."""
    with psycopg.connect(pg_server.uri("airflow")) as meta:
        if logical_date is not None:
            return meta.execute(
                "SELECT run_id FROM dag_run WHERE dag_id = 'thrive_tracking_sync' AND logical_date = %s::timestamptz"
                " ORDER BY id DESC LIMIT 1",
                [logical_date],
            ).fetchone()[0]
        return meta.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = 'thrive_tracking_sync' ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]


def forget_run(pg_server, run_id: str) -> None:
    """Delete a run, and its task instances, from Airflow's metadata database (shared by the session)."""
    with psycopg.connect(pg_server.uri("airflow")) as meta:
        meta.execute("DELETE FROM dag_run WHERE dag_id = 'thrive_tracking_sync' AND run_id = %s", [run_id])


def bulk_jobs(sf) -> list[dict]:
    """Every Bulk API 2.0 ingest job the org knows (Get All Jobs, every page), oldest first."""
    jobs: list[dict] = []
    path: str | None = "jobs/ingest"
    while path:
        page = sf.restful(path)
        jobs += page.get("records") or []
        following = page.get("nextRecordsUrl")
        path = following.split(f"/v{sf.sf_version}/", 1)[1] if following and not page.get("done") else None
    return jobs


# --- a scheduler: `airflow standalone` with LocalExecutor -----------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def airflow_cli(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result.stdout


@contextmanager
def standalone(log_path: Path, *, schedule: bool = False) -> Iterator[tuple[dict[str, str], subprocess.Popen]]:
    """`airflow standalone` (LocalExecutor) on free ports with the DAG serialized and unpaused.

    ``schedule``: the scheduler creates the runs schedules ask for. Off, a test's backfill never meets
    a scheduled run of its days; on, assets trigger the DAGs scheduled on them (the same switch)."""
    api_port = free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # it runs `airflow`
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        # No scheduled runs: the latest interval of a test's day would otherwise get a scheduled run
        # racing the test's own backfill for the same logical date. Backfills and triggers still run.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(schedule),
    }
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [AIRFLOW, "standalone"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 180
            while not _serialized(env):  # read from the metadata DB: each `airflow` command costs seconds of CPU
                assert time.monotonic() < deadline, "the DAG processor did not serialize the DAG"
                time.sleep(1)
            # its tasks call the execution API: one queued before it answers fails its try
            assert wait_for_api(f"http://127.0.0.1:{api_port}", 120), "the API server did not start"
            airflow_cli("dags", "unpause", "thrive_tracking_sync", env=env)
            yield env, process
        finally:
            stop_tree(process)


def backfill(env: dict[str, str], first: str, last: str, timeout: float = 600) -> dict[str, str]:
    """Create a backfill of days ``first``..``last`` and wait for its runs: ``{logical day: state}``."""
    forget_days(env, first, last)
    airflow_cli(
        "backfill", "create", "--dag-id", "thrive_tracking_sync", "--from-date", first, "--to-date", last,
        "--reprocess-behavior", "completed", env=env,
    )  # fmt: skip
    return wait_for_backfill(env, first, last, timeout)


def forget_days(env: dict[str, str], first: str, last: str) -> None:
    """Delete the DAG's runs of days ``first``..``last`` that an earlier test left in the session's
    metadata database: a backfill would otherwise clear and rerun them (tries counted on from theirs),
    and a test would depend on which tests ran before it."""
    with _meta(env) as conn:
        conn.execute(
            "DELETE FROM dag_run WHERE dag_id = 'thrive_tracking_sync'"
            " AND (logical_date AT TIME ZONE 'UTC')::date BETWEEN %s AND %s",
            [date.fromisoformat(first), date.fromisoformat(last)],
        )


def wait_for_backfill(env: dict[str, str], first: str, last: str, timeout: float = 600) -> dict[str, str]:
    """Wait until the backfill runs of days ``first``..``last`` have finished and the backfill is
    closed (Airflow allows one open backfill per DAG): ``{logical day: state}``."""
    days = {(date.fromisoformat(first) + timedelta(days=n)).isoformat() for n in range(
        (date.fromisoformat(last) - date.fromisoformat(first)).days + 1)}  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        states = _backfill_states(env)
        if days <= set(states) and all(states[d] in ("success", "failed") for d in days) and not _open_backfills(env):
            return {d: states[d] for d in sorted(days)}
        assert time.monotonic() < deadline, f"backfill runs did not finish: {states}"
        time.sleep(1)


def _meta(env: dict[str, str]) -> psycopg.Connection:
    """The scheduler's metadata database (the tests watch it there: an `airflow` command costs seconds of CPU)."""
    uri = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    return psycopg.connect(uri.replace("postgresql+psycopg://", "postgresql://", 1))


def _serialized(env: dict[str, str]) -> bool:
    with _meta(env) as conn:
        return conn.execute("SELECT 1 FROM serialized_dag WHERE dag_id = 'thrive_tracking_sync'").fetchone() is not None


def _backfill_states(env: dict[str, str]) -> dict[str, str]:
    """``{logical day: state}`` of the DAG's backfill runs."""
    with _meta(env) as conn:
        rows = conn.execute(
            "SELECT to_char(logical_date AT TIME ZONE 'UTC', 'YYYY-MM-DD'), state FROM dag_run"
            " WHERE dag_id = 'thrive_tracking_sync' AND run_type = 'backfill'"
        ).fetchall()
    return dict(rows)


def _open_backfills(env: dict[str, str]) -> int:
    """Backfills the scheduler has not closed yet: Airflow allows one per DAG, so wait for it to close."""
    with _meta(env) as conn:
        return conn.execute(
            "SELECT count(*) FROM backfill WHERE dag_id = 'thrive_tracking_sync' AND completed_at IS NULL"
        ).fetchone()[0]


def stop_tree(process: subprocess.Popen) -> None:
    """Stop `airflow standalone` and every process it started (some start sessions of their own)."""
    import contextlib

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


def forget_imported_settings() -> None:
    """Remove what `make airflow` imports into the metadata DB (airflow_settings.yaml's connections and
    variable), so that later tests see only the connections they set themselves."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    for conn_id in ("thrive_db", "salesforce_default", "smtp_default", "slack_default"):
        subprocess.run([AIRFLOW, "connections", "delete", conn_id], env=env, capture_output=True, timeout=120)
    subprocess.run([AIRFLOW, "variables", "delete", "thrive_sync_alerts"], env=env, capture_output=True, timeout=120)
