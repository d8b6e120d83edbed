"""Salesforce Id rules: the 18-char checksum, 15 -> 18, Contact and Lead prefixes."""

from __future__ import annotations

import pytest

from thrive_sync.core.sfid import MemberObject, checksum, id_problem, member_id_problem, member_object, to_18


def test_checksum_hand_worked():
    """Vectors worked by hand from the rule: bit i of each 5-char chunk is set when char i is upper
    case, and the value indexes "A..Z0..5". "3T2PG": upper at 1, 3, 4 -> 2 + 8 + 16 = 26 -> "0"."""
    assert checksum("00300000003T2PG") == "AA0"
    assert checksum("003000000000000") == "AAA"
    # "00QAB": Q, A, B upper at 2, 3, 4 -> 4 + 8 + 16 = 28 -> "2"; "CDEFG" all upper -> 31 -> "5";
    # "HIJKL" all upper -> 31 -> "5".
    assert checksum("00QABCDEFGHIJKL") == "255"


def test_to_18_extends_15_and_keeps_18():
    assert to_18("00300000003T2PG") == "00300000003T2PGAA0"
    assert to_18("00300000003T2PGAA0") == "00300000003T2PGAA0"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("00300000003T2P", "length 14"),
        ("00300000003T2PGAA", "length 17"),
        ("0030000-003T2PG", "characters"),
        ("00300000003T2PGAAA", "checksum"),
        ("", "length 0"),
    ],
)
def test_malformed_ids_say_why(value, problem):
    assert problem in (id_problem(value) or "")
    with pytest.raises(ValueError):
        to_18(value)


def test_member_ids_are_contacts_or_leads_only():
    account = "001000000000000"
    assert "neither Contact" in (member_id_problem(account) or "")
    assert member_id_problem("00300000003T2PG") is None
    assert member_object("00300000003T2PGAA0") is MemberObject.CONTACT
    assert member_object("00QABCDEFGHIJKL255") is MemberObject.LEAD


def test_checksum_against_the_published_vector():
    """The example Salesforce publishes for CASESAFEID(): 001A0000006Vm9r -> 001A0000006Vm9rIAC."""
    assert to_18("001A0000006Vm9r") == "001A0000006Vm9rIAC"
    assert id_problem("001A0000006Vm9rIAC") is None
    assert "checksum" in (id_problem("001A0000006Vm9rIAD") or "")
