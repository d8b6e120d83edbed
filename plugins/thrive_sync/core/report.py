"""The run report: per category and account, extracted / written / failed / skipped / unchanged, and why.

Built from ``thrive_sync.sync_runs`` and ``thrive_sync.tracking_log`` (what the validate-and-map
tasks saved), so it is the same whether read in the task log, in XCom or with SQL afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from thrive_sync.core.tally import COUNTS

# What the report adds up per category: the counts, and the ledger's shares of extracted.
TOTALS = (*COUNTS, "late", "retried", "standing", "healed", "deferred", "left_out", "converted", "merged")
ORG_FIGURES = ("api_max", "api_spent", "api_left", "batches_max", "batches_spent", "batches_left", "deferred", "notes",
               "storage_max", "storage_left", "written", "record_kb", "storage_warn_share")  # fmt: skip


def _empty_entry() -> dict[str, Any]:
    return {"accounts": {}, "totals": dict.fromkeys(TOTALS, 0), "failed_by": {}, "backlog": {}, "truncated": 0}


def build_report(
    run_id: str,
    window: tuple[str, str],
    rows: Iterable[Sequence[Any]],
    failures: Iterable[Sequence[Any]],
    categories: Sequence[str],
    dry_run: bool,
    failed_tasks: Sequence[str] = (),
    backlog: Iterable[Sequence[Any]] = (),
    orgs: Iterable[Sequence[Any]] = (),
    parts: Iterable[Sequence[Any]] = (),
) -> dict[str, Any]:
    """A JSON-ready report from ``sync/run_report.sql``, ``sync/failures_by_reason.sql`` and
    ``sync/ledger_backlog.sql`` rows; ``orgs``: ``sync/org_usage_report.sql`` rows; ``parts``:
    ``sync/part_states.sql`` rows (each org's state: which categories saved all their parts).

    ``failed_tasks``: the run's tasks that failed for good; their categories count what they saved.
    ``new`` is what the day brought: extracted less the late, retried, standing and unchanged rows.
    """
    report: dict[str, Any] = {"dag_run_id": run_id, "window": list(window), "dry_run": dry_run}
    report["categories"] = {category: _empty_entry() for category in categories}
    for category, account_id, *values in rows:
        entry = report["categories"].setdefault(category, _empty_entry())
        counts = dict(zip(TOTALS, values[: len(TOTALS)], strict=True))
        skip_gate, truncated = values[len(TOTALS) : len(TOTALS) + 2]
        entry["accounts"][account_id] = {**counts, "skip_gate": skip_gate}
        for name, value in counts.items():
            entry["totals"][name] += value
        entry["truncated"] += truncated or 0
    for category, reason, n in failures:
        report["categories"].setdefault(category, _empty_entry())["failed_by"][reason] = n
    for category, reason, n in backlog:
        if category in report["categories"]:
            report["categories"][category]["backlog"][reason] = n
    totals = dict.fromkeys(TOTALS, 0)
    for entry in report["categories"].values():
        entry["totals"]["new"] = _new(entry["totals"])
        for name in TOTALS:
            totals[name] += entry["totals"][name]
    report["totals"] = {**totals, "new": _new(totals)}
    # Unchanged rows count: they are the day's rows written before. Without them, a rerun (whose only
    # rows acted on are the failures tried again) would fail on its share every time. Deferred rows
    # (the org's allowance) are past the gates but not failures: left out of the denominator, a run
    # whose valid records were all deferred mid-write would show its validation failures as 100%.
    past_gates = totals["extracted"] - totals["skipped"]
    report["failure_share"] = round((totals["failed"] - totals["deferred"]) / past_gates, 4) if past_gates else 0.0
    report["orgs"] = {conn_id: dict(zip(ORG_FIGURES, figures, strict=True)) for conn_id, *figures in orgs}
    report["org_states"] = org_states(parts)
    report["failed_tasks"] = sorted(failed_tasks)
    return report


def org_states(parts: Iterable[Sequence[Any]]) -> dict[str, dict[str, Any]]:
    """Per org: ``done`` when every part of every category saved, else the categories not done
    (``"message_activity 1/3"``: one of its three shards saved)."""
    states: dict[str, dict[str, Any]] = {}
    for conn_id, category, total, saved in parts:
        state = states.setdefault(conn_id, {"done": True, "not_done": []})
        if saved < total:
            state["done"] = False
            state["not_done"].append(category if total == 1 else f"{category} {saved}/{total}")
    return states


def _new(totals: dict[str, int]) -> int:
    return totals["extracted"] - totals["late"] - totals["retried"] - totals["standing"] - totals["unchanged"]


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
        f"{'category':<22}{'account':<12}{'extracted':>10}{'written':>10}{'failed':>9}{'skipped':>9}"
        f"{'unchanged':>11}  gate",
    ]
    for category, entry in report["categories"].items():
        for account_id, c in entry["accounts"].items():
            lines.append(f"{category:<22}{account_id:<12}{_row(c)}  {c['skip_gate'] or ''}")
        lines.append(f"{category:<22}{'(all)':<12}{_row(entry['totals'])}")
        lines += _category_notes(entry)
    t = report["totals"]
    lines.append(f"{'TOTAL':<34}{_row(t)}")
    lines.append(
        f"{'':<22}new {t['new']:,}, late {t['late']:,}, retried {t['retried']:,} (healed {t['healed']:,}), "
        f"standing {t['standing']:,} (failed before, not sent again), unchanged {t['unchanged']:,}"
    )
    if t["deferred"]:
        lines.append(f"{'':<22}deferred {t['deferred']:,} (the org's daily allowance: not sent, carried forward)")
    for conn_id, state in report.get("org_states", {}).items():
        lines.append(f"org {conn_id}: " + ("done" if state["done"] else f"NOT DONE: {', '.join(state['not_done'])}"))
    for conn_id, figures in report.get("orgs", {}).items():
        lines += [_org_line(conn_id, figures), *_storage_line(conn_id, figures)]
    lines.append(f"{t['written']:,} records {verb}; failure share {report['failure_share']:.1%} of rows past the gates")
    if report.get("failed_tasks"):
        lines.append(f"FAILED: {', '.join(report['failed_tasks'])} (their categories show what was saved before)")
    return "\n".join(lines)


def _org_line(conn_id: str, f: dict[str, Any]) -> str:
    """One org's allowances: spent by the run's tasks (at most) and left after them."""

    def used(kind: str, name: str) -> str:
        if f[f"{kind}_left"] is None:
            return f"{name} not known"
        return f"{name} {f[f'{kind}_spent'] or 0:,} spent, {f[f'{kind}_left']:,} of {f[f'{kind}_max']:,} left"

    notes = f" ({f['notes']})" if f["notes"] else ""
    return f"org {conn_id}: {used('api', 'API requests')}; {used('batches', 'Bulk batches')}{notes}"


def _storage_line(conn_id: str, f: dict[str, Any]) -> list[str]:
    """The org's data storage: what the run's records add (records x the size an org counts them at),
    what is left, and a warning once it is fuller than the connection's share."""
    if f["storage_left"] is None or not f["storage_max"]:
        return []
    added = (f["written"] or 0) * (f["record_kb"] or 0) / 1024
    used = 1 - f["storage_left"] / f["storage_max"]
    line = (
        f"org {conn_id} storage: about {added:,.1f} MB added ({f['written'] or 0:,} records x {f['record_kb']:g} KB), "
        f"{f['storage_left']:,} of {f['storage_max']:,} MB left"
    )
    if f["storage_warn_share"] is not None and used >= f["storage_warn_share"]:
        line += f"; WARNING: {used:.0%} used, past {f['storage_warn_share']:.0%}"
    return [line]


def _row(c: dict[str, Any]) -> str:
    return f"{c['extracted']:>10,}{c['written']:>10,}{c['failed']:>9,}{c['skipped']:>9,}{c.get('unchanged', 0):>11,}"


def _category_notes(entry: dict[str, Any]) -> list[str]:
    """The lines under a category's totals: late, retried and standing rows, failures by reason, the open backlog."""
    notes, t = [], entry["totals"]
    if t["late"] or t["retried"] or t["standing"]:
        notes.append(
            f"{'':<22}late {t['late']:,}, retried {t['retried']:,} (healed {t['healed']:,}), standing {t['standing']:,}"
        )
    if entry["failed_by"]:
        notes.append(f"{'':<22}failed: {', '.join(f'{r} {n:,}' for r, n in sorted(entry['failed_by'].items()))}")
    if entry["backlog"]:
        backlog = ", ".join(f"{r} {n:,}" for r, n in sorted(entry["backlog"].items()))
        notes.append(f"{'':<22}open in the ledger (last retry_days): {backlog}")
    if t["converted"] or t["merged"]:
        notes.append(
            f"{'':<22}redirected: {t['converted']:,} to the Contact a converted Lead became, "
            f"{t['merged']:,} to a merge's surviving record"
        )
    if t["left_out"]:
        notes.append(f"{'':<22}skipped: {t['left_out']:,} of pairs the mapping leaves out (left_out_by_mapping)")
    if entry["truncated"]:
        notes.append(f"{'':<22}truncated by the mapping: {entry['truncated']:,} values")
    return notes
