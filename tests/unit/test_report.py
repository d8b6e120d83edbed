"""Report arithmetic: totals, the failure share past the gates, the threshold, failed tasks."""

from __future__ import annotations

from thrive_sync.core.report import build_report, format_report, threshold_breach

WINDOW = ("2026-11-26 00:00:00+00:00", "2026-11-27 00:00:00+00:00")
ROWS = [  # category, account, extracted, written, failed, skipped, unchanged, late, retried, standing, healed,
    # deferred, left_out, converted, merged, gate, truncated
    ("message_activity", "a1", 110, 80, 15, 5, 10, 3, 4, 6, 2, 0, 5, 3, 1, None, 2),
    ("message_activity", "a2", 20, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, "tracking_disabled", 0),
    ("social_crm", "a1", 10, 5, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, None, 0),
]
FAILURES = [("message_activity", "UNMATCHED_MEMBER_ID", 10), ("message_activity", "REJECTED", 5),
            ("social_crm", "MISSING_SOCIAL_HANDLE", 5)]  # fmt: skip
CATEGORIES = ["message_activity", "recipient_details", "social_crm"]


def test_totals_and_the_failure_share_of_rows_past_the_gates():
    report = build_report("run-1", WINDOW, ROWS, FAILURES, CATEGORIES, dry_run=False)
    assert report["totals"] == {"extracted": 140, "written": 85, "failed": 20, "skipped": 25, "unchanged": 10,
                                "late": 3, "retried": 4, "standing": 6, "healed": 2, "deferred": 0,
                                "left_out": 5, "converted": 3, "merged": 1, "new": 117}  # fmt: skip
    assert report["failure_share"] == round(20 / 115, 4)  # skipped rows are not considered; unchanged ones are
    assert report["categories"]["message_activity"]["totals"]["written"] == 80
    assert report["categories"]["message_activity"]["truncated"] == 2
    assert report["categories"]["recipient_details"]["totals"]["extracted"] == 0  # selected, nothing staged
    assert report["categories"]["social_crm"]["failed_by"] == {"MISSING_SOCIAL_HANDLE": 5}


def test_nothing_considered_is_no_failure():
    report = build_report("run-1", WINDOW, [ROWS[1]], [], CATEGORIES, dry_run=True)
    assert report["failure_share"] == 0.0 and threshold_breach(report, 0.0) is None


def test_the_threshold_is_passed_only_above_it():
    report = build_report("run-1", WINDOW, ROWS, FAILURES, CATEGORIES, dry_run=False)
    assert threshold_breach(report, 0.18) is None
    assert threshold_breach(report, 0.17) == (
        "17.4% of the rows past the gates failed, more than the failure_threshold 17%: see thrive_sync.tracking_log"
    )


def test_the_text_report_names_failed_tasks_and_dry_runs():
    text = format_report(build_report("run-1", WINDOW, ROWS, FAILURES, CATEGORIES, True, ["validate_and_map_x"]))
    lines = text.splitlines()
    assert lines[1].endswith("(DRY RUN: nothing written)")
    assert "failed: REJECTED 5, UNMATCHED_MEMBER_ID 10" in text
    assert "truncated by the mapping: 2 values" in text
    assert "skipped: 5 of pairs the mapping leaves out (left_out_by_mapping)" in text
    assert "redirected: 3 to the Contact a converted Lead became, 1 to a merge's surviving record" in text
    assert "late 3, retried 4 (healed 2), standing 6" in text
    assert lines[-3].strip() == (
        "new 117, late 3, retried 4 (healed 2), standing 6 (failed before, not sent again), unchanged 10"
    )
    assert lines[-2] == "85 records would be written; failure share 17.4% of rows past the gates"
    assert lines[-1].startswith("FAILED: validate_and_map_x")


def test_the_open_backlog_is_shown_per_category():
    backlog = [("message_activity", "UNMATCHED_MEMBER_ID", 7), ("surveys_events", "RETRIES_EXHAUSTED", 1)]
    report = build_report("run-1", WINDOW, ROWS, FAILURES, CATEGORIES, False, backlog=backlog)
    assert report["categories"]["message_activity"]["backlog"] == {"UNMATCHED_MEMBER_ID": 7}
    assert "open in the ledger (last retry_days): UNMATCHED_MEMBER_ID 7" in format_report(report)
    assert "surveys_events" not in report["categories"]  # a category the run left out stays out


def test_deferred_rows_are_counted_apart_and_are_no_failures():
    rows = [("message_activity", "a1", 100, 60, 30, 0, 10, 0, 0, 0, 0, 25, 0, 0, 0, None, 0)]
    failures = [("message_activity", "DEFERRED_QUOTA", 25), ("message_activity", "UNMATCHED_MEMBER_ID", 5)]
    orgs = [("salesforce_default", 15_000, 1_234, 2_766, 15_000, 12, 14_988, 25, None, 10_240, 1_500, 60, 2.0, 0.8),
            ("org_b", None, None, None, None, None, None, 0, "the org's /limits has no readable DailyApiRequests",
             None, None, 0, 2.0, 0.8)]  # fmt: skip
    report = build_report("run-1", WINDOW, rows, failures, CATEGORIES, False, orgs=orgs)
    assert report["totals"]["deferred"] == 25 and report["totals"]["failed"] == 30
    assert report["failure_share"] == round(5 / 100, 4)  # deferred: past the gates, not failed
    assert threshold_breach(report, 0.06) is None
    text = format_report(report)
    assert "deferred 25 (the org's daily allowance: not sent, carried forward)" in text
    assert ("org salesforce_default: API requests 1,234 spent, 2,766 of 15,000 left; "
            "Bulk batches 12 spent, 14,988 of 15,000 left") in text  # fmt: skip
    assert ("org org_b: API requests not known; Bulk batches not known "
            "(the org's /limits has no readable DailyApiRequests)") in text  # fmt: skip
    assert ("org salesforce_default storage: about 0.1 MB added (60 records x 2 KB), 1,500 of 10,240 MB left; "
            "WARNING: 85% used, past 80%") in text  # fmt: skip
    assert "org org_b storage" not in text
