-- How many events the extract staged per account: the operator's conservation check compares.
SELECT account_id, count(*) FROM thrive_sync.staged_events
WHERE dag_run_id = %(run_id)s AND category = %(category)s
GROUP BY account_id;
