"""``ValidateAndMapOperator``: one category's staged events -> Salesforce, failures -> tracking log.

One instance per category. It streams the run's staged rows from PostgreSQL with a server-side
cursor (never the whole day in memory, never through XCom), applies the vendor document's rules
(:mod:`thrive_sync.core.validation`, account gates, member-ID matching), maps each valid event through
the editable mapping file, and hands the records to :class:`~thrive_sync.sf_writer.SalesforceWriter`.
Every failure becomes a ``thrive_sync.tracking_log`` row with a reason code; per account it saves
extracted / written / failed / skipped to ``thrive_sync.sync_runs`` and checks that they add up.
XCom gets a summary and the log rows up to ``xcom_log_cap`` (then a count and a truncated flag).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from thrive_sync.links import TrackingLogLink
from thrive_sync.tracking_log import TrackingLog

if TYPE_CHECKING:
    from airflow.sdk import Context

FETCH_ROWS = 2_000


PREFLIGHT_LOGINS = 4  # fresh clients tried before a 401 counts as wrong credentials (0.5 + 1 + 2 s apart)


class ConservationError(RuntimeError):
    """extracted != written + failed + skipped for some account: a bug, never to pass silently."""


@dataclass
class AccountTally:
    extracted: int = 0
    written: int = 0
    skipped: int = 0
    truncated: int = 0
    skip_gate: str | None = None
    failed_by: Counter = field(default_factory=Counter)

    @property
    def failed(self) -> int:
        return sum(self.failed_by.values())


class ValidateAndMapOperator(BaseOperator):
    """Validate one category's staged events, write the good ones to Salesforce, log the rest.

    :param category: one of :class:`thrive_sync.core.catalog.Category`'s values.
    :param dry_run: validate and map, write nothing; ``written`` then counts what would be written.
    :param thrive_conn_id: the PostgreSQL connection holding ``thrive`` and ``thrive_sync``.
    :param mapping_path: the mapping file (default ``include/mapping/thrive_activity.yaml``).
    :param bulk_threshold: records per run below which sObject Collections are used, above Bulk 2.0.
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
        thrive_conn_id: str = "thrive_db",
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
        self.bulk_threshold = bulk_threshold
        self.bulk_job_rows = bulk_job_rows
        self.xcom_log_cap = xcom_log_cap
        self.poll_seconds = poll_seconds

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        from thrive_sync.core.catalog import Category
        from thrive_sync.core.gates import AccountGates
        from thrive_sync.core.mapping import DEFAULT_MAPPING, load_mapping
        from thrive_sync.preflight import THRIVE_DB, connection_exists, failing_fast
        from thrive_sync.sql import read_sql

        category = Category(self.category)
        dry_run = self.dry_run in (True, "True", "true", "1")
        with failing_fast():
            connection_exists(self.thrive_conn_id, THRIVE_DB)
            mapping = load_mapping(self.mapping_path or DEFAULT_MAPPING)
        run_id = context["run_id"]
        started_at = datetime.now(UTC)
        hook = PostgresHook(postgres_conn_id=self.thrive_conn_id)
        tallies: dict[str, AccountTally] = defaultdict(AccountTally)
        params = {"run_id": run_id, "category": category.value}

        with hook.get_conn() as read_conn, hook.get_conn() as write_conn:
            write_conn.autocommit = True
            with write_conn.cursor() as cur:
                cur.execute(read_sql("sync/account_settings.sql"))
                accounts = {row[0]: (row[1], AccountGates(row[0], *row[2:])) for row in cur}
            self._preflight({conn for conn, gates in accounts.values() if not gates.closed_gate(category)}, mapping)
            log = TrackingLog(write_conn, run_id, category.value, lambda a: tallies[a].failed_by, self.xcom_log_cap)
            log.clear()
            with read_conn.cursor(name=f"staged_{category.value}") as cursor:
                cursor.itersize = FETCH_ROWS
                cursor.execute(read_sql("sync/stream_staged.sql"), params)
                connections: dict[str, tuple[Any, Any]] = {}
                for conn_id, rows in _group_by_connection(cursor, accounts):
                    gates = {a: g.closed_gate(category) for a, (c, g) in accounts.items() if c == conn_id}
                    self._sync_connection(
                        conn_id, rows, gates, category, mapping, dry_run, tallies, log, read_conn, connections
                    )
            log.flush()

            self._save_and_check(write_conn, params, context, tallies, dry_run, started_at)

        summary = {
            "category": category.value,
            "dry_run": dry_run,
            "accounts": {
                a: {
                    "extracted": t.extracted,
                    "written": t.written,
                    "failed": t.failed,
                    "skipped": t.skipped,
                    "skip_gate": t.skip_gate,
                    "truncated": t.truncated,
                    "failed_by": dict(t.failed_by),
                }
                for a, t in sorted(tallies.items())
            },
            "log_rows": log.sample,
            "log_rows_total": log.total,
            "log_rows_truncated": log.total > len(log.sample),
        }
        totals = Counter()
        for t in tallies.values():
            totals.update(extracted=t.extracted, written=t.written, failed=t.failed, skipped=t.skipped)
        self.log.info("%s: %s%s", category.value, dict(totals), " (dry run: nothing written)" if dry_run else "")
        return summary

    def _preflight(self, conn_ids: set[str], mapping) -> None:
        """Before any row: each Salesforce connection exists, logs in, and has the mapping's fields.

        A configuration mistake fails the task without retries (``AirflowFailException``), naming
        what to fix; an org that is briefly unreachable raises as usual, and Airflow retries.
        """
        from thrive_sync.preflight import (
            CredentialsRefused,
            check_org_accepts_mapping,
            connection_exists,
            failing_fast,
        )
        from thrive_sync.sf_connection import salesforce_hook

        for conn_id in sorted(conn_ids):
            with failing_fast():
                connection_exists(conn_id, "Salesforce")
                for attempt in range(PREFLIGHT_LOGINS):
                    try:
                        check_org_accepts_mapping(salesforce_hook(conn_id).get_conn(), conn_id, mapping)
                        break
                    except CredentialsRefused as err:
                        # A session can expire at any moment: only a refusal that outlasts fresh logins
                        # is a wrong credential.
                        if attempt + 1 == PREFLIGHT_LOGINS:
                            raise CredentialsRefused(f"{err} ({PREFLIGHT_LOGINS} attempts)") from None
                        time.sleep(0.5 * 2**attempt)
            self.log.info("%s: %s and its %d mapped fields are there", conn_id, mapping.object, len(mapping.fields))

    def _sync_connection(
        self, conn_id, rows, gates, category, mapping, dry_run, tallies, log: TrackingLog, read_conn, connections
    ) -> None:
        """Validate, map and write the rows of the accounts that share one Salesforce connection.

        ``gates``: each account's closed gate for this category (``None``: open); accounts missing
        from ``thrive.accounts`` are skipped as tracking disabled. ``read_conn``: the connection
        streaming the rows, for the member-ID query. ``connections``: ``{conn_id: (writer, matcher)}``
        for the task, filled here.
        """
        from thrive_sync.core.catalog import Category
        from thrive_sync.core.gates import TRACKING_DISABLED
        from thrive_sync.member_ids import MemberIdMatcher, RunMemberStore
        from thrive_sync.sf_connection import retry_policy, salesforce_hook
        from thrive_sync.sf_writer import SalesforceWriter
        from thrive_sync.sql import read_sql
        from thrive_sync.core.validation import (
            StagedEvent,
            external_id,
            parse_external_id,
            row_problem,
            social_problem,
        )

        started = time.perf_counter()
        if conn_id not in connections:  # its accounts may come in more than one run of rows: set up once
            writer = SalesforceWriter(
                lambda: salesforce_hook(conn_id).get_conn(),
                mapping.object,
                mapping.external_id_field,
                bulk_threshold=self.bulk_threshold,
                bulk_job_rows=self.bulk_job_rows,
                poll_seconds=self.poll_seconds,
                retry=retry_policy(conn_id),
            )
            matcher = MemberIdMatcher(writer.query_all, RunMemberStore(log.conn, log.run_id, conn_id))
            open_accounts = [account for account, gate in gates.items() if not gate]
            # Read on the streaming connection (already in its read transaction); the answers are saved
            # through the autocommit one, a statement at a time, so no lock outlives its INSERT (tasks of
            # the run save overlapping Ids side by side).
            with read_conn.cursor(name=f"members_{category.value}") as cur:
                cur.execute(
                    read_sql("sync/distinct_members.sql"),
                    {"run_id": log.run_id, "category": category.value, "account_ids": open_accounts},
                )
                matcher.prefetch(row[0] for row in cur)
            connections[conn_id] = (writer, matcher)
        writer, matcher = connections[conn_id]
        is_social = category == Category.SOCIAL_CRM
        category_name = category.value
        to_row = mapping.row_maker()
        matching_seconds = time.perf_counter() - started

        def candidates() -> Iterator[Sequence[Any]]:
            nonlocal matching_seconds
            for batch in _batches(rows, FETCH_ROWS):
                checked = []
                for row in batch:
                    event = StagedEvent(*row)
                    tally = tallies[event.account_id]
                    tally.extracted += 1
                    gate = gates.get(event.account_id, TRACKING_DISABLED)
                    if gate:
                        tally.skipped += 1
                        tally.skip_gate = gate
                        continue
                    problem = row_problem(category, event)
                    if problem:
                        log.failed(event, *problem)
                        continue
                    checked.append(event)
                asked = time.perf_counter()
                matches = matcher.resolve(e.custom_member_id for e in checked)
                matching_seconds += time.perf_counter() - asked
                for event in checked:
                    match = matches[event.custom_member_id]
                    if match.reason_code:
                        log.failed(event, match.reason_code, match.detail or "")
                        continue
                    if is_social:
                        problem = social_problem(event)
                        if problem:
                            log.failed(event, *problem)
                            continue
                    record, cut = to_row(
                        (  # mapping.SOURCE_ORDER
                            external_id(event.account_id, category_name, event.event_id),
                            event.activity_code,
                            event.activity_subcode,
                            event.occurred_at,
                            match.sf_id if match.sobject == "Contact" else None,
                            match.sf_id if match.sobject == "Lead" else None,
                            category_name,
                            event.account_id,
                            event.message_id,
                            event.message_name,
                            event.detail,
                        )
                    )
                    tally = tallies[event.account_id]
                    if cut:
                        tally.truncated += len(cut)
                    tally.written += 1
                    if not dry_run:
                        yield record

        if dry_run:
            for _ in candidates():
                pass
            return
        # Every record sent counts as written (in candidates) until the writer says otherwise.
        for outcome in writer.write_rows(list(mapping.fields), candidates(), only_failures=True):
            account_id, event_id = parse_external_id(outcome.key)
            tallies[account_id].written -= 1
            log.rejected(
                account_id, event_id, outcome.reason_code or "REJECTED", f"{outcome.error_code}: {outcome.message}"
            )
        self.log.info(
            "%s: %.2f s in all; member lookups %.2f s (%d distinct Ids up front, %d from this run's cache, "
            "%d SOQL queries)",
            conn_id,
            time.perf_counter() - started,
            matching_seconds,
            matcher.prefetched,
            matcher.from_store,
            matcher.queries,
        )

    def _save_and_check(self, conn, params, context, tallies, dry_run, started_at) -> None:
        """Save each account's counts and fail loudly unless extracted = written + failed + skipped."""
        from thrive_sync.sql import read_sql

        with conn.cursor() as cur:
            cur.execute(read_sql("sync/staged_counts.sql"), params)
            staged = dict(cur.fetchall())
            broken = []
            for account_id in sorted(set(staged) | set(tallies)):
                t = tallies[account_id]
                cur.execute(
                    read_sql("sync/save_counts.sql"),
                    {
                        **params,
                        "account_id": account_id,
                        "window_start": context.get("data_interval_start"),
                        "window_end": context.get("data_interval_end"),
                        "extracted": t.extracted,
                        "written": t.written,
                        "failed": t.failed,
                        "skipped": t.skipped,
                        "dry_run": dry_run,
                        "started_at": started_at,
                        "skip_gate": t.skip_gate,
                        "truncated": t.truncated,
                    },
                )
                if not (staged.get(account_id, 0) == t.extracted == t.written + t.failed + t.skipped):
                    broken.append(
                        f"{account_id}: staged {staged.get(account_id, 0)}, extracted {t.extracted}, "
                        f"written {t.written} + failed {t.failed} + skipped {t.skipped}"
                    )
        if broken:
            raise ConservationError(f"{params['category']}: counts do not add up: " + "; ".join(broken))


def _group_by_connection(cursor: Any, accounts: dict[str, tuple[str, Any]]) -> Iterator[tuple[str, Iterator[tuple]]]:
    """``(salesforce_conn_id, rows)`` runs from a cursor ordered by account (first column)."""
    from itertools import groupby

    def connection(row: tuple) -> str:
        settings = accounts.get(row[0])
        return settings[0] if settings else "salesforce_default"

    yield from groupby(cursor, key=connection)


def _batches(rows: Iterator[tuple], size: int) -> Iterator[list[tuple]]:
    batch: list[tuple] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
