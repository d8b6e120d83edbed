"""The tracking-log page in a real `airflow api-server`, behind Airflow's login, against the database."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess

import psycopg
import pytest
import requests

from dag_runs import AIRFLOW, dags_test, forget_imported_settings, free_port, latest_run_id, stop_tree
from thrive_dev.airflow_ui import wait_for_api

PASSWORD = "ui-test-password"


@pytest.fixture
def api_server(wired, tmp_path):
    """`airflow api-server` on a free port with the plugin loaded; its URL. Login: admin / PASSWORD."""
    port = free_port()
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"admin": PASSWORD}))
    env = {
        **os.environ,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
    }
    log = (tmp_path / "api-server.log").open("w")
    server = subprocess.Popen(
        [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        healthy = wait_for_api(url, 120, alive=lambda: server.poll() is None)
        assert healthy, (tmp_path / "api-server.log").read_text()[-3000:]
        yield url, env
    finally:
        stop_tree(server)
        log.close()


def login(url: str) -> requests.Session:
    token = requests.post(f"{url}/auth/token", json={"username": "admin", "password": PASSWORD}, timeout=10)
    assert token.status_code == 201, token.text
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    return session


def test_tracking_log_page_and_task_link(wired, api_server, pg_server):
    url, env = api_server
    result = dags_test(env={"AIRFLOW__API__BASE_URL": env["AIRFLOW__API__BASE_URL"]})
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    run_id = latest_run_id(wired)
    with psycopg.connect(wired) as conn:
        logged = conn.execute(
            "SELECT count(*) FROM thrive_sync.tracking_log WHERE dag_run_id = %s AND category = 'message_activity'",
            [run_id],
        ).fetchone()[0]
        counts = conn.execute(
            "SELECT sum(extracted), sum(written), sum(failed), sum(skipped) FROM thrive_sync.sync_runs"
            " WHERE dag_run_id = %s",
            [run_id],
        ).fetchone()
        every_row = conn.execute("SELECT count(*) FROM thrive_sync.tracking_log").fetchone()[0]
    assert logged > 0

    # Behind Airflow's login: nothing without a token.
    assert requests.get(f"{url}/thrive-sync/api/log", timeout=10).status_code in (401, 403)
    assert requests.get(f"{url}/thrive-sync/", timeout=10).status_code in (401, 403)
    session = login(url)

    # The task's button, stored by the worker in XCom, leads to the page filtered to its run and category.
    with psycopg.connect(pg_server.uri("airflow")) as meta:
        link = meta.execute(
            "SELECT value FROM xcom WHERE dag_id = 'thrive_tracking_sync' AND run_id = %s"
            " AND task_id = 'validate_and_map_message_activity' AND map_index = 0 AND key = '_link_TrackingLogLink'",
            [run_id],
        ).fetchone()[0]
    assert link.startswith(f"{url}/thrive-sync/?") and "category=message_activity" in link
    page = session.get(link, timeout=30)
    assert page.status_code == 200, page.text[:500]
    shown = int(re.search(r'<span id="log-total">([\d,]+)</span>', page.text).group(1).replace(",", ""))
    assert shown == logged
    assert '<svg id="chart"' in page.text and 'id="run-counts"' in page.text and 'id="org-usage"' in page.text
    orgs = session.get(f"{url}/thrive-sync/api/runs/{run_id}/orgs", timeout=30).json()
    assert [o["salesforce_conn_id"] for o in orgs] == ["salesforce_default"]
    assert orgs[0]["api_spent"] > 0 and orgs[0]["api_left"] < orgs[0]["api_max"] and orgs[0]["deferred"] == 0

    # The JSON behind it, a filter, and the CSV of the whole selection.
    body = session.get(
        f"{url}/thrive-sync/api/log", params={"run_id": run_id, "category": "message_activity"}, timeout=30
    ).json()
    assert body["total"] == logged and len(body["rows"]) == min(logged, 50)
    reason = body["rows"][0]["reason_code"]
    by_reason = session.get(
        f"{url}/thrive-sync/api/log", params={"run_id": run_id, "reason_code": reason}, timeout=30
    ).json()
    assert by_reason["total"] > 0 and {r["reason_code"] for r in by_reason["rows"]} == {reason}
    csv_text = session.get(f"{url}/thrive-sync/log.csv", timeout=60).text
    assert len(csv_text.strip().splitlines()) == every_row + 1
    days = session.get(f"{url}/thrive-sync/api/runs", timeout=30).json()
    mine = [d for d in days if d["dag_run_id"] == run_id]
    assert tuple(sum(d[k] for d in mine) for k in ("extracted", "written", "failed", "skipped")) == counts
    assert all("unchanged" in d for d in mine)

    # What happened to one member, and to one event: the ledger's outcomes and the log's rows.
    failed = next(r for r in body["rows"] if r["custom_member_id"])
    member = session.get(f"{url}/thrive-sync/api/history", params={"member_id": failed["custom_member_id"]},
                         timeout=30).json()  # fmt: skip
    assert member["ledger"] and {r["custom_member_id"] for r in member["ledger"]} == {failed["custom_member_id"]}
    key = ("account_id", "category", "event_id")
    mine_failed = [r for r in member["ledger"] if all(r[k] == failed[k] for k in key)]
    assert [(r["status"], r["reason_code"]) for r in mine_failed] == [("failed", failed["reason_code"])]
    event = session.get(f"{url}/thrive-sync/api/history", params={k: failed[k] for k in key}, timeout=30).json()
    # every run's log row of that event (the day's database holds many runs), and its one ledger row
    assert {tuple(r[k] for k in key) for r in event["log"]} == {tuple(failed[k] for k in key)}
    assert run_id in {r["dag_run_id"] for r in event["log"]} and len(event["ledger"]) == 1
    assert session.get(f"{url}/thrive-sync/api/history", timeout=30).status_code == 422
    page = session.get(f"{url}/thrive-sync/", params={"member_id": failed["custom_member_id"]}, timeout=30)
    assert 'id="history"' in page.text and "failures still open in the ledger" in page.text


def test_a_failed_make_airflow_start_leaves_no_process_behind(airflow_metadata, tmp_path):
    """The api-server does not answer in time: start() raises and stops all four processes it launched."""
    import psutil

    from thrive_dev import airflow_ui, services

    port = free_port()

    def ours() -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if proc.environ().get("AIRFLOW__API__PORT") == str(port) and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
        return found

    try:
        with pytest.raises(services.ServiceError, match="did not answer"):
            airflow_ui.start(dict(os.environ), tmp_path / "airflow-ui", port=port, timeout=0.5)
    finally:
        forget_imported_settings()
    assert ours() == []
    assert not list((tmp_path / "airflow-ui").glob("*.pid"))
