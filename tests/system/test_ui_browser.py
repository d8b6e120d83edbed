"""The UI in headless Chromium: log in, trigger a run from the form, follow the task's link to the log.

Airflow runs the way `make airflow` starts it (``thrive_dev.airflow_ui``: api-server, scheduler,
dag-processor, triggerer; connections imported from ``airflow_settings.yaml``), on the suite's
PostgreSQL and sandbox. Debian's ``chromium`` and ``chromium-driver`` are installed by the test
setup when missing (``apt-get``), and driven by selenium. Screenshots go to
``test-output/screenshots/`` at the repository root.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import requests

from conftest import scratch_database, wire
from dag_runs import forget_imported_settings, free_port, latest_run_id

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
CHROMIUM_FLAGS = (  # the flags this machine's closed network needs (see the env notes)
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)


def ensure_chromium() -> None:
    """Debian's chromium and chromium-driver, installed if missing (root, or passwordless sudo)."""
    if shutil.which("chromium") and shutil.which("chromedriver"):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    for args in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"]):
        result = subprocess.run([*sudo, *args], capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"{' '.join(args)} failed: {result.stderr[-2000:]}"


@pytest.fixture
def browser(tmp_path):
    ensure_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium")
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.implicitly_wait(15)
    yield driver
    driver.quit()


@pytest.fixture
def wired(pg_server, org, monkeypatch, airflow_metadata):
    """Sample data for yesterday and today (UTC) as the DAG's database.

    A run triggered from the form processes the last complete day before the moment it is
    triggered: yesterday, or today's data when midnight passes in between. Either way the run's
    own day has data, whatever the date the suite runs on.
    """
    from thrive_dev.sample_data import SampleConfig, load

    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    with scratch_database(pg_server, "ui") as db:
        load(db, SampleConfig(start=yesterday, days=2, events=8_000, recipients_per_account=60, seed=11))
        yield wire(db, pg_server, org, monkeypatch)


@pytest.fixture
def airflow_ui(wired, tmp_path):
    """Airflow as `make airflow` starts it, on a free port; the connections it imported are removed after."""
    from thrive_dev import airflow_ui

    # No scheduled run: it would process the same day as the triggered one and, held by
    # wait_after_midnight in the first hours of a UTC day, keep it queued (max_active_runs=1).
    env = {**os.environ, "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}
    ui = airflow_ui.start(env, tmp_path / "airflow-ui", port=free_port())
    try:
        yield ui
    finally:
        airflow_ui.stop(ui.home)
        forget_imported_settings()


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def test_trigger_from_the_form_and_read_the_tracking_log(airflow_ui, browser, wired):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    api = requests.Session()
    token = api.post(
        f"{airflow_ui.url}/auth/token", json={"username": airflow_ui.user, "password": airflow_ui.password}
    )
    api.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    wait_for(lambda: api.get(f"{airflow_ui.url}/api/v2/dags/thrive_tracking_sync").ok, 180, "the DAG to be serialized")
    assert api.patch(f"{airflow_ui.url}/api/v2/dags/thrive_tracking_sync", json={"is_paused": False}).ok

    # Log in through the UI's own form.
    browser.get(f"{airflow_ui.url}/")
    browser.find_element(By.NAME, "username").send_keys(airflow_ui.user)
    browser.find_element(By.NAME, "password").send_keys(airflow_ui.password)
    browser.find_element(By.XPATH, "//button[normalize-space()='Sign in']").click()
    wait_for(lambda: "/auth/login" not in browser.current_url, 30, "the login")

    # The DAG, its trigger form, params filled in there.
    browser.get(f"{airflow_ui.url}/dags/thrive_tracking_sync")
    browser.find_element(By.XPATH, "//button[normalize-space()='Trigger']").click()
    delay = browser.find_element(By.NAME, "element_delay_minutes")
    delay.send_keys(Keys.CONTROL, "a")
    delay.send_keys("0")
    threshold = browser.find_element(By.NAME, "element_failure_threshold")
    threshold.send_keys(Keys.CONTROL, "a")
    threshold.send_keys("0.9")
    time.sleep(1)
    browser.save_screenshot(str(SCREENSHOTS / "trigger-form.png"))
    before = {
        r["dag_run_id"]
        for r in api.get(f"{airflow_ui.url}/api/v2/dags/thrive_tracking_sync/dagRuns").json()["dag_runs"]
    }
    browser.find_elements(By.XPATH, "//div[@role='dialog']//button[normalize-space()='Trigger']")[-1].click()

    def triggered():
        runs = api.get(f"{airflow_ui.url}/api/v2/dags/thrive_tracking_sync/dagRuns").json()["dag_runs"]
        return next((r for r in runs if r["dag_run_id"] not in before and r["run_type"] == "manual"), None)

    run = wait_for(triggered, 60, "the triggered run")
    assert run["conf"]["delay_minutes"] == 0 and float(run["conf"]["failure_threshold"]) == 0.9
    run_id = run["dag_run_id"]
    done = wait_for(
        lambda: (
            (r := api.get(f"{airflow_ui.url}/api/v2/dags/thrive_tracking_sync/dagRuns/{run_id}").json())["state"]
            in ("success", "failed")
            and r
        ),
        600,
        "the run to finish",
    )
    assert done["state"] == "success"

    # The grid, then the task's "Tracking log" button, then the page it leads to.
    browser.get(f"{airflow_ui.url}/dags/thrive_tracking_sync/runs/{run_id}")
    time.sleep(3)
    browser.save_screenshot(str(SCREENSHOTS / "dag-grid.png"))
    # One instance per org: the sample's accounts all use salesforce_default, so the one instance is map index 0.
    browser.get(
        f"{airflow_ui.url}/dags/thrive_tracking_sync/runs/{run_id}/tasks/validate_and_map_message_activity/mapped/0"
    )
    # Airflow 3 lists a task's extra links on the task instance's Details tab.
    browser.find_element(By.XPATH, "//button[normalize-space()='Details'] | //a[normalize-space()='Details']").click()
    anchor = browser.find_element(By.XPATH, "//a[contains(normalize-space(), 'Tracking log')]")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", anchor)
    time.sleep(1)
    browser.save_screenshot(str(SCREENSHOTS / "task-instance-details.png"))
    link = anchor.get_attribute("href")
    assert "/thrive-sync/?run_id=" in link and "category=message_activity" in link
    browser.get(link)
    total = int(browser.find_element(By.ID, "log-total").text.replace(",", ""))
    counts = {
        tuple(c.text for c in row.find_elements(By.TAG_NAME, "td"))
        for row in browser.find_elements(By.CSS_SELECTOR, "#run-counts tbody tr")
    }
    browser.save_screenshot(str(SCREENSHOTS / "tracking-log.png"))

    assert latest_run_id(wired) == run_id
    with psycopg.connect(wired) as conn:
        logged = conn.execute(
            "SELECT count(*) FROM thrive_sync.tracking_log WHERE dag_run_id = %s AND category = 'message_activity'",
            [run_id],
        ).fetchone()[0]
        in_db = {
            (c, a, str(x), str(w), str(f), str(s), str(u), str(d), g or "")
            for c, a, x, w, f, s, u, d, g in conn.execute(
                "SELECT category, account_id, extracted, written, failed, skipped, unchanged, coalesce(deferred, 0),"
                " skip_gate FROM thrive_sync.sync_runs WHERE dag_run_id = %s AND category = 'message_activity'",
                [run_id],
            )
        }
    assert total == logged > 0
    assert {tuple(re.sub(r"\s+", " ", v) for v in row) for row in counts} == in_db
