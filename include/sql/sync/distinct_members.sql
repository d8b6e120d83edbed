-- The Custom Member IDs of one category's staged rows for this run, in the accounts whose gate is
-- open: resolved against the org before the rows are streamed.
SELECT DISTINCT custom_member_id
FROM thrive_sync.staged_events
WHERE dag_run_id = %(run_id)s AND category = %(category)s AND account_id = ANY(%(account_ids)s::text[])
  AND custom_member_id IS NOT NULL AND thrive_sync.shard_of(custom_member_id, %(shards)s) = %(shard)s
ORDER BY custom_member_id;
