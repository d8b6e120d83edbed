"""Checks made before a task reads a row: configuration mistakes fail the task at once, by name.

Each check raises :class:`~thrive_sync.errors.ConfigurationError`, which the DAG's retry policy
fails without retries: the message says what to change.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from thrive_sync.core.mapping import Mapping
from thrive_sync.errors import ConfigurationError, CredentialsRefused, LoginRefused
from thrive_sync.hooks.salesforce import SalesforceApiHook

PREFLIGHT_LOGINS = 4  # fresh clients tried before a refused session counts as wrong (0.5 + 1 + 2 s apart)


def check_org(hook: SalesforceApiHook, mapping: Mapping, sleep: Callable[[float], None] = time.sleep) -> None:
    """The connection exists, the org accepts its credentials, and it has the mapping's object and fields."""
    hook.check_defined()
    problem = mapping.org_problem(_describe(hook, mapping.object, sleep), hook.conn_id)
    if problem:
        raise ConfigurationError(problem)


def _describe(hook: SalesforceApiHook, sobject: str, sleep: Callable[[float], None]) -> dict[str, dict] | None:
    """The describe of ``sobject``; a session can expire at any moment, so only a refused session that
    outlasts fresh logins counts as wrong credentials. A refused login is final at once: asking
    again cannot change the answer, and brings the user nearer to a lockout."""
    for attempt in range(PREFLIGHT_LOGINS - 1):
        try:
            return hook.describe_fields(sobject)
        except LoginRefused:
            raise
        except CredentialsRefused:
            hook.reconnect()
            sleep(0.5 * 2**attempt)
    try:
        return hook.describe_fields(sobject)
    except CredentialsRefused as err:
        raise CredentialsRefused(f"{err} ({PREFLIGHT_LOGINS} attempts)") from None
