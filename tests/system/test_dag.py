"""The DAG: imports cleanly and cheaply, is configured for production, and runs a day end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import psycopg
import pytest

from conftest import MEASUREMENTS, PROJECT_ROOT, airflow_conn_for
from dag_runs import dags_test
from thrive_dev.demo import report_block
from thrive_dev.sample_data import SampleConfig, load
from thrive_sync.core.catalog import Category

DAGS = PROJECT_ROOT / "dags"
DAY = date(2026, 11, 26)


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    # A thrive_db that does not exist: parsing must not connect to anything.
    os.environ["AIRFLOW_CONN_THRIVE_DB"] = '{"conn_type": "postgres", "host": "/nonexistent", "schema": "x"}'
    try:
        bag = DagBag(dag_folder=str(DAGS))  # examples are off: AIRFLOW__CORE__LOAD_EXAMPLES
    finally:
        del os.environ["AIRFLOW_CONN_THRIVE_DB"]
    return bag


def test_dagbag_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "thrive_tracking_sync" in dagbag.dags


def test_every_dag_has_tags_and_every_task_retries(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, dag_id
        for task in dag.tasks:
            assert task.retries >= 2, (dag_id, task.task_id)


def test_dag_shape(dagbag):
    dag = dagbag.dags["thrive_tracking_sync"]
    assert {t.task_id for t in dag.tasks} == (
        {"wait_after_midnight", "check_accounts", "report", "publish_landed", "clear_staging"}
        | {f"extract_{c.value}" for c in Category}
        | {f"validate_and_map_{c.value}" for c in Category}
    )
    assert dag.max_active_runs == 1 and not dag.catchup
    assert dag.doc_md and all(t.doc_md for t in dag.tasks)
    for c in Category:  # a task group per category, the task ids unchanged
        assert dag.task_group.children[c.value].children.keys() == {f"extract_{c.value}", f"validate_and_map_{c.value}"}
    teardown = dag.get_task("clear_staging")
    assert teardown.is_teardown and {t.task_id for t in teardown.upstream_list if t.is_setup} == {
        f"extract_{c.value}" for c in Category
    }
    assert dag.get_task("report").trigger_rule == "all_done"
    assert "report" not in {t.task_id for t in teardown.get_flat_relatives(upstream=True)}  # never skipped with it
    publish = dag.get_task("publish_landed")  # an org that landed is published even when another failed
    assert publish.trigger_rule == "all_done" and [o.name for o in publish.outlets] == ["thrive_tracking_sync_landed"]
    assert dag.deadline is None  # off by default (THRIVE_SYNC_DEADLINE)


def test_only_the_plugin_module_is_loaded_as_a_plugin():
    """plugins/.airflowignore: the package's files are not imported again as top-level modules."""
    code = (
        "from airflow import plugins_manager as p; p.ensure_plugins_loaded(); import sys; "
        "print([m for m in ('sql', 'schema', 'ui', 'operators') if m in sys.modules], "
        "'thrive_sync_plugin' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "[] True"


def test_the_setup_dag_creates_the_tables_in_an_empty_database(airflow_metadata, fresh_db, pg_server):
    """How a deployment without `make up` gets the thrive_sync tables: trigger thrive_tracking_sync_setup."""
    env = {"AIRFLOW_CONN_THRIVE_DB": airflow_conn_for(pg_server, fresh_db)}
    for attempt in ("first", "again"):  # idempotent
        result = dags_test(env=env, dag_id="thrive_tracking_sync_setup")
        assert result.returncode == 0, (attempt, (result.stdout + result.stderr)[-3000:])
    with psycopg.connect(fresh_db) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'thrive_sync'")}
    assert {"sync_runs", "tracking_log", "staged_events", "member_matches"} <= tables


def test_dag_file_parse_time_is_measured(dagbag):
    """Reported, not asserted: timing belongs to benchmarks, and a loaded CI box would flake."""
    per_file = {Path(s.file).name: s.duration for s in dagbag.dagbag_stats}
    parse = per_file["thrive_tracking_sync.py"]
    seconds = parse.total_seconds() if hasattr(parse, "total_seconds") else float(parse)
    # The file alone, in a fresh interpreter with Airflow already imported.
    code = (
        "import time, runpy, airflow.sdk, airflow.providers.common.sql.operators.sql\n"
        f"t = time.perf_counter(); runpy.run_path({str(DAGS / 'thrive_tracking_sync.py')!r})\n"
        "print(time.perf_counter() - t)"
    )
    alone = float(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
        .stdout.strip()
        .splitlines()[-1]
    )
    MEASUREMENTS["DAG file parse (DagBag)"] = f"{seconds * 1000:.0f} ms"
    MEASUREMENTS["DAG file import, Airflow preloaded"] = f"{alone * 1000:.0f} ms"
    assert seconds > 0 and alone > 0


def test_no_enabled_account_short_circuits_visibly(airflow_metadata, fresh_db, pg_server):
    load(fresh_db, SampleConfig(start=DAY, events=500, recipients_per_account=30, seed=5))
    with psycopg.connect(fresh_db) as conn:
        conn.execute("UPDATE thrive.accounts SET tracking_enabled = false")
    result = dags_test(env={"AIRFLOW_CONN_THRIVE_DB": airflow_conn_for(pg_server, fresh_db)})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "No account has tracking enabled (4 accounts): nothing to sync." in output
    assert report_block(output) == []  # downstream tasks skipped
