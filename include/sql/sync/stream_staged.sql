-- One category's staged events for this run, streamed through a server-side cursor in primary-key
-- order (no sort: the first row comes at once, whatever the day's size). occurred_at and message_id
-- arrive as the text Salesforce takes: PostgreSQL formats them faster than Python.
SELECT s.account_id, s.event_id, s.recipient_id, s.recipient_found, s.custom_member_id, s.facebook_handle,
       s.twitter_handle, s.activity_code, s.activity_subcode,
       to_char(s.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS occurred_at,
       s.message_id::text AS message_id, s.message_found, s.message_name, s.detail
FROM thrive_sync.staged_events s
WHERE s.dag_run_id = %(run_id)s AND s.category = %(category)s
ORDER BY s.account_id, s.event_id;
