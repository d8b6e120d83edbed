"""Outcomes of the reliability tests, and ``docs/reliability.md`` rendered from them.

The tests record what each case measured here (``FAULTS``, ``CONFIG``, ``OTHER``) before they
assert, so a failing case still leaves its row. At the end of a session ``pytest_sessionfinish``
(conftest) saves the measurements and every reliability test's outcome to
``test-output/reliability.json`` (git-ignored). No test run writes the document: ``make
reliability`` runs the reliability tests and then this file as a script, which renders
``docs/reliability.md`` from that file. A failed test shows as failed in its row, with what it
measured; a case that never reported shows as not run.

Standard library only: the unit tier imports it with no services, PostgreSQL or Airflow.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from dataclasses import asdict, dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REPORT = PROJECT_ROOT / "docs" / "reliability.md"
RESULTS_FILE = PROJECT_ROOT / "test-output" / "reliability.json"

PASSED, FAILED, SKIPPED, NOT_RUN, UNKNOWN = "passed", "failed", "skipped", "not run", "outcome unknown"
STATES = (PASSED, FAILED, SKIPPED, NOT_RUN, UNKNOWN)
DASH = "—"


@dataclass
class CaseResult:
    """One fault case: the first run under the fault, then a fault-free rerun."""

    case: str
    fault: str
    first_run: str
    airflow_retries: int
    retries_exhausted: int
    rerun: str
    same_state: bool
    conservation: bool
    spurious_log_rows: int
    notes: list[str] = field(default_factory=list)


@dataclass
class ConfigResult:
    """One configuration mistake: how the run failed, how fast, and that nothing was written."""

    case: str
    failed_task: str
    tries: int
    seconds: float
    records_sent: int
    message: str
    notes: list[str] = field(default_factory=list)  # only what went wrong: a passing case has none


@dataclass
class MatrixSetup:
    """How the fault matrix's first runs meet the org: the slow-org pace and the deployment's Bulk
    settings, with what they made of the fault-free day (rendered into the matrix's intro)."""

    queue_seconds: float  # a closed Bulk job's wait in the org's queue
    batch_seconds: float  # the least time an internal batch (10,000 records) holds a worker
    batch_workers: int  # the org's batch workers, shared by every job
    bulk_threshold: int  # THRIVE_SYNC_BULK_THRESHOLD
    bulk_job_rows: int  # THRIVE_SYNC_BULK_JOB_ROWS
    poll_seconds: float  # THRIVE_SYNC_POLL_SECONDS
    job_timeout_seconds: float  # THRIVE_SYNC_JOB_TIMEOUT_SECONDS
    big_category: str  # the category that goes through Bulk
    big_records: int  # the records it sends through Bulk in the fault-free run
    big_jobs: int  # the Bulk jobs they take


@dataclass
class Outcome:
    """How one test ended: passed, failed (setup, call or teardown) or skipped; why, if it failed."""

    outcome: str
    message: str = ""


# What the tests record during a session (the test modules import these).
FAULTS: dict[str, CaseResult] = {}
CONFIG: dict[str, ConfigResult] = {}
OTHER: dict[str, list[str]] = {}  # section title -> lines (hostile input, secrets)
SETUP: dict[str, MatrixSetup] = {}  # "matrix" -> the fault matrix's setup, once its fault-free run is done

# Every case the document lists, in its order, with the test (node id, or a whole module) whose
# outcome is the case's. A case with no measurement is listed as failed or not run.
_S = "tests/system/"
_CONFIG_TEST = _S + "test_configuration.py::test_a_configuration_mistake_fails_at_once_and_writes_nothing"
EXPECTED_FAULTS: dict[str, str] = {
    "503": _S + "test_reliability.py::test_fault[503]",
    "403 bursts": _S + "test_reliability.py::test_fault[403 bursts]",
    "row locks": _S + "test_reliability.py::test_fault[row locks]",
    "locks that never clear": _S + "test_reliability.py::test_fault_locks_that_never_clear",
    "401 mid-run": _S + "test_reliability.py::test_fault_expired_session_mid_run",
    "sessions expire (password)": _S + "test_reliability.py::test_fault_sessions_expire_password_connection",
    "sessions expire (JWT)": _S + "test_reliability.py::test_fault_sessions_expire_jwt_connection",
    "daily limit spent": _S + "test_reliability.py::test_fault_daily_limit_spent_mid_run",
    "quota below the reserve": _S + "test_reliability.py::test_fault_quota_below_the_reserve",
    "lock contention": _S + "test_reliability.py::test_fault_lock_contention",
    "sandbox down": _S + "test_reliability.py::test_fault_sandbox_down_then_back",
    "PostgreSQL dropped": _S + "test_reliability.py::test_fault_postgresql_connection_dropped",
    "slow sandbox": _S + "test_reliability.py::test_fault_slow_sandbox",
    "late answers": _S + "test_reliability.py::test_fault_late_answers",
    "upsert race": _S + "test_reliability.py::test_fault_upsert_race",
    "same day twice at once": _S + "test_reliability.py::test_fault_same_day_twice_at_once",
    "one of two orgs down": _S + "test_orgs.py::test_fault_one_of_two_orgs_down",
    "kill": _S + "test_reliability.py::test_kill_while_a_bulk_job_is_in_progress_then_airflow_retries",
    "kill before the ledger commit": _S
    + "test_reliability.py::test_kill_between_the_salesforce_write_and_the_ledger_commit",
}
EXPECTED_CONFIG: dict[str, str] = {
    **{
        case: f"{_CONFIG_TEST}[{case}]"
        for case in (
            "no Salesforce connection",
            "no thrive_db connection",
            "wrong Salesforce password",
            "mapping: unknown object",
            "mapping: field not in the org",
            "mapping: unknown source value",
        )
    },
    "bad param value": _S + "test_configuration.py::test_a_bad_param_value_is_refused_before_the_run_is_created",
    "package tables missing": _S
    + "test_configuration.py::test_a_database_without_the_package_tables_fails_at_once_naming_the_setup_dag",
}
EXPECTED_OTHER: dict[str, str] = {  # a section stands for every test of its module
    "Hostile input": _S + "test_hostile_input.py",
    "Secrets": _S + "test_secrets.py",
}
TEST_MODULES = sorted(
    {test.split("::")[0] for d in (EXPECTED_FAULTS, EXPECTED_CONFIG, EXPECTED_OTHER) for test in d.values()}
)


@dataclass
class Results:
    """One session's measurements and test outcomes: what the document is rendered from."""

    faults: dict[str, CaseResult] = field(default_factory=dict)
    config: dict[str, ConfigResult] = field(default_factory=dict)
    other: dict[str, list[str]] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # test node id -> outcome
    setup: MatrixSetup | None = None  # how the fault matrix met the org (None: its fault-free run did not end)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Results:
        data = json.loads(text)
        return cls(
            faults={k: CaseResult(**v) for k, v in data.get("faults", {}).items()},
            config={k: ConfigResult(**v) for k, v in data.get("config", {}).items()},
            other={k: list(v) for k, v in data.get("other", {}).items()},
            outcomes={k: Outcome(**v) for k, v in data.get("outcomes", {}).items()},
            setup=MatrixSetup(**data["setup"]) if data.get("setup") else None,
        )

    def ran_any(self) -> bool:
        """Whether any reliability test reported (a session of other tests has nothing to save)."""
        return bool(self.faults or self.config or self.other) or any(
            _matches(nodeid, module) for nodeid in self.outcomes for module in TEST_MODULES
        )


def collected(outcomes: dict[str, Outcome]) -> Results:
    """This session's measurements (the module-level dicts) with the tests' outcomes."""
    return Results(
        dict(FAULTS), dict(CONFIG), {k: list(v) for k, v in OTHER.items()}, dict(outcomes), SETUP.get("matrix")
    )


def merge(results: Results) -> None:
    """Add another process's measurements (a pytest-xdist worker's) to this session's."""
    FAULTS.update(results.faults)
    CONFIG.update(results.config)
    for title, lines in results.other.items():
        OTHER.setdefault(title, []).extend(lines)
    if results.setup is not None:
        SETUP.setdefault("matrix", results.setup)


# --- test outcomes --------------------------------------------------------------------------------
def _failure_message(report: object) -> str:
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    text = getattr(crash, "message", None) or str(getattr(report, "longrepr", "") or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else "(no message)")[:300]


def outcomes_from_reports(reports: object) -> dict[str, Outcome]:
    """``{node id: Outcome}`` from pytest's reports (``TerminalReporter.stats`` values, flattened).

    A test failed when its setup, call or teardown failed; a collection error fails every test of
    its module. Duck-typed (``nodeid``, ``when``, ``outcome``, ``longrepr``): no pytest import.
    """
    result: dict[str, Outcome] = {}
    for report in reports:  # type: ignore[attr-defined]
        nodeid, outcome = getattr(report, "nodeid", None), getattr(report, "outcome", None)
        if not nodeid or outcome not in (PASSED, FAILED, SKIPPED):
            continue
        when = getattr(report, "when", None)  # None: a collection report
        known = result.get(nodeid)
        if outcome == FAILED:
            if known is None or known.outcome != FAILED:
                stage = "" if when in (None, "call") else f"in {when}: "
                result[nodeid] = Outcome(FAILED, stage + _failure_message(report))
        elif known is None or known.outcome != FAILED:
            if outcome == SKIPPED or when in (None, "call"):
                result[nodeid] = Outcome(outcome)
    return result


def _matches(nodeid: str, test: str) -> bool:
    """``nodeid`` is ``test``, a test inside ``test`` (a module), or the module ``test`` lives in."""
    return nodeid == test or nodeid.startswith(test + "::") or test.startswith(nodeid + "::")


def status_of(test: str, outcomes: dict[str, Outcome]) -> tuple[str, list[str]]:
    """The outcome of ``test`` (a node id or a module): failed if any part failed; the reasons."""
    found = {nodeid: o for nodeid, o in outcomes.items() if _matches(nodeid, test)}
    failures = [
        f"{_short(n)}: {o.message}" if n != test else o.message for n, o in found.items() if o.outcome == FAILED
    ]
    if failures:
        return FAILED, failures
    if any(o.outcome == PASSED for o in found.values()):
        return PASSED, []
    return (SKIPPED if found else NOT_RUN), []


def _short(nodeid: str) -> str:
    return nodeid.removeprefix(_S)


def _code(text: str) -> str:
    return "`" + text.replace("`", "'").replace("\n", " ") + "`"


# --- the document ---------------------------------------------------------------------------------
def _ordered(recorded: dict, expected: dict[str, str]) -> list[str]:
    return [*expected, *(case for case in recorded if case not in expected)]


def _marked(case: str, status: str) -> str:
    """The case cell: a failed test (or a measurement no test claims) is marked; a not-run row says so itself."""
    return f"{case} (**test {status}**)" if status in (FAILED, UNKNOWN) else case


def _state(test: str | None, outcomes: dict[str, Outcome], measured: bool) -> tuple[str, list[str]]:
    """A case's state and failure reasons.

    A measurement whose test outcome is missing is "outcome unknown"; a case that passed nothing it
    measured (only a module's other tests ran) did not report, so it is "not run".
    """
    state, reasons = status_of(test, outcomes) if test else (NOT_RUN, [])
    if measured and state == NOT_RUN:
        return UNKNOWN, reasons
    if not measured and state == PASSED:
        return NOT_RUN, reasons
    return state, reasons


def _setup_lines(setup: MatrixSetup | None) -> list[str]:
    """The slow org and the deployment the matrix ran with, in figures, as a wrapped paragraph."""
    if setup is None:
        return ["How the matrix met the org was not recorded: its fault-free run did not end."]
    text = (
        "**The slow org.** Every first run, and the kill case's run, meets an org under load "
        "(`sf_sandbox.jobs.SLOW_ORG`; its seconds stand for an org's minutes): a closed Bulk job waits "
        f"{setup.queue_seconds:g} s in the org's queue, then each internal batch of up to 10,000 records holds "
        f"one of {setup.batch_workers} batch workers, shared by every job, for at least {setup.batch_seconds:g} s. "
        f"The deployment (`THRIVE_SYNC_*`) sends an org's records through Bulk API 2.0 from "
        f"{setup.bulk_threshold:,} in a task, in jobs of {setup.bulk_job_rows:,} (a task's first job a fifth of "
        f"that), up to three in flight; it looks at a running job at most every {setup.poll_seconds:g} s and "
        f"aborts one after {setup.job_timeout_seconds:g} s. So the day's `{setup.big_category}` "
        f"({setup.big_records:,} records) goes in {setup.big_jobs} Bulk jobs side by side, and the four smaller "
        "categories through sObject Collections. The fault-free run and the reruns go at the sandbox's default "
        "pace (0.1 s in the queue, 0.05 s a batch)."
    )
    return textwrap.wrap(text, 100, break_on_hyphens=False, break_long_words=False)


def render(results: Results) -> str:
    outcomes = results.outcomes
    not_passed: dict[str, list[str]] = {}  # state -> cases

    def status(case: str, test: str | None, measured: bool) -> tuple[str, list[str]]:
        state, reasons = _state(test, outcomes, measured)
        if state != PASSED:
            not_passed.setdefault(state, []).append(case)
        return state, reasons

    fault_rows, fault_notes = [], []
    for case in _ordered(results.faults, EXPECTED_FAULTS):
        r = results.faults.get(case)
        state, reasons = status(case, EXPECTED_FAULTS.get(case), r is not None)
        if r is not None:
            fault_rows.append(
                f"| {_marked(r.case, state)} | {r.fault} | {r.first_run} | {r.airflow_retries} | "
                f"{r.retries_exhausted} | {r.rerun} | {'yes' if r.same_state else 'NO'} | "
                f"{'holds' if r.conservation else 'BROKEN'} | {r.spurious_log_rows} |"
            )
            fault_notes += [f"- **{case}**: {note}" for note in r.notes]
        else:
            first_run = "failed before it measured anything" if state == FAILED else state
            fault_rows.append(f"| {_marked(case, state)} | {DASH} | {first_run} |" + f" {DASH} |" * 6)
        fault_notes += [f"- **{case}**: test failed: {_code(reason)}" for reason in reasons]

    config_rows, config_notes = [], []
    for case in _ordered(results.config, EXPECTED_CONFIG):
        c = results.config.get(case)
        state, reasons = status(case, EXPECTED_CONFIG.get(case), c is not None)
        if c is not None:
            message = c.message.replace("|", "\\|")
            config_rows.append(
                f"| {_marked(c.case, state)} | {c.failed_task} | {c.tries} | {c.seconds:.1f} | {c.records_sent} "
                f"| {message} |"
            )
            config_notes += [f"- **{case}**: {note}" for note in c.notes]
        else:
            failed_task = "failed before it measured anything" if state == FAILED else state
            config_rows.append(f"| {_marked(case, state)} | {failed_task} |" + f" {DASH} |" * 4)
        config_notes += [f"- **{case}**: test failed: {_code(reason)}" for reason in reasons]

    sections = []
    for title in _ordered(results.other, EXPECTED_OTHER):
        body = results.other.get(title)
        state, reasons = status(title, EXPECTED_OTHER.get(title), body is not None)
        sections += ["", f"## {title}", ""]
        if reasons:
            sections += [*(f"- **test failed**: {_code(reason)}" for reason in reasons), ""]
        if body is None:
            body = ["Failed before it measured anything."] if state == FAILED else [f"{state.capitalize()}."]
        sections += body

    lines = [
        "# Reliability",
        "",
        "Generated by `make reliability` from the tests (`tests/system/test_reliability.py`, `test_configuration.py`,",
        "`test_hostile_input.py`, `test_secrets.py`); do not edit by hand.",
    ]
    if not_passed:
        parts = [f"{state}: {', '.join(not_passed[state])}" for state in STATES if state in not_passed]
        lines += ["", f"**Not a complete passing run.** {'; '.join(parts)}."]
    lines += [
        "",
        "## Fault matrix",
        "",
        "Each case runs the DAG on one generated day (4,000 events, four accounts) under one fault, then",
        "reruns it without the fault, and compares with a fault-free run of the same day: Salesforce's",
        "records and field values, the record count (no duplicates), `extracted = written + failed +",
        "skipped` for every account and category, and the tracking log row for row. The first run's",
        "log may only differ by honest `RETRIES_EXHAUSTED` rows, and what it wrote must hold the fault-free",
        "values.",
        "",
        *_setup_lines(results.setup),
        "",
        "| case | fault | first run | Airflow task retries | `RETRIES_EXHAUSTED` rows | rerun "
        "| final state = fault-free | conservation | spurious log rows |",
        "|---|---|---|---:|---:|---|---|---|---:|",
        *fault_rows,
    ]
    if fault_notes:
        lines += ["", *fault_notes]
    lines += [
        "",
        "## Configuration errors",
        "",
        "Each mistake fails the run at once, before any record is sent, with a message naming what to fix.",
        "",
        "| case | failed | tries | seconds | records sent | message |",
        "|---|---|---:|---:|---:|---|",
        *config_rows,
    ]
    if config_notes:
        lines += ["", *config_notes]
    lines += sections
    return "\n".join(lines) + "\n"


def summary(results: Results) -> str:
    """``"2 passed, 1 failed, 15 not run"`` over the document's cases."""
    counts: dict[str, int] = {}
    for expected, recorded in ((EXPECTED_FAULTS, results.faults), (EXPECTED_CONFIG, results.config),
                               (EXPECTED_OTHER, results.other)):  # fmt: skip
        for case in _ordered(recorded, expected):
            state = _state(expected.get(case), results.outcomes, case in recorded)[0]
            counts[state] = counts.get(state, 0) + 1
    return ", ".join(f"{counts[s]} {s}" for s in STATES if counts.get(s))


def save(results: Results, path: Path = RESULTS_FILE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(results.to_json(), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render docs/reliability.md from a session's saved results.")
    parser.add_argument("--results", type=Path, default=RESULTS_FILE, help="default: %(default)s")
    parser.add_argument("--out", type=Path, default=REPORT, help="default: %(default)s")
    args = parser.parse_args(argv)
    if not args.results.is_file():
        print(
            f"reliability report: no results at {args.results}: no reliability test ran; nothing written",
            file=sys.stderr,
        )
        return 1
    results = Results.from_json(args.results.read_text(encoding="utf-8"))
    args.out.write_text(render(results), encoding="utf-8")
    print(f"reliability report: wrote {args.out} ({summary(results)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
