"""The reason codes of ``thrive_sync.tracking_log`` (shared/spec CONTRACT.md §4): one per failed row."""

from __future__ import annotations

MISSING_MEMBER_ID = "MISSING_MEMBER_ID"  # the recipient has no Custom Member ID
MALFORMED_MEMBER_ID = "MALFORMED_MEMBER_ID"  # not a Contact (003) or Lead (00Q) Id: length, characters, checksum
UNMATCHED_MEMBER_ID = "UNMATCHED_MEMBER_ID"  # well-formed, but no such record in the org
UNKNOWN_ACTIVITY = "UNKNOWN_ACTIVITY"  # the (code, subcode) pair is not in this category's catalog
MISSING_SOCIAL_HANDLE = "MISSING_SOCIAL_HANDLE"  # social activity without a handle for that network
INVALID_ROW = "INVALID_ROW"  # a required value is missing or unknown (the detail names the field)
REJECTED = "REJECTED"  # the org refused the record (detail: its error code and message)
RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"  # transient errors outlasted the retry budget
# Not sent: the org's daily allowance would fall below the reserve kept for its other integrations.
# Carried to the next runs by the ledger; not a failure of the integration (the failure share never counts it failed).
DEFERRED_QUOTA = "DEFERRED_QUOTA"
