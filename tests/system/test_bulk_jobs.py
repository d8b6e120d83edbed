"""Bulk API 2.0 jobs that take time, fail and get aborted as a real org's do, and a writer right under them.

The sandbox side through simple_salesforce's own Bulk 2.0 job client; the writer through the hook,
both over HTTPS. Durations are seconds standing for an org's minutes.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
import time

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from thrive_sync.errors import BulkJobFailed, BulkJobRefused
from thrive_sync.hooks.salesforce import RetryBudget, SalesforceApiHook
from thrive_sync.sf_writer import SalesforceWriter

TA, EXT = "Thrive_Activity__c", "Thrive_Event_Id__c"
FAST = RetryBudget(attempts=8, initial_seconds=0.02, max_seconds=0.2, budget_seconds=60, record_rounds=6)
JOBS = "/services/data/v59.0/jobs/ingest"
BATCH_FAILED = "InternalServerError : a batch failed on each of its retries; the records left were not processed"


@pytest.fixture
def cid(sf) -> str:
    return sf.Contact.create({"LastName": "Bulk"})["id"]


def data(n: int, cid: str, prefix: str = "j") -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([EXT, "Activity__c", "Contact__c"])
    writer.writerows([f"{prefix}:{i}", "Delivered", cid] for i in range(n))
    return out.getvalue()


def records(n: int, cid: str, prefix: str = "w"):
    for i in range(n):
        yield {EXT: f"{prefix}:{i}", "Activity__c": "Delivered", "Contact__c": cid, "Detail__c": None}


def client(sf):
    """simple_salesforce's Bulk 2.0 job client for the activity object."""
    return sf.bulk2.Thrive_Activity__c._client


def open_job(sf, text: str) -> str:
    job_id = client(sf).create_job("upsert", external_id_field=EXT)["id"]
    client(sf).upload_job_data(job_id, text)
    return job_id


def follow(sf, job_id: str, timeout: float = 30) -> list[tuple[str, int]]:
    """Every (state, numberRecordsProcessed) the job shows until it ends, each once, in order."""
    seen: list[tuple[str, int]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client(sf).get_job(job_id, False)
        now = (info["state"], info["numberRecordsProcessed"])
        if not seen or seen[-1] != now:
            seen.append(now)
        if now[0] in ("JobComplete", "Failed", "Aborted"):
            return seen
        time.sleep(0.03)
    raise AssertionError(f"job {job_id} did not end: {seen}")


def all_jobs(org) -> list[dict]:
    return org.session().get(f"{org.url}{JOBS}").json()["records"]


def keys_of(text: str) -> list[str]:
    return [row[EXT] for row in csv.DictReader(io.StringIO(text))]


def count(sf) -> int:
    return sf.query(f"SELECT COUNT() FROM {TA}")["totalSize"]


def make_writer(conn_id: str, retry: RetryBudget = FAST, **kwargs) -> SalesforceWriter:
    return SalesforceWriter(SalesforceApiHook(conn_id, retry=retry), TA, EXT, poll_seconds=0.05, **kwargs)


# --- the sandbox's jobs -----------------------------------------------------------------------------
def test_a_job_waits_in_the_queue_then_runs_batch_by_batch(sf, org, cid):
    org.admin("PUT", "faults", json={"queue_seconds": 0.3, "batch_seconds": 0.3})
    job_id = open_job(sf, data(35_000, cid))
    closed = client(sf).close_job(job_id)
    assert closed["state"] == "UploadComplete"
    seen = follow(sf, job_id)
    assert seen[0] == ("UploadComplete", 0)
    assert seen[-1] == ("JobComplete", 35_000)
    progress = [n for state, n in seen if state == "InProgress"]
    assert {10_000, 20_000, 30_000} <= set(progress) and progress == sorted(progress)  # batch by batch
    assert count(sf) == 35_000


def test_batches_share_the_orgs_workers_across_jobs(sf, org, cid):
    """Two workers, three one-batch jobs closed at once: the third starts once a worker is free."""
    org.admin("PUT", "faults", json={"queue_seconds": 0, "batch_seconds": 0.5, "batch_workers": 2})
    jobs = [open_job(sf, data(100, cid, prefix=f"p{n}")) for n in range(3)]
    for job_id in jobs:
        client(sf).close_job(job_id)
    began: dict[str, float] = {}
    deadline = time.monotonic() + 10
    while len(began) < 3 and time.monotonic() < deadline:
        for job_id in jobs:
            if job_id not in began and client(sf).get_job(job_id, False)["state"] != "UploadComplete":
                began[job_id] = time.monotonic()
        time.sleep(0.02)
    first, second, third = sorted(began.values())
    assert second - first < 0.3 and third - first >= 0.4
    assert [follow(sf, job_id)[-1][0] for job_id in jobs] == ["JobComplete"] * 3


def test_a_failed_batch_fails_its_job_and_leaves_the_rest_unprocessed(sf, org, cid):
    org.admin("PUT", "faults", json={"fail_job_after_batches": 2})
    text = data(25_000, cid).replace(f"\nj:7,Delivered,{cid}\n", "\nj:7,Delivered,003ZZZZZZZZZZZZ\n")
    job_id = open_job(sf, text)  # one record of the first batch fails
    client(sf).close_job(job_id)
    assert follow(sf, job_id)[-1] == ("Failed", 20_000)
    info = client(sf).get_job(job_id, False)
    assert info["errorMessage"] == BATCH_FAILED and info["numberRecordsFailed"] == 1
    unprocessed = client(sf).get_ingest_results(job_id, "unprocessedRecords")
    assert keys_of(unprocessed) == [f"j:{i}" for i in range(20_000, 25_000)]
    failed = client(sf).get_ingest_results(job_id, "failedResults")
    assert keys_of(failed) == ["j:7"]
    assert len(keys_of(client(sf).get_ingest_results(job_id, "successfulResults"))) == 19_999
    assert count(sf) == 19_999  # the batches done stay done


def test_an_aborted_job_stops_after_its_batch_and_leaves_the_rest(sf, org, cid):
    org.admin("PUT", "faults", json={"queue_seconds": 0, "batch_seconds": 0.5})
    job_id = open_job(sf, data(30_000, cid))
    client(sf).close_job(job_id)
    while client(sf).get_job(job_id, False)["state"] != "InProgress":
        time.sleep(0.02)
    assert client(sf).abort_job(job_id, False)["state"] == "Aborted"  # real orgs abort InProgress jobs too
    time.sleep(0.8)  # the batch that was running finishes; no other starts
    info = client(sf).get_job(job_id, False)
    processed = info["numberRecordsProcessed"]
    assert info["state"] == "Aborted" and processed in (10_000, 20_000)
    unprocessed = keys_of(client(sf).get_ingest_results(job_id, "unprocessedRecords"))
    assert unprocessed == [f"j:{i}" for i in range(processed, 30_000)]
    assert count(sf) == processed

    queued = open_job(sf, data(10, cid, prefix="q"))  # aborted while it waits in the queue: nothing runs
    org.admin("PUT", "faults", json={"queue_seconds": 1.0})
    client(sf).close_job(queued)
    client(sf).abort_job(queued, False)
    time.sleep(1.2)
    assert client(sf).get_job(queued, False)["numberRecordsProcessed"] == 0
    assert len(keys_of(client(sf).get_ingest_results(queued, "unprocessedRecords"))) == 10
    with pytest.raises(SalesforceMalformedRequest) as err:
        client(sf).abort_job(queued, False)  # an ended job cannot be aborted
    assert err.value.status == 400 and err.value.content[0]["errorCode"] == "INVALIDJOBSTATE"


def test_an_aborted_jobs_results_hold_only_what_its_figures_count(sf, org, cid):
    """Aborted during a batch: until that batch is done, its records are in none of the results, so
    figures, results and ``unprocessedrecords`` never disagree (a client sees the gap and waits)."""
    org.admin("PUT", "faults", json={"queue_seconds": 0, "batch_seconds": 1.5})
    text = data(30_000, cid).replace(f"\nj:7,Delivered,{cid}\n", "\nj:7,Delivered,003ZZZZZZZZZZZZ\n")
    job_id = open_job(sf, text)  # one record of the first batch fails
    client(sf).close_job(job_id)
    while client(sf).get_job(job_id, False)["state"] != "InProgress":
        time.sleep(0.02)
    time.sleep(0.4)  # the first batch's records are written; the batch still holds its worker
    client(sf).abort_job(job_id, False)
    before = client(sf).get_job(job_id, False)
    succeeded = keys_of(client(sf).get_ingest_results(job_id, "successfulResults"))
    failed = keys_of(client(sf).get_ingest_results(job_id, "failedResults"))
    after = client(sf).get_job(job_id, False)
    assert before["numberRecordsProcessed"] == 0, before  # the batch is still running
    assert len(succeeded) + len(failed) <= after["numberRecordsProcessed"]
    assert len(failed) <= after["numberRecordsFailed"]
    time.sleep(1.5)  # the batch is done: everything adds up
    settled = client(sf).get_job(job_id, False)
    succeeded = keys_of(client(sf).get_ingest_results(job_id, "successfulResults"))
    failed = keys_of(client(sf).get_ingest_results(job_id, "failedResults"))
    unprocessed = keys_of(client(sf).get_ingest_results(job_id, "unprocessedRecords"))
    assert (settled["numberRecordsProcessed"], settled["numberRecordsFailed"]) == (10_000, 1)
    assert (len(succeeded), failed, len(unprocessed)) == (9_999, ["j:7"], 20_000)


def test_a_second_close_and_a_late_upload_answer_400_invalid_job_state(sf, org, cid):
    job_id = open_job(sf, data(10, cid))
    with pytest.raises(SalesforceMalformedRequest) as twice:  # a job takes one upload
        client(sf).upload_job_data(job_id, data(10, cid))
    client(sf).close_job(job_id)
    with pytest.raises(SalesforceMalformedRequest) as second_close:
        client(sf).close_job(job_id)
    follow(sf, job_id)
    with pytest.raises(SalesforceMalformedRequest) as after_complete:
        client(sf).close_job(job_id)
    with pytest.raises(SalesforceMalformedRequest) as late_upload:
        client(sf).upload_job_data(job_id, data(10, cid))
    for refused in (twice, second_close, after_complete, late_upload):
        assert refused.value.status == 400 and refused.value.content[0]["errorCode"] == "INVALIDJOBSTATE"
    assert [(j["id"], j["state"]) for j in all_jobs(org)] == [(job_id, "JobComplete")]  # Get All Jobs


def test_a_jobs_dates_are_to_the_second_as_an_orgs(sf, org, cid):
    """``createdDate`` and ``systemModstamp`` end ``.000+0000``: finding a job by time needs a second's slack."""
    for _ in range(3):  # a millisecond clock shows .000 one time in a thousand
        job_id = open_job(sf, data(10, cid))
        client(sf).close_job(job_id)
        info = client(sf).get_job(job_id, False)
        assert info["createdDate"].endswith(".000+0000") and info["systemModstamp"].endswith(".000+0000"), info


def test_jobs_in_flight_are_finished_after_a_restart(tmp_path, monkeypatch):
    from simple_salesforce import Salesforce

    from thrive_dev import sandbox as sf_sandbox

    monkeypatch.setenv("SF_SANDBOX_FAULTS", json.dumps({"queue_seconds": 0, "batch_seconds": 0.6}))
    root = tmp_path / "sf"
    first = sf_sandbox.start(root)
    try:
        sf = Salesforce(session_id=first.token, instance_url=first.url, session=first.session())
        owner = sf.Contact.create({"LastName": "Restart"})["id"]
        job_id = open_job(sf, data(30_000, owner))
        client(sf).close_job(job_id)
        while (info := client(sf).get_job(job_id, False))["numberRecordsProcessed"] < 10_000:
            time.sleep(0.05)
        assert info["state"] == "InProgress" and info["numberRecordsProcessed"] < 30_000
        sf_sandbox.stop(root)  # while the job runs
        second = sf_sandbox.start(root)
        sf = Salesforce(session_id=second.token, instance_url=second.url, session=second.session())
        assert follow(sf, job_id)[-1] == ("JobComplete", 30_000)
        done = list(csv.DictReader(io.StringIO(client(sf).get_ingest_results(job_id, "successfulResults"))))
        assert len(done) == 30_000 and {r["sf__Created"] for r in done} == {"true"}  # resumed, not run again
        assert client(sf).get_job(job_id, False)["numberRecordsFailed"] == 0 and count(sf) == 30_000
    finally:
        sf_sandbox.stop(root)


# --- the writer under them --------------------------------------------------------------------------
def test_a_failed_job_resends_only_what_it_left_unprocessed(salesforce_conn, org, sf, cid, caplog):
    """Every job fails at its second batch; the records it processed are never sent again."""
    caplog.set_level(logging.WARNING)
    org.admin("PUT", "faults", json={"fail_job_after_batches": 1})
    outcomes = list(make_writer(salesforce_conn, bulk_job_rows=25_000).write(records(30_000, cid)))
    assert len(outcomes) == 30_000 and all(o.written for o in outcomes) and count(sf) == 30_000
    jobs = all_jobs(org)
    assert {j["state"] for j in jobs} == {"JobComplete", "Failed"}
    assert sum(j["numberRecordsProcessed"] for j in jobs) == 30_000  # no record written twice
    assert BATCH_FAILED in caplog.text  # the org's own message


def test_a_job_the_org_refuses_for_its_data_fails_loudly_once(salesforce_conn, org, cid):
    rows = [{**r, "Bogus__c": "x"} for r in records(50, cid)]
    with pytest.raises(BulkJobRefused, match="InvalidBatch : Field name not found : Bogus__c"):
        list(make_writer(salesforce_conn, bulk_threshold=1).write(iter(rows)))
    assert org.admin("GET", "stats").json()["bulk2.jobs"] == 1  # not made again and again


def test_the_retry_budget_counts_time_failing_not_time_waiting(salesforce_conn, org, sf, cid):
    """A 2 s budget, a job of over 3 s, and a poll that meets an outage after the budget has passed."""
    org.admin("PUT", "faults", json={"queue_seconds": 0.5, "batch_seconds": 1.5})
    budget = RetryBudget(attempts=8, initial_seconds=0.02, max_seconds=0.2, budget_seconds=2, record_rounds=2)
    writer = make_writer(salesforce_conn, retry=budget, bulk_threshold=1, bulk_job_rows=100_000)
    outcome: list = []
    thread = threading.Thread(target=lambda: outcome.append(_try(lambda: list(writer.write(records(20_000, cid))))))
    started = time.monotonic()
    thread.start()
    while not any(j["state"] == "InProgress" for j in all_jobs(org)) or time.monotonic() - started < 2.5:
        time.sleep(0.05)
    org.admin("PUT", "faults", json={"outage_requests": 8})  # more than the transport's own 6 tries
    thread.join(30)
    assert not isinstance(outcome[0], Exception), outcome[0]
    assert all(o.written for o in outcome[0]) and len(outcome[0]) == 20_000
    assert time.monotonic() - started > budget.budget_seconds
    assert org.admin("GET", "faults").json()["outage_requests"] == 0  # the writer's polls met it


def test_a_resent_close_does_not_abort_a_good_job(salesforce_conn, org, sf, cid):
    """The first close's answer is lost; its resend is answered 400 INVALIDJOBSTATE: the job runs on."""
    org.admin("PUT", "faults", json={"drop_after_requests": 1, "drop_after_calls": "close"})
    outcomes = list(make_writer(salesforce_conn, bulk_threshold=1).write(records(3_000, cid)))
    assert all(o.written for o in outcomes) and count(sf) == 3_000
    stats = org.admin("GET", "stats").json()
    assert stats["faults.drop_after.close"] == 1 and stats["bulk2.jobs"] == 1
    assert [j["state"] for j in all_jobs(org)] == ["JobComplete"]


def test_a_create_whose_answer_was_lost_leaves_no_open_job(salesforce_conn, org, sf, cid):
    """The org made the job, the answer never came, the client asked again: the first job is aborted."""
    org.admin("PUT", "faults", json={"drop_after_requests": 1, "drop_after_calls": "create"})
    outcomes = list(make_writer(salesforce_conn, bulk_threshold=1).write(records(3_000, cid)))
    assert all(o.written for o in outcomes) and count(sf) == 3_000
    jobs = all_jobs(org)
    assert org.admin("GET", "stats").json()["faults.drop_after.create"] == 1 and len(jobs) == 2
    assert sorted((j["state"], j["numberRecordsProcessed"]) for j in jobs) == [("Aborted", 0), ("JobComplete", 3_000)]


def test_the_sweep_for_a_lost_create_waits_for_the_writes_end(salesforce_conn, org, sf, cid):
    """Another job made in the same moment, still open when the lost create's own job ends (another
    task's, or a sibling whose create answer is on its way), is closed before the write ends: it runs."""
    other = client(sf).create_job("upsert", external_id_field=EXT)["id"]  # made in the lost call's 2 s
    org.admin("PUT", "faults", json={"drop_after_requests": 1, "drop_after_calls": "create"})

    def rows():
        yield from records(2_000, cid)  # the first job (a fifth of 10,000), whose create answer is lost
        deadline = time.monotonic() + 10
        while "JobComplete" not in {j["state"] for j in all_jobs(org)}:  # it has ended (and, once, swept)
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)
        client(sf).upload_job_data(other, data(10, cid, prefix="o"))
        client(sf).close_job(other)
        yield from records(10_000, cid, prefix="v")

    outcomes = list(make_writer(salesforce_conn, bulk_threshold=1, bulk_job_rows=10_000).write(rows()))
    assert len(outcomes) == 12_000 and all(o.written for o in outcomes)
    assert follow(sf, other)[-1] == ("JobComplete", 10)
    jobs = all_jobs(org)
    assert sorted((j["state"], j["numberRecordsProcessed"]) for j in jobs if j["id"] != other) == [
        ("Aborted", 0),  # the orphan, swept at the end
        ("JobComplete", 2_000),
        ("JobComplete", 10_000),
    ]


def test_a_job_aborted_in_the_org_has_only_its_unprocessed_records_resent(salesforce_conn, org, sf, cid):
    org.admin("PUT", "faults", json={"queue_seconds": 0, "batch_seconds": 0.5})
    writer = make_writer(salesforce_conn, bulk_threshold=1, bulk_job_rows=150_000)  # one job, three batches
    outcome: list = []
    thread = threading.Thread(target=lambda: outcome.append(_try(lambda: list(writer.write(records(30_000, cid))))))
    thread.start()
    while not (running := [j for j in all_jobs(org) if j["state"] == "InProgress"]):
        time.sleep(0.02)
    client(sf).abort_job(running[0]["id"], False)  # someone with Manage Data Integrations
    thread.join(30)
    assert not isinstance(outcome[0], Exception), outcome[0]
    assert all(o.written for o in outcome[0]) and count(sf) == 30_000
    jobs = all_jobs(org)
    assert "Aborted" in {j["state"] for j in jobs}
    assert sum(j["numberRecordsProcessed"] for j in jobs) == 30_000  # what it had done was not sent again


def test_a_job_that_outlasts_its_timeout_is_aborted_and_says_so(salesforce_conn, org, cid):
    org.admin("PUT", "faults", json={"queue_seconds": 0.2, "batch_seconds": 2})
    writer = make_writer(salesforce_conn, bulk_threshold=1, job_timeout_seconds=1)
    with pytest.raises(BulkJobFailed, match=r"still (UploadComplete|InProgress) after 1 s .* aborted"):
        list(writer.write(records(500, cid)))
    assert [j["state"] for j in all_jobs(org)] == ["Aborted"]


def test_a_write_that_stops_early_leaves_no_job_running(salesforce_conn, org, sf, cid):
    """An error while later jobs are built (here: a record of other fields) aborts the jobs in flight."""
    org.admin("PUT", "faults", json={"queue_seconds": 1.0})
    rows = list(records(12_000, cid))
    rows[11_000] = {**rows[11_000], "Message_Name__c": "a field the others lack"}
    with pytest.raises(ValueError, match="fields"):
        list(make_writer(salesforce_conn, bulk_threshold=1, bulk_job_rows=10_000).write(iter(rows)))
    jobs = all_jobs(org)
    assert jobs and {j["state"] for j in jobs} == {"Aborted"}
    time.sleep(1.2)  # had it been left queued, it would have run by now
    assert count(sf) == 0


def _try(fn):
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - handed to the test's thread to assert on
        return exc
