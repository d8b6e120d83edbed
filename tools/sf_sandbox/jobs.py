"""Bulk API 2.0 ingest jobs as an org runs them: the job book, the org's queue and its batch workers.

An org splits a closed job into internal batches of 10,000 records (:data:`BULK_CHUNK`) and runs
them on workers shared by every job, after a wait in its queue. The job is ``UploadComplete``,
then ``InProgress`` with ``numberRecordsProcessed`` and ``numberRecordsFailed`` growing batch by
batch, then ``JobComplete``; or ``Failed`` (a batch that failed on every retry, data the org cannot
read) or ``Aborted``, with what it had not processed in ``unprocessedrecords``. Batches already done
stay done. The pace and the failures are fault knobs (:class:`sf_sandbox.server.Faults`); what each
does is in ``docs/development.md``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Protocol

from sf_sandbox.contention import ParentLocks, locked_columns, parents_of
from sf_sandbox.limits import DailyLimits
from sf_sandbox.orgschema import SObject
from sf_sandbox.store import Store, WriteResult, format_datetime

BULK_CHUNK = 10_000
ABORTABLE = frozenset({"Open", "UploadComplete", "InProgress"})
FINAL = frozenset({"JobComplete", "Failed", "Aborted"})
JOBS_PAGE = 1000  # Get All Jobs answers in pages, as an org does
# What a job says when one of its batches failed on every retry (a real org's wording varies).
BATCH_FAILED = "InternalServerError : a batch failed on each of its retries; the records left were not processed"
# The pace of an org under load (what `make bench`'s slow-org figures and the reliability matrix use).
SLOW_ORG = {"queue_seconds": 2.0, "batch_seconds": 2.0, "batch_workers": 3}


def job_time() -> str:
    """Now, as a job's ``createdDate`` and ``systemModstamp`` show it: to the second (``.000``), as an
    org's do. A client that finds its jobs by time must allow for that (and for the org's clock)."""
    return format_datetime(datetime.now(UTC).replace(microsecond=0))


class Pace(Protocol):
    """The knobs a job reads (a :class:`~sf_sandbox.server.Faults`), read afresh at every step."""

    queue_seconds: float
    batch_seconds: float
    batch_workers: int
    batch_fail_share: float
    fail_job_after_batches: int
    parent_lock_wait_seconds: float


class JobStateError(Exception):
    """What the job's state does not allow (an org answers 400 ``INVALIDJOBSTATE``)."""


class JobBook:
    """Every job's info (the JSON the API answers), in its own SQLite file under its own lock.

    Kept apart from the records so that creating, closing and polling a job never waits for another
    job's rows being written, as on an org. State changes are read-change-write under the lock, so an
    abort never loses to a batch's progress being saved at the same moment.
    """

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, info TEXT NOT NULL)")
        self.lock = threading.Lock()

    def get(self, job_id: str) -> dict | None:
        with self.lock:
            row = self.db.execute("SELECT info FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def all(self) -> list[dict]:
        with self.lock:
            rows = self.db.execute("SELECT info FROM jobs").fetchall()
        return sorted((json.loads(r[0]) for r in rows), key=lambda info: (info.get("createdDate", ""), info["id"]))

    def save(self, info: dict) -> None:
        info["systemModstamp"] = job_time()
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?)", (info["id"], json.dumps(info)))

    def update(self, job_id: str, change: Callable[[dict], None]) -> dict:
        """Apply ``change`` to the job's info atomically; the new info (``change`` may raise to refuse)."""
        with self.lock:
            row = self.db.execute("SELECT info FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobStateError(f"Job {job_id} does not exist")
            info = json.loads(row[0])
            change(info)
            info["systemModstamp"] = job_time()
            self.db.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?)", (job_id, json.dumps(info)))
        return info

    def close(self, job_id: str, has_data: bool) -> dict:
        """``UploadComplete`` from ``Open`` only: a second close is refused, as an org refuses it."""

        def change(info: dict) -> None:
            if info["state"] != "Open":
                raise JobStateError(f"Cannot change state from {info['state']} to UploadComplete")
            if has_data:
                info["state"] = "UploadComplete"
            else:
                info.update(state="Failed", errorMessage="InvalidBatch : No data uploaded")

        return self.update(job_id, change)

    def abort(self, job_id: str) -> dict:
        """``Aborted`` from ``Open``, ``UploadComplete`` or ``InProgress`` (the batch running finishes)."""

        def change(info: dict) -> None:
            if info["state"] not in ABORTABLE:
                raise JobStateError(f"Cannot change state from {info['state']} to Aborted")
            info["state"] = "Aborted"

        return self.update(job_id, change)

    def delete(self, job_id: str, folder: Path) -> None:
        with self.lock:
            self.db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        shutil.rmtree(folder, ignore_errors=True)

    def clear(self, jobs_dir: Path) -> None:
        """Drop every job and its files (a reset; benchmarks would otherwise fill the disk)."""
        with self.lock:
            self.db.execute("DELETE FROM jobs")
        for folder in jobs_dir.iterdir():
            shutil.rmtree(folder, ignore_errors=True)


class Workers:
    """The org's batch workers, shared by all jobs: a batch waits for a free one (``batch_workers``)."""

    def __init__(self, size: Callable[[], int]) -> None:
        self.size = size
        self.busy = 0
        self.free = threading.Condition()

    def __enter__(self) -> None:
        with self.free:
            while self.busy >= max(1, self.size()):
                self.free.wait(0.2)  # the size is a knob that may change meanwhile
            self.busy += 1

    def __exit__(self, *_: object) -> None:
        with self.free:
            self.busy -= 1
            self.free.notify_all()


class Results:
    """A job's outcome files, appended batch by batch, and how far they got (``progress.json``).

    ``outcomes.txt`` holds one ``id,created`` line per processed row (empty for a failure), turned into
    ``successfulResults`` only if asked for (most clients never ask); ``failedResults.csv`` is served
    as it is. After a restart the files are cut back to the last batch recorded as done, and the job
    goes on from the row after it.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        saved = json.loads((folder / "progress.json").read_text()) if (folder / "progress.json").exists() else {}
        self.processed = int(saved.get("processed", 0))
        self.failed = int(saved.get("failed", 0))
        self.outcomes = (folder / "outcomes.txt").open("ab")
        self.outcomes.truncate(int(saved.get("outcomes_bytes", 0)))
        self.bad = (folder / "failedResults.csv").open("ab")
        self.bad.truncate(int(saved.get("failed_bytes", 0)))

    def __enter__(self) -> Results:
        return self

    def __exit__(self, *_: object) -> None:
        self.outcomes.close()
        self.bad.close()

    def start(self, header: list[str]) -> None:
        if not self.bad.tell():
            self.bad.write(_csv_line(["sf__Id", "sf__Error", *header]))

    def add(self, rows: list[list[str]], results: list[WriteResult], end_line: int) -> None:
        lines = []
        bad = io.StringIO()
        out = csv.writer(bad, quoting=csv.QUOTE_ALL, lineterminator="\n")
        for row, result in zip(rows, results, strict=True):
            if result.success:
                lines.append(f"{result.id},{'true' if result.created else 'false'}")
            else:
                first = result.errors[0]
                out.writerow(["", f"{first['statusCode']}:{first['message']}", *row])
                lines.append("")
                self.failed += 1
        self.outcomes.write(("\n".join(lines) + "\n").encode())
        self.bad.write(bad.getvalue().encode())
        self.processed += len(rows)
        self.outcomes.flush()
        self.bad.flush()
        progress = {
            "line": end_line,  # the upload's line where the processed rows end
            "processed": self.processed,
            "failed": self.failed,
            "outcomes_bytes": self.outcomes.tell(),
            "failed_bytes": self.bad.tell(),
        }
        _write_whole(self.folder / "progress.json", json.dumps(progress))


class JobRunner:
    """Runs closed jobs: the queue wait, then one batch at a time on a shared worker, to the end."""

    def __init__(
        self,
        book: JobBook,
        jobs_dir: Path,
        store: Store,
        limits: DailyLimits,
        pace: Callable[[], Pace],
        draw: Callable[[float], bool],
        parents: ParentLocks,
    ) -> None:
        self.book = book
        self.jobs_dir = jobs_dir
        self.store = store
        self.limits = limits
        self.pace = pace
        self.draw = draw  # True with the given probability (the sandbox's seeded generator)
        self.workers = Workers(lambda: self.pace().batch_workers)
        self.parents = parents  # the parent records batches and other writes hold (sf_sandbox.contention)
        # job id -> the upload's line where the rows processed or being processed end, while it runs
        self.claimed: dict[str, int] = {}

    def start(self, job_id: str) -> None:
        threading.Thread(target=self.run, args=(job_id,), daemon=True, name=f"bulk2-{job_id}").start()

    def run(self, job_id: str) -> None:
        """Process a closed job to its end (also one a restart found ``UploadComplete`` or ``InProgress``)."""
        info = self.book.get(job_id)
        if info is None or info["state"] not in ("UploadComplete", "InProgress"):
            return
        if info["state"] == "UploadComplete":
            time.sleep(self.pace().queue_seconds)  # the org's queue
        started = time.perf_counter()
        try:
            state, message = self._process(info, self.jobs_dir / job_id)
        except (ValueError, csv.Error, UnicodeDecodeError) as err:  # the header: nothing was processed
            state, message = "Failed", f"InvalidBatch : {err}"
        except (JobStateError, OSError):  # deleted meanwhile (DELETE, or a reset): nothing to finish
            return
        finally:
            self.claimed.pop(job_id, None)
        elapsed = int((time.perf_counter() - started) * 1000)

        def end(current: dict) -> None:
            if current["state"] != "Aborted":  # an abort that came during the last batch stands
                current["state"] = state
            if message:
                current["errorMessage"] = message
            current["totalProcessingTime"] = current.get("totalProcessingTime", 0) + elapsed

        try:
            self.book.update(job_id, end)
        except JobStateError:
            pass  # deleted meanwhile

    def _process(self, info: dict, folder: Path) -> tuple[str, str | None]:
        """The job's batches, one after another; its end state and error message."""
        obj = self.store.sobject(info["object"])
        with (folder / "data.csv").open(newline="", encoding="utf-8") as src:
            reader = csv.reader(src)
            header = next(reader, [])
            unknown = [h for h in header if obj is None or obj.field(h) is None]
            if unknown:
                raise ValueError(f"Field name not found : {unknown[0]}")
            with Results(folder) as results:
                results.start(header)
                deque(islice(reader, results.processed), maxlen=0)  # done before a restart
                number = results.processed // BULK_CHUNK
                while True:
                    first_line = reader.line_num  # the batch's rows start after this line of the upload
                    try:
                        rows = list(islice(reader, BULK_CHUNK))
                    except (csv.Error, UnicodeDecodeError) as err:
                        _write_unprocessed(folder, first_line)
                        return "Failed", f"InvalidBatch : Failed to parse the CSV data: {err}"
                    if not rows:
                        (folder / "unprocessedrecords.csv").write_bytes(_csv_line(header))  # nothing left
                        return "JobComplete", None
                    stop = self._batch(info, obj, header, rows, results, (number, reader.line_num))  # type: ignore[arg-type]
                    if stop:
                        _write_unprocessed(folder, first_line)
                        return stop
                    number += 1

    def _batch(
        self,
        info: dict,
        obj: SObject,
        header: list[str],
        rows: list[list[str]],
        results: Results,
        place: tuple[int, int],
    ) -> tuple[str, str | None] | None:
        """One internal batch on a worker; the job's end when it ends here (aborted, or this batch failed).

        ``place``: the batch's number in its job, and the upload's line where its rows end.
        """
        number, end_line = place

        def claim(current: dict) -> None:  # under the book's lock: an abort comes before or after, whole
            if current["state"] == "UploadComplete":
                current["state"] = "InProgress"
            if current["state"] != "Aborted":
                self.claimed[info["id"]] = end_line  # an abort from now on leaves the rows after these

        with self.workers:
            if self.book.update(info["id"], claim)["state"] == "Aborted":
                return "Aborted", None
            pace = self.pace()
            if (pace.fail_job_after_batches and number >= pace.fail_job_after_batches) or self.draw(
                pace.batch_fail_share
            ):
                return "Failed", BATCH_FAILED
            began = time.perf_counter()
            wanted = parents_of(rows, locked_columns(obj, header)) if pace.parent_lock_wait_seconds else set()
            with self.parents.holding(wanted, pace.parent_lock_wait_seconds) as locked:  # for the whole batch
                operation, key = info["operation"], info.get("externalIdFieldName")
                written = self.store.write_rows(obj, header, rows, operation, key, locked)
                results.add(rows, written, end_line)
                time.sleep(max(0.0, pace.batch_seconds - (time.perf_counter() - began)))

        def done(current: dict) -> None:
            current.update(numberRecordsProcessed=results.processed, numberRecordsFailed=results.failed)

        self.book.update(info["id"], done)
        self.store.bump("bulk2.rows", len(rows))
        self.limits.spend("DailyBulkApiBatches", 1, refuse=False)
        return None


def job_results(folder: Path, info: dict, which: str, claimed: int | None = None) -> bytes | None:
    """``successfulResults``, ``failedResults`` or ``unprocessedrecords`` of a job that has ended.

    An aborted job may still be running the batch it had begun (an org stops after it): its
    unprocessed records are then those after the rows that batch holds (``claimed``, a line of the
    upload), and its figures and other results catch up when the batch is done. So the results hold
    just the records the job's figures count: a batch's outcomes are on disk (for a restart) before
    the figures take them in, and a client must not see them until then. ``None``: no such results.
    """
    name = {
        "successfulresults": "successfulResults",
        "failedresults": "failedResults",
        "unprocessedrecords": "unprocessedrecords",
    }.get(which.lower())
    if name is None:
        return None
    if info["state"] not in FINAL:
        raise JobStateError("Job is not complete")
    if name == "successfulResults":
        return successful_results(folder, int(info.get("numberRecordsProcessed") or 0))
    path = folder / f"{name}.csv"
    if name == "failedResults":
        counted = _first_records(path, int(info.get("numberRecordsFailed") or 0)) if path.exists() else b""
        return counted or _csv_line(["sf__Id", "sf__Error"])
    if path.exists():
        return path.read_bytes()
    data = folder / "data.csv"
    if not data.exists():
        return b""  # aborted before anything was uploaded
    if claimed is None and (folder / "progress.json").exists():  # aborted, then the sandbox restarted
        claimed = int(json.loads((folder / "progress.json").read_text()).get("line", 1))
    return "".join(_unprocessed_lines(folder, claimed or 1)).encode()


def successful_results(folder: Path, processed: int) -> bytes:
    """``successfulResults`` of a job: ``sf__Id``, ``sf__Created`` and the uploaded columns, of the first
    ``processed`` rows (those the job's figures count)."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    data, outcomes = folder / "data.csv", folder / "outcomes.txt"
    if not data.exists():
        return _csv_line(["sf__Id", "sf__Created"])
    with data.open(newline="", encoding="utf-8") as src:
        reader = csv.reader(src)
        writer.writerow(["sf__Id", "sf__Created", *next(reader, [])])
        lines = outcomes.open() if outcomes.exists() else io.StringIO()
        with lines:
            for row, line in islice(zip(reader, lines, strict=False), processed):  # processed, in upload order
                if line.strip():
                    record_id, created = line.strip().split(",")
                    writer.writerow([record_id, created, *row])
    return out.getvalue().encode()


def _first_records(path: Path, count: int) -> bytes:
    """The header and the first ``count`` records of a results CSV (written with ``QUOTE_ALL``, so
    written again the same way they are the same bytes); empty if not even the header is there yet."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    with path.open(newline="", encoding="utf-8") as src:
        writer.writerows(islice(csv.reader(src), count + 1))
    return out.getvalue().encode()


def _write_unprocessed(folder: Path, first_line: int) -> None:
    """``unprocessedrecords.csv``: see :func:`_unprocessed_lines`."""
    part = folder / "unprocessedrecords.part"
    with part.open("w", newline="", encoding="utf-8") as out:
        out.writelines(_unprocessed_lines(folder, first_line))
    os.replace(part, folder / "unprocessedrecords.csv")


def _unprocessed_lines(folder: Path, first_line: int) -> Iterator[str]:
    """The upload's header, then its lines after ``first_line`` (a ``line_num`` of the job's reader).

    Read the same way as the job's reader read them (text, universal newlines), so the line count
    agrees; undecodable bytes are replaced rather than refused: these lines are handed back, not parsed.
    """
    with (folder / "data.csv").open(newline="", encoding="utf-8", errors="replace") as src:
        yield next(src, "")
        yield from islice(src, max(0, first_line - 1), None)


def _csv_line(values: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerow(values)
    return out.getvalue().encode()


def _write_whole(path: Path, text: str) -> None:
    part = path.with_name(path.name + ".part")
    part.write_text(text)
    os.replace(part, path)
