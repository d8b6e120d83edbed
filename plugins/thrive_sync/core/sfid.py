"""Salesforce record Ids: the 18-character checksum, 15 → 18 normalisation, Contact/Lead prefixes.

Written by hand because no maintained library exposes it: simple_salesforce has no Id helper,
and the algorithm is ten lines (documented by Salesforce for the ``CASESAFEID()`` formula).
A Thrive Custom Member ID is the integration Id of a Contact (``003``) or a Lead (``00Q``).
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache

_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_CHARS = re.compile(r"[0-9A-Za-z]+")


class MemberObject(StrEnum):
    """The Salesforce objects a Custom Member ID may point at, keyed by Id prefix."""

    CONTACT = "Contact"
    LEAD = "Lead"


KEY_PREFIX: dict[str, MemberObject] = {"003": MemberObject.CONTACT, "00Q": MemberObject.LEAD}


def checksum(id15: str) -> str:
    """The 3-character case-safe suffix of a 15-character Id.

    Each 5-character chunk gives one suffix character: bit ``i`` is set when character ``i``
    of the chunk is an upper-case letter.
    """
    return _chunk_char(id15[0:5]) + _chunk_char(id15[5:10]) + _chunk_char(id15[10:15])


@lru_cache(maxsize=1 << 16)  # chunks repeat a lot (key prefixes, pods, padding): millions of Ids a day
def _chunk_char(chunk: str) -> str:
    return _SUFFIX_ALPHABET[sum(1 << i for i, ch in enumerate(chunk) if "A" <= ch <= "Z")]


def to_18(sf_id: str) -> str:
    """The 18-character form of a well-formed 15- or 18-character Id (raises ``ValueError`` otherwise)."""
    problem = id_problem(sf_id)
    if problem:
        raise ValueError(f"not a Salesforce Id ({problem}): {sf_id!r}")
    return sf_id if len(sf_id) == 18 else sf_id + checksum(sf_id)


def id_problem(sf_id: str) -> str | None:
    """Why ``sf_id`` is not a well-formed Salesforce Id, or ``None`` when it is one."""
    if len(sf_id) not in (15, 18):
        return f"length {len(sf_id)}, expected 15 or 18"
    if not _ID_CHARS.fullmatch(sf_id):
        return "characters other than letters and digits"
    if len(sf_id) == 18 and sf_id[15:] != checksum(sf_id[:15]):
        return f"18-char checksum {sf_id[15:]!r} does not match {checksum(sf_id[:15])!r}"
    return None


def member_id_problem(sf_id: str) -> str | None:
    """Why ``sf_id`` is not a Contact or Lead Id, or ``None`` when it is one (either length)."""
    problem = id_problem(sf_id)
    if problem:
        return problem
    if sf_id[:3] not in KEY_PREFIX:
        return f"key prefix {sf_id[:3]!r} is neither Contact (003) nor Lead (00Q)"
    return None


def member_object(sf_id: str) -> MemberObject:
    """Contact or Lead, by the prefix of a well-formed member Id."""
    return KEY_PREFIX[sf_id[:3]]
