"""The parts of a category's run (core/parts.py): how instances are named and what they are given."""

from __future__ import annotations

import pytest

from thrive_sync.core.budget import Budget
from thrive_sync.core.parts import Part, part_kwargs, part_labels
from thrive_sync.core.report import build_report, format_report, org_states


def test_a_part_is_named_by_its_org_and_by_its_shard_only_when_the_day_is_split():
    assert Part("salesforce_default").label == "salesforce_default"
    assert Part("salesforce_b", 0, 3).label == "salesforce_b 1/3"
    assert Part("salesforce_b", 2, 3).label == "salesforce_b 3/3"


@pytest.mark.parametrize(("shard", "shards"), [(-1, 2), (2, 2), (0, 0)])
def test_a_shard_outside_its_count_is_refused(shard, shards):
    with pytest.raises(ValueError, match="shard"):
        Part("salesforce_default", shard, shards)


def test_a_part_names_its_connection():
    with pytest.raises(ValueError, match="connection"):
        Part("")


def test_the_extracts_rows_become_the_instances_arguments_and_names_in_their_order():
    rows = [["salesforce_b", 0, 1], ["salesforce_default", 0, 2], ["salesforce_default", 1, 2]]
    assert part_kwargs(rows[1]) == {"salesforce_conn_id": "salesforce_default", "shard": 0, "shards": 2}
    assert part_labels(rows) == ["salesforce_b", "salesforce_default 1/2", "salesforce_default 2/2"]
    assert part_labels(None) == []  # the extract pushed nothing (skipped)


def test_shards_writing_side_by_side_each_get_their_share_of_the_allowance():
    budget = Budget(calls=1_001, batches=10, notes=("n",))
    assert budget.shared(1) is budget
    assert budget.shared(4) == Budget(250, 2, ("n", "shared by the org's 4 shards"))
    assert Budget(None, None).shared(2).calls is None


def test_each_org_is_done_only_when_every_part_of_every_category_saved():
    parts = [("salesforce_b", "message_activity", 3, 1), ("salesforce_b", "social_crm", 1, 0),
             ("salesforce_default", "message_activity", 2, 2), ("salesforce_default", "social_crm", 1, 1)]  # fmt: skip
    assert org_states(parts) == {
        "salesforce_b": {"done": False, "not_done": ["message_activity 1/3", "social_crm"]},
        "salesforce_default": {"done": True, "not_done": []},
    }
    text = format_report(build_report("r", ("a", "b"), [], [], ["social_crm"], False, parts=parts))
    assert "org salesforce_b: NOT DONE: message_activity 1/3, social_crm" in text.splitlines()
    assert "org salesforce_default: done" in text.splitlines()
