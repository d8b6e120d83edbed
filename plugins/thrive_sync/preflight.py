"""Checks made before a task reads a row: configuration mistakes fail the task at once, by name.

A wrong password, a missing connection or a mapping that names a field the org does not have would
otherwise surface mid-stream as thousands of identical per-record errors, after retries, or as a
half-written day. Each check raises :class:`~thrive_sync.errors.ConfigurationError`, which the
DAG's retry policy fails without retries: the message says what to change.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from thrive_sync.core.mapping import Mapping
from thrive_sync.errors import ConfigurationError, CredentialsRefused
from thrive_sync.hooks.salesforce import SalesforceApiHook

PREFLIGHT_LOGINS = 4  # fresh logins tried before a 401 counts as wrong credentials (0.5 + 1 + 2 s apart)


def check_org(hook: SalesforceApiHook, mapping: Mapping, sleep: Callable[[float], None] = time.sleep) -> None:
    """The connection exists, the org accepts its credentials, and it has the mapping's object and fields."""
    hook.check_defined()
    for attempt in range(PREFLIGHT_LOGINS):
        try:
            described = hook.describe_fields(mapping.object)
            break
        except CredentialsRefused as err:
            # A session can expire at any moment: only a refusal that outlasts fresh logins is a
            # wrong credential.
            if attempt + 1 == PREFLIGHT_LOGINS:
                raise CredentialsRefused(f"{err} ({PREFLIGHT_LOGINS} attempts)") from None
            hook.reconnect()
            sleep(0.5 * 2**attempt)
    problem = mapping.org_problem(described, hook.conn_id)
    if problem:
        raise ConfigurationError(problem)
