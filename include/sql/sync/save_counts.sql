-- One account's counts in one category of this run, as the task's shard counted them (a retried task
-- overwrites its shard's row); sync_runs gets the sum over the account's shards saved so far. The
-- parts of a run's category save one at a time (lock_parts.sql), so the sum sees every shard saved.
-- A run done again under its run id (its DAG run cleared) may split the account's org into fewer
-- shards than before (fewer rows, another org, another THRIVE_SYNC_SHARD_ROWS): the earlier split's
-- rows beyond %(shards)s are dropped and never summed. Every shard saves a row for each account of
-- its part (zeros too: staged_counts.sql), so those below are this split's. The org is the part's.
WITH stale AS (
    DELETE FROM thrive_sync.sync_run_shards
    WHERE dag_run_id = %(run_id)s AND account_id = %(account_id)s AND category = %(category)s
      AND shard >= %(shards)s
), shard AS (
    INSERT INTO thrive_sync.sync_run_shards
        (dag_run_id, account_id, category, shard, window_start, window_end, extracted, written, failed, skipped,
         dry_run, started_at, finished_at, skip_gate, truncated, unchanged, late, retried, standing, healed,
         deferred, left_out, converted, merged)
    VALUES (%(run_id)s, %(account_id)s, %(category)s, %(shard)s, %(window_start)s, %(window_end)s, %(extracted)s,
            %(written)s, %(failed)s, %(skipped)s, %(dry_run)s, %(started_at)s, now(), %(skip_gate)s, %(truncated)s,
            %(unchanged)s, %(late)s, %(retried)s, %(standing)s, %(healed)s, %(deferred)s, %(left_out)s,
            %(converted)s, %(merged)s)
    ON CONFLICT (dag_run_id, account_id, category, shard) DO UPDATE
    SET window_start = EXCLUDED.window_start, window_end = EXCLUDED.window_end, extracted = EXCLUDED.extracted,
        written = EXCLUDED.written, failed = EXCLUDED.failed, skipped = EXCLUDED.skipped,
        dry_run = EXCLUDED.dry_run, started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
        skip_gate = EXCLUDED.skip_gate, truncated = EXCLUDED.truncated, unchanged = EXCLUDED.unchanged,
        late = EXCLUDED.late, retried = EXCLUDED.retried, standing = EXCLUDED.standing, healed = EXCLUDED.healed,
        deferred = EXCLUDED.deferred, left_out = EXCLUDED.left_out, converted = EXCLUDED.converted,
        merged = EXCLUDED.merged
    RETURNING *
), shards AS (
    SELECT * FROM shard
    UNION ALL
    SELECT * FROM thrive_sync.sync_run_shards
    WHERE dag_run_id = %(run_id)s AND account_id = %(account_id)s AND category = %(category)s AND shard <> %(shard)s
      AND shard < %(shards)s
)
INSERT INTO thrive_sync.sync_runs
    (dag_run_id, account_id, category, salesforce_conn_id, window_start, window_end, extracted, written, failed,
     skipped, dry_run, started_at, finished_at, skip_gate, truncated, unchanged, late, retried, standing, healed,
     deferred, left_out, converted, merged)
SELECT %(run_id)s, %(account_id)s, %(category)s, %(conn_id)s, min(window_start), max(window_end), sum(extracted),
       sum(written), sum(failed), sum(skipped), bool_or(dry_run), min(started_at), max(finished_at), max(skip_gate),
       sum(truncated), sum(unchanged), sum(late), sum(retried), sum(standing), sum(healed), sum(deferred),
       sum(left_out), sum(converted), sum(merged)
FROM shards
ON CONFLICT (dag_run_id, account_id, category) DO UPDATE
SET salesforce_conn_id = EXCLUDED.salesforce_conn_id, window_start = EXCLUDED.window_start,
    window_end = EXCLUDED.window_end, extracted = EXCLUDED.extracted,
    written = EXCLUDED.written, failed = EXCLUDED.failed, skipped = EXCLUDED.skipped,
    dry_run = EXCLUDED.dry_run, started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
    skip_gate = EXCLUDED.skip_gate, truncated = EXCLUDED.truncated, unchanged = EXCLUDED.unchanged,
    late = EXCLUDED.late, retried = EXCLUDED.retried, standing = EXCLUDED.standing, healed = EXCLUDED.healed,
    deferred = EXCLUDED.deferred, left_out = EXCLUDED.left_out, converted = EXCLUDED.converted,
    merged = EXCLUDED.merged;
