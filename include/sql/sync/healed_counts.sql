-- Per account, the earlier failures this run carried forward that did not fail again (written, or
-- skipped when the account's gate closed meanwhile: the caller leaves those out).
SELECT s.account_id, count(*)
FROM thrive_sync.staged_events s
WHERE s.dag_run_id = %(run_id)s AND s.category = %(category)s AND s.consideration = 'retried'
  AND s.account_id = ANY(%(account_ids)s::text[]) AND thrive_sync.shard_of(s.custom_member_id, %(shards)s) = %(shard)s
  AND NOT EXISTS (
      SELECT 1 FROM thrive_sync.tracking_log t
      WHERE t.dag_run_id = s.dag_run_id AND t.account_id = s.account_id AND t.category = s.category
        AND t.event_id = s.event_id)
GROUP BY s.account_id;
