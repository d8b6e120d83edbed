"""The daily run's deadline (thrive_sync.core.deadline) and its setting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from thrive_sync.core.deadline import after_logical_date, alert_due, parse_time_of_day
from thrive_sync.settings import Deployment

DEADLINE = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "after"),
    [("06:00", timedelta(hours=6)), ("0:05", timedelta(minutes=5)), ("23:59:59", timedelta(hours=24, seconds=-1))],
)
def test_a_time_of_day_is_how_long_after_the_day_ends(raw, after):
    assert parse_time_of_day(raw) == after


def test_the_deadline_counts_a_day_from_the_logical_date_then_the_time():
    logical_date = datetime(2026, 11, 26, tzinfo=UTC)  # a scheduled run's: the start of its day
    assert logical_date + after_logical_date(parse_time_of_day("06:00")) == DEADLINE


@pytest.mark.parametrize(
    ("created", "due"),
    [
        (DEADLINE - timedelta(hours=4), True),  # the scheduled run, at 02:00: could have made it
        (DEADLINE + timedelta(days=30), False),  # a backfill of that day a month later
        (DEADLINE, False),
        (None, True),  # not known: say it
    ],
)
def test_only_a_run_created_before_its_deadline_alerts(created, due):
    assert alert_due(created, DEADLINE) is due


def test_off_unless_set():
    assert Deployment.from_environ({}).deadline_after_day is None
    deployment = Deployment.from_environ({"THRIVE_SYNC_DEADLINE": " 06:30 "})
    assert deployment.deadline_after_day == timedelta(hours=6, minutes=30)
