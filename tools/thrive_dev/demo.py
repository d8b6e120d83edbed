"""``make demo``: sample data for one day, the DAG run for that day, the run report.

It runs the DAG the way a user would from a shell, ``airflow dags test``, so the demo exercises
the same path as the README. ``airflow dags test DAG D`` processes the last complete day before
*D* (the DAG has a data-interval timetable), so to process day *DATE* the demo passes *DATE + 1*.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from thrive_dev import sample_data, services

DAG_ID = "thrive_tracking_sync"
REPORT_HEADER = "Thrive tracking sync "


def report_block(output: str) -> list[str]:
    """The run report the ``report`` task printed, cut out of ``airflow dags test`` output."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(REPORT_HEADER)), None)
    if start is None:
        return []
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.strip() or line[:4].isdigit():  # a blank line or the next timestamped log line
            break
        block.append(line)
    return block


def run(day: date, events: int) -> list[str]:
    env = services.load_env()
    started = time.perf_counter()
    config = sample_data.SampleConfig(start=day, events=events)
    stats = sample_data.load(env["THRIVE_DB_URI"], config)
    services.reseed_sandbox(env["THRIVE_DB_URI"])
    loaded = time.perf_counter() - started
    total = sum(
        n for table, n in stats.rows.items() if table.removeprefix("thrive.") in sample_data.SOURCE_TABLE.values()
    )
    print(f"sample data: {total:,} events on {day} loaded in {loaded:.1f} s", flush=True)

    log = services.LOCAL_DIR / "logs" / f"demo-{day}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    run_date = (day + timedelta(days=1)).isoformat()
    airflow = str(Path(sys.executable).parent / "airflow")
    print(
        f"running: airflow dags test {DAG_ID} {run_date} -c '{{\"delay_minutes\": 0}}'  (processes {day}; "
        f"full log: {log})",
        flush=True,
    )
    started = time.perf_counter()
    with log.open("w") as out:
        result = subprocess.run(
            [airflow, "dags", "test", DAG_ID, run_date], env=env, stdout=out, stderr=subprocess.STDOUT, text=True
        )
    seconds = time.perf_counter() - started
    output = log.read_text(errors="replace")
    if result.returncode:
        tail = output.strip().splitlines()[-25:]
        raise services.ServiceError(
            "the DAG run failed after {:.0f} s; last lines of {}:\n{}".format(seconds, log, "\n".join(tail))
        )
    block = report_block(output)
    if not block:
        raise services.ServiceError(f"the DAG run succeeded but printed no report; see {log}")
    return [*block, f"DAG run succeeded in {seconds:.1f} s"]
