"""The report's health check: each org judged on the run's figures, its state kept, an alert on a change.

The rules are in :mod:`thrive_sync.core.health`; this module gathers each org's figures from
``thrive_db``, keeps its state in ``thrive_sync.org_health`` and sends the alerts through
:mod:`thrive_sync.alerts`. A change is measured against what the alerts last *said*: an alert that
could not be sent, or was not because alerts were off, is said by the next run that can (speaking
once must not become never speaking). A run of a day older than the one the org was last judged on
(a backfill, a rerun of last week) changes nothing and says nothing: it would report today's org
as recovered, or worse, from an old day's figures.

The alert goes while the org's row is locked (two reports at once would both send it): the
notifiers' own timeouts (30 s) bound how long that transaction stays open.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from thrive_sync import alerts
from thrive_sync.core.health import Health, HealthRules, Level, OrgDay, assess, org_of_task, transition

if TYPE_CHECKING:
    from thrive_sync.hooks.thrive_store import ThriveStoreHook


def judge_orgs(context: Any, store: ThriveStoreHook, failed_tasks: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each org's health for the run, saved, alerted on a change: ``{conn_id: {level, reasons, alert}}``.

    A dry run writes nothing to judge: it is left out, and every org keeps its state.
    """
    params = context["params"]
    if params["dry_run"]:
        return {}
    rules = alerts.health_rules(params["failure_threshold"])
    run = {"run_id": context["run_id"], "window_start": context["data_interval_start"]}
    outcome = {}
    for day in org_days(store, run["window_start"], run["run_id"], params["categories"], failed_tasks, rules):
        health = assess(day, rules)
        outcome[day.conn_id] = {"level": health.level.label, "reasons": list(health.reasons),
                                "alert": _record(context, store, day.conn_id, health, run)}  # fmt: skip
    return outcome


def org_days(
    store: ThriveStoreHook,
    window_start: Any,
    run_id: str,
    categories: Sequence[str],
    failed_tasks: Sequence[str],
    rules: HealthRules,
) -> list[OrgDay]:
    """The figures of every org an account names or the run wrote to. A category with no rows for an
    org that day counts 0 written (a broken export sends nothing at all); a failed task that no single
    org's part names (an extract, the account check) concerns every org."""
    past_gates: dict[str, int] = defaultdict(int)
    failed: dict[str, int] = defaultdict(int)
    written: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(categories, 0))
    for conn_id, category, gates, failures, day_written in store.org_figures(run_id, window_start, categories):
        past_gates[conn_id] += gates
        failed[conn_id] += failures
        written[conn_id][category] = day_written
    history: dict[str, dict[str, list[int]]] = defaultdict(dict)
    for conn_id, category, counts in store.org_history(window_start, categories, rules.volume_days):
        history[conn_id][category] = list(counts)
    orgs = sorted(set(store.salesforce_connections()) | set(written))
    return [
        OrgDay(
            conn_id,
            failed_tasks=[t for t in failed_tasks if org_of_task(t) in (None, conn_id)],
            past_gates=past_gates[conn_id],
            failed=failed[conn_id],
            written=written[conn_id],
            history=history[conn_id],
        )
        for conn_id in orgs
    ]


def _record(context: Any, store: ThriveStoreHook, conn_id: str, health: Health, run: dict[str, Any]) -> str | None:
    """Save the org's new state and send the alert its change calls for; the alert's kind, if one went."""
    with store.org_health(conn_id) as state:
        if state.window_start is not None and run["window_start"] < state.window_start:
            print(f"Health of org {conn_id}: judged on a later day ({state.window_start:%Y-%m-%d}) already: "
                  f"this run's day is {health.level.label}, the org's state stays {state.level}")  # fmt: skip
            return None
        said = Level[state.said.upper()] if state.said else None
        alert = transition(conn_id, said, health)
        outcome = None
        if alert is not None:
            message = f"{alert.message}\nDay {run['window_start']:%Y-%m-%d}, run {run['run_id']}."
            outcome = alerts.send(context, alert.subject, message)
            print(f"Health of org {conn_id}: {alert.previous.label} -> {alert.level.label}: alert {outcome}")
        state.save(health.level.label, health.reasons, run, health.level.label if outcome == alerts.SENT else None)
        return alert.kind if outcome == alerts.SENT else None
