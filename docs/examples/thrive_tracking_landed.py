"""Example: a DAG that runs when yesterday's tracking has landed in Salesforce (docs/operations.md, Assets).

Copy it into your DAGs folder and change the connection id to your org's. The sync's
``publish_landed`` task updates the Asset of each org whose day landed; this DAG is scheduled on one
org's Asset and reads which day it was from the event.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, task

from thrive_sync.assets import salesforce_asset

LANDED = salesforce_asset("salesforce_default")  # the org's Airflow connection id; the object by default


@dag(schedule=[LANDED], catchup=False, tags=["thrive", "example"], default_args={"retries": 2})
def thrive_tracking_landed():
    @task
    def days_landed(*, triggering_asset_events: Any = None) -> list[dict]:
        """What landed: one asset event per sync run (several, if runs landed before this one ran)."""
        landed = [event.extra for event in triggering_asset_events[LANDED]]
        for extra in landed:
            print(f"Tracking of {extra['window_start']} to {extra['window_end']} landed ({extra['dag_run_id']})")
        return landed

    days_landed()


thrive_tracking_landed()
