-- The run's counts per category and account, as the validate-and-map tasks saved them.
SELECT category, account_id, extracted, written, failed, skipped, coalesce(unchanged, 0), coalesce(late, 0),
       coalesce(retried, 0), coalesce(standing, 0), coalesce(healed, 0), coalesce(deferred, 0), coalesce(left_out, 0), coalesce(converted, 0),
       coalesce(merged, 0), skip_gate, truncated, dry_run, window_start, window_end
FROM thrive_sync.sync_runs
WHERE dag_run_id = %(run_id)s
ORDER BY category, account_id;
