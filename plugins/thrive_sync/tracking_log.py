"""Failed rows -> ``thrive_sync.tracking_log``, in batches, plus the bounded sample that goes to XCom.

Two kinds of failure reach the log. Rows that fail the rules or the member match carry their source
values (the task holds the staged row), so they are COPY'd in as they are. Rows the org rejects
come back from the writer as keys only; their source values are joined in from the staging table.
A (re)started task first clears its category's rows for the run, so a retry logs each failure once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from thrive_sync.core.pipeline import Failure
from thrive_sync.hooks.thrive_store import CategoryStore

FLUSH_ROWS = 2_000


class TrackingLog:
    """Buffers one task's failures and writes them every ``FLUSH_ROWS``; keeps the first ``sample_cap``."""

    def __init__(self, store: CategoryStore, sample_cap: int = 100) -> None:
        self.store = store
        self.sample_cap = sample_cap
        self.sample: list[dict[str, Any]] = []
        self._failed: list[Failure] = []
        self._rejected: list[tuple[str, int, str, str]] = []

    def clear(self) -> None:
        self.store.clear_failures()

    def failed(self, failures: Iterable[Failure]) -> None:
        """Staged rows that did not pass the rules or the member match."""
        for failure in failures:
            self._keep_sample(failure.event.account_id, failure.event.event_id, failure.reason_code, failure.detail)
            self._failed.append(failure)
        if len(self._failed) >= FLUSH_ROWS:
            self.flush()

    def rejected(self, account_id: str, event_id: int, reason: str, detail: str) -> None:
        """A record the writer could not write (the org said no, or retries ran out)."""
        self._keep_sample(account_id, event_id, reason, detail)
        self._rejected.append((account_id, event_id, reason, detail))
        if len(self._rejected) >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self._failed:
            self.store.copy_failures(self._failed)
            self._failed.clear()
        if self._rejected:
            self.store.log_rejections(self._rejected)
            self._rejected.clear()

    def _keep_sample(self, account_id: str, event_id: int, reason: str, detail: str) -> None:
        if len(self.sample) < self.sample_cap:
            self.sample.append(
                {"account_id": account_id, "event_id": event_id, "reason_code": reason, "reason_detail": detail}
            )
