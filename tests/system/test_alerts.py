"""Alerts through Airflow notifiers: off by default, a log line, an email through the SMTP provider, a
Slack message through the Slack provider; each org's health speaks once per change."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from aiosmtpd.controller import Controller

from conftest import MEASUREMENTS, airflow_conn_for
from dag_runs import dags_test, free_port
from thrive_dev.schema import apply_schema

BREACH = {"delay_minutes": 0, "failure_threshold": 0.01}  # the generated day fails about 5% of its rows
WEEK_START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
ORG, OTHER_ORG = "salesforce_default", "salesforce_b"
SYNC_TASK = f"validate_and_map_message_activity[{ORG}]"


class Inbox:
    """An SMTP server's message handler that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(envelope.content.decode("utf-8", "replace"))
        return "250 OK"


def test_alerts_are_off_by_default(wired):
    result = dags_test(BREACH)
    assert result.returncode != 0
    assert "Thrive sync alert" not in result.stdout + result.stderr


def test_a_threshold_breach_is_logged_by_the_log_notifier(wired, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_THRIVE_SYNC_ALERTS", json.dumps({"notifier": "log"}))
    output = (lambda r: r.stdout + r.stderr)(dags_test(BREACH))
    assert f"Thrive sync alert: [CRITICAL] org {ORG}: " in output and "past failure_threshold 1%" in output
    assert output.count("Thrive sync alert") == 1  # the failure callback leaves the breach to the report


def test_a_failed_task_and_its_recovery_are_emailed_once_each(wired, monkeypatch, tmp_path):
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SMTP_DEFAULT",
            json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": controller.port,
                        "extra": {"disable_ssl": True, "disable_tls": True}}),
        )  # fmt: skip
        monkeypatch.setenv(
            "AIRFLOW_VAR_THRIVE_SYNC_ALERTS",
            json.dumps({"notifier": "smtp", "to": ["ops@example.org"], "from_email": "airflow@example.org"}),
        )
        mapping = tmp_path / "mapping.yaml"
        mapping.write_text(
            "object: Thrive_Activity__c\nexternal_id_field: Thrive_Event_Id__c\n"
            "fields:\n  Thrive_Event_Id__c: external_id\n  No_Such_Field__c: detail\n"
        )
        assert dags_test(env={"THRIVE_SYNC_MAPPING": str(mapping)}).returncode != 0
        assert dags_test().returncode == 0
    finally:
        controller.stop()
    subjects = [line for message in inbox.messages for line in message.splitlines() if line.startswith("Subject:")]
    assert len(subjects) == 2, subjects  # one per change: nothing from the failed tasks themselves
    assert subjects[0].startswith(f"Subject: [CRITICAL] org {ORG}: failed for good: validate_and_map_"), subjects
    assert subjects[1] == f"Subject: [OK] org {ORG} recovered (was critical)", subjects
    assert all("ops@example.org" in m for m in inbox.messages)


@pytest.fixture
def health_db(fresh_db, pg_server, monkeypatch):
    with psycopg.connect(fresh_db) as conn:
        apply_schema(conn)
    monkeypatch.setenv("AIRFLOW_CONN_THRIVE_DB", airflow_conn_for(pg_server, fresh_db))
    return fresh_db


def save_day(db: str, day: int, written: dict[str, int], failed: int = 10) -> tuple[str, datetime]:
    """A run's counts of one day of the week, one account per org, as the sync tasks save them."""
    start, run_id = WEEK_START + timedelta(days=day), f"scheduled__day{day}"
    with psycopg.connect(db) as conn:
        for n, (conn_id, count) in enumerate(sorted(written.items())):
            conn.execute(
                "INSERT INTO thrive_sync.sync_runs (dag_run_id, account_id, category, salesforce_conn_id,"
                " window_start, window_end, extracted, written, failed, skipped, dry_run, deferred)"
                " VALUES (%s, %s, 'message_activity', %s, %s, %s, %s, %s, %s, 0, false, 0)",
                [run_id, f"acct-{n}", conn_id, start, start + timedelta(days=1), count + failed, count, failed],
            )
    return run_id, start


def test_a_simulated_week_sends_exactly_three_slack_alerts(health_db, slack):
    """Seven daily runs of two orgs, judged by the report's health check on a real database, alerting
    through the Slack provider's notifier: the first org has a sync task failing on Wednesday, is well
    again on Thursday, and its export breaks on Saturday (a tenth of its usual rows, two days); the
    other org is steady. Expected: critical, recovered, warning; nothing for the other org."""
    from thrive_sync.health_alerts import judge_orgs
    from thrive_sync.hooks.thrive_store import ThriveStoreHook

    week = [(1000, ()), (1000, ()), (400, (SYNC_TASK,)), (1000, ()), (1000, ()), (100, ()), (90, ())]
    levels = []
    for day, (written, failed_tasks) in enumerate(week):
        run_id, start = save_day(health_db, day, {ORG: written, OTHER_ORG: 500})
        context = {"params": {"dry_run": False, "failure_threshold": 0.5, "categories": ["message_activity"]},
                   "run_id": run_id, "data_interval_start": start}  # fmt: skip
        health = judge_orgs(context, ThriveStoreHook(), failed_tasks)
        levels.append((health[ORG]["level"], health[OTHER_ORG]["level"]))
    texts = [message["text"] for message in slack]
    MEASUREMENTS["simulated week, Slack alerts"] = " | ".join(text.splitlines()[0] for text in texts)
    assert [level for level, _ in levels] == ["ok", "ok", "critical", "ok", "ok", "warning", "warning"]
    assert {other for _, other in levels} == {"ok"}
    assert len(texts) == 3, texts
    assert texts[0].startswith(f"*[CRITICAL] org {ORG}: failed for good: {SYNC_TASK}*")
    assert texts[0].endswith("Day 2026-11-04, run scheduled__day2.")
    assert texts[1].startswith(f"*[OK] org {ORG} recovered (was critical)*")
    assert texts[2].startswith(f"*[WARNING] org {ORG}: message_activity: 100 records written, under 50% of the median")
    # A rerun of Thursday (an older day than the org's state) changes nothing and says nothing.
    context = {"params": {"dry_run": False, "failure_threshold": 0.5, "categories": ["message_activity"]},
               "run_id": "manual__thursday_again", "data_interval_start": WEEK_START + timedelta(days=3)}  # fmt: skip
    assert judge_orgs(context, ThriveStoreHook(), ())[ORG] == {"level": "ok", "reasons": [], "alert": None}
    assert len(slack) == 3
    with psycopg.connect(health_db) as conn:
        state = conn.execute("SELECT level, said, dag_run_id FROM thrive_sync.org_health WHERE salesforce_conn_id = %s",
                             [ORG]).fetchone()  # fmt: skip
    assert state == ("warning", "warning", "scheduled__day6")
