"""Where the package's SQL lives: ``include/sql/`` at the project root, one job per file."""

from __future__ import annotations

from thrive_sync.settings import SQL_DIR


def read_sql(relative_path: str) -> str:
    """The text of ``include/sql/<relative_path>``."""
    return (SQL_DIR / relative_path).read_text(encoding="utf-8")
