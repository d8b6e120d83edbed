"""Where a member Id's activity goes in the org: its own record, or the one it became.

An org's people change: a Lead converted into a Contact stays as a Lead with ``IsConverted`` and
``ConvertedContactId`` (a record may not look up a converted Lead: ``CANNOT_UPDATE_CONVERTED_LEAD``);
a Contact or Lead merged into another is deleted with ``MasterRecordId`` naming the survivor (visible
through ``queryAll`` only; a lookup to it answers ``ENTITY_IS_DELETED``). :class:`OrgPeople` asks
the org with chunked SOQL ``IN`` queries, follows conversions and merges hop by hop (a survivor may
itself have been merged or converted since), and stops at a cycle or after :data:`MAX_HOPS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from thrive_sync.core.sfid import MemberObject, member_object, to_18

QUERY_CHUNK = 300  # Ids per SOQL query: 300 x 21 characters keeps the GET URL near 6 KB
CONCURRENT_QUERIES = 4  # latency hidden, far below the org's concurrent-request limit (25)
MAX_HOPS = 10  # conversions and merges followed from one Id before giving up
CONVERTED, MERGED = "converted", "merged"


@dataclass(frozen=True, slots=True)
class OrgAnswer:
    """What the org says of one Id: the live record to write to (``None``: none), how it got there."""

    target: str | None
    redirect: str | None = None  # converted | merged
    detail: str | None = None  # why there is no record, when the org says more than "not there"


class OrgPeople:
    """Answers for Ids of one object at a time; ``query_all(soql, include_deleted=...)`` runs SOQL."""

    def __init__(self, query_all: Callable[..., dict]) -> None:
        self._query_all = query_all
        self.queries = 0

    def answers(self, sobject: MemberObject, ids: list[str]) -> dict[str, OrgAnswer]:
        """``{id: OrgAnswer}`` for every id given (18-character Ids of ``sobject``)."""
        hops = self._one_hop(sobject, ids)
        return {i: self._follow(i, hops) for i in ids}

    def _follow(self, first: str, hops: dict[str, OrgAnswer | tuple[str, str]]) -> OrgAnswer:
        """Follow ``first``'s redirects to a live record, asking the org about each next hop."""
        seen, current, kind = [first], hops[first], None
        while isinstance(current, tuple):
            kind = kind or current[0]  # the first change names the redirect: the member's own history
            target = current[1]
            if target in seen or len(seen) > MAX_HOPS:
                path = " -> ".join([*seen, target])
                return OrgAnswer(None, detail=f"the org's merges and conversions go round in a cycle: {path}")
            seen.append(target)
            if target not in hops:
                hops.update(self._one_hop(member_object(target), [target]))
            current = hops[target]
        if current.target is None:
            path = f"{' -> '.join(seen)}: " if len(seen) > 1 else ""
            detail = current.detail or ("not in the integration" if path else None)
            return OrgAnswer(None, detail=f"{path}{detail}" if detail else None)
        return OrgAnswer(current.target, kind)

    def _one_hop(self, sobject: MemberObject, ids: list[str]) -> dict[str, OrgAnswer | tuple[str, str]]:
        """Each Id's own state: live (an answer), redirected (``(kind, next Id)``), or gone (an answer)."""
        fields = "Id, IsConverted, ConvertedContactId" if sobject == MemberObject.LEAD else "Id"
        # The object is one of two names and the Ids passed the local check: nothing from outside is inlined.
        live = {to_18(r["Id"]): r for r in self._ask(f"SELECT {fields} FROM {sobject.value}", ids)}  # noqa: S608
        out: dict[str, OrgAnswer | tuple[str, str]] = {}
        for i, record in live.items():
            if not record.get("IsConverted"):
                out[i] = OrgAnswer(i)
            elif record.get("ConvertedContactId"):
                out[i] = (CONVERTED, to_18(record["ConvertedContactId"]))
            else:
                out[i] = OrgAnswer(None, detail=f"Lead {i} was converted without a Contact")
        missing = [i for i in ids if i not in live]
        select = f"SELECT Id, IsDeleted, MasterRecordId FROM {sobject.value}"  # noqa: S608 - as above
        gone = {to_18(r["Id"]): r for r in self._ask(select, missing, include_deleted=True)}
        for i in missing:
            record = gone.get(i)
            if record is None:
                out[i] = OrgAnswer(None)
            elif record.get("MasterRecordId"):
                out[i] = (MERGED, to_18(record["MasterRecordId"]))
            else:
                out[i] = OrgAnswer(None, detail=f"{sobject} {i} was deleted in the integration, with no survivor")
        return out

    def _ask(self, select: str, ids: list[str], include_deleted: bool = False) -> Iterable[dict]:
        """The records of ``select ... WHERE Id IN`` the ids, in chunks, a few queries at a time."""

        def ask(chunk: list[str]) -> list[dict]:
            # Ids passed the local check (letters and digits only), so quoting them inline is safe.
            in_list = ", ".join(f"'{i}'" for i in chunk)
            return self._query_all(f"{select} WHERE Id IN ({in_list})", include_deleted=include_deleted)["records"]

        chunks = [ids[start : start + QUERY_CHUNK] for start in range(0, len(ids), QUERY_CHUNK)]
        self.queries += len(chunks)
        if len(chunks) < 2:
            return [r for chunk in chunks for r in ask(chunk)]
        with ThreadPoolExecutor(max_workers=CONCURRENT_QUERIES, thread_name_prefix="member-ids") as pool:
            return [r for records in pool.map(ask, chunks) for r in records]
