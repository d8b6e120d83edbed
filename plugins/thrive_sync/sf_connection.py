"""Salesforce clients from Airflow connections, through the provider's ``SalesforceHook``.

Three connection shapes work, all standard ``salesforce`` connections:

- **password + security token**: login, password, extra ``security_token`` (and ``domain``: ``test``
  for a sandbox org);
- **OAuth JWT**: login, extras ``consumer_key`` and ``private_key`` (or ``private_key_file_path``);
- **instance URL + session**: no login, the session id as password, extra ``instance_url`` — how
  the local sandbox is reached (the hook takes a session id only as a constructor argument, so it
  is passed from the password here).

Extras read here, beyond the hook's: ``ca_bundle`` (a CA file to trust; it also turns off
``REQUESTS_CA_BUNDLE``, which requests would otherwise let override it), ``timeout`` (seconds per
HTTP request, default 120: simple_salesforce sets none, and a hung socket must become a retryable
error, not a stuck task), ``http_retries`` (default 5) and ``http_backoff`` (seconds, default 0.5);
and the writer's own retry budget (:func:`retry_policy`): ``retry_attempts`` (6),
``retry_initial_seconds`` (1), ``retry_max_seconds`` (30), ``retry_budget_seconds`` (600) and
``record_retry_rounds`` (4).

Every HTTP request is retried by urllib3 on connection and read errors and on 403/5xx answers,
whatever its method: a Bulk upsert is a chain of about eight requests, and repeating one link is
far cheaper than repeating the chain. The writer only sends idempotent work (upserts on an external
ID; a repeated job creation leaves at most an empty job behind). Expired sessions and anything the
transport retries cannot cure are left to the writer (:mod:`thrive_sync.sf_writer`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

if TYPE_CHECKING:
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

    from thrive_sync.sf_writer import RetryPolicy

DEFAULT_TIMEOUT_SECONDS = 120.0


class TimeoutHTTPAdapter(HTTPAdapter):
    """An adapter that gives every request a timeout unless the caller set one.

    Written by hand because requests has no session-wide timeout setting.
    """

    def __init__(self, timeout: float, **kwargs: Any) -> None:
        self.timeout = timeout
        super().__init__(**kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def salesforce_hook(conn_id: str) -> SalesforceHook:
    """A ``SalesforceHook`` for ``conn_id`` with the session settings above applied."""
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

    conn = SalesforceHook.get_connection(conn_id)
    extras = conn.extra_dejson
    session = requests.Session()
    retries = Retry(
        total=int(extras.get("http_retries", 5)),
        backoff_factor=float(extras.get("http_backoff", 0.5)),
        status_forcelist=(403, 500, 502, 503, 504),  # 403: REQUEST_LIMIT_EXCEEDED
        allowed_methods=None,  # every method: see the module docstring
        raise_on_status=False,  # the last answer goes to simple_salesforce, which raises its own error
        respect_retry_after_header=True,
    )
    timeout = float(extras.get("timeout") or DEFAULT_TIMEOUT_SECONDS)
    session.mount("https://", TimeoutHTTPAdapter(timeout, max_retries=retries))
    if extras.get("ca_bundle"):
        session.verify = extras["ca_bundle"]
        session.trust_env = False
    direct = bool(extras.get("instance_url")) and not conn.login and bool(conn.password)
    return SalesforceHook(salesforce_conn_id=conn_id, session_id=conn.password if direct else None, session=session)


def retry_policy(conn_id: str) -> RetryPolicy:
    """The writer's retry budget for ``conn_id``: its defaults, overridden by the connection's extras."""
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

    from thrive_sync.sf_writer import RetryPolicy

    extras = SalesforceHook.get_connection(conn_id).extra_dejson
    default = RetryPolicy()
    return RetryPolicy(
        attempts=int(extras.get("retry_attempts", default.attempts)),
        initial_seconds=float(extras.get("retry_initial_seconds", default.initial_seconds)),
        max_seconds=float(extras.get("retry_max_seconds", default.max_seconds)),
        budget_seconds=float(extras.get("retry_budget_seconds", default.budget_seconds)),
        record_rounds=int(extras.get("record_retry_rounds", default.record_rounds)),
    )
