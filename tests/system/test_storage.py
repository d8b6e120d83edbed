"""The org's storage: pairs the mapping leaves out are skipped, never written or failed; the report
forecasts what a run's records add to the org's data storage and warns when it is nearly full."""

from __future__ import annotations

import psycopg
from test_allowance import _limits, run, run_totals

import dag_runs
from conftest import PROJECT_ROOT

DELIVERED = ("Sent", "Delivered")


def test_a_pair_the_mapping_leaves_out_is_skipped_everywhere(wired, sf, tmp_path, monkeypatch):
    mapping = (PROJECT_ROOT / "include" / "mapping" / "thrive_activity.yaml").read_text()
    path = tmp_path / "mapping.yaml"
    path.write_text(mapping + "leave_out: [[Sent, Delivered]]\n")
    monkeypatch.setenv("THRIVE_SYNC_MAPPING", str(path))
    output = run(dag_runs.RUN_DATE)
    run_id = dag_runs.latest_run_id(wired)
    with psycopg.connect(wired) as conn:
        delivered = conn.execute(
            "SELECT count(*) FROM thrive.message_activity e JOIN thrive.accounts a USING (account_id)"
            " WHERE e.activity_code = 'Sent' AND e.activity_subcode = 'Delivered' AND a.tracking_enabled",
        ).fetchone()[0]
        left_out = conn.execute(
            "SELECT sum(left_out) FROM thrive_sync.sync_runs WHERE dag_run_id = %s", [run_id]
        ).fetchone()[0]
        logged = conn.execute(
            "SELECT count(*) FROM thrive_sync.tracking_log WHERE dag_run_id = %s AND activity_code = 'Sent'"
            " AND activity_subcode = 'Delivered'",
            [run_id],
        ).fetchone()[0]
        ledger = conn.execute(
            "SELECT status, reason_code, count(*) FROM thrive_sync.event_ledger l JOIN thrive.message_activity e"
            " USING (account_id, event_id) JOIN thrive.accounts a USING (account_id) WHERE l.category ="
            " 'message_activity' AND e.activity_code = 'Sent' AND e.activity_subcode = 'Delivered'"
            " AND a.tracking_enabled GROUP BY 1, 2"
        ).fetchall()
    records = sf.query_all("SELECT Id FROM Thrive_Activity__c WHERE Activity_Group__c = 'Sent' AND"
                           " Activity__c = 'Delivered'")["records"]  # fmt: skip
    assert delivered > 0 and left_out == delivered and logged == 0 and records == []
    assert ledger == [("skipped", "left_out_by_mapping", delivered)]
    assert f"skipped: {delivered:,} of pairs the mapping leaves out (left_out_by_mapping)" in output


def test_the_report_forecasts_the_storage_the_run_added_and_warns_when_the_org_is_nearly_full(wired, org):
    org.admin("PUT", "limits", json={"DataStorageMB": {"Max": 8}})  # the day's records take 7 to 8 MB of it
    output = run(dag_runs.RUN_DATE)
    written = run_totals(wired, dag_runs.latest_run_id(wired))["written"]
    left = _limits(org)["DataStorageMB"]["Remaining"]
    line = next(x for x in output.splitlines() if x.startswith("org salesforce_default storage:"))
    assert line.startswith(f"org salesforce_default storage: about {written * 2 / 1024:,.1f} MB added "
                           f"({written:,} records x 2 KB), {left:,} of 8 MB left; WARNING: ")  # fmt: skip
    assert line.endswith("used, past 80%")
