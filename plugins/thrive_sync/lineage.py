"""Lineage for OpenLineage (Marquez, DataHub, Astro): what a sync instance read, wrote and counted.

Optional: the OpenLineage provider (``requirements-lineage.txt``) calls the operator's
``get_openlineage_facets_on_*`` methods, which call :func:`sync_lineage`; without the provider
these return ``None`` and nothing else changes. The provider's own parts are imported here only,
inside functions, because its compat layer turns missing classes into silent no-ops rather than
import errors: the guard is the ``OperatorLineage`` import.

Naming: the PostgreSQL tables as the Postgres provider names them (``postgres://host:port``,
``database.schema.table``), so they join the extract tasks' lineage that the provider derives from
their SQL. The Salesforce object as ``salesforce://<connection id>`` / ``<object>``: OpenLineage has
no convention for Salesforce, and this is the URI of the Airflow Asset the sync updates
(:mod:`thrive_sync.assets`), so a lineage tool shows the two as one dataset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from thrive_sync.assets import SALESFORCE_SCHEME
from thrive_sync.core.catalog import SOURCE_TABLE, Category

COUNTS_FACET = "thriveSyncCounts"  # the run facet's key in the events
FACET_SCHEMA = "https://github.com/thrive-tracking-sync/thrive-tracking-sync/blob/main/docs/operations.md#lineage"


@dataclass(frozen=True)
class SyncLineage:
    """What one sync instance touched: its category, its org's object, and where ``thrive_db`` is."""

    category: Category
    salesforce_conn_id: str
    sobject: str
    namespace: str  # postgres://host:port of thrive_db
    database: str

    def inputs(self) -> list[tuple[str, str]]:
        """(namespace, name) of each table read: the category's source table, the accounts, the staging table."""
        tables = (f"thrive.{SOURCE_TABLE[self.category]}", "thrive.accounts", "thrive_sync.staged_events")
        return [(self.namespace, f"{self.database}.{table}") for table in tables]

    def outputs(self) -> list[tuple[str, str]]:
        """The org's object, and the tracking log the failures go to."""
        return [(f"{SALESFORCE_SCHEME}://{self.salesforce_conn_id}", self.sobject),
                (self.namespace, f"{self.database}.thrive_sync.tracking_log")]  # fmt: skip


def counts_facet(totals: Mapping[str, int], failed_by: Mapping[str, int], part: str, dry_run: bool) -> dict[str, Any]:
    """The run facet's fields: the instance's counts (extracted, written, failed by reason, skipped)."""
    return {
        "category_part": part,
        "dryRun": dry_run,
        "extracted": int(totals.get("extracted", 0)),
        "written": int(totals.get("written", 0)),
        "failed": int(totals.get("failed", 0)),
        "skipped": int(totals.get("skipped", 0)),
        "unchanged": int(totals.get("unchanged", 0)),
        "failedByReason": {reason: int(n) for reason, n in sorted(failed_by.items())},
    }


def provider_installed() -> bool:
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage  # noqa: F401
    except ImportError:
        return False
    return True


def thrive_db_location(thrive_conn_id: str) -> tuple[str, str]:
    """``thrive_db``'s namespace (``postgres://host:port``) and database, as the Postgres provider
    names them for its own lineage. Needs the provider."""
    from thrive_sync.hooks.thrive_store import ThriveStoreHook

    hook = ThriveStoreHook(thrive_conn_id)
    info = hook.get_openlineage_database_info(hook.get_connection(thrive_conn_id))
    return f"{info.scheme}://{info.authority}", info.database


def operator_lineage(lineage: SyncLineage, counts: dict[str, Any] | None, dry_run: bool = False) -> Any:
    """The provider's ``OperatorLineage`` of one sync instance, or ``None`` when the provider is not
    installed. A dry run writes nothing to the org: the object is not among its outputs."""
    if not provider_installed():
        return None
    from airflow.providers.common.compat.openlineage.facet import (
        Dataset,
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage

    inputs = [Dataset(namespace=ns, name=name) for ns, name in lineage.inputs()]
    rows = (counts["written"], counts["failed"]) if counts else (None, None)  # to the org, to the tracking log
    outputs = [
        OutputDataset(namespace=ns, name=name, outputFacets={} if n is None else {
            "outputStatistics": OutputStatisticsOutputDatasetFacet(rowCount=n)})
        for (ns, name), n in zip(lineage.outputs(), rows, strict=True)
    ]  # fmt: skip
    if dry_run:
        outputs = outputs[1:]  # the org's object comes first
    run_facets = {COUNTS_FACET: _counts_run_facet(counts)} if counts else {}
    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets=run_facets)


def _counts_run_facet(counts: dict[str, Any]) -> Any:
    """A custom run facet (an attrs class, as the OpenLineage client serialises them), made when needed."""
    from attrs import define, field
    from openlineage.client.facet_v2 import RunFacet

    @define
    class ThriveSyncCountsRunFacet(RunFacet):
        category_part: str = ""
        dryRun: bool = False  # noqa: N815 - OpenLineage facets name fields in camelCase
        extracted: int = 0
        written: int = 0
        failed: int = 0
        skipped: int = 0
        unchanged: int = 0
        failedByReason: dict[str, int] = field(factory=dict)  # noqa: N815

        @staticmethod
        def _get_schema() -> str:
            return FACET_SCHEMA

    return ThriveSyncCountsRunFacet(**counts)
