"""Every exception the package raises, in one place, free of imports so the core can raise them too.

Those in :data:`NOT_RETRIED` end a task without retries, because a retry cannot change the outcome:
:class:`ConfigurationError` (only a person can fix it), :class:`ThresholdBreached` and
:class:`UpstreamFailed` (the run did what it could). The DAG's retry policy (``NO_RETRY``) tells
Airflow; every other error is retried as usual.
"""

from __future__ import annotations


class ConfigurationError(ValueError):
    """Something only a person can fix: a connection, a credential, the mapping, the org's schema."""


class CredentialsRefused(ConfigurationError):
    """The org answered 401: a wrong password or token, or a session that just expired (ask again)."""


class MappingError(ConfigurationError):
    """The mapping file cannot be used; the message names what to fix."""


class ConservationError(RuntimeError):
    """extracted != written + failed + skipped for some account: a bug, never to pass silently."""


class SalesforceUnavailable(RuntimeError):
    """Transient errors outlasted the retry budget for a whole call."""


class ThresholdBreached(RuntimeError):
    """The run's failure share passed ``failure_threshold``; the report task has alerted already."""


class UpstreamFailed(RuntimeError):
    """A sync task of the run failed: the report printed what was done, and the run ends failed."""


NOT_RETRIED = (ConfigurationError, ThresholdBreached, UpstreamFailed)
