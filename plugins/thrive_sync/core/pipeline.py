"""The per-event pipeline: staged rows in, Salesforce records, failures and skips out.

For one category and the accounts that share one org, a batch of staged rows goes through the
vendor document's rules in a fixed order, and each row ends in exactly one place:

1. the account's gate (tracking, Marketing Automation, Social CRM switched off), or a pair the
   mapping file leaves out (``leave_out``): **skipped**;
2. the row's own values (:func:`~thrive_sync.core.validation.row_problem`): **failed**;
3. the Custom Member ID, checked locally and in the org (the ``resolve`` callable): **failed**;
4. for social activity, the network handle: **failed**;
5. otherwise mapped through the mapping file: a **record** to write.

The org is reached only through ``resolve``, so the whole order can be tested without one.
Every outcome is counted in the :class:`~thrive_sync.core.tally.RunTally` given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from thrive_sync.core.catalog import Category
from thrive_sync.core.gates import LEFT_OUT_BY_MAPPING, TRACKING_DISABLED
from thrive_sync.core.mapping import Mapping as RecordMapping
from thrive_sync.core.mapping import SourceValues
from thrive_sync.core.members import MemberMatch
from thrive_sync.core.reasons import DEFERRED_QUOTA
from thrive_sync.core.sfid import MemberObject
from thrive_sync.core.tally import RunTally
from thrive_sync.core.validation import StagedEvent, external_id, row_problem, social_problem

Resolve = Callable[[Iterable[str | None]], Mapping[str | None, MemberMatch]]


@dataclass(frozen=True, slots=True)
class Failure:
    """A staged row that will not be written, and why (a tracking-log row)."""

    event: StagedEvent
    reason_code: str
    detail: str


@dataclass(slots=True)
class BatchResult:
    records: list[Sequence[Any]]  # values in the mapping's field order
    failures: list[Failure]


class EventPipeline:
    """The rules for one category's rows of the accounts sharing one org.

    ``gates``: each account's closed gate for this category (``None``: open); a row of an account
    not listed there is skipped as tracking disabled (it is missing from ``thrive.accounts``).
    """

    def __init__(
        self, category: Category, mapping: RecordMapping, gates: Mapping[str, str | None], tally: RunTally
    ) -> None:
        self.category = category
        self.gates = gates
        self.tally = tally
        self.leave_out = mapping.leave_out
        self._to_row = mapping.row_maker()

    def skip_reason(self, event: StagedEvent) -> str | None:
        """Why the row is skipped: its account's closed gate, or the mapping leaving its pair out."""
        gate = self.gates.get(event.account_id, TRACKING_DISABLED)
        if gate:
            return gate
        if self.leave_out and (event.activity_code, event.activity_subcode) in self.leave_out:
            return LEFT_OUT_BY_MAPPING
        return None

    def _skip(self, event: StagedEvent) -> bool:
        """Count the row skipped when it is; whether it was."""
        reason = self.skip_reason(event)
        if reason == LEFT_OUT_BY_MAPPING:
            self.tally.left_out(event.account_id)
        elif reason:
            self.tally.skipped(event.account_id, reason)
        return reason is not None

    def process(self, batch: Iterable[StagedEvent], resolve: Resolve) -> BatchResult:
        """Records and failures of ``batch``; skipped rows are only counted."""
        checked, failures = self.screen(batch)
        matches = resolve(event.custom_member_id for event in checked) if checked else {}
        records = []
        for event in checked:
            outcome = self.finish(event, matches[event.custom_member_id])
            if isinstance(outcome, Failure):
                failures.append(outcome)
            else:
                records.append(outcome)
        return BatchResult(records, failures)

    def screen(self, batch: Iterable[StagedEvent]) -> tuple[list[StagedEvent], list[Failure]]:
        """Steps 1 and 2: ``(rows that go on to the member check, rows that failed)``."""
        checked, failures = [], []
        for event in batch:
            self.tally.extracted(event.account_id)
            if self._skip(event):
                continue
            problem = row_problem(self.category, event)
            if problem:
                failures.append(self._failed(event, *problem))
            else:
                checked.append(event)
        return checked, failures

    def defer(self, batch: Iterable[StagedEvent], detail: str) -> list[Failure]:
        """Rows the org's allowance leaves no room for: skipped as ever (a closed gate, a pair left out),
        else failed ``DEFERRED_QUOTA`` without a look at their values or member Id (the next run checks them)."""
        deferred = []
        for event in batch:
            self.tally.extracted(event.account_id)
            if not self._skip(event):
                deferred.append(self._failed(event, DEFERRED_QUOTA, detail))
        return deferred

    def finish(self, event: StagedEvent, match: MemberMatch) -> Sequence[Any] | Failure:
        """Steps 3 to 5 for a row that passed :meth:`screen`: its record, or why it has none."""
        if match.reason_code:
            return self._failed(event, match.reason_code, match.detail or "")
        if self.category == Category.SOCIAL_CRM:
            problem = social_problem(event)
            if problem:
                return self._failed(event, *problem)
        record, cut = self._to_row(self.source_values(event, match))
        self.tally.written(event.account_id, len(cut), match.redirect)
        return record

    def source_values(self, event: StagedEvent, match: MemberMatch) -> SourceValues:
        """What the mapping can draw on for a row whose member Id matched."""
        return SourceValues(
            external_id=external_id(event.account_id, self.category.value, event.event_id),
            activity_code=event.activity_code,
            activity_subcode=event.activity_subcode,
            occurred_at=event.occurred_at,
            contact_id=match.sf_id if match.sobject == MemberObject.CONTACT else None,
            lead_id=match.sf_id if match.sobject == MemberObject.LEAD else None,
            category=self.category.value,
            account_id=event.account_id,
            message_id=event.message_id,
            message_name=event.message_name,
            detail=event.detail,
        )

    def _failed(self, event: StagedEvent, reason_code: str, detail: str) -> Failure:
        self.tally.failed(event.account_id, reason_code)
        return Failure(event, reason_code, detail)
