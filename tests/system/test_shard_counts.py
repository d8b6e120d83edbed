"""An account's counts in ``sync_runs`` are the sum of its shards' rows, of the latest split only.

A DAG run cleared and done again keeps its run id; when its org's day splits into fewer shards than
before (fewer rows, the account moved to another org, another ``THRIVE_SYNC_SHARD_ROWS``), the
earlier split's higher shards must not be added in (a bench run of one day over one org, then over
four, once reported 1,477,565 written for 949,961 records).
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from thrive_dev.schema import apply_schema
from thrive_sync.core.catalog import Category
from thrive_sync.core.parts import Part
from thrive_sync.core.tally import AccountCounts
from thrive_sync.hooks.thrive_store import CategoryStore

RUN_ID, ACCOUNT = "scheduled__2026-11-27T00:00:00+00:00", "acct-s"
WINDOW = {"window_start": datetime(2026, 11, 26, tzinfo=UTC), "window_end": datetime(2026, 11, 27, tzinfo=UTC),
          "dry_run": False, "started_at": datetime(2026, 11, 27, 2, tzinfo=UTC)}  # fmt: skip


def save_split(conn: psycopg.Connection, conn_id: str, written: list[int]) -> None:
    """Each shard of a split of ``len(written)`` saves the account's counts, one after the other."""
    for shard, count in enumerate(written):
        store = CategoryStore(conn, conn, RUN_ID, Category.MESSAGE_ACTIVITY, Part(conn_id, shard, len(written)))
        store.save_counts(ACCOUNT, AccountCounts(extracted=count, written=count), WINDOW)


def saved(conn: psycopg.Connection) -> tuple[int, int, int]:
    """The account's extracted and written in sync_runs, and its shard rows."""
    return conn.execute(
        "SELECT r.extracted, r.written, (SELECT count(*) FROM thrive_sync.sync_run_shards s"
        " WHERE s.dag_run_id = r.dag_run_id AND s.account_id = r.account_id AND s.category = r.category)"
        " FROM thrive_sync.sync_runs r WHERE r.dag_run_id = %s AND r.account_id = %s",
        [RUN_ID, ACCOUNT],
    ).fetchone()


def test_a_run_done_again_in_fewer_shards_counts_only_its_own(fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        apply_schema(conn)
        save_split(conn, "salesforce_default", [300, 300, 300, 100])
        assert saved(conn) == (1000, 1000, 4)
        save_split(conn, "salesforce_org_2", [520, 480])  # the run again: the account's org now in two
        assert saved(conn) == (1000, 1000, 2)
        save_split(conn, "salesforce_org_2", [520, 480])  # a retried split overwrites its own rows
        assert saved(conn) == (1000, 1000, 2)
