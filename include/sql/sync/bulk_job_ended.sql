-- A Bulk job seen to end (or aborted): no later try needs to abort it.
UPDATE thrive_sync.bulk_jobs
SET ended_at = now(), state = %(state)s
WHERE salesforce_conn_id = %(conn_id)s AND job_id = %(job_id)s;
