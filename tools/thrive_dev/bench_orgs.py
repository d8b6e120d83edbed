"""``make bench``'s contender o: one day spread over four orgs, against the same day in one org.

Both runs go through Airflow's scheduler with the LocalExecutor at parallelism 4 (``airflow
dags test``, which a and c use, runs one task at a time and so cannot show fan-out): the
api-server, scheduler, dag-processor and triggerer of ``make airflow``, started here with their
own folder under ``.local/bench``, and a one-day backfill of the day.

- **o1, one org**: every account on ``salesforce_default`` (the sandbox of ``make up``); the org's
  day splits into shards as ``THRIVE_SYNC_SHARD_ROWS`` says, so it fans out too, into one sandbox.
- **o4, four orgs**: the accounts dealt round-robin over ``salesforce_default`` and three more
  sandboxes started here (``salesforce_org_2`` .. ``_4``), each seeded with the sample's people.

The sample is the bench's own: :data:`ACCOUNTS` accounts (the last three carry the sample's account
gates, so every org gets open accounts), one day of ``rows`` events. The runs use
``lookback_days`` 0 and ``retry_days`` 0 on an emptied ledger and emptied orgs: each inserts the
day from scratch. Seconds are Airflow's own task records, first extract's start to the report's
end. Where the time goes is measured too: the machine's busy CPU seconds over the run (of
``cores`` x wall), and of them the sandboxes' and PostgreSQL's.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from datetime import time as day_time
from pathlib import Path
from typing import Any

import psutil
import psycopg

from thrive_dev import airflow_ui, sample_data, sandbox, services

DAG_ID = "thrive_tracking_sync"
ORGS = 4
PARALLELISM = 4
ACCOUNTS = 11  # 8 open accounts, two per org, and the sample's three gated ones
DEFAULT_CONN = "salesforce_default"
RUN_CONF = {"delay_minutes": 0, "lookback_days": 0, "retry_days": 0}
COUNT_SOQL = "SELECT COUNT() FROM Thrive_Activity__c"


def load_sample(uri: str, day: date, rows: int) -> int:
    """The bench's day: ``rows`` events over :data:`ACCOUNTS` accounts; the events generated."""
    recipients = max(500, rows * 4 // (200 * ACCOUNTS))  # as many people in all as a's sample has
    config = sample_data.SampleConfig(start=day, days=1, events=rows, accounts=ACCOUNTS,
                                      recipients_per_account=recipients)  # fmt: skip
    stats = sample_data.load(uri, config)
    return sum(stats.rows[f"thrive.{t}"] for t in sample_data.SOURCE_TABLE.values())


@contextmanager
def extra_orgs(work_dir: Path, count: int) -> Iterator[list[tuple[str, sandbox.SandboxInfo]]]:
    """``count`` more sandboxes, each a separate org: ``(connection id, sandbox)``; stopped after."""
    roots = [work_dir / f"sf-org-{n}" for n in range(2, count + 2)]
    try:
        yield [(f"salesforce_org_{n}", sandbox.start(root)) for n, root in enumerate(roots, start=2)]
    finally:
        for root in roots:
            sandbox.stop(root)


def deal_accounts(uri: str, conn_ids: list[str]) -> dict[str, str]:
    """Point the accounts at ``conn_ids`` round-robin (in account order): ``{account: connection}``."""
    with psycopg.connect(uri) as conn:
        accounts = [row[0] for row in conn.execute("SELECT account_id FROM thrive.accounts ORDER BY account_id")]
        dealt = {account: conn_ids[n % len(conn_ids)] for n, account in enumerate(accounts)}
        for account, conn_id in dealt.items():
            conn.execute("UPDATE thrive.accounts SET salesforce_conn_id = %s WHERE account_id = %s",
                         [conn_id, account])  # fmt: skip
        # An empty ledger, and no shard counts remembered from the other contender's run of the day.
        conn.execute("TRUNCATE thrive_sync.event_ledger, thrive_sync.run_parts")
    return dealt


def fresh_orgs(uri: str, orgs: list[tuple[str, sandbox.SandboxInfo]]) -> None:
    """Each org emptied (records, counters, jobs, limits) and seeded with the sample's people."""
    for _, info in orgs:
        info.admin("POST", "reset")
        sandbox.seed_from_sample(info, uri)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def scheduler(env: dict[str, str], home: Path) -> Iterator[dict[str, str]]:
    """Airflow's four processes (``make airflow``'s) under the LocalExecutor at :data:`PARALLELISM`,
    the DAG unpaused for the block (and paused again after if it was)."""
    for name in airflow_ui.PROCESSES:  # a second scheduler on the same metadata would take our runs
        pid_file = services.AIRFLOW_HOME / f"{name}.pid"
        if pid_file.exists() and psutil.pid_exists(int(pid_file.read_text())):
            raise services.ServiceError("`make airflow` is running: stop it (make down) before make bench")
    run_env = {
        **env,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # no scheduled run races the bench's own
    }
    ui = airflow_ui.start(run_env, home, port=_free_port())
    run_env = airflow_ui.ui_env(run_env, home, int(ui.url.rsplit(":", 1)[1]))
    try:
        paused = _wait_serialized(env, timeout=180)
        _airflow(run_env, "dags", "unpause", DAG_ID)
        yield run_env
        if paused:
            _airflow(run_env, "dags", "pause", DAG_ID)
    finally:
        airflow_ui.stop(home)


def _meta(env: dict[str, str]) -> psycopg.Connection:
    """Airflow's metadata database (its SQLAlchemy URL minus the driver)."""
    return psycopg.connect(
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg://", "postgresql://", 1)
    )


def _wait_serialized(env: dict[str, str], timeout: float) -> bool:
    """Wait for the DAG in the metadata database; whether it is paused."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _meta(env) as conn:
            row = conn.execute(
                "SELECT d.is_paused FROM dag d JOIN serialized_dag s USING (dag_id) WHERE d.dag_id = %s", [DAG_ID]
            ).fetchone()
        if row:
            return bool(row[0])
        time.sleep(1)
    raise services.ServiceError(f"the dag-processor did not serialize {DAG_ID} in {timeout:.0f} s")


def _airflow(env: dict[str, str], *args: str) -> str:
    airflow = str(Path(sys.executable).parent / "airflow")
    result = subprocess.run([airflow, *args], env=env, capture_output=True, text=True, timeout=300)
    if result.returncode:
        raise services.ServiceError(f"airflow {' '.join(args[:2])} failed: {(result.stderr or result.stdout)[-800:]}")
    return result.stdout


# --- one run of the day, measured ---------------------------------------------------------------
def cpu_seconds(pids: list[int]) -> float:
    """CPU seconds of these processes and of the children they have reaped (PostgreSQL's backends)."""
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def machine_busy_seconds() -> float:
    """The machine's CPU seconds not idle, all cores (``/proc/stat``)."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def backfill_and_wait(env: dict[str, str], day: date, timeout: float) -> str:
    """A one-day backfill of ``day`` (any earlier run of that logical date removed first); its run id.

    A backfill, not ``dags trigger``: a manual run's data interval comes from its run_after (now),
    whatever logical date it is given, so it would sync yesterday."""
    logical = datetime.combine(day, day_time(), tzinfo=UTC)
    with _meta(env) as conn:
        conn.execute("DELETE FROM dag_run WHERE dag_id = %s AND logical_date = %s", [DAG_ID, logical])
    _airflow(env, "backfill", "create", "--dag-id", DAG_ID, "--from-date", day.isoformat(), "--to-date",
             day.isoformat(), "--reprocess-behavior", "completed", "--dag-run-conf", json.dumps(RUN_CONF))  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _meta(env) as conn:
            run = conn.execute(
                "SELECT r.run_id, r.state, b.completed_at FROM dag_run r JOIN backfill b ON b.id = r.backfill_id"
                " WHERE r.dag_id = %s AND r.logical_date = %s",
                [DAG_ID, logical],
            ).fetchone()
        if run and run[1] in ("success", "failed") and run[2] is not None:  # the next backfill may start
            return run[0]
        time.sleep(1)
    raise services.ServiceError(f"the backfill of {day} did not finish in {timeout:.0f} s")


def task_figures(env: dict[str, str], run_id: str) -> dict[str, Any]:
    """From Airflow's records: the span (first extract's start to the last end), the run's state, the
    sync instances and how many of them ran at once at most."""
    with _meta(env) as conn:
        state = conn.execute("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", [DAG_ID, run_id])
        rows = conn.execute(
            "SELECT task_id, map_index, start_date, end_date FROM task_instance WHERE dag_id = %s AND run_id = %s"
            " AND start_date IS NOT NULL AND end_date IS NOT NULL",
            [DAG_ID, run_id],
        ).fetchall()
        run_state = state.fetchone()[0]
    start = min(r[2] for r in [r for r in rows if r[0].startswith("extract_")] or rows)
    sync = [r for r in rows if r[0].startswith("validate_and_map_")]
    edges = sorted([(r[2], 1) for r in sync] + [(r[3], -1) for r in sync])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return {
        "state": run_state,
        "seconds": (max(r[3] for r in rows) - start).total_seconds(),
        "sync_instances": len(sync),
        "sync_instance_seconds": round(sum((r[3] - r[2]).total_seconds() for r in sync), 2),
        "sync_instances_at_once": peak,
    }


def org_counts(orgs: list[tuple[str, sandbox.SandboxInfo]]) -> dict[str, dict[str, int]]:
    """Each org's Thrive_Activity__c records and the API calls it has served."""
    counts = {}
    for conn_id, info in orgs:
        response = info.session().get(f"{info.url}/services/data/v62.0/query", params={"q": COUNT_SOQL}, timeout=60)
        response.raise_for_status()
        stats = info.admin("GET", "stats").json()
        counts[conn_id] = {"records": int(response.json()["totalSize"]), "api_calls": int(stats.get("api_calls", 0))}
    return counts


def measured_run(env: dict[str, str], orgs: list[tuple[str, sandbox.SandboxInfo]], day: date,
                 timeout: float) -> dict[str, Any]:  # fmt: skip
    """One contender's run of ``day`` over ``orgs`` (emptied first): its figures, ``error`` when it
    did not succeed or the orgs hold other than what the run says it wrote."""
    uri = env["THRIVE_DB_URI"]
    dealt = deal_accounts(uri, [conn_id for conn_id, _ in orgs])
    fresh_orgs(uri, orgs)
    with psycopg.connect(uri) as conn:
        postmaster = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    postgres = [psutil.Process(postmaster).ppid()]
    sandboxes = [info.pid for _, info in orgs]
    before = (machine_busy_seconds(), cpu_seconds(sandboxes), cpu_seconds(postgres))
    run_id = backfill_and_wait(env, day, timeout)
    after = (machine_busy_seconds(), cpu_seconds(sandboxes), cpu_seconds(postgres))
    busy, sandbox_cpu, postgres_cpu = (now - then for now, then in zip(after, before, strict=True))
    figures = task_figures(env, run_id)
    with psycopg.connect(uri) as conn:
        written = conn.execute("SELECT coalesce(sum(written), 0) FROM thrive_sync.sync_runs WHERE dag_run_id = %s",
                               [run_id]).fetchone()[0]  # fmt: skip
    per_org = org_counts(orgs)
    in_orgs = sum(c["records"] for c in per_org.values())
    figures.update(
        run_id=run_id, written=int(written), orgs=per_org, accounts=dealt,
        api_calls=sum(c["api_calls"] for c in per_org.values()),
        cpu={"machine_busy": round(busy, 1), "of_cores_x_wall": round((os.cpu_count() or 1) * figures["seconds"], 1),
             "sandboxes": round(sandbox_cpu, 1), "postgresql": round(postgres_cpu, 1)},
    )  # fmt: skip
    figures["error"] = (
        f"the run ended {figures['state']}" if figures["state"] != "success"
        else "the run synced nothing: no sync instance ran" if not figures["sync_instances"]
        else f"the run reports {written:,} written but the orgs hold {in_orgs:,} records" if in_orgs != written
        else None
    )  # fmt: skip
    return figures


def run(env: dict[str, str], info: sandbox.SandboxInfo, day: date, rows: int, work_dir: Path,
        timeout: float) -> dict[str, dict[str, Any]]:  # fmt: skip
    """o1 and o4 on the bench's own sample of ``day``: ``{"o1": figures, "o4": figures}``."""
    events = load_sample(env["THRIVE_DB_URI"], day, rows)
    print(f"bench: o: {events:,} events on {day} over {ACCOUNTS} accounts generated", flush=True)
    results = {}
    with extra_orgs(work_dir, ORGS - 1) as extra:
        orgs = [(DEFAULT_CONN, info), *extra]
        conns = {f"AIRFLOW_CONN_{conn_id.upper()}": org.salesforce_conn() for conn_id, org in extra}
        with scheduler({**env, **conns}, work_dir / "airflow-orgs") as run_env:
            for key, count in (("o1", 1), ("o4", ORGS)):
                print(f"bench: {key} ({count} org{'s' if count > 1 else ''}, LocalExecutor, parallelism "
                      f"{PARALLELISM}) running ...", flush=True)  # fmt: skip
                results[key] = {**measured_run(run_env, orgs[:count], day, timeout), "events": events}
    return results
