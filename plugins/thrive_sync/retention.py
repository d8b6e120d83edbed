"""The work of one retention task in one org: its category's old records deleted, the ledger marked.

Rounds of one Bulk API 2.0 delete job each: the oldest records before the cutoff (a job's worth,
asked by SOQL), deleted, then what the org confirmed deleted (its ``successfulResults``) marked
``purged`` in the event ledger, so that no later run of the sync sends them again. Asked again, the
deleted records are gone from the answer, so no query cursor stays open across jobs. Each round
first checks the org's daily allowance and stops at the reserve kept for its other integrations
(the rules: :mod:`thrive_sync.core.budget`). Records the org would not delete are left out of the
next rounds' queries by Id; a round that deletes nothing, or more than :data:`MAX_REFUSED` such
records, ends the task's work in that org. The next run goes on.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from thrive_sync.bulk_job import BulkJob, job_result_rows
from thrive_sync.core.budget import BULK_BATCH_RECORDS, CALLS_PER_BULK_JOB, read_budget
from thrive_sync.core.catalog import Category
from thrive_sync.core.retention import RetentionQuery, cutoff
from thrive_sync.core.sfid import to_18
from thrive_sync.core.validation import parse_external_id
from thrive_sync.errors import DailyLimitReached
from thrive_sync.hooks.salesforce import SalesforceApiHook
from thrive_sync.hooks.thrive_store import ThriveStoreHook
from thrive_sync.settings import WriterOptions

log = logging.getLogger(__name__)

FAILURE_SAMPLE = 20  # failures kept per org for the table and the XCom
QUERY_PAGE = 2_000  # records per page of a SOQL answer: a round's query costs a call per page
AT_RESERVE = "stopped at the reserve of the org's daily allowance; the rest waits for the next run"
REFUSED = "the org refused a call for its daily allowance; the rest waits for the next run"
MAX_REFUSED = 500  # records the org would not delete, left out of the query by Id (the query's length)
NO_HEADWAY = "the org deleted none of a round's records; the next run tries again"
TOO_MANY_REFUSED = f"more than {MAX_REFUSED} records the org would not delete; the next run tries again"


@dataclass
class RetentionCounts:
    """What one task did in one org."""

    found: int = 0
    deleted: int = 0
    failed: int = 0
    ledger_marked: int = 0
    failures: list[str] = field(default_factory=list)  # the first FAILURE_SAMPLE: "Id: code: message"
    notes: list[str] = field(default_factory=list)

    def failed_with(self, failures: dict[str, str]) -> None:
        self.failed += len(failures)
        room = FAILURE_SAMPLE - len(self.failures)
        self.failures += [f"{record_id}: {message}" for record_id, message in list(failures.items())[:room]]


class OrgRetention:
    """Deletes one category's records older than a cutoff from one org, a Bulk delete job at a time."""

    def __init__(
        self,
        hook: SalesforceApiHook,
        store: ThriveStoreHook,
        query: RetentionQuery,
        category: Category,
        run_id: str,
        options: WriterOptions,
    ) -> None:
        self.hook = hook
        self.store = store
        self.query = query
        self.category = category
        self.run_id = run_id
        self.options = options

    def purge(self, cutoff: datetime, *, dry_run: bool) -> RetentionCounts:
        """Delete (``dry_run``: only count) the category's records from before ``cutoff``."""
        counts = RetentionCounts()
        if dry_run:
            soql = self.query.count_soql(self.category, cutoff)
            counts.found = self.hook.call(lambda sf: sf.query(soql))["totalSize"]
            return counts
        refused: set[str] = set()  # Ids the org would not delete: left out of the next rounds' queries
        try:
            while self._room_for_a_round():
                soql = self.query.soql(self.category, cutoff, self.options.bulk_job_rows, refused)
                records = self.hook.query_all(soql)["records"]
                if not records:
                    return counts
                if not self._round(records, counts, refused):
                    return counts
        except DailyLimitReached:
            counts.notes.append(REFUSED)
            return counts
        counts.notes.append(AT_RESERVE)
        return counts

    def _round(self, records: list[dict[str, Any]], counts: RetentionCounts, refused: set[str]) -> bool:
        """One delete job; whether to go on: something was deleted, and few enough were refused to
        leave them out of the query."""
        counts.found += len(records)
        deleted, failures = self._delete([to_18(r["Id"]) for r in records])
        gone = [r for r in records if to_18(r["Id"]) in deleted]
        counts.deleted += len(gone)
        counts.failed_with(failures)
        counts.ledger_marked += self._mark_purged(gone)
        refused.update(failures)
        if failures:
            log.warning("%s: %d records of %s were not deleted, e.g. %s; the next run tries again",
                        self.hook.conn_id, len(failures), self.category.value, counts.failures[0])  # fmt: skip
        if gone and len(refused) <= MAX_REFUSED:
            return True
        counts.notes.append(NO_HEADWAY if not gone else TOO_MANY_REFUSED)
        return False

    def _room_for_a_round(self) -> bool:
        """Whether the org's allowance above its reserve pays for one more round (``/limits``, one call)."""
        budget = read_budget(self.hook.limits(), self.hook.reserve_share)
        rows = self.options.bulk_job_rows
        calls = math.ceil(rows / QUERY_PAGE) + CALLS_PER_BULK_JOB
        batches = math.ceil(rows / BULK_BATCH_RECORDS)
        return (budget.calls is None or budget.calls >= calls) and (budget.batches is None or budget.batches >= batches)

    def _delete(self, ids: Sequence[str]) -> tuple[set[str], dict[str, str]]:
        """One Bulk 2.0 delete job: the Ids the org confirmed deleted, and why each other one was not."""
        job = BulkJob(
            self.hook,
            self.query.sobject,
            self.query.external_id_field,
            poll_seconds=self.options.poll_seconds,
            timeout_seconds=self.options.job_timeout_seconds,
            known=set(),
            lost=[],  # a delete job's lost create leaves an empty job the org drops in a week: not swept
            operation="delete",
        )
        info = job.run(("Id\n" + "\n".join(ids) + "\n").encode())
        results = partial(job_result_rows, self.hook, self.query.sobject, info["id"])
        deleted = {to_18(row["sf__Id"]) for row in results("successfulResults") if row["sf__Id"]}
        failed = (row for row in results("failedResults") if row.get("Id"))
        failures = {to_18(row["Id"]): row.get("sf__Error") or "UNKNOWN_ERROR" for row in failed}
        state = info.get("state")
        for record_id in ids:
            if record_id not in deleted and record_id not in failures:
                failures[record_id] = f"UNPROCESSED: the delete job ended {state} before this record"
        return deleted, failures

    def _mark_purged(self, records: list[dict[str, Any]]) -> int:
        """Mark the deleted records' ledger rows ``purged``; how many there were."""
        keys: list[tuple[str, int, datetime]] = []
        for record in records:
            try:
                account_id, event_id = parse_external_id(record[self.query.external_id_field] or "")
                at = datetime.strptime(record[self.query.date_field], "%Y-%m-%dT%H:%M:%S.%f%z")
            except (ValueError, TypeError):
                continue  # not a record of this package's (an external ID it never writes): no ledger row
            if -(2**63) <= event_id < 2**63:  # a key the ledger can hold (bigint)
                keys.append((account_id, event_id, at))
        if not keys:
            return 0
        return self.store.mark_purged(self.run_id, self.category, keys)


def purge_category(
    store: ThriveStoreHook,
    query: RetentionQuery,
    category: Category,
    days: int,
    run: dict[str, Any],
    options: WriterOptions,
) -> dict[str, Any]:
    """One retention task: every org's records of ``category`` older than ``days`` before the run's
    window ends (``run``: run_id, window_end, dry_run), each org's counts saved; the task's XCom."""
    before = cutoff(run["window_end"], days)
    summary: dict[str, Any] = {"category": category.value, "retention_days": days, "cutoff": before.isoformat(),
                               "dry_run": run["dry_run"], "orgs": {}}  # fmt: skip
    for conn_id in store.salesforce_connections():
        started = datetime.now(UTC)
        org = OrgRetention(SalesforceApiHook(conn_id), store, query, category, run["run_id"], options)
        counts = org.purge(before, dry_run=run["dry_run"])
        store.save_retention_run(
            {"dag_run_id": run["run_id"], "category": category.value, "salesforce_conn_id": conn_id,
             "retention_days": days, "cutoff": before, "dry_run": run["dry_run"], "found": counts.found,
             "deleted": counts.deleted, "failed": counts.failed, "ledger_marked": counts.ledger_marked,
             "failures": "\n".join(counts.failures + counts.notes) or None, "started_at": started}
        )  # fmt: skip
        verb = "would delete" if run["dry_run"] else f"deleted {counts.deleted:,} of"
        log.info("%s: %s %s %s records of %s from before %s; %d not deleted; %d ledger rows marked purged%s",
                 conn_id, verb, f"{counts.found:,}", query.sobject, category.value, before.isoformat(),
                 counts.failed, counts.ledger_marked, "".join(f"; {n}" for n in counts.notes))  # fmt: skip
        summary["orgs"][conn_id] = asdict(counts)
    return summary
