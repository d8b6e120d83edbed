-- Stage this run's marketing_automation events: the data interval [start, end) of thrive.automation_activity, joined
-- with the recipient (Custom Member ID, social handles); detail = the page URL or goal name.
-- Idempotent: a retried extract replaces the run's rows.
DELETE FROM thrive_sync.staged_events WHERE dag_run_id = %(run_id)s AND category = 'marketing_automation';

INSERT INTO thrive_sync.staged_events
    (dag_run_id, category, account_id, event_id, recipient_id, recipient_found, custom_member_id,
     facebook_handle, twitter_handle, activity_code, activity_subcode, occurred_at,
     message_id, message_found, message_name, detail)
SELECT %(run_id)s, 'marketing_automation', e.account_id, e.event_id, e.recipient_id, r.recipient_id IS NOT NULL,
       r.custom_member_id, r.facebook_handle, r.twitter_handle, e.activity_code, e.activity_subcode,
       e.occurred_at, NULL::bigint, NULL::boolean, NULL, coalesce(e.page_url, e.goal_name)
FROM thrive.automation_activity e
LEFT JOIN thrive.recipients r ON r.account_id = e.account_id AND r.recipient_id = e.recipient_id
WHERE e.occurred_at >= %(window_start)s AND e.occurred_at < %(window_end)s;

SELECT account_id, count(*) AS events
FROM thrive_sync.staged_events
WHERE dag_run_id = %(run_id)s AND category = 'marketing_automation'
GROUP BY account_id
ORDER BY account_id;
