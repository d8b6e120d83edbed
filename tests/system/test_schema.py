"""The DDL applies to an empty database, applies again without change, and catches a wrong shape."""

from __future__ import annotations

import psycopg
import pytest

from thrive_dev.schema import PACKAGE_SCHEMA_FILES, SchemaMismatch, apply_schema, declared_columns
from thrive_sync.sql import read_sql

CATALOG_SNAPSHOT = """
    SELECT n.nspname, c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE n.nspname IN ('thrive', 'thrive_sync')
    ORDER BY 1, 2, 4
"""


def test_contract_tables_and_columns_are_declared():
    ddl = "\n".join(read_sql(f) for f in PACKAGE_SCHEMA_FILES)
    tables = declared_columns(ddl)
    assert set(tables) == {
        ("thrive", t)
        for t in (
            "accounts",
            "recipients",
            "messages",
            "message_activity",
            "recipient_activity",
            "automation_activity",
            "social_activity",
            "survey_event_activity",
        )
    } | {
        ("thrive_sync", t)
        for t in (
            "sync_runs",
            "tracking_log",
            "staged_events",
            "staged_tallies",
            "member_matches",
            "bulk_jobs",
            "event_ledger",
            "considered_days",
            "org_usage",
            "retention_runs",
            "run_parts",
            "sync_run_shards",
            "refused_logins",
            "org_health",
        )
    }
    assert tables[("thrive", "recipients")] == [
        "account_id",
        "recipient_id",
        "email",
        "phone",
        "custom_member_id",
        "facebook_handle",
        "twitter_handle",
    ]
    assert "reason_code" in tables[("thrive_sync", "tracking_log")]
    # CONTRACT.md section 4: the ledger's columns (more may be added, none renamed)
    assert {"account_id", "category", "event_id", "status", "reason_code", "content_hash", "first_dag_run_id",
            "last_dag_run_id", "attempts", "last_attempt_at", "written_at", "occurred_at"} <= set(
        tables[("thrive_sync", "event_ledger")])  # fmt: skip
    assert {"unchanged", "late", "retried", "deferred"} <= set(tables[("thrive_sync", "sync_runs")])


def test_schema_applies_twice_and_the_second_time_changes_nothing(fresh_db):
    with psycopg.connect(fresh_db) as conn:
        apply_schema(conn)
        first = conn.execute(CATALOG_SNAPSHOT).fetchall()
        apply_schema(conn)
        second = conn.execute(CATALOG_SNAPSHOT).fetchall()
    assert first == second
    relations = {(schema, name) for schema, name, kind, *_ in first if kind in ("r", "p")}
    assert len(relations) == 22  # 8 source tables, 14 of the package (the ledger partitioned)
    # Only primary-key columns are NOT NULL in the source tables (CONTRACT.md section 3).
    not_null = {
        (name, column)
        for schema, name, kind, column, _, notnull in first
        if schema == "thrive" and kind == "r" and notnull
    }
    assert ("message_activity", "occurred_at") not in not_null
    assert ("recipients", "custom_member_id") not in not_null
    assert ("message_activity", "event_id") in not_null


def test_existing_table_of_another_shape_is_named(fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA thrive; CREATE TABLE thrive.recipients (account_id text, recipient_id bigint)")
    with psycopg.connect(fresh_db) as conn, pytest.raises(SchemaMismatch) as err:
        apply_schema(conn)
    assert "thrive.recipients.custom_member_id" in str(err.value)
    assert "thrive.recipients.email" in str(err.value)


def test_staging_and_member_cache_are_unlogged_even_in_an_older_database(fresh_db):
    """No WAL for the run-scoped tables; a database made when staging was logged gets converted."""
    unlogged = "SELECT relname FROM pg_class WHERE relnamespace = 'thrive_sync'::regnamespace AND relpersistence = 'u'"
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        apply_schema(conn)
        assert {r[0] for r in conn.execute(unlogged)} >= {"staged_events", "member_matches"}
        conn.execute("ALTER TABLE thrive_sync.staged_events SET LOGGED")
        apply_schema(conn)
        assert "staged_events" in {r[0] for r in conn.execute(unlogged)}
