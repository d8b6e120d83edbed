"""People who changed in the CRM, through the real DAG against the sandbox: the rows of a converted
Lead's member Id are written to its Contact, those of a merged-away Contact to the survivor, counted
by kind in the report and never logged; a Contact deleted without a survivor is UNMATCHED, saying so."""

from __future__ import annotations

import psycopg
from test_allowance import run

import dag_runs

WRITTEN_MEMBERS = """
    SELECT r.custom_member_id, count(*) FROM thrive_sample.expected_outcomes x
    JOIN thrive.message_activity e USING (account_id, event_id)
    JOIN thrive.recipients r USING (account_id, recipient_id)
    WHERE x.category = 'message_activity' AND x.outcome = 'written' AND left(r.custom_member_id, 3) = %s
    GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT %s
"""


def members(db: str, prefix: str, n: int) -> list[tuple[str, int]]:
    """The ``n`` member Ids of ``prefix`` with the most written message rows, and their row counts."""
    with psycopg.connect(db) as conn:
        return conn.execute(WRITTEN_MEMBERS, [prefix, n]).fetchall()


def test_converted_and_merged_people_are_written_to_the_record_they_became(wired, org, sf):
    [(lead, lead_rows)] = members(wired, "00Q", 1)
    (survivor, _), (merged, merged_rows), (deleted, deleted_rows) = members(wired, "003", 3)
    contact = org.admin("POST", "convert-lead", json={"leadId": lead}).json()["contactId"]
    org.admin("POST", "merge", json={"sobject": "Contact", "masterId": survivor, "mergedIds": [merged]})
    sf.Contact.delete(deleted)  # gone without a survivor

    output = run(dag_runs.RUN_DATE)
    run_id = dag_runs.latest_run_id(wired)

    def lookups(member: str) -> set[tuple]:
        rows = sf.query_all(
            "SELECT Contact__c, Lead__c FROM Thrive_Activity__c WHERE Category__c = 'message_activity' AND "
            f"Thrive_Event_Id__c IN ({keys(member)})"
        )["records"]
        return {(r["Contact__c"], r["Lead__c"]) for r in rows}

    def keys(member: str) -> str:
        with psycopg.connect(wired) as conn:
            events = conn.execute(
                "SELECT e.account_id || ':message_activity:' || e.event_id FROM thrive.message_activity e"
                " JOIN thrive.recipients r USING (account_id, recipient_id) WHERE r.custom_member_id = %s",
                [member],
            ).fetchall()
        return ", ".join(f"'{k}'" for (k,) in events)

    assert lookups(lead) == {(contact, None)}  # not the Lead: the org refuses a converted one
    assert lookups(merged) == {(survivor, None)}
    assert lookups(deleted) == set()
    with psycopg.connect(wired) as conn:
        converted, merged_count = conn.execute(
            "SELECT sum(converted), sum(merged) FROM thrive_sync.sync_runs WHERE dag_run_id = %s"
            " AND category = 'message_activity'",
            [run_id],
        ).fetchone()
        logged = dict(conn.execute(
            "SELECT custom_member_id, reason_code || ': ' || reason_detail FROM thrive_sync.tracking_log"
            " WHERE dag_run_id = %s AND custom_member_id = ANY(%s) AND category = 'message_activity'"
            " AND reason_code = 'UNMATCHED_MEMBER_ID'",
            [run_id, [lead, merged, deleted]],
        ).fetchall())  # fmt: skip
    assert (converted, merged_count) == (lead_rows, merged_rows)
    gone = f"UNMATCHED_MEMBER_ID: Contact {deleted} was deleted in the integration, with no survivor"
    assert logged == {deleted: gone}
    assert f"redirected: {lead_rows:,} to the Contact a converted Lead became, {merged_rows:,} to a merge's" in output
    assert deleted_rows > 0
