-- One org's allowances as this task (one shard of the org) found and left them (allowance.py); a retried
-- task overwrites its row.
INSERT INTO thrive_sync.org_usage AS u
    (dag_run_id, category, salesforce_conn_id, shard, api_max, api_before, api_after, batches_max, batches_before,
     batches_after, storage_max, storage_before, storage_after, rows_to_send, room, deferred, written, record_kb,
     storage_warn_share, notes)
VALUES (%(run_id)s, %(category)s, %(conn_id)s, %(shard)s, %(api_max)s, %(api_before)s, %(api_after)s, %(batches_max)s,
        %(batches_before)s, %(batches_after)s, %(storage_max)s, %(storage_before)s, %(storage_after)s, %(rows)s,
        %(room)s, %(deferred)s, %(written)s, %(record_kb)s, %(storage_warn_share)s, %(notes)s)
ON CONFLICT (dag_run_id, category, salesforce_conn_id, shard) DO UPDATE
SET api_max = EXCLUDED.api_max, api_before = EXCLUDED.api_before, api_after = EXCLUDED.api_after,
    batches_max = EXCLUDED.batches_max, batches_before = EXCLUDED.batches_before,
    batches_after = EXCLUDED.batches_after, storage_max = EXCLUDED.storage_max,
    storage_before = EXCLUDED.storage_before, storage_after = EXCLUDED.storage_after,
    rows_to_send = EXCLUDED.rows_to_send, room = EXCLUDED.room, deferred = EXCLUDED.deferred,
    written = EXCLUDED.written, record_kb = EXCLUDED.record_kb, storage_warn_share = EXCLUDED.storage_warn_share,
    notes = EXCLUDED.notes, saved_at = now();
