"""People who change in the sandbox org as in a real one: a Lead converted into a Contact, records merged
into a survivor (deleted, seen by queryAll), and what a lookup to either answers; driven by the real
simple_salesforce client over HTTPS and the admin interface of CONTRACT.md section 6."""

from __future__ import annotations

import pytest
import requests

TA = "Thrive_Activity__c"
EXT = "Thrive_Event_Id__c"


def refused(org, what: str, body: dict) -> int:
    """The status of an admin call the sandbox should refuse (``org.admin`` raises on one)."""
    return org.session().post(f"{org.url}/__sandbox/{what}", json=body, timeout=30).status_code


def person(sf, sobject: str, last: str) -> str:
    fields = {"LastName": last, "FirstName": "Ada", "Email": f"{last.lower()}@example.org"}
    return getattr(sf, sobject).create({**fields, **({"Company": "Assoc"} if sobject == "Lead" else {})})["id"]


def test_a_merged_record_is_deleted_pointing_at_its_survivor(sf, org):
    survivor, merged, other = (person(sf, "Contact", name) for name in ("Okafor", "Okafor2", "Osei"))
    body = {"sobject": "Contact", "masterId": survivor, "mergedIds": [merged]}
    assert org.admin("POST", "merge", json=body).json() == {"merged": 1}
    live = sf.query(f"SELECT Id FROM Contact WHERE Id IN ('{survivor}', '{merged}', '{other}')")["records"]
    assert sorted(r["Id"] for r in live) == sorted([survivor, other])
    [gone] = sf.query_all(f"SELECT Id, IsDeleted, MasterRecordId FROM Contact WHERE Id = '{merged}'",
                          include_deleted=True)["records"]  # fmt: skip
    assert (gone["IsDeleted"], gone["MasterRecordId"]) == (True, survivor)
    assert refused(org, "merge", {"sobject": "Contact", "masterId": merged, "mergedIds": [other]}) == 400


def test_a_converted_lead_points_at_its_contact(sf, org):
    lead, into = person(sf, "Lead", "Mensah"), person(sf, "Contact", "Boateng")
    made = org.admin("POST", "convert-lead", json={"leadId": person(sf, "Lead", "Asante")}).json()["contactId"]
    assert sf.Contact.get(made)["LastName"] == "Asante"  # a new Contact from the Lead's names
    assert org.admin("POST", "convert-lead", json={"leadId": lead, "contactId": into}).json() == {"contactId": into}
    converted = sf.Lead.get(lead)
    assert (converted["IsConverted"], converted["ConvertedContactId"]) == (True, into)
    assert refused(org, "convert-lead", {"leadId": lead}) == 400  # converted once only


@pytest.mark.parametrize("path", ["collections", "bulk"])
def test_a_lookup_to_a_merged_contact_or_a_converted_lead_is_refused(sf, org, path):
    survivor, merged = person(sf, "Contact", "Okafor"), person(sf, "Contact", "Okafor2")
    lead = person(sf, "Lead", "Mensah")
    org.admin("POST", "merge", json={"sobject": "Contact", "masterId": survivor, "mergedIds": [merged]})
    org.admin("POST", "convert-lead", json={"leadId": lead})
    records = [{EXT: f"p{i}", "Activity__c": "Opened", "Contact__c": survivor} for i in range(2_500)]
    records[1] = {EXT: "p1", "Activity__c": "Opened", "Contact__c": merged}
    records[2] = {EXT: "p2", "Activity__c": "Opened", "Lead__c": lead}
    if path == "collections":
        records = records[:200]
        body = {"allOrNone": False, "records": [{"attributes": {"type": TA}, **r} for r in records]}
        results = sf.restful(f"composite/sobjects/{TA}/{EXT}", method="PATCH", json=body)
        errors = {records[i][EXT]: r["errors"][0]["statusCode"] for i, r in enumerate(results) if not r["success"]}
    else:
        [job] = sf.bulk2.Thrive_Activity__c.upsert(records=records, external_id_field=EXT, wait=0.1)
        failed = sf.bulk2.Thrive_Activity__c.get_failed_records(job["job_id"]).strip().split("\n")[1:]
        errors = {_key(line): _code(line) for line in failed}
    assert errors == {"p1": "ENTITY_IS_DELETED", "p2": "CANNOT_UPDATE_CONVERTED_LEAD"}


def _key(line: str) -> str:
    return next(cell.strip('"') for cell in line.split(",") if cell.strip('"').startswith("p"))


def _code(line: str) -> str:
    return line.split(",")[1].strip('"').split(":")[0]


def test_admin_calls_need_the_token(org):
    answer = requests.post(f"{org.url}/__sandbox/merge", json={}, verify=str(org.ca), timeout=10)
    assert answer.status_code in (401, 403)
