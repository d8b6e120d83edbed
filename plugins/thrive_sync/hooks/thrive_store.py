"""``ThriveStoreHook``: every query the package makes of the ``thrive_db`` PostgreSQL.

The SQL lives in ``include/sql/``; this hook runs it and turns rows into the core's types. A
validate-and-map task works through a :class:`CategoryStore`: two connections in autocommit, one
reading the run's staged rows a page at a time, the other for everything the task writes, a
statement at a time. No transaction stays open while the writer waits on Salesforce (minutes, with a
real org's Bulk jobs): an idle-in-transaction session holds back vacuum and trips
``idle_in_transaction_session_timeout``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.postgres.hooks.postgres import PostgresHook

from thrive_sync.core.catalog import Category
from thrive_sync.core.gates import AccountGates
from thrive_sync.core.org_people import OrgAnswer
from thrive_sync.core.parts import Part
from thrive_sync.core.pipeline import Failure
from thrive_sync.core.tally import AccountCounts, StagedCounts
from thrive_sync.core.validation import StagedEvent
from thrive_sync.errors import ConfigurationError
from thrive_sync.hooks import connection_must_exist
from thrive_sync.settings import DEFAULT_SALESFORCE_CONN_ID, SETUP_DAG_ID, THRIVE_DB_CONN_ID, THRIVE_DB_PURPOSE
from thrive_sync.sql import read_sql

if TYPE_CHECKING:  # allowance.py reads FETCH_ROWS from here
    from thrive_sync.allowance import OrgAllowance

T = TypeVar("T")
FETCH_ROWS = 2_000  # rows per page of staged rows, and per round trip of a cursor
FIRST_EVENT_ID = -(2**63)  # the smallest bigint: where the first page of staged rows starts
STREAM_APPLICATION_NAME = "thrive_sync stream"  # the reading connection, as pg_stat_activity shows it
WRITE_APPLICATION_NAME = "thrive_sync write"  # the writing one; both followed by the category and the part


@dataclass(frozen=True)
class AccountSettings:
    """One ``thrive.accounts`` row as a sync task needs it."""

    salesforce_conn_id: str
    gates: AccountGates


def execute(conn: Any, sql_file: str, params: dict[str, Any]) -> list[tuple]:
    """Run ``include/sql/<sql_file>`` on an open psycopg connection; its rows, if it returns any."""
    with conn.cursor() as cur:
        cur.execute(read_sql(sql_file), params)
        return cur.fetchall() if cur.description else []


class ThriveStoreHook(PostgresHook):
    """The ``thrive`` source tables and the package's ``thrive_sync`` tables."""

    hook_name = "Thrive tracking store"

    def __init__(self, postgres_conn_id: str = THRIVE_DB_CONN_ID, **kwargs: Any) -> None:
        super().__init__(postgres_conn_id=postgres_conn_id, **kwargs)

    def check_defined(self) -> None:
        connection_must_exist(self.postgres_conn_id, THRIVE_DB_PURPOSE)

    def check_tables(self) -> None:
        """Fail, saying what to run, when the database lacks a table of the package (before any row)."""
        missing = [row[0] for row in self.fetch("sync/missing_tables.sql")]
        if missing:
            raise ConfigurationError(
                f"the database of connection {self.postgres_conn_id!r} lacks the package's table(s) "
                f"{', '.join(missing)}: trigger the DAG {SETUP_DAG_ID} once (after an upgrade too), "
                "see docs/operations.md, First deployment"
            )

    def fetch(self, sql_file: str, params: dict[str, Any] | None = None) -> list[tuple]:
        return self.get_records(read_sql(sql_file), parameters=params or {})

    def account_settings(self) -> dict[str, AccountSettings]:
        """Each account's Salesforce connection and gates, by account id."""
        rows = self.fetch("sync/account_settings.sql", {"default_conn_id": DEFAULT_SALESFORCE_CONN_ID})
        return {row[0]: AccountSettings(row[1], AccountGates(row[0], *row[2:])) for row in rows}

    def salesforce_connections(self) -> list[str]:
        """Every Salesforce connection an account names (``salesforce_default`` when none does)."""
        return sorted({s.salesforce_conn_id for s in self.account_settings().values()} or {DEFAULT_SALESFORCE_CONN_ID})

    def mark_purged(self, run_id: str, category: Category, keys: Sequence[tuple[str, int, datetime]]) -> int:
        """Retention: the ledger rows of these deleted records (account, event, time) marked purged; how many."""
        accounts, events, times = (list(column) for column in zip(*keys, strict=True))
        params = {"run_id": run_id, "category": category.value, "account_ids": accounts, "event_ids": events,
                  "occurred_at": times, "first_at": min(times), "last_at": max(times)}  # fmt: skip
        return self.fetch("retention/mark_purged.sql", params)[0][0]

    def save_retention_run(self, row: dict[str, Any]) -> None:
        self.run(read_sql("retention/save_run.sql"), parameters=row)

    def org_usage(self, run_id: str) -> list[tuple]:
        return self.fetch("sync/org_usage_report.sql", {"run_id": run_id})

    def part_states(self, run_id: str) -> list[tuple]:
        return self.fetch("sync/part_states.sql", {"run_id": run_id})

    def run_counts(self, run_id: str) -> list[tuple]:
        return self.fetch("sync/run_report.sql", {"run_id": run_id})

    def failures_by_reason(self, run_id: str) -> list[tuple]:
        return self.fetch("sync/failures_by_reason.sql", {"run_id": run_id})

    def org_figures(self, run_id: str, window_start: datetime, categories: Sequence[str]) -> list[tuple]:
        """Per org and category: the run's rows past the gates and failed, and the day's written records."""
        return self.fetch("health/org_figures.sql",
                          {"run_id": run_id, "window_start": window_start, "categories": list(categories)})  # fmt: skip

    def org_history(self, window_start: datetime, categories: Sequence[str], days: int) -> list[tuple]:
        """Per org and category: the written counts of the ``days`` days synced before, newest first."""
        return self.fetch("health/org_history.sql",
                          {"window_start": window_start, "categories": list(categories), "days": days})  # fmt: skip

    @contextmanager
    def org_health(self, conn_id: str) -> Iterator[OrgHealthRecord]:
        """The org's health as the latest report left it, held for this report alone until the block
        ends (then what it saved commits): two reports at once would both alert on one change."""
        with self.get_conn() as conn:
            execute(conn, "health/lock_org.sql", {"conn_id": conn_id})
            rows = execute(conn, "health/org_level.sql", {"conn_id": conn_id})
            yield OrgHealthRecord(conn, conn_id, *(rows[0] if rows else (None, None, None)))

    def ledger_backlog(self, retry_from: datetime, window_end: datetime) -> list[tuple]:
        return self.fetch("sync/ledger_backlog.sql", {"retry_from": retry_from, "window_end": window_end})

    def ensure_ledger_partitions(self, first_day: date, last_day: date) -> int:
        """The event ledger's partitions of these days (both included); how many were made."""
        return self.fetch("sync/ensure_ledger_partitions.sql", {"first_day": first_day, "last_day": last_day})[0][0]

    def drop_ledger_partitions(self, before_day: date) -> int:
        """Retention: drop the ledger's days before ``before_day``; how many went."""
        return self.fetch("sync/drop_ledger_partitions.sql", {"before_day": before_day})[0][0]

    def clear_staging(self, run_id: str) -> None:
        """Drop the run's staged rows and member answers (they have served once the syncs ended)."""
        self.run(read_sql("sync/clear_staging.sql"), parameters={"run_id": run_id}, split_statements=True)

    @contextmanager
    def category_session(self, run_id: str, category: Category, part: Part) -> Iterator[CategoryStore]:
        """The two connections of one validate-and-map task (one instance: ``part`` of the category)."""
        with self.get_conn() as read_conn, self.get_conn() as write_conn:
            read_conn.autocommit = write_conn.autocommit = True
            for conn, name in ((read_conn, STREAM_APPLICATION_NAME), (write_conn, WRITE_APPLICATION_NAME)):
                execute(conn, "sync/name_connection.sql", {"name": f"{name} {category.value} {part.label}"[:63]})
            yield CategoryStore(read_conn, write_conn, run_id, category, part)


@dataclass
class OrgHealthRecord:
    """One org's row of ``thrive_sync.org_health``, read and written in one locked transaction."""

    conn: Any
    conn_id: str
    level: str | None  # ok | warning | critical; None: never judged
    said: str | None  # the level the last alert announced
    window_start: datetime | None  # the day it was judged on

    def save(self, level: str, reasons: Sequence[str], run: dict[str, Any], said: str | None) -> None:
        """``run``: run_id and window_start of the report's run; ``said``: the level an alert just announced."""
        params = {"conn_id": self.conn_id, "level": level, "reasons": "\n".join(reasons) or None, "said": said}
        execute(self.conn, "health/save_org_health.sql", {**params, **run})


class CategoryStore:
    """One task's reads and writes of ``thrive_sync``: staged rows, member answers, log, counts; of its
    part of the category (:class:`~thrive_sync.core.parts.Part`): every statement about the run's
    rows is limited to the part's accounts and shard."""

    def __init__(self, read_conn: Any, write_conn: Any, run_id: str, category: Category, part: Part) -> None:
        self.read_conn = read_conn
        self.write_conn = write_conn
        self.run_id = run_id
        self.category = category
        self.part = part
        base = {"run_id": run_id, "category": category.value}
        org = {"conn_id": part.conn_id, "default_conn_id": DEFAULT_SALESFORCE_CONN_ID}
        accounts = execute(write_conn, "sync/part_accounts.sql", {**base, **org})
        self.account_ids = [row[0] for row in accounts]
        self.params = {**base, "account_ids": self.account_ids, "shard": part.shard, "shards": part.shards}

    def execute(self, sql_file: str, params: dict[str, Any]) -> list[tuple]:
        return execute(self.write_conn, sql_file, params)

    def staged_events(self, carried: bool | None = None, *, by_parent: bool = False) -> Iterator[StagedEvent]:
        """The category's staged rows, ordered by account, never the day in memory; ``carried``: only
        the rows carried from earlier runs (consideration ``retried``), or only the others.
        ``by_parent``: within an account, by Custom Member ID (the record's parent), then event.

        By event, keyset pages on the primary key rather than one cursor: a cursor needs its
        transaction open for as long as the stream, and the stream lasts as long as the writer waits
        on Salesforce. By parent, a ``WITH HOLD`` cursor: the rows are sorted once (no index has
        that order), and PostgreSQL keeps the result once the statement's transaction has ended.
        """
        params = {**self.params, "from_account": "", "from_event": FIRST_EVENT_ID, "page_rows": FETCH_ROWS,
                  "carried": carried, "by_parent": by_parent}  # fmt: skip
        if by_parent:
            yield from self._held_rows("sync/stream_staged.sql", {**params, "page_rows": None}, StagedEvent)
            return
        while True:
            page = execute(self.read_conn, "sync/stream_staged.sql", params)
            yield from (StagedEvent(*row) for row in page)
            if len(page) < FETCH_ROWS:
                return
            params.update(from_account=page[-1][0], from_event=page[-1][1] + 1)

    def distinct_member_ids(self, account_ids: Sequence[str]) -> Iterator[str]:
        """The member Ids the open accounts' rows carry, in pages (org lookups run between them)."""
        params = {**self.params, "account_ids": list(account_ids)}
        return self._held_rows("sync/distinct_members.sql", params, lambda member_id: member_id)

    def _held_rows(self, sql_file: str, params: dict[str, Any], make: Callable[..., T]) -> Iterator[T]:
        """A query's rows through a ``WITH HOLD`` cursor, a round trip per :data:`FETCH_ROWS`: PostgreSQL
        keeps its result once the statement's own transaction has ended, so reading it while the org
        answers holds no transaction open."""
        name = f"{sql_file.rsplit('/', 1)[-1].removesuffix('.sql')}_{self.category.value}"
        with self.read_conn.cursor(name=name, withhold=True) as cursor:
            cursor.itersize = FETCH_ROWS
            cursor.execute(read_sql(sql_file), params)
            for row in cursor:
                yield make(*row)

    def member_store(self, salesforce_conn_id: str) -> RunMemberStore:
        return RunMemberStore(self, salesforce_conn_id)

    def job_ledger(self, salesforce_conn_id: str) -> RunJobLedger:
        return RunJobLedger(self, salesforce_conn_id)

    def clear_failures(self) -> None:
        """A (re)started task logs its category's failures for the run from scratch."""
        self.execute("sync/clear_failures.sql", self.params)

    def copy_failures(self, failures: Sequence[Failure]) -> None:
        """Rows that failed the rules or the member match, with the source values already at hand."""
        with self.write_conn.cursor() as cur, cur.copy(read_sql("sync/copy_failures.sql")) as copy:
            for f in failures:
                e = f.event
                copy.write_row((self.run_id, e.account_id, self.category.value, e.event_id, e.recipient_id,
                                e.custom_member_id, e.activity_code, e.activity_subcode, e.occurred_at,
                                f.reason_code, f.detail))  # fmt: skip

    def log_rejections(self, rejections: Sequence[tuple[str, int, str, str]]) -> None:
        """``(account_id, event_id, reason, detail)`` of records the org refused; source values joined in."""
        account_ids, event_ids, reasons, details = (list(column) for column in zip(*rejections, strict=True))
        self.execute(
            "sync/log_rejections.sql",
            {**self.params, "account_ids": account_ids, "event_ids": event_ids, "reason_codes": reasons,
             "details": details},
        )  # fmt: skip

    def staged_counts(self) -> dict[str, StagedCounts]:
        return {row[0]: StagedCounts(*row[1:]) for row in self.execute("sync/staged_counts.sql", self.params)}

    def log_standing(self) -> list[tuple[str, str, int]]:
        """Log the day's standing failures again (``sync/log_standing.sql``); ``(account, reason, count)``."""
        return self.execute("sync/log_standing.sql", self.params)

    def analyze_log(self) -> None:
        """Statistics that count the task's log rows, for the statements that join them (``sync/analyze_log.sql``)."""
        self.execute("sync/analyze_log.sql", {})

    def healed_counts(self) -> dict[str, int]:
        return dict(self.execute("sync/healed_counts.sql", self.params))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Statements of the writing connection that commit together (the counts and the ledger); the
        parts of the run's category save one at a time (``sync/lock_parts.sql``)."""
        with self.write_conn.transaction():
            self.execute("sync/lock_parts.sql", self.params)
            yield

    def mark_part_saved(self) -> None:
        self.execute("sync/mark_part_saved.sql", {**self.params, "conn_id": self.part.conn_id})

    @contextmanager
    def login_turn(self, conn_id: str) -> Iterator[None]:
        """One instance of the run at a time checks ``conn_id``'s login (``sync/advisory_lock.sql``)."""
        params = {"space": "thrive_sync.logins", "key": f"{self.run_id} {conn_id}"}
        self.execute("sync/advisory_lock.sql", params)
        try:
            yield
        finally:
            self.execute("sync/advisory_unlock.sql", params)

    def take_day(self, day_key: str, *, wait: bool) -> bool:
        """Hold the part of ``day_key`` (category, day, org, shard) against other runs of the day until
        the task's connection ends; ``wait=False``: only if free at once. Whether it is held."""
        params = {"space": "thrive_sync.day", "key": day_key}
        if not wait:
            return bool(self.execute("sync/advisory_try_lock.sql", params)[0][0])
        self.execute("sync/advisory_lock.sql", params)
        return True

    def settle_overlap(self) -> int:
        """The part's staged rows another run wrote meanwhile, left alone (``sync/settle_overlap.sql``)."""
        with self.write_conn.cursor() as cur:
            cur.execute(read_sql("sync/settle_overlap.sql"), {**self.params, "conn_id": self.part.conn_id})
            return cur.rowcount

    def refused_login(self, conn_id: str, digest: str) -> str | None:
        """Why the org refused these credentials earlier in the run, if it did."""
        rows = self.execute("sync/refused_login.sql", {"run_id": self.run_id, "conn_id": conn_id, "digest": digest})
        return rows[0][0] if rows else None

    def save_refused_login(self, conn_id: str, digest: str, message: str) -> None:
        self.execute("sync/save_refused_login.sql",
                     {"run_id": self.run_id, "conn_id": conn_id, "digest": digest, "message": message})  # fmt: skip

    def save_ledger(self, gates: dict[str, str | None], leave_out: Iterable[tuple[str, str]] = ()) -> None:
        """The part's outcomes of the run into the event ledger; ``gates``: each account's closed gate;
        ``leave_out``: the (code, subcode) pairs the mapping leaves out."""
        pairs = sorted(leave_out)
        self.execute(
            "sync/save_ledger.sql",
            {**self.params, "gate_accounts": list(gates), "gates": list(gates.values()),
             "left_codes": [c for c, _ in pairs], "left_subcodes": [s for _, s in pairs]},
        )  # fmt: skip

    def save_considered_days(self) -> None:
        """The days the extract looked at in full, with its snapshot, once every part of the category
        has saved (``sync/save_considered_days.sql``)."""
        self.execute("sync/save_considered_days.sql", self.params)

    def save_counts(self, account_id: str, counts: AccountCounts, run: dict[str, Any]) -> None:
        """One account's counts; ``run``: window_start, window_end, dry_run, started_at."""
        self.execute(
            "sync/save_counts.sql",
            {**self.params, **run, "account_id": account_id, "conn_id": self.part.conn_id,
             "extracted": counts.extracted, "written": counts.written, "failed": counts.failed,
             "skipped": counts.skipped, "skip_gate": counts.skip_gate, "truncated": counts.truncated,
             "unchanged": counts.unchanged, "late": counts.late, "retried": counts.retried,
             "standing": counts.standing, "healed": counts.healed, "deferred": counts.deferred,
             "left_out": counts.left_out, "converted": counts.converted, "merged": counts.merged},
        )  # fmt: skip

    def save_org_usage(self, allowance: OrgAllowance) -> None:
        """One org's allowances before and after this task's writes, its room and deferred rows."""
        self.execute(
            "sync/save_org_usage.sql",
            {**self.params, **allowance.figures(), "conn_id": allowance.conn_id, "rows": allowance.rows,
             "room": allowance.room, "deferred": allowance.deferred, "written": allowance.written,
             "record_kb": allowance.record_kb, "storage_warn_share": allowance.storage_warn_share,
             "notes": "; ".join(allowance.budget.notes) or None},
        )  # fmt: skip


class RunMemberStore:
    """One run's org answers for one Salesforce connection, in ``thrive_sync.member_matches``.

    The run's category tasks (which may run on different workers) share them, so each member Id is
    asked of the org once per run. Reads go through the autocommit connection, one statement each:
    tasks of the run save overlapping Ids side by side.
    """

    def __init__(self, store: CategoryStore, salesforce_conn_id: str) -> None:
        self._store = store
        self._params = {"run_id": store.run_id, "conn_id": salesforce_conn_id}

    def known(self, sf_ids: list[str]) -> dict[str, OrgAnswer]:
        rows = self._store.execute("sync/known_members.sql", {**self._params, "sf_ids": sf_ids})
        return {sf_id: OrgAnswer(*answer) for sf_id, *answer in rows}

    def save(self, answers: dict[str, OrgAnswer]) -> None:
        if answers:
            self._store.execute(
                "sync/save_members.sql",
                {**self._params, "sf_ids": list(answers), "targets": [a.target for a in answers.values()],
                 "redirects": [a.redirect for a in answers.values()], "details": [a.detail for a in answers.values()]},
            )  # fmt: skip


class RunJobLedger:
    """The Bulk jobs this run's task made for its category in one org, in ``thrive_sync.bulk_jobs``.

    The writer's :class:`~thrive_sync.bulk_job.JobLedger`. Its job threads call it, through the
    task's autocommit connection (psycopg serialises their statements): one row per job, a statement
    when it is made and one when it ends.
    """

    def __init__(self, store: CategoryStore, salesforce_conn_id: str) -> None:
        self._store = store
        self._params = {**store.params, "conn_id": salesforce_conn_id}

    def record(self, job_id: str) -> None:
        self._store.execute("sync/record_bulk_job.sql", {**self._params, "job_id": job_id})

    def ended(self, job_id: str, state: str) -> None:
        self._store.execute("sync/bulk_job_ended.sql", {**self._params, "job_id": job_id, "state": state})

    def unfinished(self) -> list[str]:
        return [row[0] for row in self._store.execute("sync/unfinished_bulk_jobs.sql", self._params)]
