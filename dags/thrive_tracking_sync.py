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
`report` gathers the counts, prints the run report, judges each org's health (alerting when it
changes), and fails the run when a sync task failed or the failure share passes `failure_threshold`.
`publish_landed` updates the Asset `salesforce://<connection>/<object>` of each org whose day landed.
`clear_staging` (a teardown, after the syncs) drops the run's staged rows, whatever became of the
syncs. A category left out by `categories` shows as skipped.

**Params.** `dry_run` (validate and map, write nothing), `categories` (which to run),
`failure_threshold` (share of rows past the gates that may fail before the run fails),
`lookback_days` and `retry_days` (how far back late rows and failures that can heal are looked for),
`max_attempts`, `resend_unchanged` (send rows written before with the same content),
`delay_minutes` (how long after the day ends the sync starts).

**Deadline.** `THRIVE_SYNC_DEADLINE` (`HH:MM` after the day ends; off when unset) alerts when a
run has not succeeded by then.

**Connections.** `thrive_db` (PostgreSQL) and, per account, `thrive.accounts.salesforce_conn_id`
(default `salesforce_default`).
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import pendulum
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.sdk import Param, TaskGroup, dag, get_current_context, task
from airflow.sdk.definitions.mappedoperator import MappedOperator
from airflow.sdk.definitions.retry_policy import ExceptionRetryPolicy, RetryAction, RetryRule
from airflow.timetables.interval import CronDataIntervalTimetable

from thrive_sync import tasks
from thrive_sync.alerts import on_task_failure
from thrive_sync.assets import landed_alias
from thrive_sync.core.catalog import Category
from thrive_sync.core.ledger import HEALING_ERROR_CODES, HEALING_REASONS
from thrive_sync.core.mapping import mapping_digest
from thrive_sync.core.parts import part_kwargs
from thrive_sync.deadline import deadline_alerts
from thrive_sync.errors import NOT_RETRIED
from thrive_sync.operators import ValidateAndMapOperator
from thrive_sync.settings import DAG_ID, DEFAULT_SALESFORCE_CONN_ID, SQL_DIR, THRIVE_DB_CONN_ID, Deployment

DEPLOYMENT = Deployment.from_environ()  # THRIVE_SYNC_* (cheap: no database, no network)
ALL_CATEGORIES = [c.value for c in Category]
# Retrying cannot fix a configuration mistake or a run past its failure threshold: fail at once.
NO_RETRY = ExceptionRetryPolicy(
    rules=[RetryRule(exception=list(NOT_RETRIED), action=RetryAction.FAIL, reason="a retry cannot fix this")]
)


def category_group(category: Category) -> tuple[SQLExecuteQueryOperator, MappedOperator]:
    """The task group of one category: stage its day, then validate, write and log it."""
    with TaskGroup(group_id=category.value, prefix_group_id=False, tooltip=f"Sync {category.value}"):
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
                "lookback_days": "{{ params.lookback_days }}",
                "retry_days": "{{ params.retry_days }}",
                "resend_unchanged": "{{ params.resend_unchanged }}",
                "max_attempts": "{{ params.max_attempts }}",
                "mapping_digest": "{{ mapping_digest() }}",
                "healing_reasons": list(HEALING_REASONS),
                "healing_error_codes": list(HEALING_ERROR_CODES),
                "default_conn_id": DEFAULT_SALESFORCE_CONN_ID,
                "shard_rows": DEPLOYMENT.shard_rows,
                "max_shards": DEPLOYMENT.max_shards,
            },
            pre_execute=tasks.skip_unless_selected(category),
            doc_md=f"Stages the `{category.value}` events the run considers (its day, late rows and failures "
            "that can heal, by the event ledger) in `thrive_sync.staged_events`; returns the parts the sync "
            "maps over: one per Salesforce connection the accounts use, a large day of one org in shards. "
            "Skipped when `categories` leaves the category out.",
        )
        # One instance per part (org, shard), named by it in the UI: one org's trouble fails only its own.
        sync = ValidateAndMapOperator.partial(
            task_id=f"validate_and_map_{category.value}",
            map_index_template=ValidateAndMapOperator.PART_LABEL,
            category=category.value,
            dry_run="{{ params.dry_run }}",
            mapping_path=DEPLOYMENT.mapping_path,
            bulk_threshold=DEPLOYMENT.bulk_threshold,
            bulk_job_rows=DEPLOYMENT.bulk_job_rows,
            poll_seconds=DEPLOYMENT.poll_seconds,
            job_timeout_seconds=DEPLOYMENT.job_timeout_seconds,
            group_by_parent=DEPLOYMENT.group_by_parent,
            doc_md=f"Validates the staged `{category.value}` events of one org (or one shard of its day), upserts "
            "the good ones into Salesforce and records every failure in `thrive_sync.tracking_log`.",
        ).expand_kwargs(extract.output.map(part_kwargs))
    return extract, sync


@dag(
    dag_id=DAG_ID,
    # A data-interval timetable: "@daily" in Airflow 3 has no interval (start == end).
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone=DEPLOYMENT.timezone),
    start_date=pendulum.datetime(2026, 1, 1, tz=DEPLOYMENT.timezone),
    catchup=False,
    max_active_runs=1,
    deadline=deadline_alerts(DEPLOYMENT.deadline_after_day, DEPLOYMENT.deadline or ""),
    template_searchpath=[str(SQL_DIR)],
    user_defined_macros={"mapping_digest": partial(mapping_digest, DEPLOYMENT.mapping_path)},
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=DEPLOYMENT.retry_delay_seconds),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
        "retry_policy": NO_RETRY,
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
            0.5,
            type="number",
            minimum=0,
            maximum=1,
            description="Fail the run when more than this share of the rows past the gates failed.",
        ),
        "lookback_days": Param(
            2,
            type="integer",
            minimum=0,
            maximum=60,
            description="Days before the run's day searched for rows that arrived late or changed since their day ran.",
        ),
        "retry_days": Param(
            7,
            type="integer",
            minimum=0,
            maximum=60,
            description="Days before the run's day whose failures that can heal (an unmatched member Id, an "
            "outage) are tried again.",
        ),
        "max_attempts": Param(
            5,
            type="integer",
            minimum=1,
            maximum=100,
            description="Runs that may try a failed row before it stays failed.",
        ),
        "resend_unchanged": Param(
            False,
            type="boolean",
            description="Send the day's rows that were written before with the same content (normally left alone).",
        ),
        "delay_minutes": Param(
            DEPLOYMENT.delay_minutes,
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
        return tasks.check_accounts(get_current_context(), THRIVE_DB_CONN_ID)

    @task(trigger_rule="all_done", doc_md="Prints the run report; fails the run when a sync task failed or "
          "the failure share passed `failure_threshold`.")  # fmt: skip
    def report() -> dict:
        return tasks.report(get_current_context(), THRIVE_DB_CONN_ID)

    @task(trigger_rule="all_done", outlets=[landed_alias()], doc_md="Updates the Asset of each org whose day "
          "landed (every part saved): `salesforce://<connection>/<object>`, for DAGs scheduled on it.")  # fmt: skip
    def publish_landed() -> list[str]:
        return tasks.publish_landed(get_current_context(), THRIVE_DB_CONN_ID, DEPLOYMENT.mapping_path)

    @task(doc_md="Drops the run's staged rows and member lookups, whatever became of the syncs.")
    def clear_staging() -> None:
        tasks.clear_staging(get_current_context(), THRIVE_DB_CONN_ID, DEPLOYMENT.ledger_retention_days)

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
    groups = [category_group(category) for category in Category]
    extracts, syncs = [extract for extract, _ in groups], [sync for _, sync in groups]
    gates >> extracts

    # The extracts are clear_staging's setups: clearing a sync task in the UI re-runs its extract first
    # and clear_staging after. The report is not downstream of the teardown, so a category left out
    # (its extract skipped) does not skip the report.
    syncs >> report()
    syncs >> publish_landed()
    syncs >> clear_staging().as_teardown(setups=extracts, on_failure_fail_dagrun=True)


thrive_tracking_sync()
