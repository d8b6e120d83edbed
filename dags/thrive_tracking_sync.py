"""
### Thrive tracking sync

Pushes one day of Higher Logic Thrive Marketing Enterprise tracking — message activity,
recipient details, marketing automation, social CRM, surveys and events — into Salesforce
(`Thrive_Activity__c`, one record per event) for every recipient whose Custom Member ID matches a
Contact or Lead. Rows that cannot go through land in `thrive_sync.tracking_log` with a reason code.

**Window.** Each run covers one UTC day, its data interval `[start, end)`: a scheduled or
backfill run with logical date *D* processes day *D*; `airflow dags test thrive_tracking_sync D`
and a manual trigger at *D* process the last complete day before *D*.

**When.** The run for a day starts at midnight (`THRIVE_SYNC_TIMEZONE`, default UTC) and
`wait_after_midnight` holds it `delay_minutes` (default `THRIVE_SYNC_DELAY_MINUTES`, 120) so that
the platform's export of the day has landed: the sync's time of day.

**Tasks.** `check_accounts` reads each account's gates and stops the run when no account has
tracking enabled. `extract_<category>` stages the window's events in `thrive_sync.staged_events`.
`validate_and_map_<category>` validates them, writes the good ones and logs the rest.
`report` gathers the counts, prints the run report and fails the run when the failure share
passes `failure_threshold`.

**Params.** `dry_run` (validate and map, write nothing), `categories` (which to run),
`failure_threshold` (share of rows past the gates that may fail before the run fails),
`delay_minutes` (how long after the day ends the sync starts).

**Connections.** `thrive_db` (PostgreSQL) and, per account, `thrive.accounts.salesforce_conn_id`
(default `salesforce_default`).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.sdk import Param, dag, get_current_context, task
from airflow.timetables.interval import CronDataIntervalTimetable

from thrive_sync.alerts import on_task_failure
from thrive_sync.core.catalog import Category
from thrive_sync.operators import ValidateAndMapOperator
from thrive_sync.sql import SQL_DIR

THRIVE_DB_CONN_ID = "thrive_db"
ALL_CATEGORIES = [c.value for c in Category]
DEFAULT_FAILURE_THRESHOLD = 0.5
# Deployment settings, read from the environment at parse time (cheap: no database, no network).
TIMEZONE = os.environ.get("THRIVE_SYNC_TIMEZONE", "UTC")
DELAY_MINUTES = int(os.environ.get("THRIVE_SYNC_DELAY_MINUTES", "120"))
RETRY_DELAY = timedelta(seconds=float(os.environ.get("THRIVE_SYNC_RETRY_DELAY_SECONDS", "120")))
MAPPING_PATH = os.environ.get("THRIVE_SYNC_MAPPING") or None  # None: include/mapping/thrive_activity.yaml
# Records per task below which sObject Collections are used, from there on Bulk API 2.0.
BULK_THRESHOLD = int(os.environ.get("THRIVE_SYNC_BULK_THRESHOLD", "2000"))


@dag(
    dag_id="thrive_tracking_sync",
    # A data-interval timetable: "@daily" in Airflow 3 has no interval (start == end).
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=1,
    template_searchpath=[str(SQL_DIR)],
    default_args={
        "retries": 2,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(hours=2),
        "on_failure_callback": on_task_failure,  # a notifier, when Variable thrive_sync_alerts turns one on
    },
    params={
        "dry_run": Param(False, type="boolean", description="Validate and map, write nothing to Salesforce."),
        "categories": Param(
            ALL_CATEGORIES,
            type="array",
            items={"type": "string", "enum": ALL_CATEGORIES},
            minItems=1,
            uniqueItems=True,
            description="The categories to sync.",
        ),
        "failure_threshold": Param(
            DEFAULT_FAILURE_THRESHOLD,
            type="number",
            minimum=0,
            maximum=1,
            description="Fail the run when more than this share of the rows past the gates failed.",
        ),
        "delay_minutes": Param(
            DELAY_MINUTES,
            type="integer",
            minimum=0,
            maximum=1440,
            description="Minutes after the day ends before the sync starts (its time of day).",
        ),
    },
    tags=["thrive", "salesforce", "tracking"],
    doc_md=__doc__,
)
def thrive_tracking_sync():
    @task.short_circuit(doc_md="Reads `thrive.accounts`; stops the run when no account has tracking enabled.")
    def check_accounts() -> dict[str, dict[str, str | None]] | bool:
        from airflow.providers.postgres.hooks.postgres import PostgresHook
        from airflow.sdk.exceptions import AirflowFailException

        from thrive_sync.core.gates import AccountGates, gate_summary
        from thrive_sync.preflight import THRIVE_DB, connection_exists, failing_fast
        from thrive_sync.sql import read_sql

        context = get_current_context()
        if context.get("data_interval_start") is None:
            raise AirflowFailException("this run has no data interval: trigger it with a logical date")
        with failing_fast():
            connection_exists(THRIVE_DB_CONN_ID, THRIVE_DB)
        rows = PostgresHook(postgres_conn_id=THRIVE_DB_CONN_ID).get_records(read_sql("gate/accounts.sql"))
        summary = gate_summary(AccountGates(*row) for row in rows)
        closed = {a: g[Category.MESSAGE_ACTIVITY] for a, g in summary.items() if g[Category.MESSAGE_ACTIVITY]}
        for account_id, gate in closed.items():
            print(f"Skipping account {account_id}: {gate}")
        if len(closed) == len(summary):
            print(f"No account has tracking enabled ({len(summary)} accounts): nothing to sync.")
            return False
        return summary

    wait = TimeDeltaSensor(
        task_id="wait_after_midnight",
        delta="{{ params.delay_minutes }}",
        mode="reschedule",
        poke_interval=timedelta(minutes=5),
        timeout=timedelta(hours=24),
        doc_md="Holds the run until `delay_minutes` after the day ends, so that the day's export has landed. "
        "Runs for past days (backfills, `airflow dags test`) pass at once.",
    )
    gates = check_accounts()
    wait >> gates
    syncs = []
    for category in Category:
        extract = SQLExecuteQueryOperator(
            task_id=f"extract_{category.value}",
            conn_id=THRIVE_DB_CONN_ID,
            sql=f"extract/{category.value}.sql",
            split_statements=True,
            return_last=True,
            parameters={
                "run_id": "{{ run_id }}",
                "window_start": "{{ data_interval_start }}",
                "window_end": "{{ data_interval_end }}",
                "selected": f"{{{{ '{category.value}' in params.categories }}}}",
            },
            doc_md=f"Stages the window's `{category.value}` events (with recipient and message) in "
            "`thrive_sync.staged_events`; returns the count per account.",
        )
        sync = ValidateAndMapOperator(
            task_id=f"validate_and_map_{category.value}",
            category=category.value,
            dry_run="{{ params.dry_run }}",
            mapping_path=MAPPING_PATH,
            bulk_threshold=BULK_THRESHOLD,
            doc_md=f"Validates the staged `{category.value}` events, upserts the good ones into Salesforce and "
            "records every failure in `thrive_sync.tracking_log`.",
        )
        gates >> extract >> sync
        syncs.append(sync)

    @task(doc_md="Prints the run report, stores it in XCom, and fails the run past `failure_threshold`.")
    def report() -> dict:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        from thrive_sync import alerts
        from thrive_sync.core.report import build_report, format_report
        from thrive_sync.sql import read_sql

        context = get_current_context()
        params = context["params"]
        run = {"run_id": context["run_id"]}
        hook = PostgresHook(postgres_conn_id=THRIVE_DB_CONN_ID)
        window = (str(context["data_interval_start"]), str(context["data_interval_end"]))
        result = build_report(
            context["run_id"],
            window,
            hook.get_records(read_sql("sync/run_report.sql"), parameters=run),
            hook.get_records(read_sql("sync/failures_by_reason.sql"), parameters=run),
            params["categories"],
            bool(params["dry_run"]),
        )
        print(format_report(result))
        hook.run(read_sql("sync/clear_staging.sql"), parameters=run, split_statements=True)
        if result["failure_share"] > params["failure_threshold"]:
            message = (
                f"{result['failure_share']:.1%} of the rows past the gates failed, more than the "
                f"failure_threshold {params['failure_threshold']:.0%}: see thrive_sync.tracking_log"
            )
            alerts.send(context, f"thrive_tracking_sync {context['run_id']}: failure threshold passed", message)
            raise alerts.ThresholdBreached(message)
        return result

    syncs >> report()


thrive_tracking_sync()
