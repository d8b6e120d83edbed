"""Configuration mistakes fail the run at once, before any record is sent, naming what to fix."""

from __future__ import annotations

import json
import time

import psycopg
import pytest

from dag_runs import airflow_run_id, dags_test, failure_message, task_states
from reliability_report import CONFIG, ConfigResult

MAPPING = """\
object: {object}
external_id_field: Thrive_Event_Id__c
fields:
  Thrive_Event_Id__c: external_id
  Activity_Group__c: activity_code
  {extra_field}: {extra_source}
"""


def mapping_file(tmp_path, object_name="Thrive_Activity__c", extra_field="Detail__c", extra_source="detail") -> str:
    path = tmp_path / "mapping.yaml"
    path.write_text(MAPPING.format(object=object_name, extra_field=extra_field, extra_source=extra_source))
    return str(path)


def broken_session(org) -> str:
    conn = json.loads(org.salesforce_conn())
    conn["password"] = "00D000000000000!not-the-session"  # the direct-session shape: the session is the password
    return json.dumps(conn)


CASES = {
    "no Salesforce connection": (
        lambda org, tmp: {"AIRFLOW_CONN_SALESFORCE_DEFAULT": None},
        "the Airflow connection 'salesforce_default' (Salesforce) is not defined",
    ),
    "no thrive_db connection": (
        lambda org, tmp: {"AIRFLOW_CONN_THRIVE_DB": None},
        "the Airflow connection 'thrive_db' (the PostgreSQL database with the thrive tables) is not defined",
    ),
    "wrong Salesforce password": (
        lambda org, tmp: {"AIRFLOW_CONN_SALESFORCE_DEFAULT": broken_session(org)},
        "Salesforce refused the credentials of connection 'salesforce_default' (INVALID_SESSION_ID)",
    ),
    "mapping: unknown object": (
        lambda org, tmp: {"THRIVE_SYNC_MAPPING": mapping_file(tmp, object_name="Thrive_Activty__c")},
        "has no object 'Thrive_Activty__c'",
    ),
    "mapping: field not in the org": (
        lambda org, tmp: {"THRIVE_SYNC_MAPPING": mapping_file(tmp, extra_field="Detail_Text__c")},
        "has no field(s) ['Detail_Text__c'] on Thrive_Activity__c",
    ),
    "mapping: unknown source value": (
        lambda org, tmp: {"THRIVE_SYNC_MAPPING": mapping_file(tmp, extra_source="link")},
        "unknown source value(s) ['link']",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_configuration_mistake_fails_at_once_and_writes_nothing(case, wired, org, pg_server, monkeypatch, tmp_path):
    change, expected = CASES[case]
    for name, value in change(org, tmp_path).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    started = time.monotonic()
    result = dags_test()
    seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    # Measured and recorded first, asserted after: a failing case still leaves its row.
    run_id = airflow_run_id(pg_server)
    states = task_states(pg_server, run_id)
    # The report fails too when a sync task failed (it prints what was done): the cause is the rest.
    failed = sorted(task for task, (_, state) in states.items() if state == "failed" and task != "report")
    tries = max((states[task][0] for task in failed), default=0)
    sent = org.admin("GET", "stats").json().get("records.received", 0)
    with psycopg.connect(wired) as conn:
        logged = conn.execute(
            "SELECT count(*) FROM thrive_sync.tracking_log WHERE dag_run_id = %s", [run_id]
        ).fetchone()[0]
    notes = [
        note
        for problem, note in (
            (result.returncode == 0, "the run succeeded"),
            (expected not in output, f"the output does not say `{expected}`"),
            (logged != 0, f"{logged} tracking-log row(s) written"),
        )
        if problem
    ]
    CONFIG[case] = ConfigResult(
        case=case,
        failed_task=(", ".join(failed) if len(failed) < 3 else f"{failed[0]} and {len(failed) - 1} more")
        or "(no task failed)",
        tries=tries,
        seconds=seconds,
        records_sent=sent,
        message=failure_message(output),
        notes=notes,
    )
    assert result.returncode != 0
    assert expected in output, output[-3000:]
    assert failed, states
    assert tries == 1, f"a configuration error must not be retried: {states}"
    assert sent == 0
    assert logged == 0


def test_a_bad_param_value_is_refused_before_the_run_is_created(wired, org):
    started = time.monotonic()
    result = dags_test({"delay_minutes": 0, "failure_threshold": 7})
    seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    sent = org.admin("GET", "stats").json().get("records.received", 0)
    refused = "failure_threshold" in output and "7 is greater than the maximum of 1" in output
    line = next((line for line in output.splitlines() if "7 is greater than the maximum of 1" in line), None)
    # Recorded before the asserts: a failing case still leaves its row.
    CONFIG["bad param value"] = ConfigResult(
        case="bad param value",
        failed_task="(no run created)" if result.returncode != 0 else "(the run went ahead)",
        tries=0,
        seconds=seconds,
        records_sent=sent,
        message=line.strip()[:200] if line else failure_message(output),
        notes=[] if refused else ["the output does not name the refused param value"],
    )
    assert result.returncode != 0
    assert refused, output[-3000:]
    assert sent == 0


def test_a_database_without_the_package_tables_fails_at_once_naming_the_setup_dag(
    fresh_db, pg_server, org, monkeypatch, airflow_metadata
):
    """A new deployment whose setup DAG never ran (or an upgrade that added a table): ``check_accounts``
    fails before any extract, saying which DAG to trigger, not with a missing-relation error mid-run."""
    from conftest import airflow_conn_for
    from dag_runs import salesforce_conn_json
    from thrive_dev.schema import apply_schema

    with psycopg.connect(fresh_db) as conn:
        apply_schema(conn, ("schema/01_thrive.sql",))  # the source tables only
    monkeypatch.setenv("AIRFLOW_CONN_THRIVE_DB", airflow_conn_for(pg_server, fresh_db))
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", salesforce_conn_json(org))
    case = "package tables missing"
    started = time.monotonic()
    result = dags_test()
    seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    states = task_states(pg_server, airflow_run_id(pg_server))
    failed = sorted(task for task, (_, state) in states.items() if state == "failed" and task != "report")
    expected = (
        "lacks the package's table(s) thrive_sync.bulk_jobs, thrive_sync.event_ledger, thrive_sync.member_matches, "
        "thrive_sync.org_health, thrive_sync.org_usage, thrive_sync.refused_logins, thrive_sync.retention_runs, "
        "thrive_sync.run_parts, "
        "thrive_sync.shard_of(), thrive_sync.staged_events, thrive_sync.staged_tallies, "
        "thrive_sync.sync_run_shards, thrive_sync.sync_runs, thrive_sync.tracking_log: "
        "trigger the DAG "
        "thrive_tracking_sync_setup once"
    )
    CONFIG[case] = ConfigResult(
        case=case,
        failed_task=", ".join(failed) or "(no task failed)",
        tries=max((states[task][0] for task in failed), default=0),
        seconds=seconds,
        records_sent=org.admin("GET", "stats").json().get("records.received", 0),
        message=failure_message(output),
        notes=[] if expected in output else [f"the output does not say `{expected}`"],
    )
    assert result.returncode != 0 and expected in output, output[-3000:]
    assert failed == ["check_accounts"] and CONFIG[case].tries == 1, states
    assert CONFIG[case].records_sent == 0
