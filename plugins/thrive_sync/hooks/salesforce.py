"""``SalesforceApiHook``: the provider's ``SalesforceHook`` with a session fit for a day of writes.

It adds a timeout and urllib3 retries to every HTTP request, a retried :meth:`~SalesforceApiHook.call`
that logs in again after an expired session, SOQL and describe. The connection shapes, extras and
retry layers are in ``docs/salesforce-setup.md`` and ``docs/design.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

import requests
from airflow.providers.salesforce.hooks.salesforce import SalesforceHook
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceOperationError,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_exponential
from urllib3.util import Retry

from thrive_sync.errors import CredentialsRefused, SalesforceUnavailable
from thrive_sync.hooks import connection_must_exist

log = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class RetryBudget:
    """How hard to try: per call (attempts, backoff, budget), and rounds of resending single records."""

    attempts: int = 6
    initial_seconds: float = 1.0
    max_seconds: float = 30.0
    budget_seconds: float = 600.0
    record_rounds: int = 4

    @classmethod
    def from_extras(cls, extras: dict[str, Any]) -> RetryBudget:
        return cls(
            attempts=int(extras.get("retry_attempts", cls.attempts)),
            initial_seconds=float(extras.get("retry_initial_seconds", cls.initial_seconds)),
            max_seconds=float(extras.get("retry_max_seconds", cls.max_seconds)),
            budget_seconds=float(extras.get("retry_budget_seconds", cls.budget_seconds)),
            record_rounds=int(extras.get("record_retry_rounds", cls.record_rounds)),
        )


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


def is_transient(exc: BaseException) -> bool:
    """Whether a failed call is worth repeating as it was."""
    if isinstance(exc, requests.ConnectionError | requests.Timeout | SalesforceExpiredSession):
        return True
    if isinstance(exc, SalesforceRefusedRequest):  # 403: REQUEST_LIMIT_EXCEEDED comes this way
        return "REQUEST_LIMIT_EXCEEDED" in str(exc.content)
    if isinstance(exc, SalesforceGeneralError):
        return exc.status >= 500
    if isinstance(exc, SalesforceOperationError):  # a Bulk job that ended Failed or Aborted
        return True
    if isinstance(exc, SalesforceError):
        return "Error Code 5" in str(exc)  # simple_salesforce's Bulk 2.0 upload errors carry the status
    return False


def http_session(extras: dict[str, Any]) -> requests.Session:
    """A requests session with the connection's timeout, transport retries and CA bundle."""
    session = requests.Session()
    retries = Retry(
        total=int(extras.get("http_retries", 5)),
        backoff_factor=float(extras.get("http_backoff", 0.5)),
        status_forcelist=(403, 500, 502, 503, 504),  # 403: REQUEST_LIMIT_EXCEEDED
        allowed_methods=None,  # every method: one link of a Bulk upsert's chain, not the whole chain
        raise_on_status=False,  # the last answer goes to simple_salesforce, which raises its own error
        respect_retry_after_header=True,
    )
    timeout = float(extras.get("timeout") or DEFAULT_TIMEOUT_SECONDS)
    session.mount("https://", TimeoutHTTPAdapter(timeout, max_retries=retries))
    if extras.get("ca_bundle"):
        session.verify = extras["ca_bundle"]
        session.trust_env = False  # or REQUESTS_CA_BUNDLE would override the connection's bundle
    return session


class SalesforceApiHook(SalesforceHook):
    """One org: its client (logged in once, again after an expired session), retried calls, SOQL, describe."""

    hook_name = "Salesforce (Thrive sync)"

    def __init__(
        self, salesforce_conn_id: str = SalesforceHook.default_conn_name, retry: RetryBudget | None = None
    ) -> None:
        super().__init__(salesforce_conn_id=salesforce_conn_id)
        if retry is not None:  # else from the connection's extras, when first needed
            self.retry = retry

    @cached_property
    def extras(self) -> dict[str, Any]:
        return self.get_connection(self.conn_id).extra_dejson

    @cached_property
    def retry(self) -> RetryBudget:
        return RetryBudget.from_extras(self.extras)

    @cached_property
    def conn(self) -> Salesforce:
        """A logged-in client on a fresh HTTP session (the provider's client, our session settings)."""
        self.configure()
        return SalesforceHook.conn.func(self)  # type: ignore[attr-defined]

    def configure(self) -> None:
        """Give the provider's hook a fresh HTTP session, and the session id of a direct connection."""
        connection = self.get_connection(self.conn_id)
        direct = bool(self.extras.get("instance_url")) and not connection.login and bool(connection.password)
        self.session_id = connection.password if direct else None
        self.session = http_session(self.extras)

    def reconnect(self) -> None:
        """Forget the client: the next call logs in again (after a 401, or to test the credentials)."""
        self.__dict__.pop("conn", None)

    def check_defined(self) -> None:
        """The connection exists in Airflow (``ConfigurationError`` naming where to add it)."""
        connection_must_exist(self.conn_id, "Salesforce")

    def call(self, fn: Callable[[Salesforce], T]) -> T:
        """``fn(client)`` with transient failures retried; :class:`SalesforceUnavailable` when they outlast it."""
        retrying = Retrying(
            stop=stop_after_attempt(self.retry.attempts) | stop_after_delay(self.retry.budget_seconds),
            wait=wait_exponential(multiplier=self.retry.initial_seconds, max=self.retry.max_seconds),
            retry=retry_if_exception(is_transient),
            before_sleep=self._before_retry,
            reraise=True,
        )
        try:
            return retrying(lambda: fn(self.get_conn()))
        except Exception as exc:
            if is_transient(exc):
                raise SalesforceUnavailable(
                    f"Salesforce kept failing after {self.retry.attempts} attempts: {type(exc).__name__}: "
                    f"{str(exc)[:300]}"  # URLs and error codes; the session id travels in headers only
                ) from exc
            raise

    def _before_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, SalesforceExpiredSession):
            self.reconnect()
        log.warning("Salesforce call failed (%s), attempt %d; retrying", type(exc).__name__, state.attempt_number)

    def query_all(self, soql: str) -> dict:
        return self.call(lambda sf: sf.query_all(soql))

    def describe_fields(self, sobject: str) -> dict[str, dict] | None:
        """``{field name: describe entry}`` of ``sobject`` (``None``: no such object); asked once, not retried.

        A refused login or session raises :class:`CredentialsRefused`, naming the connection.
        """
        try:
            described = getattr(self.get_conn(), sobject).describe()
        except (SalesforceExpiredSession, SalesforceAuthenticationFailed) as err:
            content = getattr(err, "content", None)
            code = content[0].get("errorCode") if isinstance(content, list) and content else None
            code = code or type(err).__name__.removeprefix("Salesforce")
            raise CredentialsRefused(
                f"Salesforce refused the credentials of connection {self.conn_id!r} ({code}): check its password, "
                "security token or session, and that the user may log in"
            ) from None
        except SalesforceResourceNotFound:
            return None
        return {f["name"]: f for f in described.get("fields", [])}
