"""Create the source (``thrive``) and package (``thrive_sync``) schemas, and check what is there.

A dev tool (``make up``, sample data, tests): a deployment applies ``include/sql/schema/`` itself,
so this lives outside the deployed package. It applies the package's own DDL from there, plus,
when asked, the dev tools' DDL from ``tools/thrive_dev/sql/``.

The DDL files are idempotent (``IF NOT EXISTS`` throughout), so applying them to a database that
already has the tables changes nothing. That same idempotency would hide a table that exists with
another shape — a user's own ``thrive.recipients`` without ``custom_member_id``, say — so after
applying, :func:`missing_columns` compares every table the DDL declares with the live catalog.
"""

from __future__ import annotations

import re
from typing import Any

from thrive_dev.sql_files import read_dev_sql
from thrive_sync.sql import read_sql

# Under include/sql/ (the package's DDL, deployed with it).
PACKAGE_SCHEMA_FILES: tuple[str, ...] = ("schema/01_thrive.sql", "schema/02_thrive_sync.sql")

# Serialises concurrent appliers (two `make up`s, parallel test workers): CREATE ... IF NOT EXISTS
# is not safe against a concurrent CREATE of the same name.
_ADVISORY_LOCK_KEY = 7_142_305_001

_TABLE = re.compile(r"CREATE (?:UNLOGGED )?TABLE IF NOT EXISTS (\w+)\.(\w+) \((.*?)\n\)(?: PARTITION BY [^;]*)?;", re.S)
_COLUMN = re.compile(r"^\s+(\w+)\s+(?:text|bigint|integer|boolean|timestamptz|jsonb)\b", re.M)


class SchemaMismatch(RuntimeError):
    """A table exists but lacks columns the package needs."""


def declared_columns(ddl: str) -> dict[tuple[str, str], list[str]]:
    """``{(schema, table): [column, ...]}`` for every CREATE TABLE in ``ddl``."""
    return {(schema, table): _COLUMN.findall(body) for schema, table, body in _TABLE.findall(ddl)}


def missing_columns(conn: Any, ddl: str) -> list[str]:
    """``schema.table.column`` for every column ``ddl`` declares that the database lacks."""
    missing = []
    with conn.cursor() as cur:
        for (schema, table), columns in declared_columns(ddl).items():
            cur.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
                (schema, table),
            )
            present = {row[0] for row in cur.fetchall()}
            missing += [f"{schema}.{table}.{c}" for c in columns if c not in present]
    return missing


def apply_schema(conn: Any, files: tuple[str, ...] = PACKAGE_SCHEMA_FILES, dev_files: tuple[str, ...] = ()) -> None:
    """Apply the DDL in one transaction, then fail if an existing table lacks columns.

    ``files`` are under ``include/sql/`` (the package's), ``dev_files`` under ``tools/thrive_dev/sql/``,
    applied after them. ``conn`` is a psycopg 3 connection (``PostgresHook().get_conn()`` gives one).
    """
    ddl = "\n".join([*(read_sql(f) for f in files), *(read_dev_sql(f) for f in dev_files)])
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK_KEY,))
        cur.execute(ddl)
    missing = missing_columns(conn, ddl)
    if missing:
        raise SchemaMismatch(
            f"existing tables lack columns the package needs: {', '.join(missing)}; "
            "add them (see include/sql/schema/) or point the thrive_db connection at another database"
        )
