"""One org's daily allowance in one task: read before writing, rows past it deferred, read again after.

The rules (what is spendable, what a write costs) are in :mod:`thrive_sync.core.budget`; this module
asks the org (``GET /limits``) and turns the rows that do not fit into ``DEFERRED_QUOTA`` log rows.
An org that refuses even ``/limits`` (its allowance spent to 0) leaves no room: every row is deferred.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from thrive_sync.core.budget import (
    API_REQUESTS,
    BULK_BATCHES,
    DATA_STORAGE,
    DEFAULT_RECORD_KB,
    DEFAULT_STORAGE_WARN_SHARE,
    Budget,
    allowance_of,
    read_budget,
)
from thrive_sync.core.pipeline import EventPipeline
from thrive_sync.core.validation import StagedEvent
from thrive_sync.errors import DailyLimitReached
from thrive_sync.hooks.salesforce import SalesforceApiHook
from thrive_sync.hooks.thrive_store import FETCH_ROWS
from thrive_sync.tracking_log import TrackingLog

log = logging.getLogger(__name__)


@dataclass
class OrgAllowance:
    """What one task may send to one org: ``room`` rows of the ``rows`` it has to send."""

    conn_id: str
    rows: int
    budget: Budget
    room: int
    reserve_share: float = 0.0
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    deferred: int = 0
    written: int = 0  # records the task wrote to the org: what the storage forecast counts
    record_kb: float = DEFAULT_RECORD_KB
    storage_warn_share: float = DEFAULT_STORAGE_WARN_SHARE
    sent: int = 0  # rows let through so far (an org's accounts may come in more than one run of rows)

    @classmethod
    def read(
        cls, hook: SalesforceApiHook, rows: int, refused: DailyLimitReached | None = None, shards: int = 1
    ) -> OrgAllowance:
        """The org's limits now: what the task may spend on ``rows`` (its room is set by :meth:`fit`).
        ``refused``: the org refused an earlier call of the task for its allowance (no room, not asked).
        ``shards``: the instances writing to the org side by side, each with its share."""
        storage = {
            "record_kb": hook.number_extra("record_storage_kb", DEFAULT_RECORD_KB, "the KB the org counts a record at",
                                           upper=1_000),
            "storage_warn_share": hook.number_extra("storage_warn_share", DEFAULT_STORAGE_WARN_SHARE,
                                                    "how full the org's data storage may be before the report warns",
                                                    upper=1.0001),
        }  # fmt: skip
        try:
            if refused is not None:
                raise refused
            before = hook.limits()
        except DailyLimitReached as spent:
            budget = Budget(0, 0, (f"the org refuses calls: {str(spent).split(': ', 1)[-1].split(' The ')[0]}",))
            return cls(hook.conn_id, rows, budget, 0, hook.reserve_share, **storage)
        budget = read_budget(before, hook.reserve_share).shared(shards)
        return cls(hook.conn_id, rows, budget, rows, hook.reserve_share, before, **storage)

    def fit(self, lookups: int, bulk_threshold: int, bulk_job_rows: int) -> None:
        """The room: how many rows fit once the member lookups (``lookups`` SOQL calls, made before the
        room can be known) are paid."""
        budget = self.budget
        if budget.calls is not None:
            budget = replace(budget, calls=max(0, budget.calls - lookups))
        self.room = budget.rows_that_fit(self.rows, bulk_threshold, bulk_job_rows)
        if self.room < self.rows:
            log.warning("%s: %s", self.conn_id, self.deferral_detail())

    def deferral_detail(self) -> str:
        """The log rows' detail: why these rows were not sent."""
        why = "; ".join((self._left_text(), *self.budget.notes))
        return (
            f"not sent: the org's daily allowance had room for {self.room:,} of the task's {self.rows:,} rows "
            f"({why}); carried to the next runs"
        )

    def within_room(self, events: Iterable[StagedEvent], pipeline: EventPipeline, log_rows: TrackingLog
                    ) -> Iterator[StagedEvent]:  # fmt: skip
        """``events`` up to the room (rows of closed gates do not count), the rest deferred and logged."""
        held: list[StagedEvent] = []
        for event in events:
            gated = pipeline.skip_reason(event) is not None  # skipped rows cost nothing: never deferred
            if gated or self.sent < self.room:
                self.sent += not gated
                yield event
                continue
            held.append(event)
            if len(held) >= FETCH_ROWS:
                self._defer(held, pipeline, log_rows)
        self._defer(held, pipeline, log_rows)

    def read_after(self, hook: SalesforceApiHook) -> None:
        """What is left once the task has written (for the report); nothing when the org does not say.

        Every record is sent by now: no failure of this read may fail the task (its retry would send
        them all again), so any is logged and the report shows the figures as not known."""
        try:
            self.after = hook.limits()
        except Exception as err:  # noqa: BLE001 - see above
            log.warning("%s: the org's limits after writing are not known (%s)", self.conn_id, str(err)[:200])
            self.after = {}

    def figures(self) -> dict[str, int | None]:
        """Max, before and after of API requests and Bulk batches (``None`` where unknown)."""
        out: dict[str, int | None] = {}
        for key, name in (("api", API_REQUESTS), ("batches", BULK_BATCHES), ("storage", DATA_STORAGE)):
            first, last = allowance_of(self.before, name), allowance_of(self.after, name)
            out[f"{key}_max"] = first.maximum if first else (last.maximum if last else None)
            out[f"{key}_before"] = first.remaining if first else None
            out[f"{key}_after"] = last.remaining if last else None
        return out

    def _defer(self, held: list[StagedEvent], pipeline: EventPipeline, log_rows: TrackingLog) -> None:
        if held:
            failures = pipeline.defer(held, self.deferral_detail())
            self.deferred += len(failures)
            log_rows.failed(failures)
            held.clear()

    def _left_text(self) -> str:
        api = allowance_of(self.before, API_REQUESTS)
        if api is None:
            return "the org's /limits unread"
        return f"{API_REQUESTS} {api.remaining:,} of {api.maximum:,} left, {self.reserve_share:.0%} kept for others"
