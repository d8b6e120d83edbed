"""The daily sync end to end: `airflow dags test` against the suite's PostgreSQL and the sandbox.

A generated day whose every event says what it was built to produce (``thrive_sample.expected_outcomes``)
runs through the real DAG; Salesforce (read back with SOQL) and the tracking log must match it row for row.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

import dag_runs
from conftest import PROJECT_ROOT, airflow_conn_for
from thrive_dev.demo import report_block
from thrive_dev.sample_data import SampleConfig, load
from thrive_dev.sandbox import seed_from_sample

DAY = date(2026, 11, 26)
TA, EXT = "Thrive_Activity__c", "Thrive_Event_Id__c"
EXPECTED_FOR_DAY = """
    SELECT x.account_id, x.category, x.event_id, x.outcome, x.reason FROM thrive_sample.expected_outcomes x
    JOIN (SELECT account_id, event_id, 'message_activity' AS category, occurred_at FROM thrive.message_activity
          UNION ALL SELECT account_id, event_id, 'recipient_details', occurred_at FROM thrive.recipient_activity
          UNION ALL SELECT account_id, event_id, 'marketing_automation', occurred_at FROM thrive.automation_activity
          UNION ALL SELECT account_id, event_id, 'social_crm', occurred_at FROM thrive.social_activity
          UNION ALL SELECT account_id, event_id, 'surveys_events', occurred_at FROM thrive.survey_event_activity) e
      USING (account_id, category, event_id)
    WHERE e.occurred_at >= %(start)s AND e.occurred_at < %(end)s
"""


def dags_test(run_date: str, conf: dict | None = None) -> subprocess.CompletedProcess:
    """The DAG for the day before ``run_date``. Without ``lookback_days`` in ``conf``, that day alone
    (lookback 0): the fixture's other day was never synced, and a day's tests compare that day."""
    result = dag_runs.dags_test({"delay_minutes": 0, "lookback_days": 0, **(conf or {})}, run_date=run_date)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result


@pytest.fixture
def day(fresh_db, pg_server, org, salesforce_conn, monkeypatch, airflow_metadata):
    """Two generated days in a fresh database, the sandbox seeded, connections pointed at both."""
    # The day under test (26th) and the day before it (25th): both ended, so `wait_after_midnight` passes.
    load(fresh_db, SampleConfig(start=DAY - timedelta(days=1), days=2, events=6_000, recipients_per_account=60, seed=3))
    with psycopg.connect(fresh_db) as conn:
        # Window edges, on a good recipient: the start instant is in the day, the end instant is not.
        acct, recipient = conn.execute(
            "SELECT r.account_id, r.recipient_id FROM thrive.recipients r JOIN thrive_sample.crm_records c"
            " ON c.sf_id = r.custom_member_id WHERE r.account_id = 'acct-001' ORDER BY 2 LIMIT 1"
        ).fetchone()
        conn.execute(
            "INSERT INTO thrive.message_activity VALUES"
            " (%(a)s, 900000001, %(r)s, 'Opened', 'Opened', '2026-11-26T00:00:00Z', 1, NULL),"
            " (%(a)s, 900000002, %(r)s, 'Opened', 'Opened', '2026-11-27T00:00:00Z', 1, NULL),"
            # A click whose link is longer than Detail__c: the org refuses it (STRING_TOO_LONG).
            " (%(a)s, 900000003, %(r)s, 'LinkClicked', 'Clicked', '2026-11-26T12:00:00Z', 1, %(long)s)",
            {"a": acct, "r": recipient, "long": "https://www.example.org/" + "x" * 300},
        )
        # A Facebook like from a matched recipient without a Facebook handle.
        no_fb = conn.execute(
            "SELECT r.recipient_id FROM thrive.recipients r JOIN thrive_sample.crm_records c"
            " ON c.sf_id = r.custom_member_id WHERE r.account_id = 'acct-001' AND r.facebook_handle IS NULL"
            " ORDER BY 1 LIMIT 1"
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO thrive.social_activity VALUES"
            " (%(a)s, 900000004, %(r)s, 'Social', 'FacebookLike', '2026-11-26T13:00:00Z', 'https://fb.example/p/1')",
            {"a": acct, "r": no_fb},
        )
        conn.execute(
            "INSERT INTO thrive_sample.expected_outcomes VALUES"
            " (%(a)s, 'social_crm', 900000004, 'failed', 'MISSING_SOCIAL_HANDLE', 'no_social_handle'),"
            " (%(a)s, 'message_activity', 900000001, 'written', NULL, NULL),"
            " (%(a)s, 'message_activity', 900000002, 'written', NULL, NULL),"
            " (%(a)s, 'message_activity', 900000003, 'failed', 'REJECTED', 'detail_too_long')",
            {"a": acct},
        )
    seed_from_sample(org, fresh_db)
    monkeypatch.setenv("AIRFLOW_CONN_THRIVE_DB", airflow_conn_for(pg_server, fresh_db))
    return fresh_db


def expected(uri: str, start: str, end: str) -> list[tuple]:
    with psycopg.connect(uri) as conn:
        return conn.execute(EXPECTED_FOR_DAY, {"start": start, "end": end}).fetchall()


def salesforce_keys(sf) -> list[str]:
    return [r[EXT] for r in sf.query_all(f"SELECT {EXT} FROM {TA}")["records"]]


def test_a_day_lands_exactly_once_and_every_failure_is_logged(day, sf):
    want = expected(day, "2026-11-26", "2026-11-27")
    result = dags_test("2026-11-27")
    report = report_block(result.stdout + result.stderr)
    assert report and report[1].startswith("window 2026-11-26 00:00:00+00:00 -> 2026-11-27 00:00:00+00:00")

    # Salesforce holds exactly the events built to be written, once each.
    keys = salesforce_keys(sf)
    assert len(keys) == len(set(keys))
    assert set(keys) == {f"{a}:{c}:{e}" for a, c, e, outcome, _ in want if outcome == "written"}
    assert "acct-001:message_activity:900000001" in keys and "acct-001:message_activity:900000002" not in keys

    with psycopg.connect(day) as conn:
        run_id = conn.execute("SELECT DISTINCT dag_run_id FROM thrive_sync.sync_runs").fetchone()[0]
        logged = conn.execute(
            "SELECT account_id, category, event_id, reason_code FROM thrive_sync.tracking_log WHERE dag_run_id = %s",
            (run_id,),
        ).fetchall()
        runs = conn.execute(
            "SELECT account_id, category, extracted, written, failed, skipped, skip_gate"
            " FROM thrive_sync.sync_runs WHERE dag_run_id = %s",
            (run_id,),
        ).fetchall()
        staged_left = conn.execute("SELECT count(*) FROM thrive_sync.staged_events").fetchone()[0]
    # The tracking log holds exactly the rows built to fail, each with the reason it was built for.
    assert sorted(logged) == sorted((a, c, e, r) for a, c, e, outcome, r in want if outcome == "failed")
    # Every reason code the source data can produce was produced.
    assert {r for *_, r in logged} == {
        "MISSING_MEMBER_ID",
        "MALFORMED_MEMBER_ID",
        "UNMATCHED_MEMBER_ID",
        "UNKNOWN_ACTIVITY",
        "INVALID_ROW",
        "MISSING_SOCIAL_HANDLE",
        "REJECTED",
    }
    with psycopg.connect(day) as conn:
        detail = conn.execute(
            "SELECT reason_detail FROM thrive_sync.tracking_log WHERE event_id = 900000003"
        ).fetchone()
    assert detail[0].startswith("STRING_TOO_LONG: Detail: data value too large")
    # Counts add up per category and account, and skips carry their gate.
    for account_id, category, extracted, written, failed, skipped, gate in runs:
        assert extracted == written + failed + skipped
        built = [w for w in want if w[0] == account_id and w[1] == category]
        assert extracted == len(built)
        assert skipped == sum(1 for w in built if w[3] == "skipped")
        assert (gate is not None) == (skipped > 0)
    assert {g for *_, g in runs if g} == {r for *_, outcome, r in want if outcome == "skipped"}
    assert staged_left == 0


def test_fields_land_as_mapped(day, sf):
    dags_test("2026-11-27")
    with psycopg.connect(day) as conn:
        source = conn.execute(
            "SELECT e.account_id, e.event_id, e.activity_code, e.activity_subcode, e.occurred_at, e.message_id,"
            " m.name, e.link_url, r.custom_member_id FROM thrive.message_activity e"
            " JOIN thrive.recipients r USING (account_id, recipient_id)"
            " JOIN thrive.messages m USING (account_id, message_id)"
            " JOIN thrive_sample.expected_outcomes x ON x.account_id = e.account_id AND x.event_id = e.event_id"
            "  AND x.category = 'message_activity' AND x.outcome = 'written'"
            " WHERE e.occurred_at >= '2026-11-26' AND e.occurred_at < '2026-11-27'"
            " ORDER BY (e.activity_code = 'LinkClicked') DESC, e.event_id LIMIT 15"
        ).fetchall()
    from thrive_sync.core.sfid import to_18

    for account_id, event_id, code, subcode, occurred_at, message_id, name, link, member in source:
        got = sf.Thrive_Activity__c.get_by_custom_id(EXT, f"{account_id}:message_activity:{event_id}")
        member18 = to_18(member)
        assert (got["Activity_Group__c"], got["Activity__c"]) == (code, subcode)
        assert datetime.fromisoformat(got["Activity_Date__c"]) == occurred_at.astimezone(UTC).replace(
            microsecond=occurred_at.microsecond // 1000 * 1000
        )
        assert (got["Contact__c"], got["Lead__c"]) == (
            (member18, None) if member18.startswith("003") else (None, member18)
        )
        assert (got["Category__c"], got["Thrive_Account_Id__c"]) == ("message_activity", account_id)
        assert (got["Message_Id__c"], got["Message_Name__c"], got["Detail__c"]) == (str(message_id), name, link)


def test_a_rerun_adds_no_record_and_a_dry_run_writes_nothing(day, sf, org):
    dags_test("2026-11-27")
    first = sorted(salesforce_keys(sf))
    dags_test("2026-11-27")
    assert sorted(salesforce_keys(sf)) == first  # same records, none added

    calls_before = org.admin("GET", "stats").json().get("records.received", 0)
    result = dags_test("2026-11-26", conf={"dry_run": True})  # the other generated day, the 25th
    assert sorted(salesforce_keys(sf)) == first
    assert org.admin("GET", "stats").json().get("records.received", 0) == calls_before
    report = "\n".join(report_block(result.stdout + result.stderr))
    assert "DRY RUN" in report and "records would be written" in report
    want = expected(day, "2026-11-25", "2026-11-26")
    with psycopg.connect(day) as conn:
        dry = conn.execute(
            "SELECT sum(written), bool_and(dry_run) FROM thrive_sync.sync_runs WHERE window_start = '2026-11-25'"
        ).fetchone()
        runs = conn.execute("SELECT count(DISTINCT dag_run_id) FROM thrive_sync.tracking_log").fetchone()[0]
    assert dry == (sum(1 for w in want if w[3] == "written"), True)
    assert runs == 3  # each run keeps its own log rows


def test_categories_param_limits_the_run(day, sf):
    result = dags_test("2026-11-27", conf={"categories": ["surveys_events"]})
    keys = salesforce_keys(sf)
    assert keys and all(":surveys_events:" in k for k in keys)
    assert "surveys_events" in "\n".join(report_block(result.stdout + result.stderr))


def test_a_failure_share_past_the_threshold_fails_the_run(day):
    result = dag_runs.dags_test({"failure_threshold": 0.01}, run_date="2026-11-27")
    output = result.stdout + result.stderr
    assert report_block(output), output[-3000:]  # the report is printed before the run fails
    assert "of the rows past the gates failed, more than the failure_threshold 1%" in output
    assert "ThresholdBreached" in output


def test_a_failed_sync_task_still_gets_its_report_and_the_run_fails(day, tmp_path):
    """The report runs after failed sync tasks: it prints what was saved, names them, and fails the run."""
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text((PROJECT_ROOT / "include/mapping/thrive_activity.yaml").read_text().replace(
        "object: Thrive_Activity__c", "object: Thrive_Activty__c"))  # fmt: skip
    result = dag_runs.dags_test(conf={"categories": ["social_crm", "surveys_events"]}, env={
        "THRIVE_SYNC_MAPPING": str(mapping)}, run_date="2026-11-27")  # fmt: skip
    output = result.stdout + result.stderr
    block = report_block(output)
    assert result.returncode != 0
    assert block, output[-3000:]
    assert block[-1] == (  # each failed instance named by its org
        "FAILED: validate_and_map_social_crm[salesforce_default], validate_and_map_surveys_events[salesforce_default] "
        "(their categories show what was saved before)"
    )
    assert "org salesforce_default: NOT DONE: social_crm, surveys_events" in block, block
    assert (
        "UpstreamFailed: validate_and_map_social_crm[salesforce_default], validate_and_map_surveys_events"
        "[salesforce_default] did not finish (org not done: salesforce_default)" in output
    )


def test_no_transaction_stays_open_while_the_writer_waits_on_salesforce(day, org, pg_server):
    """With every org answer 150 ms late, no session of the day's database idles inside a transaction.

    The old stream (one server-side cursor) kept its read transaction open for the whole write.
    """
    import threading

    database = psycopg.conninfo.conninfo_to_dict(day)["dbname"]
    seen: list[tuple] = []
    done = threading.Event()

    def watch() -> None:
        with pg_server.connect(autocommit=True) as conn:
            while not done.wait(0.05):
                seen.extend(conn.execute(
                    "SELECT application_name, now() - xact_start, left(query, 60) FROM pg_stat_activity"
                    " WHERE datname = %s AND state = 'idle in transaction' AND now() - xact_start > '1 s'",
                    [database],
                ).fetchall())  # fmt: skip

    org.admin("PUT", "faults", json={"latency_ms": 150})
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        dags_test("2026-11-27", conf={"categories": ["message_activity"]})
    finally:
        done.set()
        watcher.join()
    assert org.admin("GET", "stats").json().get("records.received", 0) > 0  # the writer did wait on the org
    assert not seen, seen[:3]


def test_a_retry_aborts_the_bulk_jobs_a_killed_try_left_in_the_org(day, org, sf):
    """A try killed outright cannot abort its Bulk jobs; the ledger lets the next try abort them first.

    The killed try's job (closed, still in the org's queue) would upsert the day's records with older
    values after the retry wrote them. The retry runs the operator as Airflow would, in the same run.
    """
    from thrive_sync.bulk_job import ingest_client
    from thrive_sync.core.catalog import Category
    from thrive_sync.core.parts import Part
    from thrive_sync.hooks.thrive_store import ThriveStoreHook
    from thrive_sync.operators import ValidateAndMapOperator

    run_id, start = "manual__killed_try", datetime(2026, 11, 26, tzinfo=UTC)
    thrive = ThriveStoreHook()
    window = {"run_id": run_id, "window_start": start, "window_end": start + timedelta(days=1)}
    thrive.fetch("sync/ensure_ledger_partitions.sql", {"first_day": date(2026, 11, 19), "last_day": date(2026, 11, 26)})
    dag_runs.stage("message_activity", run_id, start)
    with psycopg.connect(day) as conn:  # 50 events the day writes
        keys = [f"{a}:message_activity:{e}" for a, e in conn.execute(
            "SELECT account_id, event_id FROM thrive_sync.staged_events JOIN thrive_sample.expected_outcomes"
            " USING (account_id, category, event_id) WHERE dag_run_id = %s AND outcome = 'written'"
            " ORDER BY 1, 2 LIMIT 50", [run_id])]  # fmt: skip
    with thrive.category_session(run_id, Category.MESSAGE_ACTIVITY, Part("salesforce_default")) as store:
        org.admin("PUT", "faults", json={"queue_seconds": 300})  # the killed try's job waits in the queue
        client = ingest_client(sf, TA)
        stale = client.create_job("upsert", external_id_field=EXT)["id"]
        client.upload_job_data(stale, f"{EXT},Activity__c\n" + "".join(f"{k},Stale\n" for k in keys))
        client.close_job(stale)
        org.admin("PUT", "faults", json={"queue_seconds": 0.1})  # the sandbox's default again
        store.job_ledger("salesforce_default").record(stale)  # as the killed try did before its upload

    sync = ValidateAndMapOperator(task_id="validate_and_map_message_activity", category="message_activity",
                                  bulk_threshold=100, bulk_job_rows=500, poll_seconds=0.2)  # fmt: skip
    summary = sync.execute({"run_id": run_id, **{f"data_interval_{k}": v for k, v in zip(
        ("start", "end"), (window["window_start"], window["window_end"]), strict=True)}})  # fmt: skip

    job = client.get_job(stale, False)
    assert (job["state"], int(job["numberRecordsProcessed"])) == ("Aborted", 0), job
    with psycopg.connect(day) as conn:
        ledger = conn.execute(
            "SELECT job_id = %s, state, count(*) FROM thrive_sync.bulk_jobs WHERE dag_run_id = %s"
            " AND ended_at IS NOT NULL GROUP BY 1, 2 ORDER BY 1",
            [stale, run_id],
        ).fetchall()
        unfinished = conn.execute("SELECT count(*) FROM thrive_sync.bulk_jobs WHERE ended_at IS NULL").fetchone()[0]
    assert ledger[-1] == (True, "Aborted", 1) and ledger[0][:2] == (False, "JobComplete") and ledger[0][2] >= 2
    assert unfinished == 0
    written = sum(counts["written"] for counts in summary["accounts"].values())
    listed = ",".join(f"'{key}'" for key in keys)
    found = sf.query_all(f"SELECT {EXT}, Activity__c FROM {TA} WHERE {EXT} IN ({listed})")["records"]
    assert written > len(keys) and len(found) == len(keys) and all(r["Activity__c"] != "Stale" for r in found)


def sync_counts(db: str, run_date: str) -> dict[str, int]:
    """The totals of the newest run whose window starts the day before ``run_date``."""
    with psycopg.connect(db) as conn:
        row = conn.execute(
            "SELECT sum(extracted), sum(written), sum(failed), sum(skipped), sum(unchanged), sum(late),"
            " sum(retried), sum(healed) FROM thrive_sync.sync_runs WHERE dag_run_id = ("
            " SELECT dag_run_id FROM thrive_sync.sync_runs WHERE window_end = %s::timestamptz"
            " ORDER BY finished_at DESC LIMIT 1)",
            [run_date],
        ).fetchone()
    return dict(zip(("extracted", "written", "failed", "skipped", "unchanged", "late", "retried", "healed"), row,
                    strict=True))  # fmt: skip


def received(org) -> int:
    return org.admin("GET", "stats").json().get("records.received", 0)


def test_the_ledger_sends_a_rerun_nothing_and_carries_late_rows_and_healed_failures(day, sf, org):
    """The 26th, then the 26th again (nothing sent), then the 27th after a late row landed, a Contact
    was created for an unmatched member Id and a recipient's missing member Id was filled in."""
    first = sync_counts_after(day, "2026-11-27", {"lookback_days": 0})
    sent = received(org)
    again = sync_counts_after(day, "2026-11-27", {"lookback_days": 0})
    assert received(org) == sent  # the sandbox received no record
    assert again["unchanged"] == first["written"] and again["written"] == 0, again
    assert (again["extracted"], again["failed"], again["skipped"]) == (first["extracted"], first["failed"],
                                                                       first["skipped"])  # fmt: skip

    with psycopg.connect(day) as conn:
        late, healed_member, fixed_rows, permanent = change_the_source_after_the_day(conn, org)
    result = sync_counts_after(day, "2026-11-28", {"lookback_days": 1})
    keys = set(salesforce_keys(sf))
    assert late in keys and result["late"] == 1
    assert healed_member and healed_member <= keys  # a Contact made this morning: its rows went through
    assert fixed_rows and fixed_rows <= keys  # the member Id filled in: the changed rows were sent
    assert result["healed"] >= len(healed_member) + len(fixed_rows) and result["retried"] >= result["healed"]
    with psycopg.connect(day) as conn:
        logged = set(conn.execute(
            "SELECT account_id, category, event_id FROM thrive_sync.tracking_log WHERE dag_run_id = ("
            " SELECT dag_run_id FROM thrive_sync.sync_runs WHERE window_end = '2026-11-28' LIMIT 1)"
        ).fetchall())  # fmt: skip
        open_ = conn.execute(
            "SELECT count(*) FROM thrive_sync.event_ledger WHERE status = 'failed' AND event_id = ANY(%s)",
            [[int(k.rsplit(":", 1)[1]) for k in fixed_rows | healed_member]],
        ).fetchone()[0]
    assert not permanent & logged  # failures that cannot heal were not tried again
    assert open_ == 0  # the healed rows are written in the ledger


def sync_counts_after(db: str, run_date: str, conf: dict) -> dict[str, int]:
    dags_test(run_date, conf=conf)
    return sync_counts(db, run_date)


def change_the_source_after_the_day(conn, org) -> tuple[str, set[str], set[str], set[tuple]]:
    """A late row, a Contact for one unmatched member Id, one recipient's missing member Id filled in;
    the keys of the rows that should now be written, and the failures that cannot heal."""
    acct, recipient, contact = conn.execute(
        "SELECT r.account_id, r.recipient_id, r.custom_member_id FROM thrive.recipients r"
        " JOIN thrive_sample.crm_records c ON c.sf_id = r.custom_member_id WHERE r.account_id = 'acct-001'"
        " AND r.custom_member_id LIKE '003%' ORDER BY 2 LIMIT 1"
    ).fetchone()
    conn.execute(
        "INSERT INTO thrive.message_activity VALUES"
        " (%s, 900000010, %s, 'Opened', 'Opened', '2026-11-26T18:00Z', 1, NULL)",
        [acct, recipient],
    )
    rows = conn.execute(
        "SELECT r.custom_member_id, x.account_id, x.category, x.event_id FROM thrive_sample.expected_outcomes x"
        " JOIN thrive.message_activity e USING (account_id, event_id)"
        " JOIN thrive.recipients r USING (account_id, recipient_id)"
        " WHERE x.category = 'message_activity' AND x.reason = 'UNMATCHED_MEMBER_ID'"
        " AND e.occurred_at >= '2026-11-26' AND r.custom_member_id LIKE '003%' ORDER BY 1"
    ).fetchall()
    member = rows[0][0]
    org.admin("PUT", "seed/Contact", json=[{"Id": member, "LastName": "Joined this morning"}])
    missing = conn.execute(
        "SELECT e.recipient_id, x.account_id, x.event_id FROM thrive_sample.expected_outcomes x"
        " JOIN thrive.message_activity e USING (account_id, event_id)"
        " WHERE x.category = 'message_activity' AND x.reason = 'MISSING_MEMBER_ID' AND e.occurred_at >= '2026-11-26'"
        " ORDER BY 1"
    ).fetchall()
    fixed_recipient, fixed_account = missing[0][0], missing[0][1]
    conn.execute(
        "UPDATE thrive.recipients SET custom_member_id = %s WHERE account_id = %s AND recipient_id = %s",
        [contact, fixed_account, fixed_recipient],
    )
    permanent = set(conn.execute(
        "SELECT x.account_id, x.category, x.event_id FROM thrive_sample.expected_outcomes x"
        " JOIN thrive.message_activity e USING"
        " (account_id, event_id) WHERE x.reason IN ('UNKNOWN_ACTIVITY', 'MALFORMED_MEMBER_ID')"
        " AND x.category = 'message_activity' AND e.occurred_at >= '2026-11-26' AND e.recipient_id <> %s",
        [fixed_recipient]).fetchall())  # fmt: skip
    healed = {f"{a}:{c}:{e}" for m, a, c, e in rows if m == member}
    fixed = {f"{a}:message_activity:{e}" for r, a, e in missing if r == fixed_recipient and a == fixed_account}
    return f"{acct}:message_activity:900000010", healed, fixed, permanent
