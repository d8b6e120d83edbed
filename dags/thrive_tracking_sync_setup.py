"""
### Thrive tracking sync: create its tables

Creates the package's own tables (schema `thrive_sync`: `sync_runs`, `tracking_log` and the
staging tables) in the `thrive_db` PostgreSQL, from `include/sql/schema/02_thrive_sync.sql`.
Trigger it once after deploying the package and again after an upgrade: the statements are
idempotent (`IF NOT EXISTS`), so a second run changes nothing. The connection's user needs
`CREATE` on the database for this run only; the daily DAG needs only read and write.
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.sdk import dag

from thrive_sync.settings import SETUP_DAG_ID, SQL_DIR, THRIVE_DB_CONN_ID


@dag(
    dag_id=SETUP_DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2},
    template_searchpath=[str(SQL_DIR)],
    tags=["thrive", "setup"],
    doc_md=__doc__,
)
def thrive_tracking_sync_setup():
    SQLExecuteQueryOperator(
        task_id="create_tables",
        conn_id=THRIVE_DB_CONN_ID,
        sql="schema/02_thrive_sync.sql",
        split_statements=False,  # one transaction: all of the tables or none
        doc_md="Applies `include/sql/schema/02_thrive_sync.sql` (idempotent).",
    )


thrive_tracking_sync_setup()
