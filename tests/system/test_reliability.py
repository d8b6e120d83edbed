"""Reliability: the fault matrix and the kill test, against the running sandbox and PostgreSQL.

Every case runs the real DAG (`airflow dags test`, or a scheduler for the kill) on one generated day
under one fault, then reruns it without the fault, and compares with a fault-free run of the same
day: the same records with the same field values in Salesforce, no duplicates, counts that add up,
and no tracking-log row that the fault-free run does not have. What each case measured is recorded
before it is asserted (``tests/system/reliability_report.py``); ``make reliability`` renders it into
``docs/reliability.md``, failing cases included.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg
import pytest

from conftest import NO_FAULTS
from dag_runs import (
    DAY,
    Snapshot,
    airflow_run_id,
    backfill,
    dags_test,
    failure_message,
    salesforce_conn_json,
    snapshot,
    standalone,
    task_states,
)
from reliability_report import FAULTS as RESULTS
from reliability_report import CaseResult
from thrive_dev.sandbox import seed_from_sample
from thrive_sync.hooks.thrive_store import STREAM_APPLICATION_NAME

_REFERENCE: dict[str, Snapshot] = {}


# --- helpers --------------------------------------------------------------------------------------
def fresh_org(org, db: str) -> None:
    org.admin("POST", "reset")
    org.admin("PUT", "faults", json=NO_FAULTS)
    seed_from_sample(org, db)


def reference(db: str, org, sf, pg_server) -> Snapshot:
    """The fault-free run of the day (once per session); the org is emptied and seeded again after."""
    if "clean" not in _REFERENCE:
        result = dags_test()
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        _REFERENCE["clean"] = snapshot(db, sf, airflow_run_id(pg_server))
        fresh_org(org, db)
    return _REFERENCE["clean"]


def conservation_holds(snap: Snapshot) -> bool:
    return bool(snap.counts) and all(x == w + f + s for x, w, f, s in snap.counts.values())


class Watcher(threading.Thread):
    """Runs ``action`` once ``condition`` holds (polled every 50 ms), until :meth:`stop`.

    ``stop_with_run``: a fault must hit the run it was meant for, never the fault-free rerun; a
    recovery (the sandbox coming back) still happens after the run ended.
    """

    def __init__(self, condition: Callable[[], bool], action: Callable[[], None], timeout: float,
                 stop_with_run: bool) -> None:  # fmt: skip
        super().__init__(daemon=True)
        self.condition, self.action, self.timeout = condition, action, timeout
        self.stop_with_run = stop_with_run
        self.stopped = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline and not self.stopped.is_set():
            if self.condition():
                self.action()
                return
            time.sleep(0.05)

    def stop(self) -> None:
        """The watched run has ended."""
        if self.stop_with_run:
            self.stopped.set()
        self.join(timeout=5)


def watch(
    condition: Callable[[], bool], action: Callable[[], None], timeout: float = 120, stop_with_run: bool = True
) -> Watcher:
    """Run ``action`` once ``condition`` holds, in the background."""
    watcher = Watcher(condition, action, timeout, stop_with_run)
    watcher.start()
    return watcher


def run_case(
    case: str,
    fault: str,
    *,
    db: str,
    org,
    sf,
    pg_server,
    faults: dict | None = None,
    during: Callable[[], Watcher] | None = None,
    env: dict[str, str] | None = None,
) -> CaseResult:
    """First run under the fault, then a fault-free rerun; both compared with the fault-free run."""
    clean = reference(db, org, sf, pg_server)
    if faults:
        org.admin("PUT", "faults", json={**NO_FAULTS, **faults})
    watcher = during() if during else None
    first = dags_test(env=env)
    if watcher:
        watcher.stop()
    org.admin("PUT", "faults", json=NO_FAULTS)
    # Each run is found by Airflow's run id: a run that failed before any count was saved has no
    # sync_runs row, and the newest one there would be an earlier run's.
    first_id = airflow_run_id(pg_server)
    after_first = snapshot(db, sf, first_id)
    states = task_states(pg_server, first_id)
    retries = sum(tries - 1 for tries, _ in states.values() if tries > 1)
    exhausted = sum(1 for *_, reason in after_first.log if reason == "RETRIES_EXHAUSTED")
    notes: list[str] = []
    # Everything is measured and recorded first, then asserted: a failing case still leaves its row.
    # A first run that claims success is complete; one that is not complete must have said so.
    first_incomplete = first.returncode == 0 and not exhausted and after_first.records != clean.records
    if first.returncode == 0:
        first_run = "succeeded" + (f", {exhausted} rows RETRIES_EXHAUSTED" if exhausted else ", fully written")
        if first_incomplete:
            first_run = "succeeded, but NOT fully written: the org differs from the fault-free run"
    else:
        failed = sorted(task for task, (_, state) in states.items() if state == "failed")
        first_run = f"failed loudly: {', '.join(failed)}" if failed else "failed, but no task is marked failed"
        notes.append(f"first run: `{failure_message(first.stdout + first.stderr)}`")
    # Whatever the first run logged is either what the clean run logs or an honest RETRIES_EXHAUSTED.
    spurious_first = {row for row in after_first.log - clean.log if row[3] != "RETRIES_EXHAUSTED"}

    rerun = dags_test()
    final = snapshot(db, sf, airflow_run_id(pg_server))
    converged = "converged" if final.records == clean.records else "DIFFERENT"
    if rerun.returncode != 0:
        notes.append(f"rerun: `{failure_message(rerun.stdout + rerun.stderr)}`")
    if final.counts != clean.counts:
        notes.append("the rerun's counts differ from the fault-free run's")
    result = CaseResult(
        case=case,
        fault=fault,
        first_run=first_run,
        airflow_retries=retries,
        retries_exhausted=exhausted,
        rerun=converged if rerun.returncode == 0 else f"FAILED ({converged})",
        same_state=final.records == clean.records and final.record_count == len(final.records),
        conservation=conservation_holds(final) and (not after_first.counts or conservation_holds(after_first)),
        spurious_log_rows=len(spurious_first) + len(final.log ^ clean.log),
        notes=notes,
    )
    RESULTS[case] = result
    assert first.returncode == 0 or "failed loudly" in first_run, "a failed run must have a failed task"
    assert not first_incomplete, f"{case}: a successful run left a different org"
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-3000:]
    assert result.same_state, f"{case}: Salesforce differs from the fault-free run after the rerun"
    assert final.counts == clean.counts
    assert result.conservation
    assert result.spurious_log_rows == 0, sorted(spurious_first | (final.log ^ clean.log))[:10]
    return result


# --- the matrix -----------------------------------------------------------------------------------
MATRIX = {
    "503": ("20% of API requests answered 503", {"error_503_share": 0.2}),
    "403 bursts": (
        "403 REQUEST_LIMIT_EXCEEDED, concurrency (ConcurrentPerOrgLongTxn), in bursts of 6 (3% of requests start one)",
        {"limit_403_share": 0.03, "limit_403_burst": 6},
    ),
    "row locks": ("10% of records answered UNABLE_TO_LOCK_ROW", {"lock_row_share": 0.1}),
    "locks that never clear": (
        "every record answered UNABLE_TO_LOCK_ROW (the retry budget runs out)",
        {"lock_row_share": 1.0},
    ),
}


@pytest.mark.parametrize("case", list(MATRIX))
def test_fault(case, wired, org, sf, pg_server):
    fault, faults = MATRIX[case]
    result = run_case(case, fault, db=wired, org=org, sf=sf, pg_server=pg_server, faults=faults)
    if case == "locks that never clear":
        assert result.retries_exhausted > 0 and result.first_run.startswith("failed loudly")


def test_fault_expired_session_mid_run(wired, org, sf, pg_server):
    def during() -> threading.Thread:
        calls = lambda: org.admin("GET", "stats").json().get("api_calls", 0)  # noqa: E731
        start = calls()
        return watch(
            lambda: calls() >= start + 15,
            lambda: org.admin("PUT", "faults", json={**NO_FAULTS, "invalid_session_requests": 3}),
        )

    run_case(
        "401 mid-run",
        "3 requests answered 401 INVALID_SESSION_ID after the run's 15th API call",
        db=wired,
        org=org,
        sf=sf,
        pg_server=pg_server,
        during=during,
    )


def test_fault_sandbox_down_then_back(wired, org, sf, pg_server, tmp_root):
    from thrive_dev import sandbox as sf_sandbox

    reference(wired, org, sf, pg_server)
    sf_sandbox.stop(tmp_root / "sf")

    def during() -> threading.Thread:
        started = time.monotonic()
        return watch(
            lambda: time.monotonic() > started + 8, lambda: sf_sandbox.start(tmp_root / "sf"), stop_with_run=False
        )

    try:
        run_case(
            "sandbox down",
            "the sandbox stopped when the run starts, started again 8 s later",
            db=wired,
            org=org,
            sf=sf,
            pg_server=pg_server,
            during=during,
        )
    finally:
        sf_sandbox.start(tmp_root / "sf")


def test_fault_postgresql_connection_dropped(wired, org, sf, pg_server):
    database = psycopg.conninfo.conninfo_to_dict(wired)["dbname"]
    terminated: list[int] = []

    def streaming_backend() -> bool:
        with pg_server.connect(autocommit=True) as conn:
            row = conn.execute(
                # A validate task's reading connection (it names itself when it opens) while the task
                # checks its org, before the connection reads the staged rows: between statements it is
                # idle outside any transaction, and the slow org keeps that window open for 400 ms.
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s"
                " AND query ~ 'set_config' AND pid <> pg_backend_pid() LIMIT 1",
                [database, STREAM_APPLICATION_NAME],
            ).fetchone()
            if row:
                conn.execute("SELECT pg_terminate_backend(%s)", [row[0]])
                terminated.append(row[0])
        return bool(row)

    result = run_case(
        "PostgreSQL dropped",
        "the validate task's reading PostgreSQL connection terminated before it read a row (org answers 200 ms late)",
        db=wired,
        org=org,
        sf=sf,
        pg_server=pg_server,
        faults={"latency_ms": 200},
        during=lambda: watch(streaming_backend, lambda: None),
    )
    assert terminated, "no streaming connection was seen to terminate"
    assert result.airflow_retries >= 1


def test_fault_slow_sandbox(wired, org, sf, pg_server, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", salesforce_conn_json(org, timeout=1.0))
    run_case(
        "slow sandbox",
        "15% of requests take 1.5 s, past the connection's 1 s request timeout",
        db=wired,
        org=org,
        sf=sf,
        pg_server=pg_server,
        faults={"latency_ms": 1500, "latency_share": 0.15},
    )


def test_kill_mid_bulk_upload_then_airflow_retries(wired, org, sf, pg_server, tmp_path):
    """SIGKILL the task process while it uploads a Bulk job; Airflow's own retry finishes the day.

    A scheduler (``airflow standalone``, LocalExecutor) runs a one-day backfill, so the killed
    task is retried by Airflow in the same run, as in production. Requests are slowed to 400 ms
    so that the kill lands while the upload request is in flight.
    """
    import psutil

    clean = reference(wired, org, sf, pg_server)
    sandbox_port = int(org.url.rsplit(":", 1)[1])
    killed: list[dict] = []

    def uploading_task() -> psutil.Process | None:
        """The process running ``validate_and_map_message_activity`` (the category big enough for Bulk)."""
        with psycopg.connect(pg_server.uri("airflow")) as meta:
            row = meta.execute(
                "SELECT pid FROM task_instance WHERE dag_id = 'thrive_tracking_sync' AND state = 'running'"
                " AND task_id = 'validate_and_map_message_activity' AND pid IS NOT NULL"
            ).fetchone()
        if row is None:
            return None
        proc = psutil.Process(row[0])
        talking = any(c.raddr and c.raddr.port == sandbox_port for c in proc.net_connections(kind="tcp"))
        return proc if talking else None

    def kill() -> None:
        stats = org.admin("GET", "stats").json()
        proc = uploading_task()
        assert proc is not None, "no process was talking to the sandbox"
        proc.send_signal(9)
        killed.append({"pid": proc.pid, "jobs": stats.get("bulk2.jobs", 0), "uploads": stats.get(UPLOADS, 0)})
        org.admin("PUT", "faults", json=NO_FAULTS)

    try:
        with standalone(tmp_path / "standalone.log") as (env, _):
            org.admin("PUT", "faults", json={**NO_FAULTS, "latency_ms": 400})
            watcher = watch(
                lambda: org.admin("GET", "stats").json().get(UPLOADS, 0) >= 1 and uploading_task() is not None,
                kill,
                timeout=300,
            )
            states = backfill(env, DAY.isoformat(), DAY.isoformat())
            watcher.join(timeout=1)
    finally:
        org.admin("PUT", "faults", json=NO_FAULTS)
    run_state = states.get(DAY.isoformat(), "missing")
    run_id = airflow_run_id(pg_server)
    tries = task_states(pg_server, run_id)
    retried = sorted(task for task, (n, _) in tries.items() if n > 1)
    final = snapshot(wired, sf, run_id)
    # Recorded before the asserts: a failing kill test still leaves its row.
    notes = (
        [
            f"killed pid {killed[0]['pid']} after {killed[0]['jobs']} Bulk job(s) created and "
            f"{killed[0]['uploads']} upload(s) begun; the retry (try 2) ran the task again in the same run"
        ]
        if killed
        else ["the watcher never saw an upload to kill: no task was killed"]
    )
    if final.counts != clean.counts:
        notes.append("the run's counts differ from the fault-free run's")
    RESULTS["kill"] = CaseResult(
        case="kill",
        fault="SIGKILL of the task process while its Bulk upload request is in flight (requests slowed to 400 ms)",
        first_run=f"task killed: {', '.join(retried)}"
        if killed
        else f"not killed; retried: {', '.join(retried) or 'none'}",
        airflow_retries=sum(n - 1 for n, _ in tries.values() if n > 1),
        retries_exhausted=sum(1 for *_, reason in final.log if reason == "RETRIES_EXHAUSTED"),
        rerun="Airflow's retry completed the run" if run_state == "success" else f"the run ended {run_state}",
        same_state=final.records == clean.records and final.record_count == len(final.records),
        conservation=conservation_holds(final),
        spurious_log_rows=len(final.log ^ clean.log),
        notes=notes,
    )
    assert killed, "the watcher never saw an upload to kill"
    assert run_state == "success", (tmp_path / "standalone.log").read_text()[-3000:]
    assert retried == ["validate_and_map_message_activity"]
    assert RESULTS["kill"].same_state and RESULTS["kill"].conservation
    assert final.counts == clean.counts and RESULTS["kill"].spurious_log_rows == 0


UPLOADS = "api_calls.PUT jobs/ingest"
