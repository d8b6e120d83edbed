"""``make up`` / ``make down``: the local services and ``.local/env.sh``.

The embedded PostgreSQL always runs locally: it holds Airflow's metadata database (``airflow``)
and, unless the user points ``AIRFLOW_CONN_THRIVE_DB`` elsewhere, the tracking store (``thrive``).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import psycopg

from thrive_dev import localdb, sandbox
from thrive_dev.schema import SchemaMismatch, apply_schema

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# THRIVE_LOCAL_DIR moves everything `make up` keeps (the test suite points it at a temporary folder).
LOCAL_DIR = Path(os.environ.get("THRIVE_LOCAL_DIR") or PROJECT_ROOT / ".local").resolve()
PGDATA = LOCAL_DIR / "pg"
AIRFLOW_HOME = LOCAL_DIR / "airflow"
ENV_FILE = LOCAL_DIR / "env.sh"
SANDBOX_DIR = LOCAL_DIR / "sfsandbox"
THRIVE_DATABASE = "thrive"
AIRFLOW_DATABASE = "airflow"


class ServiceError(RuntimeError):
    """A local-services problem, worded as what to do about it."""


def embedded_thrive_conn(server: localdb.LocalServer) -> str:
    """The ``thrive_db`` Airflow connection (JSON form) for the embedded server."""
    return json.dumps(
        {"conn_type": "postgres", "host": str(server.socket_dir), "login": "postgres", "schema": THRIVE_DATABASE}
    )


def libpq_uri_from_airflow_conn(value: str) -> str:
    """A libpq URI (for ``psql`` and psycopg) from an ``AIRFLOW_CONN_*`` value, URI or JSON form."""
    from airflow.models.connection import Connection  # only when the user brings their own database

    conn = (
        Connection.from_json(value, conn_id="thrive_db")
        if value.lstrip().startswith("{")
        else Connection(conn_id="thrive_db", uri=value)
    )
    if conn.conn_type not in ("postgres", "postgresql"):
        raise ServiceError(f"AIRFLOW_CONN_THRIVE_DB has conn_type {conn.conn_type!r}; it must be a postgres connection")
    auth = quote(conn.login or "", safe="")
    if conn.password:
        auth += ":" + quote(conn.password, safe="")
    host = conn.host or ""
    query = {k: v for k, v in (conn.extra_dejson or {}).items() if k in ("sslmode", "sslrootcert", "options")}
    if host.startswith("/"):  # a unix socket folder goes in the query, as libpq wants it
        query["host"], host = host, ""
    netloc = f"{auth}@{host}" if auth else host
    if conn.port:
        netloc += f":{conn.port}"
    params = "&".join(f"{k}={quote(str(v), safe='/')}" for k, v in query.items())
    return f"postgresql://{netloc}/{quote(conn.schema or 'postgres', safe='')}" + (f"?{params}" if params else "")


def sandbox_login_conns(sf: sandbox.SandboxInfo, root: Path) -> dict[str, str]:
    """``SF_SANDBOX_PASSWORD_CONN`` and ``SF_SANDBOX_JWT_CONN``: Airflow connections (JSON form) that
    log in to the sandbox serving ``root`` as its user (``root/credentials.json``), by password and
    security token, and by a JWT signed with the connected app's key (``root/connected_app.key``).

    The ``domain`` extra ``127.0.0.1:PORT/login`` makes simple_salesforce's login URL
    ``https://{domain}.salesforce.com/...`` a path on the sandbox (``docs/salesforce-setup.md``).
    """
    user = json.loads((root / "credentials.json").read_text())
    common = {"domain": sf.url.removeprefix("https://") + "/login", "ca_bundle": str(sf.ca)}
    password = {
        "conn_type": "salesforce",
        "login": user["username"],
        "password": user["password"],
        "extra": {"security_token": user["security_token"], **common},
    }
    jwt = {
        "conn_type": "salesforce",
        "login": user["username"],
        "extra": {
            "consumer_key": user["consumer_key"],
            "private_key_file_path": str(root / "connected_app.key"),
            **common,
        },
    }
    return {"SF_SANDBOX_PASSWORD_CONN": json.dumps(password), "SF_SANDBOX_JWT_CONN": json.dumps(jwt)}


def _env_lines(
    server: localdb.LocalServer, thrive_conn: str, thrive_uri: str, sf: sandbox.SandboxInfo, salesforce_conn: str
) -> list[str]:
    variables = {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg://postgres@/{AIRFLOW_DATABASE}"
        f"?host={server.socket_dir}",
        "AIRFLOW_CONN_THRIVE_DB": thrive_conn,
        "THRIVE_DB_URI": thrive_uri,
        "AIRFLOW_CONN_SALESFORCE_DEFAULT": salesforce_conn,
        "SF_SANDBOX_URL": sf.url,
        "SF_SANDBOX_TOKEN": sf.token,
        "SF_SANDBOX_CA": str(sf.ca),
        "SF_SANDBOX_DIR": str(SANDBOX_DIR),
        **sandbox_login_conns(sf, SANDBOX_DIR),
    }
    # .venv/bin for airflow and python; the embedded server's bin for psql on machines without one.
    bins = f"{Path(sys.executable).parent}:{localdb.bin_dir()}"
    paths = f"{PROJECT_ROOT / 'plugins'}:{PROJECT_ROOT / 'tools'}"
    return [
        "# Written by `make up`; source it: . .local/env.sh",
        f'export PATH={shlex.quote(bins)}:"$PATH"',
        f'export PYTHONPATH={shlex.quote(paths)}"${{PYTHONPATH:+:$PYTHONPATH}}"',
        *(f"export {name}={shlex.quote(value)}" for name, value in variables.items()),
    ]


def _migrate_airflow_db(env: dict[str, str]) -> bool:
    """Create or upgrade Airflow's metadata database once per Airflow version; ``True`` if it ran."""
    from importlib.metadata import version

    marker = AIRFLOW_HOME / f".db-migrated-{version('apache-airflow-core')}"
    if marker.exists():
        return False
    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).parent / "airflow"
    result = subprocess.run([str(airflow), "db", "migrate"], env=env, capture_output=True, text=True)
    if result.returncode:
        last = (result.stderr or result.stdout).strip().splitlines()[-1:]
        raise ServiceError(f"`airflow db migrate` failed: {' '.join(last)}")
    marker.touch()
    return True


def up() -> list[str]:
    """Start what is not running, apply the schemas, write ``.local/env.sh``; return status lines."""
    LOCAL_DIR.mkdir(exist_ok=True)
    server = localdb.start(PGDATA)
    server.ensure_database(AIRFLOW_DATABASE)
    user_conn = os.environ.get("AIRFLOW_CONN_THRIVE_DB", "")
    embedded_conn = embedded_thrive_conn(server)
    if user_conn and user_conn != embedded_conn:
        where = "your AIRFLOW_CONN_THRIVE_DB"
        thrive_conn, thrive_uri = user_conn, libpq_uri_from_airflow_conn(user_conn)
    else:
        server.ensure_database(THRIVE_DATABASE)
        thrive_conn, thrive_uri, where = embedded_conn, server.uri(THRIVE_DATABASE), "the embedded server"
    try:
        with psycopg.connect(thrive_uri, connect_timeout=10) as conn:
            apply_schema(conn)
    except psycopg.OperationalError as err:
        first = str(err).strip().splitlines()[0]
        raise ServiceError(f"cannot reach the thrive_db database ({where}): {first}") from None
    except SchemaMismatch as err:
        raise ServiceError(f"thrive_db ({where}): {err}") from None
    try:
        sf = sandbox.start(SANDBOX_DIR, int(os.environ.get("SF_SANDBOX_PORT") or 0))
        if not (SANDBOX_DIR / "credentials.json").exists():  # started by a version without logins
            sandbox.stop(SANDBOX_DIR)
            sf = sandbox.start(SANDBOX_DIR, int(os.environ.get("SF_SANDBOX_PORT") or 0))
        seeded = sandbox.seed_from_sample(sf, thrive_uri)
    except sandbox.SandboxError as err:
        raise ServiceError(str(err)) from None
    user_sf = os.environ.get("AIRFLOW_CONN_SALESFORCE_DEFAULT", "")
    own_sf = bool(user_sf) and user_sf != sf.salesforce_conn()
    lines = _env_lines(server, thrive_conn, thrive_uri, sf, user_sf if own_sf else sf.salesforce_conn())
    ENV_FILE.write_text("\n".join(lines) + "\n")
    ENV_FILE.chmod(0o600)  # it may hold the user's database password
    env = {**os.environ, **_parse_exports(lines)}
    migrated = _migrate_airflow_db(env)
    return [
        f"postgres: up, data in {server.pgdata}, socket in {server.socket_dir}",
        f"thrive_db: {where}, schemas thrive and thrive_sync applied",
        f"salesforce sandbox: {sf.url} ({seeded:,} sample Contacts and Leads seeded); salesforce_default -> "
        + ("your AIRFLOW_CONN_SALESFORCE_DEFAULT" if own_sf else "the sandbox"),
        f"airflow metadata: {'migrated now' if migrated else 'up to date'} (database {AIRFLOW_DATABASE})",
        f"env: {ENV_FILE} (source it to use airflow and psql from any folder)",
    ]


def down() -> list[str]:
    """Stop what :func:`up` started; the data stays under ``.local/``."""
    stopped_sf = sandbox.stop(SANDBOX_DIR)
    stopped = localdb.stop(PGDATA)
    return [
        f"salesforce sandbox: {'stopped' if stopped_sf else 'was not running'} (data kept in {SANDBOX_DIR})",
        f"postgres: {'stopped' if stopped else 'was not running'} (data kept in {PGDATA})",
    ]


def reseed_sandbox(thrive_uri: str) -> int:
    """After new sample data: give the running sandbox its Contacts and Leads (0 if it is down)."""
    sf = sandbox.running(SANDBOX_DIR)
    return sandbox.seed_from_sample(sf, thrive_uri) if sf else 0


def load_env() -> dict[str, str]:
    """The current environment plus ``.local/env.sh``, as a child process should see it."""
    if not ENV_FILE.exists():
        raise ServiceError(f"{ENV_FILE} does not exist: run `make up` first")
    return {**os.environ, **_parse_exports(ENV_FILE.read_text().splitlines())}


def _parse_exports(lines: list[str]) -> dict[str, str]:
    """The variables of ``env.sh`` as a dict, expanded the way a shell would."""
    out = subprocess.run(
        ["bash", "-c", "\n".join(lines) + "\nenv -0"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ.get("PATH", "")},
    ).stdout
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
