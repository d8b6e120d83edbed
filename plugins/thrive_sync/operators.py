"""``ValidateAndMapOperator``: one category's staged events -> Salesforce, failures -> tracking log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from itertools import groupby
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from thrive_sync.core.catalog import Category
from thrive_sync.core.mapping import Mapping, load_mapping
from thrive_sync.core.pipeline import EventPipeline
from thrive_sync.core.tally import RunTally
from thrive_sync.errors import ConservationError
from thrive_sync.hooks.salesforce import SalesforceApiHook
from thrive_sync.hooks.thrive_store import AccountSettings, CategoryStore, ThriveStoreHook
from thrive_sync.links import TrackingLogLink
from thrive_sync.preflight import check_org
from thrive_sync.settings import DEFAULT_MAPPING, DEFAULT_SALESFORCE_CONN_ID, THRIVE_DB_CONN_ID
from thrive_sync.sf_writer import SalesforceWriter
from thrive_sync.sync import OrgSync, WriterOptions
from thrive_sync.tracking_log import TrackingLog

if TYPE_CHECKING:
    from airflow.sdk import Context


class ValidateAndMapOperator(BaseOperator):
    """Validate one category's staged events, write the good ones to Salesforce, log the rest.

    Before any row, each Salesforce connection its open accounts use is checked (:mod:`.preflight`).
    Rows stream from ``thrive_sync.staged_events``, grouped by the org their account writes to
    (:class:`~thrive_sync.sync.OrgSync`). Per account, extracted / written / failed / skipped go to
    ``thrive_sync.sync_runs`` and must add up to what was staged. XCom gets those counts and the
    first ``xcom_log_cap`` log rows.

    :param category: one of :class:`~thrive_sync.core.catalog.Category`'s values.
    :param dry_run: validate and map, write nothing; ``written`` then counts what would be written.
    :param thrive_conn_id: the PostgreSQL connection holding ``thrive`` and ``thrive_sync``.
    :param mapping_path: the mapping file (default ``include/mapping/thrive_activity.yaml``).
    :param bulk_threshold: records per org below which sObject Collections are used, above Bulk 2.0.
    :param bulk_job_rows: records per Bulk 2.0 job: memory holds about three jobs' CSV (~250 bytes a
        record), and each job costs about eight API calls.
    :param xcom_log_cap: how many log rows to push to XCom at most.
    """

    template_fields: Sequence[str] = ("dry_run",)
    ui_color = "#e8f4fd"
    operator_extra_links = (TrackingLogLink(),)

    def __init__(
        self,
        *,
        category: str,
        dry_run: bool | str = False,
        thrive_conn_id: str = THRIVE_DB_CONN_ID,
        mapping_path: str | None = None,
        bulk_threshold: int = 2_000,
        bulk_job_rows: int = 25_000,
        xcom_log_cap: int = 100,
        poll_seconds: float = 2.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.category = category
        self.dry_run = dry_run
        self.thrive_conn_id = thrive_conn_id
        self.mapping_path = mapping_path
        self.writer_options = WriterOptions(bulk_threshold, bulk_job_rows, poll_seconds)
        self.xcom_log_cap = xcom_log_cap

    def execute(self, context: Context) -> dict[str, Any]:
        category = Category(self.category)
        dry_run = self.dry_run in (True, "True", "true", "1")
        thrive = ThriveStoreHook(self.thrive_conn_id)
        thrive.check_defined()
        mapping = load_mapping(self.mapping_path or DEFAULT_MAPPING)
        started_at = datetime.now(UTC)
        tally = RunTally()
        with thrive.category_session(context["run_id"], category) as store:
            accounts = thrive.account_settings()
            hooks = self._checked_orgs(accounts, category, mapping)
            log_rows = TrackingLog(store, self.xcom_log_cap)
            log_rows.clear()
            self._stream(store, accounts, hooks, mapping, tally, log_rows, dry_run)
            log_rows.flush()
            self._save_counts(store, tally, context, dry_run, started_at)
        self.log.info("%s: %s%s", category.value, tally.totals(), " (dry run: nothing written)" if dry_run else "")
        return {
            "category": category.value,
            "dry_run": dry_run,
            "accounts": tally.by_account(),
            "log_rows": log_rows.sample,
            "log_rows_total": tally.failed_total,
            "log_rows_truncated": tally.failed_total > len(log_rows.sample),
        }

    def _checked_orgs(
        self, accounts: dict[str, AccountSettings], category: Category, mapping: Mapping
    ) -> dict[str, SalesforceApiHook]:
        """A hook per Salesforce connection that an account open to ``category`` uses, each checked."""
        conn_ids = {a.salesforce_conn_id for a in accounts.values() if not a.gates.closed_gate(category)}
        hooks = {conn_id: SalesforceApiHook(conn_id) for conn_id in sorted(conn_ids)}
        for conn_id, hook in hooks.items():
            check_org(hook, mapping)
            self.log.info("%s: %s and its %d mapped fields are there", conn_id, mapping.object, len(mapping.fields))
        return hooks

    def _stream(
        self,
        store: CategoryStore,
        accounts: dict[str, AccountSettings],
        hooks: dict[str, SalesforceApiHook],
        mapping: Mapping,
        tally: RunTally,
        log_rows: TrackingLog,
        dry_run: bool,
    ) -> None:
        """Every staged row of the category, org by org (rows come ordered by account)."""
        orgs: dict[str, OrgSync] = {}

        def org_of(account_id: str) -> str:
            settings = accounts.get(account_id)
            return settings.salesforce_conn_id if settings else DEFAULT_SALESFORCE_CONN_ID

        for conn_id, events in groupby(store.staged_events(), key=lambda e: org_of(e.account_id)):
            if conn_id not in orgs:  # an org's accounts may come in more than one run of rows
                gates = {a: s.gates.closed_gate(store.category) for a, s in accounts.items() if org_of(a) == conn_id}
                hook = hooks.get(conn_id) or SalesforceApiHook(conn_id)
                writer = None if dry_run else SalesforceWriter(
                    hook, mapping.object, mapping.external_id_field, **asdict(self.writer_options))  # fmt: skip
                pipeline = EventPipeline(store.category, mapping, gates, tally)
                orgs[conn_id] = OrgSync(hook, pipeline, log_rows, list(mapping.fields), writer)
                orgs[conn_id].prefetch(store, [a for a, gate in gates.items() if not gate])
            orgs[conn_id].sync(events)

    def _save_counts(
        self, store: CategoryStore, tally: RunTally, context: Context, dry_run: bool, started_at: datetime
    ) -> None:
        """Save each account's counts, then fail loudly unless they add up to what was staged."""
        staged = store.staged_counts()
        problems = tally.conservation_problems(staged)  # also gives staged-only accounts a (zero) row
        run = {
            "window_start": context.get("data_interval_start"),
            "window_end": context.get("data_interval_end"),
            "dry_run": dry_run,
            "started_at": started_at,
        }
        for account_id, counts in sorted(tally.accounts.items()):
            store.save_counts(account_id, counts, run)
        if problems:
            raise ConservationError(f"{store.category.value}: counts do not add up: " + "; ".join(problems))
