"""Alerts through Airflow notifiers: off by default, a log line, or an email through the SMTP provider."""

from __future__ import annotations

import json

from aiosmtpd.controller import Controller

from dag_runs import dags_test, free_port

BREACH = {"delay_minutes": 0, "failure_threshold": 0.01}  # the generated day fails about 5% of its rows


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
    assert "Thrive sync alert: thrive_tracking_sync" in output and "failure threshold passed" in output
    assert output.count("Thrive sync alert") == 1  # the failure callback leaves the breach to the report


def test_a_failed_task_and_a_breach_are_emailed_through_smtp(wired, monkeypatch, tmp_path):
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SMTP_DEFAULT",
            json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port,
                        "extra": {"disable_ssl": True, "disable_tls": True}}),
        )  # fmt: skip
        monkeypatch.setenv(
            "AIRFLOW_VAR_THRIVE_SYNC_ALERTS",
            json.dumps({"notifier": "smtp", "to": ["ops@example.org"], "from_email": "airflow@example.org"}),
        )
        assert dags_test(BREACH).returncode != 0
        mapping = tmp_path / "mapping.yaml"
        mapping.write_text(
            "object: Thrive_Activity__c\nexternal_id_field: Thrive_Event_Id__c\n"
            "fields:\n  Thrive_Event_Id__c: external_id\n  No_Such_Field__c: detail\n"
        )
        assert dags_test(env={"THRIVE_SYNC_MAPPING": str(mapping)}).returncode != 0
    finally:
        controller.stop()
    subjects = [line for message in inbox.messages for line in message.splitlines() if line.startswith("Subject:")]
    assert any("failure threshold passed" in s for s in subjects), subjects
    assert any("validate_and_map_" in s and "failed" in s for s in subjects), subjects
    assert all("ops@example.org" in m for m in inbox.messages)
