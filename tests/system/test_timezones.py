"""Days in the sync's time zone (issue 16, item 4): with ``THRIVE_SYNC_TIMEZONE=America/New_York`` the
runs of the spring-forward and fall-back days cover exactly 23 and 25 hours, and the days around them
meet without gap or overlap: every source event of the hours they cover is considered once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

import dag_runs
from conftest import wire
from thrive_dev.sample_data import SampleConfig, load
from thrive_sync.core.catalog import SOURCE_TABLE

ZONE = "America/New_York"


def runs_of(db: str) -> list[tuple[datetime, datetime, int, int]]:
    """Each run's window and its extracted and written rows, oldest first."""
    with psycopg.connect(db) as conn:
        return conn.execute(
            "SELECT min(window_start), max(window_end), sum(extracted), sum(written) FROM thrive_sync.sync_runs"
            " GROUP BY dag_run_id ORDER BY 1"
        ).fetchall()


def source_events(db: str, start: datetime, end: datetime) -> int:
    union = " UNION ALL ".join(f"SELECT occurred_at FROM thrive.{table}" for table in SOURCE_TABLE.values())
    with psycopg.connect(db) as conn:
        return conn.execute(
            f"SELECT count(*) FROM ({union}) e WHERE occurred_at >= %s AND occurred_at < %s",
            [start, end],  # noqa: S608
        ).fetchone()[0]


@pytest.mark.parametrize(
    ("first_utc_day", "days", "hours"),
    [
        (date(2026, 3, 7), ["2026-03-08T06:00:00+00:00", "2026-03-09T06:00:00+00:00", "2026-03-10T06:00:00+00:00"],
         [24, 23, 24]),  # spring forward: Sunday 8 March 2026
        (date(2026, 10, 31), ["2026-11-01T06:00:00+00:00", "2026-11-02T06:00:00+00:00", "2026-11-03T06:00:00+00:00"],
         [24, 25, 24]),  # fall back: Sunday 1 November 2026
    ],
    ids=["spring forward", "fall back"],
)  # fmt: skip
def test_the_days_around_a_clock_change_cover_their_hours_once(
    first_utc_day, days, hours, fresh_db, pg_server, org, sf, monkeypatch, airflow_metadata
):
    load(fresh_db, SampleConfig(start=first_utc_day, days=4, events=2_000, recipients_per_account=40, seed=3))
    wire(fresh_db, pg_server, org, monkeypatch)
    monkeypatch.setenv("THRIVE_SYNC_TIMEZONE", ZONE)
    for run_date in days:
        result = dag_runs.dags_test({"delay_minutes": 0, "lookback_days": 0, "retry_days": 0}, run_date=run_date)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    runs = runs_of(fresh_db)
    assert [(end - start) / timedelta(hours=1) for start, end, *_ in runs] == hours
    assert all(runs[i][1] == runs[i + 1][0] for i in range(len(runs) - 1))  # no gap, no overlap
    local_midnight = runs[0][0].astimezone(UTC)
    assert local_midnight.hour in (4, 5) and local_midnight.minute == 0  # midnight in New York, as UTC
    for start, end, extracted, _ in runs:
        assert extracted == source_events(fresh_db, start, end)  # every event of its hours, and only those
    records = sf.query("SELECT COUNT() FROM Thrive_Activity__c")["totalSize"]
    assert records == sum(written for *_, written in runs) > 0  # nothing written twice across the days
