"""All counting of one validate-and-map task: per account, extracted / written / failed / skipped / unchanged.

Every change of a count goes through :class:`RunTally`, so the rule that has to hold —
``extracted = written + failed + skipped + unchanged`` per account, with ``extracted`` equal to
what the extract staged — is checked in one place (:meth:`RunTally.conservation_problems`).
``late`` and ``retried`` say how many of the extracted rows came from the ledger's carry-forward,
``standing`` how many of the failed ones failed before and were logged again without being sent,
``deferred`` how many were not sent for the org's daily allowance (``DEFERRED_QUOTA``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from thrive_sync.core.reasons import DEFERRED_QUOTA

COUNTS = ("extracted", "written", "failed", "skipped", "unchanged")
CARRIED = ("late", "retried", "standing")  # shares of extracted (standing: of failed), not terms of the sum


@dataclass(frozen=True)
class StagedCounts:
    """What the extract staged for one account: every row, and how many were unchanged, late, retried."""

    total: int
    unchanged: int = 0
    late: int = 0
    retried: int = 0
    standing: int = 0  # failures logged again from the ledger: part of failed, never streamed

    @property
    def streamed(self) -> int:
        """The rows the task reads from the staging table (the unchanged and standing ones are not)."""
        return self.total - self.unchanged - self.standing


@dataclass
class AccountCounts:
    """One account's counts in one category. ``written`` counts what was sent (or would be, dry)."""

    extracted: int = 0
    written: int = 0
    skipped: int = 0
    unchanged: int = 0
    late: int = 0
    retried: int = 0
    standing: int = 0
    healed: int = 0
    left_out: int = 0  # of the skipped, rows of pairs the mapping leaves out (the rest: the account's gate)
    converted: int = 0  # of the written, records of a converted Lead's member Id, sent to its Contact
    merged: int = 0  # of the written, records of a merged-away member Id, sent to the surviving record
    truncated: int = 0
    skip_gate: str | None = None
    failed_by: Counter = field(default_factory=Counter)

    @property
    def failed(self) -> int:
        return sum(self.failed_by.values())

    @property
    def deferred(self) -> int:
        """Of the failed rows, those not sent for the org's allowance: not failures of the integration."""
        return self.failed_by.get(DEFERRED_QUOTA, 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "extracted": self.extracted,
            "written": self.written,
            "failed": self.failed,
            "skipped": self.skipped,
            "unchanged": self.unchanged,
            "late": self.late,
            "retried": self.retried,
            "standing": self.standing,
            "healed": self.healed,
            "deferred": self.deferred,
            "left_out": self.left_out,
            "converted": self.converted,
            "merged": self.merged,
            "skip_gate": self.skip_gate,
            "truncated": self.truncated,
            "failed_by": dict(self.failed_by),
        }


class RunTally:
    """The counts of one task, per account."""

    def __init__(self) -> None:
        self.accounts: defaultdict[str, AccountCounts] = defaultdict(AccountCounts)

    def extracted(self, account_id: str) -> None:
        self.accounts[account_id].extracted += 1

    def skipped(self, account_id: str, gate: str) -> None:
        counts = self.accounts[account_id]
        counts.skipped += 1
        counts.skip_gate = gate

    def left_out(self, account_id: str) -> None:
        """A row of a pair the mapping leaves out: skipped (not failed), counted apart from the gates."""
        counts = self.accounts[account_id]
        counts.skipped += 1
        counts.left_out += 1

    def failed(self, account_id: str, reason_code: str, count: int = 1) -> None:
        self.accounts[account_id].failed_by[reason_code] += count

    def written(self, account_id: str, truncated_fields: int = 0, redirect: str | None = None) -> None:
        """A record sent; ``redirect``: to the Contact a converted Lead became, or a merge's survivor."""
        counts = self.accounts[account_id]
        counts.written += 1
        counts.truncated += truncated_fields
        if redirect == "converted":
            counts.converted += 1
        elif redirect == "merged":
            counts.merged += 1

    def rejected(self, account_id: str, reason_code: str) -> None:
        """A record counted as written came back refused: it moves from written to failed."""
        counts = self.accounts[account_id]
        counts.written -= 1
        counts.failed_by[reason_code] += 1

    @property
    def failed_total(self) -> int:
        return sum(c.failed for c in self.accounts.values())

    def failed_by_reason(self) -> dict[str, int]:
        """The failures of every account, by reason code."""
        reasons: dict[str, int] = {}
        for counts in self.accounts.values():
            for reason, n in counts.failed_by.items():
                reasons[reason] = reasons.get(reason, 0) + n
        return reasons

    def totals(self) -> dict[str, int]:
        totals = dict.fromkeys(COUNTS, 0)
        for counts in self.accounts.values():
            for name in COUNTS:
                totals[name] += getattr(counts, name)
        return totals

    def include(self, staged: Mapping[str, StagedCounts]) -> None:
        """What the extract staged beside the rows that streamed: the unchanged and standing rows
        (counted, never sent; standing ones are counted failed when logged), the late and retried
        shares, and accounts whose every row vanished (zeros)."""
        for account_id, counts in staged.items():
            c = self.accounts[account_id]
            c.extracted += counts.unchanged + counts.standing
            c.unchanged, c.late, c.retried = counts.unchanged, counts.late, counts.retried
            c.standing = counts.standing

    def healed(self, healed: Mapping[str, int]) -> None:
        """Of each account's retried rows, how many did not fail again."""
        for account_id, n in healed.items():
            self.accounts[account_id].healed = n

    def conservation_problems(self, staged: Mapping[str, StagedCounts]) -> list[str]:
        """One line per account whose counts do not add up to what was staged (a bug, never data)."""
        problems = []
        for account_id in sorted(set(staged) | set(self.accounts)):
            c = self.accounts.get(account_id, AccountCounts())
            total = staged[account_id].total if account_id in staged else 0
            if not (total == c.extracted == c.written + c.failed + c.skipped + c.unchanged):
                problems.append(
                    f"{account_id}: staged {total}, extracted {c.extracted}, written {c.written} + "
                    f"failed {c.failed} + skipped {c.skipped} + unchanged {c.unchanged}"
                )
        return problems

    def by_account(self) -> dict[str, dict[str, Any]]:
        """JSON-ready counts per account, sorted: the task's XCom summary."""
        return {account_id: counts.as_dict() for account_id, counts in sorted(self.accounts.items())}
