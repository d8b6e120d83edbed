"""How much of an org's daily allowance one task may spend, and how many rows that lets it send.

An org's API requests and Bulk batches are shared by every integration of the org and refill over a
rolling 24 hours. A task reads ``/limits`` before it writes, keeps ``reserve_share`` of each daily
maximum for the others, and sends only the rows whose estimated cost fits in what is left; the rest
are deferred (``DEFERRED_QUOTA``) and carried to the next runs by the ledger.

The estimate errs high, as the stricter reading of a shared quota should: a Bulk job is counted at
:data:`CALLS_PER_BULK_JOB` calls (create, upload, close, polls, failed results) and at one batch per
:data:`BULK_BATCH_RECORDS` records, each row as if it became a record.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

API_REQUESTS = "DailyApiRequests"
BULK_BATCHES = "DailyBulkApiBatches"
DATA_STORAGE = "DataStorageMB"  # not an allowance: what the org's records take of its storage
DEFAULT_RESERVE_SHARE = 0.2
DEFAULT_RECORD_KB = 2.0  # what an org counts most records at
DEFAULT_STORAGE_WARN_SHARE = 0.8  # the report warns once the org's data storage is this full
COLLECTION_SIZE = 200  # records per sObject Collections call
BULK_BATCH_RECORDS = 10_000  # an org counts a Bulk 2.0 job's records in batches of this size
CALLS_PER_BULK_JOB = 12  # measured: 10.6 a job of 25,000 records at 1,000,000 rows, member lookups included
CALLS_SET_ASIDE = 2  # the task's own /limits reads


@dataclass(frozen=True)
class Allowance:
    """One daily counter of ``/limits``: its maximum and what is left of it."""

    name: str
    maximum: int
    remaining: int

    def spendable(self, reserve_share: float) -> int:
        """What is left above the reserve kept for the org's other integrations (0 when below it)."""
        return max(0, self.remaining - math.ceil(self.maximum * reserve_share))


@dataclass(frozen=True)
class Budget:
    """What a task may spend: API calls and Bulk batches (``None``: ``/limits`` lacks the counter,
    which is then not budgeted), and what the report says about it."""

    calls: int | None
    batches: int | None
    notes: tuple[str, ...] = ()

    def shared(self, shards: int) -> Budget:
        """This budget for one of ``shards`` instances that write to the org side by side: each reads
        ``/limits`` at about the same time, and each may spend only its share of what is left."""
        if shards <= 1:
            return self
        return Budget(
            None if self.calls is None else self.calls // shards,
            None if self.batches is None else self.batches // shards,
            (*self.notes, f"shared by the org's {shards} shards"),
        )

    def rows_that_fit(self, rows: int, bulk_threshold: int, bulk_job_rows: int) -> int:
        """The most of ``rows`` whose writing fits the budget. The cost rises with the rows within each
        of the writer's two ways (Collections below ``bulk_threshold``, Bulk from it), not across them
        (a high threshold makes Collections dearer than Bulk): each way is searched on its own."""

        def fits(n: int) -> bool:
            calls, batches = cost(n, bulk_threshold, bulk_job_rows)
            return (self.calls is None or calls <= self.calls) and (self.batches is None or batches <= self.batches)

        below = _largest(0, min(rows, bulk_threshold - 1), fits)
        if rows < bulk_threshold or not fits(bulk_threshold):
            return below
        return max(below, _largest(bulk_threshold, rows, fits))


def _largest(low: int, high: int, fits: Callable[[int], bool]) -> int:
    """The largest ``n`` in ``[low, high]`` that fits, for ``fits`` true up to some ``n`` and false after;
    ``low`` when none does (``fits(0)`` always holds: no rows cost nothing)."""
    best = low
    while low <= high:
        middle = (low + high) // 2
        if fits(middle):
            best, low = middle, middle + 1
        else:
            high = middle - 1
    return best


def read_budget(limits: Mapping[str, Any], reserve_share: float) -> Budget:
    """The budget from a ``/limits`` answer; a counter missing or unreadable there is not budgeted,
    and a note says so."""
    notes: list[str] = []
    spendable: dict[str, int | None] = {}
    for name in (API_REQUESTS, BULK_BATCHES):
        allowance = allowance_of(limits, name)
        if allowance is None:
            notes.append(f"the org's /limits has no readable {name}: not budgeted")
            spendable[name] = None
            continue
        spendable[name] = allowance.spendable(reserve_share)
        if spendable[name] == 0:
            notes.append(f"{name} at or below the reserve ({reserve_share:.0%} kept for the org's other integrations)")
    calls = spendable[API_REQUESTS]
    return Budget(None if calls is None else max(0, calls - CALLS_SET_ASIDE), spendable[BULK_BATCHES], tuple(notes))


def allowance_of(limits: Mapping[str, Any], name: str) -> Allowance | None:
    """``name``'s maximum and remaining from a ``/limits`` answer; ``None`` when either is missing or
    not a whole number at least 0, or remaining exceeds the maximum."""
    entry = limits.get(name)
    if not isinstance(entry, Mapping):
        return None
    maximum, remaining = entry.get("Max"), entry.get("Remaining")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (maximum, remaining)):
        return None
    if remaining > maximum:
        return None
    return Allowance(name, maximum, remaining)


def cost(rows: int, bulk_threshold: int, bulk_job_rows: int) -> tuple[int, int]:
    """``(API calls, Bulk batches)`` that writing ``rows`` records costs at most, as the writer sends
    them: sObject Collections of 200 below ``bulk_threshold``, else Bulk jobs of ``bulk_job_rows``
    (the first a fifth of that)."""
    if rows <= 0:
        return 0, 0
    if rows < bulk_threshold:
        return math.ceil(rows / COLLECTION_SIZE), 0
    first = max(1, bulk_job_rows // 5)
    sizes = [min(rows, first)]
    rest = rows - sizes[0]
    sizes += [bulk_job_rows] * (rest // bulk_job_rows) + ([rest % bulk_job_rows] if rest % bulk_job_rows else [])
    batches = sum(math.ceil(size / BULK_BATCH_RECORDS) for size in sizes)
    return CALLS_PER_BULK_JOB * len(sizes), batches
