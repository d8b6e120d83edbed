"""The write path of one validate-and-map task: its org checked, its rows streamed, its counts saved.

:class:`CategorySync` runs one part of one category for one DAG run (the rows of the accounts whose
Salesforce connection is the part's, or one shard of them: :mod:`thrive_sync.core.parts`);
:class:`OrgSync` the rows of the accounts that share one org. Staged rows stream in a batch at a time; the core's
``EventPipeline`` sorts each row into a record, a failure or a skip, asking the org about member
Ids through the ``MemberIdMatcher``; failures go to the tracking log, records to the
``SalesforceWriter``, and what the org refuses comes back as log rows. Nothing holds more than a
batch of rows, a few Bulk jobs' CSV and the member answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import asdict, replace
from datetime import datetime
from itertools import chain, groupby, islice
from typing import Any

from thrive_sync.allowance import OrgAllowance
from thrive_sync.core.catalog import Category
from thrive_sync.core.gates import TRACKING_DISABLED
from thrive_sync.core.mapping import Mapping as RecordMapping
from thrive_sync.core.members import MemberIdMatcher, MemberMatch
from thrive_sync.core.pipeline import EventPipeline
from thrive_sync.core.reasons import DEFERRED_QUOTA, REJECTED
from thrive_sync.core.tally import RunTally, StagedCounts
from thrive_sync.core.validation import StagedEvent, parse_external_id
from thrive_sync.errors import ConfigurationError, ConservationError, DailyLimitReached, LoginRefused
from thrive_sync.hooks.salesforce import SalesforceApiHook
from thrive_sync.hooks.thrive_store import FETCH_ROWS, AccountSettings, CategoryStore
from thrive_sync.preflight import check_org
from thrive_sync.settings import DEFAULT_SALESFORCE_CONN_ID, WriterOptions
from thrive_sync.sf_writer import SalesforceWriter
from thrive_sync.tracking_log import TrackingLog

log = logging.getLogger(__name__)
REFUSED_MID_RUN = "the org refused a call mid-run: its daily allowance is spent"


class CategorySync:
    """One part of a category of one DAG run: every staged row to Salesforce or the log, then the counts.

    ``accounts``: the settings of the accounts whose connection is the part's (``store.part``).
    """

    def __init__(
        self,
        store: CategoryStore,
        accounts: dict[str, AccountSettings],
        mapping: RecordMapping,
        options: WriterOptions,
        *,
        dry_run: bool,
        log_sample: int,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.mapping = mapping
        self.options = options
        self.dry_run = dry_run
        self.tally = RunTally()
        self.log_rows = TrackingLog(store, log_sample)
        self.hooks: dict[str, SalesforceApiHook] = {}
        self.allowances: dict[str, OrgAllowance] = {}  # per org written to: its limits and deferred rows
        self.staged: dict[str, StagedCounts] = {}
        self.spent: dict[str, DailyLimitReached] = {}  # orgs whose allowance ran out before the first row
        self.orgs: dict[str, OrgSync] = {}

    def check_orgs(self) -> None:
        """Before any row: the part's Salesforce connection is checked, when an account open to the
        category has rows in the part (an org with none that day is not asked anything)."""
        category = self.store.category
        open_accounts = sorted(a for a in self.store.account_ids if not self._gate(a, category))
        conn_id = self.store.part.conn_id
        if not open_accounts:
            log.info("%s: no account open to %s has rows in this part: not checked", conn_id, category.value)
            return
        self.hooks[conn_id] = hook = SalesforceApiHook(conn_id)
        try:
            hook.check_defined()
        except ConfigurationError as err:
            raise ConfigurationError(f"account(s) {', '.join(open_accounts)} name {conn_id!r}: {err}") from None
        with self.store.login_turn(conn_id):  # the org's other instances of the run wait for this answer
            self._check_login_once(hook)
        if conn_id not in self.spent:
            fields = len(self.mapping.fields)
            log.info("%s: %s and its %d mapped fields are there", conn_id, self.mapping.object, fields)

    def wait_for_other_runs(self, window_start: datetime) -> None:
        """Runs of one day (a scheduled run and a backfill, two backfills) take turns per part: the
        second waits for the first to save, then leaves alone what the first wrote after the second's
        extract, instead of sending it again. A dry run writes nothing, and does not wait."""
        part = self.store.part
        day_key = f"{self.store.category.value} {window_start.isoformat()} {part.conn_id} {part.shard}/{part.shards}"
        if self.dry_run:
            return
        started = time.perf_counter()
        if not self.store.take_day(day_key, wait=False):
            log.warning("another run of this day is syncing %s to %s: waiting for it to save", day_key, part.label)
            self.store.take_day(day_key, wait=True)
            log.warning("waited %.1f s for the other run", time.perf_counter() - started)
        settled = self.store.settle_overlap()  # also when the other run saved between this one's extract and now
        if settled:
            log.warning("%d rows another run of this day wrote since this run's extract are left alone (unchanged)",
                        settled)  # fmt: skip

    def _check_login_once(self, hook: SalesforceApiHook) -> None:
        """The org's check, unless it refused these very credentials earlier in the run: then this
        instance fails at once without trying them (a lockout counts refused logins in a row)."""
        digest = hook.credentials_digest()
        earlier = self.store.refused_login(hook.conn_id, digest)
        if earlier:
            raise LoginRefused(f"{earlier} [refused earlier in this run: not tried again]")
        try:
            self._refused_or_done(hook.conn_id, lambda: check_org(hook, self.mapping))
        except LoginRefused as refused:
            self.store.save_refused_login(hook.conn_id, digest, str(refused))
            raise

    def sync(self) -> None:
        """Every staged row of the category, org by org (rows come ordered by account)."""
        self.log_rows.clear()
        self.staged = self.store.staged_counts()
        for account_id, reason, count in self.store.log_standing():  # failures nothing could heal: not sent
            self.tally.failed(account_id, reason, count)
        if not self.dry_run:
            self._read_allowances()
        for conn_id, events in groupby(self._stream(), key=lambda e: self._org_of(e.account_id)):
            if conn_id not in self.orgs:  # an org's accounts may come in more than one run of rows
                self.orgs[conn_id] = self._org_sync(conn_id)
            self.orgs[conn_id].sync(events)
        self.log_rows.flush()
        for conn_id, allowance in self.allowances.items():
            allowance.read_after(self.hooks[conn_id])

    def save_counts(self, run: dict[str, Any]) -> None:
        """Each account's counts (``run``: window, dry_run, started_at), then fail unless they add up.

        When they add up and the run wrote, the ledger takes the run's outcomes in the same
        transaction: a task killed before the commit leaves neither, and the next run does the rows again.
        """
        self.store.analyze_log()
        staged = self.staged or self.store.staged_counts()
        self.tally.include(staged)  # unchanged rows, and an account whose every row vanished (zeros)
        gates = {a: s.gates.closed_gate(self.store.category) for a, s in self.accounts.items()}
        self.tally.healed({a: n for a, n in self.store.healed_counts().items() if not gates.get(a)})
        problems = self.tally.conservation_problems(staged)
        with self.store.transaction():
            for account_id, counts in sorted(self.tally.accounts.items()):
                self.store.save_counts(account_id, counts, run)
            for conn_id, allowance in self.allowances.items():
                allowance.written = sum(c.written for a, c in self.tally.accounts.items() if self._org_of(a) == conn_id)
                self.store.save_org_usage(allowance)
            if not problems and not self.dry_run:
                self.store.save_ledger(gates, self.mapping.leave_out)
            if not problems:
                self.store.mark_part_saved()
                if not self.dry_run:  # once the category's last part has saved (save_considered_days.sql)
                    self.store.save_considered_days()
        if problems:
            raise ConservationError(f"{self.store.category.value}: counts do not add up: " + "; ".join(problems))

    def summary(self) -> dict[str, Any]:
        """The task's XCom: counts per account and the first log rows."""
        return {
            "category": self.store.category.value,
            "org": self.store.part.conn_id,
            "shard": f"{self.store.part.shard + 1}/{self.store.part.shards}",
            "dry_run": self.dry_run,
            "accounts": self.tally.by_account(),
            "log_rows": self.log_rows.sample,
            "log_rows_total": self.tally.failed_total,
            "log_rows_truncated": self.tally.failed_total > len(self.log_rows.sample),
        }

    def _read_allowances(self) -> None:
        """Each org's allowance, before any row: how much of it the task's rows may spend."""
        for conn_id in sorted({self._org_of(a) for a in self.staged}):
            rows = sum(self.staged[a].streamed for a in self._open_accounts(conn_id) if a in self.staged)
            if rows:
                hook = self.hooks.setdefault(conn_id, SalesforceApiHook(conn_id))
                shards = self.store.part.shards
                self.allowances[conn_id] = OrgAllowance.read(hook, rows, self.spent.get(conn_id), shards)

    def _stream(self) -> Iterator[StagedEvent]:
        """The staged rows by account; when an org may not have room for all of them, the rows carried
        from earlier runs (deferred, or failed and healing) first: what waited longest goes first."""
        tight = any(
            a.budget.rows_that_fit(a.rows, self.options.bulk_threshold, self.options.bulk_job_rows) < a.rows
            for a in self.allowances.values()
        )
        by_parent = self.options.group_by_parent
        if not tight or not any(counts.retried for counts in self.staged.values()):
            return self.store.staged_events(by_parent=by_parent)
        carried, others = (self.store.staged_events(carried=c, by_parent=by_parent) for c in (True, False))
        return chain(carried, others)

    def _refused_or_done(self, conn_id: str, step: Callable[[], object]) -> None:
        """``step`` of getting ready to write to an org; a refusal for its daily allowance leaves the
        org no room (its rows are deferred) instead of failing the task."""
        try:
            step()
        except DailyLimitReached as spent:
            log.warning("%s: %s; its rows are deferred", conn_id, str(spent)[:300])
            self.spent[conn_id] = spent
            if conn_id in self.allowances:
                rows, shards = self.allowances[conn_id].rows, self.store.part.shards
                self.allowances[conn_id] = OrgAllowance.read(self.hooks[conn_id], rows, spent, shards)

    def _gate(self, account_id: str, category: Category) -> str | None:
        settings = self.accounts.get(account_id)
        return settings.gates.closed_gate(category) if settings else TRACKING_DISABLED  # as the pipeline skips it

    def _open_accounts(self, conn_id: str) -> list[str]:
        category = self.store.category
        return [a for a, s in self.accounts.items() if self._org_of(a) == conn_id and not s.gates.closed_gate(category)]

    def _org_of(self, account_id: str) -> str:
        settings = self.accounts.get(account_id)
        return settings.salesforce_conn_id if settings else DEFAULT_SALESFORCE_CONN_ID

    def _org_sync(self, conn_id: str) -> OrgSync:
        category = self.store.category
        gates = {a: s.gates.closed_gate(category) for a, s in self.accounts.items() if self._org_of(a) == conn_id}
        hook = self.hooks.setdefault(conn_id, SalesforceApiHook(conn_id))
        writer = None
        if not self.dry_run:
            options = asdict(self.options)
            parents = self.mapping.parent_fields if options.pop("group_by_parent") else ()
            writer = SalesforceWriter(
                hook,
                self.mapping.object,
                self.mapping.external_id_field,
                **options,
                job_ledger=self.store.job_ledger(conn_id),
                parent_fields=parents,
            )
            if conn_id not in self.spent:  # an org that refuses every call cannot abort anything either
                self._refused_or_done(conn_id, writer.abort_left_over)  # a killed try's jobs must not run beside
        open_accounts = [a for a, gate in gates.items() if not gate]
        pipeline = EventPipeline(category, self.mapping, gates, self.tally)
        org = OrgSync(hook, pipeline, self.log_rows, list(self.mapping.fields), writer, self.allowances.get(conn_id))
        if org.allowance is None or org.allowance.budget.calls != 0:  # no member lookups for rows that all wait
            self._refused_or_done(conn_id, lambda: org.prefetch(self.store, open_accounts))
            org.allowance = self.allowances.get(conn_id)  # a refusal meanwhile leaves it no room
        if org.allowance is not None:
            org.allowance.fit(org.matcher.queries, self.options.bulk_threshold, self.options.bulk_job_rows)
        return org


class OrgSync:
    """Rows of the accounts that share one Salesforce connection -> records, log rows and counts."""

    def __init__(
        self,
        hook: SalesforceApiHook,
        pipeline: EventPipeline,
        log_rows: TrackingLog,
        fields: Sequence[str],
        writer: SalesforceWriter | None,
        allowance: OrgAllowance | None = None,
    ) -> None:
        self.hook = hook
        self.allowance = allowance  # None: a dry run, nothing is budgeted
        self.pipeline = pipeline
        self.log_rows = log_rows
        self.fields = list(fields)
        self.writer = writer  # None: a dry run, nothing is sent
        self.matcher = MemberIdMatcher(hook.query_all, log_rows.store.member_store(hook.conn_id))
        self.lookup_seconds = 0.0

    @property
    def tally(self) -> RunTally:
        return self.pipeline.tally

    def prefetch(self, store: CategoryStore, account_ids: Sequence[str]) -> None:
        """Resolve the member Ids of the open accounts' rows before they stream (a few big SOQL bursts)."""
        started = time.perf_counter()
        with closing(store.distinct_member_ids(account_ids)) as member_ids:  # its cursor closes even if cut short
            self.matcher.prefetch(member_ids)
        self.lookup_seconds += time.perf_counter() - started

    def sync(self, events: Iterable[StagedEvent]) -> None:
        """Validate, map and write ``events``; refused records become log rows."""
        started = time.perf_counter()
        if self.allowance is not None:
            events = self.allowance.within_room(events, self.pipeline, self.log_rows)
        records = self._records(events)
        if self.writer is None:
            for _ in records:
                pass
        else:
            reported: set[str] = set()  # the failures already counted: a refusal mid-run must not count them twice
            try:
                for outcome in self.writer.write_rows(self.fields, records, only_failures=True):
                    reported.add(outcome.key)
                    account_id, event_id = parse_external_id(outcome.key)
                    reason = outcome.reason_code or REJECTED
                    self.tally.rejected(account_id, reason)
                    self.log_rows.rejected(account_id, event_id, reason, f"{outcome.error_code}: {outcome.message}")
            except DailyLimitReached as spent:
                self._defer_after_refusal(spent, records, reported)
        log.info(
            "%s: %.2f s in all; member lookups %.2f s (%d distinct Ids up front, %d from this run's cache, "
            "%d SOQL queries)",
            self.hook.conn_id,
            time.perf_counter() - started,
            self.lookup_seconds,
            self.matcher.prefetched,
            self.matcher.from_store,
            self.matcher.queries,
        )

    def _defer_after_refusal(
        self, spent: DailyLimitReached, records: Iterator[Sequence[Any]], reported: set[str]
    ) -> None:
        """The org's allowance ran out mid-run: the records whose outcome is unknown, those mapped and
        not yet taken, and every row after them are deferred; nothing more is sent to this org."""
        log.warning("%s: the org refused a call for its daily allowance; the rest is deferred: %s", self.hook.conn_id,
                    str(spent)[:300])  # fmt: skip
        if self.allowance is None:  # only a writer raises this, and a task that writes has an allowance
            raise spent
        self.allowance.room = self.allowance.sent  # the rows still to come are deferred, not let through
        self.allowance.budget = replace(self.allowance.budget, notes=(*self.allowance.budget.notes, REFUSED_MID_RUN))
        detail = f"not sent, or sent and not confirmed: {REFUSED_MID_RUN}; carried to the next runs"
        key_at = self.fields.index(self.writer.external_id_field)
        keys = chain((k for k in spent.unconfirmed if k not in reported), (record[key_at] for record in records))
        for key in keys:
            account_id, event_id = parse_external_id(key)
            self.tally.rejected(account_id, DEFERRED_QUOTA)
            self.log_rows.rejected(account_id, event_id, DEFERRED_QUOTA, detail)
            self.allowance.deferred += 1

    def _records(self, events: Iterable[StagedEvent]) -> Iterator[Sequence[Any]]:
        stream = iter(events)
        while batch := list(islice(stream, FETCH_ROWS)):
            result = self.pipeline.process(batch, self._resolve)
            self.log_rows.failed(result.failures)
            yield from result.records

    def _resolve(self, raw_ids: Iterable[str | None]) -> Mapping[str | None, MemberMatch]:
        started = time.perf_counter()
        try:
            return self.matcher.resolve(raw_ids)
        finally:
            self.lookup_seconds += time.perf_counter() - started
