"""Start, find, stop and seed the local Salesforce sandbox (``tools/sf_sandbox``) for ``make up``.

The sandbox runs detached (its own session, log in its folder) so it outlives ``make up``;
``server.json`` in its folder says which process and port, and is how later commands find it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests

from thrive_dev import processes

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class SandboxError(RuntimeError):
    """A sandbox problem, worded as what to do about it."""


@dataclass(frozen=True)
class SandboxInfo:
    url: str
    token: str
    ca: Path
    pid: int

    def session(self) -> requests.Session:
        """A requests session that trusts the sandbox's CA (and ignores REQUESTS_CA_BUNDLE)."""
        s = requests.Session()
        s.verify = str(self.ca)
        s.trust_env = False
        s.headers["Authorization"] = f"Bearer {self.token}"
        return s

    def admin(self, method: str, what: str, **kwargs: object) -> requests.Response:
        response = self.session().request(method, f"{self.url}/__sandbox/{what}", timeout=60, **kwargs)
        response.raise_for_status()
        return response

    def salesforce_conn(self) -> str:
        """The ``salesforce_default`` Airflow connection (JSON form): a direct session on the sandbox."""
        return json.dumps(
            {
                "conn_type": "salesforce",
                "password": self.token,
                "extra": {"instance_url": self.url, "ca_bundle": str(self.ca)},
            }
        )


def running(root: Path) -> SandboxInfo | None:
    """The sandbox serving ``root``, if one is up and answering."""
    try:
        meta = json.loads((root / "server.json").read_text())
        info = SandboxInfo(meta["url"], (root / "token").read_text().strip(), root / "ca.pem", meta["pid"])
        os.kill(info.pid, 0)
        info.admin("GET", "health")
        return info
    except (OSError, ValueError, KeyError, requests.RequestException):
        return None


def start(root: Path, port: int = 0) -> SandboxInfo:
    """Start the sandbox on ``root`` unless it is running; reuse the last port when it is free."""
    info = running(root)
    if info:
        return info
    root.mkdir(parents=True, exist_ok=True)
    (root / "server.json").unlink(missing_ok=True)
    last_port = root / "port"
    if not port and last_port.exists():
        port = int(last_port.read_text() or 0)
    log = root / "server.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT / "plugins"), str(PROJECT_ROOT / "tools")])}
    for attempt_port in dict.fromkeys((port, 0)):  # the remembered port, then any free one
        with log.open("a") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "sf_sandbox", "serve", "--dir", str(root), "--port", str(attempt_port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            info = running(root)
            if info:
                last_port.write_text(info.url.rsplit(":", 1)[1])
                return info
            time.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
    tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
    raise SandboxError(f"the Salesforce sandbox did not start: {' '.join(tail)} (log: {log})")


def stop(root: Path) -> bool:
    """Stop the sandbox on ``root``; ``False`` when none was running. Its data stays."""
    info = running(root)
    if info is None:
        return False
    processes.terminate(info.pid, grace=10)
    return True


def seed_from_sample(info: SandboxInfo, thrive_uri: str) -> int:
    """Give the sandbox the Contacts and Leads that the sample data's good recipients carry."""
    with psycopg.connect(thrive_uri) as conn:
        exists = conn.execute("SELECT to_regclass('thrive_sample.crm_records')").fetchone()[0]
        if not exists:
            return 0
        rows = conn.execute(
            "SELECT sf_id, sobject, first_name, last_name, email, company FROM thrive_sample.crm_records ORDER BY sf_id"
        ).fetchall()
    seeded = 0
    for sobject in ("Contact", "Lead"):
        records = [
            {"Id": i, "FirstName": f, "LastName": last, "Email": e, **({"Company": c} if sobject == "Lead" else {})}
            for i, o, f, last, e, c in rows
            if o == sobject
        ]
        for start in range(0, len(records), 50_000):
            seeded += info.admin("PUT", f"seed/{sobject}", json=records[start : start + 50_000]).json()["seeded"]
    return seeded
