"""The tracking-log page in the Airflow UI: a FastAPI app the plugin mounts at ``/thrive-sync``.

It reads ``thrive_sync.sync_runs``, ``thrive_sync.tracking_log`` and ``thrive_sync.event_ledger``
through the ``thrive_db`` connection and shows the last 30 days per category (a table and a bar
chart with the open failures carried forward), one run's counts, what happened to one member or
event (every outcome the ledger holds), and the tracking log filtered by run, account, category,
reason code, member ID and event id, a page at a time, with a CSV download of the whole selection
(streamed: a day's log can be large).

Airflow does not authenticate plugin apps (a mounted app inherits none of the API's
dependencies), so every route depends on Airflow's own ``requires_access_dag`` for this DAG's runs:
the user's Airflow login (the UI's session cookie or a bearer token) decides, as for the DAG's pages.
The page is server-rendered HTML with an inline SVG chart: no build step, nothing to download.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, StreamingResponse

from thrive_sync.core.report import ORG_FIGURES
from thrive_sync.hooks.thrive_store import ThriveStoreHook, execute
from thrive_sync.settings import DAG_ID
from thrive_sync.sql import read_sql

PAGE_SIZE = 50
CHART_DAYS = 30
HISTORY_ROWS = 1_000  # a member's outcomes shown at most
ORG_COLUMNS = ("salesforce_conn_id", *ORG_FIGURES)
HISTORY_COLUMNS = (
    "account_id",
    "category",
    "event_id",
    "occurred_at",
    "status",
    "reason_code",
    "error_code",
    "attempts",
    "first_dag_run_id",
    "last_dag_run_id",
    "last_attempt_at",
    "written_at",
    "custom_member_id",
)
LOG_COLUMNS = (
    "dag_run_id",
    "account_id",
    "category",
    "event_id",
    "recipient_id",
    "custom_member_id",
    "activity_code",
    "activity_subcode",
    "occurred_at",
    "reason_code",
    "reason_detail",
    "logged_at",
)


@dataclass(frozen=True)
class LogFilter:
    """The page's filters; an empty field is no filter."""

    run_id: str | None = None
    account_id: str | None = None
    category: str | None = None
    reason_code: str | None = None
    member_id: str | None = None
    event_id: int | None = None

    def params(self) -> dict[str, Any]:
        return {k: (v or None) for k, v in self.__dict__.items()}

    def query(self, **more: Any) -> str:
        return urlencode({k: v for k, v in {**self.__dict__, **more}.items() if v})


Filters = Annotated[LogFilter, Depends()]  # the dataclass's fields are the query parameters
Page = Annotated[int, Query(ge=1)]


def _connect() -> Any:
    return ThriveStoreHook().get_conn()


def thrive_db() -> Iterator[Any]:
    """One connection per request: the page makes four queries."""
    with _connect() as conn:
        yield conn


Db = Annotated[Any, Depends(thrive_db)]


def runs_by_day(conn: Any, days: int = CHART_DAYS) -> list[dict[str, Any]]:
    rows = execute(conn, "ui/runs_by_day.sql", {"days": days})
    keys = ("day", "category", "dag_run_id", "extracted", "written", "failed", "skipped", "unchanged")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def backlog_by_day(conn: Any, days: int = CHART_DAYS) -> dict[Any, int]:
    """Open failures the ledger carries forward, per event day."""
    return dict(execute(conn, "ui/backlog_by_day.sql", {"days": days}))


def history(conn: Any, flt: LogFilter) -> list[dict[str, Any]]:
    """The ledger's outcome of every event of a member, or of one event (empty without either filter)."""
    rows = execute(conn, "ui/ledger_history.sql", {**flt.params(), "limit": HISTORY_ROWS})
    return [dict(zip(HISTORY_COLUMNS, row, strict=True)) for row in rows]


def run_counts(conn: Any, run_id: str, category: str | None) -> list[dict[str, Any]]:
    rows = execute(conn, "ui/run_counts.sql", {"run_id": run_id, "category": category or None})
    keys = ("category", "account_id", "extracted", "written", "failed", "skipped", "unchanged", "deferred", "skip_gate")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def org_usage(conn: Any, run_id: str) -> list[dict[str, Any]]:
    """Per org the run wrote to: API requests and Bulk batches spent and left, rows deferred (the report's)."""
    rows = execute(conn, "sync/org_usage_report.sql", {"run_id": run_id})
    return [dict(zip(ORG_COLUMNS, row, strict=True)) for row in rows]


def log_page(conn: Any, flt: LogFilter, page: int, page_size: int = PAGE_SIZE) -> tuple[int, list[dict[str, Any]]]:
    total = execute(conn, "ui/log_count.sql", flt.params())[0][0]
    rows = execute(conn, "ui/log_page.sql", {**flt.params(), "limit": page_size, "offset": (page - 1) * page_size})
    return total, [dict(zip(LOG_COLUMNS, row, strict=True)) for row in rows]


def log_csv(flt: LogFilter) -> Iterator[str]:
    """The selection as CSV, read from a server-side cursor 2,000 rows at a time.

    It opens its own connection: the response is streamed after the request's handler returned.
    """
    sql = read_sql("ui/log_page.sql")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(LOG_COLUMNS)
    yield out.getvalue()
    with _connect() as conn, conn.cursor(name="log_csv") as cur:
        cur.itersize = 2_000
        cur.execute(sql, {**flt.params(), "limit": None, "offset": 0})
        for row in cur:
            out.seek(0)
            out.truncate()
            writer.writerow(row)
            yield out.getvalue()


def _access() -> Any:
    """Airflow's own check: may this user read this DAG's runs?"""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=DAG_ID)


def create_app() -> FastAPI:
    app = FastAPI(title="Thrive tracking sync", dependencies=[Depends(_access())])

    @app.get("/api/runs")
    def api_runs(db: Db, days: Annotated[int, Query(ge=1, le=366)] = CHART_DAYS) -> list[dict[str, Any]]:
        return runs_by_day(db, days)

    @app.get("/api/runs/{run_id}")
    def api_run(db: Db, run_id: str, category: str | None = None) -> list[dict[str, Any]]:
        return run_counts(db, run_id, category)

    @app.get("/api/runs/{run_id}/orgs")
    def api_run_orgs(db: Db, run_id: str) -> list[dict[str, Any]]:
        return org_usage(db, run_id)

    @app.get("/api/history")
    def api_history(db: Db, flt: Filters) -> dict[str, Any]:
        """What happened to a member (``member_id``) or an event (``event_id``, with ``account_id``):
        the ledger's latest outcome per event, and every tracking-log row."""
        if not (flt.member_id or flt.event_id is not None):
            raise HTTPException(422, "give member_id, or event_id (with account_id)")
        _, log_rows = log_page(db, flt, 1, HISTORY_ROWS)
        return {"ledger": history(db, flt), "log": log_rows}

    @app.get("/api/log")
    def api_log(
        db: Db, flt: Filters, page: Page = 1, page_size: Annotated[int, Query(ge=1, le=1000)] = PAGE_SIZE
    ) -> dict[str, Any]:
        total, rows = log_page(db, flt, page, page_size)
        return {"total": total, "page": page, "page_size": page_size, "rows": rows}

    @app.get("/log.csv")
    def download(flt: Filters) -> StreamingResponse:
        name = "tracking_log" + ("_" + flt.run_id.replace(":", "").replace("+", "") if flt.run_id else "")
        return StreamingResponse(
            log_csv(flt), media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}.csv"'}
        )

    @app.get("/", response_class=HTMLResponse)
    def page(db: Db, flt: Filters, page: Page = 1) -> str:
        days = runs_by_day(db)
        counts = run_counts(db, flt.run_id, flt.category) if flt.run_id else []
        orgs = org_usage(db, flt.run_id) if flt.run_id else []
        total, rows = log_page(db, flt, page)
        overview = Overview(days, backlog_by_day(db), history(db, flt), orgs)
        return render_page(flt, page, overview, counts, total, rows)

    return app


# --- HTML -------------------------------------------------------------------------------------
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1b2430}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;font-size:.9rem}
th,td{border:1px solid #d5dbe3;padding:.25rem .5rem;text-align:left}
td.n{text-align:right}
form{display:flex;gap:.5rem;flex-wrap:wrap;align-items:end;margin-bottom:1rem}
label{display:flex;flex-direction:column;font-size:.8rem}
.legend span{display:inline-block;width:.8rem;height:.8rem;margin:0 .25rem 0 1rem}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def render_chart(days: list[dict[str, Any]], backlog: dict[Any, int]) -> str:
    """Per day: written (this run or before, unchanged) and failed as stacked bars, and beside them
    the failures of that day the ledger still carries forward (inline SVG)."""
    per_day: dict[Any, list[int]] = {}
    for row in days:
        totals = per_day.setdefault(row["day"], [0, 0])
        totals[0] += int(row["written"]) + int(row["unchanged"])
        totals[1] += int(row["failed"])
    if not per_day:
        return "<p>No runs in the last 30 days.</p>"
    ordered = sorted(per_day.items())
    top = max(max(w + f, backlog.get(day, 0)) for day, (w, f) in ordered) or 1
    width, height, bar = 30 * len(ordered) + 40, 160, 16
    bars = []
    for i, (day, (written, failed)) in enumerate(ordered):
        x, still_open = 30 + i * 30, backlog.get(day, 0)
        hw, hf, ho = (130 * n / top for n in (written, failed, still_open))
        bars.append(
            f"<g><title>{_e(day)}: {written:,} written, {failed:,} failed, {still_open:,} still open</title>"
            f'<rect x="{x}" y="{140 - hw:.1f}" width="{bar}" height="{hw:.1f}" fill="#2e7d32"/>'
            f'<rect x="{x}" y="{140 - hw - hf:.1f}" width="{bar}" height="{hf:.1f}" fill="#c62828"/>'
            f'<rect x="{x + bar}" y="{140 - ho:.1f}" width="6" height="{ho:.1f}" fill="#f9a825"/>'
            f'<text x="{x}" y="155" font-size="8">{_e(str(day)[5:])}</text></g>'
        )
    return (
        f'<svg id="chart" width="{width}" height="{height}" role="img" aria-label="written and failed per day">'
        + "".join(bars)
        + '</svg><div class="legend"><span style="background:#2e7d32"></span>written'
        '<span style="background:#c62828"></span>failed'
        '<span style="background:#f9a825"></span>failures still open in the ledger</div>'
    )


def _table(table_id: str, columns: tuple[str, ...], rows: list[dict[str, Any]], numeric: set[str]) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td{' class=n' if c in numeric else ''}>{_e(r[c])}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


@dataclass(frozen=True)
class Overview:
    """What the page shows besides the log: the days, their open backlog, a member's or event's history,
    and the picked run's org allowances."""

    days: list[dict[str, Any]]
    backlog: dict[Any, int]
    history: list[dict[str, Any]]
    orgs: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def render_page(
    flt: LogFilter,
    page: int,
    overview: Overview,
    counts: list[dict[str, Any]],
    total: int,
    rows: list[dict[str, Any]],
) -> str:
    counted = ("extracted", "written", "failed", "skipped", "unchanged")
    fields = "".join(
        f'<label>{name.replace("_", " ")}<input name="{name}" value="{_e(getattr(flt, name))}"></label>'
        for name in (f.name for f in dataclasses.fields(LogFilter))
    )
    run_part = ""
    if flt.member_id or flt.event_id is not None:
        run_part += "<h2>What happened to it (event ledger)</h2>" + _table(
            "history", HISTORY_COLUMNS, overview.history, {"event_id", "attempts"}
        )
    if flt.run_id:
        run_part += f"<h2>Run {_e(flt.run_id)}</h2>" + _table(
            "run-counts", ("category", "account_id", *counted, "deferred", "skip_gate"), counts, {*counted, "deferred"}
        )
        run_part += "<h3>Org allowances (spent by the run, left after it)</h3>" + _table(
            "org-usage", ORG_COLUMNS, overview.orgs, set(ORG_COLUMNS) - {"salesforce_conn_id", "notes"}
        )
    last = max(1, -(-total // PAGE_SIZE))
    pager = " ".join(
        f'<a href="?{_e(flt.query(page=n))}">{label}</a>'
        for n, label in ((page - 1, "previous"), (page + 1, "next"))
        if 1 <= n <= last
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Thrive tracking log</title>
<style>{STYLE}</style></head><body>
<h1>Thrive tracking sync</h1>
<h2>Last {CHART_DAYS} days</h2>{render_chart(overview.days, overview.backlog)}
{_table("days", ("day", "category", "dag_run_id", *counted), overview.days, set(counted))}
{run_part}
<h2>Tracking log</h2>
<form method="get">{fields}<button type="submit">Filter</button></form>
<p><span id="log-total">{total:,}</span> rows; page {page} of {last}. {pager}
<a id="csv" href="log.csv?{_e(flt.query())}">Download CSV</a></p>
{_table("log", LOG_COLUMNS, rows, {"event_id", "recipient_id"})}
</body></html>"""
