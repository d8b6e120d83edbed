"""Alerts: an org's sync health that changes, a report that cannot judge it, a task that fails for good.

Off by default. The Airflow Variable ``thrive_sync_alerts`` (JSON; ``airflow_settings.yaml``
declares it) turns them on::

    {"notifier": "log"}                       # a WARNING line in the task log (try it first)
    {"notifier": "smtp", "to": ["data-ops@example.org"], "from_email": "airflow@example.org",
     "smtp_conn_id": "smtp_default"}          # the SMTP provider's SmtpNotifier
    {"notifier": "slack", "slack_webhook_conn_id": "slack_default"}   # the Slack provider's webhook notifier

and may tune the health levels (core/health.py): ``warning_share``, ``volume_share``,
``volume_days``, ``min_history``. The sync DAG's report judges each org once per run and alerts
only on a change (health_alerts.py); the failure callback speaks for the tasks it does not judge.

The Variable is read by each report (the thresholds) and when an alert is due, never when the DAG
file is parsed. A broken notifier setting does not hide the failure it was meant to report: what is
wrong with it is logged, the failure itself stays in the task log and the UI, and the org's health
keeps what the alerts last said, so the alert goes once the setting is fixed.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from airflow.sdk import Variable
from airflow.sdk.bases.notifier import BaseNotifier

from thrive_sync.core.health import HealthRules
from thrive_sync.errors import ConfigurationError, ThresholdBreached, UpstreamFailed
from thrive_sync.settings import DAG_ID

log = logging.getLogger(__name__)
SETTINGS_VARIABLE = "thrive_sync_alerts"
NOTIFIERS = ("off", "log", "smtp", "slack")
TUNABLE_RULES = ("warning_share", "volume_share", "volume_days", "min_history")
SENT, OFF, FAILED = "sent", "off", "failed"  # what became of an alert
# The sync DAG's tasks whose failures its report judges per org (speaking once): no alert of their own.
JUDGED_BY_REPORT = ("wait_after_midnight", "check_accounts", "extract_", "validate_and_map_")


class LogNotifier(BaseNotifier):
    """The log-only notifier: one WARNING line with the alert, in the log of the task that raised it."""

    template_fields = ()  # the text is final: an exception message may contain "{{"

    def __init__(self, subject: str, message: str) -> None:
        super().__init__()
        self.subject = subject
        self.message = message

    def notify(self, context: Any) -> None:
        log.warning("Thrive sync alert: %s: %s", self.subject, self.message)


def settings() -> dict[str, Any]:
    value = Variable.get(SETTINGS_VARIABLE, default=None, deserialize_json=True) or {}
    if not isinstance(value, dict) or value.get("notifier", "off") not in NOTIFIERS:
        raise ValueError(f"Variable {SETTINGS_VARIABLE} must be a JSON object with notifier one of {NOTIFIERS}")
    if value.get("notifier") == "smtp" and not value.get("to"):
        raise ValueError(f"Variable {SETTINGS_VARIABLE}: the smtp notifier needs 'to' (a list of addresses)")
    return value


def health_rules(failure_threshold: float) -> HealthRules:
    """The health levels' thresholds: the run's ``failure_threshold``, the rest from the Variable.

    Read apart from the notifier's checks: a mistyped notifier must not stop every report (it is
    logged when an alert is due). Thresholds that cannot work fail the report, saying what to fix.
    """
    try:
        value = Variable.get(SETTINGS_VARIABLE, default=None, deserialize_json=True) or {}
    except ValueError:  # not JSON: the notifier's check says so when an alert is due
        value = {}
    chosen = {name: v for name, v in value.items() if name in TUNABLE_RULES} if isinstance(value, dict) else {}
    try:
        return HealthRules(failure_threshold=failure_threshold, **chosen)
    except (TypeError, ValueError) as err:  # a retry cannot fix the Variable: fail at once, saying what to fix
        raise ConfigurationError(f"Variable {SETTINGS_VARIABLE}: {err}") from err


def notifier(subject: str, message: str) -> BaseNotifier | None:
    """The configured notifier for one alert, or ``None`` when alerts are off."""
    chosen = settings()
    kind = chosen.get("notifier", "off")
    if kind == "log":
        return LogNotifier(subject, message)
    if kind == "smtp":
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        # SmtpNotifier renders subject and body as Jinja templates: braces from an error message
        # must stay text, not become template syntax.
        return SmtpNotifier(
            to=chosen["to"],
            from_email=chosen.get("from_email"),
            subject=subject.replace("{", "("),
            html_content="<pre>" + html.escape(message).replace("{", "&#123;") + "</pre>",
            smtp_conn_id=chosen.get("smtp_conn_id", "smtp_default"),
        )
    if kind == "slack":
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        return SlackWebhookNotifier(
            slack_webhook_conn_id=chosen.get("slack_webhook_conn_id", "slack_default"),
            text=f"*{subject}*\n{message}".replace("{", "("),  # rendered as a template too
        )
    return None


def send(context: Any, subject: str, message: str) -> str:
    """Send one alert through the configured notifier: ``SENT``, ``OFF`` (alerts are off) or
    ``FAILED`` (it could not be sent; logged)."""
    try:
        chosen = notifier(subject, message)
        if chosen is None:
            return OFF
        chosen(context)
    except Exception:  # an alert that cannot be sent must not mask the failure being reported
        log.exception("Thrive sync alert could not be sent (%s)", subject)
        return FAILED
    return SENT


def on_task_failure(context: Any) -> None:
    """``on_failure_callback`` of every task: a task failed and will not be retried.

    In the sync DAG the report judges the failures of the tasks before it, per org, and alerts once
    per change (an org failing every day pages once): those tasks say nothing here.
    """
    exception = context.get("exception")
    if isinstance(exception, ThresholdBreached | UpstreamFailed):
        return  # the report judged the run and alerted where the health changed
    ti = context["ti"]
    if ti.dag_id == DAG_ID and ti.task_id.startswith(JUDGED_BY_REPORT):
        return
    send(
        context,
        f"{ti.dag_id}: {ti.task_id} failed",
        f"run {context['run_id']}, try {ti.try_number}: {type(exception).__name__}: {exception}",
    )
