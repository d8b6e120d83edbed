-- One category's counts for one account in this run; a retried task overwrites its own row.
INSERT INTO thrive_sync.sync_runs
    (dag_run_id, account_id, category, window_start, window_end, extracted, written, failed, skipped,
     dry_run, started_at, finished_at, skip_gate, truncated, unchanged, late, retried, standing, healed, deferred, left_out, converted, merged)
VALUES (%(run_id)s, %(account_id)s, %(category)s, %(window_start)s, %(window_end)s, %(extracted)s,
        %(written)s, %(failed)s, %(skipped)s, %(dry_run)s, %(started_at)s, now(), %(skip_gate)s, %(truncated)s,
        %(unchanged)s, %(late)s, %(retried)s, %(standing)s, %(healed)s, %(deferred)s, %(left_out)s, %(converted)s, %(merged)s)
ON CONFLICT (dag_run_id, account_id, category) DO UPDATE
SET window_start = EXCLUDED.window_start, window_end = EXCLUDED.window_end, extracted = EXCLUDED.extracted,
    written = EXCLUDED.written, failed = EXCLUDED.failed, skipped = EXCLUDED.skipped,
    dry_run = EXCLUDED.dry_run, started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
    skip_gate = EXCLUDED.skip_gate, truncated = EXCLUDED.truncated, unchanged = EXCLUDED.unchanged,
    late = EXCLUDED.late, retried = EXCLUDED.retried, standing = EXCLUDED.standing, healed = EXCLUDED.healed,
    deferred = EXCLUDED.deferred, left_out = EXCLUDED.left_out, converted = EXCLUDED.converted,
    merged = EXCLUDED.merged;
