"""Writes that race and answers that come late: the sandbox as an org has them, and the writer under them.

Two requests inserting the same new external ID at once: an org looks the key up, finds nothing,
inserts, and the later insert fails ``DUPLICATE_VALUE`` on the unique index. The sandbox's
``upsert_race_ms`` knob widens that window so a test can hit it every time. ``latency_after_ms``
makes an answer late after its work is done, so a client that gives up and resends meets a write
that already happened.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from thrive_sync.hooks.salesforce import RetryBudget, SalesforceApiHook
from thrive_sync.sf_writer import SalesforceWriter, worth_resending

TA, EXT = "Thrive_Activity__c", "Thrive_Event_Id__c"
FAST = RetryBudget(attempts=8, initial_seconds=0.02, max_seconds=0.2, budget_seconds=60, record_rounds=6)
RACE_MS = 800  # the window between an upsert's lookup and its insert: both requests are inside it


def together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """``work(0)`` .. ``work(count - 1)`` in threads released at the same moment; their results in order."""
    gate = threading.Barrier(count)

    def run(n: int) -> Any:
        gate.wait()
        return work(n)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def client(org) -> Salesforce:
    """A client of its own (a requests session is not to be shared between threads)."""
    return Salesforce(session_id=org.token, instance_url=org.url, session=org.session())


def contact(org) -> str:
    return client(org).Contact.create({"LastName": "Racer"})["id"]


def records(n: int, contact_id: str, activity: str = "Opened") -> list[dict[str, Any]]:
    return [{EXT: f"race:{i}", "Activity__c": activity, "Contact__c": contact_id, "Detail__c": None} for i in range(n)]


def org_rows(org) -> list[dict]:
    soql = f"SELECT Id, {EXT}, Activity__c, CreatedDate, LastModifiedDate FROM {TA}"
    return client(org).query_all(soql)["records"]


def test_the_loser_of_an_upsert_race_gets_duplicate_value_on_every_api(org):
    """Raw client calls, no writer: Collections, REST upsert and Bulk 2.0 each answer the loser as an org does."""
    cid = contact(org)
    org.admin("PUT", "faults", json={"upsert_race_ms": RACE_MS})
    body = {"allOrNone": False, "records": [{"attributes": {"type": TA}, **r} for r in records(30, cid)]}
    path = f"composite/sobjects/{TA}/{EXT}"
    answers = together(2, lambda n: client(org).restful(path, method="PATCH", json=body))
    won, lost = sorted(answers, key=lambda results: not results[0]["success"])
    assert all(r["success"] and r["created"] for r in won)
    winner = {row[EXT]: row["Id"] for row in org_rows(org)}
    assert len(winner) == 30  # no key twice
    for record, result in zip(body["records"], lost, strict=True):
        message = f"duplicate value found: {EXT} duplicates value on record with id: {winner[record[EXT]][:15]}"
        assert not result["success"]
        assert result["errors"] == [{"statusCode": "DUPLICATE_VALUE", "message": message, "fields": []}]

    def rest_upsert(n: int) -> object:
        try:
            return client(org).Thrive_Activity__c.upsert(f"{EXT}/race:solo", {"Activity__c": f"v{n}"})
        except SalesforceMalformedRequest as err:
            return err.content[0]["errorCode"]

    assert sorted(map(str, together(2, rest_upsert))) == ["201", "DUPLICATE_VALUE"]

    bulk = [{**r, EXT: f"bulk:{i}", "Detail__c": "x"} for i, r in enumerate(records(40, cid))]
    jobs = together(
        2, lambda n: client(org).bulk2.Thrive_Activity__c.upsert(records=bulk, external_id_field=EXT, wait=0.1)
    )
    assert sorted(job["numberRecordsFailed"] for [job] in jobs) == [0, 40]
    [lost_job] = [job for [job] in jobs if job["numberRecordsFailed"]]
    failed = client(org).bulk2.Thrive_Activity__c.get_failed_records(lost_job["job_id"])
    assert failed.count(f'"DUPLICATE_VALUE:duplicate value found: {EXT} duplicates value on record with id: ') == 40
    assert Counter(row[EXT].split(":")[0] for row in org_rows(org)) == {"race": 31, "bulk": 40}


@pytest.mark.parametrize("path", ["collections", "bulk"])
def test_two_writers_racing_on_new_keys_both_end_written_once(salesforce_conn, org, path):
    """Both writers' records end written; the org holds each key once; the loser's write became an update."""
    cid = contact(org)
    org.admin("PUT", "faults", json={"upsert_race_ms": RACE_MS})
    threshold = 1 if path == "bulk" else 2_000

    def write(n: int) -> list:
        writer = SalesforceWriter(
            SalesforceApiHook(salesforce_conn, retry=FAST), TA, EXT, poll_seconds=0.05, bulk_threshold=threshold
        )
        return list(writer.write(records(60, cid, activity=f"writer{n}")))

    outcomes = together(2, write)
    assert [sum(o.written for o in each) for each in outcomes] == [60, 60], [
        Counter((o.reason_code, o.error_code) for o in each) for each in outcomes
    ]
    rows = org_rows(org)
    assert len(rows) == 60 and len({r[EXT] for r in rows}) == 60
    assert all(r["LastModifiedDate"] > r["CreatedDate"] for r in rows)  # each was updated after it was created
    if path == "collections":
        assert sorted(Counter(o.created for o in each)[True] for each in outcomes) == [0, 60]


def test_a_late_answer_to_a_done_write_is_resent_as_an_update_not_a_second_record(org, monkeypatch):
    """The first call's records are written, its answer comes after the client's timeout; the resend updates."""
    conn = json.loads(org.salesforce_conn())
    conn["extra"].update(timeout=0.5, http_backoff=0.01)
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_LATE", json.dumps(conn))
    cid = contact(org)
    received = org.admin("GET", "stats").json()["records.received"]
    org.admin("PUT", "faults", json={"latency_after_ms": 1500, "latency_after_requests": 1})
    writer = SalesforceWriter(SalesforceApiHook("salesforce_late", retry=FAST), TA, EXT, poll_seconds=0.05)
    outcomes = list(writer.write(records(120, cid)))
    assert len(outcomes) == 120 and all(o.written for o in outcomes)
    assert {o.created for o in outcomes} == {False}  # the first call had created them all already
    stats = org.admin("GET", "stats").json()
    assert stats["api_calls.PATCH composite/sobjects"] == 2  # sent, timed out on the client, sent again
    assert stats["records.received"] - received == 240
    assert len(org_rows(org)) == 120


@pytest.mark.parametrize(
    ("code", "message", "resent"),
    [
        ("DUPLICATE_VALUE", f"duplicate value found: {EXT} duplicates value on record with id: a0A5T0000000001", True),
        ("DUPLICATE_VALUE", f"duplicate value found: {EXT.lower()} duplicates value on record with id: a0A5T", True),
        (
            "DUPLICATE_VALUE",
            "duplicate value found: Email__c duplicates value on record with id: 0035T0000000001",
            False,
        ),
        ("DUPLICATE_VALUE", "duplicate value found: <unknown> duplicates value on record with id: <unknown>", False),
        ("DUPLICATE_VALUE", None, False),
        ("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record", True),
        ("STRING_TOO_LONG", f"duplicate value found: {EXT} duplicates value on record with id: x", False),
    ],
)
def test_only_a_duplicate_of_the_upsert_key_is_resent(code, message, resent):
    """A race on the external ID resolves to an update when sent again; a duplicate on another unique field
    (which the shipped object does not have, so it is checked here directly) stays the record's rejection."""
    assert worth_resending(code, message, EXT) is resent


def test_an_insert_of_a_taken_unique_value_is_duplicate_value(org):
    """Not only races: a plain create that repeats a unique value gets DUPLICATE_VALUE naming the field."""
    sf = client(org)
    first = sf.Thrive_Activity__c.create({EXT: "taken"})["id"]
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Thrive_Activity__c.create({EXT: "taken"})
    assert err.value.content == [
        {
            "errorCode": "DUPLICATE_VALUE",
            "message": f"duplicate value found: {EXT} duplicates value on record with id: {first[:15]}",
            "fields": [],
        }
    ]
