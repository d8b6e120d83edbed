-- Remember this run's answers from the org; a task running alongside may have saved the same Ids.
INSERT INTO thrive_sync.member_matches (dag_run_id, salesforce_conn_id, sf_id, found)
SELECT %(run_id)s, %(conn_id)s, f.sf_id, f.found
FROM unnest(%(sf_ids)s::text[], %(found)s::boolean[]) AS f (sf_id, found)
ON CONFLICT DO NOTHING;
