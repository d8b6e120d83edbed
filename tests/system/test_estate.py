"""The package in the Airflow estate, under a scheduler (`airflow standalone`, LocalExecutor):
OpenLineage events, the Asset a downstream DAG is scheduled on, and the daily run's deadline.

One scheduler session serves the three (each start costs a minute or two of this machine's CPU):
a backfill of the generated day emits lineage (file transport) and updates the org's Asset, which
runs the example consumer DAG (docs/examples); a manual run held by its sensor misses a deadline a
few seconds after its creation, and the deadline alert goes to a local Slack webhook. The backfill's
own deadline passed a day after its day, before it was created: it must not alert.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from conftest import MEASUREMENTS
from dag_runs import DAY, _meta, airflow_cli, backfill, standalone

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONSUMER = "thrive_tracking_landed"
SYNC_JOB = "thrive_tracking_sync.validate_and_map_message_activity"
DEADLINE_MARGIN = timedelta(seconds=45)  # from the manual run's trigger to its deadline: the CLI's start-up fits


def dags_folder(tmp_path: Path) -> Path:
    """The sync DAG and the documented example consumer, as a user's DAGs folder holds them."""
    folder = tmp_path / "dags"
    folder.mkdir()
    shutil.copy(PROJECT_ROOT / "dags" / "thrive_tracking_sync.py", folder)
    shutil.copy(PROJECT_ROOT / "docs" / "examples" / f"{CONSUMER}.py", folder)
    return folder


def wait_for(condition, timeout: float, what: str, explain=lambda: ""):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what} {explain()}"
        time.sleep(1)
    return value


def serialized_with(env: dict[str, str], dag_id: str, text: str) -> bool:
    """Whether the DAG processor serialized ``dag_id`` from this session's folder: its latest
    serialization, or a deadline alert of it (kept in a table of their own), holds ``text``."""
    with _meta(env) as conn:
        row = conn.execute(
            "SELECT s.data::text LIKE %(text)s OR EXISTS (SELECT 1 FROM deadline_alert d"
            " WHERE d.serialized_dag_id = s.id AND d.callback_def::text LIKE %(text)s)"
            " FROM serialized_dag s WHERE s.dag_id = %(dag_id)s"
            " ORDER BY s.created_at DESC LIMIT 1",
            {"text": f"%{text}%", "dag_id": dag_id},
        ).fetchone()
    return bool(row and row[0])


def consumer_runs(env: dict[str, str]) -> list[tuple[str, str, object]]:
    """(run type, state, the task's return value) of each run of the consumer DAG."""
    with _meta(env) as conn:
        return conn.execute(
            "SELECT r.run_type, r.state, x.value FROM dag_run r LEFT JOIN xcom x ON x.dag_id = r.dag_id"
            " AND x.run_id = r.run_id AND x.key = 'return_value' WHERE r.dag_id = %s ORDER BY r.id",
            [CONSUMER],
        ).fetchall()


def asset_state(env: dict[str, str]) -> dict[str, list]:
    """What the metadata database holds of the assets, their events and the consumer: when it did not run."""
    queries = {
        "assets": 'SELECT a.id, a.name, a.uri, a."group", aa.name IS NOT NULL FROM asset a'
        " LEFT JOIN asset_active aa ON aa.name = a.name AND aa.uri = a.uri",
        "events": "SELECT asset_id, source_dag_id, source_run_id, extra::text FROM asset_event",
        "queue": "SELECT * FROM asset_dag_run_queue",
        "consumer": "SELECT dag_id, is_paused, is_stale FROM dag WHERE dag_id = 'thrive_tracking_landed'",
        "scheduled_on": "SELECT * FROM dag_schedule_asset_reference",
        "aliases": "SELECT * FROM asset_alias",
    }
    with _meta(env) as conn:
        return {name: conn.execute(query).fetchall() for name, query in queries.items()}


def lineage_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def written_by(db: str, run_id: str, category: str) -> int:
    with psycopg.connect(db) as conn:
        return conn.execute("SELECT sum(written) FROM thrive_sync.sync_runs WHERE dag_run_id = %s AND category = %s",
                            [run_id, category]).fetchone()[0]  # fmt: skip


def trigger_to_miss_its_deadline(env: dict[str, str]) -> str:
    """A manual run whose deadline (its logical date, a day, THRIVE_SYNC_DEADLINE=00:00) comes
    DEADLINE_MARGIN after now, held by its sensor (delay_minutes a day) until the deadline passed."""
    logical = datetime.now(UTC) + DEADLINE_MARGIN - timedelta(days=1)
    run_id = f"manual__deadline_{int(logical.timestamp())}"
    airflow_cli("dags", "trigger", "thrive_tracking_sync", "--run-id", run_id, "--logical-date", logical.isoformat(),
                "--conf", json.dumps({"delay_minutes": 1440}), env=env)  # fmt: skip
    return run_id


def newest_backfill_run(env: dict[str, str]) -> str:
    with _meta(env) as conn:
        return conn.execute("SELECT run_id FROM dag_run WHERE dag_id = 'thrive_tracking_sync' AND run_type = 'backfill'"
                            " ORDER BY id DESC LIMIT 1").fetchone()[0]  # fmt: skip


def forget_unfinished_runs(pg_server) -> None:
    """Delete the runs the session left waiting (the manual run and the real yesterday's scheduled run,
    both in their sensors): a later test's Airflow on the same metadata database would resume them,
    and with max_active_runs=1 its own runs would queue behind them."""
    with psycopg.connect(pg_server.uri("airflow")) as meta:
        meta.execute("DELETE FROM dag_run WHERE dag_id IN ('thrive_tracking_sync', %s)"
                     " AND state NOT IN ('success', 'failed')", [CONSUMER])  # fmt: skip
        meta.execute("UPDATE dag SET is_paused = true WHERE dag_id = %s", [CONSUMER])  # later tests' events: no run


def test_lineage_asset_and_deadline_under_a_scheduler(wired, slack, monkeypatch, tmp_path, pg_server):
    lineage_file = tmp_path / "openlineage.jsonl"
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags_folder(tmp_path)))
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT",
                       json.dumps({"type": "file", "log_file_path": str(lineage_file), "append": True}))  # fmt: skip
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", "thrive-test")
    monkeypatch.setenv("THRIVE_SYNC_DEADLINE", "00:00")
    # With the schedule on (asset-triggered runs need it), the sync DAG also gets a scheduled run of the
    # real yesterday: held by its sensor (a delay of a day), it never extracts, so it neither depends on
    # today's date nor adds lineage or an Asset; its deadline passed before it was created: no alert.
    monkeypatch.setenv("THRIVE_SYNC_DELAY_MINUTES", "1440")
    try:
        with standalone(tmp_path / "standalone.log", schedule=True) as (env, _):
            wait_for(lambda: serialized_with(env, "thrive_tracking_sync", "deadline_missed"), 180, "the deadline")
            wait_for(lambda: serialized_with(env, CONSUMER, "salesforce://salesforce_default"), 180, "the consumer")
            airflow_cli("dags", "unpause", CONSUMER, env=env)
            states = backfill(env, DAY.isoformat(), DAY.isoformat())
            consumer = wait_for(lambda: [r for r in consumer_runs(env) if r[1] in ("success", "failed")], 180,
                                "the consumer DAG's run", lambda: asset_state(env))  # fmt: skip
            deadline_run = trigger_to_miss_its_deadline(env)
            wait_for(lambda: slack, 240, "the deadline alert")
            time.sleep(5)  # anything else the scheduler would send comes now
            backfill_run = newest_backfill_run(env)
    finally:
        forget_unfinished_runs(pg_server)
    assert states == {DAY.isoformat(): "success"}, (tmp_path / "standalone.log").read_text()[-3000:]

    # Lineage: the sync instance's inputs, output and counts, as the provider sent them.
    events = lineage_events(lineage_file)
    complete = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == SYNC_JOB]
    assert complete, sorted({(e["eventType"], e["job"]["name"]) for e in events})
    event = complete[-1]
    database = psycopg.conninfo.conninfo_to_dict(wired)["dbname"]
    assert {i["name"] for i in event["inputs"]} == {
        f"{database}.thrive.message_activity",
        f"{database}.thrive.accounts",
        f"{database}.thrive_sync.staged_events",
    }
    assert all(i["namespace"].startswith("postgres://") for i in event["inputs"])
    output = next(o for o in event["outputs"] if o["namespace"] == "salesforce://salesforce_default")
    counts = event["run"]["facets"]["thriveSyncCounts"]
    written = written_by(wired, backfill_run, "message_activity")
    assert output["name"] == "Thrive_Activity__c" and output["outputFacets"]["outputStatistics"]["rowCount"] == written
    assert counts["written"] == written > 0 and counts["extracted"] == counts["written"] + counts["failed"] + counts[
        "skipped"] and sum(counts["failedByReason"].values()) == counts["failed"]  # fmt: skip

    MEASUREMENTS["OpenLineage COMPLETE of validate_and_map_message_activity"] = (
        f"{output['namespace']}/{output['name']} rowCount {written:,}; thriveSyncCounts {counts['extracted']:,} "
        f"extracted, {counts['failed']:,} failed {counts['failedByReason']}, {counts['skipped']:,} skipped"
    )
    # The Asset: the backfill's landed day ran the consumer, which read the day from the event.
    assert [(run_type, state) for run_type, state, _ in consumer] == [("asset_triggered", "success")], consumer
    landed = consumer[0][2] if isinstance(consumer[0][2], list) else json.loads(consumer[0][2])
    assert [extra["dag_run_id"] for extra in landed] == [backfill_run]
    assert landed[0]["window_start"].startswith(DAY.isoformat())

    MEASUREMENTS["asset-triggered consumer runs"] = f"{[(t, s) for t, s, _ in consumer]}, read {landed}"
    MEASUREMENTS["deadline alerts (Slack)"] = " | ".join(m["text"].splitlines()[0] for m in slack)
    # The deadline: one alert, for the run that existed before its deadline; none for the backfill.
    assert len(slack) == 1, slack
    assert slack[0]["text"].startswith("*[CRITICAL] thrive_tracking_sync: the day's tracking is not in Salesforce by")
    assert deadline_run in slack[0]["text"]
