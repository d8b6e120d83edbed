-- The package's tables (schema/02_thrive_sync.sql) this database lacks: a new deployment whose setup
-- DAG never ran, or an upgrade that added a table or a column. Empty when all are there.
SELECT name
FROM (
    SELECT name
    FROM unnest(ARRAY[
        'thrive_sync.sync_runs', 'thrive_sync.tracking_log', 'thrive_sync.staged_events',
        'thrive_sync.staged_tallies', 'thrive_sync.member_matches', 'thrive_sync.bulk_jobs',
        'thrive_sync.event_ledger', 'thrive_sync.org_usage', 'thrive_sync.retention_runs',
        'thrive_sync.run_parts', 'thrive_sync.sync_run_shards', 'thrive_sync.refused_logins',
        'thrive_sync.org_health'
    ]) AS name
    WHERE to_regclass(name) IS NULL
    UNION ALL  -- and the columns added to a table after it was made
    SELECT 'thrive_sync.sync_runs.salesforce_conn_id'
    WHERE to_regclass('thrive_sync.sync_runs') IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM information_schema.columns
        WHERE table_schema = 'thrive_sync' AND table_name = 'sync_runs' AND column_name = 'salesforce_conn_id')
    UNION ALL  -- and the function that puts a row in its shard
    SELECT 'thrive_sync.shard_of()' WHERE to_regprocedure('thrive_sync.shard_of(text, integer)') IS NULL
) AS missing
ORDER BY name COLLATE "C";  -- one order under any database collation
