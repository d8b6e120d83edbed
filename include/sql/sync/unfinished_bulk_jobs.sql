-- The Bulk jobs of this run and category that earlier tries made and never saw end, oldest first.
SELECT job_id
FROM thrive_sync.bulk_jobs
WHERE salesforce_conn_id = %(conn_id)s AND dag_run_id = %(run_id)s AND category = %(category)s
  AND shard = %(shard)s  -- another shard's jobs are running beside this one, not left over
  AND ended_at IS NULL
ORDER BY created_at, job_id;
