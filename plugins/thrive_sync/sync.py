"""The write path of one org inside one validate-and-map task.

Staged rows stream in a batch at a time; the core's :class:`~thrive_sync.core.pipeline.EventPipeline`
sorts each row into a record, a failure or a skip, asking the org about member Ids through the
:class:`~thrive_sync.core.members.MemberIdMatcher`; failures go to the tracking log, records to the
:class:`~thrive_sync.sf_writer.SalesforceWriter`, and what the org refuses comes back as log rows.
Nothing holds more than a batch of rows, a few Bulk jobs' CSV and the member answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from thrive_sync.core.members import MemberIdMatcher, MemberMatch
from thrive_sync.core.pipeline import EventPipeline
from thrive_sync.core.reasons import REJECTED
from thrive_sync.core.tally import RunTally
from thrive_sync.core.validation import StagedEvent, parse_external_id
from thrive_sync.hooks.salesforce import SalesforceApiHook
from thrive_sync.hooks.thrive_store import FETCH_ROWS, CategoryStore
from thrive_sync.sf_writer import SalesforceWriter
from thrive_sync.tracking_log import TrackingLog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriterOptions:
    """How the writer sends records (see :class:`~thrive_sync.sf_writer.SalesforceWriter`)."""

    bulk_threshold: int = 2_000
    bulk_job_rows: int = 25_000
    poll_seconds: float = 2.0


class OrgSync:
    """Rows of the accounts that share one Salesforce connection -> records, log rows and counts."""

    def __init__(
        self,
        hook: SalesforceApiHook,
        pipeline: EventPipeline,
        log_rows: TrackingLog,
        fields: Sequence[str],
        writer: SalesforceWriter | None,
    ) -> None:
        self.hook = hook
        self.pipeline = pipeline
        self.log_rows = log_rows
        self.fields = list(fields)
        self.writer = writer  # None: a dry run, nothing is sent
        self.matcher = MemberIdMatcher(hook.query_all, log_rows.store.member_store(hook.conn_id))
        self.lookup_seconds = 0.0

    @property
    def tally(self) -> RunTally:
        return self.pipeline.tally

    def prefetch(self, store: CategoryStore, account_ids: Sequence[str]) -> None:
        """Resolve the member Ids of the open accounts' rows before they stream (a few big SOQL bursts)."""
        started = time.perf_counter()
        self.matcher.prefetch(store.distinct_member_ids(account_ids))
        self.lookup_seconds += time.perf_counter() - started

    def sync(self, events: Iterable[StagedEvent]) -> None:
        """Validate, map and write ``events``; refused records become log rows."""
        started = time.perf_counter()
        records = self._records(events)
        if self.writer is None:
            for _ in records:
                pass
        else:
            for outcome in self.writer.write_rows(self.fields, records, only_failures=True):
                account_id, event_id = parse_external_id(outcome.key)
                reason = outcome.reason_code or REJECTED
                self.tally.rejected(account_id, reason)
                self.log_rows.rejected(account_id, event_id, reason, f"{outcome.error_code}: {outcome.message}")
        log.info(
            "%s: %.2f s in all; member lookups %.2f s (%d distinct Ids up front, %d from this run's cache, "
            "%d SOQL queries)",
            self.hook.conn_id,
            time.perf_counter() - started,
            self.lookup_seconds,
            self.matcher.prefetched,
            self.matcher.from_store,
            self.matcher.queries,
        )

    def _records(self, events: Iterable[StagedEvent]) -> Iterator[Sequence[Any]]:
        stream = iter(events)
        while batch := list(islice(stream, FETCH_ROWS)):
            result = self.pipeline.process(batch, self._resolve)
            self.log_rows.failed(result.failures)
            yield from result.records

    def _resolve(self, raw_ids: Iterable[str | None]) -> Mapping[str | None, MemberMatch]:
        started = time.perf_counter()
        try:
            return self.matcher.resolve(raw_ids)
        finally:
            self.lookup_seconds += time.perf_counter() - started
