"""The package's operators: ``ValidateAndMapOperator`` (the sync) and ``PurgeOldRecordsOperator`` (retention)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from thrive_sync.core.catalog import Category
from thrive_sync.core.mapping import load_mapping
from thrive_sync.core.parts import Part
from thrive_sync.core.retention import RETENTION_VARIABLE, RetentionQuery
from thrive_sync.lineage import SyncLineage, counts_facet, operator_lineage, provider_installed, thrive_db_location
from thrive_sync.links import TrackingLogLink
from thrive_sync.settings import DEFAULT_MAPPING, DEFAULT_SALESFORCE_CONN_ID, THRIVE_DB_CONN_ID, WriterOptions

if TYPE_CHECKING:
    from airflow.sdk import Context


def is_true(value: bool | str) -> bool:
    """A boolean param as a template renders it (``"{{ params.dry_run }}"`` becomes ``"True"``)."""
    return value in (True, "True", "true", "1")


class ValidateAndMapOperator(BaseOperator):
    """Validate one part of a category's staged events, write the good ones to Salesforce, log the rest.

    A part is the rows of the accounts whose Salesforce connection is ``salesforce_conn_id``, or shard
    ``shard`` of ``shards`` of them (:mod:`~thrive_sync.core.parts`): the DAG maps the operator over
    the parts its extract lists, so one org's trouble fails only its own instances. Before any row,
    the connection is checked (:mod:`~thrive_sync.preflight`). Rows stream from
    ``thrive_sync.staged_events`` (:class:`~thrive_sync.sync.CategorySync`). Per account,
    extracted / written / failed / skipped go to ``thrive_sync.sync_runs`` (the sum of the shards) and
    must add up to what was staged. XCom gets those counts and the first ``xcom_log_cap`` log rows.

    :param category: one of :class:`~thrive_sync.core.catalog.Category`'s values.
    :param salesforce_conn_id: the part's org: the accounts naming this connection (blank: the default).
    :param shard, shards: which shard of the org's rows, of how many (a hash of the Custom Member ID).
    :param dry_run: validate and map, write nothing; ``written`` then counts what would be written.
    :param thrive_conn_id: the PostgreSQL connection holding ``thrive`` and ``thrive_sync``.
    :param mapping_path: the mapping file (default ``include/mapping/thrive_activity.yaml``).
    :param bulk_threshold: records of one org below which sObject Collections are used, from there Bulk 2.0.
    :param bulk_job_rows: records per Bulk 2.0 job: memory holds about three jobs' CSV (~250 bytes a
        record), and each job costs about eight API calls.
    :param xcom_log_cap: how many log rows to push to XCom at most.
    :param poll_seconds: the longest wait between two looks at a running Bulk job.
    :param job_timeout_seconds: how long a Bulk job may take from its close to its end before it is
        aborted and the task fails (to be retried): waiting is outside the calls' retry budget.
    :param group_by_parent: send records ordered by the Contact or Lead they look up, a parent's
        records in one Bulk job (see ``WriterOptions``).
    """

    template_fields: Sequence[str] = ("dry_run",)
    ui_color = "#e8f4fd"
    operator_extra_links = (TrackingLogLink(),)
    # How the UI names a mapped instance: its org, and its shard when the org's day is split.
    PART_LABEL = (
        "{{ task.salesforce_conn_id }}{% if task.shards > 1 %} {{ task.shard + 1 }}/{{ task.shards }}{% endif %}"
    )

    def __init__(
        self,
        *,
        category: str,
        salesforce_conn_id: str = DEFAULT_SALESFORCE_CONN_ID,
        shard: int = 0,
        shards: int = 1,
        dry_run: bool | str = False,
        thrive_conn_id: str = THRIVE_DB_CONN_ID,
        mapping_path: str | None = None,
        bulk_threshold: int = WriterOptions.bulk_threshold,
        bulk_job_rows: int = WriterOptions.bulk_job_rows,
        xcom_log_cap: int = 100,
        poll_seconds: float = WriterOptions.poll_seconds,
        job_timeout_seconds: float = WriterOptions.job_timeout_seconds,
        group_by_parent: bool = WriterOptions.group_by_parent,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.category = category
        self.salesforce_conn_id = salesforce_conn_id
        self.shard = shard
        self.shards = shards
        self.dry_run = dry_run
        self.thrive_conn_id = thrive_conn_id
        self.mapping_path = mapping_path
        self.bulk_threshold = bulk_threshold
        self.bulk_job_rows = bulk_job_rows
        self.xcom_log_cap = xcom_log_cap
        self.poll_seconds = poll_seconds
        self.job_timeout_seconds = job_timeout_seconds
        self.group_by_parent = group_by_parent
        self._counts: dict[str, Any] | None = None  # for lineage, once the instance has counted

    def execute(self, context: Context) -> dict[str, Any]:
        # Deferred: the hooks bring psycopg, simple_salesforce and the providers' hooks, about a
        # third of a second on every parse of the DAG file, which needs only this class.
        from thrive_sync.hooks.thrive_store import ThriveStoreHook
        from thrive_sync.sync import CategorySync

        category = Category(self.category)
        part = Part(self.salesforce_conn_id, self.shard, self.shards)
        dry_run = is_true(self.dry_run)
        thrive = ThriveStoreHook(self.thrive_conn_id)
        thrive.check_defined()
        mapping = load_mapping(self.mapping_path or DEFAULT_MAPPING)
        options = WriterOptions(
            self.bulk_threshold, self.bulk_job_rows, self.poll_seconds, self.job_timeout_seconds, self.group_by_parent
        )
        started_at = datetime.now(UTC)
        settings = thrive.account_settings()
        with thrive.category_session(context["run_id"], category, part) as store:
            # The part's accounts as the extract found them, all of them in the part's org.
            accounts = {a: replace(settings[a], salesforce_conn_id=part.conn_id)
                        for a in store.account_ids if a in settings}  # fmt: skip
            run = CategorySync(store, accounts, mapping, options, dry_run=dry_run, log_sample=self.xcom_log_cap)
            run.check_orgs()
            run.wait_for_other_runs(context["data_interval_start"])
            run.sync()
            run.save_counts(
                {
                    "window_start": context.get("data_interval_start"),
                    "window_end": context.get("data_interval_end"),
                    "dry_run": dry_run,
                    "started_at": started_at,
                }
            )
        self.log.info("%s, %s: %s%s", category.value, part.label, run.tally.totals(),
                      " (dry run: nothing written)" if dry_run else "")  # fmt: skip
        self._counts = counts_facet(run.tally.totals(), run.tally.failed_by_reason(), part.label, dry_run)
        return run.summary()

    # OpenLineage (optional provider): the provider calls these; without it they return None.
    def get_openlineage_facets_on_start(self) -> Any:
        return self._lineage(None)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        return self._lineage(self._counts)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return self._lineage(self._counts)  # what it counted before it failed, if it got that far

    def _lineage(self, counts: dict[str, Any] | None) -> Any:
        if not provider_installed():
            return None
        sobject = load_mapping(self.mapping_path or DEFAULT_MAPPING).object
        namespace, database = thrive_db_location(self.thrive_conn_id)
        lineage = SyncLineage(Category(self.category), self.salesforce_conn_id, sobject, namespace, database)
        return operator_lineage(lineage, counts, dry_run=is_true(self.dry_run))


class PurgeOldRecordsOperator(BaseOperator):
    """Delete one category's Salesforce records older than ``retention_days``, through Bulk API 2.0
    delete jobs, in every org an account names; mark them ``purged`` in the event ledger so that no
    sync sends them again; save what it did per org in ``thrive_sync.retention_runs``
    (:mod:`~thrive_sync.retention`). Skipped while the category has no retention configured.

    :param category: one of :class:`~thrive_sync.core.catalog.Category`'s values.
    :param retention_days: keep this many days before the run's window ends; ``None``: retention off.
    :param dry_run: count what would be deleted, delete nothing.
    :param mapping_path, bulk_job_rows, poll_seconds, job_timeout_seconds: as the sync's; a delete
        job holds ``bulk_job_rows`` Ids.
    """

    template_fields: Sequence[str] = ("dry_run",)
    ui_color = "#fdecea"

    def __init__(
        self,
        *,
        category: str,
        retention_days: int | None,
        dry_run: bool | str = False,
        thrive_conn_id: str = THRIVE_DB_CONN_ID,
        mapping_path: str | None = None,
        bulk_job_rows: int = WriterOptions.bulk_job_rows,
        poll_seconds: float = WriterOptions.poll_seconds,
        job_timeout_seconds: float = WriterOptions.job_timeout_seconds,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.category = category
        self.retention_days = retention_days
        self.dry_run = dry_run
        self.thrive_conn_id = thrive_conn_id
        self.mapping_path = mapping_path
        self.options = WriterOptions(bulk_job_rows=bulk_job_rows, poll_seconds=poll_seconds,
                                     job_timeout_seconds=job_timeout_seconds)  # fmt: skip

    def execute(self, context: Context) -> dict[str, Any]:
        if self.retention_days is None:
            raise AirflowSkipException(f"retention is off for {self.category}: {RETENTION_VARIABLE} gives it no days")
        from thrive_sync.hooks.thrive_store import ThriveStoreHook  # deferred, as in ValidateAndMapOperator
        from thrive_sync.retention import purge_category

        store = ThriveStoreHook(self.thrive_conn_id)
        store.check_defined()
        store.check_tables()
        query = RetentionQuery.from_mapping(load_mapping(self.mapping_path or DEFAULT_MAPPING))
        run = {"run_id": context["run_id"], "window_end": context["data_interval_end"],
               "dry_run": is_true(self.dry_run)}  # fmt: skip
        return purge_category(store, query, Category(self.category), self.retention_days, run, self.options)
