"""Known secrets planted in the connections never show up in any output a run leaves behind.

Three runs: one through faults (503s and expired sessions, so retries and their messages happen),
one with a refused session (the credentials error path), one with a mapping the org rejects (a
configuration error). Then every output is searched: the runs' console output (task logs included),
Airflow's log folder, XCom, rendered template fields, the task instances' notes and the package's
own tables.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import psycopg

from conftest import NO_FAULTS, airflow_conn_for
from dag_runs import dags_test, salesforce_conn_json
from reliability_report import OTHER

SECURITY_TOKEN = "PLANTEDsecurityTOKEN7f3a9"
PRIVATE_KEY = "-----BEGIN PRIVATE KEY-----\nPLANTEDkeyMATERIAL9c1e\n-----END PRIVATE KEY-----"
PG_PASSWORD = "PLANTED-pg-password-41b7"
WRONG_SESSION = "00D000000000000!PLANTEDwrongSESSION55"


def with_planted(conn_json: str, password: str | None = None) -> str:
    conn = json.loads(conn_json)
    conn["extra"].update(security_token=SECURITY_TOKEN, private_key=PRIVATE_KEY)
    if password:
        conn["password"] = password
    return json.dumps(conn)


def test_planted_secrets_reach_no_output(wired, org, pg_server, monkeypatch, tmp_path):
    thrive = json.loads(airflow_conn_for(pg_server, wired))
    thrive["password"] = PG_PASSWORD  # the suite's server trusts its socket; the password is only carried
    monkeypatch.setenv("AIRFLOW_CONN_THRIVE_DB", json.dumps(thrive))
    good = with_planted(salesforce_conn_json(org))
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", good)
    secrets = {
        "the session id (connection password)": org.token,
        "security_token extra": SECURITY_TOKEN,
        "private_key extra": PRIVATE_KEY.splitlines()[1],
        "PostgreSQL password": PG_PASSWORD,
        "a refused session id": WRONG_SESSION,
    }

    org.admin("PUT", "faults", json={**NO_FAULTS, "error_503_share": 0.1, "invalid_session_share": 0.02})
    outputs = {"run through faults": dags_test()}
    org.admin("PUT", "faults", json=NO_FAULTS)
    outputs["run with a refused session"] = dags_test(
        env={"AIRFLOW_CONN_SALESFORCE_DEFAULT": with_planted(salesforce_conn_json(org), password=WRONG_SESSION)}
    )
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "object: Thrive_Activity__c\nexternal_id_field: Thrive_Event_Id__c\n"
        "fields:\n  Thrive_Event_Id__c: external_id\n  Secret_Field__c: detail\n"
    )
    outputs["run with a mapping the org rejects"] = dags_test(env={"THRIVE_SYNC_MAPPING": str(mapping)})
    # Each run must have taken the path it is there for; checked after the search is recorded.
    went_as_planned = {
        "run through faults": outputs["run through faults"].returncode == 0,
        "run with a refused session": "Salesforce refused the credentials"
        in outputs["run with a refused session"].stdout,
        "run with a mapping the org rejects": "has no field(s) ['Secret_Field__c']"
        in outputs["run with a mapping the org rejects"].stdout,
    }

    haystacks: dict[str, str] = {name: r.stdout + r.stderr for name, r in outputs.items()}
    logs = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    for path in logs.rglob("*") if logs.exists() else ():
        if path.is_file():
            haystacks[f"log file {path.relative_to(logs)}"] = path.read_text(errors="replace")
    with psycopg.connect(pg_server.uri("airflow")) as meta:
        for table, column in (
            ("xcom", "value"),
            ("rendered_task_instance_fields", "rendered_fields"),
            ("task_instance", "rendered_map_index"),
            ("dag_run", "conf"),
        ):
            values = meta.execute(f"SELECT {column}::text FROM {table}").fetchall()  # noqa: S608 - fixed names
            haystacks[f"Airflow {table}.{column}"] = "\n".join(v or "" for (v,) in values)
    with psycopg.connect(wired) as conn:
        for table in ("tracking_log", "sync_runs"):
            rows = conn.execute(f"SELECT t::text FROM thrive_sync.{table} t").fetchall()  # noqa: S608 - fixed names
            haystacks[f"thrive_sync.{table}"] = "\n".join(r for (r,) in rows)

    found = [(name, where) for name, secret in secrets.items() for where, text in haystacks.items() if secret in text]
    searched = sum(len(t) for t in haystacks.values())
    # Recorded before the asserts: a failing search still leaves its section.
    problems = [f"Found: {name} in {where}." for name, where in found[:10]]
    problems += [f"({len(found) - 10} more occurrences.)"] if len(found) > 10 else []
    problems += [f"The {run} did not go as planned." for run, ok in went_as_planned.items() if not ok]
    OTHER["Secrets"] = [
        *([" ".join(problems), ""] if problems else []),
        f"Planted: {', '.join(secrets)}. Three runs (through 503s and expired sessions; with a refused "
        "session; with a mapping the org rejects), then searched: "
        f"{len(haystacks)} outputs ({searched:,} characters: the runs' console "
        "output with every task log, Airflow's log folder, XCom, rendered template fields, run conf, and "
        f"`thrive_sync.tracking_log` / `sync_runs`). Occurrences found: {len(found)}.",
        "",
        "SQL lives in `include/sql/` and takes values only as parameters (psycopg `%(name)s`);",
        "`tests/system/test_secrets.py::test_sql_is_parameterised` checks that no query in `plugins/` or the DAG",
        "is built with an f-string or `%` formatting. The one SOQL text built from values (the member-ID",
        "`IN` list) only ever holds Ids that passed the local check (15 or 18 letters and digits with a",
        "valid checksum). The sandbox binds 127.0.0.1 only and answers 401 without its token",
        "(`tests/system/test_sandbox.py::test_token_is_required_and_only_loopback_is_bound`).",
    ]
    for run, ok in went_as_planned.items():
        assert ok, f"{run}: " + outputs[run].stdout[-3000:]
    assert found == []
    assert searched > 100_000  # the search did look at real output


def test_sql_is_parameterised():
    """No SQL statement is assembled from values: every query call's text is a literal or read_sql(...)."""
    root = Path(__file__).resolve().parents[2]
    calls = {"execute", "executemany", "copy", "run", "get_records", "get_first"}
    offenders, seen = [], 0
    for path in [*(root / "plugins").rglob("*.py"), root / "dags" / "thrive_tracking_sync.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
                continue
            if node.func.attr not in calls:
                continue
            seen += 1
            text = node.args[0]
            built = isinstance(text, ast.JoinedStr) or (isinstance(text, ast.BinOp) and isinstance(text.op, ast.Mod))
            built |= isinstance(text, ast.Call) and isinstance(text.func, ast.Attribute) and text.func.attr == "format"
            if built:
                offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert seen >= 10 and offenders == []
