"""The bodies of the DAG's tasks other than extract and validate-and-map (those are operators).

The DAG file wires these up; each takes the task's context, so tests and the DAG call the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSkipException

from thrive_sync import alerts
from thrive_sync.assets import landed_alias, salesforce_asset
from thrive_sync.core.catalog import Category
from thrive_sync.core.gates import gate_summary
from thrive_sync.core.health import org_of_task
from thrive_sync.core.ledger import ledger_days
from thrive_sync.core.mapping import load_mapping
from thrive_sync.core.parts import part_labels
from thrive_sync.core.report import build_report, format_report, org_states, threshold_breach
from thrive_sync.errors import ConfigurationError, ThresholdBreached, UpstreamFailed
from thrive_sync.health_alerts import judge_orgs
from thrive_sync.settings import DAG_ID, DEFAULT_MAPPING

if TYPE_CHECKING:
    from airflow.sdk import Context

    from thrive_sync.hooks.thrive_store import ThriveStoreHook

NOT_DONE = ("failed", "upstream_failed")  # task states the report names
SYNC_PREFIX = "validate_and_map_"  # the mapped sync tasks, one instance per part


def check_accounts(context: Context, thrive_conn_id: str) -> dict[str, dict[str, str | None]] | bool:
    """Each account's gates per category; ``False`` (the run stops) when no account has tracking on."""
    if context.get("data_interval_start") is None:
        raise ConfigurationError("this run has no data interval: trigger it with a logical date")
    store = _thrive_store(thrive_conn_id)
    store.check_defined()
    store.check_tables()
    params = context["params"]
    first_day, last_day = ledger_days(
        context["data_interval_start"], context["data_interval_end"], params["lookback_days"], params["retry_days"]
    )
    store.ensure_ledger_partitions(first_day, last_day)
    accounts = store.account_settings()
    summary = gate_summary(settings.gates for settings in accounts.values())
    closed = {a: g[Category.MESSAGE_ACTIVITY] for a, g in summary.items() if g[Category.MESSAGE_ACTIVITY]}
    for account_id, gate in closed.items():
        print(f"Skipping account {account_id}: {gate}")
    if len(closed) == len(summary):
        print(f"No account has tracking enabled ({len(summary)} accounts): nothing to sync.")
        return False
    return summary  # each org's connection is checked by its own sync instances, only when it has rows


def skip_unless_selected(category: Category) -> Callable[[Context], None]:
    """A ``pre_execute`` hook: the task is skipped when the run's ``categories`` param leaves ``category`` out."""

    def pre_execute(context: Context) -> None:
        if category.value not in context["params"]["categories"]:
            raise AirflowSkipException(f"{category.value} is not in this run's categories")

    return pre_execute


def report(context: Context, thrive_conn_id: str) -> dict[str, Any]:
    """Print the run's report and judge each org's health (alerting on a change); fail the run when a
    sync task failed or the failure threshold passed."""
    params, run_id = context["params"], context["run_id"]
    failed = failed_tasks(context)
    try:
        store = _thrive_store(thrive_conn_id)
        rows, failures = store.run_counts(run_id), store.failures_by_reason(run_id)
        retry_from = context["data_interval_start"] - timedelta(days=params["retry_days"])
        backlog = store.ledger_backlog(retry_from, context["data_interval_end"])
        orgs, parts = store.org_usage(run_id), store.part_states(run_id)
    except Exception as err:
        if not failed:
            raise  # the report's own failure: its failure callback alerts
        # thrive_db itself is why they failed: retrying the report cannot help (and would alert twice).
        raise UpstreamFailed(_say_failed(context, failed, f"thrive_db cannot be read: {err}")) from err
    window = (str(context["data_interval_start"]), str(context["data_interval_end"]))
    result = build_report(
        run_id, window, rows, failures, params["categories"], bool(params["dry_run"]), failed, backlog, orgs, parts
    )
    print(format_report(result))
    result["health"] = _judge(context, store, failed)
    for conn_id, health in result["health"].items():
        print(f"org {conn_id} health: {health['level']}" + "".join(f"; {reason}" for reason in health["reasons"]))
    if failed:
        not_done = [conn_id for conn_id, state in result["org_states"].items() if not state["done"]]
        orgs_text = f" (org{'s' * (len(not_done) > 1)} not done: {', '.join(not_done)})" if not_done else ""
        raise UpstreamFailed(
            f"{', '.join(failed)} did not finish{orgs_text}: see their logs; the report shows what was saved"
        )
    breach = threshold_breach(result, params["failure_threshold"])
    if breach:
        raise ThresholdBreached(breach)  # the org past it is critical: alerted, unless it was already
    return result


def _judge(context: Context, store: ThriveStoreHook, failed: list[str]) -> dict[str, dict[str, Any]]:
    """Each org's health (:func:`~thrive_sync.health_alerts.judge_orgs`). Failed tasks are said even
    when the orgs are not judged: in a dry run, or when judging itself fails."""
    try:
        health = judge_orgs(context, store, failed)
    except Exception as err:
        if not failed:
            raise
        raise UpstreamFailed(_say_failed(context, failed, f"the orgs' health cannot be judged: {err}")) from err
    if failed and context["params"]["dry_run"]:
        _say_failed(context, failed, "a dry run: the orgs' health is not judged")
    return health


def _say_failed(context: Context, failed: list[str], why: str) -> str:
    """An alert for failed tasks the orgs' health does not speak for; its message."""
    message = f"{', '.join(failed)} did not finish; {why}"
    alerts.send(context, f"{DAG_ID} {context['run_id']}: the run failed", message)
    return message


def publish_landed(context: Context, thrive_conn_id: str, mapping_path: str | None) -> list[str]:
    """Update the Asset of each org whose day has landed: every part of every category saved, and no
    task of the run failed that concerns it (an extract that failed made no parts to wait for). The
    orgs. A dry run writes nothing, so it updates none; an org with no rows that day has no parts."""
    failed = failed_tasks(context)
    if context["params"]["dry_run"] or any(org_of_task(task) is None for task in failed):
        return []  # nothing written, or a task every org needs failed: no org landed
    try:
        states = org_states(_thrive_store(thrive_conn_id).part_states(context["run_id"]))
    except Exception as err:
        if not failed:
            raise
        raise UpstreamFailed(f"{', '.join(failed)} did not finish, and thrive_db cannot be read: {err}") from err
    landed = sorted(conn_id for conn_id, state in states.items()
                    if state["done"] and not any(org_of_task(task) in (None, conn_id) for task in failed))  # fmt: skip
    sobject = load_mapping(mapping_path or DEFAULT_MAPPING).object if landed else ""
    events = context["outlet_events"][landed_alias()]
    for conn_id in landed:
        asset = salesforce_asset(conn_id, sobject)
        events.add(asset, extra={
            "dag_run_id": context["run_id"], "window_start": context["data_interval_start"].isoformat(),
            "window_end": context["data_interval_end"].isoformat(), "categories": list(context["params"]["categories"]),
        })  # fmt: skip
        print(f"Org {conn_id}: the day has landed in {sobject}: asset {asset.uri}")
    return landed


def failed_tasks(context: Context) -> list[str]:
    """The run's tasks that failed for good (or could not run because an upstream task failed); a
    mapped sync instance named by its part: ``validate_and_map_message_activity[salesforce_b]``."""
    ti = context["ti"]
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[context["run_id"]]).get(context["run_id"], {})
    return sorted(_instance_name(ti, key, set(context["dag"].task_ids)) for key, state in states.items()
                  if state in NOT_DONE)  # fmt: skip


def _instance_name(ti: Any, key: str, task_ids: set[str]) -> str:
    """``key`` as the Execution API names a task's state (``task_id``, or ``task_id_<map index>``),
    with a sync instance's map index turned into its part, from the rows its extract returned."""
    task_id, _, index = key.rpartition("_")
    if key in task_ids or task_id not in task_ids or not index.isdigit() or not task_id.startswith(SYNC_PREFIX):
        return key
    try:
        labels = part_labels(ti.xcom_pull(task_ids=task_id.replace(SYNC_PREFIX, "extract_", 1)))
    except (TypeError, ValueError):  # not the rows of parts: the bare map index will do
        labels = []
    return f"{task_id}[{labels[int(index)] if int(index) < len(labels) else index}]"


def clear_staging(context: Context, thrive_conn_id: str, retention_days: int) -> None:
    """Drop the run's staged rows and member answers, whatever became of the sync tasks; and the
    ledger's days older than ``retention_days`` before the run's day."""
    store = _thrive_store(thrive_conn_id)
    store.clear_staging(context["run_id"])
    before = context["data_interval_start"].astimezone(UTC).date() - timedelta(days=retention_days)
    dropped = store.drop_ledger_partitions(before)
    if dropped:
        print(f"Event ledger: dropped {dropped} day(s) before {before} (THRIVE_SYNC_LEDGER_RETENTION_DAYS)")


def _thrive_store(thrive_conn_id: str) -> ThriveStoreHook:
    # Deferred: the hook brings psycopg and the Postgres provider, a fifth of a second on every
    # parse of the DAG file, which imports this module.
    from thrive_sync.hooks.thrive_store import ThriveStoreHook

    return ThriveStoreHook(thrive_conn_id)
