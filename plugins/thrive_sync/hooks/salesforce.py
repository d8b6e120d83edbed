"""``SalesforceApiHook``: the provider's ``SalesforceHook`` with a session fit for a day of writes.

It adds a timeout and transport retries to every HTTP request, a retried :meth:`~SalesforceApiHook.call`
that logs in again after an expired session, SOQL and describe. Refusals no retry can change end the
task at once: a refused login (:class:`LoginRefused`), a spent daily limit (:class:`DailyLimitReached`).
The connection shapes, extras and retry layers are in ``docs/salesforce-setup.md`` and ``docs/design.md``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
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
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_exponential
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util import Retry

from thrive_sync.core.budget import DEFAULT_RESERVE_SHARE
from thrive_sync.errors import (
    ConfigurationError,
    CredentialsRefused,
    DailyLimitReached,
    LoginRefused,
    SalesforceUnavailable,
)
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


def limit_refusal(content: object) -> tuple[str, str] | None:
    """``(kind, the org's message)`` when an error body is ``REQUEST_LIMIT_EXCEEDED``, else ``None``.

    Salesforce answers both with 403 ``REQUEST_LIMIT_EXCEEDED``; only the message tells them apart.
    ``concurrent``: too many long requests at once (``ConcurrentPerOrgLongTxn Limit exceeded.``),
    which clears in seconds. ``daily``: everything else, such as ``TotalRequests Limit exceeded.`` or
    ``Max Bulk API batches exceeded``, an allowance that frees up over a rolling 24 hours.
    """
    for error in content if isinstance(content, list) else []:
        if isinstance(error, dict) and error.get("errorCode") == "REQUEST_LIMIT_EXCEEDED":
            message = str(error.get("message") or "")
            return ("concurrent" if "Concurrent" in message else "daily"), message
    return None


class TimeoutHTTPAdapter(HTTPAdapter):
    """An adapter that gives every request a timeout unless the caller set one, and sends again a
    request refused for too many concurrent requests.

    Written by hand because requests has no session-wide timeout setting, and because urllib3's
    status retries cannot read the body that tells a concurrency refusal (worth a resend) from a
    spent daily limit (never resent: each try is refused too, and the task must say so at once).
    """

    def __init__(self, timeout: float, refusal_retries: int = 0, refusal_backoff: float = 0.5, **kwargs: Any) -> None:
        self.timeout = timeout
        self.refusal_retries = refusal_retries
        self.refusal_backoff = refusal_backoff
        super().__init__(**kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        response = super().send(request, **kwargs)
        for attempt in range(self.refusal_retries):
            if response.status_code != 403 or _refusal_kind(response) != "concurrent":
                break
            response.close()
            time.sleep(self.refusal_backoff * 2**attempt)
            response = super().send(request, **kwargs)
        return response


def _refusal_kind(response: requests.Response) -> str | None:
    try:
        refusal = limit_refusal(response.json())
    except ValueError:  # not JSON
        return None
    return refusal[0] if refusal else None


LOGIN_PATH = re.compile(r"/services/(Soap/u/[\d.]+|oauth2/token)/?$")


class LoginSafeRetry(Retry):
    """urllib3's retries, except of a login's answer: Salesforce answers a refused SOAP login with
    500, and every resend would be one more refused login towards locking the user out."""

    def increment(self, method: Any = None, url: Any = None, response: Any = None, *args: Any, **kw: Any) -> Retry:
        if response is not None and url and LOGIN_PATH.search(str(url).split("?")[0]):
            raise MaxRetryError(kw.get("_pool"), url, ResponseError(f"a login answered {response.status}"))
        return super().increment(method, url, response, *args, **kw)


def is_transient(exc: BaseException) -> bool:
    """Whether a failed call is worth repeating as it was."""
    if isinstance(exc, requests.ConnectionError | requests.Timeout | SalesforceExpiredSession):
        return True
    if isinstance(exc, SalesforceAuthenticationFailed):  # an int code: the login answered neither SOAP nor OAuth
        return isinstance(exc.code, int) and exc.code >= 500
    if isinstance(exc, SalesforceRefusedRequest):  # 403: a concurrency refusal clears, a spent daily limit does not
        refusal = limit_refusal(exc.content)
        return refusal is not None and refusal[0] == "concurrent"
    if isinstance(exc, SalesforceGeneralError):
        return exc.status >= 500
    if isinstance(exc, SalesforceError):
        return "Error Code 5" in str(exc)  # simple_salesforce's Bulk 2.0 upload errors carry the status
    return False


LOGIN_CHECKS = {  # what to check when the org refuses a connection's credentials, per connection shape
    "password": "its login (the username), its password and security_token extra (a password reset sends a "
    "new token), its domain extra (login, test or your My Domain), and that the user is not locked out",
    "oauth-password": "its login (the username), its password with the security token appended, its "
    "consumer_key and consumer_secret (the connected app's), and its domain extra",
    "jwt": "its login (the username), its consumer_key (the connected app's), that its private key matches the "
    "certificate uploaded to the connected app, that the app pre-authorizes the user, and its domain extra",
    "session": "its session id (the password) and instance_url: a session id expires, so prefer a password "
    "or JWT connection, which log in again by themselves",
}


def http_session(extras: dict[str, Any]) -> requests.Session:
    """A requests session with the connection's timeout, transport retries and CA bundle."""
    session = requests.Session()
    attempts, backoff = int(extras.get("http_retries", 5)), float(extras.get("http_backoff", 0.5))
    retries = LoginSafeRetry(
        total=attempts,
        backoff_factor=backoff,
        status_forcelist=(500, 502, 503, 504),  # 403 concurrency refusals: TimeoutHTTPAdapter
        allowed_methods=None,  # every method: one link of a Bulk upsert's chain, not the whole chain
        raise_on_status=False,  # the last answer goes to simple_salesforce, which raises its own error
        respect_retry_after_header=True,
    )
    timeout = float(extras.get("timeout") or DEFAULT_TIMEOUT_SECONDS)
    adapter = TimeoutHTTPAdapter(timeout, refusal_retries=attempts, refusal_backoff=backoff, max_retries=retries)
    session.mount("https://", adapter)
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
    def reserve_share(self) -> float:
        """The share of each daily allowance left to the org's other integrations (extra ``api_reserve_share``)."""
        purpose = "such as 0.2 to leave a fifth of the org's daily allowance to its other integrations"
        return self.number_extra("api_reserve_share", DEFAULT_RESERVE_SHARE, purpose)

    def number_extra(self, name: str, default: float, purpose: str, upper: float = 1.0) -> float:
        """A number extra from 0 up to (not including) ``upper``; what it is for goes in the error."""
        given = self.extras.get(name, default)
        try:
            value = float(given)
        except (TypeError, ValueError):
            value = -1.0
        if not 0 <= value < upper:
            raise ConfigurationError(
                f"the Salesforce connection {self.conn_id!r} has {name} {given!r}: give a number from 0 up to "
                f"(not including) {upper:g}, {purpose}"
            )
        return value

    def limits(self) -> dict[str, Any]:
        """The org's daily allowances and what is left of them (``GET /limits``, one API call)."""
        return self.call(lambda sf: sf.limits())

    @cached_property
    def conn(self) -> Salesforce:
        """A logged-in client on a fresh HTTP session (the provider's client, our session settings).

        A connection that fits none of the shapes (a password without its security token, say) is a
        :class:`ConfigurationError` naming it: simple_salesforce says only ``TypeError``, which Airflow
        would retry.
        """
        self.configure()
        try:
            return SalesforceHook.conn.func(self)  # type: ignore[attr-defined]
        except TypeError as err:
            if "must provide login information" not in str(err):
                raise
            raise ConfigurationError(
                f"the Salesforce connection {self.conn_id!r} holds no complete set of credentials: give it a "
                "login, password and security_token extra; or a login, consumer_key and private_key (JWT); or a "
                "login, password (with the token appended), consumer_key and consumer_secret; or a session id as "
                "password with the instance_url extra (docs/salesforce-setup.md)"
            ) from None

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
            final = self.final_refusal(exc)
            if final is not None:
                raise final from None  # the org's own words are in the message; its answer adds nothing
            raise

    def final_refusal(self, exc: BaseException) -> Exception | None:
        """The error that ends the task for a refusal no retry can change, naming the connection.

        A refused login (:class:`LoginRefused`) or a spent daily limit (:class:`DailyLimitReached`);
        ``None`` for anything else.
        """
        if isinstance(exc, SalesforceAuthenticationFailed) and not is_transient(exc):
            said = f"{exc.code}: {exc.auth_message}" if exc.code is not None else exc.auth_message
            return LoginRefused(
                f"Salesforce refused the credentials of connection {self.conn_id!r} ({said[:200]}): "
                f"check {LOGIN_CHECKS[self.shape()]}. Not retried: every refused login brings the user "
                "nearer to being locked out"
            )
        refusal = limit_refusal(exc.content) if isinstance(exc, SalesforceRefusedRequest) else None
        if refusal is None or refusal[0] != "daily":
            return None
        allowance = "DailyBulkApiBatches" if "Bulk" in refusal[1] else "DailyApiRequests"
        return DailyLimitReached(
            f"Salesforce refused a call of connection {self.conn_id!r}: REQUEST_LIMIT_EXCEEDED: {refusal[1]} "
            f"The org's daily allowance ({allowance}, shared by every integration of the org) is spent; it "
            "frees up over a rolling 24 hours. Run the day again later, or ask Salesforce to raise the "
            "limit; the org's /limits resource shows what is left"
        )

    def credentials_digest(self) -> str:
        """A short digest of what the connection logs in with: tells a corrected connection from the one
        an org refused (``thrive_sync.refused_logins``) without keeping any secret."""
        connection = self.get_connection(self.conn_id)
        material = json.dumps([connection.login, connection.password, connection.host, self.extras], sort_keys=True,
                              default=str)  # fmt: skip
        return hashlib.sha256(f"{self.conn_id}\n{material}".encode()).hexdigest()[:16]

    def shape(self) -> str:
        """Which connection shape (``docs/salesforce-setup.md``), in simple_salesforce's order of choice."""
        connection = self.get_connection(self.conn_id)
        login, password, extras = connection.login, connection.password, self.extras
        if login and password and extras.get("security_token"):
            return "password"
        if not login:
            return "session"
        if password and extras.get("consumer_key") and extras.get("consumer_secret"):
            return "oauth-password"
        return "jwt" if extras.get("consumer_key") else "password"

    def _before_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, SalesforceExpiredSession):
            self.reconnect()
        log.warning("Salesforce call failed (%s), attempt %d; retrying", type(exc).__name__, state.attempt_number)

    def query_all(self, soql: str, include_deleted: bool = False) -> dict:
        """Every record of ``soql``, pages followed; ``include_deleted``: ``queryAll`` (merged-away ones too)."""
        return self.call(lambda sf: sf.query_all(soql, include_deleted=include_deleted))

    def describe_fields(self, sobject: str) -> dict[str, dict] | None:
        """``{field name: describe entry}`` of ``sobject`` (``None``: no such object); asked once, not retried.

        Logging in happens here for a password or JWT connection. A refused login raises
        :class:`LoginRefused`, a refused session :class:`CredentialsRefused`, a spent daily limit
        :class:`DailyLimitReached`, each naming the connection.
        """
        try:
            described = getattr(self.get_conn(), sobject).describe()
        except SalesforceResourceNotFound:
            return None
        except SalesforceExpiredSession as err:
            content = err.content
            code = content[0].get("errorCode") if isinstance(content, list) and content else None
            raise CredentialsRefused(
                f"Salesforce refused the credentials of connection {self.conn_id!r} ({code or 'ExpiredSession'}): "
                f"check {LOGIN_CHECKS[self.shape()]}"
            ) from None
        except SalesforceError as err:
            final = self.final_refusal(err)
            if final is not None:
                raise final from None
            raise
        return {f["name"]: f for f in described.get("fields", [])}
