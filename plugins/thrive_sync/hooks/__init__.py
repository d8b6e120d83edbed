"""The package's I/O: PostgreSQL (:mod:`.thrive_store`) and Salesforce (:mod:`.salesforce`)."""

from __future__ import annotations

from airflow.exceptions import AirflowNotFoundException
from airflow.sdk import BaseHook

from thrive_sync.errors import ConfigurationError


def connection_must_exist(conn_id: str, purpose: str) -> None:
    """The Airflow connection ``conn_id`` is defined (metadata DB, secrets backend or environment)."""
    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise ConfigurationError(
            f"the Airflow connection {conn_id!r} ({purpose}) is not defined: add it under Admin -> "
            f"Connections, in airflow_settings.yaml, or as the environment variable AIRFLOW_CONN_{conn_id.upper()}"
        ) from None
