-- A category's staged events for this run, in one of two orders:
--   by_parent false: pages in primary-key order, the rows from (from_account, from_event) on, at most
--     page_rows of them. Each page is its own short statement (keyset paging on the primary key), so
--     no transaction stays open while the writer waits on Salesforce. The first page starts at
--     ('', the smallest bigint), the next at (last account, last event + 1).
--   by_parent true: every row at once (page_rows null), by account, then Custom Member ID (the Contact
--     or Lead the records look up), then event; read through a WITH HOLD cursor, so PostgreSQL sorts
--     the rows once and no transaction stays open either. The writer keeps a parent's records in one
--     Bulk job: jobs running side by side then never wait for each other's parent locks.
-- carried: only the rows carried from earlier runs (retried), only the others, or (null) all.
-- occurred_at and message_id arrive as the text Salesforce takes: PostgreSQL formats them faster
-- than Python.
SELECT s.account_id, s.event_id, s.recipient_id, s.recipient_found, s.custom_member_id, s.facebook_handle,
       s.twitter_handle, s.activity_code, s.activity_subcode,
       to_char(s.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS occurred_at,
       s.message_id::text AS message_id, s.message_found, s.message_name, s.detail
FROM thrive_sync.staged_events s
WHERE s.dag_run_id = %(run_id)s AND s.category = %(category)s
  AND s.account_id = ANY(%(account_ids)s::text[]) AND thrive_sync.shard_of(s.custom_member_id, %(shards)s) = %(shard)s  -- the task's part
  AND (s.account_id, s.event_id) >= (%(from_account)s, %(from_event)s)
  AND coalesce(s.consideration, 'new') NOT IN ('unchanged', 'standing')  -- counted or logged, never sent
  AND (%(carried)s::boolean IS NULL OR (s.consideration IS NOT DISTINCT FROM 'retried') = %(carried)s::boolean)
ORDER BY s.account_id, CASE WHEN %(by_parent)s::boolean THEN s.custom_member_id END, s.event_id
LIMIT %(page_rows)s;
