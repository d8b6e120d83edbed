"""b, the floor of ``make bench``: the records ours writes, moved the way ours moves them, and nothing else.

The day's written records (``sql/bench/floor_records.sql``: the sample's expected outcomes) come out
of PostgreSQL as CSV bytes through COPY, one row per chunk, already in the form ours sends (Bulk's
``#N/A`` for null, 18-character Ids). They go to the org as ours sends them: per category (ours has
one validate task each, run one after another by ``airflow dags test``), jobs of the writer's sizes
(the first a fifth), :data:`~thrive_sync.sf_writer.JOBS_IN_FLIGHT` at once, each run by the
writer's own :class:`~thrive_sync.bulk_job.BulkJob` (its calls and poll schedule). No extract,
validation, member lookups, logging or counts: ours can only be slower, and ``a/b`` is what our
logic costs.
"""

from __future__ import annotations

import csv
import io
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from itertools import chain, groupby, islice
from typing import TYPE_CHECKING

import psycopg

from thrive_dev.sql_files import read_dev_sql

if TYPE_CHECKING:
    from thrive_sync.hooks.salesforce import SalesforceApiHook

OBJECT = "Thrive_Activity__c"
EXTERNAL_ID = "Thrive_Event_Id__c"


def floor_copy_sql() -> str:
    """The COPY statement of the floor's records (parameters ``window_start``, ``window_end``)."""
    query = read_dev_sql("bench/floor_records.sql").replace("{mapped_day}", read_dev_sql("bench/mapped_day.sql"))
    return f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER, NULL '#N/A')"


def category_of(row: bytes) -> bytes:
    """A COPY row's first column (the category: a plain word, never quoted)."""
    return row[: row.index(b",")]


def categories(rows: Iterator[bytes]) -> Iterator[tuple[bytes, Iterator[bytes]]]:
    """``(category, its rows)``: lazy, as the writer's, so a job is built while the ones before it run."""
    return groupby(rows, key=category_of)


def _jobs(rows: Iterator[bytes], header: bytes, job_rows: int) -> Iterator[bytes]:
    size, part = max(1, job_rows // 5), [header]
    for row in rows:
        part.append(row)
        if len(part) > size:
            yield b"".join(part)
            size, part = job_rows, [header]
    if len(part) > 1:
        yield b"".join(part)


def move_category(jobs: Iterator[bytes], run_job: Callable[[bytes], dict], in_flight_max: int) -> list[dict]:
    """Run a category's jobs, ``in_flight_max`` at once, as the writer does; their final infos."""
    infos: list[dict] = []
    in_flight: deque[Future[dict]] = deque()
    with ThreadPoolExecutor(max_workers=in_flight_max, thread_name_prefix="floor-job") as pool:
        for data in jobs:
            in_flight.append(pool.submit(run_job, data))
            while len(in_flight) >= in_flight_max:
                infos.append(in_flight.popleft().result())
        infos += [future.result() for future in in_flight]
    return infos


def run(thrive_uri: str, day: date) -> dict:
    """Move the day's written records; ``{"written", "jobs", "states"}`` of what moved them."""
    from thrive_sync.hooks.salesforce import SalesforceApiHook
    from thrive_sync.settings import DEFAULT_SALESFORCE_CONN_ID

    hook = SalesforceApiHook(DEFAULT_SALESFORCE_CONN_ID)
    start = datetime.combine(day, datetime.min.time(), UTC)
    infos: list[dict] = []
    with (
        psycopg.connect(thrive_uri) as conn,
        conn.cursor().copy(floor_copy_sql(), {"window_start": start, "window_end": start + timedelta(days=1)}) as copy,
    ):
        rows = (bytes(chunk) for chunk in copy)
        header = next(rows)
        for _, group in categories(rows):
            infos += send_category(group, header, hook)
    written = sum(int(i.get("numberRecordsProcessed") or 0) - int(i.get("numberRecordsFailed") or 0) for i in infos)
    return {"written": written, "jobs": len(infos), "states": sorted({i["state"] for i in infos})}


def send_category(rows: Iterator[bytes], header: bytes, hook: SalesforceApiHook) -> list[dict]:
    """One category's rows as ours sends them: Bulk jobs from ``bulk_threshold`` records, else Collections."""
    from thrive_sync.bulk_job import BulkJob
    from thrive_sync.settings import WriterOptions
    from thrive_sync.sf_writer import JOBS_IN_FLIGHT

    options = WriterOptions()
    first = list(islice(rows, options.bulk_threshold))
    if len(first) < options.bulk_threshold:
        return [send_collections(first, header, hook)]
    known: set[str] = set()

    def run_job(data: bytes) -> dict:
        job = BulkJob(hook, OBJECT, EXTERNAL_ID, poll_seconds=options.poll_seconds,
                      timeout_seconds=options.job_timeout_seconds, known=known)  # fmt: skip
        return job.run(data)

    return move_category(_jobs(chain(first, rows), header, options.bulk_job_rows), run_job, JOBS_IN_FLIGHT)


def send_collections(rows: list[bytes], header: bytes, hook: SalesforceApiHook) -> dict:
    """Fewer records than the Bulk threshold: sObject Collections upserts of 200, as ours sends them."""
    from thrive_sync.sf_writer import COLLECTION_SIZE, NULL_MARKER

    reader = csv.reader(io.StringIO(b"".join([header, *rows]).decode("utf-8"), newline=""))
    fields = next(reader)
    records = [{f: (None if v == NULL_MARKER else v) for f, v in zip(fields, row, strict=True)} for row in reader]
    path = f"composite/sobjects/{OBJECT}/{EXTERNAL_ID}"
    failed = 0
    for start in range(0, len(records), COLLECTION_SIZE):
        part = [{"attributes": {"type": OBJECT}, **r} for r in records[start : start + COLLECTION_SIZE]]
        body = {"allOrNone": False, "records": part}
        results = hook.call(lambda sf, body=body: sf.restful(path, method="PATCH", json=body))
        failed += sum(1 for r in results if not r.get("success"))
    return {"state": "Collections", "numberRecordsProcessed": len(records), "numberRecordsFailed": failed}
