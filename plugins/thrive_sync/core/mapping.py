"""The editable mapping from a validated event to a Salesforce record (``include/mapping/``)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from thrive_sync.core.catalog import CATALOG
from thrive_sync.errors import MappingError
from thrive_sync.settings import DEFAULT_MAPPING


class SourceValues(NamedTuple):
    """The values a mapping can draw on for one event (the names the mapping file uses)."""

    external_id: str
    activity_code: str
    activity_subcode: str
    occurred_at: str
    contact_id: str | None
    lead_id: str | None
    category: str
    account_id: str
    message_id: str | None
    message_name: str | None
    detail: str | None


SOURCES = frozenset(SourceValues._fields)
PARENT_SOURCES = ("contact_id", "lead_id")  # the member's record: the parent a record's lookup locks


@dataclass(frozen=True)
class Mapping:
    object: str
    external_id_field: str
    fields: dict[str, str]
    truncate: dict[str, int] = field(default_factory=dict)
    path: str = ""
    leave_out: frozenset[tuple[str, str]] = frozenset()  # (code, subcode) pairs not written: skipped

    @property
    def parent_fields(self) -> tuple[str, ...]:
        """The fields that look up the member's Contact or Lead (the org locks it while writing)."""
        return tuple(name for name, source in self.fields.items() if source in PARENT_SOURCES)

    def row_maker(self) -> Callable[[SourceValues], tuple[Sequence[Any], list[str]]]:
        """A function from an event's :class:`SourceValues` to ``(row, fields cut to fit)``.

        The row holds the Salesforce fields in :attr:`fields` order (the Bulk CSV header). Built
        once per task, it runs once per event: without truncation it is a single ``itemgetter``.
        """
        positions = [SourceValues._fields.index(source) for source in self.fields.values()]
        pick = itemgetter(*positions) if len(positions) > 1 else (lambda values: (values[positions[0]],))
        limits = [(i, name, self.truncate[name]) for i, name in enumerate(self.fields) if name in self.truncate]
        if not limits:
            return lambda values: (pick(values), [])

        def with_truncation(values: SourceValues) -> tuple[Sequence[Any], list[str]]:
            row = pick(values)
            cut = [name for i, name, limit in limits if isinstance(row[i], str) and len(row[i]) > limit]
            if not cut:
                return row, cut
            row = list(row)
            for i, name, limit in limits:
                if name in cut:
                    row[i] = row[i][:limit]
            return row, cut

        return with_truncation

    def org_problem(self, described: dict[str, dict] | None, conn_id: str) -> str | None:
        """What keeps the org behind ``conn_id`` from taking these records, from its describe of
        :attr:`object` (``None``: no such object); ``None`` when nothing does.

        Fields must exist and be writable, and the external ID field must be marked External ID,
        or an upsert on it is refused record by record.
        """
        if described is None:
            return (
                f"the org behind connection {conn_id!r} has no object {self.object!r}, which the mapping file "
                f"{self.path} writes to: deploy include/salesforce to the org, or fix 'object' in the mapping"
            )
        missing = [name for name in self.fields if name not in described]
        if missing:
            return (
                f"the org behind connection {conn_id!r} has no field(s) {missing} on {self.object}, which the "
                f"mapping file {self.path} writes: deploy include/salesforce, or fix 'fields' in the mapping"
            )
        read_only = [n for n in self.fields if not (described[n]["createable"] and described[n]["updateable"])]
        if read_only:
            return (
                f"field(s) {read_only} of {self.object} cannot be written through connection {conn_id!r}: give "
                "the integration user edit access to them (field-level security), or drop them from the mapping"
            )
        if not described[self.external_id_field].get("externalId"):
            return (
                f"{self.object}.{self.external_id_field} is not an External ID field in the org behind "
                f"connection {conn_id!r}: upserts need it marked External ID (and Unique)"
            )
        return None


def mapping_digest(path: str | Path | None = None) -> str:
    """SHA-256 (hex) of the mapping file: part of every row's content digest in the event ledger, so a
    changed mapping makes every row's record new (its fields may differ), and the run sends it."""
    return hashlib.sha256(Path(path or DEFAULT_MAPPING).read_bytes()).hexdigest()


def load_mapping(path: str | Path = DEFAULT_MAPPING) -> Mapping:
    """Read and check a mapping file; :class:`MappingError` says what is wrong with it."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise MappingError(f"mapping file {path} cannot be read: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise MappingError(f"mapping file {path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("fields"), dict):
        raise MappingError(f"mapping file {path} needs 'object', 'external_id_field' and a 'fields' table")
    fields = {str(k): str(v) for k, v in raw["fields"].items()}
    unknown = sorted(set(fields.values()) - SOURCES)
    if unknown:
        raise MappingError(f"mapping file {path}: unknown source value(s) {unknown}; use one of {sorted(SOURCES)}")
    ext = str(raw.get("external_id_field") or "")
    if fields.get(ext) != "external_id":
        raise MappingError(f"mapping file {path}: external_id_field {ext!r} must be mapped from external_id")
    truncate = {str(k): int(v) for k, v in (raw.get("truncate") or {}).items()}
    stray = sorted(set(truncate) - set(fields))
    if stray:
        raise MappingError(f"mapping file {path}: truncate names fields that are not mapped: {stray}")
    return Mapping(str(raw.get("object") or ""), ext, fields, truncate, str(path), _leave_out(raw, path))


def _leave_out(raw: dict, path: Path) -> frozenset[tuple[str, str]]:
    """The ``leave_out`` pairs: each ``[code, subcode]`` of the vendor's catalog (exact strings)."""
    given = raw.get("leave_out") or []
    pairs = [tuple(p) for p in given if isinstance(p, list) and len(p) == 2 and all(isinstance(v, str) for v in p)]
    if not isinstance(given, list) or len(pairs) != len(given):
        raise MappingError(f"mapping file {path}: leave_out must be a list of [code, subcode] pairs, such as "
                           "[[Sent, Delivered]]")  # fmt: skip
    unknown = sorted(set(pairs) - {(a.code, a.subcode) for a in CATALOG})
    if unknown:
        raise MappingError(f"mapping file {path}: leave_out names pairs the vendor's catalog does not have: {unknown}")
    return frozenset(pairs)  # type: ignore[arg-type]
