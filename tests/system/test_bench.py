"""The bench's own reading of its inputs: the profile summary and the printed table."""

from __future__ import annotations

from thrive_dev.bench import Measure, table, top_frames

RAW = "\n".join(
    [
        "MainThread;run (a.py:1);ValidateAndMapOperator.execute (thrive_sync/operators.py:9);f (m.py:3) 60",
        "MainThread;run (a.py:1);ValidateAndMapOperator.execute (thrive_sync/operators.py:9);f (m.py:4) 20",
        "MainThread;run (a.py:1);ValidateAndMapOperator.execute (thrive_sync/operators.py:9);g (m.py:7) 10",
        "Loop;ValidateAndMapOperator.execute (thrive_sync/operators.py:9);EpollSelector.select (selectors.py:468) 10",
        "MainThread;run (a.py:1);parse_dags (airflow/x.py:2) 500",
    ]
)


def test_profile_summary_counts_own_time_per_function_inside_the_operator(tmp_path):
    raw = tmp_path / "profile.txt"
    raw.write_text(RAW + "\n")
    # 100 samples inside the operator; Airflow's own 500 are not ours; the idle selector is no hot spot.
    assert top_frames(raw) == ["80.0% f (m.py)", "10.0% g (m.py)"]


def test_table_shows_ratios_and_why_a_contender_failed():
    a = Measure(seconds=6.0, written=190_000, api_calls=95, peak_rss_mb=280.0, extra={"records_sent": 190_000})
    rerun = Measure(seconds=0.6, written=0, api_calls=12, peak_rss_mb=250.0, extra={"records_sent": 0})
    c = Measure(error="the metadata database refused the upstream task's XCom", peak_rss_mb=4979.8)
    report = {
        "rows": 200_000,
        "recipients": 4_000,
        "day": "2026-11-26",
        "ratios": {"a_over_b": 0.9, "c_over_a": None, "rerun_over_a": 0.1},
        "dag_parse_seconds": 0.07,
        "machine": {"cores": 2, "memory_gib": 23.5, "python": "3.11.7", "postgresql": "16.2"},
        "runs": {
            "a": a.as_json(),
            "a_rerun": rerun.as_json(),
            "b": Measure(seconds=6.6, written=197_000).as_json(),
            "c": c.as_json(),
        },  # fmt: skip
    }
    lines = table(report)
    row_a = next(line for line in lines if line.startswith("a ours"))
    # seconds, written, sent, API calls, calls/10k, RSS
    assert row_a.split()[-6:] == ["6.00", "190,000", "190,000", "95", "5.00", "280.0"]
    row_rerun = next(line for line in lines if line.startswith("a rerun"))
    assert row_rerun.split()[-6:] == ["0.60", "0", "0", "12", "-", "250.0"]
    row_c = next(line for line in lines if line.startswith("c provider"))
    assert row_c.split()[-6:] == ["-", "-", "-", "-", "-", "4979.8"]
    assert "a/b = 0.90   c/a = -   rerun/a = 0.10   DAG file parse 0.070 s" in lines
    assert "c did not succeed: the metadata database refused the upstream task's XCom" in lines


def test_table_shows_what_grouping_by_parent_costs_and_saves():
    runs = {
        "a": Measure(seconds=6.0, written=190_000).as_json(),
        "a_rerun": Measure(seconds=0.6, written=0).as_json(),
        "a_ungrouped": Measure(seconds=5.5, written=190_000).as_json(),
        "a_contention": Measure(seconds=30.0, written=190_000, extra={"parent_lock_failures": 120}).as_json(),
        "a_contention_ungrouped": Measure(
            seconds=60.0, written=190_000, extra={"parent_lock_failures": 90_000}
        ).as_json(),
    }
    report = {
        "rows": 200_000,
        "recipients": 4_000,
        "day": "2026-11-26",
        "ratios": {
            "a_over_b": None,
            "c_over_a": None,
            "a_over_ungrouped": 1.09,
            "grouped_over_ungrouped_contention": 0.5,
        },
        "dag_parse_seconds": 0.07,
        "machine": {"cores": 2, "memory_gib": 23.5, "python": "3.11.7", "postgresql": "16.2"},
        "runs": runs,
    }
    lines = table(report)
    assert next(line for line in lines if line.startswith("a, lock contention")).split()[3] == "30.00"
    grouping = next(line for line in lines if line.startswith("grouping by parent"))
    assert grouping.startswith("grouping by parent: a / a not grouped = 1.09; under contention")
    assert grouping.endswith("= 0.50, rows that met a held parent 120 grouped, 90,000 not grouped")


def test_table_shows_the_fan_out_over_orgs_alone():
    """``make bench`` with only o: no a to profile, no recipients; the speedup and where the CPU went."""
    cpu = {"machine_busy": 259.5, "of_cores_x_wall": 261.1, "sandboxes": 38.4, "postgresql": 123.2}
    report = {
        "rows": 1_000_000,
        "recipients": None,
        "day": "2026-11-26",
        "ratios": {"a_over_b": None, "c_over_a": None, "one_org_over_four": 0.92},
        "dag_parse_seconds": 0.43,
        "machine": {"cores": 2, "memory_gib": 23.5, "python": "3.11.7", "postgresql": "16.2"},
        "runs": {
            "o1": Measure(seconds=119.68, written=949_961, extra={"sync_instances": 12}).as_json(),
            "o4": Measure(
                seconds=130.57, written=949_961, extra={"sync_instances": 26, "sync_instances_at_once": 4, "cpu": cpu}
            ).as_json(),
        },
    }
    lines = table(report)
    assert lines[0] == "bench: 1,000,000 events, - recipients, day 2026-11-26"
    assert next(line for line in lines if line.startswith("o 4 orgs")).split()[-6:-4] == ["130.57", "949,961"]
    assert (
        "fan-out: one org / 4 orgs = 0.92 (12 and 26 sync instances, at most 4 at once); 4 orgs: CPU busy "
        "260 of 261 core-seconds, sandboxes 38, PostgreSQL 123" in lines
    )
