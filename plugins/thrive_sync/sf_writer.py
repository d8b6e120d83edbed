"""Stream mapped records into Salesforce as upserts on the external ID; say what became of each one.

- **Small days** (fewer records than ``bulk_threshold``, default 2,000, Salesforce's own advice)
  go through sObject Collections upserts of 200; **large days** through Bulk API 2.0 jobs of at
  most ``bulk_job_rows`` records, built with simple_salesforce's ``bulk2`` client. At most one
  job's records are in memory, never the day.
- **Outcomes** come back keyed by the external ID (Bulk results are not in input order): written,
  rejected with the org's error code and message, or ``RETRIES_EXHAUSTED``. Permanent per-record
  errors are outcomes, never exceptions and never silence (the provider's bulk operator drops them:
  apache/airflow issue 63930).
- **Transient failures** are retried with exponential backoff inside a budget (tenacity): a whole
  call on 5xx, ``REQUEST_LIMIT_EXCEEDED``, connection errors and timeouts, or an expired session
  (reconnecting first); single records on ``UNABLE_TO_LOCK_ROW`` and ``API_TEMPORARILY_UNAVAILABLE``
  or when a job left them unprocessed. Only those records are sent again. Upserts on an external ID
  are idempotent, so a resend never duplicates.
- A call whose retries run out raises :class:`SalesforceUnavailable`: the task fails loudly and
  Airflow's retry (same external IDs) completes it.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceOperationError,
    SalesforceRefusedRequest,
)
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_exponential

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_RECORD_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "API_TEMPORARILY_UNAVAILABLE"})
RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"
REJECTED = "REJECTED"
COLLECTION_SIZE = 200


class SalesforceUnavailable(RuntimeError):
    """Transient errors outlasted the retry budget for a whole call."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: per call, and how many times to resend records that failed transiently."""

    attempts: int = 6
    initial_seconds: float = 1.0
    max_seconds: float = 30.0
    budget_seconds: float = 600.0
    record_rounds: int = 4


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


def is_transient(exc: BaseException) -> bool:
    """Whether a failed call is worth repeating as it was."""
    if isinstance(exc, requests.ConnectionError | requests.Timeout | SalesforceExpiredSession):
        return True
    if isinstance(exc, SalesforceRefusedRequest):  # 403: REQUEST_LIMIT_EXCEEDED comes this way
        return "REQUEST_LIMIT_EXCEEDED" in str(exc.content)
    if isinstance(exc, SalesforceGeneralError):
        return exc.status >= 500
    if isinstance(exc, SalesforceOperationError):  # a Bulk job that ended Failed or Aborted
        return True
    if isinstance(exc, SalesforceError):
        return "Error Code 5" in str(exc)  # simple_salesforce's Bulk 2.0 upload errors carry the status
    return False


class SalesforceWriter:
    """Upserts records of one object on one external ID field.

    ``connect`` builds a fresh client (``lambda: salesforce_hook(conn_id).get_conn()``); it is called
    again after an expired session.
    """

    def __init__(
        self,
        connect: Callable[[], Salesforce],
        sobject: str,
        external_id_field: str,
        *,
        bulk_threshold: int = 2_000,
        bulk_job_rows: int = 50_000,
        poll_seconds: float = 2.0,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        self._connect = connect
        self._sf: Salesforce | None = None
        self.sobject = sobject
        self.external_id_field = external_id_field
        self.bulk_threshold = bulk_threshold
        self.bulk_job_rows = bulk_job_rows
        self.poll_seconds = poll_seconds
        self.retry = retry
        self.calls_retried = 0

    # --- the calls ------------------------------------------------------------------------------
    @property
    def sf(self) -> Salesforce:
        if self._sf is None:
            self._sf = self._connect()
        return self._sf

    def call(self, fn: Callable[[Salesforce], T]) -> T:
        """``fn(client)`` with transient failures retried; :class:`SalesforceUnavailable` when they outlast it."""

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.calls_retried += 1
            if isinstance(exc, SalesforceExpiredSession):
                self._sf = None  # log in again before the next attempt
            log.warning("Salesforce call failed (%s), attempt %d; retrying", type(exc).__name__, state.attempt_number)

        retrying = Retrying(
            stop=stop_after_attempt(self.retry.attempts) | stop_after_delay(self.retry.budget_seconds),
            wait=wait_exponential(multiplier=self.retry.initial_seconds, max=self.retry.max_seconds),
            retry=retry_if_exception(is_transient),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(lambda: fn(self.sf))
        except Exception as exc:
            if is_transient(exc):
                raise SalesforceUnavailable(
                    f"Salesforce kept failing after {self.retry.attempts} attempts: {type(exc).__name__}: "
                    f"{str(exc)[:300]}"  # URLs and error codes; the session id travels in headers only
                ) from exc
            raise

    def query_all(self, soql: str) -> dict:
        return self.call(lambda sf: sf.query_all(soql))

    # --- writing --------------------------------------------------------------------------------
    def write(self, records: Iterable[dict[str, Any]]) -> Iterator[Outcome]:
        """Upsert ``records`` (each carrying the external ID field); yield one :class:`Outcome` each."""
        stream = iter(records)
        first: list[dict[str, Any]] = []
        for record in stream:
            first.append(record)
            if len(first) >= self.bulk_threshold:
                break
        if len(first) < self.bulk_threshold:
            yield from self._with_resends(first, self._collections_once)
            return
        chunk = first
        for record in stream:
            chunk.append(record)
            if len(chunk) >= self.bulk_job_rows:
                yield from self._with_resends(chunk, self._bulk_once)
                chunk = []
        if chunk:
            yield from self._with_resends(chunk, self._bulk_once)

    def _with_resends(
        self, batch: list[dict[str, Any]], send: Callable[[list[dict[str, Any]]], tuple[list[Outcome], list[Outcome]]]
    ) -> Iterator[Outcome]:
        """Send ``batch``; resend the records that failed transiently, a few rounds, then give up on them."""
        pending = batch
        for round_number in range(self.retry.record_rounds + 1):
            final, transient = send(pending)
            yield from final
            if not transient:
                return
            if round_number == self.retry.record_rounds:
                for o in transient:
                    yield Outcome(o.key, RETRIES_EXHAUSTED, o.error_code, o.message)
                return
            keys = {o.key for o in transient}
            pending = [r for r in pending if r[self.external_id_field] in keys]
            time.sleep(min(self.retry.initial_seconds * 2**round_number, self.retry.max_seconds))
            log.info("Resending %d records that failed transiently (round %d)", len(pending), round_number + 1)
            send = self._collections_once if len(pending) < self.bulk_threshold else self._bulk_once

    def _collections_once(self, batch: list[dict[str, Any]]) -> tuple[list[Outcome], list[Outcome]]:
        final: list[Outcome] = []
        transient: list[Outcome] = []
        path = f"composite/sobjects/{self.sobject}/{self.external_id_field}"
        for start in range(0, len(batch), COLLECTION_SIZE):
            part = batch[start : start + COLLECTION_SIZE]
            body = {"allOrNone": False, "records": [{"attributes": {"type": self.sobject}, **r} for r in part]}
            results = self.call(lambda sf, body=body: sf.restful(path, method="PATCH", json=body))
            for record, result in zip(part, results, strict=True):
                key = record[self.external_id_field]
                if result.get("success"):
                    final.append(Outcome(key, created=result.get("created")))
                    continue
                error = (result.get("errors") or [{}])[0]
                code = error.get("statusCode") or "UNKNOWN_ERROR"
                outcome = Outcome(key, REJECTED, code, error.get("message"))
                (transient if code in TRANSIENT_RECORD_CODES else final).append(outcome)
        return final, transient

    def _bulk_once(self, batch: list[dict[str, Any]]) -> tuple[list[Outcome], list[Outcome]]:
        jobs = self.call(
            lambda sf: getattr(sf.bulk2, self.sobject).upsert(
                records=batch, external_id_field=self.external_id_field, wait=self.poll_seconds
            )
        )
        final: list[Outcome] = []
        transient: list[Outcome] = []
        settled: set[str] = set()
        for job in jobs:
            job_id = job["job_id"]
            if job["numberRecordsFailed"]:
                text = self.call(lambda sf, job_id=job_id: getattr(sf.bulk2, self.sobject).get_failed_records(job_id))
                for row in csv.DictReader(io.StringIO(text)):
                    key = row[self.external_id_field]
                    code, _, message = (row.get("sf__Error") or "UNKNOWN_ERROR:").partition(":")
                    outcome = Outcome(key, REJECTED, code, message.removesuffix("--").strip())
                    (transient if code in TRANSIENT_RECORD_CODES else final).append(outcome)
                    settled.add(key)
            if job["numberRecordsProcessed"] < job["numberRecordsTotal"]:
                text = self.call(
                    lambda sf, job_id=job_id: getattr(sf.bulk2, self.sobject).get_unprocessed_records(job_id)
                )
                for row in csv.DictReader(io.StringIO(text)):
                    key = row[self.external_id_field]
                    transient.append(Outcome(key, REJECTED, "UNPROCESSED", "the Bulk job did not process this record"))
                    settled.add(key)
        final.extend(Outcome(r[self.external_id_field]) for r in batch if r[self.external_id_field] not in settled)
        return final, transient
