-- The org's health as this report judged it; ``since`` moves only when the level changes; ``said``
-- only when an alert went (%(said)s null: none went, what was said stands).
INSERT INTO thrive_sync.org_health
    (salesforce_conn_id, level, reasons, since, dag_run_id, window_start, said, said_at, checked_at)
VALUES (%(conn_id)s, %(level)s, %(reasons)s, now(), %(run_id)s, %(window_start)s, coalesce(%(said)s, 'ok'),
        CASE WHEN %(said)s IS NOT NULL THEN now() END, now())
ON CONFLICT (salesforce_conn_id) DO UPDATE
SET level = EXCLUDED.level, reasons = EXCLUDED.reasons,
    since = CASE WHEN org_health.level = EXCLUDED.level THEN org_health.since ELSE EXCLUDED.since END,
    dag_run_id = EXCLUDED.dag_run_id, window_start = EXCLUDED.window_start,
    said = CASE WHEN %(said)s IS NOT NULL THEN EXCLUDED.said ELSE org_health.said END,
    said_at = CASE WHEN %(said)s IS NOT NULL THEN EXCLUDED.said_at ELSE org_health.said_at END,
    checked_at = EXCLUDED.checked_at;
