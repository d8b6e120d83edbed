-- What the extract considered per account (extract/stage.sql): every row, and the unchanged, late,
-- retried and standing among them. The operator's conservation check compares.
SELECT account_id, events, unchanged, late, retried, standing
FROM thrive_sync.staged_tallies
WHERE dag_run_id = %(run_id)s AND category = %(category)s;
