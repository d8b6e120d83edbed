"""The sandbox's HTTPS server: Salesforce REST, sObject Collections, SOQL, Bulk API 2.0 ingest.

Built on the standard library's threading HTTP server wrapped in TLS: a test double needs
exact control over status codes, headers and dropped connections more than a framework's
conveniences. Paths, shapes and status codes follow ``shared/spec/salesforce-wire.md``.

Admin endpoints under ``/__sandbox/`` (same token) let tests read counters, set faults, seed
records with given Ids and reset the org.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import ssl
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from sf_sandbox import logins, soql
from sf_sandbox.contention import ParentLocks, locked_columns, parents_of
from sf_sandbox.jobs import JOBS_PAGE, JobBook, JobRunner, JobStateError, job_results, job_time
from sf_sandbox.limits import DailyLimits, LimitExceeded
from sf_sandbox.orgschema import SObject, load_org
from sf_sandbox.store import Store, WriteResult, now_sf

API_VERSION = "59.0"
MAX_UPLOAD_BYTES = 150 * 1024 * 1024
QUERY_PAGE = 2000


@dataclass
class Faults:
    """Fault injection, all off by default but the Bulk job pace. Shares are probabilities per API request (or row)."""

    error_503_share: float = 0.0
    limit_403_share: float = 0.0
    invalid_session_share: float = 0.0
    drop_share: float = 0.0
    lock_row_share: float = 0.0
    latency_ms: int = 0
    latency_share: float = 1.0  # the share of requests that take latency_ms longer
    latency_after_ms: int = 0  # how late an answer comes after its work is done
    latency_after_share: float = 0.0  # the share of requests answered latency_after_ms late
    latency_after_requests: int = 0  # the next N API requests are answered latency_after_ms late
    upsert_race_ms: int = 0  # the pause between an upsert's lookup of its external IDs and its inserts
    limit_403_burst: int = 1  # a 403 drawn by limit_403_share comes with this many in a row
    outage_requests: int = 0  # the next N API requests are answered 503, then service resumes
    invalid_session_requests: int = 0  # the next N API requests are answered 401 INVALID_SESSION_ID
    limit_403_requests: int = 0  # the next N API requests are answered 403 REQUEST_LIMIT_EXCEEDED
    # Bulk API 2.0 jobs (sf_sandbox.jobs): the org's pace, on by default, and failures, off by default.
    queue_seconds: float = 0.1  # how long a closed job waits in the org's queue before its first batch
    batch_seconds: float = 0.05  # the least time one internal batch (10,000 records) holds a worker
    batch_workers: int = 3  # the org's batch workers, shared by all jobs
    batch_fail_share: float = 0.0  # that share of batches fails its job (the rest is left unprocessed)
    fail_job_after_batches: int = 0  # N > 0: every job fails at its batch N + 1
    # Parent-record locks (sf_sandbox.contention): above 0, writes hold the Contacts and Leads their rows
    # look up, and a row waits this long for one another write holds, then fails UNABLE_TO_LOCK_ROW.
    parent_lock_wait_seconds: float = 0.0
    drop_after_share: float = 0.0  # that share of job requests does its work, then loses its answer
    drop_after_requests: int = 0  # the next N job requests do their work, then lose their answer
    drop_after_calls: str = "create,upload,close,abort,poll"  # which job requests the two above touch
    seed: int = 1


class Sandbox:
    """The org: schema, store, jobs and faults, shared by all request threads."""

    def __init__(self, root: Path, metadata: Path, token: str) -> None:
        self.root = root
        self.token = token
        self.objects = load_org(metadata)
        self.store = Store(root / "org.sqlite3", self.objects)
        self.jobs_dir = root / "jobs"
        self.jobs_dir.mkdir(exist_ok=True)
        self.book = JobBook(root / "jobs.sqlite3")
        self.queries: dict[str, soql.Query] = {}
        self.faults = Faults()
        self.limits = DailyLimits(root / "limits.json")
        self.rng = random.Random(self.faults.seed)
        self.lock = threading.Lock()
        if os.environ.get("SF_SANDBOX_FAULTS"):
            self.set_faults(json.loads(os.environ["SF_SANDBOX_FAULTS"]))
        self.parents = ParentLocks()
        self.runner = JobRunner(
            self.book, self.jobs_dir, self.store, self.limits, lambda: self.faults, self.draw, self.parents
        )
        for info in self.all_jobs():  # a restart finishes what was in flight
            if info["state"] in ("UploadComplete", "InProgress"):
                self.runner.start(info["id"])

    def set_faults(self, values: dict | None) -> Faults:
        """Change the knobs in ``values``, keeping the others; ``None``: every knob back to its default."""
        with self.lock:
            self.faults = Faults() if values is None else Faults(**{**asdict(self.faults), **values})
            self.rng = random.Random(self.faults.seed)
            self.store.lock_row_share = self.faults.lock_row_share
            self.store.upsert_race_seconds = self.faults.upsert_race_ms / 1000
            self.store.rng = random.Random(self.faults.seed + 1)
            return self.faults

    def draw_fault(self) -> str | None:
        """Which fault, if any, this API request meets."""
        with self.lock:
            f = self.faults
            if f.outage_requests > 0:
                f.outage_requests -= 1
                return "503"
            if f.invalid_session_requests > 0:
                f.invalid_session_requests -= 1
                return "401"
            if f.limit_403_requests > 0:
                f.limit_403_requests -= 1
                return "403"
            for name, share in (
                ("drop", f.drop_share),
                ("503", f.error_503_share),
                ("403", f.limit_403_share),
                ("401", f.invalid_session_share),
            ):
                if share and self.rng.random() < share:
                    if name == "403":
                        f.limit_403_requests = f.limit_403_burst - 1
                    return name
        return None

    def delay_seconds(self) -> float:
        """How long this request waits before it is handled (the slow-org fault)."""
        with self.lock:
            f = self.faults
            if f.latency_ms and (f.latency_share >= 1 or self.rng.random() < f.latency_share):
                return f.latency_ms / 1000
        return 0.0

    def late_seconds(self) -> float:
        """How long this request's answer waits after its work is done (the effect happened; the answer is late)."""
        with self.lock:
            f = self.faults
            if not f.latency_after_ms:
                return 0.0
            if f.latency_after_requests > 0:
                f.latency_after_requests -= 1
                return f.latency_after_ms / 1000
            if f.latency_after_share and (f.latency_after_share >= 1 or self.rng.random() < f.latency_after_share):
                return f.latency_after_ms / 1000
        return 0.0

    # --- Bulk 2.0 jobs (processed by sf_sandbox.jobs) --------------------------------------------
    def job(self, job_id: str) -> dict | None:
        return self.book.get(job_id)

    def all_jobs(self) -> list[dict]:
        return self.book.all()

    def save_job(self, info: dict) -> None:
        self.book.save(info)

    def delete_job(self, job_id: str) -> None:
        self.book.delete(job_id, self.jobs_dir / job_id)

    def forget_jobs(self) -> None:
        """Drop every Bulk job and its files (a reset; benchmarks would otherwise fill the disk)."""
        self.book.clear(self.jobs_dir)

    def process_job(self, job_id: str) -> None:
        """Run a closed job to its end, in this thread."""
        self.runner.run(job_id)

    def change_job_state(self, job_id: str, state: object) -> dict:
        """A client's PATCH of a job's state: close it (and queue it), or abort it."""
        if state == "UploadComplete":
            info = self.book.close(job_id, has_data=(self.jobs_dir / job_id / "data.csv").exists())
            if info["state"] == "UploadComplete":
                self.runner.start(job_id)
            return info
        if state == "Aborted":
            return self.book.abort(job_id)
        raise JobStateError(f"Cannot change a job's state to {state}")

    def write_records(self, obj: SObject, records: list[dict], mode: str, ext: str | None, **options: bool) -> list:
        """``Store.write_many`` holding the parents the records look up while it writes (when the
        ``parent_lock_wait_seconds`` knob models contention): the same locks Bulk batches take."""
        wait = self.faults.parent_lock_wait_seconds
        wanted: set[str] = set()
        if wait:
            for record in records:
                names = list(record)
                wanted |= parents_of([list(record.values())], locked_columns(obj, names))
        with self.parents.holding(wanted, wait) as locked:
            return self.store.write_many(obj, records, mode, ext, locked=locked, **options)

    def draw(self, share: float) -> bool:
        """True with probability ``share``, from the seeded generator (the same draws for the same seed)."""
        if not share:
            return False
        with self.lock:
            return share >= 1 or self.rng.random() < share

    def drop_answer(self, call: str) -> bool:
        """Whether this job request (``create``, ``upload``, ``close``, ``abort``, ``poll``) loses its answer.

        Its work is done first: a client that resends it meets a job already created, uploaded or
        closed, as after a real timeout (the ``drop_after_*`` knobs).
        """
        with self.lock:
            f = self.faults
            if call not in f.drop_after_calls.split(","):
                return False
            if f.drop_after_requests > 0:
                f.drop_after_requests -= 1
            elif not (f.drop_after_share and self.rng.random() < f.drop_after_share):
                return False
        self.store.tally(f"faults.drop_after.{call}")
        return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SandboxServer
    late = 0.0  # seconds this request's answer waits once its work is done (``latency_after_ms``)

    # --- plumbing -------------------------------------------------------------------------------
    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes; with Nagle on, the body waits for the client's
        # delayed ACK (40 ms on Linux) and every small API call would take 40 ms more than an org's.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        if os.environ.get("SF_SANDBOX_ACCESS_LOG"):
            super().log_message(format, *args)

    def send(
        self,
        status: int,
        body: object = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        payload = (
            b""
            if body is None
            else (
                body
                if isinstance(body, bytes)
                else body.encode()
                if isinstance(body, str)
                else json.dumps(body).encode()
            )
        )
        if self.late:  # the work is done, its effect visible; only the answer is late
            late, self.late = self.late, 0.0
            time.sleep(late)
        self.send_response(status)
        if payload or status not in (204, 304):
            self.send_header("Content-Type", content_type + ("; charset=UTF-8" if "json" in content_type else ""))
        self.send_header("Content-Length", str(len(payload)))
        sandbox = self.server.sandbox
        api = sandbox.limits.answer()["DailyApiRequests"]
        self.send_header("Sforce-Limit-Info", f"api-usage={api['Max'] - api['Remaining']}/{api['Max']}")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    def fail(self, status: int, code: str, message: str) -> None:
        self.send(status, [{"message": message, "errorCode": code}])

    def body(self) -> bytes:
        """The request body, read once (a body left unread would be parsed as the next request)."""
        if self._body is None:
            length = int(self.headers.get("Content-Length") or 0)
            self._body = self.rfile.read(length) if length else b""
        return self._body

    def json_body(self) -> object:
        raw = self.body()
        try:
            return json.loads(raw or b"null")
        except json.JSONDecodeError as err:
            raise _Reply(400, "JSON_PARSER_ERROR", f"Unexpected character: {err}") from None

    def authorized(self) -> bool:
        """The static token (``DIR/token``) or a live login session (:mod:`sf_sandbox.auth`)."""
        auth = self.headers.get("Authorization", "")
        given = auth[7:] if auth.startswith("Bearer ") else self.headers.get("X-SFDC-Session", "")
        return self.server.sandbox.auth.accepts(given)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's names
        self.dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self.dispatch("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self.dispatch("PATCH")

    def do_PUT(self) -> None:  # noqa: N802
        self.dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self.dispatch("DELETE")

    def dispatch(self, method: str) -> None:
        sandbox = self.server.sandbox
        url = urlsplit(self.path)
        path = unquote(url.path)
        self._body: bytes | None = None
        if not (method == "PUT" and path.endswith("/batches")):  # uploads are streamed to disk instead
            self.body()
        try:
            if method == "POST":  # logins take no session: answered before the check
                instance_url = f"https://127.0.0.1:{self.server.server_address[1]}"
                login = logins.answer(sandbox.auth, path, self.headers.get("Host", ""), self.body(), instance_url)
                if login:
                    sandbox.store.tally(f"logins.{login.outcome}")
                    return self.send(login.status, login.body, login.content_type)
            if not self.authorized():
                self.body()  # drain an upload
                sandbox.store.tally("refused.INVALID_SESSION_ID")
                return self.fail(401, "INVALID_SESSION_ID", "Session expired or invalid")
            if path.startswith("/__sandbox/"):
                return self.admin(method, path[len("/__sandbox/") :])
            sandbox.store.tally("api_calls")
            sandbox.store.tally(f"api_calls.{method} {_kind(path)}")
            try:
                sandbox.limits.spend("DailyApiRequests")
            except LimitExceeded:
                self.body()  # drain an upload
                return self.fail(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            fault = sandbox.draw_fault()
            delay = sandbox.delay_seconds()
            if delay:
                time.sleep(delay)
            if fault:
                self.body()  # drain an upload
                return self.inject(fault)
            self.late = sandbox.late_seconds()
            bulk1 = re.fullmatch(r"/services/async/[\d.]+/(job.*?)/?", path)
            if bulk1:
                return self.bulk_v1(method, bulk1.group(1).split("/")[1:])
            m = re.fullmatch(r"/services/data/v[\d.]+/(.*?)/?", path)
            if not m:
                return self.fail(404, "NOT_FOUND", "The requested resource does not exist")
            return self.route(method, m.group(1), parse_qs(url.query))
        except _Reply as reply:
            self.body()  # drain an upload refused before it was read
            self.fail(reply.status, reply.code, reply.message)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
        except Exception as exc:  # a sandbox bug must still answer, as an org's 500 would
            self.log_error("unhandled %s: %s", type(exc).__name__, exc)
            self.fail(500, "UNKNOWN_EXCEPTION", f"An unexpected error occurred: {type(exc).__name__}")

    def inject(self, fault: str) -> None:
        if fault == "drop":
            self.close_connection = True
            self.connection.close()
        elif fault == "503":
            self.fail(503, "SERVER_UNAVAILABLE", "Service temporarily unavailable")
        elif fault == "403":  # a concurrency refusal, which clears; a spent daily limit is DailyLimits'
            self.fail(403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded.")
        else:
            self.fail(401, "INVALID_SESSION_ID", "Session expired or invalid")

    # --- REST -----------------------------------------------------------------------------------
    def route(self, method: str, rest: str, query: dict[str, list[str]]) -> None:
        parts = rest.split("/")
        head = parts[0]
        if head == "limits":
            return self.send(200, self.server.sandbox.limits.answer(self.server.sandbox.store.record_count()))
        if head in ("query", "queryAll") and method == "GET":
            return self.query(parts[1] if len(parts) > 1 else None, (query.get("q") or [""])[0], head)
        if head == "sobjects" and len(parts) >= 2:
            return self.sobjects(method, self.sobject(parts[1]), parts[2:])
        if head == "composite" and len(parts) >= 2 and parts[1] == "sobjects":
            return self.collections(method, parts[2:])
        if head == "jobs" and len(parts) >= 2 and parts[1] == "ingest":
            return self.ingest(method, parts[2:], query)
        raise _Reply(404, "NOT_FOUND", "The requested resource does not exist")

    def sobject(self, name: str) -> SObject:
        obj = self.server.sandbox.store.sobject(name)
        if obj is None:
            raise _Reply(404, "NOT_FOUND", f"The requested resource does not exist: sObject type '{name}'")
        return obj

    def sobjects(self, method: str, obj: SObject, rest: list[str]) -> None:
        """``/sobjects/X/...``: create, describe, and a record by Id or by external ID (each its own method)."""
        store = self.server.sandbox.store
        rest = [r for r in rest if r]
        if not rest and method == "POST":
            record = self.json_body()
            result = store.write_many(obj, [record if isinstance(record, dict) else {}], "insert")[0]
            return self.result(result, created_status=201, with_created=False)
        if rest == ["describe"] and method == "GET":
            return self.send(200, describe(obj))
        if len(rest) == 1:
            return self.record_by_id(method, obj, rest[0])
        if len(rest) == 2:
            return self.record_by_key(method, obj, rest[0], rest[1])
        raise _Reply(404, "NOT_FOUND", "The requested resource does not exist")

    def record_by_id(self, method: str, obj: SObject, record_id: str) -> None:
        """``/sobjects/X/{Id}``: read, update (``PATCH``: 204, no body) or delete one record."""
        store = self.server.sandbox.store
        if method == "GET":
            found = store.get(obj, record_id)
            if not found:
                raise _Reply(404, "NOT_FOUND", "The requested resource does not exist")
            if found.get("IsDeleted") == "true":  # in the recycle bin: queryAll sees it, a read by Id does not
                raise _Reply(404, "ENTITY_IS_DELETED", "entity is deleted")
            return self.send(200, record_json(obj, found))
        if method == "PATCH":
            record = self.json_body()
            result = store.write_many(
                obj, [{**(record if isinstance(record, dict) else {}), "Id": record_id}], "update"
            )[0]
            if result.success:
                return self.send(204)
            return self.result(result)
        if method == "DELETE":
            if store.delete(obj, record_id):
                return self.send(204)
            raise _Reply(404, "ENTITY_IS_DELETED", "entity is deleted")
        raise _Reply(404, "NOT_FOUND", "The requested resource does not exist")

    def record_by_key(self, method: str, obj: SObject, field_name: str, key: str) -> None:
        """``/sobjects/X/{external ID field}/{value}``: read the first match, or upsert on the key.

        An upsert on a key several records share is refused with 300 and their URLs, as an org
        answers (a non-unique external ID, such as Contact's ``Legacy_Id__c``).
        """
        store = self.server.sandbox.store
        field = obj.field(field_name)
        if field is None:
            raise _Reply(
                404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {field_name}"
            )
        if method == "GET":
            ids = store.find_by(obj, field.name, key)
            if not ids:
                raise _Reply(404, "NOT_FOUND", "The requested resource does not exist")
            return self.send(200, record_json(obj, store.get(obj, ids[0]) or {}))
        if method == "PATCH":
            if len(store.find_by(obj, field.name, key)) > 1:
                return self.send(
                    300,
                    [
                        f"/services/data/v{API_VERSION}/sobjects/{obj.name}/{i}"
                        for i in store.find_by(obj, field.name, key)
                    ],
                )
            record = self.json_body()
            record = {**(record if isinstance(record, dict) else {}), field.name: key}
            result = store.write_many(obj, [record], "upsert", field.name)[0]
            return self.result(result, created_status=201 if result.created else 200)
        raise _Reply(404, "NOT_FOUND", "The requested resource does not exist")

    def result(self, result: WriteResult, created_status: int = 200, with_created: bool = True) -> None:
        if not result.success:
            return self.send(
                400,
                [{"message": e["message"], "errorCode": e["statusCode"], "fields": e["fields"]} for e in result.errors],
            )
        body: dict = {"id": result.id, "success": True, "errors": []}
        if with_created:
            body["created"] = result.created
        self.send(created_status, body)

    def collections(self, method: str, rest: list[str]) -> None:
        """sObject Collections: create (POST) and upsert on an external ID (PATCH), at most 200 records."""
        payload = self.json_body()
        if not isinstance(payload, dict) or not isinstance(payload.get("records"), list):
            raise _Reply(400, "JSON_PARSER_ERROR", "Expected a JSON object with records")
        records = payload["records"]
        if len(records) > 200:
            raise _Reply(400, "EXCEEDED_ID_LIMIT", "Record limit reached. Reduce the number of records in the request.")
        all_or_none = bool(payload.get("allOrNone"))
        if method == "PATCH" and len(rest) == 2:
            obj = self.sobject(rest[0])
            field = obj.field(rest[1])
            if field is None:
                raise _Reply(
                    404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {rest[1]}"
                )
            mode, ext = "upsert", field.name
        elif method == "POST" and not [r for r in rest if r]:
            types = {(r.get("attributes") or {}).get("type") for r in records if isinstance(r, dict)}
            if len(types) != 1 or None in types:
                raise _Reply(400, "INVALID_TYPE", "Each record needs attributes.type, one type per request here")
            obj, mode, ext = self.sobject(types.pop()), "insert", None  # type: ignore[arg-type]
        else:
            raise _Reply(404, "NOT_FOUND", "The requested resource does not exist")
        results = self.server.sandbox.write_records(
            obj, [r if isinstance(r, dict) else {} for r in records], mode, ext, all_or_none=all_or_none
        )
        out = []
        for r in results:
            item: dict = {"id": r.id, "success": r.success, "errors": r.errors}
            if mode == "upsert" and r.success:
                item["created"] = r.created
            out.append(item)
        self.send(200, out)

    def query(self, locator: str | None, q: str, resource: str = "query") -> None:
        """SOQL: ``query`` sees the live records, ``queryAll`` deleted ones too."""
        sandbox = self.server.sandbox
        offset = 0
        if locator:
            key, _, offset_text = locator.rpartition("-")
            parsed = sandbox.queries.get(key)
            if parsed is None:
                raise _Reply(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            offset = int(offset_text)
        else:
            try:
                parsed = soql.parse(q, sandbox.objects, all_rows=resource == "queryAll")
            except soql.SoqlError as err:
                raise _Reply(400, err.code, str(err)) from None
            key = uuid.uuid4().hex[:15]
        if parsed.count:
            sql, params = parsed.sql()
            total = sandbox.store.select(sql, params)[1][0][0]
            return self.send(200, {"totalSize": total, "done": True, "records": []})
        count_sql = f'SELECT COUNT(*) FROM (SELECT 1 FROM "{parsed.sobject.name}"{parsed.where_sql}' + (
            f" LIMIT {parsed.limit})" if parsed.limit is not None else ")"
        )
        total = sandbox.store.select(count_sql, list(parsed.params))[1][0][0]
        sql, params = parsed.sql(offset, QUERY_PAGE)
        columns, rows = sandbox.store.select(sql, params)
        records = [record_json(parsed.sobject, dict(zip(columns, row, strict=True))) for row in rows]
        body: dict = {"totalSize": total, "done": offset + len(rows) >= total, "records": records}
        if not body["done"]:
            sandbox.queries[key] = parsed
            body["nextRecordsUrl"] = f"/services/data/v{API_VERSION}/{resource}/{key}-{offset + len(rows)}"
        self.send(200, body)

    # --- Bulk API 2.0 ---------------------------------------------------------------------------
    def ingest(self, method: str, rest: list[str], query: dict[str, list[str]] | None = None) -> None:
        """Bulk API 2.0 ingest: create, list, upload, close or abort, poll, results, delete.

        A request the job's state does not allow is answered 400 ``INVALIDJOBSTATE`` (Bulk API's
        status codes have no 409): a second close, an upload to a closed job, an abort of an ended one.
        """
        sandbox = self.server.sandbox
        rest = [r for r in rest if r]
        if not rest and method == "POST":
            return self.job_answer("create", 200, self.create_job())
        if not rest and method == "GET":
            return self.send(200, self.list_jobs(int(((query or {}).get("queryLocator") or ["0"])[0] or 0)))
        info = sandbox.job(rest[0]) if rest else None
        if info is None:
            raise _Reply(404, "NOT_FOUND", "The requested resource does not exist")
        step = rest[1:]
        try:
            if step == ["batches"] and method == "PUT":
                self.upload_job_data(info)
                return self.job_answer("upload", 201)
            if not step and method == "PATCH":
                state = (self.json_body() or {}).get("state")  # type: ignore[union-attr]
                changed = sandbox.change_job_state(info["id"], state)
                return self.job_answer("close" if state == "UploadComplete" else "abort", 200, changed)
            if not step and method == "GET":
                return self.job_answer("poll", 200, info)
            if not step and method == "DELETE":
                sandbox.delete_job(info["id"])
                return self.send(204)
            if len(step) == 1 and method == "GET":
                claimed = sandbox.runner.claimed.get(info["id"])
                results = job_results(sandbox.jobs_dir / info["id"], info, step[0], claimed)
                if results is not None:
                    return self.send(200, results, "text/csv")
        except JobStateError as err:
            raise _Reply(400, "INVALIDJOBSTATE", str(err)) from None
        raise _Reply(404, "NOT_FOUND", "The requested resource does not exist")

    def job_answer(self, call: str, status: int, body: object = None) -> None:
        """Answer a job request whose work is done, unless the ``drop_after_*`` knobs lose the answer."""
        if self.server.sandbox.drop_answer(call):
            self.close_connection = True
            self.connection.close()
            return
        self.send(status, body)

    def create_job(self) -> dict:
        sandbox = self.server.sandbox
        spec = self.json_body()
        if not isinstance(spec, dict):
            raise _Reply(400, "JSON_PARSER_ERROR", "Expected a JSON object")
        obj = self.sobject(str(spec.get("object")))
        operation = spec.get("operation")
        if operation not in ("insert", "upsert", "update", "delete"):
            raise _Reply(400, "FEATURE_NOT_ENABLED", f"Operation {operation} is not supported by this sandbox")
        ext = spec.get("externalIdFieldName")
        if sandbox.limits.remaining("DailyBulkApiBatches") <= 0:
            raise _Reply(403, "REQUEST_LIMIT_EXCEEDED", "Max Bulk API batches exceeded for the day.")
        if operation == "upsert" and (not ext or obj.field(ext) is None or not obj.field(ext).external_id):  # type: ignore[union-attr]
            raise _Reply(400, "INVALIDJOB", f"InvalidJob : Field name provided, {ext} is not an External ID")
        job_id = "750" + uuid.uuid4().hex[:12].upper()
        info = {
            "id": job_id,
            "operation": operation,
            "object": obj.name,
            "createdById": "005000000000001AAA",
            "createdDate": job_time(),
            "state": "Open",
            "externalIdFieldName": ext,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(API_VERSION),
            "jobType": "V2Ingest",
            "lineEnding": spec.get("lineEnding", "LF"),
            "columnDelimiter": spec.get("columnDelimiter", "COMMA"),
            "numberRecordsProcessed": 0,
            "numberRecordsFailed": 0,
            "retries": 0,
            "totalProcessingTime": 0,
        }
        (sandbox.jobs_dir / job_id).mkdir()
        sandbox.save_job(info)
        sandbox.store.tally("bulk2.jobs")
        return info

    def list_jobs(self, start: int) -> dict:
        """Get All Jobs (ingest), oldest first, in pages with a ``nextRecordsUrl``."""
        jobs = [info for info in self.server.sandbox.all_jobs() if info.get("jobType") == "V2Ingest"]
        page = jobs[start : start + JOBS_PAGE]
        done = start + len(page) >= len(jobs)
        after = f"/services/data/v{API_VERSION}/jobs/ingest?queryLocator={start + len(page)}"
        return {"done": done, "records": page, "nextRecordsUrl": None if done else after}

    def upload_job_data(self, info: dict) -> None:
        """Stream the CSV to disk; one upload per job, to a job that is still ``Open``."""
        folder = self.server.sandbox.jobs_dir / info["id"]
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_UPLOAD_BYTES:
            self._body = b""  # not read: the connection is closed after the answer instead
            self.close_connection = True
            raise _Reply(400, "INVALIDBATCH", "InvalidBatch : The upload exceeds the 150 MB limit per job")
        if info["state"] != "Open":
            self.body()
            raise JobStateError(f"Job is {info['state']}: it takes no more data")
        if (folder / "data.csv").exists():
            self.body()
            raise JobStateError("Job data was uploaded already: a job takes one upload")
        with (folder / "data.part").open("wb") as out:
            remaining = length
            while remaining:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                self._body = b""  # consumed
                if not chunk:
                    raise _Reply(400, "INVALIDBATCH", "InvalidBatch : upload ended early")
                out.write(chunk)
                remaining -= len(chunk)
        (folder / "data.part").rename(folder / "data.csv")

    # --- Bulk API 1.0 (JSON), as far as the provider's SalesforceBulkOperator uses it -------------
    def bulk_v1(self, method: str, rest: list[str]) -> None:
        """``/services/async/.../job[/{id}[/batch[/{id}[/result]]]]``: each resource its own method."""
        sandbox = self.server.sandbox
        if not rest and method == "POST":
            return self.create_v1_job()
        info = sandbox.job(rest[0]) if rest else None
        if info is None:
            raise _Reply(400, "InvalidJob", "Unable to find job")
        folder = sandbox.jobs_dir / info["id"]
        if len(rest) == 1 and method == "POST":
            info["state"] = (self.json_body() or {}).get("state", info["state"])  # type: ignore[union-attr]
            sandbox.save_job(info)
            return self.send(200, info)
        if len(rest) == 1 and method == "GET":
            return self.send(200, info)
        if rest[1:] == ["batch"] and method == "POST":
            return self.add_v1_batch(info, folder)
        if len(rest) >= 3 and rest[1] == "batch" and method == "GET":
            return self.read_v1_batch(folder, rest[2], rest[3:] == ["result"])
        raise _Reply(404, "NOT_FOUND", "The requested resource does not exist")

    def create_v1_job(self) -> None:
        """A new Bulk 1.0 job, ``Open`` for batches; JSON only, the content type the provider's operator sends."""
        sandbox = self.server.sandbox
        spec = self.json_body()
        if not isinstance(spec, dict):
            raise _Reply(400, "InvalidJob", "Expected a JSON object")
        obj = self.sobject(str(spec.get("object")))
        job_id = "750V1" + uuid.uuid4().hex[:10].upper()
        info = {
            "id": job_id,
            "operation": spec.get("operation"),
            "object": obj.name,
            "state": "Open",
            "externalIdFieldName": spec.get("externalIdFieldName"),
            "contentType": "JSON",
            "concurrencyMode": "Parallel",
            "createdDate": now_sf(),
            "numberBatchesTotal": 0,
            "numberRecordsProcessed": 0,
            "numberRecordsFailed": 0,
            "apiVersion": float(API_VERSION),
        }
        (sandbox.jobs_dir / job_id).mkdir()
        sandbox.save_job(info)
        return self.send(201, info)

    def add_v1_batch(self, info: dict, folder: Path) -> None:
        """Queue a batch (a JSON array of records) and answer at once; a thread writes it, as an org does later.

        Each batch spends one of the day's ``DailyBulkApiBatches``, checked before anything is queued.
        """
        sandbox = self.server.sandbox
        records = self.json_body()
        if info["state"] != "Open" or not isinstance(records, list):
            raise _Reply(400, "InvalidBatch", "Job is not open, or the batch is not a JSON array")
        try:
            sandbox.limits.spend("DailyBulkApiBatches")
        except LimitExceeded:
            raise _Reply(403, "REQUEST_LIMIT_EXCEEDED", "Max Bulk API batches exceeded for the day.") from None
        batch_id = "751" + uuid.uuid4().hex[:12].upper()
        batch = {
            "id": batch_id,
            "jobId": info["id"],
            "state": "Queued",
            "createdDate": now_sf(),
            "numberRecordsProcessed": 0,
            "numberRecordsFailed": 0,
        }
        write_whole(folder / f"{batch_id}.json", json.dumps(batch))
        info["numberBatchesTotal"] += 1
        sandbox.save_job(info)
        answer = dict(batch)  # as queued: the thread below changes its own copy, maybe before the answer leaves
        threading.Thread(target=self._run_v1_batch, args=(info, folder, batch, records), daemon=True).start()
        return self.send(201, answer)

    def read_v1_batch(self, folder: Path, batch_id: str, result: bool) -> None:
        """A batch's status, or (``result``) its per-record results, as the files the batch's thread wrote."""
        path = folder / f"{batch_id}.json"
        if not path.exists():
            raise _Reply(400, "InvalidBatch", "Unable to find batch")
        if result:
            return self.send(200, (folder / f"{batch_id}.result.json").read_bytes())
        return self.send(200, path.read_bytes())

    def _run_v1_batch(self, info: dict, folder: Path, batch: dict, records: list) -> None:
        sandbox = self.server.sandbox
        obj = sandbox.store.sobject(info["object"])
        results = sandbox.write_records(
            obj,  # type: ignore[arg-type]
            [r if isinstance(r, dict) else {} for r in records],  # type: ignore[arg-type]
            info["operation"],
            info.get("externalIdFieldName"),
        )
        body = [{"success": r.success, "created": r.created, "id": r.id, "errors": r.errors} for r in results]
        write_whole(folder / f"{batch['id']}.result.json", json.dumps(body))
        batch.update(
            state="Completed",
            numberRecordsProcessed=len(results),
            numberRecordsFailed=sum(not r.success for r in results),
        )
        write_whole(folder / f"{batch['id']}.json", json.dumps(batch))
        sandbox.store.bump("bulk1.rows", len(results))

    # --- admin ----------------------------------------------------------------------------------
    def admin(self, method: str, what: str) -> None:
        sandbox = self.server.sandbox
        if what == "health" and method == "GET":
            return self.send(200, {"ok": True})
        if what == "stats" and method == "GET":
            return self.send(200, sandbox.store.counters())
        if what == "faults" and method == "GET":
            return self.send(200, asdict(sandbox.faults))
        if what == "faults" and method == "PUT":  # knobs given change, the rest stay; {} clears them all
            body = self.json_body()
            return self.send(200, asdict(sandbox.set_faults(body if isinstance(body, dict) and body else None)))
        if what == "limits" and method == "PUT":
            body = self.json_body()
            try:
                sandbox.limits.set(body if isinstance(body, dict) else {})
                return self.send(200, sandbox.limits.answer(sandbox.store.record_count()))
            except ValueError as err:
                raise _Reply(400, "INVALID_FIELD", str(err)) from None
        if what == "sessions/expire" and method == "POST":
            return self.send(200, {"expired": sandbox.auth.sessions.expire_all()})
        if what == "sessions" and method in ("GET", "PUT"):
            body = self.json_body() if method == "PUT" else {}
            try:
                return self.send(200, sandbox.auth.sessions.configure(body if isinstance(body, dict) else {}))
            except (ValueError, TypeError) as err:
                raise _Reply(400, "INVALID_FIELD", str(err)) from None
        if what == "reset" and method == "POST":
            sandbox.store.reset()
            sandbox.limits.reset()
            sandbox.auth.sessions.reset()
            sandbox.forget_jobs()
            return self.send(200, {"ok": True})
        if what in ("convert-lead", "merge") and method == "POST":
            return self.send(200, _people_change(sandbox.store, what, self.json_body()))
        if what.startswith("seed/") and method == "PUT":
            records = self.json_body()
            obj = self.sobject(what[5:])
            return self.send(200, {"seeded": sandbox.store.seed(obj, records if isinstance(records, list) else [])})
        raise _Reply(404, "NOT_FOUND", "no such admin endpoint")


def _people_change(store: Store, what: str, body: object) -> dict:
    """``convert-lead`` (``{"leadId", "contactId"?}``) or ``merge`` (``{"sobject", "masterId", "mergedIds"}``)."""
    body = body if isinstance(body, dict) else {}
    try:
        if what == "convert-lead":
            return {"contactId": store.convert_lead(str(body.get("leadId") or ""), body.get("contactId"))}
        obj = store.sobject(str(body.get("sobject") or ""))
        if obj is None or obj.name not in ("Contact", "Lead"):
            raise ValueError("sobject must be Contact or Lead")
        return {"merged": store.merge(obj, str(body.get("masterId") or ""), list(body.get("mergedIds") or []))}
    except ValueError as err:
        raise _Reply(400, "INVALID_FIELD", str(err)) from None


class _Reply(Exception):  # noqa: N818 - a control-flow signal, not an error of ours
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sandbox: Sandbox, context: ssl.SSLContext) -> None:
        super().__init__(address, Handler)
        self.sandbox = sandbox
        # The TLS handshake runs in the request's thread, not in the accept loop.
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)


def _kind(path: str) -> str:
    """A request's endpoint family, for the per-kind call counters."""
    if path.startswith("/services/async/"):
        return "bulk1"
    m = re.match(r"/services/data/v[\d.]+/([a-z]+)(?:/([A-Za-z_]+))?", path)
    if not m:
        return "other"
    return f"{m.group(1)}/{m.group(2)}" if m.group(1) in ("composite", "jobs") and m.group(2) else m.group(1)


def record_json(obj: SObject, row: dict) -> dict:
    out: dict = {
        "attributes": {"type": obj.name, "url": f"/services/data/v{API_VERSION}/sobjects/{obj.name}/{row.get('Id')}"}
    }
    for key, value in row.items():
        field = obj.field(key)
        if field is not None and field.kind == "boolean" and value is not None:
            value = value == "true"
        out[field.name if field else key] = value
    return out


def describe(obj: SObject) -> dict:
    type_of = {
        "text": "string",
        "datetime": "datetime",
        "reference": "reference",
        "id": "id",
        "autonumber": "string",
        "boolean": "boolean",
        "compound": "string",
    }
    return {
        "name": obj.name,
        "keyPrefix": obj.key_prefix,
        "custom": obj.name.endswith("__c"),
        "createable": True,
        "updateable": True,
        "queryable": True,
        "fields": [
            {
                "name": f.name,
                "label": f.label or f.name,
                "type": type_of[f.kind],
                "length": f.length or 0,
                "externalId": f.external_id,
                "unique": f.unique,
                "createable": f.createable,
                "updateable": f.createable,
                "nillable": not f.required,
                "referenceTo": list(f.reference_to),
                "idLookup": f.name == "Id" or f.external_id,
            }
            for f in obj.fields.values()
        ],
    }


def write_whole(path: Path, text: str) -> None:
    """Replace a file that other request threads may be reading, so that they see old or new, whole.

    ``write_text`` truncates first: a client polling a Bulk 1.0 batch at that moment got an empty
    body. A rename within a folder is atomic on POSIX.
    """
    part = path.with_name(path.name + ".part")
    part.write_text(text)
    os.replace(part, path)
