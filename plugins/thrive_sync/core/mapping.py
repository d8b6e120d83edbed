"""The editable mapping from a validated event to a Salesforce record (``include/mapping/``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

import yaml

from thrive_sync.preflight import ConfigurationError
from thrive_sync.sql import PROJECT_ROOT

DEFAULT_MAPPING = PROJECT_ROOT / "include" / "mapping" / "thrive_activity.yaml"
# The values a mapping can draw on, in the order the operator hands them over (one tuple per event).
SOURCE_ORDER = (
    "external_id",
    "activity_code",
    "activity_subcode",
    "occurred_at",
    "contact_id",
    "lead_id",
    "category",
    "account_id",
    "message_id",
    "message_name",
    "detail",
)
SOURCES = frozenset(SOURCE_ORDER)


class MappingError(ConfigurationError):
    """The mapping file cannot be used; the message names what to fix."""


@dataclass(frozen=True)
class Mapping:
    object: str
    external_id_field: str
    fields: dict[str, str]
    truncate: dict[str, int] = field(default_factory=dict)
    path: str = ""

    def row_maker(self) -> Callable[[tuple], tuple[Sequence[Any], list[str]]]:
        """A function from a values tuple (:data:`SOURCE_ORDER`) to ``(row, fields cut to fit)``.

        The row holds the Salesforce fields in :attr:`fields` order (the Bulk CSV header). Built
        once per task, it runs once per event: without truncation it is a single ``itemgetter``.
        """
        positions = [SOURCE_ORDER.index(source) for source in self.fields.values()]
        pick = itemgetter(*positions) if len(positions) > 1 else (lambda values: (values[positions[0]],))
        limits = [(i, name, self.truncate[name]) for i, name in enumerate(self.fields) if name in self.truncate]
        if not limits:
            return lambda values: (pick(values), [])

        def with_truncation(values: tuple) -> tuple[Sequence[Any], list[str]]:
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
    return Mapping(str(raw.get("object") or ""), ext, fields, truncate, str(path))
