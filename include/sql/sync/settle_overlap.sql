-- After this part took its turn for the day (advisory_lock.sql, space 'thrive_sync.day'): when
-- another run of the day saved the same part since this run's extract, the part's rows it wrote
-- meanwhile, with the same content, are left alone as unchanged (counted, not sent), as the extract
-- would have found them had it run after. How many. The EXISTS depends on the parameters only: when
-- no other run saved the part, the statement reads no row.
UPDATE thrive_sync.staged_events s
SET consideration = 'unchanged'
FROM thrive_sync.event_ledger l, thrive_sync.run_parts me
WHERE me.dag_run_id = %(run_id)s AND me.category = %(category)s AND me.salesforce_conn_id = %(conn_id)s
  AND me.shard = %(shard)s
  AND EXISTS (SELECT 1 FROM thrive_sync.run_parts mine, thrive_sync.run_parts other
              WHERE mine.dag_run_id = %(run_id)s AND mine.category = %(category)s
                AND mine.salesforce_conn_id = %(conn_id)s AND mine.shard = %(shard)s
                AND other.category = mine.category AND other.window_start = mine.window_start
                AND other.salesforce_conn_id = mine.salesforce_conn_id AND other.shard = mine.shard
                AND other.dag_run_id <> mine.dag_run_id AND other.saved_at >= mine.extracted_at)
  AND s.dag_run_id = me.dag_run_id AND s.category = me.category
  AND s.account_id = ANY(%(account_ids)s::text[]) AND thrive_sync.shard_of(s.custom_member_id, %(shards)s) = %(shard)s
  AND coalesce(s.consideration, 'new') NOT IN ('unchanged', 'standing')
  AND l.account_id = s.account_id AND l.category = s.category AND l.event_id = s.event_id
  AND l.occurred_at = s.occurred_at AND l.status = 'written' AND l.content_hash = s.content_hash
  AND l.last_dag_run_id <> s.dag_run_id AND l.last_attempt_at >= me.extracted_at;
