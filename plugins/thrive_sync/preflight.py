"""Checks made before a task reads a row: configuration mistakes fail the task at once, by name.

A wrong password, a missing connection or a mapping that names a field the org does not have would
otherwise surface mid-stream as thousands of identical per-record errors, after retries, or as a
half-written day. Each check here raises :class:`ConfigurationError`, which the operator turns into
``AirflowFailException``: retrying cannot fix configuration, so the task fails without retries and
the message says what to change.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simple_salesforce import Salesforce

    from thrive_sync.core.mapping import Mapping


class ConfigurationError(ValueError):
    """Something only a person can fix: a connection, a credential, the mapping, the org's schema."""


class CredentialsRefused(ConfigurationError):
    """The org answered 401: a wrong password or token, or a session that just expired (ask again)."""


THRIVE_DB = "the PostgreSQL database with the thrive tables"  # what the thrive_db connection is for


@contextmanager
def failing_fast() -> Iterator[None]:
    """Turn a :class:`ConfigurationError` into ``AirflowFailException``: the task fails without retries."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except ConfigurationError as err:
        raise AirflowFailException(str(err)) from None


def connection_exists(conn_id: str, purpose: str) -> None:
    """The Airflow connection ``conn_id`` is defined (in the metadata DB, a secrets backend or env)."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        env = f"AIRFLOW_CONN_{conn_id.upper()}"
        raise ConfigurationError(
            f"the Airflow connection {conn_id!r} ({purpose}) is not defined: add it under Admin -> "
            f"Connections, in airflow_settings.yaml, or as the environment variable {env}"
        ) from None


def check_org_accepts_mapping(sf: Salesforce, conn_id: str, mapping: Mapping) -> None:
    """The org behind ``conn_id`` accepts our credentials and has the mapping's object and fields.

    One describe call. Fields must exist and be writable, and the external ID field must be marked
    External ID, or an upsert on it is refused record by record.
    """
    from simple_salesforce.exceptions import (
        SalesforceAuthenticationFailed,
        SalesforceExpiredSession,
        SalesforceResourceNotFound,
    )

    try:
        described = getattr(sf, mapping.object).describe()
    except (SalesforceExpiredSession, SalesforceAuthenticationFailed) as err:
        content = getattr(err, "content", None)
        code = content[0].get("errorCode") if isinstance(content, list) and content else None
        code = code or type(err).__name__.removeprefix("Salesforce")
        raise CredentialsRefused(
            f"Salesforce refused the credentials of connection {conn_id!r} ({code}): check its password, "
            "security token or session, and that the user may log in"
        ) from None
    except SalesforceResourceNotFound:
        raise ConfigurationError(
            f"the org behind connection {conn_id!r} has no object {mapping.object!r}, which the mapping file "
            f"{mapping.path} writes to: deploy include/salesforce to the org, or fix 'object' in the mapping"
        ) from None
    fields = {f["name"]: f for f in described.get("fields", [])}
    missing = [name for name in mapping.fields if name not in fields]
    if missing:
        raise ConfigurationError(
            f"the org behind connection {conn_id!r} has no field(s) {missing} on {mapping.object}, which the "
            f"mapping file {mapping.path} writes: deploy include/salesforce, or fix 'fields' in the mapping"
        )
    read_only = [name for name in mapping.fields if not (fields[name]["createable"] and fields[name]["updateable"])]
    if read_only:
        raise ConfigurationError(
            f"field(s) {read_only} of {mapping.object} cannot be written through connection {conn_id!r}: "
            "give the integration user edit access to them (field-level security), or drop them from the mapping"
        )
    ext = fields[mapping.external_id_field]
    if not ext.get("externalId"):
        raise ConfigurationError(
            f"{mapping.object}.{mapping.external_id_field} is not an External ID field in the org behind "
            f"connection {conn_id!r}: upserts need it marked External ID (and Unique)"
        )
