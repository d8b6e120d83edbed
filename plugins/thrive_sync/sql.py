"""Where the package's SQL lives: ``include/sql/`` at the project root, one job per file."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = PROJECT_ROOT / "include" / "sql"


def read_sql(relative_path: str) -> str:
    """The text of ``include/sql/<relative_path>``."""
    return (SQL_DIR / relative_path).read_text(encoding="utf-8")
