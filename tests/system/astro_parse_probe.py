"""Run inside the fresh virtualenv of test_astro_project.py, from the project as the image holds it.

Imports nothing of the test suite: the interpreter running it has requirements.txt and nothing else. It runs the
functions of .astro/test_dag_integrity_default.py (what `astro dev parse` runs with pytest in the image), loads
the Airflow plugins as the API server does, and writes what it saw as JSON to the path given as its argument, for
the test to assert on.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import traceback
from pathlib import Path
from typing import Any


def integrity_tests(home: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """Each test function of the .astro file: "passed" or its failure; and the module's namespace."""
    namespace = runpy.run_path(str(home / ".astro" / "test_dag_integrity_default.py"))
    outcomes = {}
    for name, function in namespace.items():
        if name.startswith("test_") and callable(function):
            try:
                function()
                outcomes[name] = "passed"
            except Exception:  # every failure is reported, none raised
                outcomes[name] = traceback.format_exc(limit=3)
    return outcomes, namespace


def plugins() -> tuple[dict[str, str], bool]:
    """Airflow's plugin loader over the plugins folder: its import errors, and whether ours was loaded."""
    from airflow import plugins_manager

    plugins_manager.ensure_plugins_loaded()
    errors = {str(k): str(v) for k, v in plugins_manager.get_import_errors().items()}
    return errors, "thrive_sync_plugin" in sys.modules


def main(out: Path) -> None:
    home = Path(os.environ["AIRFLOW_HOME"])
    tests, namespace = integrity_tests(home)
    bag = namespace["dag_bag"]()
    plugin_errors, plugin_loaded = plugins()

    import airflow

    import thrive_sync
    from thrive_sync import settings

    report = {
        "airflow": airflow.__version__,
        "python": ".".join(map(str, sys.version_info[:2])),
        "integrity_tests": tests,
        "dag_ids": sorted(bag.dags),
        "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
        "plugin_errors": plugin_errors,
        "plugin_loaded": plugin_loaded,
        "thrive_sync": str(Path(thrive_sync.__file__).resolve()),
        "sql_dir": str(settings.SQL_DIR),
        "sql_files": len(list(settings.SQL_DIR.rglob("*.sql"))),
        "mapping": str(settings.DEFAULT_MAPPING) if settings.DEFAULT_MAPPING.is_file() else None,
        "sys_path": sys.path,
    }
    out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
