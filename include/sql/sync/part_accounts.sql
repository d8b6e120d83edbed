-- The accounts of the task's part: those the extract considered rows of whose Salesforce connection
-- (as the extract found it: an account's change of connection mid-run waits for the next run) is
-- the part's.
SELECT account_id
FROM thrive_sync.staged_tallies
WHERE dag_run_id = %(run_id)s AND category = %(category)s AND salesforce_conn_id = %(conn_id)s
ORDER BY account_id;
