"""Account gates from the vendor document: which accounts' tracking may be pushed at all.

"Tracking will display in an integrated product if tracking is enabled" (per account), Marketing
Automation "must first be enabled in the account", and Social CRM activity occurs "only when
Social CRM is enabled for your account". Rows behind a closed gate are skipped, not failed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from thrive_sync.core.catalog import Category

TRACKING_DISABLED = "tracking_disabled"
MARKETING_AUTOMATION_DISABLED = "marketing_automation_disabled"
SOCIAL_CRM_DISABLED = "social_crm_disabled"
# Not an account's gate but a row's: its (code, subcode) pair is in the mapping file's leave_out.
LEFT_OUT_BY_MAPPING = "left_out_by_mapping"


@dataclass(frozen=True)
class AccountGates:
    """One ``thrive.accounts`` row's switches (nulls read as off)."""

    account_id: str
    tracking_enabled: bool
    marketing_automation_enabled: bool
    social_crm_enabled: bool

    def closed_gate(self, category: Category) -> str | None:
        """The gate that skips this account's ``category`` rows, or ``None`` when they go through."""
        if not self.tracking_enabled:
            return TRACKING_DISABLED
        if category == Category.MARKETING_AUTOMATION and not self.marketing_automation_enabled:
            return MARKETING_AUTOMATION_DISABLED
        if category == Category.SOCIAL_CRM and not self.social_crm_enabled:
            return SOCIAL_CRM_DISABLED
        return None


def gate_summary(accounts: Iterable[AccountGates]) -> dict[str, dict[str, str | None]]:
    """``{account_id: {category: closed gate or None}}``: JSON-ready, for XCom and the report."""
    return {a.account_id: {c.value: a.closed_gate(c) for c in Category} for a in accounts}
