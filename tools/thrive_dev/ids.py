"""Deterministic Salesforce-shaped Ids for sample data and tests: dev-only (nothing deployed mints Ids)."""

from __future__ import annotations

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def compose_id15(prefix: str, pod: str, n: int) -> str:
    """A deterministic 15-character Id: 3-char key prefix, 2-char pod, zero padding, base62 ``n``.

    For sample data and tests, which mint Ids the way an org does (prefix first, a counter last);
    ``n`` must be below 62**6. The 18-character form is ``thrive_sync.core.sfid.to_18`` of it.
    """
    digits = []
    for _ in range(6):
        n, r = divmod(n, 62)
        digits.append(_BASE62[r])
    return f"{prefix}{pod}0000{''.join(reversed(digits))}"
