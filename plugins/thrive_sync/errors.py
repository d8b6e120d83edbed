"""Every exception the package raises, in one place, free of imports so the core can raise them too.

Those in :data:`NOT_RETRIED` end a task without retries, because a retry cannot change the outcome:
:class:`ConfigurationError` (only a person can fix it; refused credentials among them),
:class:`DailyLimitReached` (the org's allowance frees up over hours, not minutes),
:class:`ThresholdBreached` and :class:`UpstreamFailed` (the run did what it could). The DAG's retry
policy (``NO_RETRY``) tells Airflow; every other error is retried as usual.
"""

from __future__ import annotations


class ConfigurationError(ValueError):
    """Something only a person can fix: a connection, a credential, the mapping, the org's schema."""


class CredentialsRefused(ConfigurationError):
    """The org answered 401 to a session: a wrong session id, or one that just expired (ask again)."""


class LoginRefused(CredentialsRefused):
    """The org refused a login: a wrong password or token, consumer key, key pair or user.

    Never asked again: the answer cannot change, and each refused login brings the user nearer to
    being locked out (10 in a row by default), which would stop every integration using it.
    """


class MappingError(ConfigurationError):
    """The mapping file cannot be used; the message names what to fix."""


class ConservationError(RuntimeError):
    """extracted != written + failed + skipped for some account: a bug, never to pass silently."""


class DailyLimitReached(RuntimeError):
    """The org refused a call because a daily allowance (API requests, Bulk batches) is spent.

    Raised by the writer, it carries in ``unconfirmed`` the external IDs of the records it had sent or
    taken whose outcome it never learned: the task defers them (``DEFERRED_QUOTA``) with the rest.
    """

    unconfirmed: list[str] = []  # noqa: RUF012 - set on the instance by the writer


class BulkJobFailed(RuntimeError):
    """A Bulk API 2.0 job could not be brought to its end (outlasted ``job_timeout_seconds``, kept being
    aborted in the org); the message says which job and why. Airflow retries the task."""


class BulkJobRefused(BulkJobFailed, ConfigurationError):
    """The org failed a Bulk job for its data as a whole (``InvalidBatch``, ``InvalidJob``: a field it
    does not know, a CSV it cannot read); the message is the org's own. The same data would fail the
    same way, so the task is not retried."""


class SalesforceUnavailable(RuntimeError):
    """Transient errors outlasted the retry budget for a whole call."""


class ThresholdBreached(RuntimeError):
    """The run's failure share passed ``failure_threshold``; the report task has alerted already."""


class UpstreamFailed(RuntimeError):
    """A sync task of the run failed: the report printed what was done, and the run ends failed."""


NOT_RETRIED = (ConfigurationError, DailyLimitReached, ThresholdBreached, UpstreamFailed)
