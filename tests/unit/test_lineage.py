"""What a sync instance reports to OpenLineage (thrive_sync.lineage), and that the provider is optional."""

from __future__ import annotations

import sys

from thrive_sync.core.catalog import Category
from thrive_sync.lineage import SyncLineage, counts_facet, operator_lineage

LINEAGE = SyncLineage(Category.SOCIAL_CRM, "salesforce_b", "Thrive_Activity__c", "postgres://db:5432", "thrive")


def test_inputs_and_outputs_are_named_as_the_postgres_provider_and_the_asset_name_them():
    lineage = LINEAGE
    assert lineage.inputs() == [
        ("postgres://db:5432", "thrive.thrive.social_activity"),
        ("postgres://db:5432", "thrive.thrive.accounts"),
        ("postgres://db:5432", "thrive.thrive_sync.staged_events"),
    ]
    assert lineage.outputs() == [
        ("salesforce://salesforce_b", "Thrive_Activity__c"),
        ("postgres://db:5432", "thrive.thrive_sync.tracking_log"),
    ]


def test_the_counts_facet_holds_the_counts_and_the_failures_by_reason():
    totals = {"extracted": 10, "written": 6, "failed": 3, "skipped": 1, "unchanged": 0}
    facet = counts_facet(totals, {"UNMATCHED_MEMBER_ID": 2, "INVALID_FIELD_VALUE": 1}, "salesforce_b 2/3", False)
    assert facet == {"category_part": "salesforce_b 2/3", "dryRun": False, "extracted": 10, "written": 6, "failed": 3,
                     "skipped": 1, "unchanged": 0,
                     "failedByReason": {"INVALID_FIELD_VALUE": 1, "UNMATCHED_MEMBER_ID": 2}}  # fmt: skip


def test_the_lineage_serialises_as_the_openlineage_client_sends_it():
    from openlineage.client.serde import Serde

    totals = {"extracted": 10, "written": 6, "failed": 3, "skipped": 1, "unchanged": 0}
    lineage = operator_lineage(LINEAGE, counts_facet(totals, {"UNMATCHED_MEMBER_ID": 3}, "salesforce_b", False))
    outputs = [Serde.to_dict(o) for o in lineage.outputs]
    assert [(o["namespace"], o["name"], o["outputFacets"]["outputStatistics"]["rowCount"]) for o in outputs] == [
        ("salesforce://salesforce_b", "Thrive_Activity__c", 6),
        ("postgres://db:5432", "thrive.thrive_sync.tracking_log", 3),
    ]
    facet = Serde.to_dict(lineage.run_facets["thriveSyncCounts"])
    assert facet["written"] == 6 and facet["failedByReason"] == {"UNMATCHED_MEMBER_ID": 3}
    assert facet["_schemaURL"].endswith("#lineage") and facet["_producer"]
    started = operator_lineage(LINEAGE, None)  # the START event: no counts yet
    assert Serde.to_dict(started.inputs[0])["name"] == "thrive.thrive.social_activity" and not started.run_facets


def test_a_dry_run_writes_nothing_to_the_org():
    totals = {"extracted": 10, "written": 6, "failed": 3, "skipped": 1, "unchanged": 0}
    lineage = operator_lineage(LINEAGE, counts_facet(totals, {}, "salesforce_b", True), dry_run=True)
    assert [o.name for o in lineage.outputs] == ["thrive.thrive_sync.tracking_log"]


def test_without_the_provider_there_is_no_lineage_and_no_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "airflow.providers.openlineage.extractors", None)  # as if not installed
    assert operator_lineage(LINEAGE, None) is None
