-- What the extract staged per account: every row, and the unchanged, late, retried and standing among them.
-- The operator's conservation check compares.
SELECT account_id, count(*), count(*) FILTER (WHERE consideration = 'unchanged'),
       count(*) FILTER (WHERE consideration = 'late'), count(*) FILTER (WHERE consideration = 'retried'),
       count(*) FILTER (WHERE consideration = 'standing')
FROM thrive_sync.staged_events
WHERE dag_run_id = %(run_id)s AND category = %(category)s
GROUP BY account_id;
