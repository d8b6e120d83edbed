"""``SalesforceWriter``: stream mapped records into Salesforce as upserts; one outcome per record.

Below ``bulk_threshold`` records, sObject Collections upserts of 200; from there, Bulk API 2.0 jobs
built straight into CSV bytes while earlier jobs run. Outcomes are keyed by the external ID;
records the org refused transiently are resent from its own failed/unprocessed CSV. Why it is
built this way, and every retry layer: ``docs/design.md``.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain
from typing import Any

from thrive_sync.bulk_job import (
    BulkJob,
    JobLedger,
    LostCreate,
    Unrecorded,
    abort_left_over,
    ingest_client,
    job_result_rows,
    sweep_orphans,
)
from thrive_sync.core.reasons import REJECTED, RETRIES_EXHAUSTED
from thrive_sync.errors import BulkJobFailed, BulkJobRefused, DailyLimitReached
from thrive_sync.hooks.salesforce import SalesforceApiHook
from thrive_sync.settings import WriterOptions

log = logging.getLogger(__name__)

TRANSIENT_RECORD_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "API_TEMPORARILY_UNAVAILABLE"})
# How an org words DUPLICATE_VALUE: "duplicate value found: <field> duplicates value on record with id: <Id>".
DUPLICATE_FIELD = re.compile(r"duplicate value found: (\S+) duplicates value on record with id")
# In a Bulk API 2.0 CSV this sets a field to null; an empty cell would leave the field as it was. So a
# value that is null (or empty) goes as the marker, and a record with the marker as its text goes
# through sObject Collections, where it is text: both paths leave the org in the same state.
NULL_MARKER = "#N/A"
COLLECTION_SIZE = 200
ORG_BATCH_ROWS = 10_000  # an org processes a Bulk 2.0 job in internal batches of this many records
JOBS_IN_FLIGHT = 3  # Bulk jobs running at once per writer: the org overlaps them, memory holds their CSV
# A Bulk job the org failed for one of these failed for its data as a whole: sent again, it fails again.
PERMANENT_JOB_ERRORS = frozenset(
    {"InvalidBatch", "InvalidJob", "ClientInputError", "InvalidOperation", "InvalidUser", "FeatureNotEnabled"}
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one record. ``reason_code`` is None when it was written."""

    key: str
    reason_code: str | None = None
    error_code: str | None = None
    message: str | None = None
    created: bool | None = None

    @property
    def written(self) -> bool:
        return self.reason_code is None


Retry = tuple[dict[str, Any], Outcome]  # a record to send (again), and what became of it last time


def worth_resending(code: str, message: str | None, external_id_field: str) -> bool:
    """Whether a record the org refused with ``code`` may be written by sending it again.

    Transient codes, and ``DUPLICATE_VALUE`` that names the upsert's own external ID: a lost insert
    race, which sent again finds the record and updates it (why: docs/design.md, Retries).
    """
    if code in TRANSIENT_RECORD_CODES:
        return True
    found = DUPLICATE_FIELD.search(message or "") if code == "DUPLICATE_VALUE" else None
    return found is not None and found.group(1).lower() == external_id_field.lower()


class SalesforceWriter:
    """Upserts records of one object on one external ID field, through one org's hook.

    The hook retries each call (and logs in again after an expired session); its connection's
    ``record_retry_rounds`` says how often records that failed transiently are sent again.
    """

    def __init__(
        self,
        hook: SalesforceApiHook,
        sobject: str,
        external_id_field: str,
        *,
        bulk_threshold: int = WriterOptions.bulk_threshold,
        bulk_job_rows: int = WriterOptions.bulk_job_rows,
        poll_seconds: float = WriterOptions.poll_seconds,
        job_timeout_seconds: float = WriterOptions.job_timeout_seconds,
        jobs_in_flight: int = JOBS_IN_FLIGHT,
        job_ledger: JobLedger | None = None,
        parent_fields: Sequence[str] = (),
    ) -> None:
        self.hook = hook
        self.sobject = sobject
        self.external_id_field = external_id_field
        self.bulk_threshold = bulk_threshold
        self.bulk_job_rows = bulk_job_rows
        self.poll_seconds = poll_seconds
        self.job_timeout_seconds = job_timeout_seconds
        self.jobs_in_flight = max(1, jobs_in_flight)
        self.jobs_made: set[str] = set()  # every Bulk job this writer made (see BulkJob)
        self.lost_creates: list[LostCreate] = []  # its creates whose answers were lost, until swept
        self.job_ledger = job_ledger or Unrecorded()  # where its jobs are recorded for a later try
        # The lookups whose parent the org locks while a record is written: with records ordered by
        # them, a job ends only where they change. Empty: jobs end at their size, wherever that is.
        self.parent_fields = tuple(parent_fields)

    def abort_left_over(self) -> list[str]:
        """Abort the Bulk jobs an earlier try made and never saw end (see :func:`abort_left_over`)."""
        return abort_left_over(self.hook, self.sobject, self.job_ledger)

    # --- writing --------------------------------------------------------------------------------
    def write(self, records: Iterable[dict[str, Any]], *, only_failures: bool = False) -> Iterator[Outcome]:
        """Upsert ``records`` (dicts, each carrying the external ID field); one :class:`Outcome` each.

        Every record must have the same keys; ``None`` means no value. See :meth:`write_rows`.
        """
        stream = iter(records)
        first = next(stream, None)
        if first is None:
            return iter(())
        header = list(first)

        def rows() -> Iterator[tuple]:
            for record in chain([first], stream):
                if len(record) != len(header):  # with record[f] below: the same fields, or an error
                    raise ValueError(f"record has fields {sorted(record)}, not {sorted(header)}")
                yield tuple(record[f] for f in header)

        return self.write_rows(header, rows(), only_failures=only_failures)

    def write_rows(
        self, header: Sequence[str], rows: Iterable[Sequence[Any]], *, only_failures: bool = False
    ) -> Iterator[Outcome]:
        """Upsert ``rows``, each a sequence of values in ``header`` order; one :class:`Outcome` each.

        ``only_failures``: yield only the records that were not written (a caller that counts what it
        sent needs no outcome for each of a million successes).
        """
        header = list(header)
        if self.external_id_field not in header:
            raise ValueError(f"the header {header} lacks the external ID field {self.external_id_field}")
        stream = iter(rows)
        first: list[Sequence[Any]] = []
        for row in stream:
            first.append(row)
            if len(first) >= self.bulk_threshold:
                break
        if len(first) < self.bulk_threshold:
            outcomes = self._with_resends([(dict(zip(header, row, strict=True)), Outcome("")) for row in first])
        else:
            outcomes = self._bulk_pipeline(iter(first), stream, header, not only_failures)
        return (o for o in outcomes if not o.written) if only_failures else outcomes

    def _bulk_pipeline(
        self, taken: Iterator[Sequence[Any]], stream: Iterator[Sequence[Any]], header: list[str], with_written: bool
    ) -> Iterator[Outcome]:
        """Jobs of ``bulk_job_rows`` built while earlier ones run; outcomes in job order. ``taken``: the
        rows already read from ``stream`` (to see that Bulk is worth it), sent first.

        Jobs left by lost create answers are swept once every job has ended: a job of ours whose
        create is still on its way would look like one of them.
        """
        rows = chain(taken, stream)
        in_flight: deque[tuple[Future[dict], list[str]]] = deque()
        key_at = header.index(self.external_id_field)
        marked: list[Sequence[Any]] = []  # rows whose text is the null marker: Collections takes them
        ahead: list[Sequence[Any]] = []  # a row read to see that its parent is another: the next job's first
        stop = threading.Event()  # set when this ends early: the jobs still running are aborted
        try:
            with ThreadPoolExecutor(max_workers=self.jobs_in_flight, thread_name_prefix="bulk2-job") as pool:
                try:
                    for data, keys in self._csv_jobs(rows, header, marked, ahead):
                        in_flight.append((pool.submit(self._run_job, data, stop), keys))
                        del data
                        while len(in_flight) >= self.jobs_in_flight:
                            yield from self._settled(*in_flight[0], with_written)
                            in_flight.popleft()
                    while in_flight:
                        yield from self._settled(*in_flight[0], with_written)
                        in_flight.popleft()
                except DailyLimitReached as spent:  # the rows already taken and not yet in a job too
                    unsent = [row[key_at] for row in chain(marked, ahead, taken)]
                    spent.unconfirmed = self._unconfirmed(spent, in_flight, unsent)
                    raise
                finally:
                    for future, _ in in_flight:  # a failure above: do not start jobs nobody will read
                        future.cancel()
                    stop.set()  # nor leave running the ones that started (they are aborted)
        finally:
            sweep_orphans(self.hook, self.sobject, self.external_id_field, self.jobs_made, self.lost_creates)
        if marked:
            pending = [(dict(zip(header, row, strict=True)), Outcome("")) for row in marked]
            yield from self._with_resends(pending, collections_only=True)

    @staticmethod
    def _unconfirmed(
        spent: DailyLimitReached, in_flight: deque[tuple[Future[dict], list[str]]], marked: list[str]
    ) -> list[str]:
        """The records whose outcome the writer never learned when the org's allowance ran out: the job
        being settled (all of it, or only its resend round when that was refused), the jobs after it,
        and the rows kept for Collections."""
        settling = vars(spent).get("unconfirmed")  # set by a refused resend round of the first job
        later = list(in_flight) if settling is None else list(in_flight)[1:]
        return [*(settling or []), *(k for _, keys in later for k in keys), *marked]

    def _csv_jobs(
        self,
        rows: Iterator[Sequence[Any]],
        header: list[str],
        marked: list[Sequence[Any]],
        ahead: list[Sequence[Any]] | None = None,
    ) -> Iterator[tuple[bytes, list[str]]]:
        """``(UTF-8 CSV with header, external IDs in order)`` per job of about ``bulk_job_rows`` rows.

        The CSV is written straight into bytes: a job in flight holds one copy of its data, no more.
        Null and empty values are written as :data:`NULL_MARKER`; rows that carry the marker as
        text are not written but added to ``marked``. With ``parent_fields``, a full job goes on
        while the parent stays the same (:meth:`_room_past_size`); the row that shows it changed is
        kept in ``ahead`` until the next job takes it, so a caller that stops early knows it was read.
        """
        key_at = header.index(self.external_id_field)
        parent_at = [header.index(f) for f in self.parent_fields if f in header]
        ahead = [] if ahead is None else ahead
        width = len(header)
        # The first job is a fifth of the others: the org starts working sooner, the rest overlaps.
        size = max(1, self.bulk_job_rows // 5)
        while True:
            buffer, text, out = _csv_bytes(header)
            keys: list[str] = []
            last: Sequence[Any] = ()
            room = self._room_past_size(size) if parent_at else 0
            for row in chain([ahead.pop()] if ahead else [], rows):
                if len(row) != width:
                    raise ValueError(f"a row of {len(row)} values for a header of {width} fields: {header}")
                if NULL_MARKER in row:
                    marked.append(row)
                    continue
                if len(keys) >= size and any(row[i] != last[i] for i in parent_at):
                    ahead.append(row)  # another parent: the next job's
                    break
                out.writerow([NULL_MARKER if value is None or value == "" else value for value in row])
                keys.append(row[key_at])
                last = row
                if len(keys) >= size + room:
                    break  # full (and, grouping, as far past its size as it may go): nothing read ahead
            if not keys:
                return
            text.flush()
            data = buffer.getvalue()
            text.close()
            yield data, keys
            del data
            if not ahead and len(keys) < size:
                return
            size = self.bulk_job_rows

    @staticmethod
    def _room_past_size(size: int) -> int:
        """How far a job of ``size`` may go past it to keep a parent's records together: to the end of
        the org's internal batch its size ends in, never into another (a job then costs the batches
        and the time its size does: ``core.budget.cost`` holds). A size that fills its last batch
        exactly has no room: a parent there is split, and its lock failures are resent."""
        return -size % ORG_BATCH_ROWS

    def _run_job(self, data: bytes, stop: threading.Event | None = None) -> dict:
        """One Bulk 2.0 upsert job, created, uploaded, closed and waited for; its final info.

        simple_salesforce's ``bulk2.<object>.upsert`` takes a file or a list of dicts, blocks until
        each job ends and retries nothing; :class:`BulkJob` runs the job's steps one call each, so the
        CSV is written once, by us, and the job runs while the next one is built.
        """
        started = time.perf_counter()
        job = BulkJob(
            self.hook,
            self.sobject,
            self.external_id_field,
            poll_seconds=self.poll_seconds,
            timeout_seconds=self.job_timeout_seconds,
            known=self.jobs_made,
            stop=stop,
            lost=self.lost_creates,
            ledger=self.job_ledger,
        )
        info = job.run(data)
        log.info(
            "Bulk job %s: %s, %s records processed, %s failed, in %.2f s",
            job.id,
            info.get("state"),
            info.get("numberRecordsProcessed"),
            info.get("numberRecordsFailed"),
            time.perf_counter() - started,
        )
        return info

    def _settled(self, future: Future[dict], keys: list[str], with_written: bool) -> Iterator[Outcome]:
        """A job's outcomes once it has ended, with its transiently failed records resent."""
        final, transient = self._job_outcomes(future.result(), keys, with_written)
        yield from final
        if transient:
            yield from self._with_resends(transient, first_round=1)

    def _job_outcomes(
        self, info: dict, keys: list[str], with_written: bool = True
    ) -> tuple[list[Outcome], list[Retry]]:
        """Outcomes of a finished job, and the records to send again (rebuilt from the org's CSV).

        Records the job processed are never sent again; those it did not (a job that ended ``Failed``
        or ``Aborted`` early) are, from its ``unprocessedrecords``.
        """
        unprocessed: list[dict[str, str]] = []
        if int(info.get("numberRecordsProcessed") or 0) < len(keys):
            info, unprocessed = self._settled_figures(info, len(keys))
        note = self._ended_early(info, len(keys))
        final: list[Outcome] = []
        transient: list[Retry] = []
        settled: set[str] = set()
        if int(info.get("numberRecordsFailed") or 0):
            for row in self._result_rows(info["id"], "failedResults"):
                key = row[self.external_id_field]
                code, _, message = (row.get("sf__Error") or "UNKNOWN_ERROR:").partition(":")
                outcome = Outcome(key, REJECTED, code, message.removesuffix("--").strip())
                settled.add(key)
                if worth_resending(code, outcome.message, self.external_id_field):
                    transient.append((_record_from_csv(row), outcome))
                else:
                    final.append(outcome)
        for row in unprocessed:
            key = row[self.external_id_field]
            settled.add(key)
            transient.append((_record_from_csv(row), Outcome(key, REJECTED, "UNPROCESSED", note)))
        if with_written:
            final.extend(Outcome(key) for key in keys if key not in settled)
        return final, transient

    def _result_rows(self, job_id: str, kind: str) -> list[dict[str, str]]:
        """``failedResults`` or ``unprocessedrecords`` of a job, as rows by column name."""
        return job_result_rows(self.hook, self.sobject, job_id, kind)

    def _settled_figures(self, info: dict, records: int) -> tuple[dict, list[dict[str, str]]]:
        """The job's figures and its unprocessed records, once they add up to the ``records`` sent.

        An org stops an aborted job after the batch it is running, so for a while the job says
        ``Aborted`` while that batch's records are neither counted as processed nor unprocessed, and
        its failures are not in ``failedResults`` yet. Processed plus unprocessed is what was sent
        once everything has settled; until then the writer looks again, as it polls a running job.
        """
        job_id = info["id"]
        deadline = time.monotonic() + self.job_timeout_seconds
        while True:
            unprocessed = self._result_rows(job_id, "unprocessedrecords")
            processed = int(info.get("numberRecordsProcessed") or 0)
            if info.get("state") != "Aborted" or processed + len(unprocessed) >= records:
                return info, unprocessed  # only an aborted job's figures may still move
            if time.monotonic() >= deadline:
                raise BulkJobFailed(
                    f"Bulk job {job_id} ended {info.get('state')}, but its {processed} processed and "
                    f"{len(unprocessed)} unprocessed records never added up to the {records} sent"
                )
            time.sleep(self.poll_seconds)
            info = self.hook.call(lambda sf: ingest_client(sf, self.sobject).get_job(job_id, False))

    def _ended_early(self, info: dict, records: int) -> str:
        """What to say of the records a job did not process; :class:`BulkJobRefused` for a refused job.

        A job the org failed for its data as a whole (:data:`PERMANENT_JOB_ERRORS`) ends the task
        with the org's message: the same data would fail again. Any other ``Failed`` or ``Aborted``
        (a batch out of retries, someone aborting it) leaves its unprocessed records to be resent.
        """
        state, message = info.get("state"), info.get("errorMessage") or "no message from the org"
        if state == "JobComplete":
            return "the Bulk job did not process this record"
        if message.split(":", 1)[0].strip() in PERMANENT_JOB_ERRORS:
            raise BulkJobRefused(
                f"Salesforce failed Bulk job {info['id']} ({self.sobject}): {message}. Sent again, the same "
                "records would fail the same way: compare the mapping's fields with the object in the org"
            )
        log.warning(
            "Bulk job %s ended %s (%s) with %s of %d records processed; the rest is sent again",
            info["id"],
            state,
            message,
            info.get("numberRecordsProcessed") or 0,
            records,
        )
        return f"the Bulk job ended {state} before this record: {message}"

    def _with_resends(
        self, pending: list[Retry], first_round: int = 0, collections_only: bool = False
    ) -> Iterator[Outcome]:
        """Send the records; resend those that failed transiently, a few rounds, then give up on them.

        ``first_round`` 1: the records were sent once already (a Bulk job's transient failures).
        ``collections_only``: never through Bulk (records carrying :data:`NULL_MARKER` as text).
        """
        for round_number in range(first_round, self.hook.retry.record_rounds + 1):
            if round_number:
                time.sleep(min(self.hook.retry.initial_seconds * 2 ** (round_number - 1), self.hook.retry.max_seconds))
                log.info("Resending %d records that failed transiently (round %d)", len(pending), round_number)
            batch = [record for record, _ in pending]
            small = collections_only or len(batch) < self.bulk_threshold
            send = self._collections_once if small else self._bulk_once
            try:
                final, pending = send(batch)
            except DailyLimitReached as spent:  # a round's outcomes come together: none of it is confirmed
                spent.unconfirmed = [record[self.external_id_field] for record in batch]
                raise
            yield from final
            if not pending:
                return
        for _, last in pending:
            yield Outcome(last.key, RETRIES_EXHAUSTED, last.error_code, last.message)

    def _collections_once(self, batch: list[dict[str, Any]]) -> tuple[list[Outcome], list[Retry]]:
        final: list[Outcome] = []
        transient: list[Retry] = []
        path = f"composite/sobjects/{self.sobject}/{self.external_id_field}"
        for start in range(0, len(batch), COLLECTION_SIZE):
            part = batch[start : start + COLLECTION_SIZE]
            body = {"allOrNone": False, "records": [{"attributes": {"type": self.sobject}, **r} for r in part]}
            results = self.hook.call(lambda sf, body=body: sf.restful(path, method="PATCH", json=body))
            for record, result in zip(part, results, strict=True):
                key = record[self.external_id_field]
                if result.get("success"):
                    final.append(Outcome(key, created=result.get("created")))
                    continue
                error = (result.get("errors") or [{}])[0]
                code = error.get("statusCode") or "UNKNOWN_ERROR"
                outcome = Outcome(key, REJECTED, code, error.get("message"))
                if worth_resending(code, outcome.message, self.external_id_field):
                    transient.append((record, outcome))
                else:
                    final.append(outcome)
        return final, transient

    def _bulk_once(self, batch: list[dict[str, Any]]) -> tuple[list[Outcome], list[Retry]]:
        """Bulk jobs run one after another: a resend round (records may differ in their fields)."""
        final: list[Outcome] = []
        transient: list[Retry] = []
        header = sorted({f for r in batch for f in r}, key=lambda f: (f != self.external_id_field, f))
        marked: list[Sequence[Any]] = []
        for data, keys in self._csv_jobs((tuple(r.get(f) for f in header) for r in batch), header, marked):
            done, again = self._job_outcomes(self._run_job(data), keys)
            final += done
            transient += again
        if marked:
            done, again = self._collections_once([dict(zip(header, row, strict=True)) for row in marked])
            final += done
            transient += again
        return final, transient


def _csv_bytes(header: Sequence[str]) -> tuple[io.BytesIO, io.TextIOWrapper, Any]:
    """A CSV writer onto bytes (the buffer, its text layer to flush, the writer), its header written."""
    buffer = io.BytesIO()
    text = io.TextIOWrapper(buffer, encoding="utf-8", newline="", write_through=False)
    out = csv.writer(text, lineterminator="\n")
    out.writerow(header)
    return buffer, text, out


def _record_from_csv(row: dict[str, str]) -> dict[str, Any]:
    """A record to send again, from a row of the org's failed or unprocessed CSV (the marker is null)."""
    return {k: (None if v == NULL_MARKER else v) for k, v in row.items() if v and not k.startswith("sf__")}
