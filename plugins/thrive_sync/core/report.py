"""The run report: per category and account, extracted / written / failed / skipped, and why.

Built from ``thrive_sync.sync_runs`` and ``thrive_sync.tracking_log`` (what the validate-and-map
tasks saved), so it is the same whether read in the task log, in XCom or with SQL afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from thrive_sync.core.tally import COUNTS


def _empty_entry() -> dict[str, Any]:
    return {"accounts": {}, "totals": dict.fromkeys(COUNTS, 0), "failed_by": {}, "truncated": 0}


def build_report(
    run_id: str,
    window: tuple[str, str],
    rows: Iterable[Sequence[Any]],
    failures: Iterable[Sequence[Any]],
    categories: Sequence[str],
    dry_run: bool,
    failed_tasks: Sequence[str] = (),
) -> dict[str, Any]:
    """A JSON-ready report from ``sync/run_report.sql`` and ``sync/failures_by_reason.sql`` rows.

    ``failed_tasks``: the run's tasks that failed for good; their categories count what they saved.
    """
    report: dict[str, Any] = {"dag_run_id": run_id, "window": list(window), "dry_run": dry_run}
    report["categories"] = {category: _empty_entry() for category in categories}
    for category, account_id, extracted, written, failed, skipped, skip_gate, truncated, *_ in rows:
        entry = report["categories"].setdefault(category, _empty_entry())
        counts = dict(zip(COUNTS, (extracted, written, failed, skipped), strict=True))
        entry["accounts"][account_id] = {**counts, "skip_gate": skip_gate}
        for name, value in counts.items():
            entry["totals"][name] += value
        entry["truncated"] += truncated or 0
    for category, reason, n in failures:
        report["categories"].setdefault(category, _empty_entry())["failed_by"][reason] = n
    totals = dict.fromkeys(COUNTS, 0)
    for entry in report["categories"].values():
        for name in COUNTS:
            totals[name] += entry["totals"][name]
    report["totals"] = totals
    considered = totals["extracted"] - totals["skipped"]
    report["failure_share"] = round(totals["failed"] / considered, 4) if considered else 0.0
    report["failed_tasks"] = sorted(failed_tasks)
    return report


def threshold_breach(report: dict[str, Any], failure_threshold: float) -> str | None:
    """Why the run fails on its failure share, or ``None`` when the share is within the threshold."""
    if report["failure_share"] <= failure_threshold:
        return None
    return (
        f"{report['failure_share']:.1%} of the rows past the gates failed, more than the "
        f"failure_threshold {failure_threshold:.0%}: see thrive_sync.tracking_log"
    )


def format_report(report: dict[str, Any]) -> str:
    """The report as a fixed-width table for the task log and ``make demo``."""
    start, end = report["window"]
    verb = "would be written" if report["dry_run"] else "written"
    lines = [
        f"Thrive tracking sync {report['dag_run_id']}",
        f"window {start} -> {end}{'  (DRY RUN: nothing written)' if report['dry_run'] else ''}",
        f"{'category':<22}{'account':<12}{'extracted':>10}{'written':>10}{'failed':>9}{'skipped':>9}  gate",
    ]
    for category, entry in report["categories"].items():
        for account_id, c in entry["accounts"].items():
            lines.append(
                f"{category:<22}{account_id:<12}{c['extracted']:>10,}{c['written']:>10,}{c['failed']:>9,}"
                f"{c['skipped']:>9,}  {c['skip_gate'] or ''}"
            )
        t = entry["totals"]
        lines.append(
            f"{category:<22}{'(all)':<12}{t['extracted']:>10,}{t['written']:>10,}{t['failed']:>9,}{t['skipped']:>9,}"
        )
        if entry["failed_by"]:
            reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(entry["failed_by"].items()))
            lines.append(f"{'':<22}failed: {reasons}")
        if entry["truncated"]:
            lines.append(f"{'':<22}truncated by the mapping: {entry['truncated']:,} values")
    t = report["totals"]
    lines.append(f"{'TOTAL':<34}{t['extracted']:>10,}{t['written']:>10,}{t['failed']:>9,}{t['skipped']:>9,}")
    lines.append(f"{t['written']:,} records {verb}; failure share {report['failure_share']:.1%} of rows past the gates")
    if report.get("failed_tasks"):
        lines.append(f"FAILED: {', '.join(report['failed_tasks'])} (their categories show what was saved before)")
    return "\n".join(lines)
