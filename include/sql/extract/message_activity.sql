-- Stage this run's message_activity events: the data interval [start, end) of thrive.message_activity, joined
-- with the recipient (Custom Member ID, social handles) and the message; detail = the link URL.
-- Idempotent: a retried extract replaces the run's rows.
DELETE FROM thrive_sync.staged_events WHERE dag_run_id = %(run_id)s AND category = 'message_activity';

INSERT INTO thrive_sync.staged_events
    (dag_run_id, category, account_id, event_id, recipient_id, recipient_found, custom_member_id,
     facebook_handle, twitter_handle, activity_code, activity_subcode, occurred_at,
     message_id, message_found, message_name, detail)
SELECT %(run_id)s, 'message_activity', e.account_id, e.event_id, e.recipient_id, r.recipient_id IS NOT NULL,
       r.custom_member_id, r.facebook_handle, r.twitter_handle, e.activity_code, e.activity_subcode,
       e.occurred_at, e.message_id, m.message_id IS NOT NULL, m.name, e.link_url
FROM thrive.message_activity e
LEFT JOIN thrive.recipients r ON r.account_id = e.account_id AND r.recipient_id = e.recipient_id
LEFT JOIN thrive.messages m ON m.account_id = e.account_id AND m.message_id = e.message_id
WHERE e.occurred_at >= %(window_start)s AND e.occurred_at < %(window_end)s;

SELECT account_id, count(*) AS events
FROM thrive_sync.staged_events
WHERE dag_run_id = %(run_id)s AND category = 'message_activity'
GROUP BY account_id
ORDER BY account_id;
