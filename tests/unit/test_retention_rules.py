"""Retention's rules: the setting read, the cutoff, and the query that finds a category's old records."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from thrive_sync.core.catalog import Category
from thrive_sync.core.mapping import load_mapping
from thrive_sync.core.retention import RetentionQuery, cutoff, parse_retention
from thrive_sync.errors import ConfigurationError
from thrive_sync.settings import DEFAULT_MAPPING


def test_the_setting_is_off_when_empty_one_number_for_all_or_days_per_category():
    assert parse_retention(None) == parse_retention("  ") == {}
    assert parse_retention("180") == dict.fromkeys(Category, 180)
    assert parse_retention("message_activity=90, surveys_events = 730,") == {
        Category.MESSAGE_ACTIVITY: 90,
        Category.SURVEYS_EVENTS: 730,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ninety", "'ninety': the days must be a whole number"),
        ("0", "'0': keep at least 1 day"),
        ("message_activity=-3", "'message_activity=-3': keep at least 1 day"),
        ("messages=90", "'messages' is not a category (one of message_activity, recipient_details"),
        ("social_crm=1.5", "'social_crm=1.5': the days must be a whole number"),
    ],
)
def test_a_setting_that_cannot_be_used_names_the_variable_and_the_mistake(text, message):
    with pytest.raises(ConfigurationError, match=r"THRIVE_SYNC_RETENTION_DAYS: " + message.replace("(", r"\(")):
        parse_retention(text)


def test_the_query_asks_for_the_oldest_records_of_the_category_before_the_cutoff():
    query = RetentionQuery.from_mapping(load_mapping(DEFAULT_MAPPING))
    before = cutoff(datetime(2026, 11, 27, 12, tzinfo=UTC), 90)
    assert before == datetime(2026, 8, 29, 12, tzinfo=UTC)
    assert query.soql(Category.SOCIAL_CRM, before, 25_000) == (
        "SELECT Id, Thrive_Event_Id__c, Activity_Date__c FROM Thrive_Activity__c WHERE Category__c = 'social_crm'"
        " AND Activity_Date__c < 2026-08-29T12:00:00Z AND Thrive_Event_Id__c != null"
        " ORDER BY Activity_Date__c LIMIT 25000"
    )
    skipping = query.soql(Category.SOCIAL_CRM, before, 100, skip={"a00000000000002AAA", "a00000000000001AAA"})
    assert " AND Id NOT IN ('a00000000000001AAA', 'a00000000000002AAA') ORDER BY" in skipping
    assert query.count_soql(Category.SOCIAL_CRM, before).startswith("SELECT COUNT() FROM Thrive_Activity__c WHERE")


def test_a_mapping_without_the_category_or_the_time_cannot_serve_retention(tmp_path):
    text = DEFAULT_MAPPING.read_text().replace("  Category__c: category\n", "")
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match="writes no field from category: map them, or turn retention off"):
        RetentionQuery.from_mapping(load_mapping(path))
