"""The editable mapping from a validated event to a Salesforce record (``include/mapping/``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from thrive_sync.sql import PROJECT_ROOT

DEFAULT_MAPPING = PROJECT_ROOT / "include" / "mapping" / "thrive_activity.yaml"
SOURCES = frozenset(
    {
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
    }
)


class MappingError(ValueError):
    """The mapping file cannot be used; the message names what to fix."""


@dataclass(frozen=True)
class Mapping:
    object: str
    external_id_field: str
    fields: dict[str, str]
    truncate: dict[str, int] = field(default_factory=dict)
    path: str = ""

    def record(self, values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """The Salesforce record for one event's ``values``, and the fields that were cut to fit."""
        if not self.truncate:  # the common case, once per event: keep it to one comprehension
            return {sf_field: values.get(source) for sf_field, source in self.fields.items()}, []
        record: dict[str, Any] = {}
        cut: list[str] = []
        for sf_field, source in self.fields.items():
            value = values.get(source)
            limit = self.truncate.get(sf_field)
            if limit and isinstance(value, str) and len(value) > limit:
                value, _ = value[:limit], cut.append(sf_field)
            record[sf_field] = value
        return record, cut


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
