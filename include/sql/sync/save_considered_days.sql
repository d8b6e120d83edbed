-- The days the extract looked at in full (its lookback and its day, whole UTC days only), with the
-- snapshot it read the source under: committed with the ledger rows (save_ledger.sql), so that a later run
-- passes over the rows of those days that have not changed since (extract/stage.sql). Only once every
-- part of the category has saved (run_parts): the rows of an org whose instance failed have no ledger
-- rows, and the next runs must look at the days in full to find them.
INSERT INTO thrive_sync.considered_days AS w (category, day, source_snapshot, mapping_digest, dag_run_id)
SELECT t.category, d.day::date, t.source_snapshot, t.mapping_digest, t.dag_run_id
FROM (
    SELECT category, dag_run_id, source_snapshot, mapping_digest,
           considered_from AT TIME ZONE 'UTC' AS considered_from, considered_to AT TIME ZONE 'UTC' AS considered_to
    FROM thrive_sync.staged_tallies
    WHERE dag_run_id = %(run_id)s AND category = %(category)s AND source_snapshot IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM thrive_sync.run_parts p  -- a part not saved since the latest extract
                      WHERE p.dag_run_id = %(run_id)s AND p.category = %(category)s
                        AND (p.saved_at IS NULL OR p.saved_at < p.extracted_at))
    LIMIT 1
) t
CROSS JOIN LATERAL generate_series(
    date_trunc('day', t.considered_from)
        + CASE WHEN t.considered_from = date_trunc('day', t.considered_from) THEN interval '0' ELSE interval '1 day' END,
    date_trunc('day', t.considered_to) - interval '1 day',
    interval '1 day'
) AS d (day)
ON CONFLICT (category, day) DO UPDATE
SET source_snapshot = EXCLUDED.source_snapshot, mapping_digest = EXCLUDED.mapping_digest,
    dag_run_id = EXCLUDED.dag_run_id, saved_at = now();
