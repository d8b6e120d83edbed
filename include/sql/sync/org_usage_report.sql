-- Per org the run wrote to: the API requests and Bulk batches its tasks found before writing and
-- left after, the rows deferred, its data storage and the records written (the storage forecast).
-- Spent is the most found less the least left: the org's other integrations spend the same
-- allowance meanwhile, so it is an upper bound of the run's own use.
SELECT salesforce_conn_id, max(api_max), max(api_before) - min(api_after), min(api_after),
       max(batches_max), max(batches_before) - min(batches_after), min(batches_after), sum(deferred),
       string_agg(DISTINCT notes, '; '), max(storage_max), min(storage_after), sum(written), max(record_kb),
       max(storage_warn_share)
FROM thrive_sync.org_usage
WHERE dag_run_id = %(run_id)s
GROUP BY salesforce_conn_id
ORDER BY salesforce_conn_id;
