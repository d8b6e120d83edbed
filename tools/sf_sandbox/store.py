"""The sandbox org's records: SQLite under the sandbox folder, one table per object.

Writes go through :meth:`Store.write_many`, which validates every record the way an org does
(per-record errors with real status codes), so REST, sObject Collections and Bulk ingest share
one set of rules. A lock serialises each step's SQL on the one connection (SQLite's own locking
across threads is not worth the subtlety), but not a whole write: as in an org, a write looks up
the records it will update, lets go, then inserts the new ones, and another request can insert
the same external ID in between; the unique index then refuses the later insert with
``DUPLICATE_VALUE``, the answer an org gives the loser of that race.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sf_sandbox.contention import LOCK_ERROR, LOCK_MESSAGE
from sf_sandbox.ids import is_valid_id, mint_ids, to_18_or_same
from sf_sandbox.orgschema import Field, SObject

UNSET = object()  # an empty Bulk cell: the field is left as it is
NULL_MARKER = "#N/A"  # Bulk API: this value sets a field to null; an empty cell leaves it alone


@dataclass(slots=True)
class WriteResult:
    """One record's outcome, in the shape every API reports it."""

    success: bool
    id: str | None = None
    created: bool = False
    errors: list[dict] = field(default_factory=list)


def error(code: str, message: str, fields: Iterable[str] = ()) -> dict:
    return {"statusCode": code, "message": message, "fields": list(fields)}


def utf16_length(text: str) -> int:
    """A text's length as Salesforce counts it: UTF-16 code units (a character beyond the BMP counts 2).

    ``surrogatepass``: JSON may carry a lone surrogate, which counts one unit instead of failing the request.
    """
    return len(text) if text.isascii() else len(text.encode("utf-16-le", "surrogatepass")) // 2


def fits(text: str, length: int) -> bool:
    """Whether ``text`` fits a text field of ``length``; the usual short or ASCII text is decided without encoding."""
    n = len(text)
    return n <= length and (2 * n <= length or text.isascii() or utf16_length(text) <= length)


def _any_too_long(cells: tuple[str, ...], length: int) -> bool:
    """Whether a cell of a column exceeds ``length`` UTF-16 code units; C-speed checks decide most columns."""
    longest = max(map(len, cells))
    if 2 * longest <= length:
        return False
    if longest > length:
        return True
    return not all(map(str.isascii, cells)) and not all(fits(c, length) for c in set(cells))


def now_sf() -> str:
    """Now, in the format Salesforce returns datetimes: ``2026-11-27T07:21:08.000+0000``."""
    return format_datetime(datetime.now(UTC))


def format_datetime(value: datetime) -> str:
    if value.utcoffset():
        value = value.astimezone(UTC)
    v = value  # formatted by hand: strftime is the slowest step of a Bulk ingest
    date = f"{v.year:04d}-{v.month:02d}-{v.day:02d}"
    return f"{date}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond // 1000:03d}+0000"


def parse_datetime(text: str) -> str | None:
    """A datetime value as the org stores it, or ``None`` when it is not one."""
    text = text.strip()
    if len(text) < 16 or text[10] not in "T ":
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if len(text) == 24 and text[19] == "." and text[23] == "Z":  # already UTC, milliseconds: keep the text
        return text[:23] + "+0000"
    return format_datetime(value if value.tzinfo else value.replace(tzinfo=UTC))


class Store:
    """All records of the sandbox org, plus its counters."""

    def __init__(self, path: Path, objects: dict[str, SObject]) -> None:
        self.objects = objects
        self.lock = threading.RLock()
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=OFF")  # a test double: speed over crash-durability
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        for obj in objects.values():
            columns = ", ".join(
                f'"{f.name}" TEXT' + (" PRIMARY KEY" if f.name == "Id" else "") for f in obj.fields.values()
            )
            self.db.execute(f'CREATE TABLE IF NOT EXISTS "{obj.name}" ({columns})')
            present = {row[1] for row in self.db.execute(f'PRAGMA table_info("{obj.name}")')}
            for f in obj.fields.values():  # a sandbox folder made before a field was known gets it
                if f.name not in present:
                    self.db.execute(f'ALTER TABLE "{obj.name}" ADD COLUMN "{f.name}" TEXT')
            for f in obj.fields.values():
                if f.external_id or f.unique:
                    unique = "UNIQUE " if f.unique else ""
                    self.db.execute(
                        f'CREATE {unique}INDEX IF NOT EXISTS "{obj.name}_{f.name}" ON "{obj.name}" ("{f.name}")'
                    )
        # Request tallies live in memory under their own lock: an API call must not wait for a Bulk
        # chunk's write (which holds ``lock``) just to be counted, or every poll and upload would
        # queue behind the ingest, which an org's API does not do.
        self.tally_lock = threading.Lock()
        self.tallies: dict[str, int] = {}
        self.lock_row_share = 0.0  # fault injection: share of valid rows answered UNABLE_TO_LOCK_ROW
        self.upsert_race_seconds = 0.0  # fault injection: the pause between an upsert's lookup and its inserts
        self.rng = random.Random(0)

    # --- counters -----------------------------------------------------------------------------
    def bump(self, key: str, by: int = 1) -> int:
        with self.lock:
            self.db.execute(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = value + ?", (key, by, by)
            )
            return self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]

    def tally(self, key: str) -> None:
        """Count one request (in memory: see ``tally_lock``)."""
        with self.tally_lock:
            self.tallies[key] = self.tallies.get(key, 0) + 1

    def requests(self, key: str) -> int:
        """A request tally, without waiting for a write in progress."""
        with self.tally_lock:
            return self.tallies.get(key, 0)

    def counters(self) -> dict[str, int]:
        with self.lock:
            stored = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        with self.tally_lock:
            stored.update(self.tallies)
        return dict(sorted(stored.items()))

    def new_ids(self, obj: SObject, count: int) -> list[str]:
        """Fresh 18-character Ids: key prefix, pod ``5T``, a decimal counter, checksum."""
        last = self.bump(f"ids.{obj.name}", count)
        return mint_ids(obj.key_prefix, "5T", last - count + 1, count)

    # --- reads --------------------------------------------------------------------------------
    def sobject(self, name: str) -> SObject | None:
        return self.objects.get(name.lower())

    def get(self, obj: SObject, record_id: str) -> dict | None:
        with self.lock:
            cur = self.db.execute(f'SELECT * FROM "{obj.name}" WHERE "Id" = ?', (to_18_or_same(record_id),))
            row = cur.fetchone()
            return dict(zip([d[0] for d in cur.description], row, strict=True)) if row else None

    def find_by(self, obj: SObject, field_name: str, value: str) -> list[str]:
        with self.lock:
            sql = f'SELECT "Id" FROM "{obj.name}" WHERE "{field_name}" = ? AND coalesce("IsDeleted", \'\') <> \'true\''
            return [r[0] for r in self.db.execute(sql, (value,))]

    def select(self, sql: str, params: list) -> tuple[list[str], list[tuple]]:
        with self.lock:
            cur = self.db.execute(sql, params)
            rows = cur.fetchall()
            return [d[0] for d in cur.description], rows

    def existing_ids(self, obj: SObject, ids: set[str], *, lookups: bool = False) -> set[str]:
        """The Ids among ``ids`` of live records (a merged-away one is deleted); ``lookups``: only those a
        lookup may point at, which leaves out converted Leads too."""
        found: set[str] = set()
        items = list(ids)
        usable = "coalesce(\"IsDeleted\", '') <> 'true'"  # booleans are stored as the text Salesforce sends
        if lookups and obj.field("IsConverted"):
            usable += " AND coalesce(\"IsConverted\", '') <> 'true'"
        with self.lock:
            for start in range(0, len(items), 900):
                chunk = items[start : start + 900]
                marks = ",".join("?" * len(chunk))
                sql = f'SELECT "Id" FROM "{obj.name}" WHERE "Id" IN ({marks}) AND {usable}'
                found |= {r[0] for r in self.db.execute(sql, chunk)}
        return found

    def lookup_refusals(self, obj: SObject, ids: set[str]) -> dict[str, tuple[str, str]]:
        """Why a lookup may not point at these records, as an org says it: deleted, or a converted Lead."""
        refusals: dict[str, tuple[str, str]] = {}
        converted = "\"IsConverted\" = 'true'" if obj.field("IsConverted") else "0"
        items = list(ids)
        with self.lock:
            for start in range(0, len(items), 900):
                chunk = items[start : start + 900]
                marks = ",".join("?" * len(chunk))
                sql = f'SELECT "Id", "IsDeleted" = \'true\', {converted} FROM "{obj.name}" WHERE "Id" IN ({marks})'
                for record_id, deleted, was_converted in self.db.execute(sql, chunk):
                    if deleted:
                        refusals[record_id] = ("ENTITY_IS_DELETED", "entity is deleted")
                    elif was_converted:
                        refusals[record_id] = ("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
        return refusals

    def convert_lead(self, lead_id: str, contact_id: str | None) -> str:
        """The Lead converted into ``contact_id`` (a new Contact from its names when ``None``); that Id."""
        lead, contact = self.sobject("Lead"), self.sobject("Contact")
        assert lead is not None and contact is not None
        record = self.get(lead, lead_id)
        if record is None or "true" in (record.get("IsDeleted"), record.get("IsConverted")):
            raise ValueError(f"no live, unconverted Lead {lead_id}")
        if contact_id is None:
            contact_id = self.new_ids(contact, 1)[0]
            names = {k: record.get(k) for k in ("FirstName", "LastName", "Email")}
            self.seed(contact, [{"Id": contact_id, **names}])
        elif not self.existing_ids(contact, {to_18_or_same(contact_id)}):
            raise ValueError(f"no live Contact {contact_id}")
        with self.lock:
            self.db.execute('UPDATE "Lead" SET "IsConverted" = \'true\', "ConvertedContactId" = ? WHERE "Id" = ?',
                            (to_18_or_same(contact_id), record["Id"]))  # fmt: skip
        return to_18_or_same(contact_id)

    def merge(self, obj: SObject, master_id: str, merged_ids: list[str]) -> int:
        """The merged records deleted, each pointing at the survivor (``MasterRecordId``); how many."""
        master = to_18_or_same(master_id)
        merged = [to_18_or_same(i) for i in merged_ids]
        if not self.existing_ids(obj, {master}) or master in merged:
            raise ValueError(f"no live {obj.name} {master_id} to merge into (or it is among the merged)")
        with self.lock:
            return sum(
                self.db.execute(
                    f'UPDATE "{obj.name}" SET "IsDeleted" = \'true\', "MasterRecordId" = ? WHERE "Id" = ?'
                    " AND coalesce(\"IsDeleted\", '') <> 'true'",
                    (master, record_id),
                ).rowcount
                for record_id in merged
            )

    # --- writes -------------------------------------------------------------------------------

    def _ids_by_key(self, obj: SObject, ext_field: str, keys: list[str]) -> dict[str, str]:
        """``{external key: Id}`` of the records that have one of ``keys`` (900 to a query: SQLite's limit)."""
        found: dict[str, str] = {}
        for start in range(0, len(keys), 900):
            chunk = keys[start : start + 900]
            marks = ",".join("?" * len(chunk))
            found.update(
                self.db.execute(
                    f'SELECT "{ext_field}", "Id" FROM "{obj.name}" WHERE "{ext_field}" IN ({marks})'
                    " AND coalesce(\"IsDeleted\", '') <> 'true'",  # a record in the recycle bin is no match
                    chunk,
                )
            )
        return found

    def _autonumber_names(self, obj: SObject, count: int) -> list[str] | None:
        """The next ``count`` auto-numbered Names of ``obj``; ``None`` when its Name is not auto-numbered."""
        name_field = obj.field("Name")
        if name_field is None or name_field.kind != "autonumber":
            return None
        first = self.bump(f"autonumber.{obj.name}", count) - count + 1
        return [f"TA-{first + n:010d}" for n in range(count)]

    def record_count(self) -> int:
        """Every record the org stores, of every object (its data storage)."""
        with self.lock:
            return sum(self.db.execute(f'SELECT count(*) FROM "{o.name}"').fetchone()[0] for o in self.objects.values())

    def delete(self, obj: SObject, record_id: str) -> bool:
        """A Contact or Lead goes to the recycle bin (``IsDeleted``, seen by ``queryAll``), as in an org;
        other records are removed (their external IDs free again)."""
        with self.lock:
            if obj.field("MasterRecordId"):
                sql = (f"UPDATE \"{obj.name}\" SET \"IsDeleted\" = 'true' WHERE \"Id\" = ?"
                       " AND coalesce(\"IsDeleted\", '') <> 'true'")  # fmt: skip
            else:
                sql = f'DELETE FROM "{obj.name}" WHERE "Id" = ?'
            return self.db.execute(sql, (to_18_or_same(record_id),)).rowcount > 0

    def delete_rows(self, obj: SObject, header: list[str], rows: list[list[str]]) -> list[WriteResult]:
        """A Bulk ``delete`` job's rows: each names a record by ``Id`` (the only column such a job takes)."""
        if [h.lower() for h in header] != ["id"]:
            raise ValueError(f"A delete job takes one column, Id; this one has {header}")
        self.bump("records.received", len(rows))
        results = []
        for (record_id,) in rows:
            if not is_valid_id(record_id) or not to_18_or_same(record_id).startswith(obj.key_prefix):
                results.append(WriteResult(False, errors=[error("MALFORMED_ID", f"invalid record id: {record_id}")]))
            elif self.lock_row_share and self.rng.random() < self.lock_row_share:  # the lock fault, as writes meet it
                self.bump("faults.lock_row")
                results.append(WriteResult(False, errors=[error(LOCK_ERROR, LOCK_MESSAGE)]))
            elif self.delete(obj, record_id):
                results.append(WriteResult(True, id=to_18_or_same(record_id)))
            else:
                results.append(WriteResult(False, errors=[error("ENTITY_IS_DELETED", "entity is deleted")]))
        return results

    def seed(self, obj: SObject, records: list[dict]) -> int:
        """Admin path: store records with the Ids they carry (the sample data's Contacts and Leads)."""
        now = now_sf()
        columns = sorted({k for r in records for k in r} | {"CreatedDate", "LastModifiedDate", "SystemModstamp"})
        rows = [
            tuple({**r, "CreatedDate": now, "LastModifiedDate": now, "SystemModstamp": now}.get(c) for c in columns)
            for r in records
        ]
        with self.lock:
            self.db.execute("BEGIN")
            self.db.executemany(
                f'INSERT OR REPLACE INTO "{obj.name}" ({", ".join(chr(34) + c + chr(34) for c in columns)})'
                f" VALUES ({', '.join('?' * len(columns))})",
                rows,
            )
            self.db.execute("COMMIT")
        return len(rows)

    def reset(self) -> None:
        """Delete every record and counter (tests)."""
        with self.lock:
            for obj in self.objects.values():
                self.db.execute(f'DELETE FROM "{obj.name}"')
            self.db.execute("DELETE FROM meta WHERE key NOT LIKE 'ids.%'")
        with self.tally_lock:
            self.tallies.clear()

    def write_many(
        self,
        obj: SObject,
        records: list[dict],
        mode: str,
        ext_field: str | None = None,
        *,
        empty_is_unset: bool = False,
        all_or_none: bool = False,
        locked: frozenset[str] = frozenset(),
    ) -> list[WriteResult]:
        """Insert, update (records carry ``Id``) or upsert (on ``ext_field``) ``records``, each validated.

        Values are strings or ``None`` (JSON numbers and booleans are accepted as their text).
        ``empty_is_unset``: Bulk CSV semantics, where an empty cell changes nothing and ``#N/A``
        sets null. ``all_or_none``: write nothing unless every record would succeed. ``locked``:
        parents (15-character Ids) another write held too long; rows looking them up fail
        ``UNABLE_TO_LOCK_ROW`` (``sf_sandbox.contention``).
        """
        results = [WriteResult(False) for _ in records]
        clean: list[dict | None] = []
        plan: dict = {}
        for record, result in zip(records, results, strict=True):
            values, errors = self._check_fields(obj, record, mode, ext_field, empty_is_unset, plan)
            result.errors = errors
            clean.append(None if errors else values)
        return self._write_checked(obj, clean, results, mode, ext_field, all_or_none, locked)

    def write_rows(
        self,
        obj: SObject,
        header: list[str],
        rows: list[list[str]],
        mode: str,
        ext_field: str | None,
        locked: frozenset[str] = frozenset(),
    ) -> list[WriteResult]:
        """Bulk CSV rows: :meth:`write_many` with Bulk semantics, screening whole columns first.

        Cells are screened a column at a time (text within length, parseable datetimes, Ids of the
        right shape) and taken as they are; only the rows with a cell that is not plainly valid go
        through the cell-by-cell checks, so that each bad cell gets its own error.
        """
        if mode == "delete":
            return self.delete_rows(obj, header, rows)
        screened = self._screen_columns(obj, header, rows, ext_field)
        if screened is None or locked:
            records = [dict(zip(header, r, strict=False)) for r in rows]
            return self.write_many(obj, records, mode, ext_field, empty_is_unset=True, locked=locked)
        clean_columns, gaps, bad_rows = screened
        names = [obj.field(h).name for h in header]  # type: ignore[union-attr]
        plan: dict = {}
        checked = {
            i: self._check_fields(obj, dict(zip(header, rows[i], strict=True)), mode, ext_field, True, plan)
            for i in sorted(bad_rows)
        }
        # Doubted rows that are all invalid get their errors; the rest can go a column at a time. A
        # doubted row that is valid after all (a ``#N/A`` cell, say) sends the chunk the long way,
        # which keeps its place among the others.
        if mode in ("insert", "upsert") and all(errors for _, errors in checked.values()):
            failing = {i: errors for i, (_, errors) in checked.items()}
            written = self._write_good_rows(obj, names, clean_columns, failing, mode, ext_field)
            if written is not None:
                return written
        clean: list[dict | None] = [
            {n: v for n, v in zip(names, values, strict=True) if v is not UNSET}
            if gaps
            else dict(zip(names, values, strict=True))
            for values in zip(*clean_columns, strict=True)
        ]
        results = [WriteResult(False) for _ in rows]
        for i, (values, errors) in checked.items():
            results[i].errors = errors
            clean[i] = None if errors else values
        return self._write_checked(obj, clean, results, mode, ext_field, False)

    def _write_checked(
        self,
        obj: SObject,
        clean: list[dict | None],
        results: list[WriteResult],
        mode: str,
        ext_field: str | None,
        all_or_none: bool,
        locked: frozenset[str] = frozenset(),
    ) -> list[WriteResult]:
        """The checks that need the org's data (lookups, duplicate keys), faults, then the write.

        Two steps under the lock, not one: what exists is looked up, then (after the race window)
        the write; see the module docstring.
        """
        with self.lock:
            self.bump("records.received", len(clean))
            self._check_references(obj, clean, results)
            if mode == "upsert":
                self._check_duplicate_keys(clean, results, ext_field or "")
            self._inject_lock_failures(clean, results)
            self._fail_locked_parents(obj, clean, results, locked)
            planned = self._plan(obj, clean, results, mode, ext_field, all_or_none)
        if planned is None:
            return results
        existing, inserts = planned
        self._race_window(mode == "upsert" and bool(inserts))
        with self.lock:
            self._apply(obj, clean, results, mode, ext_field, existing, inserts, all_or_none)
        return results

    def _race_window(self, inserting: bool) -> None:
        """The gap between an upsert's lookup and its inserts, widened by the ``upsert_race_ms`` fault."""
        if inserting and self.upsert_race_seconds:
            time.sleep(self.upsert_race_seconds)

    def _write_good_rows(
        self,
        obj: SObject,
        names: list[str],
        columns: list[list],
        failing: dict[int, list[dict]],
        mode: str,
        ext_field: str | None,
    ) -> list[WriteResult] | None:
        """The ``failing`` rows get their errors; the others go a column at a time (``None``: they can't)."""
        count = len(columns[0]) if columns else 0
        keep = [i for i in range(count) if i not in failing]
        if failing and keep:
            columns = [[column[i] for i in keep] for column in columns]
        written = self._write_clean_columns(obj, names, columns, mode, ext_field) if keep else []
        if written is None:
            return None
        if failing:
            self.bump("records.received", len(failing))
        good = iter(written)
        return [WriteResult(False, errors=failing[i]) if i in failing else next(good) for i in range(count)]

    def _write_clean_columns(
        self, obj: SObject, names: list[str], columns: list[list], mode: str, ext_field: str | None
    ) -> list[WriteResult] | None:
        """Write a chunk a column at a time when no row can fail; ``None`` sends it the long way.

        The long way (:meth:`_write_checked`) builds a dict per row to give each row its own errors.
        A chunk whose cells all passed the screen usually has no failing row at all, and the same
        checks (lookups exist, keys unique, required fields there) can be made on whole columns;
        the first sign of a failing row hands the chunk back, so the rules stay in one place.
        """
        rows = len(columns[0]) if columns else 0
        position = {n: i for i, n in enumerate(names)}
        key_column = columns[position[ext_field]] if mode == "upsert" and ext_field in position else None
        if not rows or "Id" in position or (mode == "upsert" and key_column is None):
            return None
        if key_column is not None and len(set(key_column)) != rows:
            return None  # duplicate keys: each of those rows gets its error the long way
        with self.lock:
            if self.lock_row_share or not self._lookups_exist(obj, names, columns, position):
                return None
            existing = self._ids_by_key(obj, ext_field, key_column) if key_column else {}
            if key_column is None:
                inserts = list(range(rows))
            else:
                inserts = [i for i, k in enumerate(key_column) if k not in existing]
            required = [f.name for f in obj.fields.values() if f.required]
            if inserts and any(n not in position or UNSET in columns[position[n]] for n in required):
                return None  # a required field missing somewhere: the long way says which row
            self.bump("records.received", rows)
        self._race_window(key_column is not None and bool(inserts))
        results = [WriteResult(True) for _ in range(rows)]
        records = list(zip(*columns, strict=True))
        gaps = any(UNSET in column for column in columns)
        with self.lock:
            now = now_sf()
            self.db.execute("BEGIN")
            try:
                if inserts:
                    self._insert_records(obj, names, records, inserts, results, now, gaps)
                if len(inserts) < rows:
                    self._update_records(obj, names, records, key_column, existing, results, now)  # type: ignore[arg-type]
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
        return results

    def _lookups_exist(self, obj: SObject, names: list[str], columns: list[list], position: dict[str, int]) -> bool:
        """Whether every lookup of a chunk points at an existing record of an object its field references."""
        for f in (obj.field(n) for n in names):
            if f is None or f.kind != "reference":
                continue
            allowed = {t.key_prefix: t for t in map(self.sobject, f.reference_to) if t}
            values = set(columns[position[f.name]])
            values.discard(UNSET)
            values.discard(None)  # #N/A: the lookup is cleared
            by_prefix: dict[str, set[str]] = {}
            for value in values:
                by_prefix.setdefault(value[:3], set()).add(value)
            if any(p not in allowed for p in by_prefix) or sum(
                len(self.existing_ids(allowed[p], ids, lookups=True)) for p, ids in by_prefix.items()
            ) != len(values):
                return False
        return True

    def _insert_records(
        self,
        obj: SObject,
        names: list[str],
        records: list[tuple],
        inserts: list[int],
        results: list[WriteResult],
        now: str,
        gaps: bool,
    ) -> None:
        """The column path's inserts: new Ids (and auto-numbered Names); a row a unique value refuses fails alone."""
        new_ids = self.new_ids(obj, len(inserts))
        extra = ["Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted"]
        rows_in = (
            [tuple(None if v is UNSET else v for v in records[i]) for i in inserts]
            if gaps
            else [records[i] for i in inserts]
        )  # an empty cell in a new record is simply no value
        auto_names = None if "Name" in names else self._autonumber_names(obj, len(inserts))
        if auto_names:
            extra.append("Name")
            values = [
                (*record, rid, now, now, now, "false", name)
                for record, rid, name in zip(rows_in, new_ids, auto_names, strict=True)
            ]
        else:
            values = [(*record, rid, now, now, now, "false") for record, rid in zip(rows_in, new_ids, strict=True)]
        refused = self._insert(obj, (*names, *extra), inserts, values)
        for i, rid in zip(inserts, new_ids, strict=True):
            if i in refused:
                results[i] = WriteResult(False, errors=[refused[i]])
            else:
                result = results[i]
                result.id, result.created = rid, True

    def _update_records(
        self,
        obj: SObject,
        names: list[str],
        records: list[tuple],
        key_column: list,
        existing: dict[str, str],
        results: list[WriteResult],
        now: str,
    ) -> None:
        """The column path's updates; a record deleted since it was looked up gets ``ENTITY_IS_DELETED``."""
        changing = [(n, p) for p, n in enumerate(names) if n != "Id"]
        updates: dict[tuple[str, ...], list[tuple]] = {}
        targets: dict[int, str] = {}
        for i, key in enumerate(key_column):
            rid = existing.get(key)
            if rid is None:
                continue
            record = records[i]
            # An empty cell leaves the field as it is: rows are grouped by what they set.
            pairs = [(n, record[p]) for n, p in changing if record[p] is not UNSET]
            cols = tuple(n for n, _ in pairs)
            updates.setdefault(cols, []).append((*(v for _, v in pairs), now, now, rid))
            targets[i] = rid
        changed = 0
        for cols, batch in updates.items():
            assignments = ", ".join(f'"{c}" = ?' for c in (*cols, "LastModifiedDate", "SystemModstamp"))
            changed += self.db.executemany(f'UPDATE "{obj.name}" SET {assignments} WHERE "Id" = ?', batch).rowcount
        present = set(targets.values()) if changed == len(targets) else self.existing_ids(obj, set(targets.values()))
        for i, rid in targets.items():
            results[i].id = rid
            if rid not in present:
                results[i] = WriteResult(False, errors=[error("ENTITY_IS_DELETED", "entity is deleted")])

    @staticmethod
    def _screen_columns(
        obj: SObject, header: list[str], rows: list[list[str]], ext_field: str | None
    ) -> tuple[list[list], bool, set[int]] | None:
        """Each column's stored values, screened a column at a time; ``None`` if the shape is wrong.

        Returns the columns, whether any cell was empty (Bulk: leave the field alone; such cells
        are :data:`UNSET`; ``#N/A`` cells are ``None``), and the rows with a cell that is not plainly
        valid: those go through the cell-by-cell checks, so each bad cell gets its own error. A gap
        in a key column (``Id``, the external ID), and ``#N/A`` there or in a required field, count
        as not plainly valid.
        """
        if not rows or any(len(r) != len(header) for r in rows):
            return None
        out: list[list] = []
        gaps = False
        bad: set[int] = set()
        for column, cells in zip(header, zip(*rows, strict=True), strict=True):
            f = obj.field(column)
            if f is None or not f.createable:
                return None
            key = f.name in ("Id", ext_field)
            marked = NULL_MARKER in cells  # a null: plainly valid, except where a value is required
            if marked and (key or f.required):
                bad.update(i for i, c in enumerate(cells) if c == NULL_MARKER)
            empty = "" in cells
            if empty:
                gaps = True
                if key:
                    bad.update(i for i, c in enumerate(cells) if not c)
            if f.kind == "datetime":
                parsed = {c: parse_datetime(c) for c in _values(cells)}
            elif f.kind == "reference":
                parsed = {c: (to_18_or_same(c) if is_valid_id(c) else None) for c in _values(cells)}
            elif f.length and _any_too_long(cells, f.length):
                parsed = {c: (c if fits(c, f.length) else None) for c in _values(cells)}
            else:
                parsed = None
            if parsed is None and not empty and not marked:
                out.append(list(cells))
                continue
            if parsed is not None and None in parsed.values():
                bad.update(i for i, c in enumerate(cells) if parsed.get(c, True) is None)
            stored = parsed or {}
            out.append([UNSET if not c else None if c == NULL_MARKER else stored.get(c, c) for c in cells])
        return out, gaps, bad

    def _check_fields(
        self,
        obj: SObject,
        record: dict,
        mode: str,
        ext_field: str | None,
        empty_is_unset: bool,
        plan: dict | None = None,
    ) -> tuple[dict, list[dict]]:
        """Validate one record's values; ``plan`` caches each column's checker across a batch."""
        plan = {} if plan is None else plan
        values: dict[str, str | None] = {}
        errors: list[dict] = []
        for key, raw in record.items():
            check = plan.get(key)
            if check is None:
                check = plan[key] = self._checker(obj, key, mode, empty_is_unset)
            name, value, err = check(raw)
            if err:
                errors.append(err)
            elif name:
                values[name] = value
        if mode == "upsert" and ext_field and not values.get(ext_field):
            errors.append(error("MISSING_ARGUMENT", f"{ext_field} not specified", [ext_field]))
        if mode == "update" and not values.get("Id"):
            errors.append(error("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"]))
        return values, errors

    @staticmethod
    def _checker(obj: SObject, key: str, mode: str, empty_is_unset: bool) -> Checker:
        """A function ``raw -> (field name or None, value, error or None)`` for column ``key``.

        Built once per column and batch (see ``plan`` in :meth:`_check_fields`), so that what a
        column's field is gets decided once, not for each of a batch's rows.
        """
        f = obj.field(key)
        fixed = _fixed_checker(obj, key, f, mode)
        if fixed is not None:
            return fixed
        check = _value_checker(f, empty_is_unset)  # type: ignore[arg-type]
        if f.kind == "text" and f.length:  # type: ignore[union-attr]
            return _text_checker(f, check)  # type: ignore[arg-type]
        return check

    def _check_references(self, obj: SObject, clean: list[dict | None], results: list[WriteResult]) -> None:
        """Lookups must point at an existing record of an object the field references."""
        ref_fields = [f for f in obj.fields.values() if f.kind == "reference"]
        if not ref_fields:
            return
        targets = {t.key_prefix: t for f in ref_fields for t in map(self.sobject, f.reference_to) if t}
        wanted: dict[str, set[str]] = {}
        for values in clean:
            for f in ref_fields:
                value = values.get(f.name) if values else None
                if value and value[:3] in targets:
                    wanted.setdefault(value[:3], set()).add(value)
        found: set[str] = set()
        refused: dict[str, tuple[str, str]] = {}
        for prefix, ids in wanted.items():
            found |= self.existing_ids(targets[prefix], ids, lookups=True)
            refused |= self.lookup_refusals(targets[prefix], ids - found)
        allowed = {f.name: {t.key_prefix for t in map(self.sobject, f.reference_to) if t} for f in ref_fields}
        for i, values in enumerate(clean):
            if not values:
                continue
            for f in ref_fields:
                value = values.get(f.name)
                if value and value[:3] in allowed[f.name] and value in refused:
                    results[i].errors.append(error(*refused[value], [f.name]))
                elif value and (value not in found or value[:3] not in allowed[f.name]):
                    results[i].errors.append(
                        error("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {value}", [f.name])
                    )
            if results[i].errors:
                clean[i] = None

    @staticmethod
    def _check_duplicate_keys(clean: list[dict | None], results: list[WriteResult], ext_field: str) -> None:
        seen: dict[str, list[int]] = {}
        for i, values in enumerate(clean):
            if values:
                seen.setdefault(values[ext_field], []).append(i)
        for key, positions in seen.items():
            if len(positions) > 1:
                for i in positions:
                    results[i].errors.append(
                        error("DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {key}", [ext_field])
                    )
                    clean[i] = None

    def _inject_lock_failures(self, clean: list[dict | None], results: list[WriteResult]) -> None:
        if not self.lock_row_share:
            return
        for i, values in enumerate(clean):
            if values and self.rng.random() < self.lock_row_share:
                self.bump("faults.lock_row")
                results[i].errors.append(error(LOCK_ERROR, LOCK_MESSAGE))
                clean[i] = None

    def _fail_locked_parents(
        self, obj: SObject, clean: list[dict | None], results: list[WriteResult], locked: frozenset[str]
    ) -> None:
        """Rows looking up a parent another write held for longer than the wait (``sf_sandbox.contention``)."""
        if not locked:
            return
        lookups = [f.name for f in obj.fields.values() if f.kind in ("reference", "id")]
        for i, values in enumerate(clean):
            if values and any(str(values.get(name) or "")[:15] in locked for name in lookups):
                self.bump("faults.parent_lock")
                results[i].errors.append(error(LOCK_ERROR, LOCK_MESSAGE))
                clean[i] = None

    def _plan(
        self,
        obj: SObject,
        clean: list[dict | None],
        results: list[WriteResult],
        mode: str,
        ext_field: str | None,
        all_or_none: bool,
    ) -> tuple[dict[str, str], list[int]] | None:
        """What exists (``{external key: Id}``) and which rows to insert; ``None``: all-or-none rolled back."""
        existing: dict[str, str] = {}
        if mode == "upsert" and ext_field:
            existing = self._ids_by_key(obj, ext_field, [v[ext_field] for v in clean if v])
        elif mode == "update":
            present = self.existing_ids(obj, {to_18_or_same(v["Id"]) for v in clean if v and v.get("Id")})
            for i, values in enumerate(clean):
                if values and to_18_or_same(values["Id"]) not in present:
                    results[i].errors.append(error("ENTITY_IS_DELETED", "entity is deleted"))
                    clean[i] = None
        inserts = [
            i
            for i, v in enumerate(clean)
            if v and (mode == "insert" or (mode == "upsert" and v[ext_field] not in existing))
        ]
        required = [f.name for f in obj.fields.values() if f.required]
        for i in inserts if required else ():
            names = [name for name in required if not clean[i].get(name)]
            if not names:
                continue
            results[i].errors.append(
                error("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(names)}]", names)
            )
            clean[i] = None
        if all_or_none and any(v is None for v in clean):
            _roll_back(results)
            return None
        return existing, [i for i in inserts if clean[i]]

    def _apply(
        self,
        obj: SObject,
        clean: list[dict | None],
        results: list[WriteResult],
        mode: str,
        ext_field: str | None,
        existing: dict[str, str],
        inserts: list[int],
        all_or_none: bool,
    ) -> None:
        """Insert and update as planned, in one transaction; an insert a unique value refuses fails alone."""
        now = now_sf()
        self.db.execute("BEGIN")
        try:
            new_ids, refused = self._insert_planned(obj, clean, inserts, now)
            if refused and all_or_none:
                self.db.execute("ROLLBACK")
                for i, err in refused.items():
                    results[i].errors.append(err)
                _roll_back(results)
                return
            for i, record_id in zip(inserts, new_ids, strict=True):
                if i in refused:
                    results[i].errors.append(refused[i])
                    clean[i] = None
                else:
                    result = results[i]
                    result.success, result.id, result.created = True, record_id, True
            self._update(obj, clean, results, mode, ext_field, existing, now)
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def _insert_planned(
        self, obj: SObject, clean: list[dict | None], inserts: list[int], now: str
    ) -> tuple[list[str], dict[int, dict]]:
        """The inserts of :meth:`_apply`: their new Ids, and ``{position: error}`` of those a unique value refused.

        Records are grouped by the fields they set, one ``INSERT`` per group, since the records of
        a REST or Bulk 1.0 batch need not all carry the same fields.
        """
        new_ids = self.new_ids(obj, len(inserts)) if inserts else []
        auto_names = self._autonumber_names(obj, len(inserts))
        by_columns: dict[tuple[str, ...], tuple[list[int], list[tuple]]] = {}
        for n, (i, record_id) in enumerate(zip(inserts, new_ids, strict=True)):
            row = {
                **clean[i],  # type: ignore[dict-item]
                "Id": record_id,
                "CreatedDate": now,
                "LastModifiedDate": now,
                "SystemModstamp": now,
                "IsDeleted": "false",
            }
            if auto_names:
                row["Name"] = auto_names[n]
            positions, rows = by_columns.setdefault(tuple(row), ([], []))
            positions.append(i)
            rows.append(tuple(row.values()))
        refused: dict[int, dict] = {}
        for cols, (positions, rows) in by_columns.items():
            refused.update(self._insert(obj, cols, positions, rows))
        return new_ids, refused

    def _update(
        self,
        obj: SObject,
        clean: list[dict | None],
        results: list[WriteResult],
        mode: str,
        ext_field: str | None,
        existing: dict[str, str],
        now: str,
    ) -> None:
        """The updates of :meth:`_apply`; a record deleted since it was looked up gets ``ENTITY_IS_DELETED``."""
        updates: dict[tuple[str, ...], list[tuple]] = {}
        targets: dict[int, str] = {}
        for i, values in enumerate(clean):
            if not values or results[i].success:
                continue
            record_id = existing[values[ext_field]] if mode == "upsert" else to_18_or_same(values["Id"])
            changes = {k: v for k, v in values.items() if k != "Id"}
            changes.update(LastModifiedDate=now, SystemModstamp=now)
            updates.setdefault(tuple(changes), []).append((*changes.values(), record_id))
            targets[i] = record_id
        changed = 0
        for cols, rows in updates.items():
            assignments = ", ".join(f'"{c}" = ?' for c in cols)
            changed += self.db.executemany(f'UPDATE "{obj.name}" SET {assignments} WHERE "Id" = ?', rows).rowcount
        present = set(targets.values()) if changed == len(targets) else self.existing_ids(obj, set(targets.values()))
        for i, record_id in targets.items():
            if record_id in present:
                results[i].success, results[i].id = True, record_id
            else:
                results[i].errors.append(error("ENTITY_IS_DELETED", "entity is deleted"))

    def _insert(self, obj: SObject, cols: tuple[str, ...], positions: list[int], rows: list[tuple]) -> dict[int, dict]:
        """Insert ``rows`` (values in ``cols`` order); ``{position: error}`` of those a unique value kept out.

        ``INSERT OR IGNORE`` lets the unique index refuse a row without failing the others. A refused
        row's value was taken by another record since this request looked (the race an org's loser
        meets) or earlier in this very request; either way ``DUPLICATE_VALUE``, as an org answers.
        """
        names = ", ".join(f'"{c}"' for c in cols)
        sql = f'INSERT OR IGNORE INTO "{obj.name}" ({names}) VALUES ({", ".join("?" * len(cols))})'
        if self.db.executemany(sql, rows).rowcount == len(rows):
            return {}
        id_at = cols.index("Id")
        kept = self.existing_ids(obj, {row[id_at] for row in rows})
        return {
            i: self._duplicate(obj, cols, row) for i, row in zip(positions, rows, strict=True) if row[id_at] not in kept
        }

    def _duplicate(self, obj: SObject, cols: tuple[str, ...], row: tuple) -> dict:
        """The ``DUPLICATE_VALUE`` error of a refused row, worded as an org words it (15-character Id, no fields)."""
        own_id = row[cols.index("Id")]
        for f in obj.fields.values():
            if f.unique and f.name in cols:
                value = row[cols.index(f.name)]
                holder = self.db.execute(
                    f'SELECT "Id" FROM "{obj.name}" WHERE "{f.name}" = ? AND "Id" != ?', (value, own_id)
                ).fetchone()
                if holder:
                    return error(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {f.name} duplicates value on record with id: {holder[0][:15]}",
                    )
        return error(
            "DUPLICATE_VALUE", "duplicate value found: <unknown> duplicates value on record with id: <unknown>"
        )


def _roll_back(results: list[WriteResult]) -> None:
    """All or none: every record not failing on its own is rolled back, and says so."""
    for result in results:
        if not result.errors:
            result.success, result.id, result.created = False, None, False
            result.errors.append(
                error(
                    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "Record rolled back because not all records were valid and the request was using AllOrNone header",
                )
            )


Checker = Callable[[object], tuple[str | None, str | None, dict | None]]


def _fixed_checker(obj: SObject, key: str, f: Field | None, mode: str) -> Checker | None:
    """The checker of a column whose every value gets the same answer, or ``None`` if values matter.

    A column that is no field, or one the API may not write, fails every row alike (and an
    update's ``Id`` is taken as it is: :meth:`Store._plan` checks that it exists); deciding that
    here keeps those answers out of the per-value checks.
    """
    if key == "attributes":
        return lambda raw: (None, None, None)
    if f is None:
        unknown = error("INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}", [key])
        return lambda raw: (None, None, unknown)
    if f.name == "Id" and mode == "update":
        return lambda raw: ("Id", raw, None)
    if not f.createable:
        locked = error(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            f"Unable to create/update fields: {f.name}. Please check the security settings of this field and "
            "verify that it is read/write for your profile or permission set.",
            [f.name],
        )
        return lambda raw: (None, None, locked)
    return None


def _value_checker(f: Field, empty_is_unset: bool) -> Checker:
    """The full check of one value of a writable field, by the field's kind: every cell rule in one place.

    A closure over the field's attributes rather than a method: it runs once per cell of a batch,
    and local lookups are what keeps the REST and Bulk long path quick.
    """
    name, kind, length, label = f.name, f.kind, f.length, f.label
    ids: dict[str, str | None] = {}

    def check(raw: object) -> tuple[str | None, str | None, dict | None]:
        if raw is not None and not isinstance(raw, str):
            raw = str(raw).lower() if isinstance(raw, bool) else str(raw)
        if raw == "" and empty_is_unset:
            return None, None, None
        if raw is None or raw == "" or (empty_is_unset and raw == NULL_MARKER):
            return name, None, None
        if kind == "datetime":
            parsed = parse_datetime(raw)
            if parsed is None:
                return None, None, _not_of_type(label, raw, name)
            return name, parsed, None
        if kind == "reference":
            normal = ids.get(raw, False)
            if normal is False:
                normal = ids[raw] = to_18_or_same(raw) if is_valid_id(raw) else None
            if normal is None:
                return None, None, error("MALFORMED_ID", f"{label}: id value of incorrect type: {raw}", [name])
            return name, normal, None
        if length and not fits(raw, length):
            return None, None, _too_long(label, raw, length, name)
        return name, raw, None

    return check


def _text_checker(f: Field, check: Checker) -> Checker:
    """``check`` behind a shortcut for the common text value: short (two UTF-16 units per character at most) or ASCII.

    Most cells of a text column are plainly valid; they are answered without the general
    checker's conversions and UTF-16 counting, which is most of a long-path batch's time.
    """
    name, length = f.name, f.length

    def check_text(raw: object) -> tuple[str | None, str | None, dict | None]:
        n = len(raw) if type(raw) is str else 0
        if 0 < n <= length and (2 * n <= length or raw.isascii()) and raw != NULL_MARKER:  # type: ignore[union-attr,operator]
            return name, raw, None  # type: ignore[return-value]
        return check(raw)

    return check_text


def _not_of_type(label: str, raw: str, name: str) -> dict:
    """The error of a value that is not of its field's type (a datetime that does not parse)."""
    return error("INVALID_TYPE_ON_FIELD_IN_RECORD", f"{label}: value not of required type: {raw}", [name])


def _too_long(label: str, raw: str, length: int, name: str) -> dict:
    """The error of a text value over its field's length; the value is quoted to 50 characters, as an org does."""
    more = "..." if len(raw) > 50 else ""
    return error("STRING_TOO_LONG", f"{label}: data value too large: {raw[:50]}{more} (max length={length})", [name])


def _values(cells: tuple[str, ...]) -> set[str]:
    """The distinct values of a column's cells, without empty cells and ``#N/A``."""
    values = set(cells)
    values.discard("")
    values.discard(NULL_MARKER)
    return values
