"""Salesforce clients from Airflow connections, through the provider's ``SalesforceHook``.

Three connection shapes work, all standard ``salesforce`` connections:

- **password + security token**: login, password, extra ``security_token`` (and ``domain``: ``test``
  for a sandbox org);
- **OAuth JWT**: login, extras ``consumer_key`` and ``private_key`` (or ``private_key_file_path``);
- **instance URL + session**: no login, the session id as password, extra ``instance_url`` — how
  the local sandbox is reached (the hook takes a session id only as a constructor argument, so it
  is passed from the password here).

Extras read here, beyond the hook's: ``ca_bundle`` (a CA file to trust; it also turns off
``REQUESTS_CA_BUNDLE``, which requests would otherwise let override it) and ``timeout``
(seconds per HTTP request, default 120: simple_salesforce sets none, and a hung socket must
become a retryable error, not a stuck task).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter

if TYPE_CHECKING:
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

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
    session.mount("https://", TimeoutHTTPAdapter(float(extras.get("timeout") or DEFAULT_TIMEOUT_SECONDS)))
    if extras.get("ca_bundle"):
        session.verify = extras["ca_bundle"]
        session.trust_env = False
    direct = bool(extras.get("instance_url")) and not conn.login and bool(conn.password)
    return SalesforceHook(salesforce_conn_id=conn_id, session_id=conn.password if direct else None, session=session)
