"""The vendor document's rules for one staged event, before and around the member-ID match.

Order (each failed row gets exactly one reason): the account gate (a skip, not a failure);
a missing code or subcode (``INVALID_ROW``); a pair outside this category's catalog
(``UNKNOWN_ACTIVITY``); a missing or unknown recipient, message, link or survey name
(``INVALID_ROW``, the detail names the field); then the Custom Member ID (``MISSING_``,
``MALFORMED_``, ``UNMATCHED_MEMBER_ID``); then, for social activity, the network handle
(``MISSING_SOCIAL_HANDLE``).
"""

from __future__ import annotations

from dataclasses import dataclass

from thrive_sync.core.catalog import Category, pairs_for, social_network
from thrive_sync.core.reasons import INVALID_ROW, MISSING_SOCIAL_HANDLE, UNKNOWN_ACTIVITY

STAGED_COLUMNS = (
    "account_id", "event_id", "recipient_id", "recipient_found", "custom_member_id", "facebook_handle",
    "twitter_handle", "activity_code", "activity_subcode", "occurred_at", "message_id", "message_found",
    "message_name", "detail",
)  # fmt: skip


@dataclass(slots=True)
class StagedEvent:
    """One row of ``thrive_sync.staged_events`` (columns in :data:`STAGED_COLUMNS` order)."""

    account_id: str
    event_id: int
    recipient_id: int | None
    recipient_found: bool
    custom_member_id: str | None
    facebook_handle: str | None
    twitter_handle: str | None
    activity_code: str | None
    activity_subcode: str | None
    occurred_at: str | None  # UTC, "2026-11-26T10:00:00.000Z" (formatted by the streaming query)
    message_id: str | None
    message_found: bool | None
    message_name: str | None
    detail: str | None


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def row_problem(category: Category, event: StagedEvent) -> tuple[str, str] | None:
    """``(reason code, detail)`` when the row fails before its member ID is looked at."""
    if event.activity_code is None or event.activity_subcode is None:
        missing = "activity_code" if event.activity_code is None else "activity_subcode"
        return INVALID_ROW, f"{missing} is null"
    if (event.activity_code, event.activity_subcode) not in pairs_for(category):
        return UNKNOWN_ACTIVITY, f"({event.activity_code!r}, {event.activity_subcode!r}) is not a {category} activity"
    if event.recipient_id is None:
        return INVALID_ROW, "recipient_id is null"
    if not event.recipient_found:
        return INVALID_ROW, f"recipient_id {event.recipient_id} is not a recipient of account {event.account_id}"
    if event.occurred_at is None:
        return INVALID_ROW, "occurred_at is null"
    if category == Category.MESSAGE_ACTIVITY:
        if event.message_id is None:
            return INVALID_ROW, "message_id is null"
        if not event.message_found:
            return INVALID_ROW, f"message_id {event.message_id} is not a message of account {event.account_id}"
        if event.activity_code == "LinkClicked" and _blank(event.detail):
            return INVALID_ROW, "link_url is null for a LinkClicked event"
    if category == Category.SURVEYS_EVENTS and _blank(event.detail):
        return INVALID_ROW, "survey_or_event_name is null"
    return None


def social_problem(event: StagedEvent) -> tuple[str, str] | None:
    """Social CRM activity needs the recipient's handle for that network."""
    network = social_network(event.activity_subcode or "")
    handle = event.facebook_handle if network == "facebook" else event.twitter_handle
    if _blank(handle):
        return MISSING_SOCIAL_HANDLE, f"recipient {event.recipient_id} has no {network} handle"
    return None


def external_id(account_id: str, category: str, event_id: int) -> str:
    """The upsert key: the same source event always maps to the same Salesforce record."""
    return f"{account_id}:{category}:{event_id}"


def parse_external_id(key: str) -> tuple[str, int]:
    """``(account_id, event_id)`` back from :func:`external_id`.

    Split from the right: the category and the event id never contain ':', an account id may.
    """
    account_id, _category, event_id = key.rsplit(":", 2)
    return account_id, int(event_id)
