"""Retention: which ``Thrive_Activity__c`` records are old enough to delete, per category.

A million events a day is gigabytes of org storage a week (about 2 KB per record). The retention DAG
deletes records older than a number of days per category, and only when told to: the
``THRIVE_SYNC_RETENTION_DAYS`` setting, a number for every category or ``category=days`` pairs. The
rules here are plain code the unit tests call; the DAG does the I/O.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from thrive_sync.core.catalog import Category
from thrive_sync.core.mapping import Mapping
from thrive_sync.errors import ConfigurationError

RETENTION_VARIABLE = "THRIVE_SYNC_RETENTION_DAYS"


def parse_retention(text: str | None) -> dict[Category, int]:
    """``{category: days}`` from the setting: empty (retention off), ``"90"`` (every category) or
    ``"message_activity=90, surveys_events=365"`` (those categories only)."""
    text = (text or "").strip()
    if not text:
        return {}
    if "=" not in text:
        return dict.fromkeys(Category, _days(text, text))
    days: dict[Category, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = (s.strip() for s in part.partition("="))
        try:
            category = Category(name)
        except ValueError:
            known = ", ".join(c.value for c in Category)
            raise ConfigurationError(f"{RETENTION_VARIABLE}: {name!r} is not a category (one of {known})") from None
        days[category] = _days(value, part)
    return days


def _days(value: str, part: str) -> int:
    try:
        days = int(value)
    except ValueError:
        raise ConfigurationError(f"{RETENTION_VARIABLE}: {part!r}: the days must be a whole number") from None
    if days < 1:
        raise ConfigurationError(f"{RETENTION_VARIABLE}: {part!r}: keep at least 1 day")
    return days


@dataclass(frozen=True)
class RetentionQuery:
    """How the records of one category older than ``cutoff`` are found in the org, a job's worth at a time."""

    sobject: str
    external_id_field: str
    category_field: str
    date_field: str

    @classmethod
    def from_mapping(cls, mapping: Mapping) -> RetentionQuery:
        """The mapping's object and the fields it writes the category and the activity's time to."""
        by_source = {source: name for name, source in mapping.fields.items()}
        missing = [source for source in ("category", "occurred_at") if source not in by_source]
        if missing:
            raise ConfigurationError(
                f"Retention finds old records by their category and time, but the mapping {mapping.path} writes "
                f"no field from {', '.join(missing)}: map them, or turn retention off ({RETENTION_VARIABLE})"
            )
        return cls(mapping.object, mapping.external_id_field, by_source["category"], by_source["occurred_at"])

    def soql(self, category: Category, cutoff: datetime, limit: int, skip: Collection[str] = ()) -> str:
        """The oldest ``limit`` records of ``category`` from before ``cutoff`` but those in ``skip`` (the
        org would not delete them). Deleted ones are gone from the next answer, so asking again until
        none is left needs no cursor."""
        fields = f"Id, {self.external_id_field}, {self.date_field}"
        where = self._older(category, cutoff)
        if skip:
            where += " AND Id NOT IN (" + ", ".join(f"'{record_id}'" for record_id in sorted(skip)) + ")"
        order = f"ORDER BY {self.date_field} LIMIT {limit}"
        return f"SELECT {fields} FROM {self.sobject} WHERE {where} {order}"  # noqa: S608

    def count_soql(self, category: Category, cutoff: datetime) -> str:
        """How many records :meth:`soql` would find in all (a dry run's answer)."""
        return f"SELECT COUNT() FROM {self.sobject} WHERE {self._older(category, cutoff)}"  # noqa: S608

    def _older(self, category: Category, cutoff: datetime) -> str:
        # SOQL, not SQL: names from the mapping (checked against the org), a category from the enum.
        at = cutoff.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        mine = f"{self.external_id_field} != null"  # records this package wrote (others' are not its business)
        return f"{self.category_field} = '{category.value}' AND {self.date_field} < {at} AND {mine}"


def cutoff(window_end: datetime, days: int) -> datetime:
    """Records of activities before this are deleted: ``days`` whole days before the run's window ends."""
    return window_end - timedelta(days=days)
