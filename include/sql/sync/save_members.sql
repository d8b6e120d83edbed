-- Remember this run's answers from the org; a task running alongside may save the same Ids at the
-- same moment, so rows go in sorted order (two inserts of overlapping keys never wait on each other
-- in a cycle) and a key already there is left as it is.
INSERT INTO thrive_sync.member_matches (dag_run_id, salesforce_conn_id, sf_id, found)
SELECT %(run_id)s, %(conn_id)s, f.sf_id, f.found
FROM unnest(%(sf_ids)s::text[], %(found)s::boolean[]) AS f (sf_id, found)
ORDER BY f.sf_id
ON CONFLICT DO NOTHING;
