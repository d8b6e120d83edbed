"""The mapping file: what a broken one says, truncation, and what the org must have for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from thrive_sync.core.mapping import SourceValues, load_mapping
from thrive_sync.errors import ConfigurationError, MappingError

GOOD = """
object: Thrive_Activity__c
external_id_field: Thrive_Event_Id__c
fields:
  Thrive_Event_Id__c: external_id
  Detail__c: detail
  Activity__c: activity_subcode
truncate:
  Detail__c: 5
"""
VALUES = SourceValues("a:message_activity:1", "Opened", "Opened", "2026-11-26T10:00:00.000Z", None, None,
                      "message_activity", "a", "7", "News", "https://example.org/long")  # fmt: skip


def mapping_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("object: [unclosed", "is not valid YAML"),
        ("object: X\n", "needs 'object', 'external_id_field' and a 'fields' table"),
        (GOOD.replace("Detail__c: detail", "Detail__c: link"), "unknown source value(s) ['link']"),
        (GOOD.replace("external_id_field: Thrive_Event_Id__c", "external_id_field: Detail__c"),
         "external_id_field 'Detail__c' must be mapped from external_id"),
        (GOOD.replace("  Detail__c: 5", "  Nope__c: 5"), "truncate names fields that are not mapped: ['Nope__c']"),
        (GOOD + "leave_out: Sent/Delivered\n", "leave_out must be a list of [code, subcode] pairs"),
        (GOOD + "leave_out: [[Sent]]\n", "leave_out must be a list of [code, subcode] pairs"),
        (GOOD + "leave_out: [[Sent, Delivered], [Sent, delivered]]\n",
         "leave_out names pairs the vendor's catalog does not have: [('Sent', 'delivered')]"),
    ],
)  # fmt: skip
def test_a_broken_mapping_file_says_what_to_fix(tmp_path, text, message):
    path = mapping_file(tmp_path, text)
    with pytest.raises(MappingError) as err:
        load_mapping(path)
    assert message in str(err.value) and str(path) in str(err.value)
    assert isinstance(err.value, ConfigurationError)  # not retried: only a person can fix it


def test_a_missing_mapping_file(tmp_path):
    with pytest.raises(MappingError, match="cannot be read"):
        load_mapping(tmp_path / "nope.yaml")


def test_the_default_mapping_draws_on_every_source_value():
    mapping = load_mapping()
    assert set(mapping.fields.values()) == set(SourceValues._fields)
    row, cut = mapping.row_maker()(VALUES)
    assert list(row) == list(VALUES) and cut == []


def test_truncation_cuts_to_the_limit_and_says_which_fields(tmp_path):
    mapping = load_mapping(mapping_file_path := mapping_file(tmp_path, GOOD))
    row, cut = mapping.row_maker()(VALUES)
    assert list(row) == ["a:message_activity:1", "https", "Opened"] and cut == ["Detail__c"]
    row, cut = mapping.row_maker()(VALUES._replace(detail="short"))
    assert row[1] == "short" and cut == []
    assert mapping.path == str(mapping_file_path)


def described(**overrides: dict) -> dict[str, dict]:
    fields = {n: {"createable": True, "updateable": True} for n in ("Thrive_Event_Id__c", "Detail__c", "Activity__c")}
    fields["Thrive_Event_Id__c"]["externalId"] = True
    return {**fields, **overrides}


def test_what_the_org_must_have_for_the_mapping(tmp_path):
    mapping = load_mapping(mapping_file(tmp_path, GOOD))
    assert mapping.org_problem(described(), "sf") is None
    assert "has no object 'Thrive_Activity__c'" in mapping.org_problem(None, "sf")
    missing = described()
    del missing["Detail__c"]
    assert "has no field(s) ['Detail__c']" in mapping.org_problem(missing, "sf")
    assert "cannot be written" in mapping.org_problem(described(Activity__c={"createable": True, "updateable": False}),
                                                      "sf")  # fmt: skip
    no_ext = described(Thrive_Event_Id__c={"createable": True, "updateable": True})
    assert "is not an External ID field" in mapping.org_problem(no_ext, "sf")


def test_leave_out_names_catalog_pairs(tmp_path):
    mapping = load_mapping(mapping_file(tmp_path, GOOD + "leave_out: [[Sent, Delivered], [Opened, Opened]]\n"))
    assert mapping.leave_out == {("Sent", "Delivered"), ("Opened", "Opened")}
    assert load_mapping(mapping_file(tmp_path, GOOD)).leave_out == frozenset()
