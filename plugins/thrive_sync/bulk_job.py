"""``BulkJob``: one Bulk API 2.0 ingest job of ours (an upsert, or a retention's delete), from create
to its end, each step a call of its own.

Create, upload, close and every look at the running job are separately retried calls, so the retry
budget counts time spent failing and never time spent waiting for the org; a step resent after its
answer was lost is recognised for what it is. Why, and the whole life cycle: ``docs/design.md``
(Retries).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceResourceNotFound,
)
from simple_salesforce.util import call_salesforce

from thrive_sync.errors import BulkJobFailed
from thrive_sync.hooks.salesforce import SalesforceApiHook

log = logging.getLogger(__name__)

FINAL_STATES = frozenset({"JobComplete", "Failed", "Aborted"})
REMAKES = 2  # a job someone aborted before it was closed is made again, at most this often
CLOCK_SLACK = timedelta(seconds=2)  # an org's createdDate is to the second, and its clock is not ours


LostCreate = tuple[datetime, datetime]  # when a create whose answer was lost was sent, and when it gave up


class JobLedger(Protocol):
    """Where jobs are recorded as they are made, outside the process that makes them.

    A try of a task that is killed (SIGKILL, a lost worker) cannot abort its own jobs; the next try
    reads the ones never seen to end and aborts them (:func:`abort_left_over`) before it sends the
    same rows again, so no stale copy runs beside (or after) the new one.
    """

    def record(self, job_id: str) -> None: ...

    def ended(self, job_id: str, state: str) -> None: ...

    def unfinished(self) -> list[str]: ...


class Unrecorded:
    """No ledger: a writer used outside a task (tests, benchmarks) remembers its jobs in memory only."""

    def record(self, job_id: str) -> None:
        return None

    def ended(self, job_id: str, state: str) -> None:
        return None

    def unfinished(self) -> list[str]:
        return []


class BulkJob:
    """Create, upload, close, wait: one job, never left running once the writer stops caring about it.

    ``known`` holds the id of every job the writer made (shared by all its jobs). When a create's
    answer was lost, the org may have made a job nobody will use: such creates go to ``lost``. A
    writer that passes its own ``lost`` (shared by all its jobs) sweeps them with
    :func:`sweep_orphans` once all its jobs have ended; without one, the job sweeps its own when it
    ends, and a sibling job whose create is still on its way can be taken for an orphan.
    """

    def __init__(
        self,
        hook: SalesforceApiHook,
        sobject: str,
        external_id_field: str,
        *,
        poll_seconds: float,
        timeout_seconds: float,
        known: set[str],
        stop: threading.Event | None = None,
        lost: list[LostCreate] | None = None,
        ledger: JobLedger | None = None,
        operation: str = "upsert",
    ) -> None:
        self.hook = hook
        self.sobject = sobject
        self.external_id_field = external_id_field  # an upsert's key; unused by a delete (its rows are Ids)
        self.operation = operation
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self.known = known
        self.stop = stop or threading.Event()  # set: the caller went away, abort the job
        self.id: str | None = None
        self.sweeps_itself = lost is None
        self.lost: list[LostCreate] = [] if lost is None else lost
        self.ledger = ledger or Unrecorded()

    def run(self, data: bytes) -> dict:
        """The job's final info: ``JobComplete``, or ``Failed`` / ``Aborted`` as the org reports it.

        Whatever ends this early (a step out of retries, the job timeout, the caller stopping), the
        job is aborted first, so that no job of ours runs beside the copy a retry will send.
        """
        try:
            for _ in range(REMAKES + 1):
                self.id = self._create()
                self.ledger.record(self.id)  # before the data goes: from here on a later try can abort it
                if self._upload(data) and self._close():
                    info = self._wait()
                    self.ledger.ended(self.id, info["state"])
                    return info
                self.ledger.ended(self.id, "Aborted")
                log.warning("Bulk job %s was aborted in the org before it was closed; making it again", self.id)
            raise BulkJobFailed(
                f"Bulk job {self.id} and its {REMAKES} remakes were aborted in the org before they could be "
                "closed: someone with Manage Data Integrations is aborting this integration's jobs"
            )
        except BaseException:
            self._abort_quietly()
            raise
        finally:
            if self.sweeps_itself:
                sweep_orphans(self.hook, self.sobject, self.external_id_field, self.known, self.lost)

    def _client(self, sf: Salesforce) -> Any:
        return ingest_client(sf, self.sobject)

    def _create(self) -> str:
        spec = {"object": self.sobject, "operation": self.operation, "contentType": "CSV"}
        if self.operation == "upsert":
            spec["externalIdFieldName"] = self.external_id_field
        payload = json.dumps({**spec, "columnDelimiter": "COMMA", "lineEnding": "LF"})

        def once(sf: Salesforce) -> str:
            client = self._client(sf)
            sent = datetime.now(UTC)
            try:
                answer = call_salesforce(
                    url=f"{client.bulk2_url}ingest",
                    method="POST",
                    session=client.session,
                    headers={**client.headers, "Content-Type": "application/json", "Accept": "application/json"},
                    data=payload,
                )
            except (requests.ConnectionError, requests.Timeout, SalesforceGeneralError):
                self.lost.append((sent, datetime.now(UTC)))  # the org may have made a job all the same
                raise
            if _sent_twice(answer):
                self.lost.append((sent, datetime.now(UTC)))
            job_id = str(answer.json()["id"])
            self.known.add(job_id)
            return job_id

        return self.hook.call(once)

    def _upload(self, data: bytes) -> bool:
        """Send the CSV (bytes already: ``client.upload_job_data`` takes str and encodes it twice).

        ``False`` when the job was aborted before it got the data. A resent upload whose first copy
        landed is answered ``INVALIDJOBSTATE`` on a job still ``Open``: the data is there.
        """

        def once(sf: Salesforce) -> bool:
            client = self._client(sf)
            try:
                call_salesforce(
                    url=f"{client.bulk2_url}ingest/{self.id}/batches",
                    method="PUT",
                    session=client.session,
                    headers={**client.headers, "Content-Type": "text/csv", "Accept": "application/json"},
                    data=data,
                )
            except SalesforceMalformedRequest as err:
                if _error_code(err) != "INVALIDJOBSTATE":
                    raise
                return client.get_job(self.id, False)["state"] != "Aborted"
            return True

        return self.hook.call(once)

    def _close(self) -> bool:
        """Close the job; ``False`` when it was aborted before it was closed (nothing of it processed).

        A close resent after its answer was lost is answered ``400 INVALIDJOBSTATE``: the first one
        closed the job, which is queued or running, and is waited for, never aborted.
        """

        def once(sf: Salesforce) -> bool:
            client = self._client(sf)
            try:
                client.close_job(self.id)
                return True
            except SalesforceMalformedRequest as err:
                if _error_code(err) != "INVALIDJOBSTATE":
                    raise
                info = client.get_job(self.id, False)
                if info["state"] == "Open":
                    raise
            return not (info["state"] == "Aborted" and not int(info.get("numberRecordsProcessed") or 0))

        return self.hook.call(once)

    def _wait(self) -> dict:
        """Poll until the job ends: each look its own retried call, the waiting outside any retry budget.

        Soon at first, then half as late again each time, up to every ``poll_seconds``: small jobs end
        in a second or two, and a late look is time the next task waits; looking more often than this
        costs the org more than it saves (measured with ``make bench``).
        """
        deadline = time.monotonic() + self.timeout_seconds
        delay = min(0.05, self.poll_seconds)
        while True:
            if self.stop.wait(delay):
                raise BulkJobFailed(f"Bulk job {self.id} was aborted: the write it belonged to stopped")
            info = self.hook.call(lambda sf: self._client(sf).get_job(self.id, False))
            if info["state"] in FINAL_STATES:
                return info
            if time.monotonic() >= deadline:
                raise BulkJobFailed(
                    f"Bulk job {self.id} was still {info['state']} after {self.timeout_seconds:.0f} s "
                    f"({info.get('numberRecordsProcessed') or 0} records processed), so the writer aborted it; "
                    "if the org is this slow every day, raise job_timeout_seconds"
                )
            delay = min(delay * 1.5, self.poll_seconds)

    def _abort_quietly(self) -> None:
        """Abort the job unless it has ended: one try, as this runs when something went wrong already."""
        if self.id is None:
            return
        try:
            self._client(self.hook.get_conn()).abort_job(self.id, False)
            self.ledger.ended(self.id, "Aborted")
        except Exception:  # noqa: BLE001 - it had ended (400), or the org is out of reach: the first error matters
            return  # left unfinished in the ledger: the next try looks at it again
        log.warning("Aborted Bulk job %s: the writer gave up on it", self.id)


def abort_left_over(hook: SalesforceApiHook, sobject: str, ledger: JobLedger) -> list[str]:
    """Abort the jobs an earlier try of the task made and never saw end; the ones it aborted.

    Called before the try sends anything: a killed try's job may still be queued or running, and
    would upsert the same records beside the new copy, or after it with the older values. A job
    that has ended meanwhile answers ``400 INVALIDJOBSTATE`` and is recorded with its final state.
    Records the aborted job processed stay written; the new try sends them again, upserts that
    change nothing. The org finishes a batch it had started, so the new try can meet a lock or an
    insert race on a few records, which it resends (``worth_resending``).
    """
    aborted = []
    for job_id in ledger.unfinished():
        try:
            hook.call(lambda sf, job_id=job_id: ingest_client(sf, sobject).abort_job(job_id, False))
        except SalesforceResourceNotFound:
            ledger.ended(job_id, "Deleted")  # the org deletes jobs a week after they ended
            continue
        except SalesforceMalformedRequest as err:
            if _error_code(err) != "INVALIDJOBSTATE":
                raise
            info = hook.call(lambda sf, job_id=job_id: ingest_client(sf, sobject).get_job(job_id, False))
            ledger.ended(job_id, info["state"])
            continue
        ledger.ended(job_id, "Aborted")
        aborted.append(job_id)
        log.warning("Aborted Bulk job %s: an earlier try of this task made it and never saw it end", job_id)
    return aborted


def sweep_orphans(
    hook: SalesforceApiHook, sobject: str, external_id_field: str, known: set[str], lost: list[LostCreate]
) -> None:
    """Abort the jobs the org made for creates whose answers were lost: open, ours by shape and time, unused.

    Sound only once no job of the caller's is between its create and the answer: a writer calls it
    when its last job has ended, so that every job of its own is in ``known``. A job of someone else
    that is still ``Open`` by then, made in the same moment, is taken for an orphan: aborted before
    its close, its writer makes it again (``REMAKES``).
    """
    if not lost:
        return
    low = min(sent for sent, _ in lost) - CLOCK_SLACK
    high = max(answered for _, answered in lost) + CLOCK_SLACK
    lost.clear()
    shape = (sobject, external_id_field, known, low, high)
    try:
        orphans = [info["id"] for info in hook.call(lambda sf: _all_jobs(sf, sobject)) if _orphan(info, *shape)]
    except Exception as exc:  # noqa: BLE001 - an orphan is an empty job the org deletes in a week: warn only
        log.warning("Could not look for Bulk jobs left by lost answers (%s)", type(exc).__name__)
        return
    for job_id in orphans:
        try:
            hook.call(lambda sf, job_id=job_id: ingest_client(sf, sobject).abort_job(job_id, False))
        except SalesforceMalformedRequest:
            continue  # ended meanwhile: not an orphan after all
        log.warning("Aborted Bulk job %s: the org made it for a create whose answer was lost", job_id)


def _orphan(info: dict, sobject: str, external_id_field: str, known: set[str], low: datetime, high: datetime) -> bool:
    """Whether a job looks like one a lost create made: open, our object and key, not ours, made in the window.

    Nothing in a job says who made it for which request: the shape and the time are all there is.
    """
    created = datetime.strptime(info.get("createdDate") or "1970-01-01T00:00:00.000+0000", "%Y-%m-%dT%H:%M:%S.%f%z")
    return (
        info.get("state") == "Open"
        and info.get("object") == sobject
        and info.get("operation") == "upsert"
        and info.get("externalIdFieldName") == external_id_field
        and info.get("id") not in known
        and low <= created <= high
    )


def _all_jobs(sf: Salesforce, sobject: str) -> list[dict]:
    """Get All Jobs (ingest), every page."""
    client = ingest_client(sf, sobject)
    url: str | None = f"{client.bulk2_url}ingest"
    jobs: list[dict] = []
    while url:
        page = call_salesforce(url=url, method="GET", session=client.session, headers=client.headers).json()
        jobs += page.get("records") or []
        following = page.get("nextRecordsUrl")
        url = f"https://{sf.sf_instance}{following}" if following and not page.get("done") else None
    return jobs


def job_result_rows(hook: SalesforceApiHook, sobject: str, job_id: str, kind: str) -> list[dict[str, str]]:
    """A job's ``successfulResults``, ``failedResults`` or ``unprocessedrecords``, as rows by column name
    (one retried call; a job's results are at most one job's worth of rows)."""
    text = hook.call(lambda sf: ingest_client(sf, sobject).get_ingest_results(job_id, kind))
    return list(csv.DictReader(io.StringIO(text)))


def ingest_client(sf: Salesforce, sobject: str) -> Any:
    """simple_salesforce's Bulk 2.0 client of ``sobject``: its calls one at a time (``bulk2.<object>``
    offers only whole upserts, which block until the job ends and retry nothing)."""
    return getattr(sf.bulk2, sobject)._client


def _sent_twice(answer: requests.Response) -> bool:
    """Whether the transport sent this request again after an attempt whose fate it did not learn."""
    retries = getattr(answer.raw, "retries", None)
    return any(h.error is not None or (h.status or 0) >= 500 for h in getattr(retries, "history", ()))


def _error_code(err: SalesforceMalformedRequest) -> str | None:
    first = err.content[0] if isinstance(err.content, list) and err.content else None
    return first.get("errorCode") if isinstance(first, dict) else None
