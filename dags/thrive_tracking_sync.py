"""
### Thrive tracking sync

Pushes one day of Higher Logic Thrive Marketing Enterprise tracking — message activity,
recipient details, marketing automation, social CRM, surveys and events — into Salesforce for
every recipient whose Custom Member ID matches a Contact or Lead.

**Window.** Each run covers one UTC day, its data interval `[start, end)`: a scheduled or
backfill run with logical date *D* processes day *D*; `airflow dags test thrive_tracking_sync D`
and a manual trigger at *D* process the last complete day before *D*.

**Tasks.** `check_accounts` reads each account's gates and stops the run when no account has
tracking enabled; one `extract_<category>` per category counts the window's events per account;
`report` prints them as a table.

**Connections.** `thrive_db` (PostgreSQL: source tables `thrive.*`, package tables `thrive_sync.*`).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.sdk import dag, get_current_context, task
from airflow.timetables.interval import CronDataIntervalTimetable

from thrive_sync.catalog import Category
from thrive_sync.sql import SQL_DIR

THRIVE_DB_CONN_ID = "thrive_db"
WINDOW = {"window_start": "{{ data_interval_start }}", "window_end": "{{ data_interval_end }}"}


@dag(
    dag_id="thrive_tracking_sync",
    # A data-interval timetable: "@daily" in Airflow 3 has no interval (start == end).
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    template_searchpath=[str(SQL_DIR)],
    default_args={
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(hours=2),
    },
    tags=["thrive", "salesforce", "tracking"],
    doc_md=__doc__,
)
def thrive_tracking_sync():
    @task.short_circuit(doc_md="Reads `thrive.accounts`; stops the run when no account has tracking enabled.")
    def check_accounts() -> dict[str, dict[str, str | None]] | bool:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        from thrive_sync.gates import AccountGates, gate_summary
        from thrive_sync.sql import read_sql

        context = get_current_context()
        if context.get("data_interval_start") is None:
            raise ValueError("this run has no data interval: trigger it with a logical date")
        rows = PostgresHook(postgres_conn_id=THRIVE_DB_CONN_ID).get_records(read_sql("gate/accounts.sql"))
        summary = gate_summary(AccountGates(*row) for row in rows)
        if not any(gates[Category.MESSAGE_ACTIVITY] is None for gates in summary.values()):
            print(f"No account has tracking enabled ({len(summary)} accounts): nothing to sync.")
            return False
        return summary

    gates = check_accounts()

    extracts = {
        category.value: SQLExecuteQueryOperator(
            task_id=f"extract_{category.value}",
            conn_id=THRIVE_DB_CONN_ID,
            sql=f"extract/{category.value}.sql",
            parameters=WINDOW,
            doc_md=f"Counts the window's `{category.value}` events per account.",
        )
        for category in Category
    }

    @task(doc_md="Prints the window's counts per category and account, and returns them.")
    def report(gates: dict[str, dict[str, str | None]], counts: dict[str, list[list]]) -> dict:
        from thrive_sync.report import format_counts

        context = get_current_context()
        window = (str(context["data_interval_start"]), str(context["data_interval_end"]))
        typed = {category: [(str(a), int(n)) for a, n in rows] for category, rows in counts.items()}
        print(format_counts(window, typed, gates))
        return {"window": list(window), "events": {c: sum(n for _, n in rows) for c, rows in typed.items()}}

    gates >> list(extracts.values())
    report(gates, {category: op.output for category, op in extracts.items()})


thrive_tracking_sync()
