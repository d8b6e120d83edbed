"""The daily run's deadline through Airflow's deadline alerts, alerting through the package's notifier.

``THRIVE_SYNC_DEADLINE=06:00`` gives the DAG a ``DeadlineAlert``; when a run has not succeeded by
then, the scheduler has an executor call :func:`deadline_missed` (a ``SyncCallback``: the log, SMTP
and Slack notifiers are synchronous). The rules are in :mod:`thrive_sync.core.deadline`. A run that
failed before its deadline says nothing more: its report judged the orgs (and Airflow keeps a failed
run's deadline, so an org failing every day would otherwise page every day on top of its health).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DeadlineAlert, DeadlineReference, SyncCallback

from thrive_sync import alerts
from thrive_sync.core.deadline import after_logical_date, alert_due
from thrive_sync.settings import DAG_ID

log = logging.getLogger(__name__)


def deadline_alerts(time_of_day: timedelta | None, label: str) -> list[DeadlineAlert] | None:
    """The DAG's deadline alerts: ``None`` unless a time is set (``label``: it as the user wrote it)."""
    if time_of_day is None:
        return None
    return [
        DeadlineAlert(
            reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
            interval=after_logical_date(time_of_day),
            callback=SyncCallback(deadline_missed, kwargs={"by": label}),
        )
    ]


def deadline_missed(by: str, context: dict[str, Any] | None = None) -> None:
    """The callback: a run had not succeeded by its deadline. ``context``: Airflow's, with the run
    (``dag_run``, as the REST API shows it) and the deadline (``deadline_time``)."""
    context = context or {}
    run, deadline = context.get("dag_run") or {}, context.get("deadline") or {}
    deadline_time = _moment(deadline.get("deadline_time"))
    created = _moment(run.get("queued_at") or run.get("start_date"))
    what = f"run {run.get('dag_run_id')} ({run.get('run_type')}, state {run.get('state')})"
    if deadline_time is not None and not alert_due(created, deadline_time):
        log.info("Deadline %s passed before %s was created (%s): no alert", deadline_time, what, created)
        return
    if run.get("state") == "failed":  # its report judged each org and alerted where the health changed
        log.info("Deadline %s passed after %s failed: the org health alerts speak for it", deadline_time, what)
        return
    sent = alerts.send(
        context,
        f"[CRITICAL] {DAG_ID}: the day's tracking is not in Salesforce by {by}",
        f"{what} had not succeeded by its deadline {deadline_time} ({by} after its day ended). "
        "See the run in the Airflow UI; its report names the orgs not done.",
    )
    log.warning("Deadline missed by %s: alert %s", what, "sent" if sent else "NOT sent (see above)")


def _moment(value: Any) -> datetime | None:
    """A time from the callback's context (a datetime, or ISO text once it went through JSON)."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
