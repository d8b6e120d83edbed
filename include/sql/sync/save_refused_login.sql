-- The org refused the login of these credentials: the run's other instances of the org fail at once.
INSERT INTO thrive_sync.refused_logins (dag_run_id, salesforce_conn_id, credentials_digest, message)
VALUES (%(run_id)s, %(conn_id)s, %(digest)s, %(message)s)
ON CONFLICT (dag_run_id, salesforce_conn_id, credentials_digest) DO UPDATE
SET message = EXCLUDED.message, refused_at = now();
