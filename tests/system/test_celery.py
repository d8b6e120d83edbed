"""Proven on a distributed executor (issue 16, item 2): a day run by Airflow's CeleryExecutor, with a
real Redis broker and two Celery workers in working folders of their own, sharing only the DAG and
plugin folders, the databases and the environment. Its tasks spread over both workers, and the
outcome is the one ``airflow dags test`` gets from the same day: the same records with the same
values, the same counts."""

from __future__ import annotations

import time
from collections import Counter
from datetime import date

import dag_runs
from celery_cluster import backfill_day, celery_cluster, hosts_by_task
from conftest import MEASUREMENTS, airflow_conn_for
from thrive_dev.sample_data import SampleConfig, load
from thrive_dev.sandbox import seed_from_sample

DAY = date(2026, 11, 26)


def test_a_day_on_two_celery_workers_matches_the_same_day_in_one_process(
    fresh_db, pg_server, org, sf, airflow_metadata, tmp_path, monkeypatch
):
    load(fresh_db, SampleConfig(start=DAY, days=1, events=3_000, recipients_per_account=40, seed=21))
    monkeypatch.setenv("AIRFLOW_CONN_THRIVE_DB", airflow_conn_for(pg_server, fresh_db))
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", dag_runs.salesforce_conn_json(org))
    monkeypatch.setenv("THRIVE_SYNC_SHARD_ROWS", "1000")  # message activity in shards: more instances to spread
    seed_from_sample(org, fresh_db)
    local = dag_runs.dags_test()
    assert local.returncode == 0, (local.stdout + local.stderr)[-3000:]
    in_one_process = dag_runs.snapshot(fresh_db, sf, dag_runs.latest_run_id(fresh_db))

    org.admin("POST", "reset")  # the same day again, from an empty org and an empty ledger
    seed_from_sample(org, fresh_db)
    dag_runs.forget_ledger(fresh_db)
    started = time.monotonic()
    with celery_cluster(tmp_path) as env:
        run_id, state = backfill_day(env, DAY.isoformat())
        hosts = hosts_by_task(env, run_id)
    spread = Counter(hosts.values())
    MEASUREMENTS["Celery run, task instances per worker"] = ", ".join(f"{w}: {n}" for w, n in sorted(spread.items()))
    MEASUREMENTS["Celery run, cluster up to run done"] = f"{time.monotonic() - started:.0f} s"
    logs = "\n".join(p.read_text(errors="replace")[-1500:] for p in sorted(tmp_path.rglob("*.log")))
    assert state == "success", logs[-6000:]
    assert set(spread) == {"worker-1", "worker-2"}, hosts  # both workers ran tasks, nothing else did
    on_celery = dag_runs.snapshot(fresh_db, sf, run_id)
    assert on_celery.records == in_one_process.records and on_celery.record_count == len(on_celery.records)
    assert on_celery.counts == in_one_process.counts and on_celery.log == in_one_process.log
