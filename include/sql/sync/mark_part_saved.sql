-- The task's part has saved its counts (and, when it wrote, its ledger rows): the report shows its
-- org as done, and the category's last part to save saves the considered days.
UPDATE thrive_sync.run_parts
SET saved_at = now()
WHERE dag_run_id = %(run_id)s AND category = %(category)s AND salesforce_conn_id = %(conn_id)s AND shard = %(shard)s;
