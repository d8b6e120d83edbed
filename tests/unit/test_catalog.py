"""The catalog equals the vendor document's tables, pair for pair, strings exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from thrive_sync.core.catalog import CATALOG, SECTION_TITLE, Category, pairs_for, social_network

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VENDOR_DOC = PROJECT_ROOT / "docs" / "vendor" / "thrive-activity-codes.txt"
SHARED_SPEC = PROJECT_ROOT.parent / "shared" / "spec" / "thrive-activity-codes.txt"


def parse_vendor_tables(text: str) -> list[tuple[str, str, str]]:
    """``(section title, code, subcode)`` for every table row of the vendor document, in order."""
    titles = set(SECTION_TITLE.values())
    rows, section = [], None
    for line in text.splitlines():
        if line in titles:
            section = line
            continue
        cells = line.split(" | ")
        if section and len(cells) == 3 and line.endswith("|") and cells[0] != "Activity Code":
            rows.append((section, cells[0], cells[1]))
    return rows


def test_catalog_equals_vendor_tables_pair_for_pair():
    vendor = parse_vendor_tables(VENDOR_DOC.read_text(encoding="utf-8"))
    ours = [(SECTION_TITLE[a.category], a.code, a.subcode) for a in CATALOG]
    assert len(vendor) == 54  # 23 + 19 + 3 + 7 + 2 rows in the document
    assert ours == vendor


def test_vendor_copy_is_the_shared_spec():
    if not SHARED_SPEC.exists():
        pytest.skip("no shared/spec beside this checkout")
    assert VENDOR_DOC.read_bytes() == SHARED_SPEC.read_bytes()


@pytest.mark.parametrize(
    ("category", "code", "subcode"),
    [
        (Category.RECIPIENT_DETAILS, "Suppressed", "Detail Unavailable"),
        (Category.RECIPIENT_DETAILS, "Suppressed", "AutoNon-EngagedSuppress"),
        (Category.RECIPIENT_DETAILS, "Suppressed", "Unsub From All Link"),
        (Category.MESSAGE_ACTIVITY, "SmsSent", "SMSSTOPfromPhoneNumber"),
        (Category.SURVEYS_EVENTS, "Event Signup", "Event Signup"),
    ],
)
def test_exact_strings_are_kept(category, code, subcode):
    assert (code, subcode) in pairs_for(category)


@pytest.mark.parametrize(
    ("category", "code", "subcode"),
    [
        (Category.RECIPIENT_DETAILS, "Suppressed", "Detail unavailable"),  # case
        (Category.RECIPIENT_DETAILS, "Suppressed", "AutoNonEngagedSuppress"),  # hyphen
        (Category.MESSAGE_ACTIVITY, "Sent ", "Delivered"),  # trailing space
        (Category.MESSAGE_ACTIVITY, "Subscribed", "Subscribed"),  # another section's pair
    ],
)
def test_near_misses_are_not_in_the_category(category, code, subcode):
    assert (code, subcode) not in pairs_for(category)


def test_every_social_subcode_names_its_network():
    assert {social_network(s) for _, s in pairs_for(Category.SOCIAL_CRM)} == {"facebook", "twitter"}
