"""The daily run's deadline: "the day's tracking is in Salesforce by HH:MM" (THRIVE_SYNC_DEADLINE).

The deadline counts from the run's logical date, the start of its day (CronDataIntervalTimetable):
the day, then the time of day after it ends. Airflow fires a deadline that passed whether or not the
run could have met it: a backfill of last month is created long after its days' deadlines. Only a
run created before its deadline alerts when it misses it; the others are logged.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

TIME_OF_DAY = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def parse_time_of_day(raw: str) -> timedelta:
    """``"06:00"`` or ``"06:00:30"``: how long after the day ends; ``ValueError`` saying the form."""
    match = TIME_OF_DAY.match(raw.strip())
    hours, minutes, seconds = (int(part or 0) for part in match.groups()) if match else (99, 0, 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"{raw!r} is not a time of day HH:MM or HH:MM:SS (00:00 to 23:59:59)")
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def after_logical_date(time_of_day: timedelta) -> timedelta:
    """The deadline's interval from the run's logical date (its day's start): the day, then the time.

    A day of 23 or 25 hours (daylight saving time) moves the deadline an hour, as Airflow's deadline
    is an interval from a reference, not a clock time.
    """
    return timedelta(days=1) + time_of_day


def alert_due(created_at: datetime | None, deadline_time: datetime) -> bool:
    """Whether a missed deadline calls for an alert: the run existed before its deadline (or its
    creation time is not known)."""
    return created_at is None or created_at < deadline_time
