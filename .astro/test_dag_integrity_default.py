"""What `astro dev parse` checks, inside the project's image: every DAG file imports without an error.

The Astro CLI runs this file with pytest in the image (`astro dev parse`, and `astro deploy` before it pushes).
`astro dev init` writes its own version; that one calls ``DagBag(include_examples=False)``, an argument Airflow
3.3 removed, so it would fail before testing anything. It also patches connections, variables and ``os.getenv``
so that DAG files which read them while parsed import anyway; this package's DAG files read none of them then (a
``THRIVE_SYNC_*`` setting that cannot be used is an import error here as in the scheduler), so nothing is patched.

It imports only Airflow, so tests/system/test_astro_project.py calls the same functions in a virtualenv holding
requirements.txt alone. A DAG file listed in .astro/dag_integrity_exceptions.txt may fail.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.dag_processing.dagbag import DagBag

PROJECT = Path(__file__).resolve().parents[1]  # AIRFLOW_HOME in the image: /usr/local/airflow
EXCEPTIONS = PROJECT / ".astro" / "dag_integrity_exceptions.txt"
PACKAGE_DAG_IDS = {"thrive_tracking_sync", "thrive_tracking_sync_setup", "thrive_tracking_retention"}


@cache
def dag_bag() -> DagBag:
    """The DAG folder Airflow is configured with, parsed once: the one the image's DAG processor reads."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag()


def exempt_files() -> set[str]:
    """The files .astro/dag_integrity_exceptions.txt lets fail (comments and blank lines skipped)."""
    if not EXCEPTIONS.exists():
        return set()
    lines = (line.strip() for line in EXCEPTIONS.read_text().splitlines())
    return {line for line in lines if line and not line.startswith("#")}


def test_no_dag_file_has_an_import_error() -> None:
    errors = {os.path.relpath(path, PROJECT): message for path, message in dag_bag().import_errors.items()}
    failing = {path: message for path, message in errors.items() if path not in exempt_files()}
    assert not failing, "\n\n".join(f"{path} failed to import:\n{message}" for path, message in failing.items())


def test_every_dag_of_the_package_is_found() -> None:
    found = set(dag_bag().dags)
    assert PACKAGE_DAG_IDS <= found, f"missing {sorted(PACKAGE_DAG_IDS - found)}; found {sorted(found)}"
