"""
### Thrive tracking retention

Deletes `Thrive_Activity__c` records older than a number of days, per category, from every
Salesforce org an account names: a million events a day take gigabytes of an org's data storage a
week. **Off until configured**: `THRIVE_SYNC_RETENTION_DAYS` gives the days to keep, one number for
every category (`180`) or per category (`message_activity=90,surveys_events=730`); a category it
does not name is skipped, and with it unset every task is skipped.

**Tasks.** `purge_<category>` asks the org for the category's records from before the cutoff (the
run's window end less the days), a Bulk job's worth at a time, deletes them through Bulk API 2.0
delete jobs and marks the deleted ones `purged` in the event ledger, so that no sync run sends them
again. It stops at the reserve of the org's daily allowance, and after a job with records the org
would not delete; the next run goes on. What each task did per org is in `thrive_sync.retention_runs`
and its XCom.

**Params.** `dry_run`: count what would be deleted, delete nothing.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag
from airflow.timetables.interval import CronDataIntervalTimetable

from thrive_sync.alerts import on_task_failure
from thrive_sync.core.catalog import Category
from thrive_sync.core.retention import RETENTION_VARIABLE, parse_retention
from thrive_sync.operators import PurgeOldRecordsOperator
from thrive_sync.settings import RETENTION_DAG_ID, Deployment

DEPLOYMENT = Deployment.from_environ()  # THRIVE_SYNC_* (cheap: no database, no network)
RETENTION = parse_retention(os.environ.get(RETENTION_VARIABLE))  # a mistake is an import error naming it


@dag(
    dag_id=RETENTION_DAG_ID,
    # Daily, at noon in the sync's time zone: away from the sync's hours after midnight.
    schedule=CronDataIntervalTimetable("0 12 * * *", timezone=DEPLOYMENT.timezone),
    start_date=pendulum.datetime(2026, 1, 1, tz=DEPLOYMENT.timezone),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=DEPLOYMENT.retry_delay_seconds),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(hours=4),
        "on_failure_callback": on_task_failure,
    },
    params={"dry_run": Param(False, type="boolean", description="Count what would be deleted; delete nothing.")},
    tags=["thrive", "salesforce", "retention"],
    doc_md=__doc__,
)
def thrive_tracking_retention():
    for category in Category:
        days = RETENTION.get(category)
        PurgeOldRecordsOperator(
            task_id=f"purge_{category.value}",
            category=category.value,
            retention_days=days,
            dry_run="{{ params.dry_run }}",
            mapping_path=DEPLOYMENT.mapping_path,
            bulk_job_rows=DEPLOYMENT.bulk_job_rows,
            poll_seconds=DEPLOYMENT.poll_seconds,
            job_timeout_seconds=DEPLOYMENT.job_timeout_seconds,
            doc_md=f"Deletes `{category.value}` records older than "
            + (f"{days} days" if days else f"the days `{RETENTION_VARIABLE}` gives (none: skipped)")
            + ", and marks them purged in the event ledger.",
        )


thrive_tracking_retention()
