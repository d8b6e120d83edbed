-- The org's health as this report judged it; ``since`` moves only when the level changes, ``alerted``
-- only when an alert went.
INSERT INTO thrive_sync.org_health
    (salesforce_conn_id, level, reasons, since, dag_run_id, window_start, alerted, checked_at)
VALUES (%(conn_id)s, %(level)s, %(reasons)s, now(), %(run_id)s, %(window_start)s, %(alerted)s, now())
ON CONFLICT (salesforce_conn_id) DO UPDATE
SET level = EXCLUDED.level, reasons = EXCLUDED.reasons,
    since = CASE WHEN org_health.level = EXCLUDED.level THEN org_health.since ELSE EXCLUDED.since END,
    dag_run_id = EXCLUDED.dag_run_id, window_start = EXCLUDED.window_start,
    alerted = coalesce(EXCLUDED.alerted, org_health.alerted), checked_at = EXCLUDED.checked_at;
