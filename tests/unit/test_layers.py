"""The shape of the package: a core free of I/O libraries, small functions, one plugin module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins"
CORE_MODULES = sorted(p.stem for p in (PLUGINS / "thrive_sync" / "core").glob("*.py") if p.stem != "__init__")
IO_LIBRARIES = ("airflow", "psycopg", "simple_salesforce")
MAX_FUNCTION_LINES = 50


def test_the_core_imports_no_io_library():
    """Importing every core module (and what they import) loads none of airflow, psycopg, simple_salesforce."""
    imports = "; ".join(f"import thrive_sync.core.{m}" for m in CORE_MODULES)
    check = f"import sys; {imports}; print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(IO_LIBRARIES)!r}))"
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, env={"PYTHONPATH": str(PLUGINS)}, check=True
    )
    assert len(CORE_MODULES) >= 9, CORE_MODULES
    assert result.stdout.strip() == "[]"


# The house rule holds for the dev tools too: the sandbox and the local services are read as often as the package.
SMALL_FUNCTION_FILES = sorted(
    [
        *PLUGINS.rglob("*.py"),
        *(ROOT / "dags").glob("*.py"),
        *(ROOT / "tools" / "sf_sandbox").glob("*.py"),
        *(ROOT / "tools" / "thrive_dev").glob("*.py"),
    ]
)


@pytest.mark.parametrize("path", SMALL_FUNCTION_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_is_longer_than_about_fifty_lines(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_the_plugin_loader_sees_only_the_plugin_module():
    """plugins/.airflowignore keeps Airflow from importing the package's files as top-level modules."""
    patterns = [
        line.strip()
        for line in (PLUGINS / ".airflowignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns == ["thrive_sync/"]
    assert sorted(p.name for p in PLUGINS.glob("*.py")) == ["thrive_sync_plugin.py"]
