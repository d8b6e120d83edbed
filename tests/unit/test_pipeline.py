"""The per-event pipeline: which reason a row gets, what a record looks like, and the counts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from thrive_sync.core.catalog import Category
from thrive_sync.core.mapping import load_mapping
from thrive_sync.core.members import MemberMatch, check_locally
from thrive_sync.core.pipeline import EventPipeline, Failure
from thrive_sync.core.sfid import MemberObject, to_18
from thrive_sync.core.tally import RunTally, StagedCounts
from thrive_sync.core.validation import StagedEvent, parse_external_id

CONTACT = "00300000003T2PGAA0"
LEAD = "00QABCDEFGHIJKL255"
UNMATCHED = to_18("0030000000ZZZZZ")
MAPPING = load_mapping()


def event(**changes) -> StagedEvent:
    good = StagedEvent(
        account_id="acct-1", event_id=1, recipient_id=10, recipient_found=True, custom_member_id=CONTACT,
        facebook_handle="fb", twitter_handle=None, activity_code="Opened", activity_subcode="Opened",
        occurred_at="2026-11-26T10:00:00.000Z", message_id="7", message_found=True, message_name="News",
        detail=None,
    )  # fmt: skip
    return replace(good, **changes)


def resolve(raw_ids):
    """The org as the matcher would answer: CONTACT and LEAD exist, nothing else does."""
    answers = {}
    for raw in raw_ids:
        match = check_locally(raw)
        if match.sf_id and match.sf_id not in (CONTACT, LEAD):
            match = MemberMatch(reason_code="UNMATCHED_MEMBER_ID", detail="not in the org")
        answers[raw] = match
    return answers


def run(category: Category, *events: StagedEvent, gates=None):
    tally = RunTally()
    pipeline = EventPipeline(category, MAPPING, gates or {"acct-1": None}, tally)
    return pipeline.process(list(events), resolve), tally


def reason(category: Category, row: StagedEvent, gates=None) -> str | None:
    result, _ = run(category, row, gates=gates)
    return result.failures[0].reason_code if result.failures else None


MA, SOCIAL, SURVEY = Category.MESSAGE_ACTIVITY, Category.SOCIAL_CRM, Category.SURVEYS_EVENTS
TWEET = {"activity_code": "Social", "activity_subcode": "TwitterTweet"}


@pytest.mark.parametrize(
    ("category", "changes", "expected"),
    [
        # Several defects at once: the earliest rule names the row.
        (MA, {"activity_code": None, "recipient_id": None, "custom_member_id": None}, "INVALID_ROW"),
        (MA, {"activity_subcode": "Nope", "recipient_found": False, "custom_member_id": "x"}, "UNKNOWN_ACTIVITY"),
        (MA, {"activity_code": "Social", "activity_subcode": "FacebookLike"}, "UNKNOWN_ACTIVITY"),
        (MA, {"message_found": False, "custom_member_id": None}, "INVALID_ROW"),
        (MA, {"activity_code": "LinkClicked", "activity_subcode": "Clicked", "detail": " ", "custom_member_id": "x"},
         "INVALID_ROW"),
        (SURVEY, {"activity_code": "Survey Submit", "activity_subcode": "Survey Submit", "custom_member_id": "x"},
         "INVALID_ROW"),
        (MA, {"custom_member_id": "  "}, "MISSING_MEMBER_ID"),
        (MA, {"custom_member_id": CONTACT[:17] + "X"}, "MALFORMED_MEMBER_ID"),
        (MA, {"custom_member_id": UNMATCHED}, "UNMATCHED_MEMBER_ID"),
        (SOCIAL, {**TWEET, "custom_member_id": UNMATCHED}, "UNMATCHED_MEMBER_ID"),
        (SOCIAL, TWEET, "MISSING_SOCIAL_HANDLE"),
        (SOCIAL, {"activity_code": "Social", "activity_subcode": "FacebookLike"}, None),
    ],
)  # fmt: skip
def test_a_row_with_several_defects_gets_the_first_rules_reason(category, changes, expected):
    assert reason(category, event(**changes)) == expected


def test_a_closed_gate_skips_before_any_rule_and_an_unknown_account_is_tracking_disabled():
    broken = event(activity_code=None, custom_member_id=None)
    result, tally = run(Category.MARKETING_AUTOMATION, broken, replace(broken, account_id="acct-9"),
                        gates={"acct-1": "marketing_automation_disabled"})  # fmt: skip
    assert result.failures == [] and result.records == []
    assert tally.accounts["acct-1"].skipped == 1
    assert tally.accounts["acct-1"].skip_gate == "marketing_automation_disabled"
    assert tally.accounts["acct-9"].skip_gate == "tracking_disabled"


def test_a_record_in_the_mappings_field_order_with_contact_or_lead_and_the_external_id():
    result, tally = run(Category.MESSAGE_ACTIVITY, event(), event(event_id=2, custom_member_id=LEAD[:15]))
    contact, lead = (dict(zip(MAPPING.fields, r, strict=True)) for r in result.records)
    assert contact == {
        "Thrive_Event_Id__c": "acct-1:message_activity:1", "Activity_Group__c": "Opened", "Activity__c": "Opened",
        "Activity_Date__c": "2026-11-26T10:00:00.000Z", "Contact__c": CONTACT, "Lead__c": None,
        "Category__c": "message_activity", "Thrive_Account_Id__c": "acct-1", "Message_Id__c": "7",
        "Message_Name__c": "News", "Detail__c": None,
    }  # fmt: skip
    assert lead["Lead__c"] == LEAD and lead["Contact__c"] is None  # the 15-char Id in its 18-char form
    assert tally.accounts["acct-1"].written == 2


def test_every_row_is_counted_once_and_the_counts_add_up():
    rows = [event(event_id=i, custom_member_id=[CONTACT, None, "bad", UNMATCHED][i % 4]) for i in range(40)]
    rows += [event(event_id=100 + i, account_id="acct-2") for i in range(5)]
    result, tally = run(Category.MESSAGE_ACTIVITY, *rows, gates={"acct-1": None, "acct-2": "tracking_disabled"})
    assert all(isinstance(f, Failure) for f in result.failures) and len(result.failures) == 30
    assert tally.accounts["acct-1"].failed_by == {"MISSING_MEMBER_ID": 10, "MALFORMED_MEMBER_ID": 10,
                                                  "UNMATCHED_MEMBER_ID": 10}  # fmt: skip
    staged = {"acct-1": StagedCounts(40), "acct-2": StagedCounts(5)}
    assert tally.conservation_problems(staged) == []
    assert tally.totals() == {"extracted": 45, "written": 10, "failed": 30, "skipped": 5, "unchanged": 0}
    tally.rejected("acct-1", "REJECTED")
    assert tally.totals()["written"] == 9 and tally.failed_total == 31
    assert tally.conservation_problems(staged) == []
    assert tally.conservation_problems({**staged, "acct-1": StagedCounts(41)}) == [
        "acct-1: staged 41, extracted 40, written 9 + failed 31 + skipped 0 + unchanged 0"
    ]


def test_unchanged_rows_count_as_extracted_without_streaming():
    """The extract stages unchanged rows for the count; they never stream, and the sum still holds."""
    _, tally = run(Category.MESSAGE_ACTIVITY, *[event(event_id=i) for i in range(3)], gates={"acct-1": None})
    staged = {"acct-1": StagedCounts(total=12, unchanged=7, late=2, retried=1, standing=2), "acct-9": StagedCounts(0)}
    tally.failed("acct-1", "UNKNOWN_ACTIVITY", 2)  # the standing failures, logged again from the ledger
    tally.include(staged)
    assert tally.conservation_problems(staged) == []
    counts = tally.accounts["acct-1"]
    assert (counts.extracted, counts.unchanged, counts.late, counts.retried, counts.failed) == (12, 7, 2, 1, 2)
    assert tally.accounts["acct-9"].extracted == 0  # an account whose rows all vanished gets its zeros


@pytest.mark.parametrize("account_id", ["acct-1", "org:acct:7", "trailing:", ":", "a::b"])
def test_external_ids_round_trip_with_colons_in_the_account_id(account_id):
    result, _ = run(Category.RECIPIENT_DETAILS, event(account_id=account_id, event_id=42, activity_code="Subscribed",
                    activity_subcode="Subscribed"), gates={account_id: None})  # fmt: skip
    key = result.records[0][0]
    assert key == f"{account_id}:recipient_details:42"
    assert parse_external_id(key) == (account_id, 42)


def test_member_matches_of_both_objects():
    assert check_locally(LEAD[:15]) == MemberMatch(sf_id=LEAD, sobject=MemberObject.LEAD)


def test_a_pair_the_mapping_leaves_out_is_skipped_not_failed_and_a_closed_gate_comes_first():
    leaving = replace(MAPPING, leave_out=frozenset({("Sent", "Delivered")}))
    tally = RunTally()
    pipeline = EventPipeline(Category.MESSAGE_ACTIVITY, leaving, {"acct-1": None, "acct-2": "tracking_disabled"}, tally)
    delivered = event(activity_code="Sent", activity_subcode="Delivered", custom_member_id=None)  # invalid too
    result = pipeline.process([delivered, event(event_id=2), replace(delivered, account_id="acct-2")], resolve)
    assert result.failures == [] and len(result.records) == 1
    one, two = tally.accounts["acct-1"], tally.accounts["acct-2"]
    assert (one.skipped, one.left_out, one.skip_gate, one.written) == (1, 1, None, 1)
    assert (two.skipped, two.left_out, two.skip_gate) == (1, 0, "tracking_disabled")
    deferred = pipeline.defer([replace(delivered, event_id=3), event(event_id=4)], "no room")
    assert [f.event.event_id for f in deferred] == [4] and one.left_out == 2  # a skipped row is never deferred
