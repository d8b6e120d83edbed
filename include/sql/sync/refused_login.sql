-- A login of these credentials the org refused earlier in this run (thrive_sync.refused_logins).
SELECT message
FROM thrive_sync.refused_logins
WHERE dag_run_id = %(run_id)s AND salesforce_conn_id = %(conn_id)s AND credentials_digest = %(digest)s;
