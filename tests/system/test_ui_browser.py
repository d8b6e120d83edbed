"""The UI in headless Chromium: log in, trigger a run from the form, follow the task's link to the log;
and a three-day backfill from the Trigger dialog, checked in the org and in ``thrive_sync.sync_runs``.

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
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
import requests

from conftest import MEASUREMENTS, scratch_database, wire
from dag_runs import (
    FIELDS,
    airflow_run_id,
    forget_days,
    forget_imported_settings,
    free_port,
    latest_run_id,
    snapshot,
    wait_for_backfill,
)
from thrive_dev.airflow_ui import AirflowUi
from thrive_dev.sample_data import SampleConfig, load
from thrive_sync.core.catalog import SOURCE_TABLE

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
BACKFILL_DAYS = (date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25))  # the days of three_days' data
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
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    with scratch_database(pg_server, "ui") as db:
        load(db, SampleConfig(start=yesterday, days=2, events=8_000, recipients_per_account=60, seed=11))
        yield wire(db, pg_server, org, monkeypatch)


def running_airflow(tmp_path: Path) -> Iterator[AirflowUi]:
    """Airflow as `make airflow` starts it, on a free port; the connections it imported are removed after."""
    from thrive_dev import airflow_ui

    # No scheduled run: it would process the same day as the triggered one and, held by
    # wait_after_midnight in the first hours of a UTC day, keep it queued (max_active_runs=1);
    # during a backfill it would take the DAG's one active run.
    env = {**os.environ, "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}
    ui = airflow_ui.start(env, tmp_path / "airflow-ui", port=free_port())
    try:
        yield ui
    finally:
        airflow_ui.stop(ui.home)
        forget_imported_settings()


@pytest.fixture
def airflow_ui(wired, tmp_path):
    """Airflow on the database of yesterday and today."""
    yield from running_airflow(tmp_path)


@pytest.fixture
def three_days(pg_server, org, monkeypatch, airflow_metadata):
    """Three fixed days of sample data (``BACKFILL_DAYS``) as the DAG's database.

    A backfill names its days, so the data need not follow today's date: the same three days
    (and generator settings) as test_backfill's CLI backfill, whatever the date the suite runs on.
    """
    with scratch_database(pg_server, "uibf") as db:
        load(db, SampleConfig(start=BACKFILL_DAYS[0], days=3, events=3_000, recipients_per_account=40, seed=9))
        yield wire(db, pg_server, org, monkeypatch)


@pytest.fixture
def airflow_ui_three_days(three_days, tmp_path):
    """Airflow on the database of the three backfill days."""
    yield from running_airflow(tmp_path)


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def api_session(ui: AirflowUi) -> requests.Session:
    """A REST session with a token: the tests prepare and watch Airflow through its API, so the
    browser does only what a user does."""
    api = requests.Session()
    token = api.post(f"{ui.url}/auth/token", json={"username": ui.user, "password": ui.password})
    api.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    return api


def unpause_when_serialized(api: requests.Session, ui: AirflowUi) -> None:
    """Unpause the DAG once the DAG processor has serialized it: a paused DAG's runs never start."""
    wait_for(lambda: api.get(f"{ui.url}/api/v2/dags/thrive_tracking_sync").ok, 180, "the DAG to be serialized")
    assert api.patch(f"{ui.url}/api/v2/dags/thrive_tracking_sync", json={"is_paused": False}).ok


def log_in(browser: WebDriver, ui: AirflowUi) -> None:
    """Log in through the UI's own form, as a user does."""
    from selenium.webdriver.common.by import By

    browser.get(f"{ui.url}/")
    browser.find_element(By.NAME, "username").send_keys(ui.user)
    browser.find_element(By.NAME, "password").send_keys(ui.password)
    browser.find_element(By.XPATH, "//button[normalize-space()='Sign in']").click()
    wait_for(lambda: "/auth/login" not in browser.current_url, 30, "the login")


def test_trigger_from_the_form_and_read_the_tracking_log(airflow_ui, browser, wired):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    api = api_session(airflow_ui)
    unpause_when_serialized(api, airflow_ui)
    log_in(browser, airflow_ui)

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


# --- a backfill from the Trigger dialog -----------------------------------------------------------
def element(browser: WebDriver, xpath: str, what: str, timeout: float = 30) -> WebElement:
    """The element at ``xpath``, waited for up to ``timeout`` seconds. When the UI has none, the page
    is saved (screenshot and HTML) and the test fails naming what it looked for: a changed Airflow UI
    should say what moved, not end in a bare NoSuchElementException."""
    from selenium.common.exceptions import NoSuchElementException
    from selenium.webdriver.common.by import By

    browser.implicitly_wait(timeout)
    try:
        return browser.find_element(By.XPATH, xpath)
    except NoSuchElementException:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / "backfill-not-found.png"
        browser.save_screenshot(str(shot))
        shot.with_suffix(".html").write_text(browser.page_source)
        pytest.fail(f"{what} not found in Airflow's UI ({xpath}); the page: {shot} and its .html", pytrace=False)
    finally:
        browser.implicitly_wait(15)  # the browser fixture's


def pick_day(browser: WebDriver, label: str, day: date) -> None:
    """Type ``day`` into the date picker of the form's ``label`` field (From or To).

    Typed into the picker's Date box, not clicked on its calendar: the calendar opens on the current
    month, and the test must not depend on today's date. No time: From takes the day's start, To its end.
    """
    from selenium.webdriver.common.keys import Keys

    field = element(
        browser, f"//div[@role='group'][label[normalize-space()='{label}']]//*[@aria-haspopup='dialog']",
        f"the backfill form's {label} date field",
    )  # fmt: skip
    field.click()
    typed = element(
        browser, "//*[@data-scope='popover' and @data-state='open']//input[@placeholder='YYYY/MM/DD']",
        f"the Date box of the {label} field's picker",
    )  # fmt: skip
    typed.send_keys(day.strftime("%Y/%m/%d"))
    typed.send_keys(Keys.ESCAPE)  # closes the picker, not the dialog
    wait_for(lambda: day.strftime("%b %d, %Y") in field.text, 15, f"the {label} field to show {day}")


def fill_backfill_form(browser: WebDriver, ui: AirflowUi) -> None:
    """Open Trigger → Backfill on the DAG's page, pick the three days and "All Runs", and wait for the
    form's own dry run to announce three runs (the Run Backfill button is enabled only after it)."""
    browser.get(f"{ui.url}/dags/thrive_tracking_sync")
    element(browser, "//button[normalize-space()='Trigger']", "the DAG page's Trigger button").click()
    element(
        browser, "//*[@role='dialog']//label[.//input[@type='radio']][.//*[normalize-space()='Backfill']]",
        "the Trigger dialog's Backfill choice",
    ).click()  # fmt: skip
    pick_day(browser, "From", BACKFILL_DAYS[0])
    pick_day(browser, "To", BACKFILL_DAYS[-1])
    element(
        browser, "//*[@role='radiogroup'][.//*[normalize-space()='Reprocess Behavior']]"
        "//label[.//*[normalize-space()='All Runs']]",
        "the Reprocess Behavior option 'All Runs'",
    ).click()  # fmt: skip
    dry_run = "//*[@role='dialog']//*[normalize-space()='3 runs will be triggered.']"
    element(browser, dry_run, "the dry run's count, '3 runs will be triggered.'", timeout=60)


def backfills(api: requests.Session, ui: AirflowUi) -> list[dict]:
    """The DAG's backfills as Airflow's REST API lists them."""
    answer = api.get(f"{ui.url}/api/v2/backfills", params={"dag_id": "thrive_tracking_sync"})
    assert answer.ok, answer.text
    return answer.json()["backfills"]


def show_runs(browser: WebDriver, ui: AirflowUi, run_ids: list[str]) -> None:
    """The DAG's Runs tab, filtered to backfill runs, beside its grid: each run listed as a successful
    Backfill run, as a user would check it. Screenshot: backfill-runs.png."""
    browser.get(f"{ui.url}/dags/thrive_tracking_sync/runs?run_type=backfill")
    for run_id in run_ids:
        row = element(browser, f"//table//tr[.//a[normalize-space()='{run_id}']]", f"the run {run_id} in the Runs tab")
        assert "Success" in row.text and "Backfill" in row.text, row.text
    time.sleep(2)  # the grid's bars are drawn after the table
    browser.save_screenshot(str(SCREENSHOTS / "backfill-runs.png"))


def expected_records(db: str) -> dict[str, date]:
    """What the sample's source rows should produce: ``{Thrive_Event_Id__c: UTC day of the event}`` for
    each event ``thrive_sample.expected_outcomes`` says is written (the day from its source table)."""
    union = " UNION ALL ".join(
        f"SELECT '{category}' AS category, account_id, event_id, occurred_at FROM thrive.{table}"
        for category, table in SOURCE_TABLE.items()
    )
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            f"SELECT x.account_id || ':' || x.category || ':' || x.event_id, (e.occurred_at AT TIME ZONE 'UTC')::date"
            f" FROM thrive_sample.expected_outcomes x JOIN ({union}) e USING (category, account_id, event_id)"
            " WHERE x.outcome = 'written'"
        ).fetchall()
    return dict(rows)


def run_windows(db: str) -> dict[str, set[tuple[datetime, datetime]]]:
    """``{dag_run_id: {(window_start, window_end)}}`` from ``thrive_sync.sync_runs`` (a row per account and
    category: every row of a run must carry the run's one window)."""
    with psycopg.connect(db) as conn:
        rows = conn.execute("SELECT dag_run_id, window_start, window_end FROM thrive_sync.sync_runs").fetchall()
    windows: dict[str, set[tuple[datetime, datetime]]] = {}
    for run_id, start, end in rows:
        windows.setdefault(run_id, set()).add((start, end))
    return windows


def test_backfill_three_days_from_the_form(airflow_ui_three_days, browser, three_days, sf, pg_server):
    """Trigger → Backfill for 23–25 November 2026, "All Runs": three runs, each writing exactly its day.

    "All Runs" (``completed``) is the behaviour that resends days already run, what an operator
    backfills for after a fix, and the one test_backfill's CLI backfill uses. Runs of the three days
    that an earlier test left are deleted first, so the outcome does not depend on the tests' order.
    """
    ui, env = airflow_ui_three_days, dict(os.environ)
    first, last = BACKFILL_DAYS[0].isoformat(), BACKFILL_DAYS[-1].isoformat()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    api = api_session(ui)
    unpause_when_serialized(api, ui)
    forget_days(env, first, last)
    newest = max((b["id"] for b in backfills(api, ui)), default=0)
    log_in(browser, ui)
    fill_backfill_form(browser, ui)
    browser.save_screenshot(str(SCREENSHOTS / "backfill-form.png"))
    element(browser, "//*[@role='dialog']//button[normalize-space()='Run Backfill' and not(@disabled)]",
            "an enabled Run Backfill button", timeout=60).click()  # fmt: skip

    created = wait_for(lambda: [b for b in backfills(api, ui) if b["id"] > newest], 60, "the form's backfill")
    assert [(b["from_date"], b["to_date"][:19], b["reprocess_behavior"]) for b in created] == [
        (f"{first}T00:00:00Z", f"{last}T23:59:59", "completed")
    ]
    states = wait_for_backfill(env, first, last, timeout=900)  # three runs one after the other (max_active_runs=1)
    assert states == dict.fromkeys((day.isoformat() for day in BACKFILL_DAYS), "success")
    run_ids = [airflow_run_id(pg_server, f"{day.isoformat()}T00:00:00+00:00") for day in BACKFILL_DAYS]
    show_runs(browser, ui, run_ids)

    # (b) One window per run, each exactly its logical day: the days follow each other, so back to back.
    windows = run_windows(three_days)
    midnights = [datetime.combine(day, datetime.min.time(), UTC) for day in BACKFILL_DAYS]
    assert windows == {r: {(m, m + timedelta(days=1))} for r, m in zip(run_ids, midnights, strict=True)}

    # (a) The org holds each day's records once, as many per day as the day's source rows should produce,
    # and each run wrote (or found unchanged) its day's.
    shots = [snapshot(three_days, sf, run_id) for run_id in run_ids]
    at = FIELDS.index("Activity_Date__c")
    in_org = {key: datetime.fromisoformat(r[at]).astimezone(UTC).date() for key, r in shots[0].records.items()}
    want = expected_records(three_days)
    assert shots[0].record_count == len(in_org)  # no event twice
    assert sorted(Counter(in_org.values()).items()) == sorted(Counter(want.values()).items())
    assert in_org == want
    per_day = Counter(want.values())
    MEASUREMENTS["UI backfill (All Runs), records per run"] = ", ".join(
        f"{run_id} {per_day[day]:,}" for run_id, day in zip(run_ids, BACKFILL_DAYS, strict=True)
    )
    assert [sum(w for _, w, _, _ in s.counts.values()) for s in shots] == [per_day[d] for d in BACKFILL_DAYS]
