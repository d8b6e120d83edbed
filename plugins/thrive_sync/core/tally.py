"""All counting of one validate-and-map task: per account, extracted / written / failed / skipped.

Every change of a count goes through :class:`RunTally`, so the rule that has to hold —
``extracted = written + failed + skipped`` per account, with ``extracted`` equal to what the
extract staged — is checked in one place (:meth:`RunTally.conservation_problems`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

COUNTS = ("extracted", "written", "failed", "skipped")


@dataclass
class AccountCounts:
    """One account's counts in one category. ``written`` counts what was sent (or would be, dry)."""

    extracted: int = 0
    written: int = 0
    skipped: int = 0
    truncated: int = 0
    skip_gate: str | None = None
    failed_by: Counter = field(default_factory=Counter)

    @property
    def failed(self) -> int:
        return sum(self.failed_by.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "extracted": self.extracted,
            "written": self.written,
            "failed": self.failed,
            "skipped": self.skipped,
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

    def failed(self, account_id: str, reason_code: str) -> None:
        self.accounts[account_id].failed_by[reason_code] += 1

    def written(self, account_id: str, truncated_fields: int = 0) -> None:
        counts = self.accounts[account_id]
        counts.written += 1
        counts.truncated += truncated_fields

    def rejected(self, account_id: str, reason_code: str) -> None:
        """A record counted as written came back refused: it moves from written to failed."""
        counts = self.accounts[account_id]
        counts.written -= 1
        counts.failed_by[reason_code] += 1

    @property
    def failed_total(self) -> int:
        return sum(c.failed for c in self.accounts.values())

    def totals(self) -> dict[str, int]:
        totals = dict.fromkeys(COUNTS, 0)
        for counts in self.accounts.values():
            for name in COUNTS:
                totals[name] += getattr(counts, name)
        return totals

    def include(self, account_ids: Iterable[str]) -> None:
        """Give these accounts counts (zeros) if they have none yet."""
        for account_id in account_ids:
            self.accounts.setdefault(account_id, AccountCounts())

    def conservation_problems(self, staged: Mapping[str, int]) -> list[str]:
        """One line per account whose counts do not add up to what was staged (a bug, never data)."""
        problems = []
        for account_id in sorted(set(staged) | set(self.accounts)):
            c = self.accounts.get(account_id, AccountCounts())
            if not (staged.get(account_id, 0) == c.extracted == c.written + c.failed + c.skipped):
                problems.append(
                    f"{account_id}: staged {staged.get(account_id, 0)}, extracted {c.extracted}, "
                    f"written {c.written} + failed {c.failed} + skipped {c.skipped}"
                )
        return problems

    def by_account(self) -> dict[str, dict[str, Any]]:
        """JSON-ready counts per account, sorted: the task's XCom summary."""
        return {account_id: counts.as_dict() for account_id, counts in sorted(self.accounts.items())}
