"""Custom Member ID matching: is it a Contact or Lead Id, and does that record exist in the org?

Checked locally first (blank, length, characters, 18-char checksum, Contact ``003`` / Lead ``00Q``
prefix; 15-char Ids are normalised to 18), then in the org with chunked SOQL ``IN`` queries, once
per distinct Id: a day of a million events touches far fewer recipients. The org is asked through
an injected SOQL runner, and answers may be kept in an injected :class:`MemberStore` (the run's
tasks share theirs through PostgreSQL, so each Id is asked of the org once per run).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from thrive_sync.core.org_people import OrgAnswer, OrgPeople
from thrive_sync.core.reasons import MALFORMED_MEMBER_ID, MISSING_MEMBER_ID, UNMATCHED_MEMBER_ID
from thrive_sync.core.sfid import MemberObject, member_id_problem, member_object, to_18

# Distinct member ids resolved ahead of a task's rows (about 200 bytes each in memory).
PREFETCH_LIMIT = 200_000


@dataclass(frozen=True, slots=True)
class MemberMatch:
    """What a Custom Member ID resolves to: a record (``sf_id``, ``sobject``) or a reason code.

    ``redirect``: ``converted`` (a converted Lead, written to its Contact) or ``merged`` (a record
    merged away, written to the survivor); ``sf_id`` is then the record written to.
    """

    sf_id: str | None = None
    sobject: MemberObject | None = None
    reason_code: str | None = None
    detail: str | None = None
    redirect: str | None = None


def check_locally(raw: str | None) -> MemberMatch:
    """The local checks: a well-formed Id gets its 18-char form and object, the rest a reason."""
    if raw is None or not raw.strip():
        return MemberMatch(reason_code=MISSING_MEMBER_ID, detail="custom_member_id is empty")
    problem = member_id_problem(raw)
    if problem:
        return MemberMatch(reason_code=MALFORMED_MEMBER_ID, detail=problem)
    return MemberMatch(sf_id=to_18(raw), sobject=member_object(raw))


class MemberStore(Protocol):
    """Where org answers outlive one matcher: ``known`` -> {18-char Id: OrgAnswer}, ``save`` the same."""

    def known(self, sf_ids: list[str]) -> dict[str, OrgAnswer]: ...

    def save(self, answers: dict[str, OrgAnswer]) -> None: ...


class MemberIdMatcher:
    """Resolves member Ids, remembering each answer for the life of the matcher (and in ``store``).

    ``query_all`` is a SOQL runner (``Salesforce.query_all`` or a retrying wrapper of it).
    """

    def __init__(self, query_all: Callable[..., dict], store: MemberStore | None = None) -> None:
        self._people = OrgPeople(query_all)
        self._store = store
        self._known: dict[str | None, MemberMatch] = {}
        self.from_store = 0
        self.prefetched = 0

    @property
    def queries(self) -> int:
        """SOQL queries this matcher sent to the org."""
        return self._people.queries

    def resolve(self, raw_ids: Iterable[str | None]) -> dict[str | None, MemberMatch]:
        """``{raw id: MemberMatch}`` for every id given; the org is asked only about new, well-formed ones."""
        wanted = {raw for raw in raw_ids}
        new = {raw: check_locally(raw) for raw in wanted if raw not in self._known}
        to_ask: dict[MemberObject, set[str]] = {}
        for match in new.values():
            if match.sf_id and match.sobject:
                to_ask.setdefault(match.sobject, set()).add(match.sf_id)
        answers: dict[str, OrgAnswer] = {}
        for sobject, ids in to_ask.items():
            answers |= self._answers(sobject, sorted(ids))
        for raw, match in new.items():
            self._known[raw] = _matched(match, answers[match.sf_id]) if match.sf_id else match
        return {raw: self._known[raw] for raw in wanted}

    def _answers(self, sobject: MemberObject, ids: list[str]) -> dict[str, OrgAnswer]:
        """What the org says of ``ids``: from the store where it knows, else asked (and saved there)."""
        known = self._store.known(ids) if self._store else {}
        self.from_store += len(known)
        asked = self._people.answers(sobject, [i for i in ids if i not in known])
        if self._store and asked:
            self._store.save(asked)
        return known | asked

    def prefetch(self, raw_ids: Iterable[str | None], chunk: int = 5_000, limit: int = PREFETCH_LIMIT) -> int:
        """Resolve up to ``limit`` distinct ids ahead of the rows that carry them; how many were.

        Called before a task streams its rows, so that the org is asked in a few concurrent bursts
        instead of once per batch while Bulk jobs are running. Ids beyond ``limit`` are resolved
        as their rows come (the answers are kept for the life of the matcher either way).
        """
        done = 0
        batch: list[str | None] = []
        for raw in raw_ids:
            if done + len(batch) >= limit:
                break
            batch.append(raw)
            if len(batch) >= chunk:
                done += len(self.resolve(batch))
                batch = []
        if batch:
            done += len(self.resolve(batch))
        self.prefetched += done
        return done


def _matched(local: MemberMatch, answer: OrgAnswer) -> MemberMatch:
    """The match of a well-formed Id from the org's answer: its record, the one it became, or why none."""
    if answer.target is None:
        detail = answer.detail or f"no {local.sobject} with Id {local.sf_id} in the integration"
        return MemberMatch(reason_code=UNMATCHED_MEMBER_ID, detail=detail)
    return MemberMatch(sf_id=answer.target, sobject=member_object(answer.target), redirect=answer.redirect)
