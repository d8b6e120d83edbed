-- What one retention task did in one org (a retried task replaces its row).
INSERT INTO thrive_sync.retention_runs
    (dag_run_id, category, salesforce_conn_id, retention_days, cutoff, dry_run, found, deleted, failed,
     ledger_marked, failures, started_at)
VALUES (%(dag_run_id)s, %(category)s, %(salesforce_conn_id)s, %(retention_days)s, %(cutoff)s, %(dry_run)s,
        %(found)s, %(deleted)s, %(failed)s, %(ledger_marked)s, %(failures)s, %(started_at)s)
ON CONFLICT (dag_run_id, category, salesforce_conn_id) DO UPDATE
SET retention_days = excluded.retention_days, cutoff = excluded.cutoff, dry_run = excluded.dry_run,
    found = excluded.found, deleted = excluded.deleted, failed = excluded.failed,
    ledger_marked = excluded.ledger_marked, failures = excluded.failures, started_at = excluded.started_at,
    finished_at = now();
