"""`make airflow`: Airflow's api-server, scheduler, dag-processor and triggerer on the local services.

The connections and variables come from ``airflow_settings.yaml`` (the Astro CLI's local-settings
format) and are written into Airflow's metadata database, so they show in the UI (Admin ->
Connections) and can be edited there. The two the local services provide, ``thrive_db`` and
``salesforce_default``, are pointed at the embedded PostgreSQL and the sandbox instead of the
file's placeholders. The processes run in the background with their logs under
``.local/airflow/logs``; ``make down`` stops them. Login: ``admin`` with a password generated
once into ``.local/airflow/passwords.json`` (Airflow's simple auth manager).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from thrive_dev import processes, services

PROCESSES = ("api-server", "scheduler", "dag-processor", "triggerer")
LOCAL_CONNECTIONS = {"thrive_db": "AIRFLOW_CONN_THRIVE_DB", "salesforce_default": "AIRFLOW_CONN_SALESFORCE_DEFAULT"}
SETTINGS_FILE = services.PROJECT_ROOT / "airflow_settings.yaml"
DEFAULT_PORT = 8080


@dataclass(frozen=True)
class AirflowUi:
    url: str
    user: str
    password: str
    home: Path


def settings(env: dict[str, str], path: Path = SETTINGS_FILE) -> tuple[dict[str, dict], dict[str, str]]:
    """``(connections, variables)`` from the settings file, the local services' connections swapped in."""
    raw = (yaml.safe_load(path.read_text()) or {}).get("airflow", {})
    connections: dict[str, dict] = {}
    for conn in raw.get("connections") or []:
        conn_id = conn["conn_id"]
        if conn_id in LOCAL_CONNECTIONS and env.get(LOCAL_CONNECTIONS[conn_id]):
            connections[conn_id] = json.loads(env[LOCAL_CONNECTIONS[conn_id]])
            continue
        connections[conn_id] = {
            key: value
            for key, value in {
                "conn_type": conn.get("conn_type"),
                "host": conn.get("conn_host") or None,
                "schema": conn.get("conn_schema") or None,
                "login": conn.get("conn_login") or None,
                "password": conn.get("conn_password") or None,
                "port": conn.get("conn_port"),
                "extra": json.dumps(conn.get("conn_extra") or {}),
            }.items()
            if value is not None
        }
    for conn in connections.values():
        if isinstance(conn.get("extra"), dict):
            conn["extra"] = json.dumps(conn["extra"])
    variables = {v["variable_name"]: str(v["variable_value"]) for v in raw.get("variables") or []}
    return connections, variables


def import_settings(env: dict[str, str], connections: dict[str, dict], variables: dict[str, str]) -> None:
    """Write the connections and variables into Airflow's metadata database (replacing same ids)."""
    with tempfile.TemporaryDirectory() as folder:
        conn_file, var_file = Path(folder) / "connections.json", Path(folder) / "variables.json"
        conn_file.write_text(json.dumps(connections))
        var_file.write_text(json.dumps(variables))
        airflow = str(Path(sys.executable).parent / "airflow")
        for args in (
            [airflow, "connections", "import", "--overwrite", str(conn_file)],
            [airflow, "variables", "import", "--action-on-existing-key", "overwrite", str(var_file)],
        ):
            result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
            if result.returncode:
                raise services.ServiceError(f"{' '.join(args[1:3])} failed: {(result.stderr or result.stdout)[-800:]}")


def ui_env(env: dict[str, str], home: Path, port: int) -> dict[str, str]:
    """The processes' environment: connections from the database (so the UI lists them), a login."""
    passwords = home / "passwords.json"
    if not passwords.exists():
        passwords.parent.mkdir(parents=True, exist_ok=True)
        passwords.write_text(json.dumps({"admin": secrets.token_urlsafe(12)}))
        passwords.chmod(0o600)
    out = {k: v for k, v in env.items() if k not in LOCAL_CONNECTIONS.values()}
    url = f"http://127.0.0.1:{port}"
    out.update(
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__BASE_URL=url,
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{url}/execution/",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="10",
    )
    return out


def _pid_file(home: Path, name: str) -> Path:
    return home / f"{name}.pid"


def start(env: dict[str, str], home: Path, port: int = DEFAULT_PORT, timeout: float = 180) -> AirflowUi:
    """Start the four processes unless they run; wait until the UI answers."""
    run_env = ui_env(env, home, port)
    connections, variables = settings(env)
    import_settings(run_env, connections, variables)
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _spawn(run_env, home, logs)
        if not wait_for_api(url, timeout):
            raise services.ServiceError(f"the Airflow api-server did not answer on {url}: see {logs}/api-server.log")
    except BaseException:  # a failed start (or Ctrl-C while waiting) leaves no process behind
        stop(home)
        raise
    password = json.loads((home / "passwords.json").read_text())["admin"]
    return AirflowUi(url, "admin", password, home)


def _spawn(run_env: dict[str, str], home: Path, logs: Path) -> None:
    """Start each of the four processes that is not running yet; its pid goes to ``home``."""
    airflow = str(Path(sys.executable).parent / "airflow")
    for name in PROCESSES:
        pid_file = _pid_file(home, name)
        if pid_file.exists() and processes.alive(int(pid_file.read_text())):
            continue
        with (logs / f"{name}.log").open("a") as log:
            process = subprocess.Popen(
                [airflow, name], env=run_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        pid_file.write_text(str(process.pid))


def wait_for_api(url: str, timeout: float, alive=lambda: True, request_timeout: float = 5.0) -> bool:
    """Whether the api-server at ``url`` reports healthy within ``timeout`` (and ``alive()`` held).

    Any request error means "not yet": a server still starting may refuse, reset, or answer late.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            if requests.get(f"{url}/api/v2/monitor/health", timeout=request_timeout).ok:
                return True
        except requests.RequestException:
            pass
        time.sleep(1)
    return False


def stop(home: Path) -> list[str]:
    """Stop the processes :func:`start` left running (each with the processes it started)."""
    stopped = []
    for name in PROCESSES:
        pid_file = _pid_file(home, name)
        if not pid_file.exists():
            continue
        pid = int(pid_file.read_text())
        if processes.alive(pid):
            processes.terminate(pid, group=True, grace=20)
            stopped.append(name)
        pid_file.unlink(missing_ok=True)
    return stopped


def up() -> list[str]:
    env = services.load_env()
    ui = start(env, services.AIRFLOW_HOME)
    return [
        f"airflow: {ui.url}  (api-server, scheduler, dag-processor, triggerer; logs in {ui.home / 'logs'})",
        f"login: {ui.user} / {ui.password}  (from {ui.home / 'passwords.json'})",
        "connections and variables: airflow_settings.yaml, thrive_db and salesforce_default on the local services",
        "stop: make down",
    ]
