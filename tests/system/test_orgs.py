"""One org's trouble is not everyone's (issue 16, item 1): each category's sync runs as one mapped
instance per Salesforce connection its day's accounts use, a large day of one org in shards.

One day, six accounts and four connections: ``acct-001`` in ``salesforce_default`` (split into shards),
``acct-002`` in a second sandbox whose connection has a wrong password, ``acct-003`` naming a
connection that does not exist, ``acct-004`` (tracking disabled) naming a blank one, which is
``salesforce_default``, as for ``acct-005`` and ``acct-006``. The refused and the missing org fail
only their own instances; the default org is written in full with its counts saved; the report names
the orgs not done; clearing the failed instances after the password is fixed writes the second org
without sending the first again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

import dag_runs
from conftest import NO_FAULTS, airflow_conn_for, scratch_database
from reliability_report import FAULTS as RESULTS
from reliability_report import CaseResult
from thrive_dev.sample_data import SampleConfig, load

DAY = datetime(2026, 11, 26, tzinfo=UTC)
ACCOUNTS = {"acct-001": "salesforce_default", "acct-002": "salesforce_b", "acct-003": "salesforce_missing",
            "acct-004": " "}  # fmt: skip
SHARD_ROWS = 1_000  # the default org's day of message activity (acct-001 and acct-004) in two shards


@pytest.fixture(scope="module")
def second_org(tmp_root):
    """A second sandbox: another org, with its own records, limits and logins."""
    from thrive_dev import sandbox as sf_sandbox

    info = sf_sandbox.start(tmp_root / "sf_b")
    yield info
    sf_sandbox.stop(tmp_root / "sf_b")


@pytest.fixture
def two_orgs_day(pg_server, org, second_org, monkeypatch, airflow_metadata) -> Iterator[str]:
    """A generated day (six accounts) as ``thrive_db``, both sandboxes seeded from it and empty of
    records; ``salesforce_default`` is the first sandbox."""
    from thrive_dev.sandbox import seed_from_sample

    second_org.admin("POST", "reset")
    second_org.admin("PUT", "faults", json=NO_FAULTS)
    with scratch_database(pg_server, "orgs") as db:
        load(db, SampleConfig(start=DAY.date(), days=1, events=4_000, accounts=6, recipients_per_account=60, seed=16))
        seed_from_sample(org, db)
        seed_from_sample(second_org, db)
        monkeypatch.setenv("AIRFLOW_CONN_THRIVE_DB", airflow_conn_for(pg_server, db))
        monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", dag_runs.salesforce_conn_json(org))
        monkeypatch.setenv("THRIVE_SYNC_RETRY_DELAY_SECONDS", "1")
        yield db
    second_org.admin("PUT", "faults", json=NO_FAULTS)


def spread(db: str, accounts: dict[str, str]) -> None:
    """Point each account at its Salesforce connection (``thrive.accounts.salesforce_conn_id``)."""
    with psycopg.connect(db) as conn:
        for account_id, conn_id in accounts.items():
            conn.execute(
                "UPDATE thrive.accounts SET salesforce_conn_id = %s WHERE account_id = %s", [conn_id, account_id]
            )


@pytest.fixture
def orgs_day(two_orgs_day, second_org, monkeypatch, tmp_root):
    """The day with its accounts spread over four connections (``ACCOUNTS``); the second org's refuses
    its password."""
    from thrive_dev.services import sandbox_login_conns

    spread(two_orgs_day, ACCOUNTS)
    login = json.loads(sandbox_login_conns(second_org, tmp_root / "sf_b")["SF_SANDBOX_PASSWORD_CONN"])
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_B", json.dumps({**login, "password": "wrong"}))
    monkeypatch.setenv("THRIVE_SYNC_SHARD_ROWS", str(SHARD_ROWS))
    return two_orgs_day, login


def expected_written(db: str, account_id: str) -> int:
    with psycopg.connect(db) as conn:
        return conn.execute(
            "SELECT count(*) FROM thrive_sample.expected_outcomes WHERE account_id = %s AND outcome = 'written'",
            [account_id],
        ).fetchone()[0]


def counts(db: str, run_id: str) -> dict[str, tuple[int, int, int, int, int]]:
    """Per account: extracted, written, failed, skipped, unchanged, summed over the categories."""
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT account_id, sum(extracted), sum(written), sum(failed), sum(skipped), sum(coalesce(unchanged, 0))"
            " FROM thrive_sync.sync_runs WHERE dag_run_id = %s GROUP BY 1",
            [run_id],
        ).fetchall()
    return {account_id: tuple(values) for account_id, *values in rows}


def records_of(sf_org, account_id: str) -> int:
    from simple_salesforce import Salesforce

    sf = Salesforce(session_id=sf_org.token, instance_url=sf_org.url, session=sf_org.session())
    soql = f"SELECT COUNT() FROM {dag_runs.TA} WHERE Thrive_Account_Id__c = '{account_id}'"
    return sf.query(soql)["totalSize"]


def test_one_org_refused_and_one_missing_fail_alone(orgs_day, org, second_org, pg_server, monkeypatch):
    db, login = orgs_day
    result = dag_runs.dags_test()
    output = result.stdout + result.stderr
    run_id = dag_runs.airflow_run_id(pg_server)
    states = dag_runs.task_states(pg_server, run_id)
    assert result.returncode != 0, output[-3000:]

    # Each category: an instance per org its day's accounts use; the big one's default org in shards.
    syncs = {task: state for task, (_, state) in states.items() if task.startswith("validate_and_map_")}
    big = {task: state for task, state in syncs.items() if task.startswith("validate_and_map_message_activity[")}
    assert big == {
        "validate_and_map_message_activity[salesforce_b]": "failed",
        "validate_and_map_message_activity[salesforce_default 1/2]": "success",
        "validate_and_map_message_activity[salesforce_default 2/2]": "success",
        "validate_and_map_message_activity[salesforce_missing]": "failed",
    }, (states, dag_runs.failure_message(output))
    failed = sorted(task for task, state in syncs.items() if state == "failed")
    assert len(failed) == 10 and all("[salesforce_b]" in t or "[salesforce_missing]" in t for t in failed), syncs
    assert {states[t][0] for t in failed} == {1}  # a refused login or a missing connection: no Airflow retry
    assert states["report"][1] == "failed" and states["clear_staging"][1] == "success"

    # The default org: written in full, counts saved and adding up; the blank connection is it too.
    saved = counts(db, run_id)
    assert set(saved) == {"acct-001", "acct-004", "acct-005", "acct-006"}, saved  # 005 and 006 kept the default
    for account_id, (extracted, written, failed_rows, skipped, unchanged) in saved.items():
        assert extracted == written + failed_rows + skipped + unchanged
        assert written == expected_written(db, account_id) == records_of(org, account_id)
    assert saved["acct-001"][1] > 0 and saved["acct-004"][3] == saved["acct-004"][0]  # 004: tracking disabled
    assert records_of(second_org, "acct-002") == 0

    # The report names what did not finish, by org; one refused login for the run, not one per instance.
    assert "org salesforce_default: done" in output
    assert "org salesforce_b: NOT DONE: " in output and "org salesforce_missing: NOT DONE: " in output
    assert "did not finish (orgs not done: salesforce_b, salesforce_missing)" in output
    assert "account(s) acct-003 name 'salesforce_missing': the Airflow connection 'salesforce_missing'" in output
    assert "refused earlier in this run: not tried again" in output
    assert second_org.admin("GET", "stats").json()["logins.refused"] == 1
    assert login["password"] not in output

    # Cleared after the password is fixed: the failed instances (each after its extract, as Airflow
    # clears a task's setup with it) write the second org; the first is sent nothing again.
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_B", json.dumps(login))
    received = org.admin("GET", "stats").json().get("records.received", 0)
    rerun_org(run_id, "salesforce_b")
    assert org.admin("GET", "stats").json().get("records.received", 0) == received
    assert records_of(second_org, "acct-002") == expected_written(db, "acct-002") == counts(db, run_id)["acct-002"][1]


def rerun_org(run_id: str, conn_id: str) -> None:
    """What clearing an org's failed instances does: each category's extract again, then its instance."""
    from thrive_sync.core.catalog import Category
    from thrive_sync.operators import ValidateAndMapOperator

    window = {"data_interval_start": DAY, "data_interval_end": DAY + timedelta(days=1)}
    for category in Category:
        dag_runs.stage(category.value, run_id, DAY)
        sync = ValidateAndMapOperator(task_id=f"validate_and_map_{category.value}", category=category.value,
                                      salesforce_conn_id=conn_id)  # fmt: skip
        sync.execute({"run_id": run_id, **window})


def test_fault_one_of_two_orgs_down(two_orgs_day, org, second_org, pg_server, monkeypatch):
    """Fault matrix, "one of two orgs down": the second org answers every request 503 for the first run.
    Its instances fail after their Airflow retries; the first org is written in full. A rerun once it
    is back writes the second org and sends the first nothing again."""
    db = two_orgs_day
    spread(db, {"acct-002": "salesforce_b", "acct-005": "salesforce_b"})
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_B", dag_runs.salesforce_conn_json(second_org, retry_attempts=2,
                                                                                 http_retries=1))  # fmt: skip
    second_org.admin("PUT", "faults", json={**NO_FAULTS, "error_503_share": 1.0})
    first = dag_runs.dags_test()
    second_org.admin("PUT", "faults", json=NO_FAULTS)
    first_id = dag_runs.airflow_run_id(pg_server)
    states = dag_runs.task_states(pg_server, first_id)
    down = {t: v for t, v in states.items() if t.endswith("[salesforce_b]")}
    healthy = {t: v for t, v in states.items() if t.endswith("[salesforce_default]")}
    in_a = {a: expected_written(db, a) for a in ("acct-001", "acct-003", "acct-004", "acct-006")}
    written_a = {a: records_of(org, a) for a in in_a}
    received = org.admin("GET", "stats").json().get("records.received", 0)

    rerun = dag_runs.dags_test()
    rerun_id = dag_runs.airflow_run_id(pg_server)
    sent_again = org.admin("GET", "stats").json().get("records.received", 0) - received
    in_b = {a: (expected_written(db, a), records_of(second_org, a)) for a in ("acct-002", "acct-005")}
    rerun_counts = counts(db, rerun_id)
    result = CaseResult(
        case="one of two orgs down",
        fault="a second org (2 of 6 accounts) answers every API request 503 during the first run",
        first_run=f"failed loudly: {len(down)} instances of salesforce_b failed "
        f"({max((tries for tries, _ in down.values()), default=0)} tries each), {len(healthy)} of salesforce_default "
        f"succeeded; salesforce_default written in full: {written_a == in_a}",
        airflow_retries=sum(tries - 1 for tries, _ in states.values()),
        retries_exhausted=0,
        rerun="converged" if rerun.returncode == 0 and all(e == w for e, w in in_b.values()) else "DIFFERENT",
        same_state=all(e == w for e, w in in_b.values()) and sent_again == 0,
        conservation=all(e == w + f + s + u for e, w, f, s, u in rerun_counts.values()),
        spurious_log_rows=0,
        notes=[f"the rerun sent salesforce_default {sent_again} records"],
    )
    RESULTS[result.case] = result
    assert first.returncode != 0 and "(org not done: salesforce_b)" in first.stdout + first.stderr
    assert len(down) == 5 and {state for _, state in down.values()} == {"failed"}, states
    assert {tries for tries, _ in down.values()} == {3}  # SalesforceUnavailable: Airflow retries twice
    assert len(healthy) == 5 and {state for _, state in healthy.values()} == {"success"}, states
    assert written_a == in_a and sum(in_a.values()) > 0
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-3000:]
    assert sent_again == 0 and all(e == w > 0 for e, w in in_b.values()), in_b
    assert result.conservation
