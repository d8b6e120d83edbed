"""The sandbox org's record Ids: validating them, 15 -> 18, and minting new ones.

Written for the sandbox on its own, from Salesforce's published description of the case-safe Id
(the ``CASESAFEID()`` formula), and deliberately not shared with the package under plugins/: the
sandbox is the double that catches the package's Id mistakes, so it must not run the package's code.
``tests/unit/test_sandbox_ids.py`` checks that the two agree.

The rule: split the 15-character Id into three 5-character chunks; in each, character ``i``
contributes ``2**i`` when it is an upper-case letter A-Z; the chunk's total (0..31) picks a
character of ``A..Z0..5``. The three picks, in chunk order, are the suffix of the 18-character Id.
"""

from __future__ import annotations

import string
from functools import lru_cache

SUFFIX_CHARS = string.ascii_uppercase + "012345"  # 32 characters: one per 5-bit value
ID_CHARS = frozenset(string.ascii_letters + string.digits)
_UPPER = frozenset(string.ascii_uppercase)


@lru_cache(maxsize=1 << 14)  # a Bulk load repeats a handful of chunks (key prefix, pod, zeros) endlessly
def _suffix_char(chunk: str) -> str:
    value = 0
    for ch in reversed(chunk):  # last character is the high bit: shift it up as lower ones come in
        value = (value << 1) | (ch in _UPPER)
    return SUFFIX_CHARS[value]


def case_safe_suffix(id15: str) -> str:
    """The 3 characters that make the 15-character ``id15`` an 18-character Id."""
    if len(id15) != 15:
        raise ValueError(f"a 15-character Id is needed, got {len(id15)} characters: {id15!r}")
    return "".join(_suffix_char(id15[start : start + 5]) for start in (0, 5, 10))


def is_valid_id(value: str) -> bool:
    """Whether ``value`` is an Id the org would accept: 15 letters/digits, or 18 with a matching suffix."""
    if len(value) not in (15, 18) or not ID_CHARS.issuperset(value):
        return False
    return len(value) == 15 or value[15:] == case_safe_suffix(value[:15])


def to_18_or_same(value: str) -> str:
    """The 18-character form of a valid 15-character Id; anything else unchanged."""
    if len(value) == 15 and is_valid_id(value):
        return value + case_safe_suffix(value)
    return value


def mint_ids(key_prefix: str, pod: str, first: int, count: int) -> list[str]:
    """``count`` 18-character Ids numbered from ``first``: key prefix, 2-char pod, 10-digit counter, suffix.

    The counter's digits are never upper case, so the suffix depends on the prefix and pod alone:
    computed once for the whole batch.
    """
    head = f"{key_prefix}{pod}"
    if len(head) != 5:
        raise ValueError(f"key prefix and pod must make 5 characters, got {head!r}")
    if first < 0 or first + count - 1 >= 10**10:
        raise ValueError(f"Id counter out of range: {first}..{first + count - 1}")
    suffix = case_safe_suffix(head + "0" * 10)
    return [f"{head}{n:010d}{suffix}" for n in range(first, first + count)]
