"""Airflow Assets: each org's Salesforce object, updated when the day's sync of that org has landed.

A downstream DAG is scheduled on "yesterday's tracking is in Salesforce" with
``schedule=[salesforce_asset("salesforce_default")]`` (docs/operations.md, Assets). The sync emits
the events through an ``AssetAlias``, because which orgs a run writes to is known only when it runs.
Producer and consumer build the Asset here, so its name and URI match to the character.
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetAlias

SALESFORCE_SCHEME = "salesforce"
DEFAULT_SOBJECT = "Thrive_Activity__c"  # the object the default mapping writes (CONTRACT.md)
LANDED_ALIAS = "thrive_tracking_sync_landed"  # the alias the sync's publish_landed task emits through


def salesforce_asset_uri(salesforce_conn_id: str, sobject: str = DEFAULT_SOBJECT) -> str:
    return f"{SALESFORCE_SCHEME}://{salesforce_conn_id}/{sobject}"


def salesforce_asset(salesforce_conn_id: str, sobject: str = DEFAULT_SOBJECT) -> Asset:
    """The Asset of one org's object (the org named by its Airflow connection)."""
    uri = salesforce_asset_uri(salesforce_conn_id, sobject)
    return Asset(name=uri, uri=uri)


def landed_alias() -> AssetAlias:
    return AssetAlias(LANDED_ALIAS)
