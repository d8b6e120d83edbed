"""The dev tools' own SQL: ``tools/thrive_dev/sql/`` (sample-data bookkeeping, the benchmark's floor).

Kept out of ``include/sql/``, which is deployed with the package; the package's files are read with
``thrive_sync.sql.read_sql``.
"""

from __future__ import annotations

from pathlib import Path

DEV_SQL_DIR = Path(__file__).resolve().parent / "sql"


def read_dev_sql(relative_path: str) -> str:
    """The text of ``tools/thrive_dev/sql/<relative_path>``."""
    return (DEV_SQL_DIR / relative_path).read_text(encoding="utf-8")
