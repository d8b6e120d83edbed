-- One run's counts per category and account (the page's table when a run is picked).
SELECT category, account_id, extracted, written, failed, skipped, coalesce(unchanged, 0), coalesce(deferred, 0), skip_gate
FROM thrive_sync.sync_runs
WHERE dag_run_id = %(run_id)s AND (%(category)s::text IS NULL OR category = %(category)s)
ORDER BY category, account_id;
