"""`make up` / `make down`: the embedded server, .local/env.sh, restarts, and bad input."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from conftest import MEASUREMENTS, PROJECT_ROOT, airflow_conn_for
from thrive_dev import localdb, sandbox

REQUIRED_EXPORTS = (
    "PATH",
    "AIRFLOW_HOME",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW_CONN_THRIVE_DB",
    "THRIVE_DB_URI",
    "AIRFLOW_CONN_SALESFORCE_DEFAULT",
    "SF_SANDBOX_URL",
    "SF_SANDBOX_TOKEN",
    "SF_SANDBOX_DIR",
    "SF_SANDBOX_PASSWORD_CONN",
    "SF_SANDBOX_JWT_CONN",
    "SF_SANDBOX_CA",
)


def thrive_dev(local: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "thrive_dev", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "THRIVE_LOCAL_DIR": str(local), **env},
    )


def in_env_sh(local: Path, command: str) -> subprocess.CompletedProcess:
    """Run ``command`` in a shell that sourced env.sh, from the root folder (not the project)."""
    return subprocess.run(
        ["bash", "-c", f". {local / 'env.sh'} && {command}"],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/")},
    )


@pytest.fixture(scope="module")
def local() -> Iterator[Path]:
    """A `.local/` of its own (short path: the socket lives in it)."""
    folder = Path(tempfile.mkdtemp(prefix="tts-local-"))
    yield folder
    sandbox.stop(folder / "sfsandbox")
    localdb.remove(folder / "pg")
    shutil.rmtree(folder, ignore_errors=True)


def test_up_writes_env_sh_and_is_idempotent_and_data_survives_down(local):
    first = thrive_dev(local, "up")
    assert first.returncode == 0, first.stderr
    assert "airflow metadata: migrated now" in first.stdout
    env_sh = local / "env.sh"
    assert env_sh.stat().st_mode & 0o777 == 0o600
    text = env_sh.read_text()
    for name in REQUIRED_EXPORTS:
        assert f"export {name}=" in text

    stored = in_env_sh(
        local,
        'psql "$THRIVE_DB_URI" -Atc "INSERT INTO thrive.accounts (account_id) VALUES '
        "('keep-me') RETURNING account_id\"",
    )
    assert stored.returncode == 0 and stored.stdout.strip().splitlines()[0] == "keep-me", stored.stderr

    started = time.perf_counter()
    again = thrive_dev(local, "up")
    MEASUREMENTS["`up` when already up"] = f"{time.perf_counter() - started:.1f} s"
    assert again.returncode == 0 and "airflow metadata: up to date" in again.stdout

    sandbox_url = in_env_sh(local, "echo $SF_SANDBOX_URL").stdout.strip()
    limits = in_env_sh(
        local,
        "python -c \"import os, requests; print(requests.get(os.environ['SF_SANDBOX_URL']"
        " + '/services/data/v59.0/limits/', verify=os.environ['SF_SANDBOX_CA'],"
        " headers={'Authorization': 'Bearer ' + os.environ['SF_SANDBOX_TOKEN']}).status_code)\"",
    )
    assert limits.stdout.strip() == "200", limits.stderr[-1000:]

    down = thrive_dev(local, "down")
    assert down.returncode == 0 and "postgres: stopped" in down.stdout and "salesforce sandbox: stopped" in down.stdout
    assert localdb.running(local / "pg") is None and sandbox.running(local / "sfsandbox") is None
    assert "was not running" in thrive_dev(local, "down").stdout

    assert thrive_dev(local, "up").returncode == 0
    assert in_env_sh(local, "echo $SF_SANDBOX_URL").stdout.strip() == sandbox_url  # same port after a restart
    kept = in_env_sh(local, 'psql "$THRIVE_DB_URI" -Atc "SELECT account_id FROM thrive.accounts"')
    assert kept.stdout.split() == ["keep-me"]


def test_sample_data_seeds_the_sandbox_with_its_contacts_and_leads(local):
    assert thrive_dev(local, "up").returncode == 0
    in_env_sh(local, 'psql "$THRIVE_DB_URI" -c "DELETE FROM thrive.accounts WHERE account_id = \'keep-me\'"')
    generated = thrive_dev(local, "generate", "--date", "2026-11-26", "--events", "500", "--recipients", "40")
    assert generated.returncode == 0, generated.stderr
    crm = in_env_sh(local, "psql \"$THRIVE_DB_URI\" -Atc 'SELECT count(*) FROM thrive_sample.crm_records'")
    expected = int(crm.stdout.strip())
    assert f"seeded with {expected:,} Contacts and Leads" in generated.stdout
    info = sandbox.running(local / "sfsandbox")
    assert info is not None
    total = sum(
        info.session()
        .get(f"{info.url}/services/data/v59.0/query/", params={"q": f"SELECT COUNT() FROM {o}"})
        .json()["totalSize"]
        for o in ("Contact", "Lead")
    )
    assert total >= expected > 0


def test_airflow_works_from_any_folder_with_env_sh(local):
    assert thrive_dev(local, "up").returncode == 0
    listed = in_env_sh(local, "airflow dags list --local -o plain")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "thrive_tracking_sync" in listed.stdout


def test_users_own_thrive_db_is_used_instead(local, fresh_db, pg_server):
    conn = airflow_conn_for(pg_server, fresh_db)
    result = thrive_dev(local, "up", AIRFLOW_CONN_THRIVE_DB=conn)
    assert result.returncode == 0, result.stderr
    assert "thrive_db: your AIRFLOW_CONN_THRIVE_DB" in result.stdout
    with psycopg.connect(fresh_db) as db:  # the schemas landed in the user's database
        assert db.execute("SELECT count(*) FROM thrive_sync.tracking_log").fetchone() == (0,)
    dbname = psycopg.conninfo.conninfo_to_dict(fresh_db)["dbname"]
    shown = in_env_sh(local, "psql \"$THRIVE_DB_URI\" -Atc 'SELECT current_database()'")
    assert shown.stdout.strip() == dbname
    assert thrive_dev(local, "up").returncode == 0  # back to the embedded database for the other tests


def test_unreachable_thrive_db_is_one_line(local):
    result = thrive_dev(local, "up", AIRFLOW_CONN_THRIVE_DB='{"conn_type": "postgres", "host": "/nonexistent"}')
    assert result.returncode == 2
    assert result.stderr.startswith("thrive_dev up: cannot reach the thrive_db database (your AIRFLOW_CONN_THRIVE_DB)")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_half_initialised_data_folder_says_what_to_do(tmp_path):
    local = Path(tempfile.mkdtemp(prefix="tts-half-"))
    try:
        (local / "pg").mkdir()
        (local / "pg" / "postgresql.conf").write_text("# an interrupted initdb left this\n")
        result = thrive_dev(local, "up")
        assert result.returncode == 2
        assert "half-initialised" in result.stderr and "rm -rf" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    finally:
        shutil.rmtree(local)


def test_missing_python_is_one_line(tmp_path):
    result = subprocess.run(
        ["make", "-s", "up", f"VENV={tmp_path / 'venv'}", "PYTHON=python9.9"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "python9.9 not found: install Python 3.11" in result.stdout + result.stderr
