"""Failed rows -> ``thrive_sync.tracking_log``, in batches, plus the bounded sample that goes to XCom.

Two kinds of failure reach the log. Rows that fail validation or member matching carry their
source values (the task holds the staged row), so they are COPY'd in as they are. Rows the org
rejects come back from the writer as keys only; their source values are joined in from the staging
table by primary key. A (re)started task first clears its category's rows for the run, so a retry
logs each failure exactly once.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from thrive_sync.sql import read_sql

if TYPE_CHECKING:
    from thrive_sync.core.validation import StagedEvent

FLUSH_ROWS = 2_000


class TrackingLog:
    """Buffers one run's failures of one category and writes them every ``FLUSH_ROWS``.

    ``conn``: an autocommit psycopg connection; ``failed_by``: per account, a Counter of reason
    codes that every failure is added to; ``sample_cap``: how many rows :attr:`sample` keeps.
    """

    def __init__(self, conn: Any, run_id: str, category: str, failed_by: Any, sample_cap: int = 100) -> None:
        self.conn = conn
        self.run_id = run_id
        self.category = category
        self.failed_by = failed_by  # account_id -> Counter of reason codes
        self.sample_cap = sample_cap
        self.sample: list[dict[str, Any]] = []
        self.total = 0
        self._failed: list[tuple] = []
        self._rejected: list[tuple[str, int, str, str]] = []

    def clear(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute(read_sql("sync/clear_failures.sql"), {"run_id": self.run_id, "category": self.category})

    def failed(self, event: StagedEvent, reason: str, detail: str) -> None:
        """A staged row that did not pass the rules or the member match."""
        self._count(event.account_id, event.event_id, reason, detail)
        self._failed.append(
            (
                self.run_id,
                event.account_id,
                self.category,
                event.event_id,
                event.recipient_id,
                event.custom_member_id,
                event.activity_code,
                event.activity_subcode,
                event.occurred_at,
                reason,
                detail,
            )
        )
        if len(self._failed) >= FLUSH_ROWS:
            self.flush()

    def rejected(self, account_id: str, event_id: int, reason: str, detail: str) -> None:
        """A record the writer could not write (the org said no, or retries ran out)."""
        self._count(account_id, event_id, reason, detail)
        self._rejected.append((account_id, event_id, reason, detail))
        if len(self._rejected) >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        with self.conn.cursor() as cur:
            if self._failed:
                with cur.copy(read_sql("sync/copy_failures.sql")) as copy:
                    for row in self._failed:
                        copy.write_row(row)
                self._failed.clear()
            if self._rejected:
                a, e, r, d = (list(column) for column in zip(*self._rejected, strict=True))
                cur.execute(
                    read_sql("sync/log_rejections.sql"),
                    {
                        "run_id": self.run_id,
                        "category": self.category,
                        "account_ids": a,
                        "event_ids": e,
                        "reason_codes": r,
                        "details": d,
                    },
                )
                self._rejected.clear()

    def _count(self, account_id: str, event_id: int, reason: str, detail: str) -> None:
        counter: Counter = self.failed_by(account_id)
        counter[reason] += 1
        self.total += 1
        if len(self.sample) < self.sample_cap:
            self.sample.append(
                {"account_id": account_id, "event_id": event_id, "reason_code": reason, "reason_detail": detail}
            )
