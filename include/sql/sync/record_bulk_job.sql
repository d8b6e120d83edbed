-- A Bulk job this task made, recorded before its data goes: if the task dies, its next try finds it.
INSERT INTO thrive_sync.bulk_jobs (salesforce_conn_id, job_id, dag_run_id, category, shard)
VALUES (%(conn_id)s, %(job_id)s, %(run_id)s, %(category)s, %(shard)s)
ON CONFLICT DO NOTHING;
