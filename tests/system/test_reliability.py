"""Reliability: the fault matrix and the kill test, on a slow org, against the running sandbox and PostgreSQL.

Every case runs the real DAG (`airflow dags test`, or a scheduler for the kill) on one generated day
under one fault, on a slow org: Bulk jobs wait in the org's queue and hold its few batch workers for
seconds that stand for an org's minutes, several jobs in flight. Then it reruns the day without the
fault and compares with a fault-free run of the same day: the same records with the same field
values in Salesforce, no duplicates, counts that add up, and no tracking-log row that the fault-free
run does not have. What each case measured is recorded before it is asserted
(``tests/system/reliability_report.py``); ``make reliability`` renders it into
``docs/reliability.md``, failing cases included.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
import pytest

from conftest import NO_FAULTS
from dag_runs import (
    DAG_ID,
    DAY,
    FIELDS,
    RUN_DATE,
    Snapshot,
    airflow_run_id,
    backfill,
    bulk_jobs,
    dags_test,
    failure_message,
    forget_ledger,
    forget_run,
    salesforce_conn_json,
    snapshot,
    standalone,
    task_states,
    with_test_budget,
)
from reliability_report import FAULTS as RESULTS
from reliability_report import SETUP, CaseResult, MatrixSetup
from sf_sandbox.jobs import SLOW_ORG
from thrive_dev.sandbox import seed_from_sample
from thrive_sync.hooks.thrive_store import STREAM_APPLICATION_NAME, WRITE_APPLICATION_NAME

# The deployment every run of this module has: the day's big category (message_activity, about 3,100
# records to write) goes through Bulk API 2.0 in three jobs (300, 1,500 and the rest: a task's first
# job is a fifth of the others), up to three in flight; the small ones (under 300) through Collections.
DEPLOYMENT = {
    "THRIVE_SYNC_BULK_THRESHOLD": "1000",
    "THRIVE_SYNC_BULK_JOB_ROWS": "1500",
    "THRIVE_SYNC_POLL_SECONDS": "0.5",
    "THRIVE_SYNC_JOB_TIMEOUT_SECONDS": "120",
}
BIG = "message_activity"
SLOW = {**NO_FAULTS, **SLOW_ORG}  # the first run of every case meets the slow org
LOGICAL_DATE = f"{RUN_DATE}T00:00:00+00:00"
# Another logical date whose manual run syncs the same day (the last complete day before it).
OTHER_LOGICAL_DATE = f"{RUN_DATE}T01:00:00+00:00"
NEXT_DAY_LOGICAL_DATE = "2026-11-28T00:00:00+00:00"  # syncs the next day, its lookback the day's rows
CATEGORY = FIELDS.index("Category__c")
CREATES = "api_calls.POST jobs/ingest"
UPLOADS = "api_calls.PUT jobs/ingest"

_REFERENCE: dict[str, Snapshot] = {}


@pytest.fixture(autouse=True)
def deployment(monkeypatch) -> None:
    for name, value in DEPLOYMENT.items():
        monkeypatch.setenv(name, value)


# --- helpers --------------------------------------------------------------------------------------
def fresh_org(org, db: str) -> None:
    org.admin("POST", "reset")
    org.admin("PUT", "faults", json=NO_FAULTS)
    seed_from_sample(org, db)
    forget_ledger(db)


def counters(org) -> dict[str, int]:
    return org.admin("GET", "stats").json()


def reference(db: str, org, sf, pg_server) -> Snapshot:
    """The fault-free run of the day (once per session, with the sandbox's own connection and pace);
    the org is emptied and seeded again after."""
    if "clean" not in _REFERENCE:
        org.admin("PUT", "faults", json=NO_FAULTS)
        result = dags_test(env={"AIRFLOW_CONN_SALESFORCE_DEFAULT": salesforce_conn_json(org)})
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        clean = snapshot(db, sf, airflow_run_id(pg_server))
        jobs = bulk_jobs(sf)
        SETUP["matrix"] = MatrixSetup(
            queue_seconds=SLOW_ORG["queue_seconds"],
            batch_seconds=SLOW_ORG["batch_seconds"],
            batch_workers=SLOW_ORG["batch_workers"],
            bulk_threshold=int(DEPLOYMENT["THRIVE_SYNC_BULK_THRESHOLD"]),
            bulk_job_rows=int(DEPLOYMENT["THRIVE_SYNC_BULK_JOB_ROWS"]),
            poll_seconds=float(DEPLOYMENT["THRIVE_SYNC_POLL_SECONDS"]),
            job_timeout_seconds=float(DEPLOYMENT["THRIVE_SYNC_JOB_TIMEOUT_SECONDS"]),
            big_category=BIG,
            big_records=sum(int(job["numberRecordsProcessed"]) for job in jobs),
            big_jobs=len(jobs),
        )
        # THRIVE_SYNC_BULK_JOB_ROWS reached the writer (the DAG file passes it): the big category took 3+ jobs.
        assert len(jobs) >= 3, f"{len(jobs)} Bulk job(s) for {BIG}: THRIVE_SYNC_BULK_JOB_ROWS did not reach the writer"
        _REFERENCE["clean"] = clean
        fresh_org(org, db)
    return _REFERENCE["clean"]


def conservation_holds(snap: Snapshot) -> bool:
    return bool(snap.counts) and all(x == w + f + s for x, w, f, s in snap.counts.values())


def only(snap: Snapshot, categories: list[str] | None) -> Snapshot:
    """What ``snap`` holds of ``categories`` (all of it for ``None``)."""
    if categories is None:
        return snap
    records = {k: v for k, v in snap.records.items() if v[CATEGORY] in categories}
    counts = {k: v for k, v in snap.counts.items() if k[1] in categories}
    return Snapshot(records, len(records), counts, {row for row in snap.log if row[1] in categories})


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


@dataclass
class Case:
    """One row of the matrix: what the first run meets, and what a user does before running the day again."""

    name: str
    fault: str
    faults: dict = field(default_factory=dict)  # sandbox knobs of the first run, over the slow org
    prepare: Callable[[], None] | None = None  # just before the first run (after its knobs are set)
    during: Callable[[], Watcher] | None = None  # a fault that comes mid-run
    categories: list[str] | None = None  # the first run's categories (None: the whole day)
    alongside: str | None = None  # the logical date of a second run started at the same moment
    recover: Callable[[], None] | None = None  # after the first run: the user's remedy, before the rerun
    evidence: Callable[[dict[str, int]], list[str]] | None = None  # notes from the sandbox's counters
    completes: bool = False  # the writer must carry the first run through: fully written, no Airflow retry
    inspect: Callable[[FirstRun], list[str]] | None = None  # notes from what the first run(s) left


@dataclass
class FirstRun:
    """A first run (or two side by side): each run's process, snapshot and task states."""

    results: list[subprocess.CompletedProcess]
    snaps: list[Snapshot]
    states: list[dict[str, tuple[int, str]]]
    run_ids: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(r.stdout + r.stderr for r in self.results)

    @property
    def succeeded(self) -> bool:
        return all(r.returncode == 0 for r in self.results)

    def failed_tasks(self) -> list[str]:
        return sorted({task for states in self.states for task, (_, state) in states.items() if state == "failed"})

    def retries(self) -> int:
        return sum(tries - 1 for states in self.states for tries, _ in states.values() if tries > 1)

    def exhausted(self, reason_code: str = "RETRIES_EXHAUSTED") -> int:
        return sum(1 for snap in self.snaps for *_, reason in snap.log if reason == reason_code)

    def deferred(self) -> int:
        """Rows the org's allowance left unsent (or unconfirmed): carried to the next run, said in the log."""
        return self.exhausted("DEFERRED_QUOTA")


def run_first(case: Case) -> list[subprocess.CompletedProcess]:
    """The case's first run, or its two runs side by side (two logical dates)."""
    conf = {"delay_minutes": 0, **({"categories": case.categories} if case.categories else {})}
    with ThreadPoolExecutor(len(first_dates(case))) as pool:
        return list(pool.map(lambda date: dags_test(conf, run_date=date), first_dates(case)))


def first_dates(case: Case) -> list[str]:
    return [LOGICAL_DATE, case.alongside] if case.alongside else [LOGICAL_DATE]


def measure_first(results: list[subprocess.CompletedProcess], case: Case, db: str, sf, pg_server) -> FirstRun:
    """What the first run(s) left. A run that failed before any count was saved has no sync_runs row,
    and the newest one there would be an earlier run's: each run is found by Airflow's run id."""
    run_ids = [airflow_run_id(pg_server, date) for date in first_dates(case)]
    snaps, states = [snapshot(db, sf, r) for r in run_ids], [task_states(pg_server, r) for r in run_ids]
    first = FirstRun(results, snaps, states, run_ids)
    for run_id in run_ids[1:]:  # the rerun replaces the first run; the other one would stay for later tests
        forget_run(pg_server, run_id)
    return first


def describe_first(first: FirstRun, expected: Snapshot) -> tuple[str, bool, list[str]]:
    """The first-run cell, whether a run that claims success left the org incomplete, and notes.

    A first run that claims success is complete; one that is not complete must have said so.
    """
    exhausted, deferred = first.exhausted(), first.deferred()
    incomplete = first.succeeded and not exhausted + deferred and first.snaps[0].records != expected.records
    runs = "both runs " if len(first.results) > 1 else ""
    notes: list[str] = []
    if first.succeeded:
        text = f"{runs}succeeded" + (f", {exhausted} rows RETRIES_EXHAUSTED" if exhausted else "")
        text += f", {deferred} rows DEFERRED_QUOTA" if deferred else ("" if exhausted else ", fully written")
        if incomplete:
            text = f"{runs}succeeded, but NOT fully written: the org differs from the fault-free run"
    else:
        failed = first.failed_tasks()
        text = f"failed loudly: {', '.join(failed)}" if failed else "failed, but no task is marked failed"
        notes.append(f"first run: `{failure_message(first.output)}`")
    return text, incomplete, notes


def run_case(case: Case, *, db: str, org, sf, pg_server) -> CaseResult:
    """First run under the fault on the slow org, then a fault-free rerun; both compared with the fault-free run."""
    clean = reference(db, org, sf, pg_server)
    expected = only(clean, case.categories)
    before = counters(org)
    org.admin("PUT", "faults", json={**SLOW, **case.faults})
    if case.prepare:
        case.prepare()
    watcher = case.during() if case.during else None
    try:
        results = run_first(case)
    finally:
        if watcher:
            watcher.stop()
        org.admin("PUT", "faults", json=NO_FAULTS)
        if case.recover:
            case.recover()
    first = measure_first(results, case, db, sf, pg_server)
    after = counters(org)
    first_run, first_incomplete, notes = describe_first(first, expected)
    if case.evidence:
        notes += case.evidence({k: v - before.get(k, 0) for k, v in after.items()})
    if case.inspect:
        notes += case.inspect(first)
    # What the first run wrote is right, whatever it did not get to; what it logged is what the
    # fault-free run logs, or an honest RETRIES_EXHAUSTED.
    wrong = sorted(k for k, v in first.snaps[0].records.items() if clean.records.get(k) != v)
    if wrong:
        notes.append(f"the first run left {len(wrong)} records unlike the fault-free run's, e.g. {wrong[0]}")
    honest = ("RETRIES_EXHAUSTED", "DEFERRED_QUOTA")  # a fault's outcomes: out of retries, or the org's allowance
    spurious_first = {row for snap in first.snaps for row in snap.log - clean.log if row[3] not in honest}

    rerun = dags_test()
    final = snapshot(db, sf, airflow_run_id(pg_server, LOGICAL_DATE))
    converged = "converged" if final.records == clean.records else "DIFFERENT"
    if rerun.returncode != 0:
        notes.append(f"rerun: `{failure_message(rerun.stdout + rerun.stderr)}`")
    if final.counts != clean.counts:
        notes.append("the rerun's counts differ from the fault-free run's")
    result = CaseResult(
        case=case.name,
        fault=case.fault,
        first_run=first_run,
        airflow_retries=first.retries(),
        retries_exhausted=first.exhausted(),
        rerun=converged if rerun.returncode == 0 else f"FAILED ({converged})",
        same_state=final.records == clean.records and final.record_count == len(final.records),
        conservation=conservation_holds(final) and all(not s.counts or conservation_holds(s) for s in first.snaps),
        spurious_log_rows=len(spurious_first) + len(final.log ^ clean.log),
        notes=notes,
    )
    RESULTS[case.name] = result
    assert first.succeeded or "failed loudly" in first_run, "a failed run must have a failed task"
    assert not first_incomplete, f"{case.name}: a successful run left a different org"
    if case.completes:
        assert first.succeeded and not first.exhausted() and not first.retries(), f"{case.name}: {first_run}"
    assert not wrong, f"{case.name}: the first run wrote wrong values: {wrong[:5]}"
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-3000:]
    assert result.same_state, f"{case.name}: Salesforce differs from the fault-free run after the rerun"
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
}


@pytest.mark.parametrize("case", list(MATRIX))
def test_fault(case, wired, org, sf, pg_server):
    fault, faults = MATRIX[case]
    run_case(Case(case, fault, faults), db=wired, org=org, sf=sf, pg_server=pg_server)


def test_fault_locks_that_never_clear(wired, org, sf, pg_server, monkeypatch):
    """Every record is refused; the writer resends each once (``record_retry_rounds`` 1: each round of
    the big category is three Bulk jobs one after another, 13 s on the slow org), then gives up on them."""
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", salesforce_conn_json(org, record_retry_rounds=1))
    case = Case(
        "locks that never clear",
        "every record answered UNABLE_TO_LOCK_ROW; each is resent once (record_retry_rounds 1), then given up",
        {"lock_row_share": 1.0},
    )
    result = run_case(case, db=wired, org=org, sf=sf, pg_server=pg_server)
    assert result.retries_exhausted > 0 and result.first_run.startswith("failed loudly")


def test_fault_expired_session_mid_run(wired, org, sf, pg_server):
    def during() -> Watcher:
        start = counters(org).get("api_calls", 0)
        return watch(
            lambda: counters(org).get("api_calls", 0) >= start + 15,
            lambda: org.admin("PUT", "faults", json={**SLOW, "invalid_session_requests": 3}),
        )

    case = Case(
        "401 mid-run",
        "3 requests answered 401 INVALID_SESSION_ID after the run's 15th API call, on a session that stays "
        "valid (sessions that really end: the password and JWT cases)",
        during=during,
    )
    run_case(case, db=wired, org=org, sf=sf, pg_server=pg_server)


def sessions_expire(shape: str, org, login_conns, monkeypatch, seen: dict[str, int]) -> Case:
    """The run logs in (a password or JWT connection) to sessions that end 2 s after each login."""
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", with_test_budget(login_conns[shape]))
    logins = "logins.soap" if shape == "password" else "logins.oauth"

    def evidence(delta: dict[str, int]) -> list[str]:
        seen.update(refused=delta.get("refused.INVALID_SESSION_ID", 0), logins=delta.get(logins, 0))
        return [f"first run: {seen['refused']} calls refused INVALID_SESSION_ID, {seen['logins']} logins ({logins})"]

    return Case(
        f"sessions expire ({'password' if shape == 'password' else 'JWT'})",
        f"a {'SOAP login with password and security token' if shape == 'password' else 'JWT bearer login'}"
        "; every session ends 2 s after its login, mid-task",
        prepare=lambda: org.admin("PUT", "sessions", json={"lifetime_seconds": 2}),
        recover=lambda: org.admin("PUT", "sessions", json={"lifetime_seconds": 7200}),
        evidence=evidence,
        completes=True,
    )


def test_fault_sessions_expire_password_connection(wired, org, sf, pg_server, login_conns, monkeypatch):
    seen: dict[str, int] = {}
    case = sessions_expire("password", org, login_conns, monkeypatch, seen)
    run_case(case, db=wired, org=org, sf=sf, pg_server=pg_server)
    assert seen["refused"] >= 1 and seen["logins"] >= 2, seen  # sessions ended mid-run, and logins followed


def test_fault_sessions_expire_jwt_connection(wired, org, sf, pg_server, login_conns, monkeypatch):
    seen: dict[str, int] = {}
    case = sessions_expire("jwt", org, login_conns, monkeypatch, seen)
    run_case(case, db=wired, org=org, sf=sf, pg_server=pg_server)
    assert seen["refused"] >= 1 and seen["logins"] >= 2, seen


def test_fault_daily_limit_spent_mid_run(wired, org, sf, pg_server):
    """The day's API allowance runs out during the big category's Bulk jobs: the writing stops, and the
    rows whose outcome the org never confirmed and every row after them are deferred (DEFERRED_QUOTA),
    in that task and every one after it; no task fails and nothing is retried by Airflow. Once the
    allowance is back, the rerun writes them."""
    jobs_left: list[str] = []

    def evidence(delta: dict[str, int]) -> list[str]:
        states = Counter(job["state"] for job in bulk_jobs(sf))
        jobs_left.append(", ".join(f"{n} {state}" for state, n in sorted(states.items())))
        return [
            f"first run: {delta.get(CREATES, 0)} Bulk job(s) created before the allowance ran out; the org's jobs "
            f"right after the run: {jobs_left[0]} (an abort is refused too once the allowance is spent)"
        ]

    case = Case(
        "daily limit spent",
        "DailyApiRequests set to 8 left when the first Bulk job is created; raised again before the rerun",
        during=lambda: watch(
            lambda: counters(org).get(CREATES, 0) >= 1,
            lambda: org.admin("PUT", "limits", json={"DailyApiRequests": {"Max": 15_000, "Remaining": 8}}),
        ),
        recover=lambda: org.admin("PUT", "limits", json={"DailyApiRequests": {"Max": 15_000}}),
        evidence=evidence,
    )
    result = run_case(case, db=wired, org=org, sf=sf, pg_server=pg_server)
    assert result.first_run.startswith("succeeded") and "rows DEFERRED_QUOTA" in result.first_run, result.first_run
    assert result.airflow_retries == 0


def test_fault_quota_below_the_reserve(wired, org, sf, pg_server):
    """The org's API allowance is already below the reserve kept for its other integrations: the run
    sends no record, defers every row it would have sent, and succeeds; the rerun writes them."""
    case = Case(
        "quota below the reserve",
        "DailyApiRequests 2,900 of 15,000 left (the reserve: 20%, 3,000) when the run starts; raised before the rerun",
        prepare=lambda: org.admin("PUT", "limits", json={"DailyApiRequests": {"Max": 15_000, "Remaining": 2_900}}),
        recover=lambda: org.admin("PUT", "limits", json={"DailyApiRequests": {"Max": 15_000}}),
        evidence=lambda delta: [f"first run: {delta.get('records.received', 0)} records sent"],
    )
    result = run_case(case, db=wired, org=org, sf=sf, pg_server=pg_server)
    assert result.first_run.startswith("succeeded") and "rows DEFERRED_QUOTA" in result.first_run, result.first_run
    assert result.notes == ["first run: 0 records sent"]


class OtherIntegration(threading.Thread):
    """Another integration of the org: Bulk API 2.0 updates of every Contact, one job after another
    (a second apart) until the run ends. Each batch holds the Contacts it updates, as an org locks
    records while it writes them; records of ours that look one up wait for it, or fail."""

    def __init__(self, sf) -> None:
        super().__init__(daemon=True)
        self.sf = sf
        self.stopped = threading.Event()
        self.jobs = 0

    def run(self) -> None:
        contacts = [{"Id": r["Id"], "LastName": r["LastName"]}
                    for r in self.sf.query_all("SELECT Id, LastName FROM Contact")["records"]]  # fmt: skip
        while not self.stopped.wait(1.0):
            self.sf.bulk2.Contact.update(records=contacts, wait=0.5)
            self.jobs += 1

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=60)


def test_fault_lock_contention(wired, org, sf, pg_server):
    """Writes hold the records they write and the Contacts and Leads those look up (a Bulk batch for
    its two seconds); a row waits 0.2 s for one another write holds, then fails UNABLE_TO_LOCK_ROW.
    The big category's records go ordered by parent, a parent's records in one job, so its own jobs
    never wait for each other; another integration updating every Contact meanwhile still holds
    them, and the rows that met it are resent: nothing is lost."""
    other: list[OtherIntegration] = []

    def start_other() -> OtherIntegration:
        other.append(OtherIntegration(sf))
        other[0].start()
        return other[0]

    case = Case(
        "lock contention",
        "writes hold what they write and what it looks up (a row waits 0.2 s, then UNABLE_TO_LOCK_ROW); "
        "another integration updates every Contact by Bulk API 2.0 throughout the run",
        {"parent_lock_wait_seconds": 0.2},
        during=start_other,  # type: ignore[arg-type]  (stopped like a Watcher)
        evidence=lambda delta: [
            f"first run: {delta.get('faults.parent_lock', 0)} rows met a record another write held, "
            f"beside {other[0].jobs} Bulk update jobs of every Contact"
        ],
    )
    result = run_case(case, db=wired, org=org, sf=sf, pg_server=pg_server)
    assert result.first_run.startswith("succeeded"), result.first_run
    held = int(result.notes[0].split()[2])
    assert held > 0 and other[0].jobs >= 1, result.notes  # the contention was there, and the run came through


def test_fault_sandbox_down_then_back(wired, org, sf, pg_server, tmp_root):
    from thrive_dev import sandbox as sf_sandbox

    def back() -> None:
        sf_sandbox.start(tmp_root / "sf")
        org.admin("PUT", "faults", json=SLOW)  # a restarted sandbox comes back with its default pace

    def during() -> Watcher:
        started = time.monotonic()
        return watch(lambda: time.monotonic() > started + 8, back, stop_with_run=False)

    case = Case(
        "sandbox down",
        "the sandbox stopped when the run starts, started again 8 s later",
        prepare=lambda: sf_sandbox.stop(tmp_root / "sf"),
        during=during,
    )
    try:
        run_case(case, db=wired, org=org, sf=sf, pg_server=pg_server)
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
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name LIKE %s"
                " AND query ~ 'set_config' AND pid <> pg_backend_pid() LIMIT 1",
                [database, f"{STREAM_APPLICATION_NAME} %"],
            ).fetchone()
            if row:
                conn.execute("SELECT pg_terminate_backend(%s)", [row[0]])
                terminated.append(row[0])
        return bool(row)

    case = Case(
        "PostgreSQL dropped",
        "the validate task's reading PostgreSQL connection terminated before it read a row (org answers 200 ms late)",
        {"latency_ms": 200},
        during=lambda: watch(streaming_backend, lambda: None),
    )
    result = run_case(case, db=wired, org=org, sf=sf, pg_server=pg_server)
    assert terminated, "no streaming connection was seen to terminate"
    assert result.airflow_retries >= 1


def test_fault_slow_sandbox(wired, org, sf, pg_server, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", salesforce_conn_json(org, timeout=1.0))
    case = Case(
        "slow sandbox",
        "15% of requests take 1.5 s, past the connection's 1 s request timeout, before their work",
        {"latency_ms": 1500, "latency_share": 0.15},
    )
    run_case(case, db=wired, org=org, sf=sf, pg_server=pg_server)


def test_fault_late_answers(wired, org, sf, pg_server, monkeypatch):
    """The work is done, the answer comes after the client gave up, and the client sends the request
    again: a second job made (an orphan, to be aborted), an upload or close answered INVALIDJOBSTATE,
    records that exist already. Besides 10% of all requests, the six after the first job's create."""
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", salesforce_conn_json(org, timeout=1.0))
    late = {"latency_after_ms": 1500, "latency_after_share": 0.1}

    left_open: list[int] = []

    def evidence(delta: dict[str, int]) -> list[str]:
        jobs = bulk_jobs(sf)
        empty = sum(1 for job in jobs if job["state"] == "Aborted" and not int(job["numberRecordsProcessed"]))
        left_open.append(sum(1 for job in jobs if job["state"] == "Open"))
        sent = "/".join(str(delta.get(k, 0)) for k in (CREATES, UPLOADS, "api_calls.PATCH jobs/ingest"))
        return [
            f"first run: creates/uploads/closes sent {sent} for the {SETUP['matrix'].big_jobs} jobs the day needs; "
            f"{len(jobs)} jobs made, {empty} of them aborted empty (orphans of resent creates), "
            f"{left_open[0]} left open"
        ]

    case = Case(
        "late answers",
        "10% of requests, and the 6 after the first Bulk job's create, answered 1.5 s late after their work is "
        "done, past the connection's 1 s request timeout",
        late,
        during=lambda: watch(
            lambda: counters(org).get(CREATES, 0) >= 1,
            lambda: org.admin("PUT", "faults", json={**SLOW, **late, "latency_after_requests": 6}),
        ),
        evidence=evidence,
        completes=True,
    )
    run_case(case, db=wired, org=org, sf=sf, pg_server=pg_server)
    assert left_open == [0], "a resent create left an open job behind"


def test_fault_upsert_race(wired, org, sf, pg_server):
    """Two runs at once that insert the same new records: the day's, and the next day's, whose
    lookback stages the day's rows as late (a backfill running days side by side; runs of one day
    take turns, those of neighbouring days do not). The loser of each insert race gets
    DUPLICATE_VALUE, which must end as an update, not a REJECTED row.

    The overlap is driven, not left to the two processes' start-up: a lock on
    ``thrive_sync.bulk_jobs`` holds each run's first Bulk job between its create and its upload
    (where the writer records the job) until both runs wait there; then both uploads go at once.
    """
    lost: list[int] = []
    database = psycopg.conninfo.conninfo_to_dict(wired)["dbname"]
    locker = psycopg.connect(wired)

    def hold_uploads() -> None:
        locker.execute("LOCK TABLE thrive_sync.bulk_jobs IN EXCLUSIVE MODE")  # reads go on; inserts wait

    def release_when_both_wait() -> Watcher:
        give_up = time.monotonic() + 300  # never leave the runs waiting
        return watch(lambda: time.monotonic() > give_up or writers_waiting(pg_server, database, "relation") >= 2,
                     locker.commit, 310)  # fmt: skip

    def evidence(_: dict[str, int]) -> list[str]:
        lost.append(
            sum(
                sf.bulk2.Thrive_Activity__c.get_failed_records(job["id"]).count('"DUPLICATE_VALUE:')
                for job in bulk_jobs(sf)
                if int(job["numberRecordsFailed"])
            )
        )
        return [f"first runs: {lost[0]} records lost an insert race (DUPLICATE_VALUE in the jobs' failedResults)"]

    case = Case(
        "upsert race",
        f"the day's {BIG} and the next day's at once (its lookback takes the day's rows as late), inserting "
        "the same new records, their first uploads released together; 3 s between an upsert's lookup of its "
        "keys and its inserts; 6 batch workers, room for both runs' jobs at once",
        {"upsert_race_ms": 3000, "batch_workers": 6},
        categories=[BIG],
        alongside=NEXT_DAY_LOGICAL_DATE,
        prepare=hold_uploads,
        during=release_when_both_wait,
        recover=locker.commit,
        evidence=evidence,
        completes=True,
    )
    with locker:
        run_case(case, db=wired, org=org, sf=sf, pg_server=pg_server)
    assert lost[0] > 0, "no insert race happened: the two runs' jobs never overlapped"


def test_kill_while_a_bulk_job_is_in_progress_then_airflow_retries(wired, org, sf, pg_server, tmp_path):
    """SIGKILL the task process while one of its Bulk jobs is ``InProgress``; Airflow's retry finishes the day.

    A scheduler (``airflow standalone``, LocalExecutor) runs a one-day backfill on the slow org, so the
    killed task is retried by Airflow in the same run, as in production. The job's state is read from
    the org (Get All Jobs) just before and just after the kill.
    """
    clean = reference(wired, org, sf, pg_server)
    killed: list[dict] = []
    try:
        with standalone(tmp_path / "standalone.log") as (env, _):
            org.admin("PUT", "faults", json=SLOW)
            watcher = watch(
                lambda: in_progress(sf) is not None and writing_task(org, pg_server) is not None,
                lambda: kill(org, sf, pg_server, killed),
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
    forget_run(pg_server, run_id)  # its retried task must not count in a later test of backfills
    final = snapshot(wired, sf, run_id)
    # Recorded before the asserts: a failing kill test still leaves its row.
    note, settled = (
        kill_note(killed[0], sf, wired, run_id) if killed else ("the watcher never saw a job InProgress", False)
    )
    notes = [note]
    if final.counts != clean.counts:
        notes.append("the run's counts differ from the fault-free run's")
    RESULTS["kill"] = CaseResult(
        case="kill",
        fault=f"SIGKILL of validate_and_map_{BIG}'s process while one of its Bulk jobs is InProgress",
        first_run=f"task killed: {', '.join(retried)}" if killed else f"not killed; retried: {retried or 'none'}",
        airflow_retries=sum(n - 1 for n, _ in tries.values() if n > 1),
        retries_exhausted=sum(1 for *_, reason in final.log if reason == "RETRIES_EXHAUSTED"),
        rerun="Airflow's retry completed the run" if run_state == "success" else f"the run ended {run_state}",
        same_state=final.records == clean.records and final.record_count == len(final.records),
        conservation=conservation_holds(final),
        spurious_log_rows=len(final.log ^ clean.log),
        notes=notes,
    )
    assert killed, "the watcher never saw a job InProgress"
    assert killed[0]["before"] == "InProgress", killed[0]
    assert run_state == "success", (tmp_path / "standalone.log").read_text()[-3000:]
    assert retried == [f"validate_and_map_{BIG}"]
    assert settled, note  # no job of the killed try ran beside the retry's
    assert RESULTS["kill"].same_state and RESULTS["kill"].conservation
    assert final.counts == clean.counts and RESULTS["kill"].spurious_log_rows == 0


def in_progress(sf) -> dict | None:
    """A Bulk job the org is processing, if any (in a fresh org, only the big category makes jobs)."""
    return next((job for job in bulk_jobs(sf) if job["state"] == "InProgress"), None)


def writing_task(org, pg_server):
    """The live process of ``validate_and_map_<BIG>``'s first try, talking to the sandbox."""
    import psutil

    with psycopg.connect(pg_server.uri("airflow")) as meta:
        row = meta.execute(
            "SELECT pid FROM task_instance WHERE dag_id = %s AND state = 'running' AND task_id = %s"
            " AND try_number = 1 AND pid IS NOT NULL",
            [DAG_ID, f"validate_and_map_{BIG}"],
        ).fetchone()
    if row is None:
        return None
    port = int(org.url.rsplit(":", 1)[1])
    try:
        proc = psutil.Process(row[0])
        talking = any(c.raddr and c.raddr.port == port for c in proc.net_connections(kind="tcp"))
    except psutil.NoSuchProcess:
        return None
    return proc if talking else None


def kill(org, sf, pg_server, killed: list[dict]) -> None:
    """SIGKILL the writing task, reading its job's state from the org just before and just after."""
    proc = writing_task(org, pg_server)
    job = in_progress(sf)
    assert proc is not None and job is not None, "the task or its job ended between the look and the kill"
    at = datetime.now(UTC)
    proc.send_signal(9)
    jobs = bulk_jobs(sf)
    after = next(j for j in jobs if j["id"] == job["id"])
    killed.append(
        {
            "pid": proc.pid,
            "job": job["id"],
            "before": job["state"],
            "processed": int(job["numberRecordsProcessed"]),
            "after": after["state"],
            "jobs": {j["id"] for j in jobs},
            "running": {j["id"] for j in jobs if j["state"] in ("UploadComplete", "InProgress")},
            "at": at,
        }
    )


def kill_note(k: dict, sf, db: str, run_id: str) -> tuple[str, bool]:
    """What the kill hit, and what became of the killed try's jobs; whether none ran beside the retry's.

    The ledger (``thrive_sync.bulk_jobs``) says when the retry marked each left-over job ended and when
    it made its own first job; the org says each job's final state.
    """
    states = {j["id"]: j["state"] for j in bulk_jobs(sf)}
    with psycopg.connect(db) as conn:
        ended = dict(conn.execute("SELECT job_id, ended_at FROM thrive_sync.bulk_jobs").fetchall())
        # After the kill: an earlier test's backfill of the same day left rows of the same run id.
        first_new = conn.execute(
            "SELECT min(created_at) FROM thrive_sync.bulk_jobs WHERE dag_run_id = %s AND NOT job_id = ANY(%s)"
            " AND created_at > %s",
            [run_id, list(k["jobs"]), k["at"]],
        ).fetchone()[0]
    left = sorted(k["running"])
    aborted = [j for j in left if states.get(j) == "Aborted"]
    settled = all(ended.get(j) is not None and first_new is not None and ended[j] <= first_new for j in left)
    fate = (
        f"{len(aborted)} aborted by the retry and {len(left) - len(aborted)} ended by themselves, all before the "
        "retry made its first job"
        if settled
        else "not all ended before the retry made its first job (the same records, upserted twice): "
        + "; ".join(f"{j} {states.get(j)}, marked ended {ended.get(j, 'never')}" for j in left)
        + f"; the retry's first job made {first_new}"
    )
    note = (
        f"killed pid {k['pid']} while Bulk job {k['job']} was {k['before']} ({k['processed']} records processed) "
        f"by the org's job list read just before the kill, and {k['after']} just after; of the killed try's "
        f"{len(left)} job(s) still queued or running, {fate}; the retry (try 2) wrote the day in the same run"
    )
    return note, settled


def test_kill_between_the_salesforce_write_and_the_ledger_commit(wired, org, sf, pg_server, tmp_path):
    """SIGKILL validate_and_map_<BIG> after Salesforce has every record and before its counts and ledger
    rows commit; Airflow's retry sends the rows again (upserts) and the day converges, no duplicate.

    The window is held open by the test: it locks ``thrive_sync.sync_runs`` against writes, so the task,
    done with Salesforce, waits on the lock in its save (``pg_stat_activity`` shows its writing
    connection, named after its category, waiting); the kill comes then, and the lock goes after it.
    """
    clean = reference(wired, org, sf, pg_server)
    killed: list[int] = []
    database = psycopg.conninfo.conninfo_to_dict(wired)["dbname"]
    with psycopg.connect(wired) as locker, standalone(tmp_path / "standalone.log") as (env, _):
        locker.execute("LOCK TABLE thrive_sync.sync_runs IN SHARE ROW EXCLUSIVE MODE")  # stays until commit
        give_up = time.monotonic() + 300

        def kill_then_unlock() -> None:
            try:
                if writers_waiting(pg_server, database):
                    killed.append(kill_first_try(pg_server))
            finally:
                locker.commit()  # never leave the run's saves waiting

        watcher = watch(lambda: time.monotonic() > give_up or writers_waiting(pg_server, database) > 0,
                        kill_then_unlock, 310)  # fmt: skip
        states = backfill(env, DAY.isoformat(), DAY.isoformat())
        watcher.join(timeout=1)
    run_id = airflow_run_id(pg_server)
    tries = task_states(pg_server, run_id)
    forget_run(pg_server, run_id)  # its retried task must not count in a later test of backfills
    final = snapshot(wired, sf, run_id)
    with psycopg.connect(wired) as conn:
        ledger = dict(conn.execute(
            "SELECT status, count(*) FROM thrive_sync.event_ledger WHERE category = %s GROUP BY 1", [BIG]
        ).fetchall())  # fmt: skip
    retried = sorted(task for task, (n, _) in tries.items() if n > 1)
    big = {k: v for k, v in clean.counts.items() if k[1] == BIG}
    RESULTS["kill before the ledger commit"] = CaseResult(
        case="kill before the ledger commit",
        fault=f"SIGKILL of validate_and_map_{BIG}'s process after its last Salesforce write, before its counts "
        "and ledger rows commit (held by a lock on sync_runs)",
        first_run=f"task killed: {', '.join(retried)}" if killed else "not killed",
        airflow_retries=sum(n - 1 for n, _ in tries.values() if n > 1),
        retries_exhausted=sum(1 for *_, reason in final.log if reason == "RETRIES_EXHAUSTED"),
        rerun="Airflow's retry completed the run" if states.get(DAY.isoformat()) == "success" else "the run failed",
        same_state=final.records == clean.records and final.record_count == len(final.records),
        conservation=conservation_holds(final),
        spurious_log_rows=len(final.log ^ clean.log),
        notes=[
            f"the retry wrote the ledger once: {ledger.get('written', 0):,} written, "
            f"{ledger.get('failed', 0):,} failed rows for {BIG}"
        ],  # fmt: skip
    )
    assert killed and states.get(DAY.isoformat()) == "success", (tmp_path / "standalone.log").read_text()[-3000:]
    assert retried == [f"validate_and_map_{BIG}"]
    assert RESULTS["kill before the ledger commit"].same_state and final.counts == clean.counts
    assert ledger.get("written", 0) == sum(w for _, w, _, _ in big.values())


def writers_waiting(pg_server, database: str, wait_event: str | None = None) -> int:
    """How many validate_and_map_<BIG> writing connections (one per run and part) wait on a lock:
    any lock, or of one kind (``relation``: a table's; ``advisory``: another run's part of the day)."""
    with pg_server.connect(autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name LIKE %s"
            " AND wait_event_type = 'Lock' AND wait_event = coalesce(%s, wait_event)",
            [database, f"{WRITE_APPLICATION_NAME} {BIG} %", wait_event],  # then the part: its org (and shard)
        ).fetchone()[0]


def kill_first_try(pg_server) -> int:
    """SIGKILL the process of validate_and_map_<BIG>'s first try; its pid."""
    import psutil

    with psycopg.connect(pg_server.uri("airflow")) as meta:
        pid = meta.execute(
            "SELECT pid FROM task_instance WHERE dag_id = %s AND state = 'running' AND task_id = %s"
            " AND try_number = 1 AND pid IS NOT NULL",
            [DAG_ID, f"validate_and_map_{BIG}"],
        ).fetchone()[0]
    psutil.Process(pid).send_signal(9)
    return pid


def test_fault_same_day_twice_at_once(wired, org, sf, pg_server):
    """A scheduled run and a manual run or a backfill of the same day at once (another logical date,
    the same data interval: a manual run and a backfill ignore the DAG's max_active_runs). The
    second waits for the first to save each part, then leaves alone what the first wrote: every
    record is sent once, and the two runs' written counts add up to the day's records.

    The race is driven, not left to the two processes' start-up: a lock on ``thrive_sync.sync_runs``
    holds the first run in its save (after its Salesforce writes) until the other run's task, its
    extract done, waits for the day's part (an advisory lock); then the lock goes. Without it the
    second run could extract after the first saved, find nothing new, and never meet the first.
    """
    sent: dict[str, int] = {}
    database = psycopg.conninfo.conninfo_to_dict(wired)["dbname"]
    locker = psycopg.connect(wired)

    def hold_saves() -> None:
        locker.execute("LOCK TABLE thrive_sync.sync_runs IN SHARE ROW EXCLUSIVE MODE")  # stays until commit

    def release_when_one_waits() -> Watcher:
        give_up = time.monotonic() + 300  # never leave the runs' saves waiting
        return watch(lambda: time.monotonic() > give_up or writers_waiting(pg_server, database, "advisory") > 0,
                     locker.commit, 310)  # fmt: skip

    def inspect(first: FirstRun) -> list[str]:
        with psycopg.connect(wired) as conn:
            written, unchanged = zip(*(conn.execute(
                "SELECT coalesce(sum(written), 0), coalesce(sum(unchanged), 0) FROM thrive_sync.sync_runs"
                " WHERE dag_run_id = %s"
                " AND category = %s", [run_id, BIG]).fetchone() for run_id in first.run_ids), strict=True)  # fmt: skip
        sent.update(written=sum(written), waited=first.output.count("waiting for it to save"))
        return [f"written by each run: {written[0]:,} and {written[1]:,}; left alone as unchanged: {unchanged[0]:,} "
                f"and {unchanged[1]:,}; runs that waited for the other: {sent['waited']}"]  # fmt: skip

    def evidence(delta: dict[str, int]) -> list[str]:
        sent["received"] = delta.get("records.received", 0)
        return [f"records the org received: {sent['received']:,}"]

    case = Case(
        "same day twice at once",
        f"two runs of the day's {BIG} started at the same moment, the same day; the first to write held in its "
        "save (a lock on sync_runs) until the other waits for the day's part",
        categories=[BIG],
        alongside=OTHER_LOGICAL_DATE,
        prepare=hold_saves,
        during=release_when_one_waits,
        recover=locker.commit,
        evidence=evidence,
        inspect=inspect,
        completes=True,
    )
    with locker:
        run_case(case, db=wired, org=org, sf=sf, pg_server=pg_server)
    records = sum(1 for values in reference(wired, org, sf, pg_server).records.values() if values[CATEGORY] == BIG)
    assert sent["waited"] == 1, "the runs never overlapped: the race was not driven"
    assert sent["written"] == records, sent  # between them, each record once
    assert records <= sent["received"] < records * 1.05, sent  # sent once (a few refused ones are sent again)
