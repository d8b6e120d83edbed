"""``make bench [ROWS=N]``: our DAG against the floor and the provider's operator, same day, same sandbox.

- **a, ours**: ``airflow dags test thrive_tracking_sync`` for the day; seconds from the first
  extract task's start to the report task's end (Airflow's own task records), API calls counted by
  the sandbox, peak RSS of the ``dags test`` process (which runs every task in itself).
- **b, the floor**: the day's rows mapped in SQL (``tools/thrive_dev/sql/bench/mapped_day.sql``), COPY'd
  out of PostgreSQL as CSV and sent as one simple_salesforce Bulk 2.0 upsert: no validation, no
  matching, no logging. What moving the bytes costs.
- **c, the peer baseline**: the provider's ``SalesforceBulkOperator`` given the same rows through
  an upstream task's XCom (``tools/bench_dags``), run by ``airflow dags test`` as Airflow tasks.

The sample holds the day and the ``LOOKBACK_DAYS`` before it, as many events each. Before a, the
days before are synced (untimed, at the sandbox's default pace), so a meets a ledger as it is on a
normal day: the lookback days' rows are read and joined and left alone. **a, rerun** then runs the
same day again: every row unchanged, nothing sent. The sandbox (and the event ledger with it) is
emptied and reseeded with the sample's Contacts and Leads before each of a, b, c, so each one
inserts the day from scratch. Results: a table on stdout and ``.local/bench.json``. A baseline that
fails is recorded with its error, not hidden.

- **g, grouping by parent** (``only`` has ``g``): a again with ``THRIVE_SYNC_GROUP_BY_PARENT=0``
  (what grouping costs where nothing contends), then both ways on the slow org with parent-lock
  contention (:data:`CONTENTION`: what it saves), with the rows that met a held parent.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from sf_sandbox.jobs import SLOW_ORG
from thrive_dev import bench_floor, bench_orgs, sample_data, sandbox, services

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BENCH_DAGS = PROJECT_ROOT / "tools" / "bench_dags"
OURS_DAG = "thrive_tracking_sync"
PEER_DAG = "bench_provider_bulk_baseline"
COUNT_SOQL = "SELECT COUNT() FROM Thrive_Activity__c"
LOOKBACK_DAYS = 2  # the DAG's default lookback_days: the days before the bench's day, synced first
# The slow org, where a write holds the Contacts and Leads its rows look up and a row waits 0.2 s for one.
CONTENTION = {**SLOW_ORG, "parent_lock_wait_seconds": 0.2}
UNGROUPED = {"THRIVE_SYNC_GROUP_BY_PARENT": "0"}


@dataclass
class Measure:
    """One contender's run. ``error`` is set (and the figures partial) when it did not succeed."""

    seconds: float | None = None
    written: int | None = None
    api_calls: int | None = None
    peak_rss_mb: float | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def calls_per_10k(self) -> float | None:
        if self.api_calls is None or not self.written:
            return None
        return round(self.api_calls * 10_000 / self.written, 2)

    def as_json(self) -> dict[str, Any]:
        return {
            "seconds": _round(self.seconds),
            "written": self.written,
            "api_calls": self.api_calls,
            "api_calls_per_10k_written": self.calls_per_10k(),
            "peak_rss_mb": _round(self.peak_rss_mb, 1),
            "error": self.error,
            **self.extra,
        }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


# --- the shared plumbing --------------------------------------------------------------------------
def _sandbox() -> sandbox.SandboxInfo:
    info = sandbox.running(services.SANDBOX_DIR)
    if info is None:
        raise services.ServiceError("the Salesforce sandbox is not running: run `make up`")
    return info


def _fresh_org(info: sandbox.SandboxInfo, thrive_uri: str) -> None:
    """No Thrive_Activity__c records, no counters, no jobs, and a ledger that says so; the sample's
    Contacts and Leads seeded."""
    info.admin("POST", "reset")
    with psycopg.connect(thrive_uri) as conn:
        conn.execute("TRUNCATE thrive_sync.event_ledger")
    sandbox.seed_from_sample(info, thrive_uri)


def _counter(info: sandbox.SandboxInfo, name: str) -> int:
    return int(info.admin("GET", "stats").json().get(name, 0))


def _received(info: sandbox.SandboxInfo) -> int:
    return int(info.admin("GET", "stats").json().get("records.received", 0))


def _org_count(info: sandbox.SandboxInfo) -> int:
    response = info.session().get(f"{info.url}/services/data/v62.0/query", params={"q": COUNT_SOQL}, timeout=60)
    response.raise_for_status()
    return int(response.json()["totalSize"])


def _api_calls(info: sandbox.SandboxInfo) -> int:
    return int(info.admin("GET", "stats").json().get("api_calls", 0))


def _run_measured(args: list[str], env: dict[str, str], log: Path, timeout: float) -> tuple[int, float, float, float]:
    """Run a command, output to ``log``; ``(exit status, wall seconds, peak RSS MB, CPU seconds)`` of it
    and its children."""
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return proc.returncode, time.perf_counter() - started, usage.ru_maxrss / 1024, cpu  # ru_maxrss: KiB on Linux


def _airflow_db_uri(env: dict[str, str]) -> str:
    """Airflow's metadata database as a libpq URI (the local setup's SQLAlchemy URL minus the driver)."""
    return env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg://", "postgresql://", 1)


def _task_span(env: dict[str, str], dag_id: str, first_task_prefix: str) -> tuple[str, float, dict[str, float]]:
    """The newest run of ``dag_id``: run id, seconds from the first matching task's start to the last
    task's end, and each task's duration."""
    with psycopg.connect(_airflow_db_uri(env)) as conn:
        run_id = conn.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = %s ORDER BY id DESC LIMIT 1", [dag_id]
        ).fetchone()[0]
        rows = conn.execute(
            "SELECT task_id, start_date, end_date FROM task_instance WHERE dag_id = %s AND run_id = %s "
            "AND start_date IS NOT NULL ORDER BY start_date",
            [dag_id, run_id],
        ).fetchall()
    work = [r for r in rows if r[0].startswith(first_task_prefix)] or rows
    start = min(r[1] for r in work)
    end = max(r[2] for r in rows if r[2] is not None)
    durations = {r[0]: round((r[2] - r[1]).total_seconds(), 2) for r in rows if r[2] is not None}
    return run_id, (end - start).total_seconds(), durations


def _tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(errors="replace").strip().splitlines()[-lines:])


# --- a, b, c --------------------------------------------------------------------------------------
def run_ours(
    env: dict[str, str], info: sandbox.SandboxInfo, day: date, log: Path, timeout: float, profile: Path | None = None
) -> Measure:
    airflow = str(Path(sys.executable).parent / "airflow")
    run_date = (day + timedelta(days=1)).isoformat()
    command = [airflow, "dags", "test", OURS_DAG, run_date, "-c", '{"delay_minutes": 0}']
    in_org_before, received_before, calls_before = _org_count(info), _received(info), _api_calls(info)
    locked_before = _counter(info, "faults.parent_lock")
    if profile:  # py-spy samples the whole run from outside; its overhead makes the figures slower
        command = [str(Path(sys.executable).parent / "py-spy"), "record", "-r", "100", "--gil", "--format", "raw",
                   "-o", str(profile), "--", *command]  # fmt: skip
    status, wall, rss, cpu = _run_measured(command, env, log, timeout)
    measure = Measure(
        peak_rss_mb=rss,
        api_calls=_api_calls(info) - calls_before,  # this run's: the org has served the primed days too
        extra={"dags_test_wall_seconds": round(wall, 2), "dags_test_cpu_seconds": round(cpu, 2)},
    )
    if status:
        measure.error = f"airflow dags test exited {status}; see {log}:\n{_tail(log)}"
        return measure
    run_id, measure.seconds, durations = _task_span(env, OURS_DAG, "extract_")
    with psycopg.connect(env["THRIVE_DB_URI"]) as conn:
        written, failed, skipped, unchanged = conn.execute(
            "SELECT sum(written), sum(failed), sum(skipped), sum(unchanged) FROM thrive_sync.sync_runs"
            " WHERE dag_run_id = %s",
            [run_id],
        ).fetchone()
    measure.written = int(written)
    added = _org_count(info) - in_org_before
    measure.extra.update(failed=int(failed), skipped=int(skipped), unchanged=int(unchanged), task_seconds=durations,
                         records_added_to_org=added, records_sent=_received(info) - received_before,
                         parent_lock_failures=_counter(info, "faults.parent_lock") - locked_before)  # fmt: skip
    if added != measure.written:
        measure.error = f"the run reports {measure.written:,} written but the org gained {added:,} records"
    return measure


def prime(env: dict[str, str], info: sandbox.SandboxInfo, day: date, work_dir: Path, timeout: float) -> None:
    """Sync the ``LOOKBACK_DAYS`` before ``day`` (untimed): the ledger a normal day's run meets."""
    for back in range(LOOKBACK_DAYS, 0, -1):
        earlier = day - timedelta(days=back)
        primed = run_ours(env, info, earlier, work_dir / f"prime-{earlier}.log", timeout)
        if primed.error:
            raise services.ServiceError(f"priming {earlier} failed: {primed.error}")
        print(f"bench: primed {earlier} ({primed.written:,} written)", flush=True)


def run_floor(env: dict[str, str], info: sandbox.SandboxInfo, day: date) -> Measure:
    """b: the records ours writes, moved as ours moves them (:mod:`thrive_dev.bench_floor`)."""
    started = time.perf_counter()
    try:
        moved = bench_floor.run(env["THRIVE_DB_URI"], day)
    except Exception as exc:  # the floor failing is a result to report, not a crash
        return Measure(error=f"{type(exc).__name__}: {str(exc)[:500]}", api_calls=_api_calls(info))
    seconds = time.perf_counter() - started
    in_org = _org_count(info)
    extra = {"jobs": moved["jobs"], "job_states": moved["states"], "records_in_org": in_org}
    measure = Measure(seconds=seconds, written=moved["written"], api_calls=_api_calls(info), extra=extra)
    if in_org != moved["written"]:
        measure.error = f"the floor's jobs report {moved['written']:,} written but the org holds {in_org:,} records"
    return measure


def run_peer(env: dict[str, str], info: sandbox.SandboxInfo, day: date, log: Path, timeout: float) -> Measure:
    airflow = str(Path(sys.executable).parent / "airflow")
    run_date = (day + timedelta(days=1)).isoformat()
    peer_env = {**env, "AIRFLOW__CORE__DAGS_FOLDER": str(BENCH_DAGS)}
    status, wall, rss, cpu = _run_measured([airflow, "dags", "test", PEER_DAG, run_date], peer_env, log, timeout)
    measure = Measure(
        peak_rss_mb=rss,
        api_calls=_api_calls(info),
        extra={"dags_test_wall_seconds": round(wall, 2), "dags_test_cpu_seconds": round(cpu, 2)},
    )
    measure.written = _org_count(info)
    if status:
        how = f"killed after {timeout:.0f} s" if wall >= timeout else f"exited {status}"
        why = _tail(log)
        if "INSERT INTO xcom" in log.read_text(errors="replace"):
            why = (
                "the metadata database refused the upstream task's XCom (INSERT INTO xcom failed: the "
                "whole day's rows as one JSON value; PostgreSQL's jsonb values stop at 256 MB)"
            )
        measure.error = f"airflow dags test {how}; see {log}: {why}"
        return measure
    _, measure.seconds, durations = _task_span(env, PEER_DAG, "")
    measure.extra["task_seconds"] = durations
    return measure


def top_frames(raw_profile: Path, count: int = 10, within: str = "ValidateAndMapOperator.execute") -> list[str]:
    """Where a py-spy raw profile spent its samples inside ``within`` (our operator), by function.

    Self time: the samples whose innermost frame is that function, as a share of all samples
    taken inside ``within``. Frames of threads waiting on a selector or a lock are left out.
    """
    own: dict[str, int] = {}
    total = 0
    for line in raw_profile.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = stack.split(";")
        if not any(within in frame for frame in frames):
            continue
        leaf = frames[-1]
        total += int(samples)
        if not leaf.strip() or "selectors.py" in leaf or "threading.py" in leaf:
            continue
        name = re.sub(r":\d+\)$", ")", leaf)  # per function, not per line
        own[name] = own.get(name, 0) + int(samples)
    ranked = sorted(own.items(), key=lambda kv: -kv[1])[:count]
    return [f"{100 * n / max(total, 1):.1f}% {name}" for name, n in ranked]


# --- the whole benchmark --------------------------------------------------------------------------
def machine(env: dict[str, str]) -> dict[str, Any]:
    with psycopg.connect(env["THRIVE_DB_URI"]) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "postgresql": pg,
        "platform": platform.platform(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }


def dag_parse_seconds(env: dict[str, str]) -> float:
    """Seconds to parse the DAG file in a fresh interpreter (Airflow imported first, as a parser has it)."""
    code = (
        "import time, airflow.sdk, runpy; t = time.perf_counter(); "
        f"runpy.run_path({str(PROJECT_ROOT / 'dags' / 'thrive_tracking_sync.py')!r}); "
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def run(
    rows: int, day: date, only: str = "abcgo", timeout: float = 3600, profile: bool = False, slow_org: bool = True
) -> dict[str, Any]:
    env = services.load_env()
    os.environ.update(env)  # the floor builds its Salesforce client from the same connections
    info = _sandbox()
    work_dir = services.LOCAL_DIR / "bench"
    work_dir.mkdir(parents=True, exist_ok=True)

    results: dict[str, Measure] = {}
    events, recipients = rows, None
    if set(only) & set("abcg"):
        events, recipients = _load_sample(env, rows, day)
        results = _contenders(env, info, day, work_dir, only, timeout, profile)
        if slow_org:
            results.update(_slow_org_contenders(env, info, day, work_dir, only, timeout))
        if "g" in only:
            results.update(_grouping_contenders(env, info, day, work_dir, timeout))
    if "o" in only:  # last: it loads a sample of its own
        results.update(_orgs_contenders(env, info, day, rows, work_dir, timeout))
    report = {
        "rows": events,
        "day": day.isoformat(),
        "recipients": recipients,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": {k: _round(m.seconds) for k, m in results.items()},
        "ratios": _ratios(results),
        "api_calls_per_10k_written": {k: m.calls_per_10k() for k, m in results.items()},
        "peak_rss_mb": {k: _round(m.peak_rss_mb, 1) for k, m in results.items() if m.peak_rss_mb},
        "slow_org_profile": SLOW_ORG if slow_org else None,
        "dag_parse_seconds": round(dag_parse_seconds(env), 3),
        "machine": machine(env),
        "runs": {k: m.as_json() for k, m in results.items()},
    }
    (services.LOCAL_DIR / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _load_sample(env: dict[str, str], rows: int, day: date) -> tuple[int, int]:
    """The day and the ``LOOKBACK_DAYS`` before it, ``rows`` events each: (events a day, recipients)."""
    days = LOOKBACK_DAYS + 1
    config = sample_data.SampleConfig(
        start=day - timedelta(days=LOOKBACK_DAYS), days=days, events=rows * days,
        recipients_per_account=max(500, rows // 200),
    )  # fmt: skip
    started = time.perf_counter()
    stats = sample_data.load(env["THRIVE_DB_URI"], config)
    events = sum(stats.rows[f"thrive.{t}"] for t in sample_data.SOURCE_TABLE.values()) // days
    print(f"bench: {events * days:,} events on {days} days to {day} generated in {time.perf_counter() - started:.1f} s",
          flush=True)  # fmt: skip
    return events, config.recipients_per_account * config.accounts


def _orgs_contenders(
    env: dict[str, str], info: sandbox.SandboxInfo, day: date, rows: int, work_dir: Path, timeout: float
) -> dict[str, Measure]:
    """o1 and o4 (:mod:`thrive_dev.bench_orgs`); a run that could not be made is a result too."""
    try:
        runs = bench_orgs.run(env, info, day, rows, work_dir, timeout)
    except Exception as exc:  # the contender failing is a result to report, not a crash
        return {"o1": Measure(error=f"{type(exc).__name__}: {str(exc)[:500]}")}
    measures = {}
    for key, figures in runs.items():
        extra = {k: v for k, v in figures.items() if k not in ("seconds", "written", "api_calls", "error")}
        measures[key] = Measure(seconds=figures["seconds"], written=figures["written"],
                                api_calls=figures["api_calls"], error=figures["error"], extra=extra)  # fmt: skip
    return measures


def _contenders(
    env: dict[str, str], info: sandbox.SandboxInfo, day: date, work_dir: Path, only: str, timeout: float,
    profile: bool, suffix: str = "", pace: dict[str, float] | None = None,
) -> dict[str, Measure]:  # fmt: skip
    """a and its rerun, then b and c as ``only`` says, each on an org emptied and seeded again, at
    ``pace`` (the sandbox's Bulk knobs; priming always goes at the default pace); keys get ``suffix``."""
    results: dict[str, Measure] = {}
    label = f" ({suffix.strip('_').replace('_', ' ')})" if suffix else ""
    _fresh_org(info, env["THRIVE_DB_URI"])
    prime(env, info, day, work_dir, timeout)
    with _paced(info, pace):
        print(f"bench: a (ours){label} running ...", flush=True)
        profile_path = work_dir / "profile-a.txt" if profile else None
        results["a" + suffix] = run_ours(env, info, day, work_dir / f"a-ours{suffix}.log", timeout, profile_path)
        if profile_path and profile_path.exists():
            results["a"].extra["profile_top"] = top_frames(profile_path)
        print(f"bench: a, rerun of the same day{label} running ...", flush=True)
        results["a_rerun" + suffix] = run_ours(env, info, day, work_dir / f"a-rerun{suffix}.log", timeout)
        for key, run in (("b", run_floor), ("c", run_peer)):
            if key in only:
                _fresh_org(info, env["THRIVE_DB_URI"])
                print(f"bench: {key} ({'the floor' if key == 'b' else 'the provider operator'}){label} ...", flush=True)
                args = (
                    (env, info, day) if key == "b" else (env, info, day, work_dir / f"c-provider{suffix}.log", timeout)
                )
                results[key + suffix] = run(*args)
    for key in ("a", "a_rerun", "b", "c"):
        results.setdefault(key + suffix, Measure(error="not run"))
    return results


@contextmanager
def _paced(info: sandbox.SandboxInfo, pace: dict[str, float] | None) -> Iterator[None]:
    """The sandbox's Bulk knobs set to ``pace`` for the block, then back as they were."""
    if not pace:
        yield
        return
    before = info.admin("GET", "faults").json()
    info.admin("PUT", "faults", json=pace)
    try:
        yield
    finally:
        info.admin("PUT", "faults", json={k: before[k] for k in pace})


def _slow_org_contenders(
    env: dict[str, str], info: sandbox.SandboxInfo, day: date, work_dir: Path, only: str, timeout: float
) -> dict[str, Measure]:
    """a (and its rerun) and b again with the sandbox's Bulk jobs at :data:`SLOW_ORG`'s pace (not c)."""
    return _contenders(env, info, day, work_dir, only.replace("c", ""), timeout, False, "_slow_org", SLOW_ORG)


def _grouping_contenders(
    env: dict[str, str], info: sandbox.SandboxInfo, day: date, work_dir: Path, timeout: float
) -> dict[str, Measure]:
    """a without grouping by parent at the default pace; then with and without it under :data:`CONTENTION`."""
    results: dict[str, Measure] = {}
    for key, overrides, pace in (
        ("a_ungrouped", UNGROUPED, None),
        ("a_contention", {}, CONTENTION),
        ("a_contention_ungrouped", UNGROUPED, CONTENTION),
    ):
        _fresh_org(info, env["THRIVE_DB_URI"])
        prime(env, info, day, work_dir, timeout)
        with _paced(info, pace):
            print(f"bench: {key.replace('_', ' ')} running ...", flush=True)
            results[key] = run_ours({**env, **overrides}, info, day, work_dir / f"{key}.log", timeout)
    return results


def _ratios(results: dict[str, Measure]) -> dict[str, float | None]:
    def ratio(top: str, bottom: str) -> float | None:
        a, b = results.get(top), results.get(bottom)
        return _round(a.seconds / b.seconds) if a and b and a.seconds and b.seconds else None

    return {
        "a_over_b": ratio("a", "b"),
        "c_over_a": ratio("c", "a"),
        "rerun_over_a": ratio("a_rerun", "a"),
        "a_over_b_slow_org": ratio("a_slow_org", "b_slow_org"),
        "rerun_over_a_slow_org": ratio("a_rerun_slow_org", "a_slow_org"),
        "a_over_ungrouped": ratio("a", "a_ungrouped"),
        "grouped_over_ungrouped_contention": ratio("a_contention", "a_contention_ungrouped"),
        "one_org_over_four": ratio("o1", "o4"),
    }


def cell(value: Any, fmt: str) -> str:
    """A figure for the table; ``-`` when it was not measured."""
    return "-" if value is None else format(value, fmt)


def _grouping_line(runs: dict[str, Any], ratios: dict[str, Any]) -> str:
    """What grouping by parent cost (no contention) and saved (under :data:`CONTENTION`)."""
    locked = {key: runs[key].get("parent_lock_failures") for key in ("a_contention", "a_contention_ungrouped")}
    return (
        f"grouping by parent: a / a not grouped = {cell(ratios.get('a_over_ungrouped'), '.2f')}; under contention "
        f"{CONTENTION}: grouped / not grouped = {cell(ratios.get('grouped_over_ungrouped_contention'), '.2f')}, "
        f"rows that met a held parent {cell(locked['a_contention'], ',')} grouped, "
        f"{cell(locked['a_contention_ungrouped'], ',')} not grouped"
    )


def _orgs_line(runs: dict[str, Any], ratios: dict[str, Any]) -> str:
    """The fan-out's speedup, and where the four orgs' run spent the machine's CPU."""
    o4 = runs["o4"]
    cpu = o4.get("cpu") or {}
    return (
        f"fan-out: one org / {bench_orgs.ORGS} orgs = {cell(ratios.get('one_org_over_four'), '.2f')} "
        f"({cell(runs['o1'].get('sync_instances'), 'd')} and {cell(o4.get('sync_instances'), 'd')} sync instances, "
        f"at most {cell(o4.get('sync_instances_at_once'), 'd')} at once); {bench_orgs.ORGS} orgs: CPU busy "
        f"{cell(cpu.get('machine_busy'), '.0f')} of {cell(cpu.get('of_cores_x_wall'), '.0f')} core-seconds, "
        f"sandboxes {cell(cpu.get('sandboxes'), '.0f')}, PostgreSQL {cell(cpu.get('postgresql'), '.0f')}"
    )


def table(report: dict[str, Any]) -> list[str]:
    """The human summary of a bench report."""
    runs = report["runs"]
    names = {"a": "a ours (DAG tasks)", "a_rerun": "a rerun (same day again)", "b": "b floor (COPY + our jobs)",
             "c": "c provider bulk operator", "a_slow_org": "a ours, slow org", "a_rerun_slow_org": "a rerun, slow org",
             "b_slow_org": "b floor, slow org", "a_ungrouped": "a, not grouped by parent",
             "a_contention": "a, lock contention", "a_contention_ungrouped": "a, contention, not grouped",
             "o1": f"o one org, parallelism {bench_orgs.PARALLELISM}",
             "o4": f"o {bench_orgs.ORGS} orgs, parallelism {bench_orgs.PARALLELISM}"}  # fmt: skip
    keys = [key for key in names if key in runs and not (key.endswith("slow_org") and runs[key]["error"] == "not run")]

    lines = [
        f"bench: {report['rows']:,} events, {cell(report['recipients'], ',')} recipients, day {report['day']}",
        f"{'':28}{'seconds':>9}{'written':>11}{'sent':>11}{'API calls':>11}{'calls/10k':>11}{'peak RSS MB':>13}",
    ]
    for key in keys:
        r = runs[key]
        lines.append(
            f"{names[key]:28}{cell(r['seconds'], '.2f'):>9}{cell(r['written'], ','):>11}"
            f"{cell(r.get('records_sent'), ','):>11}{cell(r['api_calls'], ','):>11}"
            f"{cell(r['api_calls_per_10k_written'], '.2f'):>11}{cell(r['peak_rss_mb'], '.1f'):>13}"
        )
    ratios = report["ratios"]
    lines.append(
        f"a/b = {cell(ratios['a_over_b'], '.2f')}   c/a = {cell(ratios['c_over_a'], '.2f')}   "
        f"rerun/a = {cell(ratios.get('rerun_over_a'), '.2f')}   DAG file parse {report['dag_parse_seconds']:.3f} s"
    )
    if report.get("slow_org_profile"):
        lines.append(
            f"slow org (sandbox Bulk pace {report['slow_org_profile']}): "
            f"a/b = {cell(ratios.get('a_over_b_slow_org'), '.2f')}"
        )
    if "a_contention" in runs:
        lines.append(_grouping_line(runs, ratios))
    m = report["machine"]
    lines.append(
        f"machine: {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}, PostgreSQL {m['postgresql']}"
    )
    if "o4" in runs:
        lines.append(_orgs_line(runs, ratios))
    if runs.get("a", {}).get("profile_top"):
        lines.append("profile of a (py-spy, self time inside ValidateAndMapOperator.execute):")
        lines += [f"  {entry}" for entry in runs["a"]["profile_top"][:5]]
    for key in keys:
        if runs[key]["error"]:
            lines.append(f"{key} did not succeed: {runs[key]['error']}")
    lines.append(f"written to {services.LOCAL_DIR / 'bench.json'}")
    return lines
