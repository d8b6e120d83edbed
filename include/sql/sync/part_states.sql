-- Per org and category of the run: its parts (shards) and how many of them saved their counts.
SELECT salesforce_conn_id, category, count(*), count(saved_at)
FROM thrive_sync.run_parts
WHERE dag_run_id = %(run_id)s
GROUP BY 1, 2
ORDER BY 1, 2;
