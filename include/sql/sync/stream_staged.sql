-- One category's staged events for this run, with each account's gates and Salesforce connection,
-- ordered so that a connection's accounts come together. Streamed through a server-side cursor.
-- occurred_at and message_id arrive as the text Salesforce takes: PostgreSQL formats them faster than Python.
SELECT coalesce(a.salesforce_conn_id, 'salesforce_default') AS salesforce_conn_id,
       coalesce(a.tracking_enabled, false)                  AS tracking_enabled,
       coalesce(a.marketing_automation_enabled, false)      AS marketing_automation_enabled,
       coalesce(a.social_crm_enabled, false)                AS social_crm_enabled,
       s.account_id, s.event_id, s.recipient_id, s.recipient_found, s.custom_member_id, s.facebook_handle,
       s.twitter_handle, s.activity_code, s.activity_subcode,
       to_char(s.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS occurred_at,
       s.message_id::text AS message_id, s.message_found,
       s.message_name, s.detail
FROM thrive_sync.staged_events s
LEFT JOIN thrive.accounts a ON a.account_id = s.account_id
WHERE s.dag_run_id = %(run_id)s AND s.category = %(category)s
ORDER BY 1, s.account_id, s.event_id;
