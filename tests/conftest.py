"""Session reporting for the whole suite: the measurements section and the reliability results.

Here, not in ``tests/system/conftest.py``: under pytest-xdist (``make test`` runs TEST_WORKERS) the
controller runs no test and loads only this conftest, so the hooks that gather what the workers
measured and print it must live here. A worker sends its figures when its session ends; the
controller merges them, saves ``test-output/reliability.json`` and prints the section.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import reliability_report
from measured import MEASUREMENTS

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Save what the reliability tests measured, and how each ended, to test-output/ (git-ignored).

    Never docs/reliability.md: a test run leaves the tree as it was; `make reliability` renders it.
    """
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller saves and prints
        session.config.workeroutput.update(
            thrive_measurements=json.dumps(MEASUREMENTS),
            thrive_reliability=reliability_report.collected({}).to_json(),
        )
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    reports = [r for group in getattr(reporter, "stats", {}).values() for r in group]
    results = reliability_report.collected(reliability_report.outcomes_from_reports(reports))
    if results.ran_any():
        path = reliability_report.save(results)
        summary = reliability_report.summary(results)
        MEASUREMENTS["reliability results"] = f"{path.relative_to(PROJECT_ROOT)} ({summary})"


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: absent when it is not installed
def pytest_testnodedown(node, error) -> None:
    """A worker's measurements and reliability results reach the controller."""
    output = getattr(node, "workeroutput", {})
    MEASUREMENTS.update(json.loads(output.get("thrive_measurements", "{}")))
    if "thrive_reliability" in output:
        reliability_report.merge(reliability_report.Results.from_json(output["thrive_reliability"]))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if MEASUREMENTS:
        terminalreporter.section("measurements")
        for name, value in MEASUREMENTS.items():
            terminalreporter.write_line(f"{name}: {value}")
