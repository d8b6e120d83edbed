"""The writer and the member-ID matcher, through SalesforceHook and simple_salesforce, against the sandbox."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from conftest import MEASUREMENTS, PROJECT_ROOT
from thrive_dev.ids import compose_id15
from thrive_sync.core.catalog import Category
from thrive_sync.core.members import MemberIdMatcher
from thrive_sync.core.sfid import checksum, to_18
from thrive_sync.errors import SalesforceUnavailable
from thrive_sync.hooks.salesforce import RetryBudget, SalesforceApiHook
from thrive_sync.sf_writer import SalesforceWriter

TA, EXT = "Thrive_Activity__c", "Thrive_Event_Id__c"
FAST = RetryBudget(attempts=8, initial_seconds=0.02, max_seconds=0.2, budget_seconds=60, record_rounds=6)


def make_writer(conn_id: str, retry: RetryBudget = FAST, **kwargs) -> SalesforceWriter:
    return SalesforceWriter(SalesforceApiHook(conn_id, retry=retry), TA, EXT, poll_seconds=0.05, **kwargs)


@pytest.fixture
def contacts(sf) -> list[str]:
    return [sf.Contact.create({"LastName": f"C{i}"})["id"] for i in range(3)]


def records(n: int, contacts: list[str], tag: str = "e"):
    for i in range(n):
        yield {
            EXT: f"{tag}:{i}",
            "Activity_Group__c": "Sent",
            "Activity__c": "Delivered",
            "Contact__c": contacts[i % len(contacts)],
            "Activity_Date__c": "2026-11-26T10:00:00Z",
            "Detail__c": None,  # a mapping gives every record the same fields
        }


def calls(org) -> dict[str, int]:
    return org.admin("GET", "stats").json()


def count(sf) -> int:
    return sf.query(f"SELECT COUNT() FROM {TA}")["totalSize"]


def test_small_day_goes_through_collections(salesforce_conn, org, sf, contacts):
    outcomes = list(make_writer(salesforce_conn).write(records(500, contacts)))
    assert len(outcomes) == 500 and all(o.written for o in outcomes)
    stats = calls(org)
    assert stats["api_calls.PATCH composite/sobjects"] == 3 and "bulk2.jobs" not in stats
    assert count(sf) == 500


def test_large_day_goes_through_bulk2_with_outcomes_keyed_by_our_key(salesforce_conn, org, sf, contacts):
    rows = list(records(5_000, contacts))
    rows[10]["Detail__c"] = "x" * 300
    rows[4_321]["Contact__c"] = contacts[0][:9] + "ZZZZZZ"
    outcomes = {o.key: o for o in make_writer(salesforce_conn, bulk_job_rows=2_000).write(iter(rows))}
    assert len(outcomes) == 5_000 and calls(org)["bulk2.jobs"] == 4  # 400 (a fifth, to start sooner), 2,000 x 2, 600
    assert (outcomes["e:10"].reason_code, outcomes["e:10"].error_code) == ("REJECTED", "STRING_TOO_LONG")
    assert outcomes["e:4321"].error_code == "INVALID_CROSS_REFERENCE_KEY"
    assert outcomes["e:4321"].message.startswith("invalid cross reference id")
    assert sum(o.written for o in outcomes.values()) == 4_998 == count(sf)


def test_bulk_and_collections_leave_the_org_in_the_same_state(salesforce_conn, org, sf, contacts):
    """A rerun with changed values sets and clears fields alike through both paths; `#N/A` stays text.

    In a Bulk CSV an empty cell leaves a field unchanged and `#N/A` nulls it; sObject Collections
    sends JSON null and text as text. The same records, written twice with values that change
    (a Contact becomes a Lead, a link becomes null or empty, a name becomes the text "#N/A"),
    must end the same whichever way they went.
    """
    lead = sf.Lead.create({"LastName": "L", "Company": "C"})["id"]

    def day(path: str, rerun: bool) -> list[dict]:
        return [
            {
                EXT: f"{path}:{i}",
                "Activity_Group__c": "Sent",
                "Activity__c": "Delivered",
                "Activity_Date__c": "2026-11-26T10:00:00Z",
                "Contact__c": None if rerun and i % 2 else contacts[i % len(contacts)],
                "Lead__c": lead if rerun and i % 2 else None,
                "Detail__c": (None, "", "https://x.example/new")[i % 3] if rerun else "https://x.example/old",
                "Message_Name__c": "#N/A" if rerun and i % 5 == 0 else f"Message {i}",
            }
            for i in range(60)
        ]

    for rerun in (False, True):
        collections = list(make_writer(salesforce_conn, bulk_threshold=10_000).write(iter(day("c", rerun))))
        bulk = list(make_writer(salesforce_conn, bulk_threshold=1).write(iter(day("b", rerun))))
        assert all(o.written for o in collections + bulk)
    assert calls(org)["bulk2.jobs"] >= 2
    fields = ("Contact__c", "Lead__c", "Detail__c", "Message_Name__c")
    rows = sf.query_all(f"SELECT {EXT}, {', '.join(fields)} FROM {TA}")["records"]
    state = {r[EXT]: tuple(r[f] for f in fields) for r in rows}
    by_path = {path: {k.split(":", 1)[1]: v for k, v in state.items() if k.startswith(f"{path}:")} for path in "cb"}
    assert by_path["b"] == by_path["c"]
    assert by_path["c"]["1"] == (None, to_18(lead), None, "Message 1")  # Contact -> Lead; an empty link clears
    assert by_path["c"]["3"] == (None, to_18(lead), None, "Message 3")  # a null link clears
    assert by_path["c"]["0"] == (to_18(contacts[0]), None, None, "#N/A")  # the text "#N/A" stays text


def test_a_rerun_creates_nothing_new(salesforce_conn, sf, contacts):
    writer = make_writer(salesforce_conn)
    for _ in range(2):
        assert all(o.written for o in writer.write(records(2_500, contacts)))
    assert count(sf) == 2_500


def test_row_locks_resend_only_the_locked_rows(salesforce_conn, org, sf, contacts):
    received_before = calls(org)["records.received"]  # the three Contacts
    org.admin("PUT", "faults", json={"lock_row_share": 0.3})
    patient = RetryBudget(attempts=8, initial_seconds=0.01, max_seconds=0.05, record_rounds=12)
    outcomes = list(make_writer(salesforce_conn, retry=patient).write(records(4_000, contacts)))
    assert all(o.written for o in outcomes) and count(sf) == 4_000
    stats = calls(org)
    assert stats["faults.lock_row"] > 1_000
    assert (
        stats["records.received"] - received_before == 4_000 + stats["faults.lock_row"]
    )  # the first pass, then only what was locked


def test_records_grouped_by_parent_never_wait_for_each_others_locks(salesforce_conn, org, sf):
    """Under the same contention (each Bulk batch holds the Contacts its rows look up; a row waits
    50 ms for one another batch holds), the same 12,000 records: in event order, jobs running side
    by side hold the same Contacts and thousands of rows fail UNABLE_TO_LOCK_ROW, to be resent; by
    parent, with jobs ending where the Contact changes, not one row waits. Both end written."""
    people = [sf.Contact.create({"LastName": f"P{i}"})["id"] for i in range(40)]
    org.admin("PUT", "faults", json={"parent_lock_wait_seconds": 0.05, "batch_seconds": 0.4})
    patient = RetryBudget(attempts=8, initial_seconds=0.01, max_seconds=0.05, record_rounds=12)
    failures = {}
    for grouped in (False, True):
        day = list(records(12_000, people, tag=f"grouped-{grouped}"))
        if grouped:
            day.sort(key=lambda record: record["Contact__c"])  # as the stream orders them (by member)
        before = calls(org).get("faults.parent_lock", 0)
        parents = ("Contact__c", "Lead__c") if grouped else ()
        writer = make_writer(salesforce_conn, retry=patient, bulk_job_rows=2_000, parent_fields=parents)
        outcomes = list(writer.write(iter(day)))
        assert len(outcomes) == 12_000 and all(o.written for o in outcomes)
        failures[grouped] = calls(org).get("faults.parent_lock", 0) - before
    assert failures[False] > 3_000, failures
    assert failures[True] == 0, failures
    assert count(sf) == 24_000
    measured = f"{failures[False]} in event order, {failures[True]} by parent"
    MEASUREMENTS["parent lock failures, 12,000 records"] = measured


def test_locks_that_never_clear_end_as_retries_exhausted(salesforce_conn, org, contacts):
    org.admin("PUT", "faults", json={"lock_row_share": 1.0})
    outcomes = list(make_writer(salesforce_conn).write(records(300, contacts)))
    assert {(o.reason_code, o.error_code) for o in outcomes} == {("RETRIES_EXHAUSTED", "UNABLE_TO_LOCK_ROW")}
    assert len(outcomes) == 300


@pytest.mark.parametrize(
    "faults",
    [{"error_503_share": 0.3}, {"limit_403_share": 0.3}, {"drop_share": 0.2}, {"invalid_session_requests": 3}],
    ids=["503", "403-limit", "dropped-connection", "401-session"],
)
def test_transient_call_failures_are_retried(salesforce_conn, org, sf, contacts, faults):
    writer = make_writer(salesforce_conn)
    org.admin("PUT", "faults", json=faults)
    outcomes = list(writer.write(records(3_000, contacts)))
    org.admin("PUT", "faults", json={k: 0 for k in faults})
    assert all(o.written for o in outcomes) and len(outcomes) == 3_000
    assert count(sf) == 3_000


def test_an_outage_beyond_the_budget_fails_loudly(salesforce_conn, org, contacts):
    org.admin("PUT", "faults", json={"outage_requests": 10_000})
    writer = make_writer(salesforce_conn, retry=RetryBudget(attempts=3, initial_seconds=0.01, max_seconds=0.02))
    with pytest.raises(SalesforceUnavailable, match="after 3 attempts"):
        list(writer.write(records(10, contacts)))


def test_a_sandbox_slower_than_the_request_timeout_fails_loudly(org, monkeypatch, contacts):
    conn = json.loads(org.salesforce_conn())
    conn["extra"].update(timeout=0.3, http_retries=1, http_backoff=0.01)
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_SLOW", json.dumps(conn))
    org.admin("PUT", "faults", json={"latency_ms": 800})
    writer = make_writer("salesforce_slow", retry=RetryBudget(attempts=2, initial_seconds=0.01, max_seconds=0.02))
    with pytest.raises(SalesforceUnavailable) as err:
        list(writer.write(records(5, contacts)))
    assert "timed out" in str(err.value)


def test_member_ids_checked_locally_then_in_chunks_in_the_org(salesforce_conn, org):
    ids = [(i15 := compose_id15("003", "7k", n)) + checksum(i15) for n in range(1, 701)]
    org.admin("PUT", "seed/Contact", json=[{"Id": i, "LastName": "Seeded"} for i in ids])
    lead = (l15 := compose_id15("00Q", "7k", 1)) + checksum(l15)
    org.admin("PUT", "seed/Lead", json=[{"Id": lead, "LastName": "L", "Company": "C"}])
    unknown = (u15 := compose_id15("003", "9z", 1)) + checksum(u15)
    matcher = MemberIdMatcher(SalesforceApiHook(salesforce_conn, retry=FAST).query_all)
    raw = [*ids, ids[0][:15], lead[:15], unknown, None, "   ", "003ABC", ids[1][:17] + "X", f" {ids[2]}"]
    result = matcher.resolve(raw)
    assert matcher.queries == 3 + 1 + 1  # 701 Contact Ids in chunks of 300, 1 Lead, queryAll for the unknown one
    assert all(result[i].sf_id == i and result[i].sobject == "Contact" for i in ids)
    assert result[ids[0][:15]].sf_id == ids[0] and result[lead[:15]].sobject == "Lead"
    assert result[unknown].reason_code == "UNMATCHED_MEMBER_ID"
    assert result[None].reason_code == result["   "].reason_code == "MISSING_MEMBER_ID"
    assert {result[r].reason_code for r in ("003ABC", ids[1][:17] + "X", f" {ids[2]}")} == {"MALFORMED_MEMBER_ID"}
    matcher.resolve(ids[:10])
    assert matcher.queries == 5  # answers are remembered


def test_a_runs_tasks_share_member_answers_through_postgresql(salesforce_conn, org, fresh_db):
    """The second category task of a run asks the org nothing it already asked; other runs do ask."""
    import psycopg

    from thrive_dev.schema import apply_schema
    from thrive_sync.core.parts import Part
    from thrive_sync.hooks.thrive_store import CategoryStore

    ids = [(i15 := compose_id15("003", "7m", n)) + checksum(i15) for n in range(1, 401)]
    org.admin("PUT", "seed/Contact", json=[{"Id": i, "LastName": "Seeded"} for i in ids[:350]])
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        apply_schema(conn)

        def matcher(run_id: str) -> MemberIdMatcher:
            """As a task of ``run_id`` builds it for connection "sf"."""
            store = CategoryStore(conn, conn, run_id, Category.MESSAGE_ACTIVITY, Part("sf")).member_store("sf")
            return MemberIdMatcher(SalesforceApiHook(salesforce_conn, retry=FAST).query_all, store)

        first = matcher("run-1")
        assert first.prefetch(ids) == 400 and first.queries == 3  # 300 + 100 concurrently, queryAll for 50 missing
        before = calls(org)["api_calls.GET query"]
        second = matcher("run-1")
        answers = second.resolve(ids)
        assert second.queries == 0 and second.from_store == 400 and calls(org)["api_calls.GET query"] == before
        assert sum(a.sf_id is not None for a in answers.values()) == 350
        assert {answers[i].reason_code for i in ids[350:]} == {"UNMATCHED_MEMBER_ID"}
        other_run = matcher("run-2")
        other_run.resolve(ids[:10])
        assert other_run.queries == 1
        assert conn.execute("SELECT count(*) FROM thrive_sync.member_matches").fetchone()[0] == 410


def test_records_must_share_their_fields(salesforce_conn, org, contacts):
    rows = list(records(2_500, contacts))
    rows[2_100]["Message_Name__c"] = "a field the others lack"
    with pytest.raises(ValueError, match="fields"):
        list(make_writer(salesforce_conn).write(iter(rows)))


def test_no_secret_reaches_logs_or_errors(salesforce_conn, org, contacts, caplog):
    caplog.set_level(logging.DEBUG)
    org.admin("PUT", "faults", json={"invalid_session_requests": 3, "error_503_share": 0.2})
    list(make_writer(salesforce_conn).write(records(2_500, contacts)))
    org.admin("PUT", "faults", json={"outage_requests": 10_000})
    with pytest.raises(SalesforceUnavailable) as err:
        list(
            make_writer(salesforce_conn, retry=RetryBudget(attempts=2, initial_seconds=0.01)).write(
                records(3, contacts)
            )
        )
    assert org.token not in caplog.text
    assert org.token not in str(err.value) and org.token not in repr(err.value.__cause__)


STREAM_100K = """
import json, resource, sys, time
from thrive_sync.hooks.salesforce import SalesforceApiHook
from thrive_sync.sf_writer import SalesforceWriter
contacts = sys.argv[1].split(",")
def records():
    for i in range(100_000):
        yield {"Thrive_Event_Id__c": f"s:{i}", "Activity_Group__c": "Sent", "Activity__c": "Delivered",
               "Contact__c": contacts[i % len(contacts)], "Activity_Date__c": "2026-11-26T10:00:00Z",
               "Detail__c": "https://www.example.org/news/1?utm_source=thrive", "Category__c": "message_activity",
               "Thrive_Account_Id__c": "acct-001"}
writer = SalesforceWriter(SalesforceApiHook("salesforce_default"), "Thrive_Activity__c",
                          "Thrive_Event_Id__c", poll_seconds=0.2)
started = time.perf_counter()
written = sum(o.written for o in writer.write(records()))
print(json.dumps({"written": written, "seconds": time.perf_counter() - started,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def test_100k_records_stream_through_bulk2(salesforce_conn, org, sf, contacts):
    """API calls and peak memory are measured and reported; the count is asserted."""
    result = subprocess.run(
        [sys.executable, "-c", STREAM_100K, ",".join(contacts)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    stats = calls(org)
    assert figures["written"] == 100_000 == count(sf) - 0
    MEASUREMENTS["writer, 100k records via Bulk 2.0"] = (
        f"{figures['seconds']:.1f} s, {stats['api_calls'] - 1} API calls "
        f"({stats['bulk2.jobs']} jobs), peak RSS {figures['peak_rss_mb']:.0f} MB"
    )


@pytest.mark.parametrize(
    ("conn", "direct"),
    [
        (
            {"conn_type": "salesforce", "login": "u@example.org", "password": "pw", "extra": {"security_token": "t"}},
            False,
        ),
        (
            {"conn_type": "salesforce", "login": "u@example.org", "extra": {"consumer_key": "k", "private_key": "p"}},
            False,
        ),
        (
            {
                "conn_type": "salesforce",
                "password": "session-id",
                "extra": {"instance_url": "https://x.my.salesforce.com"},
            },
            True,
        ),
    ],
    ids=["password-token", "oauth-jwt", "instance-url-session"],
)
def test_connection_shapes_reach_the_hook_as_the_provider_expects(monkeypatch, conn, direct):
    """Password and JWT connections go to the hook untouched (it logs in); only the session shape gets a session id."""
    monkeypatch.setenv("AIRFLOW_CONN_SF_SHAPE", json.dumps(conn))
    hook = SalesforceApiHook("sf_shape")
    hook.configure()  # what get_conn() does before it logs in
    assert (hook.session_id == "session-id") if direct else hook.session_id is None
    adapter = hook.session.get_adapter("https://x.my.salesforce.com")
    assert adapter.timeout == 120 and adapter.max_retries.total == 5
    assert hook.session.trust_env  # no ca_bundle: the machine's CA settings apply
