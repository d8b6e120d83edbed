"""Each org's health and the alerts that speak once (thrive_sync.core.health)."""

from __future__ import annotations

import pytest

from thrive_sync.core.health import Health, HealthRules, Level, OrgDay, assess, org_of_task, transition

RULES = HealthRules(failure_threshold=0.5, warning_share=0.1, volume_share=0.5, volume_days=7, min_history=3)
CATEGORY = "message_activity"


def day(written: int = 1000, failed: int = 10, history: list[int] | None = None, tasks: tuple[str, ...] = ()) -> OrgDay:
    return OrgDay("org_a", tasks, past_gates=written + failed, failed=failed, written={CATEGORY: written},
                  history={CATEGORY: history if history is not None else [1000] * 7})  # fmt: skip


def test_an_ordinary_day_is_ok():
    assert assess(day(), RULES) == Health(Level.OK)


def test_a_task_failed_for_good_is_critical_and_named():
    health = assess(day(tasks=("validate_and_map_message_activity[org_a]",)), RULES)
    assert health.level is Level.CRITICAL
    assert health.reasons == ("failed for good: validate_and_map_message_activity[org_a]",)


@pytest.mark.parametrize(
    ("failed", "level"), [(100, Level.OK), (120, Level.WARNING), (1000, Level.WARNING), (1100, Level.CRITICAL)]
)
def test_the_failure_share_against_both_thresholds(failed, level):
    assert assess(day(written=1000, failed=failed), RULES).level is level  # 100/1100 = 9.1%, 120/1120 = 10.7%


def test_a_volume_drop_under_half_the_median_is_a_warning():
    health = assess(day(written=400, failed=0, history=[900, 1000, 1100, 5000, 10, 1000, 950]), RULES)
    assert health.level is Level.WARNING
    assert health.reasons == (
        "message_activity: 400 records written, under 50% of the median 1,000 of the last 7 days",
    )


def test_volume_is_not_judged_on_too_little_history_or_a_silent_median():
    assert assess(day(written=0, failed=0, history=[1000, 1000]), RULES).level is Level.OK
    assert assess(day(written=0, failed=0, history=[0, 0, 0, 0]), RULES).level is Level.OK


def test_only_the_last_volume_days_count():
    history = [100, 100, 100, 100, 100, 100, 100, 9000, 9000, 9000, 9000, 9000, 9000, 9000, 9000]
    assert assess(day(written=100, failed=0, history=history), RULES).level is Level.OK


def test_critical_keeps_the_warnings_as_reasons():
    health = assess(day(written=10, failed=20, history=[1000] * 7, tasks=("extract_message_activity",)), RULES)
    assert health.level is Level.CRITICAL and len(health.reasons) == 3


def test_transitions_speak_on_worse_and_on_recovery_only():
    ok, warning, critical = Health(Level.OK), Health(Level.WARNING, ("w",)), Health(Level.CRITICAL, ("c",))
    assert transition("a", None, ok) is None
    assert transition("a", None, warning).kind == "worse"
    assert transition("a", Level.OK, critical).kind == "worse"
    assert transition("a", Level.WARNING, critical).kind == "worse"
    assert transition("a", Level.CRITICAL, critical) is None
    assert transition("a", Level.CRITICAL, warning) is None  # better, not ok: quiet
    assert transition("a", Level.WARNING, warning) is None
    recovered = transition("a", Level.CRITICAL, ok)
    assert recovered.kind == "recovered" and recovered.subject == "[OK] org a recovered (was critical)"


def test_a_simulated_week_gives_exactly_three_alerts():
    """Mon-Sun: ordinary, ordinary, a sync task fails, recovered, ordinary, the export breaks (a quiet
    day), still quiet. Alerts: critical on Wednesday, recovery on Thursday, warning on Saturday."""
    week = [
        day(),
        day(),
        day(written=300, tasks=("validate_and_map_message_activity[org_a]",)),
        day(),
        day(),
        day(written=150, failed=2),
        day(written=140, failed=1),
    ]
    state, alerts = None, []
    for figures in week:
        health = assess(figures, RULES)
        alert = transition(figures.conn_id, state, health)
        if alert:
            alerts.append((alert.kind, alert.level.label))
        state = health.level
    assert alerts == [("worse", "critical"), ("recovered", "ok"), ("worse", "warning")]


def test_the_alert_text_says_what_and_that_it_will_not_repeat():
    alert = transition("org_a", Level.OK, Health(Level.CRITICAL, ("failed for good: extract_x",)))
    assert alert.subject == "[CRITICAL] org org_a: failed for good: extract_x"
    assert "was ok" in alert.message and "No further alert" in alert.message


@pytest.mark.parametrize(
    ("task", "org"),
    [
        ("validate_and_map_message_activity[salesforce_b]", "salesforce_b"),
        ("validate_and_map_message_activity[salesforce_b 2/3]", "salesforce_b"),
        ("validate_and_map_message_activity[4]", None),  # the part could not be named: every org
        ("extract_message_activity", None),
    ],
)
def test_the_org_a_failed_task_concerns(task, org):
    assert org_of_task(task) == org


@pytest.mark.parametrize("bad", [{"warning_share": 1.5}, {"volume_share": -0.1}, {"min_history": 8}])
def test_rules_refuse_values_that_cannot_work(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        HealthRules(**bad)
