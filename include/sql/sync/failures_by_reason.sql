-- The run's tracking-log rows per category and reason code.
SELECT category, reason_code, count(*)
FROM thrive_sync.tracking_log
WHERE dag_run_id = %(run_id)s
GROUP BY category, reason_code
ORDER BY category, reason_code;
