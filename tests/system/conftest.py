"""Test harness: the suite starts its own PostgreSQL and deletes it afterwards.

The server comes from the same embedded path as ``make up`` (:mod:`thrive_dev.localdb`), in a
temporary folder, never one assumed to be running. It is started in ``pytest_configure`` —
before any test module imports Airflow — because Airflow reads its metadata-database setting
at import time. Every test gets fresh databases on it; Airflow's metadata lives in one more.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

import dag_runs
from measured import MEASUREMENTS  # noqa: F401 - the tests import it from here

PROJECT_ROOT = Path(__file__).resolve().parents[2]

_state: dict[str, object] = {}


def is_xdist_controller(config: pytest.Config) -> bool:
    """Whether this process hands the tests to pytest-xdist workers (``-n N``) and runs none itself."""
    return not hasattr(config, "workerinput") and bool(getattr(config.option, "numprocesses", None))


def pytest_configure(config: pytest.Config) -> None:
    from thrive_dev import localdb

    # A sourced .local/env.sh or a user's own connections must not leak into the tests.
    for name in list(os.environ):
        if name.startswith(("AIRFLOW_", "AIRFLOW__", "THRIVE_")):
            del os.environ[name]
    if is_xdist_controller(config):
        return  # each worker starts its own PostgreSQL, Airflow home and sandbox: nothing is shared
    root = Path(tempfile.mkdtemp(prefix="tts-"))  # short: unix socket paths are limited to ~100 bytes
    server = localdb.start(root / "pg")
    server.ensure_database("airflow")
    os.environ.update(
        AIRFLOW_HOME=str(root / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(PROJECT_ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(PROJECT_ROOT / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"postgresql+psycopg://postgres@/airflow?host={server.socket_dir}",
        PYTHONPATH=os.pathsep.join(
            [str(PROJECT_ROOT / "plugins"), str(PROJECT_ROOT / "tools"), os.environ.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep),
    )
    _state.update(root=root, server=server)


def pytest_unconfigure(config: pytest.Config) -> None:
    from thrive_dev import localdb

    server = _state.get("server")
    if server is not None:
        localdb.remove(server.pgdata)  # type: ignore[attr-defined]
    if "root" in _state:
        shutil.rmtree(_state["root"], ignore_errors=True)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def pg_server():
    """The suite's own embedded PostgreSQL (a :class:`thrive_dev.localdb.LocalServer`)."""
    return _state["server"]


@pytest.fixture(scope="session")
def tmp_root() -> Path:
    return _state["root"]  # type: ignore[return-value]


@contextmanager
def scratch_database(pg_server, prefix: str = "t") -> Iterator[str]:
    """A new, empty database on the suite's server; its libpq URI. Dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with pg_server.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield pg_server.uri(name)
    finally:
        with pg_server.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def fresh_db(pg_server) -> Iterator[str]:
    """A new, empty database for one test."""
    with scratch_database(pg_server) as uri:
        yield uri


def airflow_conn_for(pg_server, uri: str) -> str:
    """The ``AIRFLOW_CONN_THRIVE_DB`` value (JSON form) for a database on the suite's server."""
    database = psycopg.conninfo.conninfo_to_dict(uri)["dbname"]
    return json.dumps(
        {"conn_type": "postgres", "host": str(pg_server.socket_dir), "login": "postgres", "schema": database}
    )


@pytest.fixture(scope="session")
def airflow_metadata() -> None:
    """Airflow's metadata database, migrated once for the session."""
    airflow = Path(sys.executable).parent / "airflow"
    result = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


NO_FAULTS = {
    "error_503_share": 0,
    "limit_403_share": 0,
    "invalid_session_share": 0,
    "drop_share": 0,
    "lock_row_share": 0,
    "latency_ms": 0,
    "latency_share": 1.0,
    "latency_after_ms": 0,
    "latency_after_share": 0,
    "latency_after_requests": 0,
    "upsert_race_ms": 0,
    "outage_requests": 0,
    "invalid_session_requests": 0,
    "limit_403_requests": 0,
    "limit_403_burst": 1,
    "queue_seconds": 0.1,  # Bulk jobs: the sandbox's default pace (docs/development.md), no failures
    "batch_seconds": 0.05,
    "batch_workers": 3,
    "batch_fail_share": 0,
    "fail_job_after_batches": 0,
    "parent_lock_wait_seconds": 0,
    "drop_after_share": 0,
    "drop_after_requests": 0,
    "drop_after_calls": "create,upload,close,abort,poll",
    "seed": 1,
}


@pytest.fixture(scope="session")
def sandbox(tmp_root):
    """The local Salesforce sandbox, started through the same path as `make up`."""
    from thrive_dev import sandbox as sf_sandbox

    info = sf_sandbox.start(tmp_root / "sf")
    yield info
    sf_sandbox.stop(tmp_root / "sf")


@pytest.fixture
def org(sandbox):
    """The sandbox with no records and no faults; faults are cleared again afterwards."""
    sandbox.admin("POST", "reset")
    sandbox.admin("PUT", "faults", json=NO_FAULTS)
    yield sandbox
    sandbox.admin("PUT", "faults", json=NO_FAULTS)


@pytest.fixture
def sf(org):
    """The real simple_salesforce client on a direct session to the sandbox."""
    from simple_salesforce import Salesforce

    return Salesforce(session_id=org.token, instance_url=org.url, session=org.session())


@pytest.fixture
def salesforce_conn(org, monkeypatch):
    """``salesforce_default`` pointed at the sandbox, as `make up` exports it."""
    conn = json.loads(org.salesforce_conn())
    conn["extra"]["http_backoff"] = 0.01  # tests inject many faults; production keeps the default
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps(conn))
    return "salesforce_default"


@pytest.fixture
def login_conns(org, tmp_root) -> dict[str, str]:
    """``{"password": ..., "jwt": ...}``: connections (JSON) that log in to the sandbox, as `make up` exports them."""
    from thrive_dev.services import sandbox_login_conns

    conns = sandbox_login_conns(org, tmp_root / "sf")
    return {"password": conns["SF_SANDBOX_PASSWORD_CONN"], "jwt": conns["SF_SANDBOX_JWT_CONN"]}


@pytest.fixture(scope="session")
def day_db(pg_server) -> Iterator[str]:
    """One generated day (4,000 events) for the reliability tests; each run writes under its own run id."""
    from thrive_dev.sample_data import SampleConfig, load

    with scratch_database(pg_server, "rel") as uri:
        load(uri, SampleConfig(start=dag_runs.DAY, days=1, events=4_000, recipients_per_account=60, seed=11))
        yield uri


def wire(db: str, pg_server, org, monkeypatch) -> str:
    """``db`` and the sandbox (seeded from it) as the DAG's connections; Airflow retries after 1 s."""
    from thrive_dev.sandbox import seed_from_sample

    seed_from_sample(org, db)
    dag_runs.forget_ledger(db)  # the org is fresh: so is what the package remembers of it
    monkeypatch.setenv("AIRFLOW_CONN_THRIVE_DB", airflow_conn_for(pg_server, db))
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", dag_runs.salesforce_conn_json(org))
    monkeypatch.setenv("THRIVE_SYNC_RETRY_DELAY_SECONDS", "1")
    return db


@pytest.fixture
def wired(day_db, pg_server, org, monkeypatch, airflow_metadata):
    """The generated day's database and the sandbox as the DAG's connections."""
    return wire(day_db, pg_server, org, monkeypatch)


class SlackWebhook(BaseHTTPRequestHandler):
    """A local stand-in for Slack's incoming webhook: keeps each posted message, answers ``ok`` as Slack does."""

    received: list[dict] = []  # noqa: RUF012 - one server per test, reset by the fixture

    def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        SlackWebhook.received.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def slack(monkeypatch) -> Iterator[list[dict]]:
    """The Slack notifier (Variable thrive_sync_alerts) pointed at a local webhook; the messages it received."""
    SlackWebhook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlackWebhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/XXXX"
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_DEFAULT", json.dumps({"conn_type": "slackwebhook", "password": url}))
    monkeypatch.setenv("AIRFLOW_VAR_THRIVE_SYNC_ALERTS", json.dumps({"notifier": "slack"}))
    yield SlackWebhook.received
    server.shutdown()
