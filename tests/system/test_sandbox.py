"""The local Salesforce sandbox, driven by the real simple_salesforce client over HTTPS."""

from __future__ import annotations

import csv
import http.client
import io
import json
import ssl
import time
from collections import Counter

import pytest
import requests
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from conftest import MEASUREMENTS
from thrive_sync.core.sfid import id_problem

TA = "Thrive_Activity__c"
EXT = "Thrive_Event_Id__c"


def contact(sf, last="Okafor") -> str:
    return sf.Contact.create({"LastName": last, "FirstName": "Ada"})["id"]


def collection_upsert(sf, records, all_or_none=False):
    body = {"allOrNone": all_or_none, "records": [{"attributes": {"type": TA}, **r} for r in records]}
    return sf.restful(f"composite/sobjects/{TA}/{EXT}", method="PATCH", json=body)


def test_rest_crud_and_required_fields(sf):
    created = sf.Contact.create({"LastName": "Okafor", "Email": "ada@example.org"})
    assert created["success"] and len(created["id"]) == 18 and id_problem(created["id"]) is None
    assert created["id"].startswith("003")
    assert sf.Contact.get(created["id"])["Email"] == "ada@example.org"
    assert sf.Contact.update(created["id"], {"FirstName": "Ada"}) == 204
    assert sf.Contact.get(created["id"][:15])["FirstName"] == "Ada"  # 15-char Ids work too
    assert sf.Contact.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.get(created["id"])
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Lead.create({"LastName": "Nguyen"})  # a Lead needs a Company
    assert err.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert sf.Lead.create({"LastName": "Nguyen", "Company": "Acme"})["id"].startswith("00Q")


def test_upsert_by_external_id_status_codes(sf):
    cid = contact(sf)
    assert sf.Thrive_Activity__c.upsert(f"{EXT}/a:1", {"Activity__c": "Opened", "Contact__c": cid}) == 201
    assert sf.Thrive_Activity__c.upsert(f"{EXT}/a:1", {"Activity__c": "Clicked"}) == 200
    rows = sf.query(f"SELECT Activity__c, Contact__c, Name FROM {TA} WHERE {EXT} = 'a:1'")["records"]
    assert [(r["Activity__c"], r["Contact__c"]) for r in rows] == [("Clicked", cid)]
    assert rows[0]["Name"].startswith("TA-")
    with pytest.raises(SalesforceResourceNotFound):
        sf.Thrive_Activity__c.upsert("No_Such_Field__c/x", {"Activity__c": "x"})
    sf.Contact.create({"LastName": "A", "Legacy_Id__c": "L1"})
    sf.Contact.create({"LastName": "B", "Legacy_Id__c": "L1"})
    with pytest.raises(SalesforceMoreThanOneRecord):
        sf.Contact.upsert("Legacy_Id__c/L1", {"FirstName": "x"})


def test_collections_upsert_per_record_errors_in_request_order(sf):
    cid = contact(sf)
    lead = sf.Lead.create({"LastName": "L", "Company": "C"})["id"]
    missing_contact = cid[:9] + "ZZZZZZ"  # well-formed, valid checksum once normalised, but no such record
    results = collection_upsert(
        sf,
        [
            {EXT: "k1", "Contact__c": cid, "Activity_Date__c": "2026-11-26T10:00:00Z"},
            {EXT: "k2", "Contact__c": missing_contact},
            {EXT: "k3", "Contact__c": lead},  # a Lead in the Contact lookup
            {EXT: "k4", "Detail__c": "x" * 256},
            {EXT: "k5", "Activity_Date__c": "2026-13-45T00:00:00Z"},
            {EXT: "k6", "Bogus__c": "1"},
            {EXT: "k7", "Lead__c": "00Qnot-an-id"},
            {EXT: "k8", "Activity__c": "a"},
            {EXT: "k8", "Activity__c": "b"},
        ],
    )
    codes = [r["errors"][0]["statusCode"] if not r["success"] else "OK" for r in results]
    assert codes == [
        "OK",
        "INVALID_CROSS_REFERENCE_KEY",
        "INVALID_CROSS_REFERENCE_KEY",
        "STRING_TOO_LONG",
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
        "INVALID_FIELD",
        "MALFORMED_ID",
        "DUPLICATE_EXTERNAL_ID",
        "DUPLICATE_EXTERNAL_ID",
    ]
    assert results[0]["created"] is True and results[3]["errors"][0]["fields"] == ["Detail__c"]
    again = collection_upsert(sf, [{EXT: "k1", "Activity__c": "Opened"}])
    assert again[0]["success"] and again[0]["created"] is False and again[0]["id"] == results[0]["id"]


def test_collections_all_or_none_and_size_cap(sf):
    results = collection_upsert(sf, [{EXT: "n1"}, {EXT: "n2", "Detail__c": "x" * 300}], all_or_none=True)
    assert [r["errors"][0]["statusCode"] for r in results] == ["ALL_OR_NONE_OPERATION_ROLLED_BACK", "STRING_TOO_LONG"]
    assert sf.query(f"SELECT COUNT() FROM {TA}")["totalSize"] == 0
    assert all(r["success"] for r in collection_upsert(sf, [{EXT: "n1"}, {EXT: "n2"}], all_or_none=True))
    with pytest.raises(SalesforceMalformedRequest):
        collection_upsert(sf, [{EXT: f"c{i}"} for i in range(201)])


def test_soql_subset_and_paging(sf):
    cid = contact(sf)
    collection_upsert(
        sf,
        [
            {
                EXT: f"q{i:04d}",
                "Activity__c": ("Opened", "Clicked", "Delivered")[i % 3],
                "Activity_Date__c": f"2026-11-26T{i % 24:02d}:00:00Z",
                "Contact__c": cid if i % 2 else None,
            }
            for i in range(150)
        ],
    )
    count = sf.query(f"SELECT COUNT() FROM {TA} WHERE Activity__c IN ('Opened', 'Clicked')")["totalSize"]
    assert count == 100
    rows = sf.query(
        f"SELECT {EXT}, Activity__c FROM {TA} WHERE (Activity__c = 'Opened' OR Activity__c != 'Clicked')"
        f" AND Activity_Date__c >= 2026-11-26T12:00:00Z AND Activity_Date__c < 2026-11-26T15:00:00Z"
        f" AND {EXT} LIKE 'q0%' ORDER BY {EXT} DESC LIMIT 3"
    )["records"]
    assert [r[EXT] for r in rows] == ["q0134", "q0132", "q0110"]
    assert sf.query(f"SELECT COUNT() FROM {TA} WHERE Contact__c = null")["totalSize"] == 75
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.query(f"SELECT Nope__c FROM {TA}")
    assert err.value.content[0]["errorCode"] == "INVALID_FIELD"
    for i in range(0, 4600, 200):
        collection_upsert(sf, [{EXT: f"p{j}"} for j in range(i, min(i + 200, 4600))])
    first = sf.query(f"SELECT Id FROM {TA} WHERE {EXT} LIKE 'p%'")
    assert first["totalSize"] == 4600 and len(first["records"]) == 2000 and not first["done"]
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/")
    assert len(sf.query_all(f"SELECT Id FROM {TA} WHERE {EXT} LIKE 'p%'")["records"]) == 4600


def test_limits_and_usage_header(sf, org):
    before = org.admin("GET", "stats").json().get("api_calls", 0)
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] > limits["DailyApiRequests"]["Remaining"] > 0
    sf.query("SELECT COUNT() FROM Contact")
    assert sf.api_usage["api-usage"].used == before + 2  # parsed by simple_salesforce from Sforce-Limit-Info
    assert org.admin("GET", "stats").json()["api_calls"] == before + 2


def test_daily_limits_count_down_stay_spent_and_refuse_at_zero(sf, org):
    """PUT /__sandbox/limits sets an allowance; every API call spends one; at zero every call is
    refused with 403 REQUEST_LIMIT_EXCEEDED until the admin raises it; Bulk batches likewise."""
    from simple_salesforce.exceptions import SalesforceRefusedRequest

    org.admin("PUT", "limits", json={"DailyApiRequests": {"Max": 15_000, "Remaining": 3}})
    sf.query("SELECT COUNT() FROM Contact")
    assert sf.limits()["DailyApiRequests"] == {"Max": 15_000, "Remaining": 1}  # this call spent one too
    sf.query("SELECT COUNT() FROM Contact")
    for _ in range(3):  # spent stays spent
        with pytest.raises(SalesforceRefusedRequest) as refused:
            sf.query("SELECT COUNT() FROM Contact")
        assert refused.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    org.admin("PUT", "limits", json={"DailyApiRequests": {"Remaining": 100}})
    sf.query("SELECT COUNT() FROM Contact")
    assert sf.api_usage["api-usage"].used == 15_000 - 99 and sf.api_usage["api-usage"].total == 15_000

    cid = contact(sf)
    org.admin("PUT", "limits", json={"DailyBulkApiBatches": {"Max": 15_000, "Remaining": 1}})
    records = [{EXT: f"q{i}", "Activity__c": "Delivered", "Contact__c": cid} for i in range(10_001)]
    [job] = sf.bulk2.Thrive_Activity__c.upsert(records=records, external_id_field=EXT, wait=0.1)
    assert job["numberRecordsProcessed"] == 10_001  # two internal batches: it took what was left
    assert sf.limits()["DailyBulkApiBatches"] == {"Max": 15_000, "Remaining": 0}
    with pytest.raises(SalesforceRefusedRequest, match="REQUEST_LIMIT_EXCEEDED"):
        sf.bulk2.Thrive_Activity__c.upsert(records=records[:5], external_id_field=EXT, wait=0.1)
    org.admin("POST", "reset")
    assert sf.limits()["DailyBulkApiBatches"]["Remaining"] == 15_000  # a reset org starts a fresh day


def test_bulk2_upsert_insert_and_results(sf):
    cid = contact(sf)
    records = [
        {EXT: f"b{i}", "Activity__c": "Delivered", "Contact__c": cid, "Detail__c": 'a,b "quoted"\nline'}
        for i in range(3000)
    ]
    records[5]["Detail__c"] = "x" * 300
    records[6]["Contact__c"] = cid[:9] + "ZZZZZZ"
    [job] = sf.bulk2.Thrive_Activity__c.upsert(records=records, external_id_field=EXT, wait=0.1)
    assert (job["numberRecordsProcessed"], job["numberRecordsFailed"]) == (3000, 2)
    failed = sf.bulk2.Thrive_Activity__c.get_failed_records(job["job_id"])
    header, *rows = failed.strip().split("\n")
    assert header.startswith('"sf__Id","sf__Error"')
    assert sum(1 for r in rows if "STRING_TOO_LONG:" in r) == 1 and sum(1 for r in rows if "INVALID_CROSS" in r) == 1
    ok = sf.bulk2.Thrive_Activity__c.get_successful_records(job["job_id"])
    assert ok.startswith('"sf__Id","sf__Created"') and ok.count('"true"') == 2998
    stored = sf.query(f"SELECT Detail__c FROM {TA} WHERE {EXT} = 'b0'")["records"][0]["Detail__c"]
    assert stored == 'a,b "quoted"\nline'
    [again] = sf.bulk2.Thrive_Activity__c.upsert(records=records[:10], external_id_field=EXT, wait=0.1)
    assert sf.bulk2.Thrive_Activity__c.get_successful_records(again["job_id"]).count('"false"') == 8
    [ins] = sf.bulk2.Contact.insert(records=[{"LastName": "Bulk"}, {"FirstName": "NoLast"}], wait=0.1)
    assert (ins["numberRecordsProcessed"], ins["numberRecordsFailed"]) == (2, 1)
    assert sf.query(f"SELECT COUNT() FROM {TA}")["totalSize"] == 2998


def test_bulk2_clean_chunks_and_chunks_with_a_failing_row_get_the_same_rules(sf):
    """Clean chunks are written a column at a time; one failing row sends its chunk the long way."""
    cid = contact(sf)
    clean = [
        {EXT: f"c{i}", "Activity__c": "Delivered", "Contact__c": cid, "Lead__c": "", "Detail__c": "v1"}
        for i in range(50)
    ]
    [first] = sf.bulk2.Thrive_Activity__c.upsert(records=clean, external_id_field=EXT, wait=0.1)
    assert (first["numberRecordsProcessed"], first["numberRecordsFailed"]) == (50, 0)
    created = sf.bulk2.Thrive_Activity__c.get_successful_records(first["job_id"])
    assert created.count('"true"') == 50
    for r in clean:
        r["Detail__c"], r["Activity__c"] = "v2", ""  # an empty cell leaves the field alone
    [second] = sf.bulk2.Thrive_Activity__c.upsert(records=clean, external_id_field=EXT, wait=0.1)
    updated = sf.bulk2.Thrive_Activity__c.get_successful_records(second["job_id"])
    assert updated.count('"false"') == 50 and second["numberRecordsFailed"] == 0

    def ids_by_key(text: str) -> dict[str, str]:
        return {row[EXT]: row["sf__Id"] for row in csv.DictReader(io.StringIO(text))}

    assert ids_by_key(created) == ids_by_key(updated)  # the same records, updated in place
    details = sf.query(f"SELECT Detail__c, Activity__c, Lead__c FROM {TA} WHERE {EXT} LIKE 'c%'")["records"]
    assert {(r["Detail__c"], r["Activity__c"], r["Lead__c"]) for r in details} == {("v2", "Delivered", None)}
    assert len(details) == 50

    # #N/A clears a field, the same on the column path (a clean chunk) and the long way (with a bad row).
    for prefix, bad_row in (("x", False), ("y", True)):
        rows = [{EXT: f"{prefix}n{i}", "Contact__c": cid, "Detail__c": "v1"} for i in range(10)]
        sf.bulk2.Thrive_Activity__c.upsert(records=rows, external_id_field=EXT, wait=0.1)
        for r in rows:
            r["Contact__c"], r["Detail__c"] = "#N/A", "#N/A"
        if bad_row:
            rows[0]["Detail__c"] = "x" * 300
        sf.bulk2.Thrive_Activity__c.upsert(records=rows, external_id_field=EXT, wait=0.1)
        cleared = sf.query(f"SELECT Contact__c, Detail__c FROM {TA} WHERE {EXT} LIKE '{prefix}n%'")["records"]
        expected = {(None, None): 10 - bad_row, **({(cid, "v1"): 1} if bad_row else {})}  # the bad row: unchanged
        assert Counter((r["Contact__c"], r["Detail__c"]) for r in cleared) == expected

    unknown_contact = "003" + cid[3:5] + "9" * 10  # a well-formed Contact Id the org does not have
    unknown_contact = unknown_contact[:15]
    mixed = [{EXT: f"m{i}", "Activity__c": "Delivered", "Contact__c": cid} for i in range(20)]
    mixed[3]["Contact__c"] = unknown_contact
    mixed[7][EXT] = mixed[8][EXT]
    [job] = sf.bulk2.Thrive_Activity__c.upsert(records=mixed, external_id_field=EXT, wait=0.1)
    assert (job["numberRecordsProcessed"], job["numberRecordsFailed"]) == (20, 3)
    failed = sf.bulk2.Thrive_Activity__c.get_failed_records(job["job_id"])
    assert failed.count("INVALID_CROSS_REFERENCE_KEY:") == 1 and failed.count("DUPLICATE_EXTERNAL_ID:") == 2
    assert sf.query(f"SELECT COUNT() FROM {TA} WHERE {EXT} LIKE 'm%'")["totalSize"] == 17


def test_bulk2_job_with_unknown_column_fails_and_returns_unprocessed(sf, org):
    s = org.session()
    base = f"{org.url}/services/data/v59.0/jobs/ingest"
    job = s.post(
        base,
        json={
            "operation": "upsert",
            "object": TA,
            "externalIdFieldName": EXT,
            "contentType": "CSV",
            "lineEnding": "LF",
        },
    ).json()
    assert (
        s.put(
            f"{base}/{job['id']}/batches",
            data=b"Thrive_Event_Id__c,Bogus__c\nu1,x\n",
            headers={"Content-Type": "text/csv"},
        ).status_code
        == 201
    )
    s.patch(f"{base}/{job['id']}", json={"state": "UploadComplete"})
    for _ in range(100):
        info = s.get(f"{base}/{job['id']}").json()
        if info["state"] in ("JobComplete", "Failed"):
            break
        time.sleep(0.05)
    assert info["state"] == "Failed" and "Bogus__c" in info["errorMessage"]
    assert s.get(f"{base}/{job['id']}/unprocessedRecords").text.splitlines()[1] == "u1,x"


def test_bulk2_upload_over_150_mb_is_refused(org):
    host, port = org.url.removeprefix("https://").split(":")
    base = "/services/data/v59.0/jobs/ingest"
    job = org.session().post(f"{org.url}{base}", json={"operation": "insert", "object": TA}).json()
    conn = http.client.HTTPSConnection(host, int(port), context=ssl.create_default_context(cafile=str(org.ca)))
    conn.putrequest("PUT", f"{base}/{job['id']}/batches")
    conn.putheader("Authorization", f"Bearer {org.token}")
    conn.putheader("Content-Type", "text/csv")
    conn.putheader("Content-Length", str(150 * 1024 * 1024 + 1))
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 400 and b"150 MB" in response.read()


def test_token_is_required_and_only_loopback_is_bound(org, tmp_root):
    import psutil

    from thrive_dev.sandbox import running

    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = requests.get(f"{org.url}/services/data/v59.0/limits/", headers=headers, verify=str(org.ca))
        assert r.status_code == 401 and r.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    assert org.url.startswith("https://127.0.0.1:")
    pid = running(tmp_root / "sf").pid  # not org.pid: a reliability test restarts the sandbox
    listening = [c.laddr for c in psutil.Process(pid).net_connections(kind="inet") if c.status == "LISTEN"]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening)


@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        ({"error_503_share": 1.0}, SalesforceGeneralError),
        ({"limit_403_share": 1.0}, SalesforceRefusedRequest),
        ({"invalid_session_share": 1.0}, SalesforceExpiredSession),
        ({"drop_share": 1.0}, requests.ConnectionError),
    ],
)
def test_request_faults(sf, org, faults, expected):
    org.admin("PUT", "faults", json=faults)
    with pytest.raises(expected) as err:
        sf.query("SELECT COUNT() FROM Contact")
    if expected is SalesforceRefusedRequest:
        assert err.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"


def test_fault_knobs_change_one_by_one_and_an_empty_body_clears_them(sf, org):
    """CONTRACT.md §6: ``PUT /__sandbox/faults`` with ``{}`` clears them; the sandbox answers as new."""
    defaults = org.admin("GET", "faults").json()
    org.admin("PUT", "faults", json={"error_503_share": 1.0})
    knobs = org.admin("PUT", "faults", json={"queue_seconds": 5}).json()
    assert (knobs["error_503_share"], knobs["queue_seconds"]) == (1.0, 5)  # the first knob stayed
    assert org.admin("GET", "faults").json() == knobs
    assert org.admin("PUT", "faults", json={}).json() == defaults
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 0


def test_latency_and_row_lock_faults(sf, org):
    org.admin("PUT", "faults", json={"latency_ms": 300})
    started = time.perf_counter()
    sf.query("SELECT COUNT() FROM Contact")
    assert time.perf_counter() - started >= 0.3
    org.admin("PUT", "faults", json={"latency_ms": 0, "lock_row_share": 0.5})
    results = collection_upsert(sf, [{EXT: f"l{i}"} for i in range(200)])
    locked = [r for r in results if not r["success"]]
    assert 50 < len(locked) < 150 and {r["errors"][0]["statusCode"] for r in locked} == {"UNABLE_TO_LOCK_ROW"}


def test_latency_after_the_work_answers_late_what_is_already_done(sf, org):
    """`latency_after_ms`: the write happens at once, its answer comes late; a client that gave up finds it done."""
    org.admin("PUT", "faults", json={"latency_after_ms": 1000, "latency_after_requests": 1})
    with pytest.raises(requests.ReadTimeout):
        org.session().patch(
            f"{org.url}/services/data/v59.0/sobjects/{TA}/{EXT}/late:1", json={"Activity__c": "Opened"}, timeout=0.3
        )
    started = time.perf_counter()
    rows = sf.query(f"SELECT Activity__c FROM {TA} WHERE {EXT} = 'late:1'")["records"]
    assert [r["Activity__c"] for r in rows] == ["Opened"]  # while the first answer is still on its way
    assert time.perf_counter() - started < 0.5  # only the next request was late
    org.admin("PUT", "faults", json={"latency_after_ms": 300, "latency_after_share": 1.0})
    started = time.perf_counter()
    assert sf.Thrive_Activity__c.upsert(f"{EXT}/late:1", {"Activity__c": "Clicked"}) == 200
    assert time.perf_counter() - started >= 0.3


def test_text_length_counts_utf16_code_units_on_every_path(sf):
    """As in an org, a character beyond the BMP (an emoji) counts two: 128 of them overflow a Text(255).

    Checked through REST, sObject Collections and Bulk 2.0 (whose clean chunks are screened a column
    at a time); 255 ASCII characters, 255 BMP characters and 127 emoji plus one character still fit.
    """
    emoji = "\U0001f600"
    fitting = {"ascii": "x" * 255, "bmp": "é" * 255, "edge": emoji * 127 + "x"}
    values = {**fitting, "emoji": emoji * 128}
    results = collection_upsert(sf, [{EXT: f"c:{k}", "Detail__c": v} for k, v in values.items()])
    assert [r["success"] for r in results] == [True, True, True, False]
    assert results[3]["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Thrive_Activity__c.create({EXT: "r:emoji", "Detail__c": emoji * 128})
    assert err.value.content[0]["errorCode"] == "STRING_TOO_LONG"
    bulk = [{EXT: f"b:{k}:{i}", "Detail__c": v} for k, v in values.items() for i in range(50)]
    [job] = sf.bulk2.Thrive_Activity__c.upsert(records=bulk, external_id_field=EXT, wait=0.1)
    assert (job["numberRecordsProcessed"], job["numberRecordsFailed"]) == (200, 50)
    failed = list(csv.DictReader(io.StringIO(sf.bulk2.Thrive_Activity__c.get_failed_records(job["job_id"]))))
    assert {row[EXT].split(":")[1] for row in failed} == {"emoji"}
    assert {row["sf__Error"].split(":")[0] for row in failed} == {"STRING_TOO_LONG"}
    stored = sf.query_all(f"SELECT {EXT}, Detail__c FROM {TA}")["records"]
    assert {r[EXT].split(":")[1]: r["Detail__c"] for r in stored} == fitting
    assert len(stored) == 3 + 150


def test_state_token_and_ca_survive_a_restart(tmp_path):
    from simple_salesforce import Salesforce

    from thrive_dev import sandbox as sf_sandbox

    root = tmp_path / "sf"
    first = sf_sandbox.start(root)
    try:
        sf = Salesforce(session_id=first.token, instance_url=first.url, session=first.session())
        cid = sf.Contact.create({"LastName": "Persistent"})["id"]
        first.admin("PUT", "limits", json={"DailyApiRequests": {"Max": 500, "Remaining": 50}})
        sf.query("SELECT COUNT() FROM Contact")
        assert sf_sandbox.stop(root) and sf_sandbox.running(root) is None
        second = sf_sandbox.start(root)
        assert (second.token, second.url, second.ca.read_bytes()) == (first.token, first.url, first.ca.read_bytes())
        sf = Salesforce(session_id=second.token, instance_url=second.url, session=second.session())
        assert sf.Contact.get(cid)["LastName"] == "Persistent"
        assert sf.limits()["DailyApiRequests"] == {"Max": 500, "Remaining": 47}  # a restart is not a new day
    finally:
        sf_sandbox.stop(root)


def test_bulk2_ingest_rate_is_measured(sf, org):
    """Reported, not asserted (speed is the benchmark's business): rows/s of the job's processing."""
    cid = contact(sf)
    records = [
        {
            EXT: f"r{i}",
            "Activity_Group__c": "Sent",
            "Activity__c": "Delivered",
            "Contact__c": cid,
            "Activity_Date__c": "2026-11-26T10:00:00Z",
            "Detail__c": "https://www.example.org/news/1",
            "Category__c": "message_activity",
            "Thrive_Account_Id__c": "acct-001",
        }
        for i in range(50_000)
    ]
    [job] = sf.bulk2.Thrive_Activity__c.upsert(records=records, external_id_field=EXT, wait=0.1)
    info = org.session().get(f"{org.url}/services/data/v59.0/jobs/ingest/{job['job_id']}").json()
    MEASUREMENTS["sandbox Bulk 2.0 ingest (50k upserts, processing)"] = (
        f"{50_000 / (info['totalProcessingTime'] / 1000):,.0f} rows/s"
    )
    assert job["numberRecordsFailed"] == 0


def test_bulk1_json_upsert_as_the_provider_operator_uses_it(sf, org):
    cid = contact(sf)
    data = [{EXT: f"v1:{i}", "Activity__c": "Opened", "Contact__c": cid} for i in range(250)]
    data[3]["Detail__c"] = "x" * 300
    results = sf.bulk.Thrive_Activity__c.upsert(data, external_id_field=EXT, batch_size=100)
    assert len(results) == 250
    assert sum(r["success"] for r in results) == 249 and results[0]["created"] is True
    assert results[3]["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    assert sf.query(f"SELECT COUNT() FROM {TA} WHERE {EXT} LIKE 'v1:%'")["totalSize"] == 249
    assert org.admin("GET", "stats").json()["api_calls.POST bulk1"] == 1 + 3 + 1  # job, 3 batches, close


def test_bulk1_batch_status_is_whole_while_the_batch_is_written(sf, org):
    """Batch status polled as fast as a client can while the batch completes is never half a file.

    The provider's Bulk 1.0 client polls each batch from its own thread; a status file rewritten in
    place is empty for a moment, and the client fails on ``Expecting value`` (seen once in CI).
    """
    cid = contact(sf)
    session = org.session()
    base = f"{org.url}/services/async/59.0/job"
    headers = {"X-SFDC-Session": org.token, "Content-Type": "application/json"}
    torn = completed = 0
    for attempt in range(20):
        job = session.post(
            base, json={"object": TA, "operation": "upsert", "externalIdFieldName": EXT}, headers=headers
        ).json()
        rows = [{EXT: f"torn:{attempt}:{i}", "Contact__c": cid} for i in range(200)]
        batch = session.post(f"{base}/{job['id']}/batch", json=rows, headers=headers).json()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            body = session.get(f"{base}/{job['id']}/batch/{batch['id']}", headers=headers).content
            try:
                state = json.loads(body)["state"]
            except ValueError:
                torn += 1
                continue
            if state == "Completed":
                completed += 1
                break
    assert (torn, completed) == (0, 20)
