-- A (re)started validate-and-map task logs its part's failures for the run from scratch (its org's
-- accounts, its shard: thrive_sync.core.parts).
DELETE FROM thrive_sync.tracking_log s
WHERE s.dag_run_id = %(run_id)s AND s.category = %(category)s
  AND s.account_id = ANY(%(account_ids)s::text[]) AND thrive_sync.shard_of(s.custom_member_id, %(shards)s) = %(shard)s;
