"""Where a member Id's activity goes: its record, the Contact a converted Lead became, a merge's survivor."""

from __future__ import annotations

import re

from thrive_dev.ids import compose_id15
from thrive_sync.core.org_people import OrgPeople
from thrive_sync.core.sfid import MemberObject, to_18


def cid(n: int) -> str:
    return to_18(compose_id15("003", "7p", n))


def lid(n: int) -> str:
    return to_18(compose_id15("00Q", "7p", n))


class FakeOrg:
    """Records by Id; ``query_all`` answers the two SELECTs OrgPeople sends, as an org would."""

    def __init__(self, records: dict[str, dict]) -> None:
        self.records = records

    def query_all(self, soql: str, include_deleted: bool = False) -> dict:
        ids = re.findall(r"'(\w+)'", soql)
        obj = re.search(r"FROM (\w+)", soql).group(1)
        found = [
            {"Id": i, **self.records[i]}
            for i in ids
            if i in self.records
            and (include_deleted or not self.records[i].get("IsDeleted"))
            and (obj == "Contact") == i.startswith("003")
        ]
        return {"records": found}


def answers(records: dict[str, dict], sobject: MemberObject, *ids: str) -> dict:
    return OrgPeople(FakeOrg(records).query_all).answers(sobject, list(ids))


def test_live_records_converted_leads_and_merges_followed_to_a_live_record():
    org = {
        cid(1): {}, lid(1): {"IsConverted": True, "ConvertedContactId": cid(1)},
        cid(2): {"IsDeleted": True, "MasterRecordId": cid(3)}, cid(3): {"IsDeleted": True, "MasterRecordId": cid(1)},
        lid(2): {"IsConverted": True, "ConvertedContactId": cid(2)}, lid(3): {},
    }  # fmt: skip
    got = answers(org, MemberObject.CONTACT, cid(1), cid(2))
    assert (got[cid(1)].target, got[cid(1)].redirect) == (cid(1), None)
    assert (got[cid(2)].target, got[cid(2)].redirect) == (cid(1), "merged")  # two merges, followed
    got = answers(org, MemberObject.LEAD, lid(1), lid(2), lid(3))
    assert (got[lid(1)].target, got[lid(1)].redirect) == (cid(1), "converted")
    assert (got[lid(2)].target, got[lid(2)].redirect) == (cid(1), "converted")  # its Contact merged since
    assert (got[lid(3)].target, got[lid(3)].redirect) == (lid(3), None)


def test_what_has_no_record_says_why():
    org = {
        cid(1): {"IsDeleted": True, "MasterRecordId": cid(2)}, cid(2): {"IsDeleted": True, "MasterRecordId": cid(1)},
        cid(3): {"IsDeleted": True}, lid(1): {"IsConverted": True},
        cid(4): {"IsDeleted": True, "MasterRecordId": cid(9)},
    }  # fmt: skip
    got = answers(org, MemberObject.CONTACT, cid(1), cid(3), cid(4), cid(5))
    assert got[cid(1)].target is None and "cycle" in got[cid(1)].detail and got[cid(1)].detail.count(cid(1)) == 2
    assert got[cid(3)].detail == f"Contact {cid(3)} was deleted in the integration, with no survivor"
    assert got[cid(4)].detail == f"{cid(4)} -> {cid(9)}: not in the integration"
    assert got[cid(5)].target is None and got[cid(5)].detail is None  # never there: the plain UNMATCHED
    assert answers(org, MemberObject.LEAD, lid(1))[lid(1)].detail == f"Lead {lid(1)} was converted without a Contact"


def test_queries_are_counted_and_deleted_ones_asked_only_for_the_missing():
    people = OrgPeople(FakeOrg({cid(n): {} for n in range(1, 701)}).query_all)
    people.answers(MemberObject.CONTACT, [cid(n) for n in range(1, 701)])
    assert people.queries == 3  # 700 live Ids in chunks of 300; no queryAll: none is missing
    people.answers(MemberObject.CONTACT, [cid(900)])
    assert people.queries == 3 + 2  # one query, and one queryAll for the missing one
