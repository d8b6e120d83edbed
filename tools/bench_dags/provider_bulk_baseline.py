"""``make bench`` baseline c: the provider's ``SalesforceBulkOperator``, fed the way DAGs commonly do it.

An upstream task reads the day's mapped rows (``tools/thrive_dev/sql/bench/mapped_day.sql``, the same rows
the floor uploads) and returns them, so they travel as XCom; the operator receives them as its
``payload`` and runs one Bulk API 1.0 upsert, batches of 10,000. Not shipped in ``dags/``: the
benchmark points ``airflow dags test`` at this folder.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.providers.salesforce.operators.bulk import SalesforceBulkOperator
from airflow.sdk import DAG, task
from airflow.timetables.interval import CronDataIntervalTimetable

OBJECT = "Thrive_Activity__c"
EXTERNAL_ID = "Thrive_Event_Id__c"


class SessionSalesforceBulkOperator(SalesforceBulkOperator):
    """The provider's operator, run unchanged, with the package's ``SalesforceApiHook`` as its hook.

    The provider's ``SalesforceHook`` accepts a session id only as a constructor argument, and the
    operator builds the hook from the connection id alone, so a session-only connection (how the
    local sandbox is reached) fails its auth choice. ``execute`` swaps the name the operator module
    looks up for the hook factory the package uses, then calls the provider's own ``execute``.
    """

    def execute(self, context: Any) -> Any:
        import airflow.providers.salesforce.operators.bulk as provider_bulk

        from thrive_sync.hooks.salesforce import SalesforceApiHook

        original = provider_bulk.SalesforceHook
        provider_bulk.SalesforceHook = SalesforceApiHook  # type: ignore[misc]
        try:
            return super().execute(context)
        finally:
            provider_bulk.SalesforceHook = original


with DAG(
    dag_id="bench_provider_bulk_baseline",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),  # as ours: run D processes D - 1
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["thrive", "benchmark"],
    doc_md=__doc__,
):

    @task
    def mapped_rows(data_interval_start: Any = None, data_interval_end: Any = None) -> list[dict[str, Any]]:
        """The day's rows as a list of dicts: the XCom the operator's payload comes from."""
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        from thrive_dev.sql_files import read_dev_sql

        hook = PostgresHook(postgres_conn_id="thrive_db")
        with hook.get_conn() as conn, conn.cursor() as cur:
            cur.execute(
                read_dev_sql("bench/mapped_day.sql"),
                {"window_start": data_interval_start, "window_end": data_interval_end},
            )
            names = [d[0] for d in cur.description]
            return [{k: v for k, v in zip(names, row, strict=True) if v is not None} for row in cur]

    SessionSalesforceBulkOperator(
        task_id="provider_bulk_upsert",
        operation="upsert",
        object_name=OBJECT,
        payload=mapped_rows(),
        external_id_field=EXTERNAL_ID,
        batch_size=10_000,
    )
